"""Named weights: where scorr looks for checkpoints and how a name or path becomes a file."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from scorr_cli.errors import InputError, MissingWeightsError

DEFAULT_NAME = "scorr-lite"  # the model shipped in weights/ (see weights/README.md)
SUFFIX = ".safetensors"


def user_weights_dir() -> Path:
    """Where ``scorr weights import`` stores weights: ``$SCORR_WEIGHTS_DIR`` or the XDG data folder."""
    env = os.environ.get("SCORR_WEIGHTS_DIR")
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "scorr" / "weights"


def search_dirs() -> list[Path]:
    """User weights first, then the weights shipped with scorr (source checkout or installed data)."""
    dirs = [user_weights_dir(), Path(__file__).resolve().parents[2] / "weights",
            Path(sys.prefix) / "share" / "scorr" / "weights"]
    seen, out = set(), []
    for d in dirs:
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out


@dataclass(frozen=True)
class WeightsEntry:
    name: str
    path: Path
    size_bytes: int
    shipped: bool  # comes with scorr rather than imported by the user


def list_weights() -> list[WeightsEntry]:
    user = user_weights_dir()
    entries: dict[str, WeightsEntry] = {}
    for d in search_dirs():
        if not d.is_dir():
            continue
        for f in sorted(d.glob(f"*{SUFFIX}")):
            name = f.name[: -len(SUFFIX)]
            entries.setdefault(name, WeightsEntry(name, f, f.stat().st_size, d != user))
    return list(entries.values())


def resolve_checkpoint(name_or_path: str | os.PathLike | None) -> Path:
    """A path to an existing file, a registered name, or None for the default model."""
    if name_or_path is None:
        name_or_path = DEFAULT_NAME
    text = str(name_or_path)
    p = Path(text).expanduser()
    looks_like_path = p.suffix or os.sep in text or text.startswith(".")
    if looks_like_path:
        if p.is_file():
            return p
        raise InputError(f"{p}: checkpoint not found")
    for entry in list_weights():
        if entry.name == text:
            return entry.path
    known = ", ".join(e.name for e in list_weights()) or "none"
    if text == DEFAULT_NAME:
        raise MissingWeightsError(f"default weights '{DEFAULT_NAME}{SUFFIX}' not found in "
                                  f"{', '.join(str(d) for d in search_dirs())}; pass --checkpoint PATH "
                                  "or reinstall scorr with its weights/ folder")
    raise InputError(f"unknown checkpoint '{text}' (known: {known}); see `scorr weights list`")
