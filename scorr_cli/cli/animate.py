"""``scorr animate SOURCE DRIVING -o OUT``: parse options, run the pipeline, print one summary line.

Defaults and help texts come from ``AnimateConfig`` so they cannot drift from the library.
"""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path
from typing import Optional

import typer

from scorr_cli.cli.common import handle_errors
from scorr_cli.pipeline.animate import AnimateConfig

_DEFAULTS = {f.name: f.default for f in fields(AnimateConfig)}


def _h(name: str) -> str:
    return AnimateConfig.help_for(name)


LOG_EVERY_S = 10.0  # without a terminal (nohup, CI, a pipe): one progress line per stage this often


def _progress():
    """A rich progress bar with fps and ETA on a terminal; otherwise (logs, pipes, CI) a plain line for a
    stage that runs longer than LOG_EVERY_S, every LOG_EVERY_S, and its last one when it completes
    (short runs stay quiet: stderr keeps to the one-line error contract)."""
    import time

    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    class FpsColumn(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:5.1f} fps" if task.speed else "  -- fps", style="progress.data.speed")

    console = Console(stderr=True)
    progress = Progress(TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(), FpsColumn(),
                        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
                        disable=not console.is_terminal, transient=False)
    tasks: dict[str, int] = {}
    started: dict[str, float] = {}
    last_line: dict[str, float] = {}

    def log_line(stage: str, done: int, total: Optional[int]) -> None:
        now = time.monotonic()
        t0 = started.setdefault(stage, now)
        finished = total is not None and done >= total
        due = now - last_line.get(stage, t0) >= LOG_EVERY_S
        if not (due or (finished and stage in last_line)):
            return
        last_line[stage] = now
        of = f"/{total}" if total is not None else ""
        rate = f", {done / (now - t0):.1f}/s" if now > t0 and done else ""
        print(f"scorr animate: {stage} {done}{of}{rate}", file=sys.stderr, flush=True)

    def update(stage: str, done: int, total: Optional[int]) -> None:
        if not console.is_terminal:
            log_line(stage, done, total)
            return
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done, total=total)

    return progress, update


def animate_cmd(
    source: Path = typer.Argument(..., help=_h("source"), show_default=False),
    driving: Path = typer.Argument(..., help=_h("driving"), show_default=False),
    output: Path = typer.Option(..., "--output", "-o", help=_h("output"), show_default=False),
    format: Optional[str] = typer.Option(_DEFAULTS["format"], "--format", "-f", help=_h("format")),
    force: bool = typer.Option(_DEFAULTS["force"], "--force", help=_h("force")),
    checkpoint: Optional[str] = typer.Option(_DEFAULTS["checkpoint"], "--checkpoint", "-c", help=_h("checkpoint")),
    device: str = typer.Option(_DEFAULTS["device"], "--device", help=_h("device")),
    precision: str = typer.Option(_DEFAULTS["precision"], "--precision", help=_h("precision")),
    batch_size: int = typer.Option(_DEFAULTS["batch_size"], "--batch-size", "-b", min=1, help=_h("batch_size")),
    mode: str = typer.Option(_DEFAULTS["mode"], "--mode", help=_h("mode")),
    adapt_scale: bool = typer.Option(_DEFAULTS["adapt_scale"], "--adapt-scale/--no-adapt-scale",
                                     help=_h("adapt_scale")),
    crop: bool = typer.Option(_DEFAULTS["crop"], "--crop/--no-crop", help=_h("crop")),
    detector: str = typer.Option(_DEFAULTS["detector"], "--detector", help=_h("detector")),
    paste_back: bool = typer.Option(_DEFAULTS["paste_back"], "--paste-back", help=_h("paste_back")),
    find_best_frame: bool = typer.Option(_DEFAULTS["find_best_frame"], "--find-best-frame", help=_h("find_best_frame")),
    best_frame: Optional[int] = typer.Option(_DEFAULTS["best_frame"], "--best-frame", min=0, help=_h("best_frame")),
    audio: bool = typer.Option(_DEFAULTS["audio"], "--audio/--no-audio", help=_h("audio")),
    preview: bool = typer.Option(_DEFAULTS["preview"], "--preview", help=_h("preview")),
    max_frames: Optional[int] = typer.Option(_DEFAULTS["max_frames"], "--max-frames", min=1, help=_h("max_frames")),
    size: Optional[int] = typer.Option(_DEFAULTS["size"], "--size", min=32, help=_h("size")),
    accept_damaged: bool = typer.Option(_DEFAULTS["accept_damaged"], "--accept-damaged", help=_h("accept_damaged")),
) -> None:
    """Animate a portrait with the motion of a driving video (or image)."""
    from scorr_cli.pipeline.animate import animate

    config = AnimateConfig(
        source=source, driving=driving, output=output, format=format, force=force, checkpoint=checkpoint,
        device=device, precision=precision, batch_size=batch_size, mode=mode, adapt_scale=adapt_scale, crop=crop,
        detector=detector, paste_back=paste_back, find_best_frame=find_best_frame, best_frame=best_frame,
        audio=audio, preview=preview, max_frames=max_frames, size=size, accept_damaged=accept_damaged,
    )
    progress, update = _progress()
    with progress:
        result = animate(config, progress=update)
    rate = f" at {result.fps} fps" if result.fps is not None else ""
    extras = [f"reference frame {result.reference_frame}" if result.reference_frame is not None else None,
              "with audio" if result.has_audio else None, f"crop: {result.cropper}",
              f"preview: {result.preview}" if result.preview else None, result.damage]
    typer.echo(f"wrote {result.output} ({result.frames} frame{'s' * (result.frames != 1)}{rate}, "
               f"{result.size[0]}x{result.size[1]}; {', '.join(e for e in extras if e)}) "
               f"in {result.seconds:.1f} s on {result.device}", file=sys.stdout)


def register(app: typer.Typer) -> None:
    app.command("animate", no_args_is_help=True)(handle_errors(animate_cmd))
