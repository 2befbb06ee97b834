"""The one render path of ``animate`` and ``batch``: driving keypoints -> frames -> a written clip.

Each command finds its own driving keypoints (``animate`` detects them batch by batch as it decodes;
``batch`` detects a clip once and reuses them for every source), then both call :func:`render` for
every batch of frames and :func:`write_clip` to write them, with the rules of
:class:`~scorr_cli.pipeline.options.RenderOptions`: the same pair and options give the same frames
from either command (a test proves it).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import numpy as np
import torch

from scorr_cli.errors import InputError
from scorr_cli.pipeline.options import RenderOptions

ProgressFn = Callable[[str, int, Optional[int]], None]
"""``progress(stage, done, total)``: called as work advances; total None when unknown."""


# ----------------------------------------------------------------------------- conversions

def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> 1x3xHxW float32 in [0, 1] (the engine's layout)."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div_(255.0)


def images_to_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255.0)


def tensor_to_images(batch: torch.Tensor, size: Optional[int] = None) -> list[np.ndarray]:
    """Bx3xHxW in [0, 1] -> list of HxWx3 uint8 (rounded, not truncated), optionally resized to size²
    (bicubic: OpenCV's, which gives torch's ``interpolate(mode="bicubic")`` values at a sixth of its
    CPU time)."""
    import cv2

    images = batch.detach().float().permute(0, 2, 3, 1).cpu().numpy()
    out = []
    for image in images:
        if size is not None and image.shape[0] != size:
            image = cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC)
        out.append((np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
    return out


def kp_numpy(kp: dict[str, torch.Tensor]) -> np.ndarray:
    return kp["kp"].detach().float().cpu().numpy()


def chunked(frames: Iterable[Any], n: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


# ----------------------------------------------------------------------------- inputs and outputs

def load_engine(options: RenderOptions, device: Optional[str] = None) -> Any:
    """The engine for ``options`` (backend, checkpoint, device, precision); ``device`` overrides
    options.device. Both backends' engines have the same interface."""
    from scorr_cli.checkpoints import load_checkpoint, resolve_checkpoint
    from scorr_cli.core.engine import AnimationEngine, resolve_device

    name = device or options.device
    if options.backend == "onnx":
        from scorr_cli.export.runtime import load_onnx_engine

        return load_onnx_engine(options.checkpoint, options.onnx_dir, name, options.skip_updates)
    try:
        resolved = resolve_device(name)
    except (ValueError, RuntimeError) as e:
        raise InputError(f"--device {name}: {e}") from None
    model, _ = load_checkpoint(resolve_checkpoint(options.checkpoint), resolved, skip_updates=options.skip_updates)
    return AnimationEngine(model, resolved, options.precision, owns_model=True)


def runs_on(engine: Any) -> str:
    """Where and how the networks run, for summaries: ``cpu``, ``cpu (bf16)``, ``cuda:0 (fp16)``."""
    precision = getattr(engine, "precision", "fp32")
    return str(engine.device) + ("" if precision == "fp32" else f" ({precision})")


@dataclass
class DrivingSource:
    kind: str  # video | image
    info: Any = None  # VideoInfo for videos
    image: Optional[np.ndarray] = None
    n_frames: int = 1


def open_driving(path: Path, max_frames: Optional[int], accept_damaged: bool = False) -> DrivingSource:
    """A video (probed, not decoded) or a single image; one-line errors for anything else.

    The extension says which the user meant, so ``face.jpg`` holding a video, or ``drive.mp4``
    holding a photo, is reported as such rather than silently taken as the other kind.
    """
    from scorr_cli.media import IMAGE_EXTENSIONS, is_video_file, probe_video, read_image
    from scorr_cli.media.sniff import read_head, require_file, sniff_kind

    p = require_file(path)
    suffix = p.suffix.lower()
    if suffix == ".gif":
        as_image = not is_video_file(p)  # a still GIF is an image, an animated one a video
    elif suffix in IMAGE_EXTENSIONS:
        as_image = True
    elif suffix:
        as_image = False
    else:
        as_image = sniff_kind(read_head(p)) == "image"
    if as_image:
        return DrivingSource("image", image=read_image(p))
    info = probe_video(p)
    info.require_intact(accept_damaged)
    n = info.n_frames if max_frames is None else min(info.n_frames, max_frames)
    return DrivingSource("video", info=info, n_frames=n)


def output_kind(output: Path, fmt: Optional[str], driving: Path, driving_kind: str) -> str:
    """What ``output`` will be: ``image`` for a single driving image, else mp4 | gif | png (frames)."""
    from scorr_cli.media import writer_format
    from scorr_cli.media.image import WRITE_FORMATS

    suffix = output.suffix.lower()
    if driving_kind == "image":
        if suffix in WRITE_FORMATS:
            return "image"
        raise InputError(f"{output}: the driving input {driving} is a single image, so the output is an image: "
                         f"use one of {', '.join(WRITE_FORMATS)}")
    if suffix in WRITE_FORMATS and fmt is None:
        raise InputError(f"{output}: unsupported output extension {suffix!r} for a video (use .mp4, .mov, .mkv, "
                         ".gif, or a folder name for PNG frames)")
    return writer_format(output, fmt)


# ----------------------------------------------------------------------------- rendering

@dataclass
class RenderedBatch:
    frames: list[np.ndarray]  # output frames, uint8 at the output size
    kp_driving: np.ndarray  # B×K×2 keypoints detected in the driving frames
    kp_transferred: np.ndarray  # B×K×2 keypoints that drove the model (after motion transfer)
    crops: Optional[list[np.ndarray]] = None  # the driving crops, when the caller has them (previews)


def render(engine: Any, state: Any, kp_driving: dict[str, torch.Tensor], transfer: Any, size: int,
           crops: Optional[list[np.ndarray]] = None) -> RenderedBatch:
    """Animate the prepared source with a batch of driving keypoints; frames at ``size``²."""
    out = engine.animate(state, None, transfer, kp_driving=kp_driving)
    return RenderedBatch(tensor_to_images(out.prediction, size), kp_numpy(kp_driving), kp_numpy(out.kp_driving),
                         crops)


Sink = tuple[Path, Callable[[RenderedBatch], list[np.ndarray]]]
"""An output file and what to write into it from each rendered batch (the frames, a preview, ...)."""


def write_clip(batches: Iterable[RenderedBatch], sinks: Sequence[Sink], kind: str, fps: Any,
               audio_from: Optional[Path], total: int, report: ProgressFn, stage: str = "rendering") -> int:
    """Write every batch into every sink (atomically: a writer renames into place only when complete);
    returns the number of frames. Encoding (and what the sinks do to the frames: paste-back, previews)
    runs in a background thread while the next batch renders (:mod:`scorr_cli.pipeline.overlap`)."""
    from scorr_cli.media import open_writer
    from scorr_cli.pipeline.overlap import BackgroundSink

    audio = {"audio_from": audio_from} if audio_from is not None else {}
    done = 0
    report(stage, 0, total)
    with contextlib.ExitStack() as stack:
        writers = [(stack.enter_context(open_writer(path, fps, kind, **audio)), frames_of) for path, frames_of in sinks]

        def write(batch: RenderedBatch) -> None:
            for writer, frames_of in writers:
                for frame in frames_of(batch):
                    writer.write(frame)

        encoder = stack.enter_context(BackgroundSink(write, depth=2))
        for batch in batches:
            encoder.put(batch)
            done += len(batch.frames)
            report(stage, done, total)
        encoder.finish()
    return done
