"""Dataset mode: every video under a folder -> OUT/train|test/<clip>/00000.png (the layout ``scorr train`` reads).

Each clip folder also gets ``landmarks.npy``: the 68 iBUG points of every crop frame, found by the same
detector on the crops themselves (training's landmark guidance reads them; see faces/landmarks.py).

Split is by source video (a hash of its file name), so no identity's footage leaks between train
and test across runs or machines. With ``PhotoMotionConfig.frames`` > 0 every photo under the folder also
becomes a training clip (its face crop moving: faces/photo_clips.py), always in train/; photos matching the
held-out globs are left out. Resumable: a clip folder appears only complete (temp + rename),
and a per-video record in OUT/_manifests lets a rerun skip finished videos without decoding them.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from scorr_cli.errors import InputError, NoFaceError
from scorr_cli.faces.config import CropConfig, PhotoMotionConfig
from scorr_cli.faces.detectors import DlibDetector, FaceDetector
from scorr_cli.faces.landmarks import annotate_clip_folder
from scorr_cli.faces.video import analyse_video, render_clips

MANIFEST_DIR = "_manifests"


def split_for(name: str, test_fraction: float, test_patterns: Sequence[str] = ()) -> str:
    """'test' for names matching ``test_patterns`` (globs: hold out whole identities), else for a stable
    ``test_fraction`` of file names (sha1, not Python's salted hash), else 'train'."""
    if any(fnmatch.fnmatch(name, p) for p in test_patterns):
        return "test"
    h = int(hashlib.sha1(name.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if h < test_fraction else "train"


def _files_under(root: Path, extensions: frozenset[str]) -> list[Path]:
    """Files under ``root`` with one of ``extensions`` (GIFs left out: a GIF may be either), hidden ones
    (and those in hidden folders) skipped, sorted."""
    exts = {e.lower() for e in extensions} - {".gif"}
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in exts
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def list_videos(root: Path) -> list[Path]:
    from scorr_cli.media import VIDEO_EXTENSIONS

    return _files_under(root, VIDEO_EXTENSIONS)


def list_photos(root: Path) -> list[Path]:
    from scorr_cli.media import IMAGE_EXTENSIONS

    return _files_under(root, IMAGE_EXTENSIONS)


@dataclass
class VideoReport:
    source: Path
    split: str
    status: str  # 'done' | 'skipped' | 'no face' | 'held out' (a photo) | 'error: ...'
    clips: int = 0
    frames: int = 0
    written: int = 0


@dataclass
class DatasetReport:
    out: Path
    videos: list[VideoReport] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        t = {"train": 0, "test": 0}
        for v in self.videos:
            t[v.split] += v.clips
        return t


def landmark_detector(detector: FaceDetector) -> FaceDetector:
    """The detector that marks the crops: dlib without upsampling (a crop's face is far above HOG's
    80-pixel minimum; 2.5x faster, points within 0.4 px on average), any other backend as given."""
    return DlibDetector(upsample=0, max_side=None) if isinstance(detector, DlibDetector) else detector


def build_dataset(src_dir: str | os.PathLike, out_dir: str | os.PathLike, detector: FaceDetector, cfg: CropConfig,
                  test_fraction: float = 0.1, force: bool = False,
                  on_file: Optional[Callable[[Path, int, int], None]] = None,
                  test_patterns: Sequence[str] = (), photos: Optional[PhotoMotionConfig] = None) -> DatasetReport:
    """Crop every video under ``src_dir`` into PNG clip folders (and, with ``photos.frames`` > 0, make every
    photo a moving clip); files without faces are reported, not fatal.

    ``force`` redoes finished clips. ``on_file(path, index, total)`` is called before each file.
    """
    root = Path(src_dir)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder of videos")
    videos = list_videos(root)
    with_photos = photos is not None and photos.frames > 0
    stills = list_photos(root) if with_photos else []
    if not videos and not stills:
        raise InputError(f"{root}: no video files found" + (" (nor photos)" if with_photos else ""))
    out = Path(out_dir)
    (out / MANIFEST_DIR).mkdir(parents=True, exist_ok=True)
    marker = landmark_detector(detector)
    report = DatasetReport(out)
    total = len(videos) + len(stills)
    for k, video in enumerate(videos):
        if on_file:
            on_file(video, k, total)
        rel = video.relative_to(root)
        key = "__".join(rel.with_suffix("").parts)
        split = split_for(video.name, test_fraction, test_patterns)
        record = out / MANIFEST_DIR / f"{key}.json"
        if record.is_file() and not force:
            done = json.loads(record.read_text())
            folders = [out / c["split"] / c["name"] for c in done.get("clips", [])]
            if all(f.is_dir() for f in folders):
                for f in folders:  # datasets built before landmarks were stored get them now
                    annotate_clip_folder(f, marker)
                report.videos.append(VideoReport(video, split, "skipped", len(folders),
                                                 sum(c["n_frames"] for c in done["clips"])))
                continue
        try:
            analysis = analyse_video(video, detector, cfg)
        except NoFaceError:
            report.videos.append(VideoReport(video, split, "no face"))
            continue
        except InputError as e:
            report.videos.append(VideoReport(video, split, f"error: {e}"))
            continue
        names = {c.track_id: f"{key}_t{c.track_id:02d}_{c.start:05d}-{c.end:05d}" for c in analysis.clips}
        targets = {tid: out / split / n for tid, n in names.items()
                   if force or not (out / split / n).is_dir()}
        render_clips(analysis, targets, with_audio=False)
        for tid, name in names.items():  # fresh crops get fresh points; kept folders keep theirs
            annotate_clip_folder(out / split / name, marker, force=tid in targets)
        from scorr_cli.fsutil import atomic_write_text

        rec = {"source": str(video), "split": split, "fps": str(analysis.fps_exact), "cuts": analysis.cuts,
               "clips": [{**c.to_json(video, analysis.fps), "name": names[c.track_id], "split": split,
                          "output": str(out / split / names[c.track_id])} for c in analysis.clips]}
        atomic_write_text(record, json.dumps(rec, indent=1))
        report.videos.append(VideoReport(video, split, "done", len(analysis.clips),
                                         sum(c.n_frames for c in analysis.clips), len(targets)))
    for k, photo in enumerate(stills):
        if on_file:
            on_file(photo, len(videos) + k, total)
        report.videos.append(_photo_clip(root, photo, out, detector, marker, cfg, photos, force, test_patterns))
    return report


def _photo_clip(root: Path, photo: Path, out: Path, detector: FaceDetector, marker: FaceDetector, cfg: CropConfig,
                motion: PhotoMotionConfig, force: bool, test_patterns: Sequence[str]) -> VideoReport:
    """One photo -> out/train/<key>_photo (see faces/photo_clips.py), with its manifest record; a record of
    the same motion settings and its folder in place mean done."""
    from dataclasses import asdict

    from scorr_cli.faces.photo_clips import photo_clip, write_clip_folder
    from scorr_cli.fsutil import atomic_write_text
    from scorr_cli.media import read_image

    if split_for(photo.name, 0.0, test_patterns) == "test":  # the videos' held-out rule; no random share
        return VideoReport(photo, "train", "held out")
    key = "__".join(photo.relative_to(root).with_suffix("").parts)
    name, settings = f"{key}_photo", {**asdict(motion), "size": cfg.size, "scale": cfg.scale, "shift_y": cfg.shift_y}
    folder, record = out / "train" / name, out / MANIFEST_DIR / f"{key}.photo.json"
    if record.is_file() and folder.is_dir() and not force:
        done = json.loads(record.read_text())
        if done.get("photo_motion") == settings:
            return VideoReport(photo, "train", "skipped", 1, motion.frames)
    seed = int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:8], 16)  # a stable path per photo
    try:
        frames, points = photo_clip(read_image(photo), detector, marker, cfg, motion, seed)
    except NoFaceError:
        return VideoReport(photo, "train", "no face")
    except InputError as e:
        return VideoReport(photo, "train", f"error: {e}")
    write_clip_folder(folder, frames, points)
    atomic_write_text(record, json.dumps({"source": str(photo), "split": "train", "photo_motion": settings,
                                          "clips": [{"name": name, "n_frames": len(frames), "split": "train",
                                                     "output": str(folder)}]}, indent=1))
    return VideoReport(photo, "train", "done", 1, len(frames), 1)
