"""``scorr crop``: raw video / photo / folder -> model-ready 256² face crops (see scorr_cli.faces)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional

import typer

from scorr_cli.choices import FACE_DETECTORS
from scorr_cli.cli.common import handle_errors
from scorr_cli.errors import InputError
from scorr_cli.faces.config import CropConfig, PhotoMotionConfig
from scorr_cli.options import help_for

_H = functools.partial(help_for, CropConfig)
_D = CropConfig()
_HP = functools.partial(help_for, PhotoMotionConfig)


def crop(
    input: Path = typer.Argument(..., help="A video, a photo, or (with --dataset) a folder of videos (and photos, with --photo-frames)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output folder (default: <input stem>_crops beside the input)."),
    detector: str = typer.Option("auto", "--detector", metavar="|".join(FACE_DETECTORS), help="Face detector: dlib is offline; auto uses face-alignment when its weights are present."),
    weights_dir: Optional[Path] = typer.Option(None, "--weights-dir", help="Folder with face-alignment weights (torch hub root or its checkpoints/); env SCORR_FACE_WEIGHTS."),
    device: str = typer.Option("cpu", "--device", help="Device for face-alignment (cpu, cuda)."),
    size: int = typer.Option(_D.size, "--size", help=_H("size")),
    scale: float = typer.Option(_D.scale, "--scale", help=_H("scale")),
    shift_y: float = typer.Option(_D.shift_y, "--shift-y", help=_H("shift_y")),
    min_frames: int = typer.Option(_D.min_frames, "--min-frames", help=_H("min_frames")),
    every: int = typer.Option(_D.every, "--every", help=_H("every")),
    align: bool = typer.Option(_D.align, "--align/--no-align", help=_H("align")),
    border: str = typer.Option(_D.border, "--border", help=_H("border")),
    detect_max_side: int = typer.Option(_D.detect_max_side, "--detect-size", help=_H("detect_max_side")),
    face: str = typer.Option("all", "--face", help="Photos: 'all', 'largest' or a face number (0-based, left to right)."),
    dataset: Optional[Path] = typer.Option(None, "--dataset", help="Build a training set: every video under INPUT -> DATASET/train|test/<clip>/00000.png."),
    test_fraction: float = typer.Option(0.1, "--test-fraction", help="Dataset mode: share of source videos put in test/."),
    test_videos: Optional[list[str]] = typer.Option(None, "--test-videos", help="Dataset mode: file-name glob of videos that always go to test/ (repeatable; hold out whole identities)."),
    photo_frames: int = typer.Option(PhotoMotionConfig().frames, "--photo-frames", min=0, help=_HP("frames")),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs (dataset mode: redo finished clips)."),
) -> None:
    """Crop faces from a video (one clip per face track, audio kept), a photo, or a folder (--dataset)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from scorr_cli.faces.run import CropCallbacks, crop_path

    cfg = CropConfig(size=size, scale=scale, shift_y=shift_y, min_frames=min_frames, every=every, align=align,
                     border=border, detect_max_side=detect_max_side)
    console = Console(stderr=True, log_path=False)  # log lines name the video, not crop.py's source line
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as bar:
        tasks: dict[str, int] = {}

        def hook(label: str):
            def update(done: int, total: int) -> None:
                if label not in tasks:
                    tasks[label] = bar.add_task(label, total=total)
                bar.update(tasks[label], completed=done, total=total)
            return update

        def on_file(path: Path, k: int, total: int) -> None:
            hook("videos")(k, total)
            bar.console.log(f"cropping {path}")

        result = crop_path(input, output, cfg, detector=detector, weights_dir=weights_dir, device=device, face=face,
                           dataset=dataset, test_fraction=test_fraction, test_videos=tuple(test_videos or ()),
                           photos=PhotoMotionConfig(frames=photo_frames), force=force,
                           callbacks=CropCallbacks(analyse=hook("finding faces"), render=hook("writing crops"),
                                                   on_file=on_file))
        if "videos" in tasks:
            bar.update(tasks["videos"], completed=bar.tasks[tasks["videos"]].total)
    _summary(console, result)


def _summary(console, result) -> None:
    from rich.table import Table

    from scorr_cli.faces.dataset import DatasetReport
    from scorr_cli.faces.image import ImageCropResult

    if isinstance(result, DatasetReport):
        table = Table(title=f"dataset {result.out}")
        for col in ("file", "split", "status", "clips", "frames"):
            table.add_column(col)
        for v in result.videos:
            table.add_row(v.source.name, v.split, v.status, str(v.clips), str(v.frames))
        console.print(table)
        t = result.totals()
        typer.echo(f"{t['train']} train clip(s), {t['test']} test clip(s) in {result.out}")
        if not any(v.status in ("done", "skipped") for v in result.videos):
            raise InputError(f"{result.out}: no clip could be made: every video failed or had no face (see the table)")
    elif isinstance(result, ImageCropResult):
        typer.echo(f"{len(result.crops)} crop(s) of {result.detections} face(s) found -> {result.manifest}")
    else:
        table = Table(title=str(result.source))
        for col in ("clip", "frames", "start s", "end s", "output"):
            table.add_column(col)
        for c in result.clips:
            table.add_row(str(c.track_id), f"{c.start}-{c.end}", f"{c.start / result.fps:.2f}",
                          f"{(c.end + 1) / result.fps:.2f}", str(c.output))
        console.print(table)
        typer.echo(f"{len(result.clips)} clip(s) from {result.n_tracks} track(s), {len(result.cuts)} cut(s)")


def register(app: typer.Typer) -> None:
    app.command("crop")(handle_errors(crop))
