"""The ImageNet VGG-19 weights of the perceptual loss: found in the torch hub cache or at a given path,
read without unpickling code, never downloaded (a one-line error says where to put the file)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

from scorr_cli.core.vgg import VGG19_FILENAME, VGG19_URL
from scorr_cli.errors import MissingWeightsError


def default_vgg19_path() -> Path:
    """Where torch hub caches the ImageNet file (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILENAME


def load_vgg19_weights(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """Read the ImageNet VGG-19 state dict from ``path`` or the torch hub cache; never downloads."""
    p = Path(path).expanduser() if path is not None else default_vgg19_path()
    if not p.is_file():
        raise MissingWeightsError(
            f"VGG-19 ImageNet weights not found at {p}: download {VGG19_URL} there (or pass --vgg-weights "
            "PATH), or train with --perceptual random")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise MissingWeightsError(f"cannot read VGG-19 weights {p}: {exc}") from None
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    return dict(state)



__all__ = ["default_vgg19_path", "load_vgg19_weights"]
