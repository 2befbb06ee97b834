"""Per-rank state files in ``OUTDIR/.scorr-batch/``: which items are done or failed, and why.

Each rank writes only ``state.rank<R>.json`` (rewritten atomically after every item, so a kill at
any moment leaves the previous complete version); everyone reads all of them, so a re-run with a
different number of ranks still skips what any rank finished. ``--status`` merges them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scorr_cli.fsutil import atomic_write_text

STATE_DIR = ".scorr-batch"
STATE_VERSION = 1
DONE, FAILED = "done", "failed"


def state_dir(outdir: str | Path) -> Path:
    return Path(outdir) / STATE_DIR


def state_path(outdir: str | Path, rank: int) -> Path:
    return state_dir(outdir) / f"state.rank{rank}.json"


@dataclass
class ItemRecord:
    status: str  # done | failed
    source: str = ""
    driving: str = ""
    reason: str = ""
    frames: int = 0
    seconds: float = 0.0
    finished: float = field(default_factory=time.time)
    rank: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "ItemRecord":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


class RankState:
    """The state file this rank owns."""

    def __init__(self, outdir: str | Path, rank: int = 0, world_size: int = 1):
        self.path = state_path(outdir, rank)
        self.rank = rank
        self.world_size = world_size
        self.items: dict[str, ItemRecord] = read_state_file(self.path) if self.path.exists() else {}

    def record(self, key: str, record: ItemRecord) -> None:
        record.rank = self.rank
        self.items[key] = record
        self.save()

    def save(self) -> None:
        doc = {"version": STATE_VERSION, "rank": self.rank, "world_size": self.world_size, "updated": time.time(),
               "items": {k: v.to_json() for k, v in sorted(self.items.items())}}
        atomic_write_text(self.path, json.dumps(doc, indent=1) + "\n")


def read_state_file(path: Path) -> dict[str, ItemRecord]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return {k: ItemRecord.from_json(v) for k, v in doc.get("items", {}).items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}  # unreadable (should not happen: writes are atomic); its items simply run again


def merged_state(outdir: str | Path) -> dict[str, ItemRecord]:
    """All ranks' records; for an item recorded by several (a re-run with another world size) the newest wins."""
    merged: dict[str, ItemRecord] = {}
    folder = state_dir(outdir)
    if not folder.is_dir():
        return merged
    for path in sorted(folder.glob("state.rank*.json")):
        for key, rec in read_state_file(path).items():
            if key not in merged or rec.finished >= merged[key].finished:
                merged[key] = rec
    return merged
