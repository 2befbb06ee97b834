"""Safe output handling: never leave half-written files, never overwrite without ``force``."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from scorr_cli.errors import OutputExistsError, ScorrError


def check_output(path: str | os.PathLike, force: bool) -> Path:
    """Refuse to overwrite an existing output unless ``force``; make sure its folder can be written."""
    p = Path(path)
    if p.exists() and not force:
        raise OutputExistsError(f"{p}: output already exists (use --force to overwrite)")
    parent = p.parent if str(p.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ScorrError(f"{parent}: cannot create output folder ({e.strerror})") from None
    if not os.access(parent, os.W_OK):
        raise ScorrError(f"{parent}: output folder is not writable")
    return p


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name keeps the extension so that tools choosing a format by suffix (ffmpeg) work.
    On any exception (Ctrl-C included) the temporary file is removed and nothing appears at ``path``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".part{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.is_file():  # mkstemp makes 0600 (and writers may recreate the file): use the usual mode
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
