"""Streaming writers: H.264 MP4 (with audio from another file), GIF, and a folder of PNGs.

Every writer writes to a temporary path beside the target and renames it into place only when
``close()`` succeeds; on any exception (Ctrl-C included) inside ``with`` the temporary output is
deleted and the target is left untouched. Frames go straight to an ffmpeg pipe: nothing holds the
whole video in memory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import numpy as np

from scorr_cli.choices import OUTPUT_FORMATS, one_of
from scorr_cli.errors import InputError, ScorrError
from scorr_cli.fsutil import atomic_path, replace_folder, temp_beside
from scorr_cli.media._ffmpeg import ffmpeg_exe, run_ffmpeg, summarize_stderr
from scorr_cli.media.frames import as_rgb_frame, pad_to_even
from scorr_cli.media.rates import fps_arg, parse_fps
from scorr_cli.media.sniff import require_file
from scorr_cli.runtime import interrupts_deferred
from scorr_cli.media.video import audio_sync_offset

DEFAULT_CRF = 18
DEFAULT_CODEC = "libx264"
DEFAULT_PIX_FMT = "yuv420p"
DEFAULT_PRESET = "medium"
AUDIO_CODEC = "aac"
AUDIO_BITRATE = "192k"
GIF_PALETTE_COLOURS = 256
PNG_COMPRESSION = 3  # cv2 level 0-9: 3 is ~3x faster than 9 for ~10% larger files
PNG_NAME_DIGITS = 5

FORMATS_BY_SUFFIX = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mp4", ".mkv": "mp4", ".gif": "gif", "": "png"}
"""Output kinds by extension; an extension-less path is a folder of PNG frames."""

_CLOSE_TIMEOUT_S = 600.0


class _Writer:
    """Shared life cycle: lazy start on the first frame, ``close`` commits, ``abort`` discards."""

    def __init__(self, path: str | os.PathLike, fps: Fraction | int | float | str):
        self.path = Path(path)
        self.fps = parse_fps(fps)
        self.frames_written = 0
        self.size: tuple[int, int] | None = None  # (width, height) of the frames given
        self._closed = False

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, frame: np.ndarray) -> None:
        """Append one HxWx3 uint8 RGB frame; every frame must have the size of the first."""
        if self._closed:
            raise ValueError(f"{self.path}: writer is closed")
        a = as_rgb_frame(frame)
        size = (a.shape[1], a.shape[0])
        if self.size is None:
            self.size = size
            with interrupts_deferred():  # the temp file and encoder are recorded before Ctrl-C can strike
                self._start(a)
        elif size != self.size:
            raise ValueError(f"frame {self.frames_written} is {size[0]}x{size[1]}, expected {self.size[0]}x{self.size[1]}")
        self._write(a)
        self.frames_written += 1

    def close(self) -> None:
        """Finish the file and move it onto ``path``; raises if no frame was written."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.frames_written == 0:
                raise ScorrError(f"{self.path}: no frames to write")
            self._finish()
        except BaseException:
            self._discard()
            raise

    def abort(self) -> None:
        """Discard everything written so far; ``path`` is left as it was."""
        if not self._closed:
            self._closed = True
            self._discard()

    # Subclasses fill these in.
    def _start(self, first: np.ndarray) -> None: ...
    def _write(self, frame: np.ndarray) -> None: ...
    def _finish(self) -> None: ...
    def _discard(self) -> None: ...


class _AtomicFile:
    """``fsutil.atomic_path`` driven by hand, because a writer's life is not a single ``with`` block."""

    def __init__(self, target: Path):
        self._cm = atomic_path(target)
        self.tmp: Path = self._cm.__enter__()

    def commit(self) -> None:
        self._cm.__exit__(None, None, None)

    def discard(self) -> None:
        with contextlib.suppress(_Discard):
            self._cm.__exit__(_Discard, _Discard(), None)


class _Discard(Exception):
    """Thrown into ``atomic_path`` to make it delete its temporary file."""


