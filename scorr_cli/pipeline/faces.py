"""The one door from ``animate`` to the face package, with a centre-crop fallback behind it.

``scorr_cli.faces`` is developed in parallel; looking its functions up here (and falling back to a
centre square when one is missing) keeps ``animate`` working at every stage of that work, with the
same interface: every crop is a ``matrix`` (source -> crop pixels), a ``size`` and a ``source_size``.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

import cv2
import numpy as np

from scorr_cli.errors import NoFaceError

LANDMARK_SIZE = 256
"""Crops are detected at this size for landmarks, whatever the model's resolution (64² is too small)."""
MAX_WINDOW_SAMPLES = 240
"""The driving window looks at no more than this many frames: long clips must not cost minutes."""


@dataclass(frozen=True)
class CentreCrop:
    """Fallback transform with the face package's ``CropTransform`` fields."""

    matrix: np.ndarray
    size: int
    source_size: tuple[int, int]


def _faces(module: str, name: str) -> Optional[Callable[..., Any]]:
    """``scorr_cli.faces.<module>.<name>`` or None when it does not exist (yet)."""
    try:
        return getattr(importlib.import_module(f"scorr_cli.faces.{module}"), name)
    except (ImportError, AttributeError):
        return None


def centre_transform(width: int, height: int, size: int) -> Any:
    """The largest centred square, scaled to ``size``: never squashes a non-square frame."""
    side = float(min(width, height))
    k = size / side
    m = np.array([[k, 0.0, size / 2.0 - k * width / 2.0], [0.0, k, size / 2.0 - k * height / 2.0]])
    make = _faces("geometry", "CropTransform") or CentreCrop
    return make(m, int(size), (int(width), int(height)))


def rescaled(t: Any, size: int) -> Any:
    """The same window rendered at another crop size."""
    return type(t)(np.asarray(t.matrix) * (size / t.size), int(size), t.source_size)


