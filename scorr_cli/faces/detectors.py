"""Face detector backends behind one interface: ``detect(rgb_uint8) -> list[Face]``.

- ``dlib``: HOG boxes + the 68-point shape predictor shipped in ``face_recognition_models``; offline.
- ``face-alignment``: S3FD/BlazeFace boxes + FAN 68 points (the design card's landmarker); needs
  weight files that it downloads on first use, so we check for them before constructing it.
- ``auto``: face-alignment when its weights are present, else dlib.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Optional, Protocol, runtime_checkable

import cv2
import numpy as np

from scorr_cli.choices import FACE_DETECTORS as DETECTOR_NAMES
from scorr_cli.errors import InputError, MissingWeightsError
from scorr_cli.faces import weights as fa_weights
from scorr_cli.faces.types import Face


@runtime_checkable
class FaceDetector(Protocol):
    """Anything that finds faces in an RGB uint8 image (H, W, 3), in full-image pixel coordinates."""

    name: str

    def detect(self, image: np.ndarray) -> list[Face]: ...


def dlib_model_path(filename: str) -> Path:
    """Path of a model file inside ``face_recognition_models``.

    Found via the package spec rather than importing it: its ``__init__`` needs ``pkg_resources``,
    which recent setuptools no longer provides.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeightsError(
            "the offline face models are missing: install the 'face_recognition_models' package"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / filename
    if not path.is_file():
        raise MissingWeightsError(f"offline face model {filename} not found in {path.parent}")
    return path


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise InputError("detector input must be an RGB uint8 image")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise InputError(f"detector input must be (H, W, 3), got shape {image.shape}")
    return np.ascontiguousarray(image[:, :, :3])


def downscale(image: np.ndarray, max_side: Optional[int]) -> tuple[np.ndarray, float]:
    """Resize so the longer side is <= max_side; return the image and the factor back to full size."""
    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return image, 1.0
    f = max_side / max(h, w)
    small = cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    return small, 1.0 / f


class DlibDetector:
    """HOG frontal detector (~6 ms per 256² frame) with dlib's 68-point shape predictor.

    ``fallback_upsample``: when a frame gives no face at ``upsample``, look again at this one (0 then 1
    is ~4x faster than always 1 on frames whose faces are large, as in talking-head clips, and finds
    the small ones all the same). ``landmarks=False`` gives boxes only, and the shape predictor (a
    100 MB model, seconds to load) is read only when :meth:`landmarks_for` first needs it.
    """

    name = "dlib"

    def __init__(self, upsample: int = 1, max_side: Optional[int] = 640, landmarks: bool = True,
                 min_score: float = 0.0, fallback_upsample: Optional[int] = None):
        import dlib

        self._dlib = dlib
        self.upsample = upsample
        self.fallback_upsample = fallback_upsample
        self.max_side = max_side
        self.min_score = min_score
        self.landmarks = landmarks
        self._hog = dlib.get_frontal_face_detector()
        self._shape_model = None

    @property
    def _shape(self):
        if self._shape_model is None:
            path = dlib_model_path("shape_predictor_68_face_landmarks.dat")
            self._shape_model = self._dlib.shape_predictor(str(path))
        return self._shape_model

    def detect(self, image: np.ndarray) -> list[Face]:
        image = _as_rgb_uint8(image)
        small, back = downscale(image, self.max_side)
        rects, scores, _ = self._hog.run(small, self.upsample, self.min_score)
        if not rects and self.fallback_upsample is not None and self.fallback_upsample != self.upsample:
            rects, scores, _ = self._hog.run(small, self.fallback_upsample, self.min_score)
        faces: list[Face] = []
        for r, s in zip(rects, scores):
            lm = None
            if self.landmarks:
                shape = self._shape(small, r)
                lm = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
            faces.append(Face(float(r.left()), float(r.top()), float(r.right() + 1), float(r.bottom() + 1),
                              float(s), lm).scaled(back))
        return faces

    def landmarks_for(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """68 points for a known box (used when tracking carries a box between detections)."""
        d = self._dlib
        rect = d.rectangle(int(box[0]), int(box[1]), int(box[2]) - 1, int(box[3]) - 1)
        shape = self._shape(_as_rgb_uint8(image), rect)
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


class FaceAlignmentDetector:
    """face-alignment 1.5: explicit device, no torch.compile, no flip (each halves CPU speed)."""

    name = "face-alignment"

    def __init__(self, device: str = "cpu", weights_dir: Optional[str | os.PathLike] = None,
                 face_detector: str = "sfd", max_side: Optional[int] = 640):
        if face_detector not in fa_weights.DETECTOR_FILES:
            raise InputError(f"unknown face-alignment detector {face_detector!r} (sfd or blazeface)")
        fa_weights.require_weights(face_detector, weights_dir)
        import face_alignment

        root = fa_weights.hub_dir(weights_dir)
        ckpt = root / "checkpoints"
        kwargs: dict = {}
        if face_detector == "sfd":
            kwargs = {"path_to_detector": str(ckpt / "s3fd-619a316812.pth")}
        else:
            kwargs = {"path_to_detector": str(ckpt / "blazeface.pth"), "path_to_anchor": str(ckpt / "anchors.npy")}
        with fa_weights.torch_hub_dir(root):
            self._fa = face_alignment.FaceAlignment(
                face_alignment.LandmarksType.TWO_D, device=device, face_detector=face_detector,
                face_detector_kwargs=kwargs, flip_input=False, compile=False,
            )
        self.max_side = max_side

    def detect(self, image: np.ndarray) -> list[Face]:
        image = _as_rgb_uint8(image)
        small, back = downscale(image, self.max_side)
        boxes = self._fa.face_detector.detect_from_image(small.copy())
        if len(boxes) == 0:
            return []
        boxes = [np.asarray(b, dtype=np.float64) for b in boxes]
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lms = self._fa.get_landmarks_from_image(small, detected_faces=[b[:4] for b in boxes]) or []
        faces = []
        for b, lm in zip(boxes, lms):
            score = float(b[4]) if len(b) > 4 else 1.0
            faces.append(Face(*map(float, b[:4]), score, np.asarray(lm, dtype=np.float64)[:, :2]).scaled(back))
        return faces

    def landmarks_for(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """FAN 68 points for a known box (full-image pixels)."""
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lms = self._fa.get_landmarks_from_image(_as_rgb_uint8(image), detected_faces=[np.asarray(box[:4], float)])
        return np.asarray(lms[0], dtype=np.float64)[:, :2]


def face_alignment_available(weights_dir: Optional[str | os.PathLike] = None, face_detector: str = "sfd") -> bool:
    return not fa_weights.missing_files(face_detector, weights_dir)


def get_detector(name: str = "auto", device: str = "cpu", weights_dir: Optional[str | os.PathLike] = None,
                 *, upsample: int = 1, max_side: Optional[int] = 640, face_detector: str = "sfd",
                 min_score: float = 0.0, fallback_upsample: Optional[int] = None,
                 landmarks: bool = True) -> FaceDetector:
    """Build a backend by name; ``auto`` prefers face-alignment when its files are already on disk.
    ``fallback_upsample`` and ``landmarks=False`` (boxes only) apply to dlib; face-alignment always
    gives landmarks."""
    if name == "auto":
        name = "face-alignment" if face_alignment_available(weights_dir, face_detector) else "dlib"
    if name == "dlib":
        return DlibDetector(upsample=upsample, max_side=max_side, min_score=min_score,
                            fallback_upsample=fallback_upsample, landmarks=landmarks)
    if name == "face-alignment":
        return FaceAlignmentDetector(device=device, weights_dir=weights_dir, face_detector=face_detector,
                                     max_side=max_side)
    raise InputError(f"unknown detector {name!r} (choose one of: {', '.join(DETECTOR_NAMES)})")
