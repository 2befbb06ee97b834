"""Map the authors' state dicts (``module.``-prefixed, with VGG/pyramid) onto scorr's model.

Pure dictionary logic: reading the file is :mod:`scorr_cli.checkpoints`' job.
"""

from __future__ import annotations

from typing import Mapping

import torch

from scorr_cli.core.config import ModelConfig

# Training-only tensors the authors ship inside ``model``; never part of the inference model.
TRAINING_ONLY_PREFIXES = ("vgg.", "pyramid.")


def strip_module_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def detect_prior(keys: list[str]) -> str | None:
    if any(k.startswith(("encoder.pre_feature.", "encoder.transformer.")) for k in keys):
        return "mtia"
    if any(k.startswith("encoder.fg_encoder.") for k in keys):
        return "tpsm"
    if any(k.startswith("encoder.predictor.") for k in keys):
        return "fomm"
    return None


def config_from_official(state: Mapping[str, torch.Tensor]) -> ModelConfig:
    """Infer the model configuration of an (un-prefixed) official state dict.

    The authors released 256² models only; widths are their defaults. The prior, background predictor
    and prior-only mode are read from which keys exist.
    """
    keys = list(state)
    prior = detect_prior(keys)
    if prior is None:
        raise KeyError("encoder.*")
    cfg = ModelConfig(prior=prior, background=any(k.startswith("bg_predictor.") for k in keys))
    if not any(k.startswith("decoder.kp.") for k in keys):
        cfg.refiner.prior_only = True
    return cfg


def official_to_scorr(state: Mapping[str, torch.Tensor], keep_background: bool = True) -> dict[str, torch.Tensor]:
    """Strip ``module.``, drop VGG/pyramid (and optionally the background predictor)."""
    out = {}
    for key, value in strip_module_prefix(state).items():
        if key.startswith(TRAINING_ONLY_PREFIXES):
            continue
        if not keep_background and key.startswith("bg_predictor."):
            continue
        out[key] = value
    return out
