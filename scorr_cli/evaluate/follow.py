"""The follow metric: does the animated face do what the driving face does?

Per frame, from 68 landmarks of the output and of the driving frame: mouth opening, eye opening, and
head pose (yaw, pitch, roll from ``cv2.solvePnP`` of six landmarks on a generic 3-D face). Per pair
of sequences: the Pearson correlation of each signal between output and driving, and the amplitude
ratio (standard deviation of the output's signal over the driving's). ARD, the average rotation
distance, is the mean absolute difference of the three angles in degrees.

A still output (copy-source) has no variation: its correlation is defined as 0, not NaN, so "does
not follow" reads as 0. A driving signal without variation has nothing to follow: NaN.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from scorr_cli.faces import landmarks as lm68

SIGNALS: tuple[str, ...] = ("mouth", "eyes", "yaw", "pitch", "roll")
POSE_SIGNALS: tuple[str, ...] = ("yaw", "pitch", "roll")
# summary keys: <signal>_corr and <signal>_amp for every signal
FOLLOW_METRICS: tuple[str, ...] = tuple(f"{s}_{k}" for s in SIGNALS for k in ("corr", "amp"))

# A generic face in camera-aligned axes (x right, y down, z away from the camera; millimetre-like units):
# nose tip, chin, outer eye corners, mouth corners: the usual six-point head-pose model.
_MODEL_INDICES = (30, 8, 36, 45, 48, 54)
_MODEL_POINTS = np.array([
    (0.0, 0.0, 0.0),
    (0.0, 330.0, 65.0),
    (-225.0, -170.0, 135.0),
    (225.0, -170.0, 135.0),
    (-150.0, 150.0, 125.0),
    (150.0, 150.0, 125.0),
], dtype=np.float64)


def head_pose(points: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """(yaw, pitch, roll) in degrees of one face's 68 points (pixels of an image ``(h, w)``); NaN if PnP fails.

    A pinhole camera with focal length = image width. Frontal face = (0, 0, 0); yaw > 0 turns the face
    toward the image's right, pitch > 0 tilts the chin down, roll > 0 tilts the head clockwise on screen.
    """
    import cv2

    if points is None or not np.isfinite(points).all():
        return np.full(3, np.nan)
    h, w = image_size
    camera = np.array([[w, 0, w / 2.0], [0, w, h / 2.0], [0, 0, 1]], dtype=np.float64)
    image_points = np.asarray(points, dtype=np.float64)[list(_MODEL_INDICES)]
    ok, rvec, _ = cv2.solvePnP(_MODEL_POINTS, image_points, camera, np.zeros(4), flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return np.full(3, np.nan)
    r, _ = cv2.Rodrigues(rvec)
    pitch = math.degrees(math.atan2(r[2, 1], r[2, 2]))
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, -r[2, 0]))))
    roll = math.degrees(math.atan2(r[1, 0], r[0, 0]))
    return np.array([yaw, pitch, roll])


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
