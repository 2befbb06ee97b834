"""Training/evaluation data: clips under ``<root>/{train,test}/``, each a folder of frames or a video.

A training item is two frames of one clip (source, driving), drawn uniformly with replacement and in
time order, then augmented with one shared draw (docs/ARCHITECTURE.md §3). Unlike the authors' loader,
frames are listed in natural order, videos are decoded on demand (only the two frames an item needs),
frames of another size are resized to ``frame_size``, and every random choice comes from a generator
seeded by (seed, epoch, index), so a resumed run sees exactly the samples it would have seen.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from scorr_cli.errors import InputError
from scorr_cli.faces.landmarks import flip_normalised, load_clip_landmarks, mouth_opening
from scorr_cli.media.frames import FRAME_IMAGE_EXTS, frame_files, natural_key
from scorr_cli.train import augment as aug

IMAGE_EXTS = FRAME_IMAGE_EXTS
VIDEO_EXTS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".gif", ".m4v"})
_SEEK_GAP = 32  # decode forward instead of seeking when the next wanted frame is this close


@dataclass
class DataConfig:
    """How items are drawn. ``split_len``: identity = first ``split_len`` characters of the clip name
    (CelebV-HQ: 11, the YouTube id); otherwise the name up to the first ``#`` (VoxCeleb)."""

    frame_size: int | None = None  # None: keep the stored size (the trainer passes the model's image_size)
    id_sampling: bool = False
    split_len: int | None = None
    num_repeats: int = 1
    # Mouth-contrast pairs (not in the paper): draw this many (source, driving) frame pairs per item and
    # keep the one whose mouth openings (stored landmarks) differ most. Random pairs of a talking clip
    # mostly show the same mouth, so the model is rarely asked to open or close one; 1 = the paper's draw.
    mouth_pairs: int = 1
    # Large-motion pairs (not in the paper): draw this many pairs and keep the one whose landmarks move
    # most between its two frames. Most random pairs of a talking clip barely move the head, so the
    # generator rarely learns to fill what a large head or camera motion uncovers; 1 = the paper's draw.
    motion_pairs: int = 1
    seed: int = 0
    augment: aug.AugmentConfig = field(default_factory=aug.AugmentConfig)

    def __post_init__(self) -> None:
        if isinstance(self.augment, dict):
            self.augment = aug.AugmentConfig(**self.augment)
        if self.frame_size is not None and self.frame_size < 8:
            raise ValueError(f"frame_size must be at least 8, got {self.frame_size}")
        if self.num_repeats < 1:
            raise ValueError(f"num_repeats must be at least 1, got {self.num_repeats}")
        if self.mouth_pairs < 1:
            raise ValueError(f"mouth_pairs must be at least 1, got {self.mouth_pairs}")
        if self.motion_pairs < 1:
            raise ValueError(f"motion_pairs must be at least 1, got {self.motion_pairs}")
        if self.mouth_pairs > 1 and self.motion_pairs > 1:
            raise ValueError("mouth_pairs and motion_pairs choose the pair in different ways: set only one above 1")


# The authors' dataset settings (config/vox1.yaml, config/celebvhq.yaml) as overrides of DataConfig.
DATA_PRESETS: dict[str, dict[str, object]] = {
    "vox": {"id_sampling": True, "num_repeats": 150},
    "celebvhq": {"id_sampling": True, "split_len": 11, "num_repeats": 5},
}


def data_preset(name: str, **changes: object) -> DataConfig:
    if name not in DATA_PRESETS:
        raise ValueError(f"unknown data preset {name!r}; expected one of {', '.join(DATA_PRESETS)}")
    return DataConfig(**{**DATA_PRESETS[name], **changes})  # type: ignore[arg-type]


