"""Dataset mode: every video under a folder -> OUT/train|test/<clip>/00000.png (the layout ``scorr train`` reads).

Each clip folder also gets ``landmarks.npy``: the 68 iBUG points of every crop frame, found by the same
detector on the crops themselves (training's landmark guidance reads them; see faces/landmarks.py).

Split is by source video (a hash of its file name), so no identity's footage leaks between train
and test across runs or machines. Resumable: a clip folder appears only complete (temp + rename),
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
from scorr_cli.faces.config import CropConfig
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


def list_videos(root: Path) -> list[Path]:
    from scorr_cli.media import VIDEO_EXTENSIONS

    exts = {e.lower() for e in VIDEO_EXTENSIONS} - {".gif"}
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in exts
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


@dataclass
class VideoReport:
    source: Path
    split: str
    status: str  # 'done' | 'skipped' | 'no face' | 'error: ...'
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
                  test_patterns: Sequence[str] = ()) -> DatasetReport:
    """Crop every video under ``src_dir`` into PNG clip folders; videos without faces are reported, not fatal.

    ``force`` redoes finished clips. ``on_file(path, index, total)`` is called before each video.
    """
    root = Path(src_dir)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder of videos")
    videos = list_videos(root)
    if not videos:
        raise InputError(f"{root}: no video files found")
    out = Path(out_dir)
    (out / MANIFEST_DIR).mkdir(parents=True, exist_ok=True)
    marker = landmark_detector(detector)
    report = DatasetReport(out)
    for k, video in enumerate(videos):
        if on_file:
            on_file(video, k, len(videos))
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
    return report
