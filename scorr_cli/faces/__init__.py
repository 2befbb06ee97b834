"""Faces: detection backends, landmarks, tracking, crop geometry, paste-back, identity embeddings.

Heavy modules (dlib, torch, face_alignment) are imported only when a backend is built.
"""

from scorr_cli.faces.bestframe import driving_crop_window, find_best_frame, normalize_kp
from scorr_cli.faces.config import CropConfig
from scorr_cli.faces.detectors import (
    DETECTOR_NAMES,
    DlibDetector,
    FaceAlignmentDetector,
    FaceDetector,
    face_alignment_available,
    get_detector,
)
from scorr_cli.faces.embed import FaceEmbedder
from scorr_cli.faces.geometry import CropTransform, Window, eye_angle, paste_back, warp_crop, window_transform
from scorr_cli.faces.image import crop_image_file, crop_source_image, select_faces
from scorr_cli.faces.types import Face, iou

__all__ = [
    "DETECTOR_NAMES", "CropConfig", "CropTransform", "DlibDetector", "Face", "FaceAlignmentDetector",
    "FaceDetector", "FaceEmbedder", "Window", "crop_image_file", "crop_source_image", "driving_crop_window",
    "eye_angle", "face_alignment_available", "find_best_frame", "get_detector", "iou", "normalize_kp",
    "paste_back", "select_faces", "warp_crop", "window_transform",
]
