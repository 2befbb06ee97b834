"""``manifest.json`` beside the exported graphs: what they are, where they came from and how well they
match torch. The onnxruntime engine takes every name and size from it, never from the model."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from scorr_cli import __version__
from scorr_cli.errors import InputError
from scorr_cli.fsutil import atomic_write_text

FORMAT = "scorr-onnx"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


@dataclass
class Manifest:
    image_size: int
    num_kp: int
    prior: str
    keypoint_outputs: list[str]  # keys of the keypoints graph's outputs (and of the engine's detect())
    source_outputs: list[str]  # the source graph's outputs, in order
    checkpoint: dict[str, str]  # path and sha256 of the weights
    opset: int
    graphs: dict[str, dict[str, Any]]  # keypoints | source | render -> file, inputs, outputs
    max_abs_diff: dict[str, float] = field(default_factory=dict)  # per graph, against torch, at export
    exporter: str = "torchscript"
    scorr_version: str = __version__
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def write(self, folder: Path) -> Path:
        path = Path(folder) / MANIFEST
        atomic_write_text(path, json.dumps(asdict(self), indent=2) + "\n")
        return path

    @property
    def current(self) -> bool:
        """Written by this scorr version (a cached export from another version is made again)."""
        return self.scorr_version == __version__

    @classmethod
    def read(cls, folder: str | Path) -> "Manifest":
        """The manifest of an export folder; one-line errors for a missing, foreign or damaged one."""
        path = Path(folder) / MANIFEST
        if not path.is_file():
            raise InputError(f"{path}: not found (make the folder with `scorr export`)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise InputError(f"{path}: unreadable ({e})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InputError(f"{path}: not a scorr ONNX manifest")
        if data.get("format_version") != FORMAT_VERSION:
            raise InputError(f"{path}: format version {data.get('format_version')}, this scorr reads "
                             f"{FORMAT_VERSION} (export again with `scorr export --force`)")
        missing = [f.name for f in fields(cls) if f.name not in data]
        if missing:
            raise InputError(f"{path}: incomplete manifest (no {', '.join(missing)})")
        return cls(**{f.name: data[f.name] for f in fields(cls)})