def _read_image(path: Path) -> np.ndarray:
    """H×W×3 uint8 RGB; greyscale expanded, alpha dropped."""
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise InputError(f"cannot read frame {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _open_video(path: Path) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputError(f"cannot open video {path}")
    return cap


def _decode_count(path: Path) -> int:
    """Exact frame count by decoding (for containers whose header count is missing or wrong)."""
    cap = _open_video(path)
    n = 0
    try:
        while cap.grab():
            n += 1
    finally:
        cap.release()
    return n


class Clip:
    """One clip: a folder of frames (natural order) or a video file; frame count cached."""

    def __init__(self, path: Path):
        self.path = path
        self.name = path.name
        self.is_video = path.is_file()
        self.frame_paths: tuple[Path, ...] = ()
        self._count: int | None = None
        self._landmarks: np.ndarray | None | bool = False  # False: not looked up yet
        if not self.is_video:
            self.frame_paths = tuple(frame_files(path))
            self._count = len(self.frame_paths)

    @property
    def num_frames(self) -> int:
        if self._count is None:
            # ffmpeg's probe first (its messages captured): OpenCV's decoder would print libav's own lines
            # ("moov atom not found") for a file that is not a video, beside our one-line error.
            from scorr_cli.media import probe_video

            info = probe_video(self.path)
            info.require_intact(hint="re-encode its readable part or remove it from the dataset")
            cap = _open_video(self.path)
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            cap.release()
            self._count = n if n > 0 else _decode_count(self.path)
        return self._count

    @property
    def landmarks(self) -> np.ndarray | None:
        """(frames, 68, 2) crop-pixel landmarks stored by ``scorr crop --dataset``, or None."""
        if self._landmarks is False:
            self._landmarks = None if self.is_video else load_clip_landmarks(self.path, self.num_frames)
        return self._landmarks  # type: ignore[return-value]

    def check(self) -> None:
        if self.num_frames < 2:
            raise InputError(f"clip {self.name!r} ({self.path}) has {self.num_frames} frame(s); at least 2 are needed")

    def read(self, indices: Sequence[int]) -> list[np.ndarray]:
        """The frames at ``indices`` (any order) as H×W×3 uint8 RGB."""
        if not self.is_video:
            return [_read_image(self.frame_paths[i]) for i in indices]
        wanted = sorted(set(int(i) for i in indices))
        got = self._read_video(wanted)
        if got is None:  # header count overestimated: count exactly, clamp, retry
            self._count = _decode_count(self.path)
            self.check()
            indices = [min(int(i), self._count - 1) for i in indices]
            wanted = sorted(set(indices))
            got = self._read_video(wanted)
            if got is None:
                raise InputError(f"cannot decode frames {wanted} of {self.path}")
        return [got[int(i)] for i in indices]

    def _read_video(self, wanted: list[int]) -> dict[int, np.ndarray] | None:
        cap = _open_video(self.path)
        out: dict[int, np.ndarray] = {}
        try:
            pos = 0
            for idx in wanted:
                if idx < pos or idx - pos > _SEEK_GAP:
                    cap.set(cv2.CAP_PROP_POS_FRAMES, idx)
                    pos = idx
                while pos < idx:
                    if not cap.grab():
                        return None
                    pos += 1
                ok, frame = cap.read()
                if not ok or frame is None:
                    return None
                pos += 1
                out[idx] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()
        return out

    def iter_frames(self) -> Iterator[np.ndarray]:
        """Every frame in order, streamed (uint8 RGB)."""
        if not self.is_video:
            for p in self.frame_paths:
                yield _read_image(p)
            return
        self.check()  # probed once (a clean one-line error for a file that is not a video)
        cap = _open_video(self.path)
        try:
            while True:
                ok, frame = cap.read()
                if not ok or frame is None:
                    return
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()


def _split_dir(root: str | Path, split: str) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise InputError(f"dataset root {root} does not exist or is not a folder")
    sub = root / split
    if not sub.is_dir():
        raise InputError(f"dataset root {root} has no {split}/ folder (expected {sub}/<clip>: frame folders or videos)")
    return sub


def scan_clips(root: str | Path, split: str = "train") -> list[Clip]:
    """Clips of ``<root>/<split>`` sorted by name: sub-folders and files with a video extension."""
    sub = _split_dir(root, split)
    clips = [Clip(p) for p in sorted(sub.iterdir(), key=lambda p: natural_key(p.name))
             if not p.name.startswith(".") and (p.is_dir() or p.suffix.lower() in VIDEO_EXTS)]
    if not clips:
        raise InputError(f"{sub} holds no clips (folders of PNG/JPEG frames or video files "
                         f"{', '.join(sorted(VIDEO_EXTS))})")
    return clips


def identity_of(name: str, split_len: int | None) -> str:
    """VoxCeleb ``id10001#yt#start#end.mp4`` -> ``id10001``; with ``split_len`` the name's prefix."""
    return name[:split_len] if split_len else name.split("#", 1)[0]


def to_tensor(frame: np.ndarray) -> torch.Tensor:
    """H×W×3 float32 -> 3×H×W tensor."""
    return torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))


