"""The iBUG 68-point landmark scheme: mirror map, keypoint guidance groups, face measurements.

One source of truth for what the 68 indices mean. Training (landmark guidance) and evaluation (the
follow metric) both read it, and ``scorr crop --dataset`` stores the points it refers to
(``LANDMARKS_FILE`` in every clip folder, see :func:`annotate_clip_folder`).

Indices are 0-based (dlib and face-alignment both use this order): jaw 0-16, brows 17-26, nose 27-35,
eyes 36-47 (36-41 the eye on the image's left), outer lips 48-59, inner lips 60-67.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

LANDMARKS_FILE = "landmarks.npy"  # per clip folder: (frames, 68, 2) float32 crop pixels (x, y), NaN = no face


def _mirror_68() -> np.ndarray:
    """Index permutation of a horizontally flipped face: the flipped point i is the original MIRROR_68[i]."""
    pairs = [(i, 16 - i) for i in range(8)]  # jaw
    pairs += [(17 + i, 26 - i) for i in range(5)]  # brows
    pairs += [(31, 35), (32, 34)]  # nostrils
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lips
    pairs += [(60, 64), (61, 63), (65, 67)]  # inner lips
    m = np.arange(68)
    for a, b in pairs:
        m[a], m[b] = b, a
    return m


MIRROR_68: np.ndarray = _mirror_68()

# Keypoint guidance: keypoint k is pulled toward the mean of group k (10 groups = the prior's 10
# keypoints). Lips are split upper/lower so the keypoints carry mouth opening; the jaw sides, chin and
# nose carry head pose; eyes and brows carry gaze/roll and expression.
KEYPOINT_GROUPS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("eye_left", tuple(range(36, 42))),
    ("eye_right", tuple(range(42, 48))),
    ("brow_left", tuple(range(17, 22))),
    ("brow_right", tuple(range(22, 27))),
    ("nose", (30, 31, 32, 33, 34, 35)),
    ("lip_upper", (49, 50, 51, 52, 53, 61, 62, 63)),
    ("lip_lower", (55, 56, 57, 58, 59, 65, 66, 67)),
    ("jaw_left", (1, 2, 3, 4)),
    ("jaw_right", (12, 13, 14, 15)),
    ("chin", (7, 8, 9)),
)
GROUP_NAMES: tuple[str, ...] = tuple(name for name, _ in KEYPOINT_GROUPS)
LIPS: tuple[int, ...] = tuple(range(48, 68))  # outer and inner lips: the lip-region loss's crop


def group_matrix(dtype=np.float32) -> np.ndarray:
    """(groups, 68) averaging matrix: ``group_matrix() @ points`` gives the group centres."""
    m = np.zeros((len(KEYPOINT_GROUPS), 68), dtype=dtype)
    for g, (_, idx) in enumerate(KEYPOINT_GROUPS):
        m[g, list(idx)] = 1.0 / len(idx)
    return m


def flip_normalised(points: np.ndarray) -> np.ndarray:
    """Landmarks (..., 68, 2) in [-1, 1] of the horizontally mirrored image: x -> -x, and each point
    takes its mirror partner's index (the left eye of the flipped face is the original right eye)."""
    out = points[..., MIRROR_68, :].copy()
    out[..., 0] = -out[..., 0]
    return out


def to_normalised(points: np.ndarray, size: int) -> np.ndarray:
    """Pixel centres of a ``size``-wide square image -> [-1, 1] (the keypoints' and grid_sample's frame)."""
    return points * (2.0 / (size - 1)) - 1.0


# ---------------------------------------------------------------------------------- measurements
def _dist(p: np.ndarray, a: int, b: int) -> np.ndarray:
    return np.linalg.norm(p[..., a, :] - p[..., b, :], axis=-1)


def interocular(points: np.ndarray) -> np.ndarray:
    """Distance between the outer eye corners (36, 45): the face's scale."""
    return _dist(points, 36, 45)


def mouth_opening(points: np.ndarray) -> np.ndarray:
    """Inner-lip gap (61-67, 62-66, 63-65 averaged) over the inter-ocular distance."""
    gap = (_dist(points, 61, 67) + _dist(points, 62, 66) + _dist(points, 63, 65)) / 3.0
    return gap / np.maximum(interocular(points), 1e-6)


def eye_opening(points: np.ndarray) -> np.ndarray:
    """Eye aspect ratio of both eyes (lid gaps over eye widths), averaged."""
    left = (_dist(points, 37, 41) + _dist(points, 38, 40)) / (2.0 * np.maximum(_dist(points, 36, 39), 1e-6))
    right = (_dist(points, 43, 47) + _dist(points, 44, 46)) / (2.0 * np.maximum(_dist(points, 42, 45), 1e-6))
    return (left + right) / 2.0


# ---------------------------------------------------------------------------------- clip folders
def annotate_frames(frames: Iterable[np.ndarray], detector) -> np.ndarray:
    """68 points for every frame of a face crop sequence, (N, 68, 2) float32, NaN where none was found.

    ``detector`` is a :class:`~scorr_cli.faces.detectors.DlibDetector` (or anything with ``detect`` and
    ``landmarks_for``). A frame where detection fails reuses the last found face box, so a blink or a
    turned head keeps its points; frames before the first detection stay NaN.
    """
    out = []
    last_box: Optional[np.ndarray] = None
    for frame in frames:
        faces = detector.detect(frame)
        if faces:
            h, w = frame.shape[:2]
            face = max(faces, key=lambda f: f.area - 4 * abs(f.center[0] - w / 2) * abs(f.center[1] - h / 2) / max(w, 1))
            lm = face.landmarks68 if face.landmarks68 is not None else detector.landmarks_for(frame, face.box)
            last_box = face.box
        elif last_box is not None:
            lm = detector.landmarks_for(frame, last_box)
        else:
            lm = np.full((68, 2), np.nan)
        out.append(np.asarray(lm, dtype=np.float32))
    return np.stack(out) if out else np.zeros((0, 68, 2), np.float32)


def annotate_clip_folder(folder: str | os.PathLike, detector, force: bool = False) -> Optional[Path]:
    """Write ``folder/landmarks.npy`` for a folder of crop frames (natural order); skipped when present.

    Returns the file written, or None when it was already there.
    """
    import io

    from scorr_cli.fsutil import atomic_write_bytes
    from scorr_cli.media import read_image
    from scorr_cli.media.frames import frame_files

    folder = Path(folder)
    target = folder / LANDMARKS_FILE
    if target.is_file() and not force:
        return None
    points = annotate_frames((read_image(path) for path in frame_files(folder)), detector)
    buf = io.BytesIO()
    np.save(buf, points)
    atomic_write_bytes(target, buf.getvalue())
    return target


def load_clip_landmarks(folder: str | os.PathLike, num_frames: int) -> Optional[np.ndarray]:
    """The clip's stored landmarks (N, 68, 2) float32, or None when absent or not matching its frames."""
    path = Path(folder) / LANDMARKS_FILE
    if not path.is_file():
        return None
    try:
        points = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if points.shape != (num_frames, 68, 2):
        return None
    return points.astype(np.float32, copy=False)
