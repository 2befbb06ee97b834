"""``scorr train``: train (or continue training) an MRFA model on face videos.

A thin layer: options -> :func:`scorr_cli.train.config.resolve_config` -> :func:`scorr_cli.train.trainer.train`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from scorr_cli.choices import PERCEPTUAL_BACKENDS, PRIORS, TRAIN_PRECISIONS, one_of
from scorr_cli.cli.common import fail, handle_errors

ABLATIONS = {
    "no-occlusion-update": "occlusion_update",
    "no-flow-update": "flow_update",
    "no-warped-source-feature": "warped_source_feature",
    "no-source-image": "source_image",
}

HELP = (
    "Train an MRFA model on a dataset of face videos (the paper's recipe), on one CPU/GPU or many.\n\n"
    "The dataset root holds train/ (and optionally test/, for a per-epoch reconstruction L1): one clip per "
    "entry, either a folder of PNG/JPEG frames or a video file (mp4, mov, avi, mkv, webm, gif, m4v), as "
    "`scorr crop --dataset` writes. Clip names 'ID#rest' (VoxCeleb) share identity ID for id sampling.\n\n"
    "Multi-GPU / multi-node: `torchrun --nproc_per_node N -m scorr_cli train ...` (plus --nnodes/--rdzv "
    "options for several machines): DDP, DistributedSampler, SyncBatchNorm; --batch-size stays global. "
    "Ctrl-C or SIGTERM saves a checkpoint and exits with code 130; continue with `scorr train --resume OUT`.\n\n"
    "Writes under --out: checkpoints/step-N.safetensors (scorr format, usable with --checkpoint) and "
    "step-N.state.safetensors (optimiser, scheduler, RNG, sampler position; no pickle), config.yaml (the "
    "resolved configuration, re-usable with --config), metrics.jsonl, samples/step-N.png (source, driving, "
    "prediction, warped source, occlusion), tensorboard/ (if tensorboard is installed) and "
    "final.safetensors when the run completes.\n\n"
    "Errors, one line each, exit code 2: dataset 'vox' not found at ROOT; dataset root ROOT does not exist; "
    "ROOT has no train/ folder; ROOT/train holds no clips; clip NAME has N frame(s), at least 2 are needed; "
    "the training set has N items per epoch, fewer than one batch. Missing VGG-19 weights: exit code 4. "
    "An --out that already holds a run without --resume: exit code 3."
)


def _put(tree: dict[str, Any], dotted: str, value: Any) -> None:
    if value is None:
        return
    *parents, leaf = dotted.split(".")
    node = tree
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value


def _path(p: Optional[Path]) -> Optional[str]:
    return str(p) if p else None


def _ablations(names: Optional[List[str]]) -> dict[str, bool]:
    out = {}
    for name in names or []:
        if name not in ABLATIONS:
            raise fail(f"unknown --ablation {name!r}; expected one of {', '.join(ABLATIONS)}", 2)
        out[f"model.refiner.{ABLATIONS[name]}"] = False
    return out


def _check_choices(data, resume, preset, prior, precision, perceptual, data_root) -> None:
    from scorr_cli.train.config import DATA_NAMES, TRAIN_PRESETS

    if data is None and resume is None:
        raise fail("--data is required (vox, celebvhq or a dataset folder), unless continuing with --resume", 2)
    for flag, value, valid in (("--preset", preset, TRAIN_PRESETS), ("--prior", prior, PRIORS),
                               ("--precision", precision, TRAIN_PRECISIONS),
                               ("--perceptual", perceptual, PERCEPTUAL_BACKENDS)):
        if value is not None and value not in valid:
            raise fail(f"{flag} must be {one_of(valid)}, got {value!r}", 2)
    if data_root is not None and data is not None and data not in DATA_NAMES:
        raise fail("--data-root goes with --data vox|celebvhq; for your own dataset pass --data PATH", 2)


@handle_errors
def train_cmd(
    data: Optional[str] = typer.Option(
        None, "--data", "-d", metavar="vox|celebvhq|PATH",
        help="Dataset: 'vox' or 'celebvhq' select that preset (model + schedule) and its default root "
             "(data/voxceleb1-png, data/celebvhq256-png); a PATH is a dataset root trained with the 'vox' "
             "preset unless --preset says otherwise. Required unless --resume."),
    data_root: Optional[Path] = typer.Option(
        None, "--data-root", help="Dataset root for a named --data (overrides the default location)."),
    preset: Optional[str] = typer.Option(
        None, "--preset", "--model-preset", metavar="vox|celebvhq|lite|tiny",
        help="Training preset: model size + schedule. vox/celebvhq: the authors' recipes (100 epochs, "
             "batch 80); lite: a narrow 256² model (60 epochs, batch 16); tiny: a 64² smoke-test model."),
    prior: Optional[str] = typer.Option(
        None, "--prior", metavar="mtia|tpsm|fomm",
        help="Prior motion model (tpsm: no jacobian loss, LR milestones [70, 90], TPS dropout)."),
    prior_only: Optional[bool] = typer.Option(
        None, "--prior-only/--refine", help="Train the prior-only baseline (no refinement network)."),
    ablation: Optional[List[str]] = typer.Option(
        None, "--ablation", metavar="NAME",
        help="Switch off part of the refinement (repeatable): " + ", ".join(ABLATIONS) + "."),
    corr_levels: Optional[int] = typer.Option(None, "--corr-levels", min=1,
                                              help="Correlation pyramid levels (default 2)."),
    corr_radius: Optional[int] = typer.Option(None, "--corr-radius", min=0,
                                              help="Correlation lookup radius r, window (2r+1)² (default 3)."),
    config: Optional[Path] = typer.Option(
        None, "--config", "-c", help="YAML file overriding any part of the configuration (see the saved "
                                     "config.yaml of a run for every key); command-line options win over it."),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Run folder for checkpoints, logs and samples (default: runs/train, or the "
                                  "resumed run's folder)."),
    resume: Optional[Path] = typer.Option(
        None, "--resume", help="Continue a run: its folder, its checkpoints/ folder or a step-N.safetensors. "
                               "Restores weights, optimiser, scheduler, epoch/step, sampler position and RNG; "
                               "uses the run's config.yaml unless --config is given."),
    init: Optional[Path] = typer.Option(
        None, "--init", help="Fine-tune: start from this scorr checkpoint's weights (tensors whose name and shape "
                             "match), with a fresh optimiser and schedule. Not a resume."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Number of epochs."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=0,
                                            help="Stop after this many optimiser steps in total (resumable)."),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", "-b", min=1,
        help="Global batch per optimiser step, summed over all GPUs/processes and --accum micro-batches."),
    accum: Optional[int] = typer.Option(None, "--accum", min=1, help="Gradient-accumulation micro-batches per step."),
    lr: Optional[float] = typer.Option(None, "--lr", min=0.0, help="Adam learning rate (default 2e-4)."),
    num_workers: Optional[int] = typer.Option(None, "--num-workers", min=0, help="Data-loader workers per process."),
    device: Optional[str] = typer.Option(None, "--device", metavar="auto|cpu|cuda",
                                         help="Where to train (auto: CUDA if available)."),
    precision: Optional[str] = typer.Option(None, "--precision", metavar="fp32|bf16",
                                            help="fp32, or bf16 autocast (for CUDA GPUs with bf16)."),
    perceptual: Optional[str] = typer.Option(
        None, "--perceptual", metavar="vgg19|random|none",
        help="Reconstruction loss: vgg19 (ImageNet VGG-19 perceptual pyramid, the paper's), random (a fixed "
             "random VGG-19: offline smoke tests), none (pixel L1 + SSIM pyramid only). Recorded in checkpoints."),
    landmarks: Optional[float] = typer.Option(
        None, "--landmarks", min=0.0, metavar="WEIGHT",
        help="Landmark guidance (not in the paper): pull the 10 keypoints toward dlib landmark groups (eyes, "
             "brows, nose, lips, jaw, chin) with this weight; needs landmarks.npy from `scorr crop --dataset`. "
             "0 = the paper's losses (default)."),
    vgg_weights: Optional[Path] = typer.Option(
        None, "--vgg-weights", help="ImageNet VGG-19 file (vgg19-dcbbe2e5.pth) (default: the torch hub cache)."),
    checkpoint_every: Optional[int] = typer.Option(
        None, "--checkpoint-every", min=0, help="Save every N optimiser steps (always at each epoch end; 0: only there)."),
    keep: Optional[int] = typer.Option(None, "--keep", min=0, help="Checkpoints to keep (0: all)."),
    sample_every: Optional[int] = typer.Option(None, "--sample-every", min=0,
                                               help="Write a sample grid every N steps (0: never)."),
    log_every: Optional[int] = typer.Option(None, "--log-every", min=1,
                                            help="Steps between metrics.jsonl records / log lines."),
    threads: Optional[int] = typer.Option(
        None, "--threads", min=1, help="CPU threads per process (default: torch's; use 1 on a busy machine)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for initialisation, data order and augmentation."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """Train an MRFA model (see `scorr train --help`)."""
    from scorr_cli.train.config import resolve_config
    from scorr_cli.train.trainer import train

    _check_choices(data, resume, preset, prior, precision, perceptual, data_root)
    # Every option's place in the configuration tree (None: not given, the preset/--config value stays).
    given = {
        "data_root": _path(data_root), "model.prior": prior, "model.refiner.prior_only": prior_only,
        "model.refiner.corr_levels": corr_levels, "model.refiner.corr_radius": corr_radius,
        "run.out": _path(out), "run.init": _path(init), "schedule.epochs": epochs, "schedule.max_steps": max_steps,
        "schedule.batch_size": batch_size, "schedule.accum": accum, "schedule.lr": lr,
        "run.num_workers": num_workers, "run.device": device, "run.precision": precision,
        "loss.perceptual_backend": perceptual, "loss.landmarks": landmarks, "run.vgg_weights": _path(vgg_weights),
        "run.checkpoint_every": checkpoint_every, "run.keep": keep, "run.sample_every": sample_every,
        "run.log_every": log_every, "run.threads": threads, "run.seed": seed, "data.seed": seed,
        **_ablations(ablation),
    }
    over: dict[str, Any] = {}
    for dotted, value in given.items():
        _put(over, dotted, value)

    cfg = resolve_config(data, preset=preset, config_file=config, overrides=over, resume=resume)
    result = train(cfg, resume=resume, show_progress=not quiet)
    if result.interrupted:
        raise typer.Exit(130)
    if result.checkpoint is not None:
        typer.echo(f"trained {result.step} steps ({result.epoch} epochs); "
                   f"weights: {result.final or result.checkpoint}")


def register(app: typer.Typer) -> None:
    app.command("train", help=HELP, no_args_is_help=False)(train_cmd)
