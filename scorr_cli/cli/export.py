"""``scorr export [CHECKPOINT] -o DIR``: write a checkpoint as ONNX graphs (see ``scorr_cli.export``).

The options are ``ExportOptions``' fields (declared once, in the library, with their help texts).
"""

from __future__ import annotations

import typer

from scorr_cli.cli.common import handle_errors
from scorr_cli.cli.from_options import typer_command
from scorr_cli.export.options import ExportOptions


def _run(values: dict) -> None:
    from scorr_cli.export import export_onnx
    from scorr_cli.export.manifest import MANIFEST

    options = ExportOptions(**values)
    manifest = export_onnx(options.checkpoint, options.output, options.force, options.opset, options.skip_updates)
    files = ", ".join(graph["file"] for graph in manifest.graphs.values())
    worst = max(manifest.max_abs_diff.values())
    typer.echo(f"exported {manifest.checkpoint['path']} -> {options.output} ({files}, {MANIFEST}; "
               f"{manifest.image_size}², opset {manifest.opset}; largest difference from torch {worst:.1e}); use it "
               f"with `scorr animate --backend onnx --onnx-dir {options.output}`")


export_cmd = typer_command(ExportOptions, run=_run, doc="Export a checkpoint as ONNX graphs for onnxruntime "
                                                        "(`--backend onnx`); needs scorr's onnx extra.")


def register(app: typer.Typer) -> None:
    app.command("export")(handle_errors(export_cmd))
