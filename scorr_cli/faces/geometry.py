"""Crop geometry: face box -> square window -> 2x3 affine (source -> crop), warping and paste-back.

A crop is fully described by its ``CropTransform`` (matrix, crop size, source size) so results can be
put back into the original image (``animate --paste-back``) and so the JSON sidecar is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)


@dataclass(frozen=True)
class Window:
    """Square crop window in source pixels: centre, side, and rotation (radians, eye-line angle)."""

    cx: float
    cy: float
    side: float
    angle: float = 0.0

    @property
    def box(self) -> tuple[float, float, float, float]:
        h = self.side / 2.0
        return self.cx - h, self.cy - h, self.cx + h, self.cy + h

    def contains(self, x: float, y: float) -> bool:
        """Whether a source point lands inside the (possibly rotated) window."""
        c, s = math.cos(-self.angle), math.sin(-self.angle)
        dx, dy = x - self.cx, y - self.cy
        u, v = c * dx - s * dy, s * dx + c * dy
        return abs(u) <= self.side / 2 and abs(v) <= self.side / 2


@dataclass(frozen=True)
class CropTransform:
    """Affine ``matrix`` maps source (x, y, 1) to crop pixels; crop is ``size``², source is (w, h)."""

    matrix: np.ndarray
    size: int
    source_size: tuple[int, int]

    def to_json(self) -> dict:
        return {"matrix": np.asarray(self.matrix).round(6).tolist(), "crop_size": int(self.size),
                "source_size": [int(self.source_size[0]), int(self.source_size[1])]}

    @classmethod
    def from_json(cls, d: dict) -> "CropTransform":
        return cls(np.asarray(d["matrix"], dtype=np.float64), int(d["crop_size"]),
                   (int(d["source_size"][0]), int(d["source_size"][1])))

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map (N, 2) source points into crop pixels."""
        pts = np.asarray(points, dtype=np.float64)
        return pts @ self.matrix[:, :2].T + self.matrix[:, 2]


def eye_angle(landmarks68: Optional[np.ndarray]) -> float:
    """Angle of the line from the subject's right eye (image left) to the left eye; 0 when level."""
    if landmarks68 is None:
        return 0.0
    a = np.asarray(landmarks68)[LEFT_EYE].mean(axis=0)
    b = np.asarray(landmarks68)[RIGHT_EYE].mean(axis=0)
    return float(math.atan2(b[1] - a[1], b[0] - a[0]))


def window_from_box(box: np.ndarray, scale: float, shift_y: float, angle: float = 0.0) -> Window:
    """Enlarge a face box to a square head-and-shoulders window (side = scale * longer box side)."""
    x0, y0, x1, y1 = map(float, box[:4])
    s = max(x1 - x0, y1 - y0)
    return Window((x0 + x1) / 2.0, (y0 + y1) / 2.0 + shift_y * s, scale * s, angle)


def fit_window(w: Window, width: int, height: int, border: str = "clamp") -> Window:
    """'clamp': shrink to the frame if needed and slide inside it (no padding); 'pad': unchanged."""
    if border == "pad":
        return w
    side = min(w.side, float(width), float(height))
    h = side / 2.0
    cx = min(max(w.cx, h), width - h)
    cy = min(max(w.cy, h), height - h)
    return Window(cx, cy, side, w.angle)


def window_transform(w: Window, size: int, source_size: tuple[int, int]) -> CropTransform:
    """Similarity that maps the window (rotated by its angle about its centre) onto [0, size)²."""
    k = size / w.side
    c, s = math.cos(-w.angle), math.sin(-w.angle)
    # crop = k * R(-angle) * (p - centre) + size/2
    m = np.array([[k * c, -k * s, 0.0], [k * s, k * c, 0.0]])
    m[:, 2] = np.array([size / 2.0, size / 2.0]) - m[:, :2] @ np.array([w.cx, w.cy])
    return CropTransform(m, int(size), (int(source_size[0]), int(source_size[1])))


def warp_crop(image: np.ndarray, t: CropTransform) -> np.ndarray:
    """Cut the crop out of ``image``; outside the frame is black.

    When shrinking by more than ~1.5x, warp at native resolution first and then downscale with area
    averaging: a direct bilinear warp would alias (shimmering hair and edges in video).
    """
    k = math.hypot(t.matrix[0, 0], t.matrix[1, 0])
    if k < 0.66:
        native = max(int(round(t.size / k)), t.size)
        m = t.matrix * (native / t.size)
        big = cv2.warpAffine(image, m, (native, native), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return cv2.resize(big, (t.size, t.size), interpolation=cv2.INTER_AREA)
    return cv2.warpAffine(image, t.matrix, (t.size, t.size), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def feather_mask(size: int, feather: float) -> np.ndarray:
    """Float mask (size, size): 1 inside, ramping linearly to 0 over ``feather`` * size at the edges."""
    ramp = max(1.0, feather * size)
    idx = np.arange(size, dtype=np.float32) + 0.5
    edge = np.minimum(idx, size - idx)
    one = np.clip(edge / ramp, 0.0, 1.0)
    return np.minimum(one[:, None], one[None, :])


def paste_back(full_image: np.ndarray, crop_result: np.ndarray, transform: CropTransform | dict,
               feather: float = 0.1) -> np.ndarray:
    """Blend an (animated) crop back into the source image with a feathered edge.

    ``crop_result`` may differ in size from the original crop (e.g. a 256² model output for a
    512² crop): the transform is rescaled accordingly.
    """
    if isinstance(transform, dict):
        transform = CropTransform.from_json(transform)
    h, w = full_image.shape[:2]
    r = crop_result.shape[0]
    m = transform.matrix * (r / transform.size)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    back = cv2.warpAffine(crop_result, m, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    mask = cv2.warpAffine(feather_mask(r, feather), m, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)
    if back.ndim == 3:
        mask = mask[:, :, None]
    out = full_image.astype(np.float32) * (1.0 - mask) + back.astype(np.float32) * mask
    return np.clip(out + 0.5, 0, 255).astype(full_image.dtype) if full_image.dtype == np.uint8 else out
