"""What a batch does: items (source, driving, output, per-item options) from a manifest or two folders.

A manifest is CSV (header row) or JSONL (one object per line) with columns ``source``, ``driving``,
optional ``output`` and optional per-item options (:data:`ITEM_OPTIONS`). Relative paths in a
manifest are relative to the manifest's folder; a relative ``output`` is relative to OUTDIR.
Without an ``output`` the name comes from the naming scheme (``--name``), by default
``{source}__{driving}.{ext}``.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import string
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from scorr_cli.errors import InputError
from scorr_cli.options import argument, option
from scorr_cli.pipeline.options import PAIR_OPTIONS, RenderOptions

DEFAULT_NAME = "{source}__{driving}.{ext}"
NAME_FIELDS = ("source", "driving", "index", "ext", "mode")
PAIRINGS = ("zip", "product")



def _item_option_types() -> dict[str, type]:
    """The per-pair render options with the type their value is parsed as (bool, int or str)."""
    hints = typing.get_type_hints(RenderOptions)
    types = {}
    for name in PAIR_OPTIONS:
        args = [a for a in typing.get_args(hints[name]) if a is not type(None)] or [hints[name]]
        types[name] = args[0]
    return types


# Per-item options a manifest row may set (the rest come from the command line), with their parsers.
ITEM_OPTIONS: dict[str, type] = _item_option_types()


@dataclass(frozen=True)
class BatchItem:
    """One job. ``key`` (the output path relative to OUTDIR) identifies it in state files."""

    index: int
    source: Path
    driving: Path
    output: Path
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def key(self) -> str:
        return self.output.as_posix()

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "source": str(self.source), "driving": str(self.driving), "options": self.options}


def _parse_bool(text: str, where: str) -> bool:
    t = str(text).strip().lower()
    if t in ("1", "true", "yes", "y", "on"):
        return True
    if t in ("0", "false", "no", "n", "off"):
        return False
    raise InputError(f"{where}: expected true/false, got {text!r}")


def parse_options(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """Typed per-item options from a manifest row; unknown names and bad values are one-line errors."""
    out: dict[str, Any] = {}
    for name, value in raw.items():
        key = name.strip().lower().replace("-", "_")
        if key not in ITEM_OPTIONS:
            raise InputError(f"{where}: unknown column {name!r} (allowed: source, driving, output, "
                             f"{', '.join(ITEM_OPTIONS)})")
        if value is None or (isinstance(value, str) and not value.strip()):
            continue  # empty CSV cell: use the command-line value
        kind = ITEM_OPTIONS[key]
        try:
            if kind is bool:
                v: Any = value if isinstance(value, bool) else _parse_bool(value, f"{where}: {key}")
            elif kind is int:
                v = int(value)
            else:
                v = str(value).strip()
        except ValueError:
            raise InputError(f"{where}: {key} must be an integer, got {value!r}") from None
        out[key] = v
    try:
        RenderOptions(**out)  # the command line's rules: valid modes and formats, ranges
    except InputError as e:
        raise InputError(f"{where}: {str(e).lstrip('-')}") from None
    return out


@dataclass(frozen=True)
class Row:
    source: Path
    driving: Path
    output: Optional[str]
    options: dict[str, Any]


def read_manifest(path: str | Path) -> list[Row]:
    """Rows of a ``.csv`` or ``.jsonl``/``.ndjson`` manifest (by extension, else by the first character)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: manifest not found")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: cannot read manifest ({e})") from None
    base = p.parent
    suffix = p.suffix.lower()
    is_json = suffix in (".jsonl", ".ndjson", ".json") or (suffix != ".csv" and text.lstrip().startswith("{"))
    records: list[tuple[str, dict[str, Any]]] = []
    if is_json:
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{p}:{n}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise InputError(f"{p}:{n}: each line must be a JSON object")
            records.append((f"{p}:{n}", obj))
    else:
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None:
            raise InputError(f"{p}: empty manifest")
        for n, rec in enumerate(reader, 2):
            if None in rec:
                raise InputError(f"{p}:{n}: more cells than header columns")
            if not any((v or "").strip() for v in rec.values()):
                continue
            records.append((f"{p}:{n}", {k.strip(): v for k, v in rec.items()}))
    rows = []
    for where, rec in records:
        rec = dict(rec)
        missing = [k for k in ("source", "driving") if not str(rec.get(k) or "").strip()]
        if missing:
            raise InputError(f"{where}: missing {' and '.join(missing)}")
        source = Path(str(rec.pop("source")).strip()).expanduser()
        driving = Path(str(rec.pop("driving")).strip()).expanduser()
        output = rec.pop("output", None)
        output = str(output).strip() if output is not None and str(output).strip() else None
        rows.append(Row(source if source.is_absolute() else base / source,
                        driving if driving.is_absolute() else base / driving, output, parse_options(rec, where)))
    if not rows:
        raise InputError(f"{p}: manifest has no items")
    return rows


