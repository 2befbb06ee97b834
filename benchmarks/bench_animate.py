"""Animation speed per prior: ms/frame (median/min/max) at batch 1 and 8 with source caching.

Also reports peak RSS, FLOPs per frame (torch profiler: convolutions and matmuls) and this
machine's measured convolution throughput, so the table shows how close each run is to its FLOP
floor. Random weights (speed does not depend on them). Prints a rich table and one JSON line.
Runs with the allocator setting every ``scorr`` command uses (``scorr_cli.runtime``); ``--allocator
system`` measures the C library's defaults instead.

    python benchmarks/bench_animate.py [--preset vox] [--priors mtia,tpsm,fomm] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import time

import torch
from rich.console import Console
from rich.table import Table

from scorr_cli import runtime
from scorr_cli.core.config import preset
from scorr_cli.core.engine import AnimationEngine
from scorr_cli.core.model import MRFA

from _timing import time_calls  # noqa: E402 (benchmarks/ is the script's folder)


def conv_throughput(device: torch.device, seconds: float = 3.0) -> float:
    """GFLOP/s of a generator-like 3×3 convolution (256→256 channels at 64², batch 4)."""
    conv = torch.nn.Conv2d(256, 256, 3, padding=1).to(device).eval()
    x = torch.randn(4, 256, 64, 64, device=device)
    flops = 2 * 256 * 256 * 9 * 64 * 64 * 4
    with torch.no_grad():
        conv(x)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            conv(x)
            n += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
    return flops * n / (time.perf_counter() - start) / 1e9


def frame_flops(engine: AnimationEngine, state, frame: torch.Tensor) -> float:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        engine.animate(state, frame)
    return sum(e.flops for e in prof.key_averages() if e.flops) / 1e9


def time_batch(engine: AnimationEngine, state, frames: torch.Tensor, repeats: int) -> list[float]:
    """ms per frame of animating ``frames`` in one call."""
    return [t / len(frames) for t in time_calls(lambda: engine.animate(state, frames), engine.device, repeats)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="vox")
    ap.add_argument("--priors", default="mtia,tpsm,fomm")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--corr-impl", default="auto", choices=("auto", "torch", "fused"),
                    help="correlation lookup: fused Triton kernel on CUDA (auto) or the torch reference")
    ap.add_argument("--allocator", default="reuse", choices=runtime.ALLOCATOR_MODES,
                    help="reuse: keep freed memory as every scorr command does; system: the C library's defaults")
    args = ap.parse_args()
    allocator = runtime.use_allocator(args.allocator)

    torch.manual_seed(0)
    rows = []
    device = None
    for prior in args.priors.split(","):
        cfg = preset(args.preset).replace(prior=prior)
        engine = AnimationEngine(MRFA(cfg), args.device, args.precision, corr_impl=args.corr_impl)
        device = engine.device
        s = cfg.image_size
        state = engine.prepare(torch.rand(1, 3, s, s))
        gflop = frame_flops(engine, state, torch.rand(1, 3, s, s))
        for b in map(int, args.batches.split(",")):
            ms = time_batch(engine, state, torch.rand(b, 3, s, s), args.repeats)
            rows.append({"prior": prior, "batch": b, "median_ms": statistics.median(ms), "min_ms": min(ms),
                         "max_ms": max(ms), "gflop_per_frame": gflop})
        del engine, state
    rate = conv_throughput(device)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    table = Table(title=f"scorr animate, preset {args.preset}, {device}, {args.precision}, "
                        f"conv {rate:.0f} GFLOP/s, peak RSS {peak_rss_mb:.0f} MB, allocator {allocator}")
    for col in ("prior", "batch", "median ms/frame", "min", "max", "GFLOP/frame", "FLOP floor ms", "× floor"):
        table.add_column(col, justify="right")
    for r in rows:
        floor = r["gflop_per_frame"] / rate * 1000
        r["floor_ms"], r["x_floor"] = floor, r["median_ms"] / floor
        table.add_row(r["prior"], str(r["batch"]), f"{r['median_ms']:.0f}", f"{r['min_ms']:.0f}", f"{r['max_ms']:.0f}",
                      f"{r['gflop_per_frame']:.1f}", f"{floor:.0f}", f"{r['x_floor']:.2f}")
    Console().print(table)
    print(json.dumps({"benchmark": "animate", "preset": args.preset, "device": str(device),
                      "precision": args.precision, "allocator": allocator, "threads": torch.get_num_threads(),
                      "machine": platform.processor() or platform.machine(), "conv_gflops": rate,
                      "peak_rss_mb": peak_rss_mb, "rows": rows}))


if __name__ == "__main__":
    main()
