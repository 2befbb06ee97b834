"""Synthetic media for tests in any package: small clips made on the fly, nothing committed.

``make_test_video`` drives the bundled ffmpeg directly (not ``VideoWriter``) so that tests of the
writer are not checked against its own output only.
"""

from __future__ import annotations

import os
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

from scorr_cli.media._ffmpeg import ffmpeg_exe
from scorr_cli.media.frames import as_rgb_frame, pad_to_even
from scorr_cli.media.rates import fps_arg, parse_fps

TEST_SIZE = (64, 48)  # (width, height)
TEST_FPS = Fraction(25)
TONE_HZ = 440
AUDIO_RATE = 44100


def synthetic_frame(index: int, size: tuple[int, int] = TEST_SIZE) -> np.ndarray:
    """A frame that differs per index: a gradient, a moving square, and ``index % 256`` top-left."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    frame = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), np.full_like(x, 96)], axis=2).astype(np.uint8)
    s = max(min(w, h) // 4, 2)
    x0 = (index * 3) % max(w - s, 1)
    frame[h // 2 - s // 2 : h // 2 + s // 2, x0 : x0 + s] = 255
    frame[:8, :8] = index % 256
    return frame


def make_test_video(
    path: str | os.PathLike,
    frames: Sequence[np.ndarray] | int,
    fps: Fraction | int | str = TEST_FPS,
    with_audio: bool = False,
    *,
    size: tuple[int, int] = TEST_SIZE,
    audio_seconds: float | None = None,
) -> Path:
    """Write an H.264 MP4 of ``frames`` (or ``n`` synthetic frames of ``size``) at ``fps``.

    With ``with_audio`` a 440 Hz sine track (AAC) as long as the video, or ``audio_seconds``, is added.
    Odd-sized frames are padded to even, as ``VideoWriter`` does.
    """
    rate = parse_fps(fps)
    n = frames if isinstance(frames, int) else len(frames)
    if n <= 0:
        raise ValueError("a test video needs at least one frame")
    first = pad_to_even(as_rgb_frame(synthetic_frame(0, size) if isinstance(frames, int) else frames[0]))
    h, w = first.shape[:2]
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-framerate", fps_arg(rate), "-i", "pipe:0"]  # fmt: skip
    if with_audio:
        seconds = float(n / rate) if audio_seconds is None else audio_seconds
        cmd += ["-f", "lavfi", "-i", f"sine=frequency={TONE_HZ}:sample_rate={AUDIO_RATE}:duration={seconds:.6f}"]
        cmd += ["-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac"]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-pix_fmt", "yuv420p", str(path)]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for i in range(n):
            frame = synthetic_frame(i, size) if isinstance(frames, int) else frames[i]
            proc.stdin.write(pad_to_even(as_rgb_frame(frame)).tobytes())
        _, err = proc.communicate()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg could not make {out}: {err.decode(errors='replace').strip()}")
    return out
