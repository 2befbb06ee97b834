"""scorr's own checkpoint format (safetensors + JSON metadata in its header)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from scorr_cli import __version__
from scorr_cli.core.config import ModelConfig
from scorr_cli.core.model import MRFA
from scorr_cli.errors import CheckpointError, InputError
from scorr_cli.fsutil import atomic_path, check_output

FORMAT_VERSION = 1
FORMAT_NAME = "scorr-mrfa"


@dataclass
class Checkpoint:
    config: ModelConfig
    state: dict[str, torch.Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)  # preset, training info, source, scorr version
    path: Path | None = None


def publishable_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata fit to share: local paths in ``train_config`` are cut to their last part.

    Checkpoints travel; the folders of the machine that trained them are nobody's business.
    """
    out = dict(metadata)
    config = out.get("train_config")
    if isinstance(config, Mapping):
        config = dict(config)
        if config.get("data_root"):
            config["data_root"] = Path(config["data_root"]).name
        run = dict(config.get("run") or {})
        for key in ("out", "init", "vgg_weights"):
            if run.get(key):
                run[key] = Path(run[key]).name
        config["run"] = run
        out["train_config"] = config
    return out


def export_checkpoint(src: str | Path, dest: str | Path, *, half: bool = False, force: bool = False,
                      skip_updates: int | None = None) -> Path:
    """Copy a checkpoint for publishing: optionally float16, metadata without local paths, and (when given)
    the updater's inference setting ``refiner.skip_finest_updates`` stored with it."""
    ckpt = read_checkpoint(src)
    dest = check_output(dest, force)
    if skip_updates is not None:
        set_skip_updates(ckpt, skip_updates)
    meta = publishable_metadata(ckpt.metadata)
    if half:
        meta["storage_dtype"] = "float16"
    return save_checkpoint(dest, ckpt.state, ckpt.config, metadata=meta, dtype=torch.float16 if half else None)


def save_checkpoint(path: str | Path, model: MRFA | Mapping[str, torch.Tensor], config: ModelConfig | None = None,
                    *, metadata: Mapping[str, Any] | None = None, dtype: torch.dtype | None = None) -> Path:
    """Write weights atomically. ``dtype=torch.float16`` halves the file (floats only)."""
    if isinstance(model, MRFA):
        config = model.cfg
        state = model.state_dict()
    else:
        state = dict(model)
    if config is None:
        raise ValueError("config is required when saving a bare state dict")
    tensors = {}
    for k, v in state.items():
        v = v.detach().cpu()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        tensors[k] = v.contiguous()
    header = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "scorr_version": __version__,
        "prior": config.prior,
        "config": json.dumps(config.to_dict()),
        "metadata": json.dumps(dict(metadata or {})),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return path


def is_complete_safetensors(path: str | Path) -> bool:
    """Whether a safetensors file holds every byte its header promises (a cut file does not).

    Reads only the header: 8-byte length, the JSON, then the largest tensor end offset must meet the
    file's end. Catches files cut by a kill or a full disk without loading them."""
    p = Path(path)
    try:
        size = p.stat().st_size
        with p.open("rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n <= 0 or 8 + n > size:
                return False
            header = json.loads(f.read(n))
    except (OSError, ValueError):
        return False
    if not isinstance(header, dict):
        return False
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
    return 8 + n + max(ends, default=0) == size


def read_safetensors(path: str | Path, what: str) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """Header metadata and tensors of a safetensors file; one-line errors naming ``what`` it should be."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {what} not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        return header, load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        if looks_like_torch_file(path):
            raise CheckpointError(f"{path}: a PyTorch .pth file, not a {what}: convert it once with "
                                  f"'scorr weights import {path} --name NAME', then use NAME") from None
        raise CheckpointError(f"{path}: not a readable {what} ({str(e).splitlines()[0]})") from None


def looks_like_torch_file(path: Path) -> bool:
    """torch.save writes a zip archive (PK) or, in the legacy format, a pickle (protocol byte 0x80)."""
    try:
        with path.open("rb") as f:
            head = f.read(2)
    except OSError:
        return False
    return head == b"PK" or head[:1] == b"\x80"


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a scorr checkpoint without building the model."""
    path = Path(path)
    header, state = read_safetensors(path, "scorr checkpoint")
    if header.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path}: not a scorr checkpoint (no '{FORMAT_NAME}' header); "
                              "import the authors' .pth files with `scorr weights import`")
    version = int(header.get("format_version", "0"))
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {version} is newer than this scorr supports "
                              f"({FORMAT_VERSION}); upgrade scorr")
    try:
        config = ModelConfig.from_dict(json.loads(header["config"]))
        metadata = json.loads(header.get("metadata", "{}"))
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: corrupt checkpoint config ({e})") from None
    return Checkpoint(config, state, metadata, path)


def validate_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise a one-line error naming the first missing, unexpected or mis-shaped key."""
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise CheckpointError(f"{source}: missing key '{key}' (expected shape {list(tensor.shape)})")
        got = state[key]
        if tuple(got.shape) != tuple(tensor.shape):
            raise CheckpointError(f"{source}: key '{key}' has shape {list(got.shape)}, "
                                  f"model expects {list(tensor.shape)}")
    for key in state:
        if key not in expected:
            raise CheckpointError(f"{source}: unexpected key '{key}' (shape {list(state[key].shape)}) "
                                  "for this model configuration")


def build_model(checkpoint: Checkpoint, device: str | torch.device = "cpu") -> MRFA:
    """Instantiate the model of a checkpoint and load its weights strictly (as float32)."""
    model = MRFA(checkpoint.config)
    source = str(checkpoint.path) if checkpoint.path else "checkpoint"
    validate_state_dict(model, checkpoint.state, source)
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in checkpoint.state.items()}
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu", *,
                    skip_updates: int | None = None) -> tuple[MRFA, Checkpoint]:
    """The model of ``path`` on ``device``; ``skip_updates`` (when given) replaces its
    ``refiner.skip_finest_updates``, an inference setting that needs no other weights."""
    ckpt = read_checkpoint(path)
    if skip_updates is not None:
        set_skip_updates(ckpt, skip_updates)
    return build_model(ckpt, device), ckpt


def set_skip_updates(ckpt: Checkpoint, n: int) -> None:
    """Let the updater skip the ``n`` finest levels; the model config checks the bound (more levels than the
    model has is a one-line error)."""
    refiner = dataclasses.replace(ckpt.config.refiner, skip_finest_updates=n)
    try:
        ckpt.config = ckpt.config.replace(refiner=refiner)
    except ValueError as e:
        raise InputError(f"--skip-updates {n}: {ckpt.path}: {e}") from None
