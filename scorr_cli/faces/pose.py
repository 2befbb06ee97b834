"""Head pose from 68 face landmarks: yaw and pitch of a generic 3-D face fitted in closed form, roll
from the eye line. Used by the follow metric (``scorr_cli.evaluate.follow``) and by the choice of the
motion reference (``scorr_cli.faces.bestframe``), so both read a face's pose the same way.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

# A generic face in camera-aligned axes (x right, y down, z away from the camera; units of ~0.2 mm):
# only points that do not move with expression (eye corners, nasion, nose tip, nostrils, nose base),
# so an open mouth or a raised chin is not read as a head turn.
_MODEL_INDICES = (36, 39, 42, 45, 27, 30, 31, 35, 33)
_MODEL_POINTS = np.array([
    (-225.0, -170.0, 135.0), (-80.0, -170.0, 110.0), (80.0, -170.0, 110.0), (225.0, -170.0, 135.0),
    (0.0, -185.0, 60.0), (0.0, 0.0, 0.0), (-45.0, 25.0, 85.0), (45.0, 25.0, 85.0), (0.0, 40.0, 75.0),
], dtype=np.float64)


def head_pose(points: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """(yaw, pitch, roll) in degrees of one face's 68 points (pixels of an image ``(h, w)``); NaN if unknown.

    Yaw and pitch: the rotation of the generic face above fitted to its rigid points under scaled
    orthographic projection, in closed form: the least-squares affine camera ``x ≈ M X + t``, then the
    nearest scaled rotation to ``M`` (its SVD with the singular values made equal). Why not
    ``cv2.solvePnP``: on these nearly planar points its iterative solver jumps between two mirror-like
    minima from one frame to the next (±20° of yaw on a head that barely moves), and which one it lands in
    changed with OpenCV 5, so the same frames scored differently by the installed version. The fit here is
    a continuous function of the points (no jumps) and pure numpy; ``benchmarks/pose_metric.py`` measures
    both. ``image_size`` is unused by the fit (an orthographic camera has no focal length) and kept so that
    callers pass what a perspective model would need.
    Roll: the angle of the line through the eye centres. Frontal = (0, 0, 0); yaw > 0 turns the face
    toward the image's right, pitch > 0 tilts the chin down, roll > 0 tilts the head clockwise on screen.
    """
    if points is None or not np.isfinite(points).all():
        return np.full(3, np.nan)
    p = np.asarray(points, dtype=np.float64)
    rotation = _fit_rotation(p[list(_MODEL_INDICES)])
    if rotation is None:
        return np.full(3, np.nan)
    yaw, pitch = yaw_pitch(rotation)
    left, right = p[36:42].mean(axis=0), p[42:48].mean(axis=0)
    roll = math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))
    return np.array([yaw, pitch, roll])


def yaw_pitch(rotation: np.ndarray) -> tuple[float, float]:
    """Yaw and pitch in degrees of a camera-from-face rotation matrix, in :func:`head_pose`'s convention."""
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, -rotation[2, 0]))))
    return yaw, math.degrees(math.atan2(rotation[2, 1], rotation[2, 2]))


def _fit_rotation(image_points: np.ndarray) -> Optional[np.ndarray]:
    """Camera-from-face rotation (3×3, det +1) that best maps :data:`_MODEL_POINTS` onto ``image_points``
    (N×2 pixels) under scaled orthographic projection; None for a degenerate set (all points on a line)."""
    model = _MODEL_POINTS - _MODEL_POINTS.mean(axis=0)
    image = image_points - image_points.mean(axis=0)
    affine = np.linalg.lstsq(model, image, rcond=None)[0].T  # 2×3: scale × the rotation's first two rows
    u, s, vt = np.linalg.svd(affine, full_matrices=False)
    if s[1] <= 1e-9 * max(s[0], 1e-12):
        return None
    rows = u @ vt  # the nearest pair of orthonormal rows
    return np.vstack([rows, np.cross(rows[0], rows[1])])
