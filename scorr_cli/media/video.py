"""Read videos: exact probing and streaming frame iteration through the bundled ffmpeg.

Probing stream-copies the packets to ffmpeg's ``framecrc`` muxer: no decoding, yet it yields the
exact frame count and timestamps (about 20 ms for a 20 s clip), from which the exact rational frame
rate follows. ffmpeg's printed ``fps``/``tbr`` are rounded (23.98) and ffprobe is not bundled.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from scorr_cli.errors import InputError
from scorr_cli.media._ffmpeg import run_ffmpeg, summarize_stderr
from scorr_cli.media.rates import snap_fps
from scorr_cli.media.sniff import require_video

PROBE_TIMEOUT_S = 120.0
DEFAULT_FPS = Fraction(25)
"""Only for single-frame files without any timing."""
RESIZE_FLAGS = "area"
"""ffmpeg scaler for ``size=``: area averaging, the right choice when shrinking frames for a model."""


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What a video holds. ``width``/``height`` are as displayed (after ``rotation``), like the frames."""

    path: Path
    width: int
    height: int
    fps: Fraction
    n_frames: int
    duration: float
    """Seconds of video, from first frame start to last frame end."""
    has_audio: bool
    audio_codec: str | None = None
    audio_duration: float | None = None
    rotation: int = 0
    """Display rotation in degrees (0, 90, 180, 270) stored in the file; frames come out upright."""
    video_codec: str | None = None
    start_time: float = 0.0
    """When the first frame is shown, in ffmpeg's timeline of the file (audio may start earlier)."""
    damage: str | None = None
    """Why the file is damaged (cut short, corrupt packets), or None. ``n_frames`` then counts the
    packets that could be read and ``fps`` is the stream's declared rate."""
    declared_frames: int | None = None
    """Frames the container says it holds (duration × declared rate), when it says."""

    def require_intact(self, accept_damaged: bool = False, hint: str | None = None) -> None:
        """A one-line InputError for a damaged file, naming where decoding stops, unless ``accept_damaged``.

        ``hint`` ends the message (default: the ``--accept-damaged`` option)."""
        if self.damage is None or accept_damaged:
            return
        of = f" of {self.declared_frames}" if self.declared_frames else ""
        hint = hint or f"--accept-damaged uses its {self.n_frames} readable frame(s)"
        raise InputError(f"{self.path}: damaged video: decoding fails at frame {self.n_frames}{of} ({self.damage}); "
                         f"{hint}")


_STREAM_RE = re.compile(r"^\s*Stream #0:\d+.*?: (Video|Audio): (\w+)", re.M)
_ROTATION_RE = re.compile(r"rotation of (-?\d+(?:\.\d+)?) degrees", re.I)
_DURATION_RE = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_DECLARED_FPS_RE = re.compile(r"^\s*Stream #0:\d+.*?: Video: .*?, (\d+(?:\.\d+)?) fps", re.M)
# ffmpeg's words for a file that ends early or holds broken packets (demuxer and decoder messages)
_DAMAGE_RE = re.compile(r"partial file|corrupt input packet|Packet corrupt|Invalid NAL unit|moov atom not found"
                        r"|error reading header|Truncat", re.I)


class _DropResizeNotice(logging.Filter):
    """imageio-ffmpeg warns whenever output size differs from the source: that is what ``size=`` asks for."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is different from the source frame size" not in record.getMessage()


logging.getLogger("imageio_ffmpeg").addFilter(_DropResizeNotice())


def _input_header(stderr: str) -> str:
    """The ``Input #0`` part of ffmpeg's log (output streams repeat the same lines)."""
    start = stderr.find("Input #0")
    end = stderr.find("Stream mapping:", start)
    return stderr[start:end] if start >= 0 and end >= 0 else stderr[start:] if start >= 0 else ""


@dataclasses.dataclass
class _Stream:
    time_base: Fraction = Fraction(1)
    media_type: str = ""
    dimensions: tuple[int, int] | None = None
    n_packets: int = 0
    first_pts: int | None = None
    end_pts: int | None = None  # max(pts + duration)

    def span(self, clamp_start: bool = False) -> Fraction:
        if self.first_pts is None or self.end_pts is None:
            return Fraction(0)
        start = max(self.first_pts, 0) if clamp_start else self.first_pts
        return max(Fraction(0), (self.end_pts - start) * self.time_base)


