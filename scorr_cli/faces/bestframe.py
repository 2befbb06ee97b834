"""FOMM helpers for ``animate``: one stable driving window, and the driving frame closest to the source."""

from __future__ import annotations

import os
from typing import Iterable, Optional, Sequence

import numpy as np

from scorr_cli.errors import NoFaceError
from scorr_cli.faces.detectors import FaceDetector, downscale
from scorr_cli.faces.geometry import CropTransform, Window, fit_window, window_transform


def normalize_kp(kp: np.ndarray) -> Optional[np.ndarray]:
    """FOMM's normalisation: centre on the mean, divide by sqrt(convex-hull area)."""
    import cv2

    kp = np.asarray(kp, dtype=np.float64)[:, :2]
    if kp.shape[0] < 3 or not np.isfinite(kp).all():
        return None
    area = cv2.contourArea(cv2.convexHull(kp.astype(np.float32)))
    if area <= 0:
        return None
    return (kp - kp.mean(axis=0)) / np.sqrt(area)


class BestFrameSearch:
    """FOMM's ``find_best_frame`` as a stream: ``add`` each driving frame's 68 points (None: no face,
    skipped instead of crashing as FOMM's does); ``best_index`` is the closest frame so far (-1: none)."""

    def __init__(self, source_landmarks: np.ndarray):
        self.source = normalize_kp(source_landmarks)
        if self.source is None:
            raise NoFaceError("no landmarks for the source face")
        self.best_index = -1
        self.best_error = np.inf
        self.seen = 0

    def add(self, landmarks: Optional[np.ndarray]) -> None:
        i = self.seen
        self.seen += 1
        if landmarks is None:
            return
        d = normalize_kp(landmarks)
        if d is None or d.shape != self.source.shape:
            return
        err = float(((self.source - d) ** 2).sum())
        if err < self.best_error:
            self.best_index, self.best_error = i, err


def find_best_frame(source_landmarks: np.ndarray, driving_landmarks_list: Sequence[Optional[np.ndarray]]) -> int:
    """Index of the driving frame whose normalised 68 points best match the source (frames without a
    face, i.e. None, are skipped). Raises NoFaceError when no driving frame has landmarks."""
    search = BestFrameSearch(source_landmarks)
    for kp in driving_landmarks_list:
        search.add(kp)
    if search.best_index < 0:
        raise NoFaceError("no face found in any driving frame")
    return search.best_index


REFERENCE_SCALES: tuple[float, float, float, float] = (0.03, 10.0, 10.0, 10.0)
"""One unit of mismatch in each of :func:`face_state`'s measures when the motion reference is chosen: a
mouth opening 0.03 apart (inner-lip gap over the eye span: a closed mouth reads about 0.01, talking
0.05-0.3), or a head 10° apart in yaw, pitch or roll."""
REFERENCE_SAMPLES = 40
"""The reference is looked for among at most this many evenly spaced driving frames: one dlib pass on
40 frames costs about half a second on a CPU, whatever the clip's length."""


