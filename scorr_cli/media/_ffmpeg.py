"""Run the bundled ffmpeg (imageio-ffmpeg) and turn its chatter into one-line errors.

ffprobe is not bundled, so everything here goes through the ffmpeg binary; its stderr is always
captured so that no multi-line ffmpeg log reaches the user.
"""

from __future__ import annotations

import functools
import re
import subprocess
from typing import Sequence

# Lines of ffmpeg's log that carry no diagnosis and would only bury the useful one.
_NOISE = re.compile(
    r"^(ffmpeg version|  built with|  configuration:|  lib\w+ |Input #|Output #|  Metadata:|"
    r"  Duration:|  Stream #|    \w+\s*:|Stream mapping:|Press \[q\]|frame=|size=|video:|"
    r"Conversion failed|Error opening input files?:|Error opening output files?:|Exiting normally)"
)
_PREFIX = re.compile(r"^\[[^\]]*@ 0x[0-9a-f]+\]\s*")  # "[in#0 @ 0x55...] "

BASE_ARGS = ("-hide_banner", "-nostdin")


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg (import is deferred: it is slow-ish)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg(args: Sequence[str], *, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run ffmpeg with ``args`` and capture stdout/stderr as text (never raises on a non-zero exit)."""
    return subprocess.run(
        [ffmpeg_exe(), *BASE_ARGS, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
    )


def summarize_stderr(stderr: str, fallback: str = "ffmpeg failed") -> str:
    """Pick the most telling line of an ffmpeg log, stripped of its ``[ctx @ 0x...]`` prefix."""
    lines = [_PREFIX.sub("", ln).strip() for ln in stderr.splitlines()]
    useful = [ln for ln in lines if ln and not _NOISE.match(ln)]
    for ln in reversed(useful):
        low = ln.lower()
        if "error" in low or "invalid" in low or "no such" in low or "denied" in low or "failed" in low:
            return _shorten(ln)
    return _shorten(useful[-1]) if useful else fallback


def _shorten(line: str, limit: int = 160) -> str:
    return line if len(line) <= limit else line[: limit - 3] + "..."

