"""Correlation lookup over the coarse-to-fine schedule: torch reference vs the fused Triton kernel.

One frame's worth of lookups as the refiner does them for a 256² vox model: structure features
``C×64×64`` (C = 256), ``levels`` pyramid levels, radius ``r``, one lookup per level of the schedule
(8² … 256²; the 128² and 256² levels look up at 64² and are resized). Reports ms per frame
(median/min/max), peak CUDA memory per implementation, and the max difference between them.
The fused kernel needs CUDA and triton; elsewhere only the torch reference is timed.

    python benchmarks/bench_corr.py [--batch 8] [--repeats 10] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics

import torch
from rich.console import Console
from rich.table import Table

from scorr_cli.core.config import preset
from scorr_cli.core.correlation import CorrelationLookup, fused_lookup_available
from scorr_cli.core.engine import resolve_device

from _timing import time_calls  # noqa: E402 (benchmarks/ is the script's folder)


def run_schedule(fd, fs, flows, levels, radius, impl):
    lookup = CorrelationLookup(fd, fs, levels, radius, impl)
    return [lookup(flow) for flow in flows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = resolve_device(args.device)
    cfg = preset("vox")
    r = cfg.refiner
    s, b = cfg.prior_size, args.batch
    g = torch.Generator().manual_seed(0)
    fd = torch.randn(b, r.dim, s, s, generator=g).to(device)
    fs = torch.randn(b, r.dim, s, s, generator=g).to(device)
    flows = [(torch.randn(b, 2, n, n, generator=g) * 2).to(device) for n in cfg.level_sizes]

    impls = ["torch"] + (["fused"] if device.type == "cuda" and fused_lookup_available() else [])
    rows, outputs = [], {}
    with torch.no_grad():
        for impl in impls:
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            times = time_calls(lambda: run_schedule(fd, fs, flows, r.corr_levels, r.corr_radius, impl), device,
                          args.repeats)
            outputs[impl] = run_schedule(fd, fs, flows, r.corr_levels, r.corr_radius, impl)
            peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
            per_frame = [t / b for t in times]
            rows.append({"impl": impl, "ms_per_frame_median": statistics.median(per_frame),
                         "ms_per_frame_min": min(per_frame), "ms_per_frame_max": max(per_frame),
                         "peak_cuda_mib": peak})
    max_diff = None
    if "fused" in outputs:
        max_diff = max((a - f).abs().max().item() for a, f in zip(outputs["torch"], outputs["fused"]))
    table = Table(title=f"correlation lookup, vox schedule {cfg.level_sizes}, batch {b}, {device}")
    for col in ("impl", "ms/frame median", "min", "max", "peak CUDA MiB"):
        table.add_column(col)
    for row in rows:
        table.add_row(row["impl"], f"{row['ms_per_frame_median']:.3f}", f"{row['ms_per_frame_min']:.3f}",
                      f"{row['ms_per_frame_max']:.3f}",
                      "-" if row["peak_cuda_mib"] is None else f"{row['peak_cuda_mib']:.0f}")
    Console().print(table)
    if len(rows) == 2:
        speedup = rows[0]["ms_per_frame_median"] / rows[1]["ms_per_frame_median"]
        Console().print(f"speed-up fused/torch: {speedup:.2f}x, max |diff| {max_diff:.2e}")
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(json.dumps({"benchmark": "corr_lookup", "device": device_name, "batch": b, "rows": rows,
                      "max_abs_diff": max_diff}))


if __name__ == "__main__":
    main()
