"""Safe output handling: never leave half-written files, never overwrite without ``force``."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

from scorr_cli.errors import OutputExistsError, ScorrError


def check_output(path: str | os.PathLike, force: bool, inputs: tuple[str | os.PathLike, ...] = ()) -> Path:
    """Refuse to overwrite an existing output unless ``force``, and an input file even with it; make sure
    the output's folder can be written."""
    p = Path(path)
    for src in inputs:
        if p.exists() and Path(src).exists() and os.path.samefile(p, src):
            raise OutputExistsError(f"{p}: the output would replace the input {src} (choose another output)")
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
    The name carries the writer's process id, so the temp files of a killed run (SIGKILL, power loss)
    are removed by the next write of the same ``path`` (:func:`remove_stale_temps`).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = temp_beside(target, "part")
    try:
        yield tmp_path
        if tmp_path.is_file():  # mkstemp makes 0600 (and writers may recreate the file): use the usual mode
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """:func:`atomic_path` for a folder: yield a temporary folder beside ``path`` that replaces ``path``
    (:func:`replace_folder`) only if the block succeeds; on any exception it is removed and ``path`` is
    left as it was."""
    import shutil

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(target, "part", directory=True)
    try:
        yield tmp
        replace_folder(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_folder(new: Path, target: Path) -> None:
    """Rename the finished folder ``new`` onto ``target``; an existing ``target`` folder is moved aside
    first and deleted after, so ``target`` is at every moment either the old folder or the new one."""
    import shutil

    os.chmod(new, 0o777 & ~_umask())  # mkdtemp makes 0700: give the folder the usual mode
    old = None
    if target.exists():
        if not target.is_dir():
            raise ScorrError(f"{target}: exists and is not a folder")
        old = temp_beside(target, "old", directory=True)
        os.replace(target, old / "x")
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks (checkpoints are tens to hundreds of MB)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


TEMP_TAGS = ("part", "audio", "old")  # what a temp file beside an output is for (its name says it)


def temp_beside(target: str | os.PathLike, tag: str, directory: bool = False) -> Path:
    """A new hidden temp file (or folder) beside ``target``: ``.<stem>.<pid>.<random>.<tag><suffix>``.

    The process id lets a later run tell a killed run's leftovers from a live writer's: every call first
    removes the dead processes' temp files of the same target (:func:`remove_stale_temps`)."""
    if tag not in TEMP_TAGS:
        raise ValueError(f"unknown temp tag {tag!r}")
    target = Path(target)
    remove_stale_temps(target)
    prefix, suffix = f".{target.stem}.{os.getpid()}.", f".{tag}{'' if directory else target.suffix}"
    if directory:
        return Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=target.parent))
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=target.parent)
    os.close(fd)
    return Path(tmp)


_TEMP_NAME = re.compile(rf"^\.(?P<stem>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.(?:{'|'.join(TEMP_TAGS)})(?:\.[^.]*)?$")


def remove_stale_temps(target: str | os.PathLike) -> list[Path]:
    """Delete the temp files and folders :func:`temp_beside` made for ``target`` in runs that were killed
    (SIGKILL, power loss: their process is gone); a live writer's are left alone. Returns what went."""
    target = Path(target)
    return remove_stale_temps_in(target.parent, stem=target.stem)


def remove_stale_temps_in(folder: str | os.PathLike, stem: str | None = None) -> list[Path]:
    """Delete the dead processes' temp files and folders in ``folder`` (of ``stem`` only, if given)."""
    import shutil

    removed = []
    try:
        siblings = list(Path(folder).iterdir())
    except OSError:
        return removed
    for p in siblings:
        m = _TEMP_NAME.match(p.name)
        if m is None or (stem is not None and m.group("stem") != stem) or _pid_alive(int(m.group("pid"))):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                p.unlink()
        removed.append(p)
    return removed


@contextlib.contextmanager
def removed_if_failed(folder: str | os.PathLike) -> Iterator[Path]:
    """Folders the block creates for ``folder`` (it and missing parents) are removed again if the block
    fails and leaves them empty: a refused or interrupted run leaves no empty output folder behind."""
    folder = Path(folder)
    new = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        yield folder
    except BaseException:
        for p in new:  # deepest first; stops at the first folder that holds something
            try:
                p.rmdir()
            except OSError:
                break
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
