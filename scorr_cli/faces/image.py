"""Photo cropping: pick faces, cut aligned square crops, keep the transform for paste-back."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np

from scorr_cli.errors import InputError, NoFaceError
from scorr_cli.faces.config import CropConfig
from scorr_cli.faces.detectors import FaceDetector
from scorr_cli.faces.geometry import CropTransform, eye_angle, fit_window, warp_crop, window_from_box, window_transform
from scorr_cli.faces.types import Face

FaceChoice = Union[str, int]


def parse_face_choice(value: str | int | None) -> FaceChoice:
    """'largest' | 'all' | N (0-based, faces numbered left to right)."""
    if value is None:
        return "all"
    if isinstance(value, int):
        return value
    v = str(value).strip().lower()
    if v in ("largest", "all"):
        return v
    if v.isdigit():
        return int(v)
    raise InputError(f"--face must be 'largest', 'all' or a face number, not {value!r}")


def order_faces(faces: list[Face]) -> list[Face]:
    """Stable, user-predictable numbering: left to right by box centre."""
    return sorted(faces, key=lambda f: (f.center[0], f.center[1]))


def select_faces(faces: list[Face], choice: FaceChoice) -> list[Face]:
    faces = order_faces(faces)
    if choice == "all":
        return faces
    if choice == "largest":
        return [max(faces, key=lambda f: f.area)] if faces else []
    if not 0 <= int(choice) < len(faces):
        raise InputError(f"--face {choice}: only {len(faces)} face(s) found (numbered 0..{len(faces) - 1} left to right)")
    return [faces[int(choice)]]


def face_transform(face: Face, image_size: tuple[int, int], size: int = 256, scale: float = 1.8,
                   shift_y: float = -0.1, align: bool = False, border: str = "clamp") -> CropTransform:
    """Source->crop transform for one face (image_size is (width, height))."""
    angle = eye_angle(face.landmarks68) if align else 0.0
    w = window_from_box(face.box, scale, shift_y, angle)
    if not align:
        w = fit_window(w, image_size[0], image_size[1], border)
    return window_transform(w, size, image_size)


def crop_source_image(image: np.ndarray, detector: FaceDetector, size: int = 256, scale: float = 1.8,
                      shift_y: float = -0.1, face: FaceChoice = "largest", align: bool = False,
                      border: str = "clamp") -> tuple[np.ndarray, CropTransform]:
    """The one crop ``animate`` needs from a source portrait; NoFaceError when there is none."""
    faces = detector.detect(image)
    if not faces:
        raise NoFaceError("no face found in the source image (try a larger, frontal face or --detector)")
    chosen = select_faces(faces, "largest" if face == "all" else face)[0]
    t = face_transform(chosen, (image.shape[1], image.shape[0]), size, scale, shift_y, align, border)
    return warp_crop(image, t), t


@dataclass
class ImageCropResult:
    source: Path
    detections: int
    crops: list[Path] = field(default_factory=list)
    sidecars: list[Path] = field(default_factory=list)
    manifest: Optional[Path] = None


def crop_image_file(path: str | os.PathLike, out_dir: str | os.PathLike, detector: FaceDetector,
                    cfg: CropConfig, face: FaceChoice = "all", force: bool = False) -> ImageCropResult:
    """Crop a photo to ``out_dir/<stem>_face<N>.png`` + ``.json`` sidecars (transform) + a manifest."""
    from scorr_cli.fsutil import atomic_write_text, check_output
    from scorr_cli.media import read_image, write_image

    src = Path(path)
    image = read_image(src)
    faces = order_faces(detector.detect(image))
    if not faces:
        raise NoFaceError(f"no face found in {src}")
    chosen = select_faces(faces, face)
    out = Path(out_dir)
    numbered = [(faces.index(f), f) for f in chosen]
    targets = [(out / f"{src.stem}_face{i:02d}.png", out / f"{src.stem}_face{i:02d}.json") for i, _ in numbered]
    manifest = out / f"{src.stem}_crops.json"
    for p in [manifest, *(p for pair in targets for p in pair)]:
        check_output(p, force)
    result = ImageCropResult(src, len(faces))
    records = []
    size = (image.shape[1], image.shape[0])
    for (i, f), (png, side) in zip(numbered, targets):
        t = face_transform(f, size, cfg.size, cfg.scale, cfg.shift_y, cfg.align, cfg.border)
        write_image(png, warp_crop(image, t))
        rec = {"source": str(src), "face_index": i, "box": [round(v, 2) for v in f.box.tolist()],
               "score": round(f.score, 4), "crop": str(png), **t.to_json()}
        if f.landmarks68 is not None:
            rec["landmarks68_crop"] = t.apply(f.landmarks68).round(2).tolist()
        atomic_write_text(side, json.dumps(rec, indent=1))
        records.append(rec)
        result.crops.append(png)
        result.sidecars.append(side)
    atomic_write_text(manifest, json.dumps({"source": str(src), "detector": getattr(detector, "name", "?"),
                                            "detections": len(faces), "crops": records}, indent=1))
    result.manifest = manifest
    return result