def resize_frame(frame: np.ndarray, size: int | None) -> np.ndarray:
    """uint8 RGB -> float32 [0, 1] at ``size``² (area filter when shrinking). Non-square frames are
    squashed, as the model expects squares; ``scorr crop --dataset`` writes square crops anyway."""
    h, w = frame.shape[:2]
    if size is not None and (h, w) != (size, size):
        interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
        frame = cv2.resize(frame, (size, size), interpolation=interp)
    return frame.astype(np.float32) / 255.0


class FramesDataset(Dataset):
    """Pairs of frames from the ``train`` split, ``num_repeats`` × (identities or clips) items.

    Items: ``source``, ``driving`` (3×S×S float in [0, 1]), ``name`` (clip), ``frame_indices``
    (source, driving after a time flip), ``landmarks`` (2×68×2 in [-1, 1], NaN where the clip has none). Randomness is a pure function of (seed, epoch, index): call
    :meth:`set_epoch` before each epoch (fresh, non-persistent loader workers pick it up), or index with
    ``(epoch, index)`` tuples from a custom sampler.
    """

    def __init__(self, root: str | Path, config: DataConfig | None = None, split: str = "train",
                 validate: bool = True):
        self.config = config if config is not None else DataConfig()
        self.root = Path(root).expanduser()
        self.clips = scan_clips(self.root, split)
        if validate:
            # Header frame counts for videos (threads: OpenCV releases the GIL); a bad clip fails now,
            # in the main process, with its name — not later inside a loader worker.
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda c: c.num_frames, [c for c in self.clips if c.is_video]))
            for clip in self.clips:
                clip.check()
        if self.config.id_sampling:
            groups: dict[str, list[Clip]] = {}
            for clip in self.clips:
                groups.setdefault(identity_of(clip.name, self.config.split_len), []).append(clip)
            self.identities = sorted(groups)
            self.items: list[list[Clip]] = [groups[i] for i in self.identities]
        else:
            self.identities = [c.name for c in self.clips]
            self.items = [[c] for c in self.clips]
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items) * self.config.num_repeats

    def rng(self, epoch: int, index: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.config.seed, epoch, index]))

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, object]:
        epoch, index = index if isinstance(index, tuple) else (self.epoch, index)
        if not 0 <= index < len(self):
            raise IndexError(index)
        rng = self.rng(epoch, index)
        group = self.items[index % len(self.items)]
        clip = group[int(rng.integers(len(group)))] if len(group) > 1 else group[0]
        clip.check()
        idx = sorted(int(i) for i in rng.choice(clip.num_frames, size=2, replace=True))
        if self.config.mouth_pairs > 1 and clip.landmarks is not None:
            idx = mouth_contrast_pair(clip.landmarks, idx, self.config.mouth_pairs, rng)
        elif self.config.motion_pairs > 1 and clip.landmarks is not None:
            idx = motion_contrast_pair(clip.landmarks, idx, self.config.motion_pairs, rng)
        raw = clip.read(idx)
        frames = [resize_frame(f, self.config.frame_size) for f in raw]
        params = aug.sample_params(self.config.augment, rng)
        frames = aug.apply(frames, params)
        if params.time_flip:
            idx = idx[::-1]
        points = item_landmarks(clip, idx, raw[0].shape[:2], params.horizontal_flip)
        return {"source": to_tensor(frames[0]), "driving": to_tensor(frames[1]), "name": clip.name,
                "frame_indices": torch.tensor(idx), "landmarks": torch.from_numpy(points)}


