"""``scorr weights``: list checkpoints, import the authors' released ones, export your own."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from scorr_cli.cli.common import handle_errors

app = typer.Typer(help="List, import and export model weights.", no_args_is_help=True)


@app.command("list")
@handle_errors
def list_cmd() -> None:
    """Show the checkpoints scorr can use by name."""
    from rich.console import Console
    from rich.table import Table

    from scorr_cli.checkpoints import list_weights, read_checkpoint, user_weights_dir

    console = Console()
    entries = list_weights()
    if not entries:
        console.print(f"No weights found. Import some with `scorr weights import FILE --name NAME` "
                      f"(stored in {user_weights_dir()}).")
        return
    table = Table("name", "prior", "resolution", "size", "origin", "path")
    for e in entries:
        try:
            ckpt = read_checkpoint(e.path)
            prior, res = ckpt.config.prior + (" (prior-only)" if ckpt.config.refiner.prior_only else ""), \
                f"{ckpt.config.image_size}²"
        except Exception as ex:  # a broken file is listed, not fatal
            prior, res = f"unreadable: {ex}", "-"
        table.add_row(e.name, prior, res, f"{e.size_bytes / 1e6:.1f} MB", "shipped" if e.shipped else "user",
                      str(e.path))
    console.print(table)


@app.command("import")
@handle_errors
def import_cmd(
    checkpoint: Path = typer.Argument(..., help="The authors' checkpoint (vox.pth or celebvhq.pth)."),
    name: str = typer.Option(..., "--name", "-n", help="Name to use it by, e.g. `--checkpoint vox`."),
    force: bool = typer.Option(False, "--force", help="Replace existing weights of that name."),
) -> None:
    """Convert an authors' MRFA checkpoint to scorr's safetensors format (loads with weights_only)."""
    from scorr_cli.checkpoints import import_official, read_checkpoint, user_weights_dir
    from scorr_cli.checkpoints.registry import SUFFIX

    dest = user_weights_dir() / f"{name}{SUFFIX}"
    path = import_official(checkpoint, dest, name=name, force=force)
    ckpt = read_checkpoint(path)
    typer.echo(f"imported {checkpoint} as '{name}' ({ckpt.config.prior} prior"
               f"{', background predictor' if ckpt.config.background else ''}) -> {path}")


@app.command("export")
@handle_errors
def export_cmd(
    checkpoint: Path = typer.Argument(..., help="A scorr checkpoint, e.g. a run's final.safetensors."),
    dest: Path = typer.Argument(..., help="File to write (.safetensors)."),
    half: bool = typer.Option(False, "--half", help="Store floats as float16 (half the size; loads as float32)."),
    force: bool = typer.Option(False, "--force", help="Replace DEST if it exists."),
    skip_updates: Optional[int] = typer.Option(None, "--skip-updates", min=0, show_default=False,
                                               help="Store this as the model's default for `animate "
                                                    "--skip-updates` (see its help)."),
) -> None:
    """Copy a trained checkpoint for sharing: optional float16, no local paths in its metadata."""
    from scorr_cli.checkpoints import export_checkpoint

    path = export_checkpoint(checkpoint, dest, half=half, force=force, skip_updates=skip_updates)
    typer.echo(f"exported {checkpoint} -> {path} ({path.stat().st_size / 1e6:.1f} MB)")


def register(app_: typer.Typer) -> None:
    app_.add_typer(app, name="weights")
