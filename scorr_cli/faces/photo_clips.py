"""Still photos as extra training identities: a photo becomes a short clip of its face crop moving.

Why: the training set here is a few dozen talking-head clips of a few dozen people, and the renderer
overfits them: on a GPU, held-out reconstruction got worse while the training loss kept falling
(weights/README.md, "GPU steps"). Portraits of other people are far easier to find than talking-head
footage of them. A photo cannot show a face moving, so the clip made from it moves the whole crop: a
smooth random path of similarity transforms (in-plane turn, zoom, shift) re-cut from the photo itself,
so what comes into view is the photo's own surroundings (black beyond its border, as in video crops).
Its 68 landmarks are found once, on the still crop, by the detector that marks video crops, and moved
with every frame exactly. Nothing moves inside the face (no mouth, no blink, no turn in depth): these
clips teach the renderer appearance, not the keypoints expressions.

A clip folder is what ``scorr crop --dataset`` makes of a video (PNG frames + ``landmarks.npy``), so the
trainer, its sampling and `benchmarks/gpu_train` read it unchanged.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from scorr_cli.errors import NoFaceError
from scorr_cli.faces.config import CropConfig, PhotoMotionConfig
from scorr_cli.faces.detectors import FaceDetector
from scorr_cli.faces.geometry import CropTransform, warp_crop
from scorr_cli.faces.image import crop_source_image
from scorr_cli.faces.landmarks import LANDMARKS_FILE, annotate_frames

_KNOTS = 4  # moves per clip, whatever its length: a new random target for every parameter at each knot


def motion_path(n: int, motion: PhotoMotionConfig, rng: np.random.Generator) -> np.ndarray:
    """(n, 4) turn (radians), log zoom, shift x, shift y (fractions of the crop): each a random value at
    ``_KNOTS + 1`` evenly spaced frames, eased between them (cosine), so that frame-to-frame motion is
    smooth and consecutive frames are near each other, as in video."""
    limits = np.array([math.radians(motion.max_turn), math.log1p(motion.max_zoom), motion.max_shift,
                       motion.max_shift])
    knots = rng.uniform(-1.0, 1.0, size=(_KNOTS + 1, 4)) * limits
    t = np.linspace(0.0, _KNOTS, n) if n > 1 else np.zeros(1)
    i = np.minimum(t.astype(int), _KNOTS - 1)
    w = (1.0 - np.cos(np.pi * (t - i)))[:, None] / 2.0
    return knots[i] * (1.0 - w) + knots[i + 1] * w


def frame_matrix(params: np.ndarray, size: int) -> np.ndarray:
    """2×3 similarity in crop pixels for one frame's (turn, log zoom, shift x, shift y): turn and zoom about
    the crop centre, then shift."""
    turn, log_zoom, dx, dy = (float(v) for v in params)
    k = math.exp(log_zoom)
    c, s = k * math.cos(turn), k * math.sin(turn)
    centre = np.array([size / 2.0, size / 2.0])
    a = np.array([[c, -s], [s, c]])
    return np.hstack([a, (centre - a @ centre + np.array([dx, dy]) * size)[:, None]])


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2×3 affine ``outer ∘ inner``."""
    return np.hstack([outer[:, :2] @ inner[:, :2], (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]])


def photo_clip(image: np.ndarray, detector: FaceDetector, marker: FaceDetector, cfg: CropConfig,
               motion: PhotoMotionConfig, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The frames (``motion.frames`` RGB crops, ``cfg.size``²) and their (frames, 68, 2) landmarks for the
    largest face of ``image``; NoFaceError when it has none, or when ``marker`` finds no landmarks on the
    crop (a clip without landmarks would train nothing the video clips do not)."""
    still, base = crop_source_image(image, detector, cfg.size, cfg.scale, cfg.shift_y, "largest", cfg.align,
                                    cfg.border)
    points = annotate_frames([still], marker)[0].astype(np.float64)
    if not np.isfinite(points).all():
        raise NoFaceError("no landmarks found on the face crop")
    path = motion_path(motion.frames, motion, np.random.default_rng(seed))
    frames, marks = [], []
    for params in path:
        m = frame_matrix(params, cfg.size)
        frames.append(warp_crop(image, CropTransform(compose(m, base.matrix), cfg.size, base.source_size)))
        marks.append(points @ m[:, :2].T + m[:, 2])
    return frames, np.stack(marks).astype(np.float32)


def write_clip_folder(folder: Path, frames: list[np.ndarray], landmarks: np.ndarray) -> None:
    """Frames as 00000.png... and ``landmarks.npy`` into ``folder``, which appears only complete."""
    from scorr_cli.fsutil import atomic_folder
    from scorr_cli.media import write_image

    with atomic_folder(folder) as tmp:
        for i, frame in enumerate(frames):
            write_image(tmp / f"{i:05d}.png", frame)
        buf = io.BytesIO()
        np.save(buf, landmarks)
        (tmp / LANDMARKS_FILE).write_bytes(buf.getvalue())
