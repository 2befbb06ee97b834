"""Video cropping in two passes: analyse small frames (cuts, detection, tracks), then cut full-size clips.

Pass 1 decodes at detection size only, so a 1080x1920 video costs little memory and time; pass 2
decodes once at full size and feeds every clip that is open at that frame.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from scorr_cli.errors import NoFaceError
from scorr_cli.faces.config import CropConfig
from scorr_cli.faces.detectors import FaceDetector
from scorr_cli.faces.geometry import CropTransform, Window, fit_window, warp_crop, window_transform
from scorr_cli.faces.smoothing import max_jitter, smooth_windows
from scorr_cli.faces.tracking import CutDetector, Tracker

Progress = Callable[[int, int], None]
"""Called as progress(done, total) in frames; the CLI drives a rich bar with it."""


@dataclass
class Clip:
    """One face track turned into a crop clip: frames [start, end] inclusive of the source video."""

    track_id: int
    start: int
    end: int
    boxes: np.ndarray  # (n, 4) face boxes in source pixels, per frame
    windows: list[Window]
    transforms: list[CropTransform] = field(default_factory=list)
    output: Optional[Path] = None

    @property
    def n_frames(self) -> int:
        return self.end - self.start + 1

    def to_json(self, source: Path, fps: float) -> dict:
        return {
            "source": str(source), "track_id": self.track_id, "start_frame": self.start, "end_frame": self.end,
            "n_frames": self.n_frames, "start_time": round(self.start / fps, 4),
            "end_time": round((self.end + 1) / fps, 4), "output": str(self.output) if self.output else None,
            "boxes": np.round(self.boxes, 2).tolist(),
            "windows": [[round(w.cx, 2), round(w.cy, 2), round(w.side, 2), round(w.angle, 5)] for w in self.windows],
            "max_jitter": round(max_jitter(self.windows), 5),
        }


@dataclass
class VideoAnalysis:
    source: Path
    width: int
    height: int
    fps: float
    fps_exact: object
    n_frames: int
    has_audio: bool
    cuts: list[int]
    clips: list[Clip]
    n_tracks: int  # before the --min-frames filter

    def manifest(self, detector_name: str = "?") -> dict:
        return {"source": str(self.source), "detector": detector_name, "width": self.width, "height": self.height,
                "fps": str(self.fps_exact), "n_frames": self.n_frames, "cuts": self.cuts,
                "tracks_found": self.n_tracks, "clips": [c.to_json(self.source, self.fps) for c in self.clips]}


def _analysis_size(w: int, h: int, max_side: int) -> tuple[tuple[int, int], float]:
    f = min(1.0, max_side / max(w, h))
    sw, sh = max(2, int(round(w * f / 2)) * 2), max(2, int(round(h * f / 2)) * 2)
    return (sw, sh), w / sw


def analyse_video(path: str | os.PathLike, detector: FaceDetector, cfg: CropConfig,
                  progress: Optional[Progress] = None) -> VideoAnalysis:
    """Pass 1: scene cuts on every frame, detection on every ``cfg.every``-th frame and at each cut,
    IoU tracks, per-track smoothed windows. Raises NoFaceError when no track survives."""
    from scorr_cli.media import iter_video_frames, probe_video

    info = probe_video(path)
    info.require_intact(hint="crop reads whole videos only: re-encode its readable part with ffmpeg first")
    size, back = _analysis_size(info.width, info.height, cfg.detect_max_side)
    cuts_det = CutDetector(cfg.cut_threshold)
    tracker = Tracker(cfg.iou_link, cfg.max_lost, cfg.every)
    cuts: list[int] = []
    since_detect = cfg.every
    n = 0
    for i, frame in enumerate(iter_video_frames(path, size=size)):
        n = i + 1
        if i > 0 and cuts_det.is_cut(frame):
            cuts.append(i)
            tracker.cut(i)
            since_detect = cfg.every  # detect on the first frame of every shot
        elif i == 0:
            cuts_det.distance(frame)
        if since_detect >= cfg.every:
            faces = [f.scaled(back) for f in detector.detect(frame) if f.score >= cfg.min_score]
            tracker.update(i, faces)
            since_detect = 0
        since_detect += 1
        if progress:
            progress(n, info.n_frames)
    tracks = tracker.finish(n)
    fps = float(info.fps)
    clips = []
    for t in tracks:
        if t.n_frames < cfg.min_frames:
            continue
        boxes = t.boxes()
        angles = t.angles() if cfg.align else None
        windows = smooth_windows(boxes, fps, cfg, angles)
        if not cfg.align:
            windows = [fit_window(w, info.width, info.height, cfg.border) for w in windows]
        clip = Clip(t.track_id, t.start, t.end, boxes, windows)
        clip.transforms = [window_transform(w, cfg.size, (info.width, info.height)) for w in windows]
        clips.append(clip)
    for k, c in enumerate(clips):
        c.track_id = k  # dense ids in start order: what users see in file names
    if not clips:
        raise NoFaceError(f"no face found in {path}" if not tracks else
                          f"no face track in {path} lasts --min-frames={cfg.min_frames} frames")
    return VideoAnalysis(Path(path), info.width, info.height, fps, info.fps, n, info.has_audio, cuts, clips,
                         len(tracks))


def clip_name(source: Path, clip: Clip) -> str:
    return f"{source.stem}_t{clip.track_id:02d}_{clip.start:05d}-{clip.end:05d}"


def render_clips(analysis: VideoAnalysis, targets: dict[int, Path], *, with_audio: bool = True,
                 progress: Optional[Progress] = None) -> None:
    """Pass 2: decode full frames once and write every clip in ``targets`` (track_id -> path).

    A ``.mp4`` target gets H.264 + the source audio for the same time range; an extension-less target
    becomes a folder of lossless PNGs. Each output appears atomically when its clip ends.
    """
    from scorr_cli.media import iter_video_frames, open_writer

    todo = [c for c in analysis.clips if c.track_id in targets]
    if not todo:
        return
    first, last = min(c.start for c in todo), max(c.end for c in todo)
    open_: dict[int, object] = {}
    fps = analysis.fps_exact
    with contextlib.ExitStack() as stack:
        def _abort_all() -> None:
            for w in open_.values():
                w.abort()
        stack.callback(_abort_all)
        for i, frame in enumerate(iter_video_frames(analysis.source, start=first, stop=last + 1), start=first):
            for c in todo:
                if c.start <= i <= c.end:
                    if c.track_id not in open_:
                        target = targets[c.track_id]
                        opts = {}
                        if target.suffix and with_audio and analysis.has_audio:
                            opts = {"audio_from": analysis.source,
                                    "audio_range": (c.start / analysis.fps, (c.end + 1) / analysis.fps)}
                        open_[c.track_id] = open_writer(target, fps, **opts)
                    open_[c.track_id].write(warp_crop(frame, c.transforms[i - c.start]))
                    if i == c.end:
                        open_.pop(c.track_id).close()
                        c.output = targets[c.track_id]
            if progress:
                progress(i - first + 1, last - first + 1)


def crop_video(path: str | os.PathLike, out_dir: str | os.PathLike, detector: FaceDetector, cfg: CropConfig,
               force: bool = False, progress: Optional[Progress] = None,
               analysis_progress: Optional[Progress] = None) -> tuple[VideoAnalysis, Path]:
    """One MP4 per face track (with the matching audio) + ``<stem>_crops.json`` manifest in ``out_dir``."""
    from scorr_cli.fsutil import atomic_write_text, check_output

    src = Path(path)
    out = Path(out_dir)
    manifest = check_output(out / f"{src.stem}_crops.json", force)
    analysis = analyse_video(src, detector, cfg, analysis_progress)
    targets = {c.track_id: out / f"{clip_name(src, c)}.mp4" for c in analysis.clips}
    for p in targets.values():
        check_output(p, force)
    render_clips(analysis, targets, progress=progress)
    atomic_write_text(manifest, json.dumps(analysis.manifest(getattr(detector, "name", "?")), indent=1))
    return analysis, manifest
