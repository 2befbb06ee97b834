"""Process-wide settings: fast CPU work (nothing here changes a result, only how fast it comes), and
SIGTERM handled as Ctrl-C.

torch's CPU allocator hands every tensor straight to ``malloc``. glibc serves blocks above its mmap
threshold (128 KiB, growing to at most 32 MiB) with a fresh ``mmap`` and unmaps them on free, so the
tens of 256² feature maps a frame creates and frees are page-faulted in anew on every frame: measured
here, 16% of an MTIA vox frame on 2 cores (bench_animate --allocator system). Keeping freed memory in
the heap for reuse costs about 100-200 MB of peak RSS at vox/256².
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
from typing import Iterator

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# Environment variables with which a user (or a preloaded allocator) already chose for themselves.
_USER_CHOICES = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")
ALLOCATOR_ENV = "SCORR_ALLOCATOR"  # "system": leave the C library's defaults alone
ALLOCATOR_MODES = ("reuse", "system")
_applied = False


def keep_freed_memory() -> bool:
    """Make glibc reuse freed tensor memory instead of unmapping it. True when the setting is in effect.

    Skipped (False) off glibc, when ``SCORR_ALLOCATOR=system``, when the user set glibc's own
    ``MALLOC_*`` tuning variables, or when another allocator (jemalloc, tcmalloc) is preloaded.
    """
    global _applied
    if _applied:
        return True
    if os.environ.get(ALLOCATOR_ENV, "").lower() == "system" or any(k in os.environ for k in _USER_CHOICES):
        return False
    if "malloc" in os.environ.get("LD_PRELOAD", ""):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # Never trim the heap top, never serve a block by mmap: freed blocks stay for the next frame.
    # (glibc caps the mmap threshold at 32 MiB, so disabling mmap is the only way to keep the larger
    # maps; a worker thread's arena falls back to the main heap for those.)
    _applied = bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)) and bool(mallopt(_M_MMAP_MAX, 0))
    return _applied


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def sigterm_as_interrupt() -> bool:
    """Make SIGTERM (``kill``, a scheduler's stop, a container shutdown) behave like Ctrl-C: the same
    KeyboardInterrupt unwinds every command, so temp files are removed, state is saved, exit 130.

    Only the main thread can install handlers; returns whether this call did. Commands with their own
    handling (training's save-and-stop flag) install theirs over it while they run."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        return False  # somebody (an embedding program) chose already
    signal.signal(signal.SIGTERM, _interrupt)
    return True


def use_allocator(mode: str) -> str:
    """Apply a benchmark's ``--allocator`` choice (reuse | system); returns the mode in effect."""
    if mode not in ALLOCATOR_MODES:
        raise ValueError(f"unknown allocator mode {mode!r}; expected one of {', '.join(ALLOCATOR_MODES)}")
    return "reuse" if mode == "reuse" and keep_freed_memory() else "system"


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block ends, then deliver them.

    For the few statements that create something and record it for cleanup (a temporary file, an
    encoder process): an interrupt between the two would leave the thing behind with nobody to
    remove it. Outside the main thread (where handlers cannot be set) the block runs as it is.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    held = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in held.items():
            signal.signal(s, handler)
        if caught:
            handler = held[caught[0]]
            if callable(handler):
                handler(caught[0], None)
            elif handler == signal.SIG_DFL and caught[0] == signal.SIGINT:
                raise KeyboardInterrupt
            elif handler == signal.SIG_DFL:
                signal.raise_signal(caught[0])
