"""The process-wide allocator setting: freed tensor memory is reused, not page-faulted in again."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

glibc_only = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="the setting only exists for glibc")

# Allocate, touch and free a 64 MiB tensor 24 times; print the page faults of the last 8 rounds (glibc
# needs a few rounds before its free lists hold a block that fits the aligned request).
_PROBE = """
import resource, sys, torch
from scorr_cli import runtime
applied = runtime.keep_freed_memory() if sys.argv[1] == "tune" else False
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for i in range(24):
    if i == 16:
        start = faults()
    t = torch.empty(16 * 2**20).fill_(1.0)
    del t
print(applied, faults() - start)
"""


def _probe(mode: str, **env: str) -> tuple[bool, int]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "SCORR_ALLOCATOR"}
    full_env.update(env)
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, env=full_env,
                         check=True).stdout.split()
    return out[0] == "True", int(out[1])


@glibc_only
def test_reused_memory_is_not_faulted_in_again():
    applied, tuned = _probe("tune")
    default_applied, default = _probe("default")
    assert applied and not default_applied
    pages = 8 * 64 * 2**20 // os.sysconf("SC_PAGE_SIZE")  # eight rounds of 64 MiB
    assert default > pages // 2, f"glibc's defaults should fault every round in ({default} faults)"
    assert tuned <= pages // 4, f"{tuned} page faults for memory that was freed and reused"


@glibc_only
@pytest.mark.parametrize("env", [{"SCORR_ALLOCATOR": "system"}, {"MALLOC_MMAP_MAX_": "65536"}])
def test_user_choice_is_respected(env):
    applied, faults = _probe("tune", **env)
    assert not applied
    assert faults > 8 * 64 * 2**20 // os.sysconf("SC_PAGE_SIZE") // 2


def test_interrupts_are_held_until_the_block_ends():
    """A SIGTERM (scorr turns it into Ctrl-C) that arrives while a writer creates its temp file and encoder
    is delivered after the block: the block completes, so what it made is recorded for cleanup. Without the
    deferral the KeyboardInterrupt strikes inside the block (the first assertion fails)."""
    import signal

    from scorr_cli import runtime

    old = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, runtime._interrupt)
    steps = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with runtime.interrupts_deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                steps.append("created")
                steps.append("recorded")
        assert steps == ["created", "recorded"]
        assert signal.getsignal(signal.SIGTERM) is runtime._interrupt  # handlers are restored
    finally:
        signal.signal(signal.SIGTERM, old)


def test_command_line_parsing_loads_no_heavy_library():
    """Every command's options are declared in light modules and its work imported when it runs: building
    the whole CLI (``scorr --help``, option errors) must not import torch, OpenCV, numpy or dlib (they cost
    seconds of start-up)."""
    code = ("import sys, scorr_cli.cli; "
            "print(','.join(m for m in ('torch', 'cv2', 'numpy', 'dlib', 'face_alignment') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"imported at start-up: {out}"
