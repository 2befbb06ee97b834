"""One source of truth for crop defaults: the CLI builds its options (and --help text) from here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass
class CropConfig:
    """Every knob of detection, tracking and crop geometry, with its default and why."""

    size: int = _opt(256, "Output crop size in pixels (square); the models expect 256.")
    scale: float = _opt(1.8, "Crop side as a multiple of the face box (head-and-shoulders framing like VoxCeleb).")
    shift_y: float = _opt(-0.1, "Move the crop centre down (+) or up (-) by this fraction of the face box.")
    align: bool = _opt(False, "Rotate crops so the eye line is horizontal (similarity alignment on landmarks).")
    border: str = _opt("clamp", "At frame borders: 'clamp' keeps the window inside the frame, 'pad' fills with black.")
    detect_max_side: int = _opt(640, "Detect on frames downscaled so their longer side is at most this (speed).")
    upsample: int = _opt(1, "Detector upsampling passes (finds smaller faces, slower).")
    every: int = _opt(2, "Run the detector on every K-th frame; track in between.")
    min_frames: int = _opt(25, "Drop tracks (video clips) shorter than this many frames.")
    max_lost: int = _opt(12, "End a track when its face is not found for more than this many frames.")
    iou_link: float = _opt(0.3, "Minimum box overlap (IoU) to link a detection to an existing track.")
    cut_threshold: float = _opt(0.2, "Scene-cut sensitivity: colour-histogram distance between frames (0..1) that counts as a cut.")
    smooth_seconds: float = _opt(0.5, "Temporal smoothing of the crop centre (Gaussian sigma, seconds).")
    still_fraction: float = _opt(0.12, "Use one fixed window per track when its face moves less than this fraction of the crop.")
    min_score: float = _opt(0.0, "Discard detections scoring below this (detector-specific scale).")


@dataclass
class PhotoMotionConfig:
    """How ``scorr crop --dataset`` turns a still photo into a training clip (scorr_cli/faces/photo_clips.py)."""

    frames: int = _opt(0, "Dataset mode: make every photo under the folder a training clip of this many frames, "
                          "its face crop moving (turn, zoom, shift) as an extra identity; 0 leaves photos out.")
    max_turn: float = _opt(10.0, "Largest in-plane turn of a photo clip's crop, in degrees either way.")
    max_zoom: float = _opt(0.08, "Largest zoom of a photo clip's crop, as a fraction either way.")
    max_shift: float = _opt(0.06, "Largest shift of a photo clip's crop, as a fraction of its side either way.")
