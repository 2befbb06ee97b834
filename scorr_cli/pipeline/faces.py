"""The door from ``animate`` and ``batch`` to the face package: the source crop, one stable driving
window, landmarks; the centre square when cropping is off (``--no-crop``).

Every crop is a :class:`~scorr_cli.faces.geometry.CropTransform` (source -> crop pixels, crop size,
source size), so ``warp_crop`` cuts it and ``paste_back`` undoes it whether a face or the centre chose it.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Optional

import numpy as np

from scorr_cli.errors import NoFaceError
from scorr_cli.faces import CropTransform, crop_source_image, driving_crop_window, get_detector

LANDMARK_SIZE = 256
"""Crops are detected at this size for landmarks, whatever the model's resolution (64² is too small)."""
MAX_WINDOW_SAMPLES = 240
"""The driving window looks at no more than this many frames: long clips must not cost minutes."""


def centre_transform(width: int, height: int, size: int) -> CropTransform:
    """The largest centred square, scaled to ``size``: never squashes a non-square frame."""
    side = float(min(width, height))
    k = size / side
    m = np.array([[k, 0.0, size / 2.0 - k * width / 2.0], [0.0, k, size / 2.0 - k * height / 2.0]])
    return CropTransform(m, int(size), (int(width), int(height)))


def rescaled(t: CropTransform, size: int) -> CropTransform:
    """The same window rendered at another crop size."""
    return CropTransform(np.asarray(t.matrix) * (size / t.size), int(size), t.source_size)


class FaceCropper:
    """Source crops, the driving window and landmarks; centre crops when cropping is off.

    ``name`` says what actually ran ('dlib', 'face-alignment', 'centre') so results can report it.
    """

    def __init__(self, crop: bool = True, detector: str = "auto", device: str = "cpu"):
        self.crop = crop
        self._detector_name = detector
        self._device = device
        self._detector = None
        self.name = detector if crop else "centre"

    @property
    def detector(self):
        """Built on first use. Boxes only (dlib's landmark model is read when :meth:`landmarks` first needs
        it), and dlib looks at the frame as it is before upsampling it (faces in portraits and talking-head
        clips are large: ~4x faster, the same faces found)."""
        if self._detector is None:
            self._detector = get_detector(self._detector_name, device=self._device, upsample=0, fallback_upsample=1,
                                          landmarks=False)
            if self.crop:  # without cropping the detector only finds landmarks; the crop stays 'centre'
                self.name = getattr(self._detector, "name", self._detector_name)
        return self._detector

    def source(self, image: np.ndarray, size: int, name: str) -> tuple[np.ndarray, CropTransform]:
        """Aligned crop of the largest face (or the centre square) and its transform."""
        if not self.crop:
            from scorr_cli.faces import warp_crop

            t = centre_transform(image.shape[1], image.shape[0], size)
            return warp_crop(image, t), t
        try:
            return crop_source_image(image, self.detector, size=size)
        except NoFaceError:
            raise NoFaceError(f"{name}: no face found in the source image (try a larger, frontal face, "
                              "or --no-crop)") from None

    def image_window(self, image: np.ndarray, size: int, name: str) -> CropTransform:
        """Crop window for a single driving image (same framing as a source)."""
        if not self.crop:
            return centre_transform(image.shape[1], image.shape[0], size)
        try:
            return crop_source_image(image, self.detector, size=size)[1]
        except NoFaceError:
            raise NoFaceError(f"{name}: no face found in the driving image (or use --no-crop)") from None

    def video_window(self, frames: Iterable[np.ndarray], n_frames: int, width: int, height: int, size: int,
                     name: str) -> CropTransform:
        """One fixed window that covers the driving face over the clip (stable: no per-frame jitter)."""
        if not self.crop:
            return centre_transform(width, height, size)
        every = max(5, -(-n_frames // MAX_WINDOW_SAMPLES))
        try:
            return driving_crop_window(frames, self.detector, size=size, every=every)
        except NoFaceError:
            raise NoFaceError(f"{name}: no face found in the driving video (looked at every {every}th of frames "
                              f"0-{n_frames - 1}; try --no-crop)") from None

    def landmarks(self, image: np.ndarray) -> Optional[np.ndarray]:
        """68 points of the largest face in ``image`` (a crop), or None."""
        faces = self.detector.detect(image)
        if not faces:
            return None
        face = max(faces, key=lambda f: f.area)
        if face.landmarks68 is None and hasattr(self.detector, "landmarks_for"):
            return self.detector.landmarks_for(image, face.box)
        return face.landmarks68


def reference_landmarks(driving_frames: Iterable[np.ndarray], n_frames: int,
                        landmarks_of: Callable[[np.ndarray], Optional[np.ndarray]]
                        ) -> Iterator[tuple[int, Optional[np.ndarray]]]:
    """(index, 68 points or None) of the candidate reference frames
    (:func:`~scorr_cli.faces.bestframe.reference_candidates`) among a clip's face crops given in order;
    the other frames are skipped and the iteration stops after the last candidate."""
    from scorr_cli.faces.bestframe import reference_candidates

    wanted = reference_candidates(n_frames)
    todo = set(wanted)
    for i, frame in enumerate(driving_frames):
        if i in todo:
            yield i, landmarks_of(frame)
        if not wanted or i >= wanted[-1]:
            return


def matched_reference(source_landmarks: Optional[np.ndarray],
                      candidates: Iterable[tuple[int, Optional[np.ndarray]]]) -> Optional[int]:
    """The relative-motion reference ``animate``, ``batch`` and ``evaluate --cross`` use: of the candidate
    frames (:func:`reference_landmarks`), the one whose mouth opening and head pose best match the
    source's (:class:`~scorr_cli.faces.bestframe.ReferenceSearch`). None when the source or no candidate
    has a usable face: the caller keeps the first frame."""
    from scorr_cli.faces.bestframe import ReferenceSearch

    try:
        search = ReferenceSearch(source_landmarks)
    except NoFaceError:
        return None
    for index, landmarks in candidates:
        search.add(index, landmarks)
    return search.best_index if search.best_index >= 0 else None


__all__ = ["LANDMARK_SIZE", "MAX_WINDOW_SAMPLES", "FaceCropper", "centre_transform", "matched_reference",
           "reference_landmarks", "rescaled"]
