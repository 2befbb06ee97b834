"""``animate``: a portrait + a driving video (or image) -> a finished video (or image).

Orchestration only: check every input and output before any slow work, crop faces, stream driving
frames through the engine in batches and straight into an atomic writer. Nothing holds the whole
video: memory is the same for a 10 s and a 10 min clip (``benchmarks/bench_memory.py``).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, fields
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import cv2
import numpy as np
import torch

from scorr_cli.errors import InputError, NoFaceError
from scorr_cli.fsutil import check_output
from scorr_cli.faces import paste_back, warp_crop
from scorr_cli.faces.bestframe import BestFrameSearch
from scorr_cli.pipeline.faces import LANDMARK_SIZE, FaceCropper, rescaled

from scorr_cli.choices import INFERENCE_PRECISIONS as PRECISIONS
from scorr_cli.choices import MOTION_MODES as MODES
from scorr_cli.choices import OUTPUT_FORMATS as FORMATS
PREVIEW_PANEL = 256
DEFAULT_OUTPUT_SIZE = 256  # smaller models are upsampled to this; larger ones keep their resolution
"""Preview panels are at least this big so keypoints stay visible with low-resolution models."""


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass
class AnimateConfig:
    """Everything ``scorr animate`` can be told; the CLI builds its options (and --help) from this."""

    source: Path = _opt(None, "Portrait to animate (PNG, JPEG, WebP, BMP, TIFF; any size).")
    driving: Path = _opt(None, "Driving video (anything ffmpeg reads), or one driving image.")
    output: Path = _opt(None, "Output: .mp4/.mov/.mkv, .gif, a folder name for PNG frames, or an image "
                              "(.png/.jpg/.webp) when the driving input is an image.")
    format: Optional[str] = _opt(None, "Output format (mp4, gif, png) when the extension does not say.")
    force: bool = _opt(False, "Overwrite an existing output.")
    checkpoint: Optional[str] = _opt(None, "Weights by name (see `scorr weights list`) or path; default: the "
                                           "bundled default weights.")
    device: str = _opt("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps.")
    precision: str = _opt("fp32", "fp32, or bf16/fp16 mixed precision on CUDA (CPU always runs fp32).")
    batch_size: int = _opt(4, "Driving frames per engine call (more is faster on a GPU, costs memory).")
    mode: str = _opt("auto", "Motion transfer: relative (follow the driving motion from a reference frame), "
                             "absolute (copy driving keypoints), or auto (relative for videos, absolute for "
                             "a single driving image).")
    adapt_scale: bool = _opt(True, "Scale relative motion by the face-size ratio of source and reference.")
    crop: bool = _opt(True, "Face-crop the source and the driving video (one stable window for the whole "
                            "clip); --no-crop uses the centre square.")
    detector: str = _opt("auto", "Face detector for cropping: auto, dlib (offline) or face-alignment.")
    paste_back: bool = _opt(False, "Blend the animated face back into the full-resolution source image "
                                   "(output has the source's size).")
    find_best_frame: bool = _opt(False, "Use the driving frame whose face pose best matches the source as the "
                                        "motion reference (animates forward and backward from it).")
    best_frame: Optional[int] = _opt(None, "Use driving frame N (0-based) as the motion reference.")
    audio: bool = _opt(True, "Copy the driving video's audio into an MP4 output.")
    preview: bool = _opt(False, "Also write <output>.preview: source | driving | result side by side, "
                                "keypoints drawn.")
    max_frames: Optional[int] = _opt(None, "Animate only the first N driving frames (quick tries).")
    size: Optional[int] = _opt(None, "Output side in pixels (default: 256, or the model's resolution if larger); "
                                     "the model runs at its own resolution.")
    accept_damaged: bool = _opt(False, "Animate the readable part of a damaged (cut short, corrupt) driving video "
                                       "instead of refusing it; the summary says how many frames were used.")

    def __post_init__(self) -> None:
        for name in ("source", "driving", "output"):
            value = getattr(self, name)
            if value is None:
                raise ValueError(f"AnimateConfig.{name} is required")
            setattr(self, name, Path(value))
        if self.mode not in MODES:
            raise InputError(f"--mode {self.mode}: expected one of {', '.join(MODES)}")
        if self.precision not in PRECISIONS:
            raise InputError(f"--precision {self.precision}: expected one of {', '.join(PRECISIONS)}")
        if self.format is not None and self.format not in FORMATS:
            raise InputError(f"--format {self.format}: expected one of {', '.join(FORMATS)}")
        if self.batch_size < 1:
            raise InputError("--batch-size must be at least 1")
        if self.max_frames is not None and self.max_frames < 1:
            raise InputError("--max-frames must be at least 1")
        if self.best_frame is not None and self.best_frame < 0:
            raise InputError("--best-frame must be a frame number >= 0")

    @classmethod
    def help_for(cls, name: str) -> str:
        return next(f.metadata["help"] for f in fields(cls) if f.name == name)


@dataclass
class AnimateResult:
    output: Path
    kind: str  # mp4 | gif | png | image
    frames: int
    fps: Optional[Fraction]
    size: tuple[int, int]  # (width, height) of the output frames
    has_audio: bool
    mode: str
    reference_frame: Optional[int]  # driving frame relative motion is measured from
    cropper: str  # what cropped the faces: dlib, face-alignment or centre
    device: str
    seconds: float
    preview: Optional[Path] = None
    damage: Optional[str] = None  # the driving video was damaged (accepted with accept_damaged): what and how much


ProgressFn = Callable[[str, int, Optional[int]], None]
"""``progress(stage, done, total)``: called as work advances; total None when unknown."""


# ----------------------------------------------------------------------------- conversions

def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> 1x3xHxW float32 in [0, 1] (the engine's layout)."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div_(255.0)


def images_to_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255.0)


def tensor_to_images(batch: torch.Tensor, size: Optional[int] = None) -> list[np.ndarray]:
    """Bx3xHxW in [0, 1] -> list of HxWx3 uint8 (rounded, not truncated), optionally resized to size²."""
    if size is not None and batch.shape[-1] != size:
        batch = torch.nn.functional.interpolate(batch.float(), size=(size, size), mode="bicubic", align_corners=False)
    a = batch.detach().float().clamp(0, 1).mul(255.0).add_(0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return list(a)


# ----------------------------------------------------------------------------- preview

def _kp_colours(n: int) -> list[tuple[int, int, int]]:
    hsv = np.stack([np.linspace(0, 179, n, endpoint=False), np.full(n, 220), np.full(n, 255)], 1).astype(np.uint8)
    rgb = cv2.cvtColor(hsv[None], cv2.COLOR_HSV2RGB)[0]
    return [tuple(int(c) for c in px) for px in rgb]


def draw_keypoints(image: np.ndarray, kp: np.ndarray, size: int = PREVIEW_PANEL) -> np.ndarray:
    """Upscale ``image`` to ``size``² and draw keypoints given in [-1, 1] (x, y) model coordinates."""
    panel = cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC if image.shape[0] < size else cv2.INTER_AREA)
    panel = np.ascontiguousarray(panel)
    r = max(2, size // 96)
    for (x, y), colour in zip(np.asarray(kp, dtype=np.float64), _kp_colours(len(kp))):
        if np.isfinite(x) and np.isfinite(y):
            cv2.circle(panel, (int(round((x + 1) / 2 * size)), int(round((y + 1) / 2 * size))), r, colour, -1,
                       cv2.LINE_AA)
    return panel


def preview_frame(source: np.ndarray, kp_source: np.ndarray, driving: np.ndarray, kp_driving: np.ndarray,
                  result: np.ndarray, kp_result: np.ndarray, size: int = PREVIEW_PANEL) -> np.ndarray:
    """source | driving | result, each with the keypoints that drive it."""
    return np.concatenate([draw_keypoints(source, kp_source, size), draw_keypoints(driving, kp_driving, size),
                           draw_keypoints(result, kp_result, size)], axis=1)


def preview_path(output: Path, kind: str) -> Path:
    """``out.mp4`` -> ``out.preview.mp4``; a PNG folder ``out`` -> ``out.preview``."""
    return output.with_name(f"{output.stem}.preview{output.suffix}") if kind != "png" else \
        output.with_name(f"{output.name}.preview")


# ----------------------------------------------------------------------------- best frame

def join_forward_backward(backward: Sequence[Any], forward: Sequence[Any]) -> list[Any]:
    """FOMM's order: ``backward`` ran from the best frame to frame 0, ``forward`` from it to the end.

    The best frame is in both; reversed(backward) + forward[1:] is the clip in its original order.
    Because each frame's result depends only on its own keypoints and the fixed reference, animating
    the frames in order with the best frame as the reference gives exactly this, in one stream.
    """
    return list(reversed(list(backward))) + list(forward)[1:]


# ----------------------------------------------------------------------------- inputs

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


def _output_kind(config: AnimateConfig, driving: DrivingSource) -> str:
    from scorr_cli.media import writer_format
    from scorr_cli.media.image import WRITE_FORMATS

    suffix = config.output.suffix.lower()
    if driving.kind == "image":
        if suffix in WRITE_FORMATS:
            return "image"
        raise InputError(f"{config.output}: the driving input {config.driving} is a single image, so the output "
                         f"is an image: use one of {', '.join(WRITE_FORMATS)}")
    if suffix in WRITE_FORMATS and config.format is None:
        raise InputError(f"{config.output}: unsupported output extension {suffix!r} for a video (use .mp4, .mov, "
                         ".mkv, .gif, or a folder name for PNG frames)")
    return writer_format(config.output, config.format)


def load_engine(config: AnimateConfig):
    from scorr_cli.checkpoints import load_checkpoint, resolve_checkpoint
    from scorr_cli.core.engine import AnimationEngine, resolve_device

    try:
        device = resolve_device(config.device)
    except (ValueError, RuntimeError) as e:
        raise InputError(f"--device {config.device}: {e}") from None
    path = resolve_checkpoint(config.checkpoint)
    model, _ = load_checkpoint(path, device)
    return AnimationEngine(model, device, config.precision)


def _kp_numpy(kp: dict[str, torch.Tensor]) -> np.ndarray:
    return kp["kp"].detach().float().cpu().numpy()


# ----------------------------------------------------------------------------- the command

def animate(config: AnimateConfig, progress: Optional[ProgressFn] = None, engine: Any = None) -> AnimateResult:
    """Run ``scorr animate``. ``engine`` may be given (tests, benchmarks) to skip loading a checkpoint."""
    from scorr_cli.core.transfer import TransferOptions
    from scorr_cli.media import read_image

    t0 = time.perf_counter()
    report = progress or (lambda stage, done, total: None)

    # 1. Every check that can fail fast, before loading a model or decoding a frame.
    source_image = read_image(config.source)
    driving = open_driving(config.driving, config.max_frames, config.accept_damaged)
    kind = _output_kind(config, driving)
    inputs = (config.source, config.driving)
    check_output(config.output, config.force, inputs)
    prev_path = preview_path(config.output, kind) if config.preview else None
    if prev_path is not None:
        check_output(prev_path, config.force, inputs)
    if config.best_frame is not None and config.best_frame >= driving.n_frames:
        raise InputError(f"--best-frame {config.best_frame}: {config.driving} has {driving.n_frames} frame(s) "
                         f"(0-{driving.n_frames - 1})")
    mode = config.mode if config.mode != "auto" else ("absolute" if driving.kind == "image" else "relative")
    if mode == "relative" and driving.kind == "image":
        raise InputError(f"{config.driving}: --mode relative needs a driving video (it copies the motion between "
                         "its frames; one image has none): use --mode absolute or auto")
    options = TransferOptions(mode=mode, adapt_scale=config.adapt_scale)
    if engine is None:
        engine = load_engine(config)
    size = config.size or max(engine.size, DEFAULT_OUTPUT_SIZE)

    # 2. Faces: the source crop, and one crop window for all driving frames.
    cropper = FaceCropper(config.crop, config.detector, device="cpu")
    report("cropping source", 0, 1)
    source_crop, source_t = cropper.source(source_image, size, str(config.source))
    state = engine.prepare(image_to_tensor(source_crop))
    report("cropping source", 1, 1)
    kp_source = _kp_numpy(state.prepared.kp)[0]

    if driving.kind == "image":
        window = cropper.image_window(driving.image, size, str(config.driving))
    else:
        from scorr_cli.media import iter_video_frames

        info = driving.info
        frames = _progress_iter(iter_video_frames(config.driving, stop=driving.n_frames), "finding the face",
                                driving.n_frames, report)
        window = cropper.video_window(frames, driving.n_frames, info.width, info.height, size, str(config.driving))

    # 3. The motion reference: first frame (default), a given frame, or the best-matching one.
    reference = None
    if mode == "relative":
        reference = config.best_frame
        if config.find_best_frame and reference is None and driving.kind == "video":
            reference = _find_best_frame(config, driving, cropper, source_image, source_t, window, report)
        if reference is not None and driving.kind == "video":
            from scorr_cli.media import iter_video_frames

            ref = next(iter(iter_video_frames(config.driving, start=reference, stop=reference + 1)))
            engine.set_reference(state, engine.detect(image_to_tensor(warp_crop(ref, window))))
        reference = reference if reference is not None else 0

    # 4. Stream: decode -> crop -> batched engine -> (paste back) -> encode.
    def finish(frame: np.ndarray) -> np.ndarray:
        return paste_back(source_image, frame, source_t) if config.paste_back else frame

    out_size = (source_image.shape[1], source_image.shape[0]) if config.paste_back else (size, size)
    if driving.kind == "image":
        from scorr_cli.media import write_image

        crop = warp_crop(driving.image, window)
        result, kp_d, kp_r = _animate_batch(engine, state, [crop], options)
        if prev_path is not None:
            write_image(prev_path, preview_frame(source_crop, kp_source, crop, kp_d[0], result[0], kp_r[0]))
        write_image(config.output, finish(result[0]))
        n_written, fps, has_audio = 1, None, False
    else:
        n_written, has_audio = _stream_video(config, driving, kind, window, engine, state, options, finish,
                                             source_crop, kp_source, prev_path, report)
        fps = driving.info.fps
    damage = None
    if driving.info is not None and driving.info.damage is not None:
        of = f" of {driving.info.declared_frames} declared" if driving.info.declared_frames else ""
        damage = f"damaged driving video ({driving.info.damage}): used its {n_written} readable frame(s){of}"
    return AnimateResult(config.output, kind, n_written, fps, out_size, has_audio, mode, reference, cropper.name,
                         str(engine.device), time.perf_counter() - t0, prev_path, damage)


def _progress_iter(frames: Iterator[np.ndarray], stage: str, total: int, report: ProgressFn) -> Iterator[np.ndarray]:
    for i, frame in enumerate(frames):
        yield frame
        report(stage, i + 1, total)


def _animate_batch(engine: Any, state: Any, crops: list[np.ndarray], options: Any):
    """Model outputs as uint8 frames, plus driving and transferred keypoints for previews."""
    batch = images_to_tensor(crops)
    kp = engine.detect(batch)
    out = engine.animate(state, batch, options, kp_driving=kp)
    return tensor_to_images(out.prediction, crops[0].shape[0]), _kp_numpy(kp), _kp_numpy(out.kp_driving)


def _find_best_frame(config: AnimateConfig, driving: DrivingSource, cropper: FaceCropper, source_image: np.ndarray,
                     source_t: Any, window: Any, report: ProgressFn) -> int:
    """First pass over the clip: the frame whose face landmarks best match the source's (FOMM's rule)."""
    from scorr_cli.media import iter_video_frames

    src_lm = cropper.landmarks(warp_crop(source_image, rescaled(source_t, LANDMARK_SIZE)))
    if src_lm is None:
        raise NoFaceError(f"{config.source}: no face landmarks found in the source crop (needed by --find-best-frame)")
    search = BestFrameSearch(src_lm)
    big = rescaled(window, LANDMARK_SIZE)
    for frame in _progress_iter(iter_video_frames(config.driving, stop=driving.n_frames), "finding best frame",
                                driving.n_frames, report):
        search.add(cropper.landmarks(warp_crop(frame, big)))
    if search.best_index < 0:
        raise NoFaceError(f"{config.driving}: no face found in any of frames 0-{driving.n_frames - 1} "
                          "(needed by --find-best-frame; use --best-frame N)")
    return search.best_index


def chunked(frames: Iterator[np.ndarray], n: int) -> Iterator[list[np.ndarray]]:
    batch: list[np.ndarray] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def _stream_video(config: AnimateConfig, driving: DrivingSource, kind: str, window: Any, engine: Any, state: Any,
                  options: Any, finish: Callable[[np.ndarray], np.ndarray], source_crop: np.ndarray,
                  kp_source: np.ndarray, prev_path: Optional[Path], report: ProgressFn) -> tuple[int, bool]:
    from scorr_cli.media import iter_video_frames, open_writer

    info = driving.info
    with_audio = config.audio and kind == "mp4" and info.has_audio
    audio = {"audio_from": config.driving} if with_audio else {}
    total = driving.n_frames
    done = 0
    report("animating", 0, total)
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(open_writer(config.output, info.fps, kind, **audio))
        prev = stack.enter_context(open_writer(prev_path, info.fps, kind, **audio)) if prev_path else None
        crops = (warp_crop(f, window) for f in iter_video_frames(config.driving, stop=total))
        for batch in chunked(crops, config.batch_size):
            results, kp_d, kp_r = _animate_batch(engine, state, batch, options)
            for i, result in enumerate(results):
                writer.write(finish(result))
                if prev is not None:
                    prev.write(preview_frame(source_crop, kp_source, batch[i], kp_d[i], result, kp_r[i]))
            done += len(batch)
            report("animating", done, total)
    return done, with_audio
