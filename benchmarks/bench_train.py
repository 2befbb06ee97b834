"""Seconds per MRFA training step (forward + losses + backward + clip + Adam) on the current device.

Default: the full ``vox`` model at 256², batch 2, the paper's losses (VGG-19 perceptual pyramid —
a fixed random VGG of identical cost, so no download — plus keypoint/jacobian equivariance). Synthetic
frames, so data loading is not measured. Prints a rich table and one JSON line.

    python benchmarks/bench_train.py [--preset vox] [--size 256] [--batch 2] [--steps 3] [--warmup 1]
                                     [--device auto] [--precision fp32|bf16] [--threads N]
                                     [--perceptual vgg19|random|none] [--allocator reuse|system]
                                     [--variant eager|channels_last|compile]

A comma list in --perceptual or --variant (``--variant eager,channels_last,compile``) builds one model
per choice from the same seed and alternates their steps in one process, so a busy machine slows them
alike; the table and JSON line report each one's time relative to the first. ``channels_last`` stores
the weights and frames in NHWC (oneDNN's native layout); ``compile`` wraps the step in
``torch.compile`` (inductor; its compile time is reported apart, the warm-up steps absorb it).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from scorr_cli import runtime  # noqa: E402
from scorr_cli.choices import PERCEPTUAL_BACKENDS, PRIORS, TRAIN_PRECISIONS  # noqa: E402
from scorr_cli.core.losses import LossConfig, ReconstructionLoss  # noqa: E402
from scorr_cli.core.model import MRFA  # noqa: E402
from scorr_cli.core.transforms import RandomTransform  # noqa: E402
from scorr_cli.core.vgg import build_vgg19  # noqa: E402
from scorr_cli.train.config import TRAIN_PRESETS, train_preset  # noqa: E402
from scorr_cli.train.distributed import resolve_device  # noqa: E402
from scorr_cli.train.trainer import TrainingStep  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


STEP_VARIANTS = ("eager", "channels_last", "compile")


@dataclass
class Arm:
    """One timed configuration: its own model, optimiser and loss, built from the same seed."""

    label: str
    perceptual: str
    variant: str
    model: MRFA
    step: torch.nn.Module
    recon: ReconstructionLoss
    opt: torch.optim.Optimizer
    compile_s: float = 0.0


def build_arm(cfg, perceptual: str, variant: str, device: torch.device, label: str) -> Arm:
    torch.manual_seed(0)
    model = MRFA(cfg.model).to(device).train()
    if variant == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    step: torch.nn.Module = TrainingStep(model, cfg)
    if variant == "compile":
        step = torch.compile(step)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.schedule.lr, betas=cfg.schedule.betas)
    return Arm(label, perceptual, variant, model, step, reconstruction_loss(cfg.loss, perceptual, device), opt)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="vox", choices=TRAIN_PRESETS)
    ap.add_argument("--prior", default=None, choices=PRIORS)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="timed steps")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="fp32", choices=TRAIN_PRECISIONS)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--perceptual", default="vgg19",
                    help="vgg19, random or none (pixel + SSIM pyramid); vgg19 is timed with a random VGG-19 of "
                         "identical cost. A comma list (random,none) compares them")
    ap.add_argument("--variant", default="eager",
                    help=f"how the step runs: {', '.join(STEP_VARIANTS)}; a comma list compares them")
    ap.add_argument("--allocator", default="reuse", choices=runtime.ALLOCATOR_MODES,
                    help="reuse: keep freed memory as `scorr train` does; system: the C library's defaults")
    args = ap.parse_args()
    allocator = runtime.use_allocator(args.allocator)
    if args.threads:
        torch.set_num_threads(args.threads)

    cfg = train_preset(args.preset, args.prior)
    cfg.model = cfg.model.replace(image_size=args.size)
    device = resolve_device(args.device)
    perceptuals, variants = args.perceptual.split(","), args.variant.split(",")
    if any(c not in PERCEPTUAL_BACKENDS for c in perceptuals):
        ap.error(f"--perceptual: each of {args.perceptual!r} must be one of {', '.join(PERCEPTUAL_BACKENDS)}")
    if any(v not in STEP_VARIANTS for v in variants):
        ap.error(f"--variant: each of {args.variant!r} must be one of {', '.join(STEP_VARIANTS)}")
    if len(perceptuals) > 1 and len(variants) > 1:
        ap.error("compare either --perceptual or --variant choices, not both")
    arms = [build_arm(cfg, p, v, device, p if len(perceptuals) > 1 else v)
            for p in perceptuals for v in variants]
    gen = torch.Generator().manual_seed(0)
    source = torch.rand(args.batch, 3, args.size, args.size, generator=gen).to(device)
    driving = torch.rand(args.batch, 3, args.size, args.size, generator=gen).to(device)
    use_bg = arms[0].model.has_background
    dropout = arms[0].model.dense_motion.dropout_p(0) if cfg.model.prior == "tpsm" else None
    tgen = torch.Generator(device=device).manual_seed(0) if cfg.model.prior == "tpsm" else None
    ac = (torch.autocast(device.type, dtype=torch.bfloat16) if args.precision == "bf16"
          else torch.autocast(device.type, enabled=False))

    def one_step(arm: Arm) -> float:
        src, drv = source, driving
        if arm.variant == "channels_last":
            src, drv = (x.contiguous(memory_format=torch.channels_last) for x in (source, driving))
        _sync(device)
        t0 = time.perf_counter()
        arm.opt.zero_grad(set_to_none=True)
        transform = RandomTransform.sample(args.batch, cfg.loss.transform, generator=gen, device=device)
        with ac:
            out = arm.step(src, drv, transform, use_bg, dropout, tgen)
            losses = dict(arm.recon(out["prediction"], drv))
        losses.update(out["losses"])
        total = sum(v.float().mean() for v in losses.values())
        total.backward()
        model = arm.model
        for mod in (model.encoder, model.dense_motion, model.decoder):
            torch.nn.utils.clip_grad_norm_([p for p in mod.parameters() if p.grad is not None], 10.0, math.inf)
        arm.opt.step()
        _sync(device)
        return time.perf_counter() - t0

    for arm in arms:  # the first step of a compiled arm includes its compilation
        arm.compile_s = one_step(arm)
    for _ in range(args.warmup - 1):
        for arm in arms:
            one_step(arm)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    all_times: dict[str, list[float]] = {arm.label: [] for arm in arms}
    for _ in range(args.steps):
        for arm in arms:
            all_times[arm.label].append(one_step(arm))
    if len(arms) > 1:
        _report_comparison(args, cfg, device, arms, all_times)
        return
    times = all_times[arms[0].label]
    mean = statistics.mean(times)
    loss_cfg = arms[0].recon.config
    params = sum(p.numel() for p in arms[0].model.parameters())
    result = {
        "benchmark": "train_step", "preset": args.preset, "prior": cfg.model.prior, "size": args.size,
        "batch": args.batch, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "threads": torch.get_num_threads(), "allocator": allocator, "precision": args.precision,
        "perceptual": loss_cfg.perceptual_backend, "variant": arms[0].variant,
        "params_m": round(params / 1e6, 2), "steps": args.steps, "warmup": args.warmup,
        "s_per_step": round(mean, 4), "s_per_step_min": round(min(times), 4),
        "samples_per_s": round(args.batch / mean, 4),
        "peak_mem_gb": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None,
        "torch": torch.__version__,
    }
    table = Table(title=f"MRFA training step ({args.preset}, {args.size}², batch {args.batch}, {device}, "
                        f"allocator {allocator})")
    for col in ("s/step (mean)", "s/step (min)", "samples/s", "params", "threads", "peak GPU mem"):
        table.add_column(col, justify="right")
    table.add_row(f"{mean:.3f}", f"{min(times):.3f}", f"{args.batch / mean:.3f}", f"{params / 1e6:.1f} M",
                  str(result["threads"]), f"{result['peak_mem_gb']} GB" if result["peak_mem_gb"] is not None else "-")
    Console(stderr=True).print(table)
    print(json.dumps(result))


def reconstruction_loss(loss: LossConfig, choice: str, device: torch.device) -> ReconstructionLoss:
    backend = "random" if choice == "vgg19" else choice
    extra = {"pixel": 10.0, "ssim": 10.0} if backend == "none" else {}
    cfg = type(loss)(**{**loss.__dict__, "perceptual_backend": backend, **extra})
    return ReconstructionLoss(cfg, build_vgg19(None) if cfg.uses_perceptual else None).to(device)


def _report_comparison(args, cfg, device: torch.device, arms: list[Arm],
                       all_times: dict[str, list[float]]) -> None:
    first = arms[0].label
    rows = [{"perceptual": arm.perceptual, "variant": arm.variant,
             "s_per_step": round(statistics.mean(all_times[arm.label]), 4),
             "s_per_step_min": round(min(all_times[arm.label]), 4),
             "relative": round(statistics.mean(all_times[arm.label]) / statistics.mean(all_times[first]), 3),
             "first_step_s": round(arm.compile_s, 2)}
            for arm in arms]
    table = Table(title=f"MRFA training step ({args.preset}, {args.size}², batch {args.batch}, {device}, "
                        f"{torch.get_num_threads()} thread(s), {args.steps} alternating steps each)")
    for col in ("arm", "s/step (mean)", "s/step (min)", f"vs {first}", "first step (s)"):
        table.add_column(col, justify="right")
    for arm, r in zip(arms, rows):
        table.add_row(arm.label, f"{r['s_per_step']:.3f}", f"{r['s_per_step_min']:.3f}", f"{r['relative']:.2f}",
                      f"{r['first_step_s']:.1f}")
    Console(stderr=True).print(table)
    print(json.dumps({"benchmark": "train_step_compare", "preset": args.preset, "prior": cfg.model.prior,
                      "size": args.size, "batch": args.batch, "device": str(device), "precision": args.precision,
                      "threads": torch.get_num_threads(), "steps": args.steps, "rows": rows,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
