"""Faces: detection backends, landmarks, tracking, crop geometry, paste-back, identity embeddings.

Names are imported from their submodule on first use (``scorr_cli.lazy``): OpenCV, dlib, torch and
face_alignment load only when a command needs faces.
"""

from scorr_cli.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("ReferenceSearch", "driving_crop_window", "face_state", "find_best_frame", "normalize_kp",
                     "reference_candidates"), "bestframe"),
    **dict.fromkeys(("CropConfig", "PhotoMotionConfig"), "config"),
    **dict.fromkeys(("DETECTOR_NAMES", "DlibDetector", "FaceAlignmentDetector", "FaceDetector",
                     "face_alignment_available", "get_detector"), "detectors"),
    "FaceEmbedder": "embed",
    **dict.fromkeys(("CropTransform", "Window", "eye_angle", "paste_back", "warp_crop", "window_transform"), "geometry"),
    **dict.fromkeys(("crop_image_file", "crop_source_image", "select_faces"), "image"),
    **dict.fromkeys(("Face", "iou"), "types"),
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
