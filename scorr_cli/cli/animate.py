"""``scorr animate SOURCE DRIVING -o OUT``: parse options, run the pipeline, print one summary line.

The options are ``AnimateConfig``'s fields (declared once, in the library, with their help texts).
"""

from __future__ import annotations

import sys
from typing import Optional

import typer

from scorr_cli.cli.common import handle_errors
from scorr_cli.cli.from_options import typer_command
from scorr_cli.pipeline.options import AnimateConfig

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


def _run(values: dict) -> None:
    from scorr_cli.pipeline.animate import animate

    config = AnimateConfig(**values)
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


animate_cmd = typer_command(AnimateConfig, run=_run,
                            doc="Animate a portrait with the motion of a driving video (or image).")


def register(app: typer.Typer) -> None:
    app.command("animate", no_args_is_help=True)(handle_errors(animate_cmd))
