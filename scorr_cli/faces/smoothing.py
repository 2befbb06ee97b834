"""Temporal smoothing of crop windows: constant size (no pumping), heavily low-passed centre (no jitter)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from scorr_cli.faces.config import CropConfig
from scorr_cli.faces.geometry import Window


def gaussian_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Zero-phase Gaussian low-pass along axis 0 with edge-replicate padding (no lag, no end droop)."""
    x = np.asarray(x, dtype=np.float64)
    if sigma <= 0 or len(x) < 2:
        return x.copy()
    r = int(max(1, round(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    pad = np.concatenate([np.repeat(x[:1], r, axis=0), x, np.repeat(x[-1:], r, axis=0)])
    if x.ndim == 1:
        return np.convolve(pad, k, mode="valid")
    return np.stack([np.convolve(pad[:, j], k, mode="valid") for j in range(x.shape[1])], axis=1)


def smooth_windows(boxes: np.ndarray, fps: float, cfg: CropConfig,
                   angles: Optional[np.ndarray] = None) -> list[Window]:
    """One window per frame for a track of per-frame face boxes (T, 4).

    Side: fixed for the whole track (scale x the 90th-percentile box size), so the crop never zooms.
    Centre: fixed at the median when the face barely moves; otherwise Gaussian-smoothed, but never
    allowed to trail the face by more than a quarter of the crop (fast pans keep the face inside).
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    sizes = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    ref = float(np.percentile(sizes, 90))
    side = cfg.scale * ref
    centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2 + cfg.shift_y * ref], axis=1)
    ang = np.zeros(len(boxes)) if angles is None else np.unwrap(np.asarray(angles, dtype=np.float64))
    spread = np.ptp(centres, axis=0).max() if len(centres) else 0.0
    if spread < cfg.still_fraction * side:
        c = np.median(centres, axis=0)
        smooth = np.repeat(c[None], len(boxes), axis=0)
        ang_s = np.full(len(boxes), float(np.median(ang)))
    else:
        sigma = cfg.smooth_seconds * fps
        smooth = gaussian_smooth(centres, sigma)
        smooth = centres + np.clip(smooth - centres, -0.25 * side, 0.25 * side)
        ang_s = gaussian_smooth(ang, sigma)
    return [Window(float(cx), float(cy), side, float(a)) for (cx, cy), a in zip(smooth, ang_s)]


def max_jitter(windows: list[Window]) -> float:
    """Largest frame-to-frame move of the window centre, as a fraction of the window side."""
    if len(windows) < 2:
        return 0.0
    c = np.array([[w.cx, w.cy] for w in windows])
    s = np.array([w.side for w in windows])
    return float((np.linalg.norm(np.diff(c, axis=0), axis=1) / s[1:]).max())
