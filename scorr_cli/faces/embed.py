"""Identity embeddings (dlib ResNet, 128-d) for AED: distance between source and generated faces."""

from __future__ import annotations

from typing import Optional

import numpy as np

from scorr_cli.faces.detectors import _as_rgb_uint8, dlib_model_path
from scorr_cli.faces.types import Face


class FaceEmbedder:
    """128-d identity vector per face; needs the 5-point predictor to align the chip as dlib was trained."""

    def __init__(self) -> None:
        import dlib

        self._dlib = dlib
        self._sp5 = dlib.shape_predictor(str(dlib_model_path("shape_predictor_5_face_landmarks.dat")))
        self._net = dlib.face_recognition_model_v1(str(dlib_model_path("dlib_face_recognition_resnet_model_v1.dat")))

    def embed(self, image: np.ndarray, face: Optional[Face] = None) -> np.ndarray:
        """Embedding of ``face`` (or of the whole image treated as one face box)."""
        image = _as_rgb_uint8(image)
        if face is None:
            h, w = image.shape[:2]
            rect = self._dlib.rectangle(0, 0, w - 1, h - 1)
        else:
            rect = self._dlib.rectangle(int(face.x0), int(face.y0), int(face.x1) - 1, int(face.y1) - 1)
        shape = self._sp5(image, rect)
        return np.asarray(self._net.compute_face_descriptor(image, shape), dtype=np.float64)

    @staticmethod
    def distance(a: np.ndarray, b: np.ndarray) -> float:
        """Euclidean distance; dlib's same-person threshold is about 0.6."""
        return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))