class _FfmpegPipe:
    """An ffmpeg process reading raw RGB frames on stdin; its log goes to a temp file (no pipe deadlock)."""

    def __init__(self, name: Path, size: tuple[int, int], fps: Fraction, output_args: list[str]):
        self.name = name
        self._log: IO[bytes] = tempfile.TemporaryFile()
        cmd = [
            ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{size[0]}x{size[1]}",
            "-framerate", fps_arg(fps), "-i", "pipe:0", *output_args,
        ]  # fmt: skip
        # Own session: Ctrl-C reaches Python only, and we decide how ffmpeg stops.
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log, start_new_session=True
        )

    def write(self, data: Any) -> None:
        try:
            self.proc.stdin.write(data)
        except (BrokenPipeError, OSError):
            self.proc.wait()
            raise ScorrError(f"{self.name}: encoding failed ({self.log_summary()})") from None

    def finish(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self.proc.stdin.close()
        rc = self.proc.wait(timeout=_CLOSE_TIMEOUT_S)
        if rc != 0:
            raise ScorrError(f"{self.name}: encoding failed ({self.log_summary()})")
        self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        self.proc.wait()
        self._log.close()

    def log_summary(self) -> str:
        self._log.seek(0)
        return summarize_stderr(self._log.read().decode("utf-8", "replace"), "ffmpeg exited early")


class VideoWriter(_Writer):
    """Encode frames to H.264 (``codec``/``pix_fmt``) at the exact rational ``fps``; optionally add audio.

    yuv420p needs even sizes: odd frames are padded by repeating the last row/column (see
    ``pad_to_even``). Audio is muxed afterwards from ``audio_from`` (its first audio stream, if it has
    one; no audio is not an error). ``audio_range`` is (start, end) seconds of the source's *video*
    timeline (frame ``i`` at ``i / fps``), so cutting frames a..b keeps lips in sync even when the
    source's audio starts before its video. The audio is trimmed to the video's length instead of
    using ``-shortest``, which would drop video frames whenever the audio is the shorter stream.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: Fraction | int | float | str,
        *,
        audio_from: str | os.PathLike | None = None,
        audio_range: tuple[float, float] | None = None,
        crf: int = DEFAULT_CRF,
        codec: str = DEFAULT_CODEC,
        pix_fmt: str = DEFAULT_PIX_FMT,
        preset: str = DEFAULT_PRESET,
    ):
        super().__init__(path, fps)
        self.audio_from = require_file(audio_from) if audio_from is not None else None
        if audio_range is not None and not (0 <= audio_range[0] < audio_range[1]):
            raise ValueError(f"audio_range must be (start, end) seconds with 0 <= start < end, got {audio_range}")
        self.audio_range = audio_range
        self._encode_args = ["-an", "-c:v", codec, "-preset", preset, "-crf", str(crf), "-pix_fmt", pix_fmt]
        self._needs_even = pix_fmt in ("yuv420p", "yuvj420p", "nv12", "yuv420p10le")
        self._out: _AtomicFile | None = None
        self._pipe: _FfmpegPipe | None = None

    def _start(self, first: np.ndarray) -> None:
        self._out = _AtomicFile(self.path)
        size = self.size
        if self._needs_even:
            size = (size[0] + size[0] % 2, size[1] + size[1] % 2)
        args = [*self._encode_args, "-movflags", "+faststart", str(self._out.tmp)]
        self._pipe = _FfmpegPipe(self.path, size, self.fps, args)

    def _write(self, frame: np.ndarray) -> None:
        if self._needs_even:
            frame = pad_to_even(frame)
        self._pipe.write(memoryview(frame).cast("B"))

    def _finish(self) -> None:
        self._pipe.finish()
        if self.audio_from is not None:
            self._mux_audio(self._out.tmp)
        self._out.commit()

    def _discard(self) -> None:
        if self._pipe is not None:
            self._pipe.kill()
        if self._out is not None:
            self._out.discard()

    @property
    def duration(self) -> Fraction:
        """Exact seconds of video written so far."""
        return self.frames_written / self.fps

    def _mux_audio(self, video: Path) -> None:
        offset = audio_sync_offset(self.audio_from)
        if offset is None:  # the source has no audio: the video stays silent
            return
        start, end = self.audio_range if self.audio_range else (0.0, float("inf"))
        end = min(end, start + float(self.duration))  # never longer than the video
        muxed = str(temp_beside(self.path, "audio"))
        t0, t1 = offset + start, offset + end
        # Shift by the requested start (not by the first sample found) and pad with silence, so audio
        # that begins after the video's first frame stays where it belongs.
        trim = f"atrim=start={t0:.6f}:end={t1:.6f},asetpts=PTS-{t0:.6f}/TB,aresample=async=1:first_pts=0"
        args = [
            "-y", "-i", str(video), "-i", str(self.audio_from),
            "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-af", trim,
            "-c:a", AUDIO_CODEC, "-b:a", AUDIO_BITRATE, "-movflags", "+faststart", muxed,
        ]  # fmt: skip
        try:
            res = run_ffmpeg(args)
            if res.returncode != 0:
                raise InputError(f"{self.audio_from}: cannot add its audio ({summarize_stderr(res.stderr)})")
            os.replace(muxed, video)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(muxed)


class GifWriter(_Writer):
    """Animated GIF with an optimised palette (ffmpeg ``palettegen``/``paletteuse``).

    Frames are first stored losslessly (FFV1) in a temporary folder so that the palette can be built
    from all of them without holding them in memory; then two ffmpeg passes make the GIF.
    """

    def __init__(self, path: str | os.PathLike, fps: Fraction | int | float | str):
        super().__init__(path, fps)
        self._work: tempfile.TemporaryDirectory | None = None
        self._pipe: _FfmpegPipe | None = None

    def _start(self, first: np.ndarray) -> None:
        self._work = tempfile.TemporaryDirectory(prefix="scorr-gif-")
        self._frames = Path(self._work.name) / "frames.mkv"
        self._pipe = _FfmpegPipe(self.path, self.size, self.fps, ["-c:v", "ffv1", str(self._frames)])

    def _write(self, frame: np.ndarray) -> None:
        self._pipe.write(memoryview(frame).cast("B"))

    def _finish(self) -> None:
        self._pipe.finish()
        palette = Path(self._work.name) / "palette.png"
        gen = run_ffmpeg(["-y", "-i", str(self._frames), "-vf", f"palettegen=max_colors={GIF_PALETTE_COLOURS}:stats_mode=full", str(palette)])
        if gen.returncode != 0:
            raise ScorrError(f"{self.path}: GIF palette failed ({summarize_stderr(gen.stderr)})")
        with atomic_path(self.path) as tmp:
            use = run_ffmpeg(["-y", "-i", str(self._frames), "-i", str(palette), "-lavfi", "paletteuse=dither=sierra2_4a", "-f", "gif", str(tmp)])
            if use.returncode != 0:
                raise ScorrError(f"{self.path}: GIF encoding failed ({summarize_stderr(use.stderr)})")
        self._work.cleanup()

    def _discard(self) -> None:
        if self._pipe is not None:
            self._pipe.kill()
        if self._work is not None:
            self._work.cleanup()


class FrameFolderWriter(_Writer):
    """Frames as ``00000.png``, ``00001.png``... in a folder (``fps`` is kept for callers, not stored).

    The folder is built under a temporary name beside the target and renamed when closed; an
    existing target folder is replaced only then.
    """

    def __init__(self, path: str | os.PathLike, fps: Fraction | int | float | str = 25):
        super().__init__(path, fps)
        self._tmp: Path | None = None

    def _start(self, first: np.ndarray) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = temp_beside(self.path, "part", directory=True)

    def _write(self, frame: np.ndarray) -> None:
        import cv2

        name = self._tmp / f"{self.frames_written:0{PNG_NAME_DIGITS}d}.png"
        ok, buf = cv2.imencode(".png", frame[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
        if not ok:
            raise ScorrError(f"{name}: PNG encoding failed")
        name.write_bytes(buf.tobytes())

    def _finish(self) -> None:
        replace_folder(self._tmp, self.path)

    def _discard(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)


Writer = VideoWriter | GifWriter | FrameFolderWriter


def writer_format(path: str | os.PathLike, format: str | None = None) -> str:
    """'mp4', 'gif' or 'png' from ``format`` or the extension; InputError naming the file otherwise."""
    if format is not None:
        if format not in OUTPUT_FORMATS:
            raise InputError(f"{os.fspath(path)}: unknown output format {format!r} (use {one_of(OUTPUT_FORMATS)})")
        return format
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS_BY_SUFFIX:
        known = ", ".join(s for s in FORMATS_BY_SUFFIX if s)
        raise InputError(f"{os.fspath(path)}: unsupported output extension {suffix!r} (use {known}, or a folder name for PNG frames)")
    return FORMATS_BY_SUFFIX[suffix]


def open_writer(
    path: str | os.PathLike,
    fps: Fraction | int | float | str,
    format: str | None = None,
    **video_options: Any,
) -> Writer:
    """Open the writer for ``path``: MP4 (options as ``VideoWriter``), GIF, or a folder of PNGs.

    Audio options are ignored for GIF and PNG output, which cannot carry sound.
    """
    kind = writer_format(path, format)
    if kind == "mp4":
        return VideoWriter(path, fps, **video_options)
    if kind == "gif":
        return GifWriter(path, fps)
    return FrameFolderWriter(path, fps)
