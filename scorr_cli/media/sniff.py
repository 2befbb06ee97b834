"""Decide whether a path is an image or a video from its extension and its first bytes.

Checking content as well as the name gives the user a clear message ("drive.png: is an image,
expected a video") instead of an ffmpeg failure, and catches renamed or corrupt files early.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from scorr_cli.errors import InputError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv", ".mpg", ".mpeg", ".ts", ".mts", ".ogv", ".wmv", ".3gp", ".gif"}
)
SNIFF_BYTES = 192

Kind = Literal["image", "video"]

_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")


def sniff_kind(head: bytes) -> Kind | None:
    """Classify the first bytes of a file; ``None`` when they match no known signature.

    GIF is reported as an image (see ``is_video_file`` for animated GIFs).
    """
    if head.startswith(b"\x89PNG\r\n\x1a\n") or head.startswith(b"\xff\xd8\xff"):
        return "image"
    if head[:6] in (b"GIF87a", b"GIF89a") or head.startswith(b"BM"):
        return "image"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image"
    if head[4:8] in _MP4_BOXES:
        return "video"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # Matroska / WebM
        return "video"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video"
    if head.startswith((b"FLV", b"OggS", b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3", b"\x30\x26\xb2\x75")):
        return "video"
    if head[:1] == b"\x47" and head[188:189] == b"\x47":  # MPEG-TS: sync byte every 188 bytes
        return "video"
    return None


def require_file(path: str | os.PathLike) -> Path:
    """Return ``Path(path)`` if it names a readable, non-empty regular file; else a one-line InputError."""
    p = Path(path)
    name = os.fspath(path)
    if not p.exists():
        raise InputError(f"{name}: file not found")
    if p.is_dir():
        raise InputError(f"{name}: is a folder, expected a file")
    if not p.is_file():
        raise InputError(f"{name}: not a regular file")
    if not os.access(p, os.R_OK):
        raise InputError(f"{name}: cannot read (permission denied)")
    if p.stat().st_size == 0:
        raise InputError(f"{name}: file is empty")
    return p


def read_head(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(SNIFF_BYTES)
    except OSError as e:
        raise InputError(f"{os.fspath(path)}: cannot read ({e.strerror or e})") from None


def _is_animated_gif(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return bool(getattr(im, "is_animated", False))
    except Exception:
        return False


def is_image_file(path: str | os.PathLike) -> bool:
    """True if ``path`` has an image extension and its content is an image."""
    p = Path(path)
    if p.suffix.lower() not in IMAGE_EXTENSIONS or not p.is_file():
        return False
    try:
        return sniff_kind(read_head(p)) == "image"
    except InputError:
        return False


def is_video_file(path: str | os.PathLike) -> bool:
    """True if ``path`` has a video extension and its content is a video (or an animated GIF)."""
    p = Path(path)
    if p.suffix.lower() not in VIDEO_EXTENSIONS or not p.is_file():
        return False
    try:
        head = read_head(p)
    except InputError:
        return False
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return _is_animated_gif(p)
    return sniff_kind(head) == "video"


def require_video(path: str | os.PathLike) -> Path:
    """Checks before handing a path to ffmpeg: exists, is a file, is not an image."""
    p = require_file(path)
    head = read_head(p)
    if sniff_kind(head) == "image" and not (head[:6] in (b"GIF87a", b"GIF89a") and _is_animated_gif(p)):
        raise InputError(f"{os.fspath(path)}: is an image, expected a video")
    return p


def require_image(path: str | os.PathLike) -> Path:
    """Checks before decoding an image: exists, is a file, is not a video."""
    p = require_file(path)
    if sniff_kind(read_head(p)) == "video":
        raise InputError(f"{os.fspath(path)}: is a video, expected an image")
    return p
