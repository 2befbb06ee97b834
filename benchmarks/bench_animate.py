"""Animation speed per prior: ms/frame (median/min/max) at batch 1 and 8 with source caching.

Also reports peak RSS, FLOPs per frame (torch profiler: convolutions and matmuls) and this
machine's measured convolution throughput, so the table shows how close each run is to its FLOP
floor. Random weights (speed does not depend on them). Prints a rich table and one JSON line.
Runs with the allocator setting every ``scorr`` command uses (``scorr_cli.runtime``); ``--allocator
system`` measures the C library's defaults instead. ``--backends torch,onnx`` also times onnxruntime
on the same model (exported as ``scorr export`` does; needs scorr's onnx extra), with its ratio to torch.

    python benchmarks/bench_animate.py [--preset vox] [--priors mtia,tpsm,fomm] [--repeats 3]
    python benchmarks/bench_animate.py --preset lite --size 128 --priors mtia --batches 1 --backends torch,onnx
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from scorr_cli import runtime
from scorr_cli.choices import BACKENDS
from scorr_cli.core.config import preset
from scorr_cli.core.engine import AnimationEngine, resolve_device
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


def onnx_engine(model: MRFA, device: str, folder: Path):
    """``model`` through ``scorr export``'s path (saved as a checkpoint, exported, checked) on onnxruntime."""
    from scorr_cli.checkpoints import save_checkpoint
    from scorr_cli.export.exporter import write_graphs
    from scorr_cli.export.options import DEFAULT_OPSET
    from scorr_cli.export.runtime import OnnxEngine, onnx_device

    ckpt = save_checkpoint(folder / "model.safetensors", model)
    write_graphs(ckpt, folder / "onnx", DEFAULT_OPSET)
    return OnnxEngine(folder / "onnx", onnx_device(device))


def measure(cfg, args, folder: Path) -> list[dict]:
    """Rows of one model: every backend at every batch size; onnx rows carry their ratio to torch."""
    model = MRFA(cfg)
    engine = AnimationEngine(model, args.device, args.precision, corr_impl=args.corr_impl)
    s = cfg.image_size
    source, frame = torch.rand(1, 3, s, s), torch.rand(1, 3, s, s)
    gflop = frame_flops(engine, engine.prepare(source), frame)
    rows = []
    for backend in args.backends.split(","):
        eng = engine if backend == "torch" else onnx_engine(model, args.device, folder / cfg.prior)
        state = eng.prepare(source)
        for b in map(int, args.batches.split(",")):
            ms = time_batch(eng, state, torch.rand(b, 3, s, s), args.repeats)
            rows.append({"prior": cfg.prior, "backend": backend, "batch": b, "median_ms": statistics.median(ms),
                         "min_ms": min(ms), "max_ms": max(ms), "gflop_per_frame": gflop})
    torch_ms = {r["batch"]: r["median_ms"] for r in rows if r["backend"] == "torch"}
    for r in rows:
        if r["backend"] != "torch" and r["batch"] in torch_ms:
            r["vs_torch"] = r["median_ms"] / torch_ms[r["batch"]]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="vox")
    ap.add_argument("--size", type=int, default=None, help="image size (default: the preset's)")
    ap.add_argument("--priors", default="mtia,tpsm,fomm")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--backends", default="torch", help="torch and/or onnx (onnxruntime), comma-separated")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--corr-impl", default="auto", choices=("auto", "torch", "fused"),
                    help="correlation lookup: fused Triton kernel on CUDA (auto) or the torch reference")
    ap.add_argument("--allocator", default="reuse", choices=runtime.ALLOCATOR_MODES,
                    help="reuse: keep freed memory as every scorr command does; system: the C library's defaults")
    args = ap.parse_args()
    if not set(args.backends.split(",")) <= set(BACKENDS):
        ap.error(f"--backends {args.backends}: expected a comma-separated subset of {','.join(BACKENDS)}")
    allocator = runtime.use_allocator(args.allocator)

    torch.manual_seed(0)
    base = preset(args.preset) if args.size is None else preset(args.preset).replace(image_size=args.size)
    with tempfile.TemporaryDirectory() as folder:
        rows = [r for prior in args.priors.split(",") for r in measure(base.replace(prior=prior), args, Path(folder))]
    device = resolve_device(args.device)
    report(rows, args, base.image_size, device, allocator)


def report(rows: list[dict], args, size: int, device: torch.device, allocator: str) -> None:
    """The rich table and the JSON line, each row against the machine's FLOP floor."""
    rate = conv_throughput(device)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    table = Table(title=f"scorr animate, preset {args.preset} at {size}², {device}, {args.precision}, "
                        f"conv {rate:.0f} GFLOP/s, peak RSS {peak_rss_mb:.0f} MB, allocator {allocator}")
    for col in ("prior", "backend", "batch", "median ms/frame", "min", "max", "GFLOP/frame", "FLOP floor ms",
                "× floor", "÷ torch"):
        table.add_column(col, justify="right")
    for r in rows:
        floor = r["gflop_per_frame"] / rate * 1000
        r["floor_ms"], r["x_floor"] = floor, r["median_ms"] / floor
        table.add_row(r["prior"], r["backend"], str(r["batch"]), f"{r['median_ms']:.0f}", f"{r['min_ms']:.0f}",
                      f"{r['max_ms']:.0f}", f"{r['gflop_per_frame']:.1f}", f"{floor:.0f}", f"{r['x_floor']:.2f}",
                      f"{r['vs_torch']:.2f}" if "vs_torch" in r else "")
    Console().print(table)
    print(json.dumps({"benchmark": "animate", "preset": args.preset, "image_size": size, "device": str(device),
                      "precision": args.precision, "allocator": allocator, "threads": torch.get_num_threads(),
                      "machine": platform.processor() or platform.machine(), "conv_gflops": rate,
                      "peak_rss_mb": peak_rss_mb, "rows": rows}))

if __name__ == "__main__":
    main()
