"""One entry point for ``scorr crop``: dispatch on the input kind (video, photo, folder)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from scorr_cli.errors import InputError
from scorr_cli.faces.config import CropConfig, PhotoMotionConfig
from scorr_cli.faces.dataset import DatasetReport, build_dataset
from scorr_cli.faces.detectors import get_detector
from scorr_cli.faces.image import ImageCropResult, crop_image_file, parse_face_choice
from scorr_cli.faces.video import VideoAnalysis, crop_video


@dataclass
class CropCallbacks:
    """Progress hooks the CLI turns into rich bars; all optional so tests can ignore them."""

    analyse: Optional[Callable[[int, int], None]] = None
    render: Optional[Callable[[int, int], None]] = None
    on_file: Optional[Callable[[Path, int, int], None]] = None


def default_output(src: Path) -> Path:
    return src.parent / f"{src.stem}_crops"


def crop_path(input: str | os.PathLike, output: str | os.PathLike | None, cfg: CropConfig, *,
              detector: str = "auto", weights_dir: str | os.PathLike | None = None, device: str = "cpu",
              face: str = "all", dataset: str | os.PathLike | None = None, test_fraction: float = 0.1,
              test_videos: Sequence[str] = (), photos: Optional[PhotoMotionConfig] = None,
              force: bool = False, callbacks: Optional[CropCallbacks] = None
              ) -> VideoAnalysis | ImageCropResult | DatasetReport:
    """Crop a video, a photo or (``dataset``) a folder; returns what was done for the summary."""
    from scorr_cli.fsutil import removed_if_failed
    from scorr_cli.media import is_image_file, is_video_file
    from scorr_cli.media.sniff import require_file

    cb = callbacks or CropCallbacks()
    src = Path(input)
    if photos is not None and photos.frames and dataset is None:
        raise InputError("--photo-frames makes training clips of photos: it needs --dataset")
    if dataset is not None:
        if not src.is_dir():
            raise InputError(f"{src}: --dataset needs a folder of videos")
        det = get_detector(detector, device, weights_dir, upsample=cfg.upsample, max_side=cfg.detect_max_side)
        with removed_if_failed(dataset):
            return build_dataset(src, dataset, det, cfg, test_fraction, force, cb.on_file, test_videos, photos)
    if src.is_dir():
        raise InputError(f"{src}: is a folder (use --dataset OUT to crop every video in it)")
    require_file(src)
    choice = parse_face_choice(face)
    out = Path(output) if output is not None else default_output(src)
    if is_video_file(src):
        det = get_detector(detector, device, weights_dir, upsample=cfg.upsample, max_side=None)
        with removed_if_failed(out):
            analysis, _ = crop_video(src, out, det, cfg, force, progress=cb.render, analysis_progress=cb.analyse)
        return analysis
    if is_image_file(src):
        det = get_detector(detector, device, weights_dir, upsample=cfg.upsample, max_side=cfg.detect_max_side)
        with removed_if_failed(out):
            return crop_image_file(src, out, det, cfg, choice, force)
    raise InputError(f"{src}: not a readable image or video")
