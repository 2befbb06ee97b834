"""``scorr train``: train (or continue training) an MRFA model on face videos.

A thin layer: :class:`scorr_cli.train.options.TrainOptions` (the options, declared once) ->
:func:`scorr_cli.train.config.resolve_config` -> :func:`scorr_cli.train.trainer.train`.
"""

from __future__ import annotations

import typer

from scorr_cli.cli.common import handle_errors
from scorr_cli.cli.from_options import typer_command
from scorr_cli.train.options import TrainOptions

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


def _run(values: dict) -> None:
    from scorr_cli.train.config import resolve_config
    from scorr_cli.train.trainer import train

    options = TrainOptions(**values)
    options.check()
    cfg = resolve_config(options.data, preset=options.preset, config_file=options.config,
                         overrides=options.overrides(), resume=options.resume)
    result = train(cfg, resume=options.resume, show_progress=not options.quiet)
    if result.interrupted:
        raise typer.Exit(130)
    if result.checkpoint is not None:
        typer.echo(f"trained {result.step} steps ({result.epoch} epochs); "
                   f"weights: {result.final or result.checkpoint}")


train_cmd = handle_errors(typer_command(TrainOptions, run=_run, doc="Train an MRFA model (see `scorr train --help`)."))


def register(app: typer.Typer) -> None:
    app.command("train", help=HELP, no_args_is_help=False)(train_cmd)
