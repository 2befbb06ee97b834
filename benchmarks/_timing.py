"""The timing loop the benchmarks share: one warm-up call, then wall time per call, device-synchronised."""

from __future__ import annotations

import time
from typing import Callable

import torch


def time_calls(fn: Callable[[], object], device: torch.device, repeats: int) -> list[float]:
    """Milliseconds per call of ``fn`` over ``repeats`` calls, after one untimed call (warm-up, compilation)."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return times
