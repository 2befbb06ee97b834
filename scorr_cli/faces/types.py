"""The detection record every backend returns, and box arithmetic shared by tracking and cropping."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np


@dataclass
class Face:
    """One detected face in image pixels: box corners, detector score, optional 68 iBUG points (x, y)."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 1.0
    landmarks68: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def box(self) -> np.ndarray:
        return np.array([self.x0, self.y0, self.x1, self.y1], dtype=np.float64)

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    @property
    def center(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2.0, (self.y0 + self.y1) / 2.0

    def scaled(self, factor: float) -> "Face":
        """The same face in an image resized by ``factor`` (detect small, report in full-size pixels)."""
        lm = None if self.landmarks68 is None else self.landmarks68 * factor
        return Face(self.x0 * factor, self.y0 * factor, self.x1 * factor, self.y1 * factor, self.score, lm)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two [x0, y0, x1, y1] boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
