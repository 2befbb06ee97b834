"""Scene cuts and per-face tracks: detect every k-th frame, link by IoU, interpolate in between.

Tracks never span a scene cut (all tracks end there) and end when a face is unseen for longer than
``max_lost`` frames. Box coordinates are in whatever pixel space the caller feeds (usually the
downscaled analysis frames, scaled to source pixels afterwards).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, Optional

import cv2
import numpy as np

from scorr_cli.faces.types import Face, iou


class CutDetector:
    """Colour-histogram distance between consecutive tiny frames; a jump above the threshold is a cut.

    A histogram ignores motion inside a shot (talking, small pans) yet changes wholesale at a cut.
    The jump must also stand out from the shot's own recent distances (``ratio`` x their median), so
    flicker, flashes of stage light and dissolves do not shatter a shot into pieces.
    """

    def __init__(self, threshold: float = 0.2, bins: int = 16, ratio: float = 3.0, history: int = 15):
        self.threshold = threshold
        self.bins = bins
        self.ratio = ratio
        self._recent: deque[float] = deque(maxlen=history)
        self._prev: Optional[np.ndarray] = None

    def _hist(self, frame: np.ndarray) -> np.ndarray:
        small = cv2.resize(frame, (64, 36), interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
        h = cv2.calcHist([hsv], [0, 1], None, [self.bins, self.bins], [0, 180, 0, 256]).ravel()
        v = cv2.calcHist([hsv], [2], None, [self.bins], [0, 256]).ravel()
        h /= max(h.sum(), 1.0)
        v /= max(v.sum(), 1.0)
        return np.concatenate([h, v])

    def distance(self, frame: np.ndarray) -> float:
        """Distance (0..1) from the previous frame fed; 0 for the first frame."""
        h = self._hist(frame)
        prev, self._prev = self._prev, h
        if prev is None:
            return 0.0
        return float(0.25 * np.abs(h - prev).sum())  # two L1 halves (each max 2) -> 0..1

    def is_cut(self, frame: np.ndarray) -> bool:
        d = self.distance(frame)
        base = float(np.median(self._recent)) if self._recent else 0.0
        cut = d > self.threshold and d > self.ratio * base
        self._recent.clear() if cut else self._recent.append(d)
        return cut


@dataclass
class Track:
    """One face over a contiguous frame range, with detections at some frames."""

    track_id: int
    detections: dict[int, Face] = field(default_factory=dict)
    end: int = -1  # last frame (inclusive) the track covers

    @property
    def start(self) -> int:
        return min(self.detections)

    @property
    def last_seen(self) -> int:
        return max(self.detections)

    @property
    def n_frames(self) -> int:
        return self.end - self.start + 1

    def last_box(self) -> np.ndarray:
        return self.detections[self.last_seen].box

    def boxes(self) -> np.ndarray:
        """Per-frame boxes (n_frames, 4): linear between detections, held flat past the last one."""
        keys = sorted(self.detections)
        frames = np.arange(self.start, self.end + 1)
        arr = np.array([self.detections[k].box for k in keys])
        return np.stack([np.interp(frames, keys, arr[:, j]) for j in range(4)], axis=1)

    def angles(self) -> np.ndarray:
        """Per-frame eye-line angle interpolated from detections that have landmarks (0 otherwise)."""
        from scorr_cli.faces.geometry import eye_angle

        keys = [k for k in sorted(self.detections) if self.detections[k].landmarks68 is not None]
        frames = np.arange(self.start, self.end + 1)
        if not keys:
            return np.zeros(len(frames))
        vals = np.unwrap([eye_angle(self.detections[k].landmarks68) for k in keys])
        return np.interp(frames, keys, vals)


class Tracker:
    """Online IoU tracker fed frame by frame (faces=None on frames where the detector did not run)."""

    def __init__(self, iou_link: float = 0.3, max_lost: int = 12, every: int = 1):
        self.iou_link = iou_link
        self.max_lost = max_lost
        self.every = max(1, every)
        self.active: list[Track] = []
        self.finished: list[Track] = []
        self._next_id = 0
        self._segment_end_hint = 0

    def _close(self, t: Track, last_frame: int, lost: bool) -> None:
        # A face still present when the shot ends was there until the cut: extend over the frames the
        # detector skipped, but never beyond the segment. A lost face ends where it was last seen.
        t.end = t.last_seen if lost else min(last_frame, t.last_seen + self.every - 1)
        self.finished.append(t)

    def cut(self, frame_index: int) -> None:
        """A scene cut between ``frame_index - 1`` and ``frame_index``: every open track ends."""
        for t in self.active:
            self._close(t, frame_index - 1, lost=False)
        self.active = []

    def update(self, frame_index: int, faces: Optional[Iterable[Face]]) -> None:
        if faces is None:
            return
        faces = list(faces)
        pairs = sorted(((iou(t.last_box(), f.box), ti, fi) for ti, t in enumerate(self.active)
                        for fi, f in enumerate(faces)), reverse=True)
        used_t: set[int] = set()
        used_f: set[int] = set()
        for score, ti, fi in pairs:
            if score < self.iou_link or ti in used_t or fi in used_f:
                continue
            self.active[ti].detections[frame_index] = faces[fi]
            used_t.add(ti)
            used_f.add(fi)
        still: list[Track] = []
        for ti, t in enumerate(self.active):
            if ti not in used_t and frame_index - t.last_seen > self.max_lost:
                self._close(t, t.last_seen, lost=True)
            else:
                still.append(t)
        self.active = still
        for fi, f in enumerate(faces):
            if fi not in used_f:
                self.active.append(Track(self._next_id, {frame_index: f}))
                self._next_id += 1

    def finish(self, n_frames: int) -> list[Track]:
        """Close everything at the end of the video; return all tracks sorted by start frame."""
        for t in self.active:
            # a track unseen for a while at the very end was lost, not cut
            lost = (n_frames - 1) - t.last_seen > self.max_lost
            self._close(t, n_frames - 1, lost=lost)
        self.active = []
        return sorted(self.finished, key=lambda t: (t.start, t.track_id))
