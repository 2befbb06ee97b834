"""Exact frame rates as ``Fraction``.

Containers store rates as time-base ticks, so an NTSC clip may come out as 2997/100 (11988-tick
time base) or 30000/1001; players and ffmpeg's own ``r_frame_rate`` treat both as NTSC. We snap to
the conventional rational so that re-encoding at ``fps`` keeps audio and video in step.
"""

from __future__ import annotations

from fractions import Fraction

NTSC_BASES = (24, 30, 48, 60, 120, 240)
"""Rates that exist in a ``N*1000/1001`` (NTSC) flavour."""

MAX_STANDARD_RATE = 240
SNAP_TOLERANCE = Fraction(1, 5000)
"""Relative tolerance for snapping: well below the 1/1000 gap between 30 and 30000/1001."""

MAX_DENOMINATOR = 1001


def _standard_rates() -> list[Fraction]:
    rates = [Fraction(n) for n in range(1, MAX_STANDARD_RATE + 1)]
    rates += [Fraction(n * 1000, 1001) for n in NTSC_BASES]
    return rates


_STANDARD = _standard_rates()


def snap_fps(rate: Fraction) -> Fraction:
    """Return the standard rate within ``SNAP_TOLERANCE`` of ``rate``, else ``rate`` simplified.

    Non-standard rates (variable-frame-rate phone clips, e.g. 135 frames in 6.1 s) keep their
    average, limited to a denominator of 1001 so that ffmpeg accepts them.
    """
    if rate <= 0:
        raise ValueError(f"frame rate must be positive, got {rate}")
    best = min(_STANDARD, key=lambda s: abs(s - rate))
    if abs(best - rate) <= best * SNAP_TOLERANCE:
        return best
    return rate.limit_denominator(MAX_DENOMINATOR)


def parse_fps(value: Fraction | int | float | str) -> Fraction:
    """Accept 25, 29.97, "30000/1001", "29.97" or a Fraction; return an exact positive Fraction.

    Floats and decimal strings are snapped (29.97 -> 30000/1001); explicit rationals are kept.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a frame rate: {value!r}")
    try:
        if isinstance(value, Fraction):
            rate, exact = value, True
        elif isinstance(value, int):
            rate, exact = Fraction(value), True
        elif isinstance(value, float):
            rate, exact = Fraction(value), False
        else:
            text = str(value).strip()
            rate, exact = Fraction(text), "/" in text
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"not a frame rate: {value!r}") from None
    if rate <= 0:
        raise ValueError(f"frame rate must be positive, got {value!r}")
    return rate if exact else snap_fps(rate)


def fps_arg(rate: Fraction) -> str:
    """ffmpeg spelling of a rate: ``30000/1001`` (never a rounded decimal)."""
    return f"{rate.numerator}/{rate.denominator}"