def face_state(landmarks: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """Mouth opening, yaw, pitch and roll (degrees) of a face's 68 points: what the reference should share
    with the source. Scale- and position-free, so crops of any size compare. None without a usable face."""
    from scorr_cli.faces.landmarks import mouth_opening
    from scorr_cli.faces.pose import head_pose

    if landmarks is None:
        return None
    p = np.asarray(landmarks, dtype=np.float64)[:, :2]
    if p.shape != (68, 2) or not np.isfinite(p).all():
        return None
    state = np.concatenate([[float(mouth_opening(p))], head_pose(p, (1, 1))])
    return state if np.isfinite(state).all() else None


def reference_candidates(n_frames: int) -> list[int]:
    """The driving frames the reference is chosen from: all of a short clip, else
    :data:`REFERENCE_SAMPLES` evenly spaced ones (frame 0 always among them)."""
    if n_frames <= REFERENCE_SAMPLES:
        return list(range(n_frames))
    return sorted({int(round(x)) for x in np.linspace(0, n_frames - 1, REFERENCE_SAMPLES)})


class ReferenceSearch:
    """The motion reference of relative transfer: the driving frame whose mouth opening and head pose are
    closest to the source's (:func:`face_state`, distances in :data:`REFERENCE_SCALES` units).

    Why not the first frame: relative motion puts the reference frame's face onto the source's, so a
    driving clip that starts mid-word asks a closed-mouth portrait to close past shut whenever the driver
    closes, and the output's mouth then moves only when the driver opens wider than at the start (of the 7
    of 18 cross-identity pairs whose mouth did not follow, r < 0.5, 6 were driven by the 5 clips whose
    first frame has the mouth more open than most of their frames; weights/README.md). Why not FOMM's
    rule (:func:`find_best_frame`): its distance between normalised landmark shapes is mostly the two
    people's different faces, and it picked a wide-open mouth at 50° of yaw on a clip whose frames are
    all turned 30-50°.
    ``add`` each candidate's 68 points (None: no face, skipped); ``best_index`` is -1 until a face is seen.
    """

    def __init__(self, source_landmarks: Optional[np.ndarray]):
        self.source = face_state(source_landmarks)
        if self.source is None:
            raise NoFaceError("no landmarks for the source face")
        self.best_index = -1
        self.best_error = np.inf

    def add(self, index: int, landmarks: Optional[np.ndarray]) -> None:
        state = face_state(landmarks)
        if state is None:
            return
        err = float((((state - self.source) / np.asarray(REFERENCE_SCALES)) ** 2).sum())
        if err < self.best_error:
            self.best_index, self.best_error = int(index), err


SCAN_FACE_PX = 120
"""The face size the driving scan detects at once it has seen the face: dlib's HOG window is 80 px and
S3FD finds far smaller faces, while a talking-head clip's face is often 250 px or more. Detecting on a
frame scaled to this face size costs a fraction of the full frame (3-5x less time at 512²-590²). The
boxes move within dlib's own scale steps (its pyramid sizes faces in steps of 1.2x): on 15 clips the
window's corners moved by at most 7% of its side (0 on 9, where the frame is already small)."""


def _detect_at_face_scale(frame: np.ndarray, detector: FaceDetector, face_px: float | None) -> list:
    """The detector's faces in ``frame``, looked for on a copy scaled so a face of ``face_px`` pixels
    becomes :data:`SCAN_FACE_PX`; on the frame itself when that would not shrink it, or finds nothing."""
    if face_px and SCAN_FACE_PX / face_px < 0.8:
        small, back = downscale(frame, round(max(frame.shape[:2]) * SCAN_FACE_PX / face_px))
        faces = detector.detect(small)
        if faces:
            return [face.scaled(back) for face in faces]
    return detector.detect(frame)


def driving_crop_window(frames: Iterable[np.ndarray] | str | os.PathLike, detector: FaceDetector, size: int = 256,
                        scale: float = 1.8, shift_y: float = -0.1, every: int = 5,
                        border: str = "clamp") -> CropTransform:
    """One fixed crop (FOMM style) that covers the main face over the whole driving clip.

    The window is centred on the robust union of the largest face's boxes (5th-95th percentile
    edges, so a stray detection does not stretch it), with side = max(scale x median face size,
    1.1 x union extent). Use ``warp_crop(frame, transform)`` on every frame. After the first face,
    frames are searched at that face's scale (:data:`SCAN_FACE_PX`).
    """
    if isinstance(frames, (str, os.PathLike)):
        from scorr_cli.media import iter_video_frames

        frames = iter_video_frames(frames)
    boxes = []
    shape = None
    for i, frame in enumerate(frames):
        shape = frame.shape
        if i % max(1, every):
            continue
        sides = [max(b[2] - b[0], b[3] - b[1]) for b in boxes]
        faces = _detect_at_face_scale(frame, detector, float(np.median(sides)) if sides else None)
        if faces:
            boxes.append(max(faces, key=lambda f: f.area).box)
    if shape is None or not boxes:
        raise NoFaceError("no face found in the driving video")
    b = np.array(boxes)
    lo = np.percentile(b[:, :2], 5, axis=0)
    hi = np.percentile(b[:, 2:], 95, axis=0)
    face = float(np.median(np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])))
    side = max(scale * face, 1.1 * float(max(hi - lo)))
    cx, cy = (lo + hi) / 2.0
    w = fit_window(Window(float(cx), float(cy + shift_y * face), side), shape[1], shape[0], border)
    return window_transform(w, size, (shape[1], shape[0]))