def _parse_framecrc(text: str) -> dict[int, _Stream]:
    streams: dict[int, _Stream] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            key, _, value = line[1:].partition(":")
            parts = key.split()
            if len(parts) != 2 or not parts[1].isdigit():
                continue
            s = streams.setdefault(int(parts[1]), _Stream())
            value = value.strip()
            if parts[0] == "tb":
                s.time_base = Fraction(value)
            elif parts[0] == "media_type":
                s.media_type = value
            elif parts[0] == "dimensions":
                w, _, h = value.partition("x")
                s.dimensions = (int(w), int(h))
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 5 or not fields[0].isdigit():
            continue
        s = streams.setdefault(int(fields[0]), _Stream())
        pts, dur = int(fields[2]), int(fields[3])
        s.n_packets += 1
        s.first_pts = pts if s.first_pts is None else min(s.first_pts, pts)
        end = pts + dur
        s.end_pts = end if s.end_pts is None else max(s.end_pts, end)
    return streams


@dataclasses.dataclass(frozen=True)
class _Scan:
    header: str
    video: _Stream | None
    audio: _Stream | None
    stderr: str = ""


def _scan(p: Path, name: str) -> _Scan:
    """Stream-copy the first video (not cover art) and first audio stream to ``framecrc``."""
    args = ["-i", str(p), "-map", "0:V:0?", "-map", "0:a:0?", "-c", "copy", "-f", "framecrc", "-"]
    try:
        res = run_ffmpeg(args, timeout=PROBE_TIMEOUT_S)
    except OSError as e:
        raise InputError(f"{name}: cannot run ffmpeg ({e})") from None
    header = _input_header(res.stderr)
    streams = _parse_framecrc(res.stdout) if res.returncode == 0 else {}
    if res.returncode != 0 and not header:
        raise InputError(f"{name}: not a readable media file ({summarize_stderr(res.stderr)})")
    by_type: dict[str, _Stream] = {}
    for s in streams.values():
        by_type.setdefault(s.media_type, s)
    return _Scan(header, by_type.get("video"), by_type.get("audio"), res.stderr)


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Probe ``path`` without decoding; raise InputError (one line) for anything that is not a usable video."""
    p = require_video(path)
    name = os.fspath(path)
    scan = _scan(p, name)
    header, video, audio = scan.header, scan.video, scan.audio
    if video is None:
        raise InputError(f"{name}: has no video stream" if "Stream #" in header else f"{name}: not a readable video")
    if video.n_packets == 0 or video.dimensions is None:
        raise InputError(f"{name}: contains no video frames")

    span = video.span()
    if span > 0:
        fps = snap_fps(Fraction(video.n_packets) / span)
        duration = float(span)
    else:  # a single frame or no timestamps: fall back on the container duration
        duration = _header_duration(header)
        fps = snap_fps(Fraction(video.n_packets) / Fraction(duration)) if duration > 0 else DEFAULT_FPS
    damage, declared_frames, declared_fps = _damage(scan.stderr, header, video.n_packets)
    if damage is not None and declared_fps is not None:
        fps = declared_fps  # packets over the span of a cut file say nothing reliable about the rate

    codecs = {kind: codec for kind, codec in _STREAM_RE.findall(header)}
    rotation = _rotation(header)
    w, h = video.dimensions
    if rotation in (90, 270):
        w, h = h, w
    has_audio = audio is not None and audio.n_packets > 0
    return VideoInfo(
        path=p,
        width=w,
        height=h,
        fps=fps,
        n_frames=video.n_packets,
        duration=duration,
        has_audio=has_audio,
        audio_codec=codecs.get("Audio") if has_audio else None,
        audio_duration=float(audio.span(clamp_start=True)) if has_audio else None,
        rotation=rotation,
        video_codec=codecs.get("Video"),
        start_time=float((video.first_pts or 0) * video.time_base),
        damage=damage,
        declared_frames=declared_frames,
    )


def _damage(stderr: str, header: str, n_packets: int) -> tuple[str | None, int | None, Fraction | None]:
    """(what is wrong or None, declared frame count, declared rate) from ffmpeg's stream-copy log.

    Damaged: ffmpeg reports a partial file or corrupt packets, or fewer than 90% of the frames the
    header declares (duration × rate) could be read."""
    m = _DECLARED_FPS_RE.search(header)
    declared_fps = snap_fps(Fraction(m.group(1))) if m else None
    duration = _header_duration(header)
    declared = round(duration * declared_fps) if (declared_fps and duration > 0) else None
    found = _DAMAGE_RE.search(stderr[len(header):] if stderr.startswith(header) else stderr)
    if found:
        return f"ffmpeg: {found.group(0).lower()}", declared, declared_fps
    if declared is not None and n_packets < 0.9 * declared - 1:
        return f"{n_packets} of {declared} declared frames present", declared, declared_fps
    return None, declared, declared_fps


def audio_sync_offset(path: str | os.PathLike) -> float | None:
    """Seconds into ``path``'s audio that line up with its first video frame; None if it has no audio.

    Clips often start their video later than their audio (edit lists: 0.84 s in one test clip);
    cutting audio for frames ``a..b`` must start at this offset plus ``a / fps``. 0 for audio-only files.
    """
    from scorr_cli.media.sniff import require_file

    p = require_file(path)
    scan = _scan(p, os.fspath(path))
    if scan.audio is None or scan.audio.n_packets == 0:
        return None
    if scan.video is None or scan.video.first_pts is None:
        return 0.0
    return float(scan.video.first_pts * scan.video.time_base)


def _rotation(header: str) -> int:
    m = _ROTATION_RE.search(header)
    return int(round(float(m.group(1)))) % 360 if m else 0


def _header_duration(header: str) -> float:
    m = _DURATION_RE.search(header)
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3)) if m else 0.0


def count_frames(path: str | os.PathLike) -> int:
    """Exact number of decodable frames, by decoding the whole video (slow; ``probe_video`` counts packets)."""
    p = require_video(path)
    name = os.fspath(path)
    args = ["-i", str(p), "-map", "0:V:0", "-fps_mode", "passthrough", "-f", "null", "-", "-progress", "pipe:1", "-nostats"]
    res = run_ffmpeg(args)
    if res.returncode != 0:
        raise InputError(f"{name}: not a readable video ({summarize_stderr(res.stderr)})")
    counts = re.findall(r"^frame=(\d+)", res.stdout, re.M)
    if not counts or int(counts[-1]) == 0:
        raise InputError(f"{name}: contains no video frames")
    return int(counts[-1])


def iter_video_frames(
    path: str | os.PathLike,
    *,
    size: tuple[int, int] | None = None,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[np.ndarray]:
    """Stream frames ``start <= i < stop`` as HxWx3 uint8 RGB arrays, one at a time.

    ``size`` is (width, height) to resize to (ffmpeg ``area`` scaling). Frames are selected by index
    with ffmpeg's ``trim`` filter, so ``start`` is exact even for clips whose timestamps do not start
    at zero. Breaking out of the loop (or closing the generator) stops ffmpeg at once. The file is
    probed here, before the first frame is asked for, so bad inputs fail at the call.
    """
    info = probe_video(path)
    if start < 0 or (stop is not None and stop < start):
        raise ValueError(f"bad frame range start={start} stop={stop}")
    if size is not None and (len(size) != 2 or min(size) <= 0):
        raise ValueError(f"size must be (width, height) > 0, got {size!r}")
    if (stop is not None and stop == start) or start >= info.n_frames:
        return (f for f in ())  # a generator all the same, so callers may close() it
    return _stream(info, os.fspath(path), size, start, stop)


def _stream(info: VideoInfo, name: str, size: tuple[int, int] | None, start: int, stop: int | None) -> Iterator[np.ndarray]:
    import imageio_ffmpeg

    filters = []
    if start > 0 or stop is not None:
        trim = f"trim=start_frame={start}" + (f":end_frame={stop}" if stop is not None else "")
        filters += [trim, "setpts=PTS-STARTPTS"]
    if size is not None:
        filters.append(f"scale={int(size[0])}:{int(size[1])}:flags={RESIZE_FLAGS}")
    output_params = ["-map", "0:V:0", "-fps_mode", "passthrough", "-an", "-sn"]
    if filters:
        output_params += ["-vf", ",".join(filters)]

    gen = imageio_ffmpeg.read_frames(str(info.path), pix_fmt="rgb24", output_params=output_params)
    remaining = None if stop is None else stop - start
    try:
        try:
            meta = next(gen)
        except (OSError, RuntimeError, StopIteration) as e:
            raise InputError(f"{name}: cannot decode video ({summarize_stderr(str(e))})") from None
        w, h = meta["size"]
        while remaining is None or remaining > 0:
            try:
                buf = next(gen)
            except StopIteration:
                return
            except (OSError, RuntimeError) as e:
                raise InputError(f"{name}: cannot decode video ({summarize_stderr(str(e))})") from None
            # A writable copy: callers draw on or normalise frames in place.
            yield np.frombuffer(buf, dtype=np.uint8).reshape(h, w, 3).copy()
            if remaining is not None:
                remaining -= 1
    finally:
        gen.close()
