"""``scorr batch``: a manifest (or two folders) of jobs -> OUTDIR, resumable; ``--status OUTDIR`` reports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import typer

from scorr_cli.cli.common import handle_errors
from scorr_cli.cli.from_options import typer_command
from scorr_cli.errors import InputError
from scorr_cli.options import option, option_fields
from scorr_cli.pipeline.options import PAIR_OPTIONS

_EPILOG = (
    "Examples: `scorr batch jobs.csv -o out/` (CSV header: source,driving[,output][," + ",".join(PAIR_OPTIONS) + "]; "
    "JSONL: one object per line with the same keys); "
    "`scorr batch --sources faces/ --drivings clips/ --pairing product -o out/`; "
    "`torchrun --nproc_per_node 8 -m scorr_cli batch jobs.csv -o out/` (one process per GPU, items sharded by "
    "RANK/WORLD_SIZE); `scorr batch --status out/`."
)


def _console():
    from rich.console import Console

    return Console(stderr=True)


class _RichProgress:
    """Overall bar (items) + per-item bar (frames of its current pass: keypoints of the driving clip, then
    rendering; each counts the clip's frames once)."""

    def __init__(self, console) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
            TimeRemainingColumn

        self.progress = Progress(TextColumn("{task.description:<32.32}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                                 disable=not console.is_terminal, transient=False)
        self.overall = None
        self.item = None
        self.name = ""

    def start(self, total: int) -> None:
        self.overall = self.progress.add_task("batch", total=total)
        self.item = self.progress.add_task("", total=None, visible=False)

    def item_start(self, item, frames) -> None:
        self.name = str(item.output)
        self.progress.update(self.item, description=self.name, completed=0, total=frames, visible=True)

    def item_frames(self, stage: str, done: int, total) -> None:
        self.progress.update(self.item, description=f"{self.name} {stage}", completed=done, total=total)

    def item_end(self, outcome) -> None:
        self.progress.advance(self.overall)


def _summary(outcomes, title: str):
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for col in ("item", "status", "frames", "seconds", "reason"):
        table.add_column(col, overflow="fold")
    style = {"done": "green", "failed": "red", "skipped": "yellow"}
    for o in outcomes:
        table.add_row(str(o.item.output), f"[{style.get(o.status, '')}]{o.status}[/]", str(o.frames or ""),
                      f"{o.seconds:.1f}" if o.seconds else "", o.reason)
    return table


def _show_status(outdir: Path) -> int:
    from rich.table import Table

    from scorr_cli.batch.state import merged_state, state_dir

    if not state_dir(outdir).is_dir():
        raise InputError(f"{outdir}: no batch state here (expected {state_dir(outdir)}/state.rank*.json)")
    records = merged_state(outdir)
    console = _console()
    table = Table(title=f"{outdir}: {len(records)} item(s) recorded")
    for col in ("item", "status", "rank", "frames", "seconds", "reason"):
        table.add_column(col, overflow="fold")
    for key, rec in sorted(records.items()):
        exists = (outdir / key).exists()
        status = rec.status if exists or rec.status != "done" else "done (output missing)"
        table.add_row(key, f"[{'green' if rec.status == 'done' and exists else 'red'}]{status}[/]", str(rec.rank),
                      str(rec.frames or ""), f"{rec.seconds:.1f}", rec.reason)
    console.print(table)
    n_done = sum(r.status == "done" for r in records.values())
    n_failed = sum(r.status == "failed" for r in records.values())
    typer.echo(f"{n_done} done, {n_failed} failed")
    return 1 if n_failed else 0


@dataclass
class _Actions:
    """What ``batch`` does instead of running the jobs."""

    status: Optional[Path] = option(None, "Print the merged state of OUTDIR (all ranks) and exit (non-zero if "
                                          "anything failed).", show_default=False)
    dry_run: bool = option(False, "List what would be run or skipped, and do nothing.", "--dry-run")


def _run(values: dict) -> None:
    from scorr_cli.batch import BatchConfig, BatchJobs, BatchRunner, rank_info

    split = {cls: {f.name: values[f.name] for f in option_fields(cls)} for cls in (BatchJobs, BatchConfig, _Actions)}
    actions = _Actions(**split[_Actions])
    if actions.status is not None:
        raise typer.Exit(_show_status(actions.status))
    config = BatchConfig(**split[BatchConfig])
    items = BatchJobs(**split[BatchJobs]).items(config.format)
    rank = rank_info()
    console = _console()
    who = f"rank {rank.rank}/{rank.world_size}: " if rank.distributed else ""
    if actions.dry_run:
        _show_plan(console, items, config, rank, who)
        return
    config.outdir.mkdir(parents=True, exist_ok=True)
    bars = _RichProgress(console)
    try:
        with bars.progress:
            report = BatchRunner(config, rank=rank).run(items, bars)
    except KeyboardInterrupt:
        console.print(f"{who}interrupted: finished outputs are kept and recorded; run the same command again "
                      "to resume")
        raise
    console.print(_summary(report.outcomes, f"{who}batch summary"))
    n_done, n_failed = report.count("done"), report.count("failed")
    old_failed = len(report.failed) - n_failed
    typer.echo(f"{who}{n_done} done, {n_failed} failed, {report.count('skipped')} skipped"
               + (f" ({old_failed} failed before; --retry-failed)" if old_failed else "")
               + f" in {report.seconds:.1f} s")
    if report.failed:
        raise typer.Exit(1)


def _show_plan(console, items, config, rank, who: str) -> None:
    from rich.table import Table

    from scorr_cli.batch import plan

    steps = plan(items, config, rank)
    table = Table(title=f"{who}{len(steps)} of {len(items)} item(s) (dry run)")
    for col in ("output", "source", "driving", "action", "why"):
        table.add_column(col, overflow="fold")
    for item, action, why in steps:
        table.add_row(str(item.output), str(item.source), str(item.driving), action, why)
    console.print(table)
    typer.echo(f"{sum(a == 'run' for _, a, _ in steps)} to run, {sum(a == 'skip' for _, a, _ in steps)} to skip")


def _batch_command():
    from scorr_cli.batch.manifest import BatchJobs
    from scorr_cli.batch.runner import BatchConfig

    return typer_command(BatchJobs, BatchConfig, _Actions, run=_run, doc=_DOC)


_DOC = """Animate many (source, driving) pairs with one model load; resumable and shardable under torchrun.

A state file in OUTDIR records every finished and failed item (with its reason): a re-run skips
what is done, --retry-failed runs the failures again. One bad item never stops the others; the exit
code is 1 if any item failed.
"""


def register(app: typer.Typer) -> None:
    app.command("batch", epilog=_EPILOG)(handle_errors(_batch_command()))
