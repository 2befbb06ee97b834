"""Training augmentation: time flip, horizontal flip, colour jitter — one draw shared by all frames of
an item, so source and driving stay consistent.

Differences from the authors' ``augmentation.py`` (docs/ARCHITECTURE.md §7): the two flips are
independent (theirs flips horizontally only without a time flip, p 0.25), and the jitter works on float
images with numpy/OpenCV (no PIL 8-bit round trip, no torchvision). Jitter semantics follow
torchvision's ``ColorJitter``: factors uniform in [1 − x, 1 + x] (hue shift in [−x, x] turns), the four
operations in random order.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_GREY = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601 luma, as torchvision/PIL
JITTER_OPS: tuple[str, ...] = ("brightness", "contrast", "saturation", "hue")


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities of the flips and colour-jitter strengths (the authors' ``augmentation_params``)."""

    time_flip: float = 0.5
    horizontal_flip: float = 0.5
    independent_flips: bool = True  # False reproduces the authors' "hflip only if no time flip"
    brightness: float = 0.1
    contrast: float = 0.1
    saturation: float = 0.1
    hue: float = 0.1

    @classmethod
    def disabled(cls) -> "AugmentConfig":
        return cls(time_flip=0.0, horizontal_flip=0.0, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0)


@dataclass(frozen=True)
class AugmentParams:
    """One draw: the flips and the jitter operations in application order, each with its factor."""

    time_flip: bool
    horizontal_flip: bool
    jitter: tuple[tuple[str, float], ...]


def sample_params(config: AugmentConfig, rng: np.random.Generator) -> AugmentParams:
    """Draw every random choice of one item, in a fixed order (so a seed fixes the result)."""
    time_flip = bool(rng.random() < config.time_flip)
    hflip = bool(rng.random() < config.horizontal_flip)
    if not config.independent_flips and time_flip:
        hflip = False
    order = rng.permutation(len(JITTER_OPS))
    jitter: list[tuple[str, float]] = []
    for i in order:
        op = JITTER_OPS[int(i)]
        strength = float(getattr(config, op))
        if strength <= 0:
            continue
        if op == "hue":
            jitter.append((op, float(rng.uniform(-strength, strength))))
        else:
            jitter.append((op, float(rng.uniform(max(0.0, 1 - strength), 1 + strength))))
    return AugmentParams(time_flip, hflip, tuple(jitter))


def _grey(img: np.ndarray) -> np.ndarray:
    return img @ _GREY


def adjust(img: np.ndarray, op: str, factor: float) -> np.ndarray:
    """One jitter operation on an H×W×3 float32 RGB image in [0, 1]."""
    if op == "brightness":
        out = img * factor
    elif op == "contrast":
        out = img * factor + float(_grey(img).mean()) * (1 - factor)
    elif op == "saturation":
        out = img * factor + _grey(img)[..., None] * (1 - factor)
    elif op == "hue":
        hsv = cv2.cvtColor(np.ascontiguousarray(img, dtype=np.float32), cv2.COLOR_RGB2HSV)  # H in degrees
        hsv[..., 0] = np.mod(hsv[..., 0] + factor * 360.0, 360.0)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    else:
        raise ValueError(f"unknown jitter operation {op!r}")
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def apply(frames: list[np.ndarray], params: AugmentParams) -> list[np.ndarray]:
    """Apply one draw to every frame (H×W×3 float32 RGB in [0, 1]); time flip reverses the list."""
    out = list(reversed(frames)) if params.time_flip else list(frames)
    if params.horizontal_flip:
        out = [f[:, ::-1] for f in out]
    for op, factor in params.jitter:
        out = [adjust(f, op, factor) for f in out]
    return [np.ascontiguousarray(f, dtype=np.float32) for f in out]


__all__ = ["AugmentConfig", "AugmentParams", "sample_params", "apply", "adjust"]
