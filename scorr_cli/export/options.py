"""``scorr export``'s options, declared once (a light module: the CLI builds its options from it without
importing torch or onnx)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from scorr_cli.choices import ONNX_OPSETS
from scorr_cli.errors import InputError
from scorr_cli.options import argument, option

DEFAULT_OPSET = 17  # has GridSample (16+); every onnxruntime scorr supports (1.18+) runs it


@dataclass
class ExportOptions:
    """What ``scorr export`` can be told."""

    checkpoint: Optional[str] = argument("Weights by name (see `scorr weights list`) or path; default: the bundled "
                                         "default weights.", required=False)
    output: Path = option(None, "Folder to write: keypoints.onnx, source.onnx, render.onnx and manifest.json.",
                          "--output", "-o", required=True)
    force: bool = option(False, "Replace an existing output folder.", "--force")
    skip_updates: Optional[int] = option(None, "Export with the updater skipped on the N finest levels (see "
                                               "`scorr animate --help`); default: the model's own setting.",
                                         min=0, show_default=False)
    opset: int = option(DEFAULT_OPSET, f"ONNX opset, {ONNX_OPSETS[0]}-{ONNX_OPSETS[-1]}.", "--opset")

    def __post_init__(self) -> None:
        if self.output is None:
            raise ValueError("ExportOptions.output is required")
        self.output = Path(self.output)
        if self.opset not in ONNX_OPSETS:
            raise InputError(f"--opset {self.opset}: expected {ONNX_OPSETS[0]}-{ONNX_OPSETS[-1]} (GridSample needs "
                             f"{ONNX_OPSETS[0]}; torch's exporter writes at most {ONNX_OPSETS[-1]})")
