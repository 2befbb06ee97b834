"""``scorr batch``: a manifest (or two folders) of jobs -> OUTDIR, resumable; ``--status OUTDIR`` reports."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from scorr_cli.choices import MOTION_MODES, OUTPUT_FORMATS
from scorr_cli.cli.common import handle_errors
from scorr_cli.errors import InputError

_EPILOG = (
    "Examples: `scorr batch jobs.csv -o out/` (CSV header: source,driving[,output][,mode,adapt_scale,crop,"
    "max_frames,best_frame,format,audio]; JSONL: one object per line with the same keys); "
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


def batch_cmd(
    manifest: Optional[Path] = typer.Argument(None, help="CSV or JSONL manifest: source, driving, optional output "
                                              "and per-item options (paths relative to the manifest).",
                                              show_default=False),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="OUTDIR for every output and the state "
                                          "files (.scorr-batch/).", show_default=False),
    sources: Optional[Path] = typer.Option(None, "--sources", help="Folder of source portraits (instead of a "
                                           "manifest).", show_default=False),
    drivings: Optional[Path] = typer.Option(None, "--drivings", help="Folder of driving videos/images (with "
                                            "--sources).", show_default=False),
    pairing: str = typer.Option("product", "--pairing", help="With folders: product (every source x every "
                                "driving) or zip (i-th with i-th, by sorted name)."),
    name: str = typer.Option("{source}__{driving}.{ext}", "--name", help="Output naming scheme when a row has "
                             "no output: fields {source} {driving} (file stems), {index}, {ext}, {mode}."),
    status: Optional[Path] = typer.Option(None, "--status", help="Print the merged state of OUTDIR (all ranks) "
                                          "and exit (non-zero if anything failed).", show_default=False),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be run or skipped, and do nothing."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run again the items recorded as failed "
                                      "(they are skipped otherwise)."),
    force: bool = typer.Option(False, "--force", help="Overwrite outputs that exist but are not recorded done."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", "-c", help="Weights by name or path (default: "
                                             "the bundled default weights)."),
    device: str = typer.Option("auto", "--device", help="auto (under torchrun: the local rank's GPU), cpu, cuda, "
                               "cuda:1, mps."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, or bf16/fp16 mixed precision on CUDA."),
    batch_size: int = typer.Option(4, "--batch-size", "-b", min=1, help="Frames per engine call."),
    mode: str = typer.Option("auto", "--mode", help="relative, absolute or auto (relative for videos, absolute "
                             "for a driving image); a manifest 'mode' column overrides it per item."),
    adapt_scale: bool = typer.Option(True, "--adapt-scale/--no-adapt-scale", help="Scale relative motion by the "
                                     "face-size ratio."),
    crop: bool = typer.Option(True, "--crop/--no-crop", help="Face-crop sources and driving clips (centre square "
                              "with --no-crop)."),
    detector: str = typer.Option("auto", "--detector", help="Face detector: auto, dlib (offline), face-alignment."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", min=1, help="Animate only the first N driving "
                                             "frames of each clip."),
    format: Optional[str] = typer.Option(None, "--format", "-f", help="Output format for named outputs: mp4 "
                                         "(default), gif or png (a folder of frames)."),
    audio: bool = typer.Option(True, "--audio/--no-audio", help="Copy driving audio into MP4 outputs."),
) -> None:
    """Animate many (source, driving) pairs with one model load; resumable and shardable under torchrun.

    A state file in OUTDIR records every finished and failed item (with its reason): a re-run skips
    what is done, --retry-failed runs the failures again. One bad item never stops the others; the exit
    code is 1 if any item failed.
    """
    from scorr_cli.batch import BatchConfig, BatchRunner, build_items, pair_folders, plan, rank_info, read_manifest

    if status is not None:
        raise typer.Exit(_show_status(status))
    if output is None:
        raise InputError("missing -o/--output OUTDIR")
    if manifest is not None and (sources or drivings):
        raise InputError("give a manifest or --sources/--drivings, not both")
    if manifest is not None:
        rows = read_manifest(manifest)
    elif sources and drivings:
        rows = pair_folders(sources, drivings, pairing)
    else:
        raise InputError("give a manifest (CSV/JSONL) or both --sources DIR and --drivings DIR")
    if mode not in MOTION_MODES:
        raise InputError(f"--mode {mode}: expected auto, relative or absolute")
    if format is not None and format not in OUTPUT_FORMATS:
        raise InputError(f"--format {format}: expected mp4, gif or png")
    items = build_items(rows, name, format)
    config = BatchConfig(outdir=output, checkpoint=checkpoint, device=device, precision=precision,
                         batch_size=batch_size, mode=mode, adapt_scale=adapt_scale, crop=crop, detector=detector,
                         max_frames=max_frames, format=format, audio=audio, retry_failed=retry_failed, force=force)
    rank = rank_info()
    console = _console()
    who = f"rank {rank.rank}/{rank.world_size}: " if rank.distributed else ""
    if dry_run:
        from rich.table import Table

        steps = plan(items, config, rank)
        table = Table(title=f"{who}{len(steps)} of {len(items)} item(s) (dry run)")
        for col in ("output", "source", "driving", "action", "why"):
            table.add_column(col, overflow="fold")
        for item, action, why in steps:
            table.add_row(str(item.output), str(item.source), str(item.driving), action, why)
        console.print(table)
        typer.echo(f"{sum(a == 'run' for _, a, _ in steps)} to run, {sum(a == 'skip' for _, a, _ in steps)} "
                   "to skip")
        return
    output.mkdir(parents=True, exist_ok=True)
    runner = BatchRunner(config, rank=rank)
    bars = _RichProgress(console)
    try:
        with bars.progress:
            report = runner.run(items, bars)
    except KeyboardInterrupt:
        console.print(f"{who}interrupted: finished outputs are kept and recorded; run the same command again "
                      "to resume")
        raise
    console.print(_summary(report.outcomes, f"{who}batch summary"))
    n_done, n_failed = report.count("done"), report.count("failed")
    n_skipped = report.count("skipped")
    old_failed = len(report.failed) - n_failed
    typer.echo(f"{who}{n_done} done, {n_failed} failed, {n_skipped} skipped"
               + (f" ({old_failed} failed before; --retry-failed)" if old_failed else "")
               + f" in {report.seconds:.1f} s")
    if report.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("batch", epilog=_EPILOG)(handle_errors(batch_cmd))
