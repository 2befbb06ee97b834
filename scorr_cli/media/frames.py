"""Frame checks shared by the writers (what a frame must look like, even-size padding) and the one
rule for reading a folder of frames (which files, in which order)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

FRAME_IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg"})


def natural_key(name: str) -> list[object]:
    """Sort key that puts ``2.png`` before ``10.png``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def frame_files(folder: Path) -> list[Path]:
    """The PNG/JPEG frames of a frame folder in natural order; hidden files (temp files) left out."""
    return sorted((p for p in Path(folder).iterdir() if p.suffix.lower() in FRAME_IMAGE_EXTS
                   and not p.name.startswith(".")), key=lambda p: natural_key(p.name))


def as_rgb_frame(frame: np.ndarray) -> np.ndarray:
    """Return ``frame`` as a contiguous HxWx3 uint8 array; HxW greyscale is expanded.

    Anything else (floats, RGBA, CHW tensors) is a programming error, so it raises ValueError/TypeError
    rather than guessing a scale or a channel order.
    """
    a = np.asarray(frame)
    if a.dtype != np.uint8:
        raise TypeError(f"frames must be uint8, got {a.dtype} (scale and convert before writing)")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"frames must be HxWx3 RGB, got shape {a.shape}")
    return np.ascontiguousarray(a)


def pad_to_even(frame: np.ndarray) -> np.ndarray:
    """Repeat the last row/column when a side is odd: yuv420p stores colour per 2x2 block.

    Edge repetition is invisible, unlike a black line; cropping would lose picture. The output is
    then at most one pixel taller/wider than the frames given.
    """
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