def warp(image: np.ndarray, t: Any) -> np.ndarray:
    """Cut crop ``t`` out of ``image`` (area-averaged when shrinking, black outside the frame)."""
    fn = _faces("geometry", "warp_crop")
    if fn is not None:
        return fn(image, t)
    k = math.hypot(t.matrix[0, 0], t.matrix[1, 0])
    if k < 0.66:
        native = max(int(round(t.size / k)), t.size)
        big = cv2.warpAffine(image, np.asarray(t.matrix) * (native / t.size), (native, native),
                             flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return cv2.resize(big, (t.size, t.size), interpolation=cv2.INTER_AREA)
    return cv2.warpAffine(image, np.asarray(t.matrix), (t.size, t.size), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def paste(full_image: np.ndarray, crop: np.ndarray, t: Any, feather: float = 0.1) -> np.ndarray:
    """Blend an animated crop back into the full source image with a feathered edge."""
    fn = _faces("geometry", "paste_back")
    if fn is not None:
        return fn(full_image, crop, t, feather)
    h, w = full_image.shape[:2]
    r = crop.shape[0]
    m = np.asarray(t.matrix) * (r / t.size)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    back = cv2.warpAffine(crop, m, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    idx = np.arange(r, dtype=np.float32) + 0.5
    one = np.clip(np.minimum(idx, r - idx) / max(1.0, feather * r), 0, 1)
    mask = cv2.warpAffine(np.minimum(one[:, None], one[None, :]), m, (w, h), flags=flags,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)[:, :, None]
    return np.clip(full_image * (1 - mask) + back * mask + 0.5, 0, 255).astype(np.uint8)


class FaceCropper:
    """Source crops, the driving window and landmarks; centre crops when cropping is off or unavailable.

    ``name`` says what actually ran ('dlib', 'face-alignment', 'centre') so results can report it.
    """

    def __init__(self, crop: bool = True, detector: str = "auto", device: str = "cpu"):
        self.crop = crop
        self._detector_name = detector
        self._device = device
        self._detector = None
        self.available = _faces("detectors", "get_detector") is not None
        self.name = "centre"
        if crop and self.available:
            self.name = detector

    @property
    def detector(self):
        """Built on first use: dlib's models take a second to load."""
        if self._detector is None:
            get_detector = _faces("detectors", "get_detector")
            if get_detector is None:
                return None
            self._detector = get_detector(self._detector_name, device=self._device)
            self.name = getattr(self._detector, "name", self._detector_name)
        return self._detector

    def _cropping(self, fn_module: str, fn_name: str) -> Optional[Callable[..., Any]]:
        return _faces(fn_module, fn_name) if self.crop and self.available else None

    def source(self, image: np.ndarray, size: int, name: str) -> tuple[np.ndarray, Any]:
        """Aligned crop of the largest face (or the centre square) and its transform."""
        fn = self._cropping("image", "crop_source_image")
        if fn is None:
            t = centre_transform(image.shape[1], image.shape[0], size)
            return warp(image, t), t
        try:
            return fn(image, self.detector, size=size)
        except NoFaceError:
            raise NoFaceError(f"{name}: no face found in the source image (try a larger, frontal face, "
                              "or --no-crop)") from None

    def image_window(self, image: np.ndarray, size: int, name: str) -> Any:
        """Crop window for a single driving image (same framing as a source)."""
        fn = self._cropping("image", "crop_source_image")
        if fn is None:
            return centre_transform(image.shape[1], image.shape[0], size)
        try:
            return fn(image, self.detector, size=size)[1]
        except NoFaceError:
            raise NoFaceError(f"{name}: no face found in the driving image (or use --no-crop)") from None

    def video_window(self, frames: Iterable[np.ndarray], n_frames: int, width: int, height: int, size: int,
                     name: str) -> Any:
        """One fixed window that covers the driving face over the clip (stable: no per-frame jitter)."""
        fn = self._cropping("bestframe", "driving_crop_window")
        if fn is None:
            return centre_transform(width, height, size)
        every = max(5, -(-n_frames // MAX_WINDOW_SAMPLES))
        try:
            return fn(frames, self.detector, size=size, every=every)
        except NoFaceError:
            raise NoFaceError(f"{name}: no face found in the driving video (looked at every {every}th of frames "
                              f"0-{n_frames - 1}; try --no-crop)") from None

    def landmarks(self, image: np.ndarray) -> Optional[np.ndarray]:
        """68 points of the largest face in ``image`` (a crop), or None."""
        det = self.detector
        if det is None:
            return None
        faces = [f for f in det.detect(image) if getattr(f, "landmarks68", None) is not None]
        return max(faces, key=lambda f: f.area).landmarks68 if faces else None


def normalize_landmarks(points: np.ndarray) -> Optional[np.ndarray]:
    """FOMM's normalisation (centred, divided by sqrt of hull area), scale-free so crops can differ."""
    fn = _faces("bestframe", "normalize_kp")
    if fn is not None:
        return fn(points)
    pts = np.asarray(points, dtype=np.float64)[:, :2]
    if pts.shape[0] < 3 or not np.isfinite(pts).all():
        return None
    area = cv2.contourArea(cv2.convexHull(pts.astype(np.float32)))
    return None if area <= 0 else (pts - pts.mean(axis=0)) / np.sqrt(area)


class BestFrameSearch:
    """Streaming ``find_best_frame``: frames without a face are skipped instead of crashing (FOMM does)."""

    def __init__(self, source_landmarks: np.ndarray):
        self.source = normalize_landmarks(source_landmarks)
        if self.source is None:
            raise NoFaceError("no landmarks for the source face")
        self.best_index = -1
        self.best_error = math.inf
        self.seen = 0

    def add(self, landmarks: Optional[np.ndarray]) -> None:
        i = self.seen
        self.seen += 1
        if landmarks is None:
            return
        d = normalize_landmarks(landmarks)
        if d is None or d.shape != self.source.shape:
            return
        err = float(((self.source - d) ** 2).sum())
        if err < self.best_error:
            self.best_index, self.best_error = i, err