def _listing(folder: Path, kind: str) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"{folder}: {kind} folder not found")
    from scorr_cli.media import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

    exts = set(IMAGE_EXTENSIONS) if kind == "sources" else set(VIDEO_EXTENSIONS) | set(IMAGE_EXTENSIONS)
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.suffix.lower() in exts)
    if not files:
        raise InputError(f"{folder}: no {kind} found (extensions {', '.join(sorted(exts))})")
    return files


def pair_folders(sources: str | Path, drivings: str | Path, pairing: str = "product") -> list[Row]:
    """``product``: every source with every driving clip; ``zip``: i-th with i-th (sorted by name)."""
    if pairing not in PAIRINGS:
        raise InputError(f"--pairing {pairing}: expected one of {', '.join(PAIRINGS)}")
    src = _listing(Path(sources), "sources")
    drv = _listing(Path(drivings), "driving clips")
    if pairing == "zip":
        if len(src) != len(drv):
            raise InputError(f"--pairing zip needs as many sources ({len(src)}) as driving clips ({len(drv)}); "
                             "use --pairing product for every combination")
        pairs: Iterable[tuple[Path, Path]] = zip(src, drv)
    else:
        pairs = itertools.product(src, drv)
    return [Row(s, d, None, {}) for s, d in pairs]


def check_name_template(template: str) -> None:
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as e:
        raise InputError(f"--name {template!r}: {e}") from None
    bad = [n for n in names if n.split(".")[0].split("[")[0] not in NAME_FIELDS]
    if bad:
        raise InputError(f"--name {template!r}: unknown field {{{bad[0]}}} (use {', '.join('{' + f + '}' for f in NAME_FIELDS)})")
    if "{source" not in template or "{driving" not in template:
        if "{index" not in template:
            raise InputError(f"--name {template!r}: must contain {{index}} or both {{source}} and {{driving}} "
                             "so that outputs do not collide")


def _ext_for(driving: Path, fmt: Optional[str]) -> str:
    from scorr_cli.media import IMAGE_EXTENSIONS

    if fmt:
        return fmt
    if driving.suffix.lower() in IMAGE_EXTENSIONS and driving.suffix.lower() != ".gif":
        return "png"  # a single driving image gives an image
    return "mp4"


def build_items(rows: list[Row], template: str = DEFAULT_NAME, default_format: Optional[str] = None) -> list[BatchItem]:
    """Outputs named by ``template`` where a row has none; duplicate outputs are an error."""
    check_name_template(template)
    items, seen = [], {}
    for i, row in enumerate(rows):
        fmt = row.options.get("format", default_format)
        if row.output is not None:
            out = Path(row.output)
        else:
            ext = _ext_for(row.driving, fmt)
            name = template.format(source=row.source.stem, driving=row.driving.stem, index=i, ext=ext,
                                   mode=row.options.get("mode", "auto"))
            if ext == "png" and name.endswith(".png") and not _ext_for(row.driving, None) == "png":
                name = name[: -len(".png")]  # PNG frames of a video go to a folder
            out = Path(name)
        if out.is_absolute() or ".." in out.parts:
            raise InputError(f"item {i}: output {out} must be a relative path inside OUTDIR")
        if out.as_posix() in seen:
            raise InputError(f"items {seen[out.as_posix()]} and {i} both write {out} (give distinct outputs or a "
                             "--name with {index})")
        seen[out.as_posix()] = i
        items.append(BatchItem(i, row.source, row.driving, out, dict(row.options)))
    return items


@dataclass
class BatchJobs:
    """Where a batch's pairs come from: a manifest, or two folders paired up; declared once with their help
    texts (the ``batch`` command's options are built from these fields)."""

    manifest: Optional[Path] = argument("CSV or JSONL manifest: source, driving, optional output and per-item "
                                        "options (paths relative to the manifest).", required=False)
    sources: Optional[Path] = option(None, "Folder of source portraits (instead of a manifest).", show_default=False)
    drivings: Optional[Path] = option(None, "Folder of driving videos/images (with --sources).", show_default=False)
    pairing: str = option("product", "With folders: product (every source x every driving) or zip (i-th with i-th, "
                                     "by sorted name).", metavar="|".join(PAIRINGS))
    name: str = option(DEFAULT_NAME, "Output naming scheme when a row has no output: fields {source} {driving} "
                                     "(file stems), {index}, {ext}, {mode}.")

    def items(self, default_format: Optional[str] = None) -> list[BatchItem]:
        if self.manifest is not None and (self.sources or self.drivings):
            raise InputError("give a manifest or --sources/--drivings, not both")
        if self.manifest is not None:
            rows = read_manifest(self.manifest)
        elif self.sources and self.drivings:
            rows = pair_folders(self.sources, self.drivings, self.pairing)
        else:
            raise InputError("give a manifest (CSV/JSONL) or both --sources DIR and --drivings DIR")
        return build_items(rows, self.name, default_format)
