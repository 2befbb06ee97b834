"""The follow metric: does the animated face do what the driving face does?

Per frame, from 68 landmarks of the output and of the driving frame: mouth opening, eye opening, and
head pose (yaw and pitch from the rigid landmarks — eye corners and nose — fitted to a generic 3-D
face, roll from the eye line). Per pair of sequences: the Pearson correlation of each signal between
output and driving, and the amplitude ratio (standard deviation of the output's signal over the driving's). ARD, the average rotation
distance, is the mean absolute difference of the three angles in degrees.

A still output (copy-source) has no variation: its correlation is defined as 0, not NaN, so "does
not follow" reads as 0. A driving signal without variation has nothing to follow: NaN.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from scorr_cli.faces import landmarks as lm68
from scorr_cli.faces.pose import head_pose

SIGNALS: tuple[str, ...] = ("mouth", "eyes", "yaw", "pitch", "roll")
POSE_SIGNALS: tuple[str, ...] = ("yaw", "pitch", "roll")
# summary keys: <signal>_corr and <signal>_amp for every signal
FOLLOW_METRICS: tuple[str, ...] = tuple(f"{s}_{k}" for s in SIGNALS for k in ("corr", "amp"))


def frame_signals(points: Optional[np.ndarray], image_size: tuple[int, int]) -> np.ndarray:
    """The five signals of one frame in :data:`SIGNALS` order (NaN when no face was found)."""
    if points is None:
        return np.full(len(SIGNALS), np.nan)
    p = np.asarray(points, dtype=np.float64)
    return np.concatenate([[float(lm68.mouth_opening(p)), float(lm68.eye_opening(p))], head_pose(p, image_size)])


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of ``a`` (output) with ``b`` (driving) over frames where both are known.

    0 when ``a`` does not vary (it does not follow); NaN when ``b`` does not vary or fewer than 3 frames."""
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return math.nan
    a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    sb = math.sqrt(float((b * b).sum()))
    if sb < 1e-12:
        return math.nan
    sa = math.sqrt(float((a * a).sum()))
    if sa < 1e-12:
        return 0.0
    return float((a * b).sum() / (sa * sb))


def amplitude(a: np.ndarray, b: np.ndarray) -> float:
    """Standard deviation of ``a`` over that of ``b`` (frames where both are known)."""
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return math.nan
    sb = float(b[ok].std())
    return float(a[ok].std()) / sb if sb > 1e-12 else math.nan


def follow_scores(output: np.ndarray, driving: np.ndarray) -> dict[str, float]:
    """``<signal>_corr`` / ``<signal>_amp`` for frame signals (frames × 5) of an output and its driving."""
    out: dict[str, float] = {}
    for k, name in enumerate(SIGNALS):
        out[f"{name}_corr"] = pearson(output[:, k], driving[:, k])
        out[f"{name}_amp"] = amplitude(output[:, k], driving[:, k])
    return out


def rotation_distance(output: np.ndarray, driving: np.ndarray) -> np.ndarray:
    """Per-frame ARD: mean |Δyaw|, |Δpitch|, |Δroll| in degrees (NaN where either face is missing)."""
    k = [SIGNALS.index(s) for s in POSE_SIGNALS]
    return np.abs(output[:, k] - driving[:, k]).mean(axis=1)


def sequence_signals(landmarks: Sequence[Optional[np.ndarray]], image_size: tuple[int, int]) -> np.ndarray:
    """frames × 5 signals of a landmark sequence (None entries: no face)."""
    if not len(landmarks):
        return np.zeros((0, len(SIGNALS)))
    return np.stack([frame_signals(p, image_size) for p in landmarks])


__all__ = ["SIGNALS", "FOLLOW_METRICS", "head_pose", "frame_signals", "pearson", "amplitude", "follow_scores",
           "rotation_distance", "sequence_signals"]
