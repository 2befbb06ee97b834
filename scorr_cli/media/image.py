"""Read and write still images as HxWx3 uint8 RGB arrays, the one layout the rest of scorr uses.

Conversions are decided here once: EXIF orientation is applied (phone photos are stored sideways),
transparency is composited on white (a cut-out portrait should not get a black background), and
greyscale, palette, CMYK and 16-bit images become 8-bit RGB.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from scorr_cli.errors import InputError, ScorrError
from scorr_cli.fsutil import atomic_path
from scorr_cli.media.sniff import require_image

BACKGROUND_RGB = (255, 255, 255)
JPEG_QUALITY = 95
WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode ``path`` (PNG, JPEG, WebP, BMP, TIFF, first GIF frame) to HxWx3 uint8 RGB."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = require_image(path)
    name = os.fspath(path)
    try:
        with warnings.catch_warnings():
            # Up to PIL's hard limit (2x the warning's) a big photo is decoded on purpose: no stray warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                im.load()
                im = ImageOps.exif_transpose(im)
                return _to_rgb8(im)
    except UnidentifiedImageError:
        raise InputError(f"{name}: not a supported image (PNG, JPEG, WebP, BMP or TIFF expected)") from None
    except Image.DecompressionBombError:
        raise InputError(f"{name}: image is too large to decode safely") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{name}: corrupt or truncated image ({_first_line(e)})") from None


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _to_rgb8(im) -> np.ndarray:
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(im).astype(np.float64)
        # PIL loads 16-bit greyscale as I;16 or as 32-bit "I": both hold 0..65535.
        g = np.clip(np.rint(a / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if im.mode == "F":
        g = np.clip(np.rint(np.asarray(im)), 0, 255).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info)
    if has_alpha:
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND_RGB, 255))
        im = Image.alpha_composite(background, rgba)
    return np.array(im.convert("RGB"), dtype=np.uint8)


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write HxWx3 RGB (or HxW grey, HxWx4 RGBA) uint8 to ``path`` atomically; format by extension."""
    from PIL import Image

    p = Path(path)
    fmt = WRITE_FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise InputError(f"{os.fspath(path)}: unsupported image extension {p.suffix!r} (use {', '.join(WRITE_FORMATS)})")
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise TypeError(f"images must be uint8, got {a.dtype}")
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        raise ValueError(f"images must be HxW, HxWx3 or HxWx4, got shape {a.shape}")
    im = Image.fromarray(np.ascontiguousarray(a))
    if fmt == "JPEG" and im.mode == "RGBA":
        im = Image.fromarray(_to_rgb8(im))
    options = {"quality": JPEG_QUALITY} if fmt in ("JPEG", "WEBP") else {}
    try:
        with atomic_path(p) as tmp:
            im.save(tmp, format=fmt, **options)
    except OSError as e:
        raise ScorrError(f"{os.fspath(path)}: cannot write image ({e.strerror or e})") from None
