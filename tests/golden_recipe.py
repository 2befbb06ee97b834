"""The golden-vector weight recipe of ../shared/reference/GOLDEN.md §1 (test support, not shipped).

Every tensor depends only on (key, shape, global seed G); keys include the ``module.`` prefix.
"""

from __future__ import annotations

import hashlib
import math
import zlib

import numpy as np
import torch

IDENTITY_HEADS = {
    "module.encoder.transformer.mlp_head_jacobian.1": [1.0, 0.0, 0.0, 1.0],
    "module.encoder.jacobian": [1.0, 0.0, 0.0, 1.0],
    "module.bg_predictor.bg_encoder.fc": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
}
LEARNED_TOKENS = ("module.encoder.transformer.keypoint_token", "module.decoder.pos_embedding")


def _draw(key: str, shape: list[int], seed: int) -> torch.Tensor:
    g = torch.Generator(device="cpu")
    g.manual_seed(zlib.crc32(key.encode("utf-8")) + seed)
    return torch.randn(shape, generator=g, dtype=torch.float32)


def recipe_tensor(key: str, shape: list[int], seed: int, fixed: dict[str, np.ndarray]) -> torch.Tensor:
    if key.endswith("num_batches_tracked"):
        return torch.tensor(0, dtype=torch.int64)
    if key in fixed:
        return torch.from_numpy(np.array(fixed[key]))
    head, _, leaf = key.rpartition(".")
    fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
    if head in IDENTITY_HEADS and leaf in ("weight", "bias"):
        r = _draw(key, shape, seed)
        if leaf == "weight":
            return r * (0.1 * math.sqrt(1.0 / fan_in))
        return torch.tensor(IDENTITY_HEADS[head], dtype=torch.float32) + r * 0.1
    r = _draw(key, shape, seed)
    if key in LEARNED_TOKENS:
        return r * 0.02
    if key.endswith(".running_mean"):
        return r * 0.1
    if key.endswith(".running_var"):
        return 1.0 + r.abs() * 0.1
    if key.endswith(".weight") and len(shape) == 1:
        return 1.0 + r * 0.1
    if key.endswith(".bias"):
        return r * 0.1
    if key.endswith(".weight"):
        s = math.sqrt(1.0 / fan_in)
        if key.startswith("module.encoder.transformer.transformer.layers.") and key.endswith(".0.fn.fn.to_qkv.weight"):
            s = s * 2.5
        return r * s
    raise KeyError(f"no recipe rule for {key}")


def recipe_state_dict(manifest: dict[str, list[int]], seed: int, fixed: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: recipe_tensor(k, list(shape), seed, fixed) for k, shape in manifest.items()}


def sha256_16(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()[:16]