def _most_contrasting(pairs: list[list[int]], contrast: list[float]) -> list[int]:
    """The pair of largest contrast; a NaN (a frame without landmarks) never wins over a pair that has them."""
    contrast = [-1.0 if np.isnan(c) else c for c in contrast]
    return pairs[int(np.argmax(contrast))]


def _draw_pairs(n_frames: int, first: list[int], count: int, rng: np.random.Generator) -> list[list[int]]:
    return [first] + [sorted(int(i) for i in rng.choice(n_frames, size=2, replace=True)) for _ in range(count - 1)]


def mouth_contrast_pair(landmarks: np.ndarray, first: list[int], count: int, rng: np.random.Generator) -> list[int]:
    """Of ``first`` and ``count - 1`` more random frame pairs, the one whose mouth openings differ most
    (frames without landmarks never win over a pair that has them)."""
    pairs = _draw_pairs(len(landmarks), first, count, rng)
    opening = mouth_opening(landmarks)
    return _most_contrasting(pairs, [abs(float(opening[a] - opening[b])) for a, b in pairs])


def motion_contrast_pair(landmarks: np.ndarray, first: list[int], count: int, rng: np.random.Generator) -> list[int]:
    """Of ``first`` and ``count - 1`` more random frame pairs, the one whose 68 landmarks move most
    between its two frames (mean distance: head motion, camera motion and expression together; frames
    without landmarks never win over a pair that has them)."""
    pairs = _draw_pairs(len(landmarks), first, count, rng)
    return _most_contrasting(pairs, [float(np.linalg.norm(landmarks[a] - landmarks[b], axis=-1).mean())
                                     for a, b in pairs])


def item_landmarks(clip: Clip, indices: Sequence[int], frame_hw: tuple[int, int], hflip: bool) -> np.ndarray:
    """(2, 68, 2) landmarks of the item's source and driving frames in [-1, 1] (after the item's flip),
    NaN when the clip has none: every item has the key, so batches of mixed clips collate."""
    stored = clip.landmarks
    if stored is None:
        return np.full((2, 68, 2), np.nan, dtype=np.float32)
    h, w = frame_hw
    points = stored[list(indices)] * np.array([2.0 / (w - 1), 2.0 / (h - 1)], dtype=np.float32) - 1.0
    return (flip_normalised(points) if hflip else points).astype(np.float32)


@dataclass
class EvalClip:
    """A whole evaluation clip; :meth:`frames` streams it (nothing held in memory)."""

    clip: Clip
    frame_size: int | None

    @property
    def name(self) -> str:
        return self.clip.name

    @property
    def num_frames(self) -> int:
        return self.clip.num_frames

    def frames(self) -> Iterator[torch.Tensor]:
        for f in self.clip.iter_frames():
            yield to_tensor(resize_frame(f, self.frame_size))


def iter_test_clips(root: str | Path, frame_size: int | None = None, split: str = "test") -> Iterator[EvalClip]:
    """Every clip of ``<root>/<split>`` in name order; ``frame_size`` None keeps the stored size."""
    for clip in scan_clips(root, split):
        yield EvalClip(clip, frame_size)


__all__ = ["DataConfig", "DATA_PRESETS", "FramesDataset", "Clip", "EvalClip", "data_preset", "scan_clips", "iter_test_clips",
           "identity_of", "motion_contrast_pair", "mouth_contrast_pair", "resize_frame", "to_tensor", "IMAGE_EXTS",
           "VIDEO_EXTS"]
