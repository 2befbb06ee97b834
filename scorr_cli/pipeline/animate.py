"""``animate``: a portrait + a driving video (or image) -> a finished video (or image).

Orchestration only: check every input and output before any slow work, crop faces, stream driving
frames through the engine in batches and straight into an atomic writer (the render path
:mod:`scorr_cli.pipeline.render`, shared with ``batch``); decoding and encoding run beside the model
(:mod:`scorr_cli.pipeline.overlap`). Nothing holds the whole video: memory is
the same for a 10 s and a 10 min clip (``benchmarks/bench_memory.py``).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import cv2
import numpy as np

from scorr_cli.errors import InputError
from scorr_cli.faces import paste_back, warp_crop
from scorr_cli.fsutil import check_output
from scorr_cli.pipeline.faces import LANDMARK_SIZE, FaceCropper, matched_reference, reference_landmarks, rescaled
from scorr_cli.pipeline.options import AnimateConfig
from scorr_cli.pipeline.overlap import prefetch
from scorr_cli.pipeline.render import (DrivingSource, ProgressFn, RenderedBatch, chunked, image_to_tensor,
                                       images_to_tensor, kp_numpy, load_engine, open_driving, output_kind, render,
                                       runs_on, write_clip)

PREVIEW_PANEL = 256
"""Preview panels are at least this big so keypoints stay visible with low-resolution models."""


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


# ----------------------------------------------------------------------------- the command

@dataclass
class _Inputs:
    """Checked inputs and outputs of one run (everything that can fail fast, before the model loads)."""

    source_image: np.ndarray
    driving: DrivingSource
    kind: str
    mode: str
    preview: Optional[Path]


def _check(config: AnimateConfig) -> _Inputs:
    from scorr_cli.media import read_image

    source_image = read_image(config.source)
    driving = open_driving(config.driving, config.max_frames, config.accept_damaged)
    kind = output_kind(config.output, config.format, config.driving, driving.kind)
    prev_path = preview_path(config.output, kind) if config.preview else None
    for path in (config.output, prev_path):
        if path is not None:
            check_output(path, config.force, (config.source, config.driving))
    if config.best_frame is not None and config.best_frame >= driving.n_frames:
        raise InputError(f"--best-frame {config.best_frame}: {config.driving} has {driving.n_frames} frame(s) "
                         f"(0-{driving.n_frames - 1})")
    mode = config.motion_mode(driving.kind)
    if mode == "relative" and driving.kind == "image":
        raise InputError(f"{config.driving}: --mode relative needs a driving video (it copies the motion between "
                         "its frames; one image has none): use --mode absolute or auto")
    return _Inputs(source_image, driving, kind, mode, prev_path)


def animate(config: AnimateConfig, progress: Optional[ProgressFn] = None, engine: Any = None) -> AnimateResult:
    """Run ``scorr animate``. ``engine`` may be given (tests, benchmarks) to skip loading a checkpoint."""
    from scorr_cli.core.transfer import TransferOptions

    t0 = time.perf_counter()
    report = progress or (lambda stage, done, total: None)
    inputs = _check(config)
    driving = inputs.driving
    engine = engine if engine is not None else load_engine(config)
    size = config.output_size(engine.size)

    # Faces: the source crop, and one crop window for all driving frames.
    cropper = FaceCropper(config.crop, config.detector, device="cpu")
    report("cropping source", 0, 1)
    source_crop, source_t = cropper.source(inputs.source_image, size, str(config.source))
    state = engine.prepare(image_to_tensor(source_crop))
    report("cropping source", 1, 1)
    window = _driving_window(config, driving, cropper, size, report)
    reference = _set_reference(config, inputs, engine, state, cropper, source_t, window, report)

    # Stream: decode -> crop -> keypoints -> render -> (paste back) -> encode.
    transfer = TransferOptions(mode=inputs.mode, adapt_scale=config.adapt_scale)
    finish = (lambda f: paste_back(inputs.source_image, f, source_t)) if config.paste_back else (lambda f: f)
    sinks = [(config.output, lambda b: [finish(f) for f in b.frames])]
    if inputs.preview is not None:
        kp_source = kp_numpy(state.prepared.kp)[0]
        sinks.append((inputs.preview, lambda b: _preview_frames(source_crop, kp_source, b)))
    # Frames are decoded and cropped in a thread beside the model; closing stops it on any exit.
    with contextlib.closing(prefetch(_driving_crops(config, driving, window), depth=2 * config.batch_size)) as crops:
        batches = (render(engine, state, engine.detect(images_to_tensor(batch)), transfer, size, batch)
                   for batch in chunked(crops, config.batch_size))
        n_written, fps, audio_from = _write(config, inputs, batches, sinks, report)

    h, w = inputs.source_image.shape[:2]
    damage = None
    if driving.info is not None and driving.info.damage is not None:
        of = f" of {driving.info.declared_frames} declared" if driving.info.declared_frames else ""
        damage = f"damaged driving video ({driving.info.damage}): used its {n_written} readable frame(s){of}"
    return AnimateResult(config.output, inputs.kind, n_written, fps, (w, h) if config.paste_back else (size, size),
                         audio_from is not None, inputs.mode, reference, cropper.name, runs_on(engine),
                         time.perf_counter() - t0, inputs.preview, damage)


def _write(config: AnimateConfig, inputs: _Inputs, batches: Iterator[RenderedBatch], sinks: list,
           report: ProgressFn) -> tuple[int, Optional[Fraction], Optional[Path]]:
    """Frames into the output (and preview): one image, or a clip at the driving video's frame rate."""
    if inputs.driving.kind == "image":
        from scorr_cli.media import write_image

        batch = next(batches)
        for path, frames_of in sinks:
            write_image(path, frames_of(batch)[0])
        return 1, None, None
    info = inputs.driving.info
    audio_from = config.audio_from(inputs.kind, config.driving, info.has_audio)
    n = write_clip(batches, sinks, inputs.kind, info.fps, audio_from, inputs.driving.n_frames, report, "animating")
    return n, info.fps, audio_from


def _driving_window(config: AnimateConfig, driving: DrivingSource, cropper: FaceCropper, size: int,
                    report: ProgressFn) -> Any:
    """One crop window for every driving frame (a first pass over a video finds the face track)."""
    if driving.kind == "image":
        return cropper.image_window(driving.image, size, str(config.driving))
    from scorr_cli.media import iter_video_frames

    info = driving.info
    frames = _progress_iter(iter_video_frames(config.driving, stop=driving.n_frames), "finding the face",
                            driving.n_frames, report)
    return cropper.video_window(frames, driving.n_frames, info.width, info.height, size, str(config.driving))


def _driving_crops(config: AnimateConfig, driving: DrivingSource, window: Any) -> Iterator[np.ndarray]:
    if driving.kind == "image":
        yield warp_crop(driving.image, window)
        return
    from scorr_cli.media import iter_video_frames

    for frame in iter_video_frames(config.driving, stop=driving.n_frames):
        yield warp_crop(frame, window)


def _set_reference(config: AnimateConfig, inputs: _Inputs, engine: Any, state: Any, cropper: FaceCropper,
                   source_t: Any, window: Any, report: ProgressFn) -> Optional[int]:
    """The motion reference of relative mode: frame 0 (the engine takes the first frame it animates), a
    given frame, or the best-matching one; None in absolute mode."""
    if inputs.mode != "relative":
        return None
    reference = config.best_frame
    if config.find_best_frame and reference is None:
        reference = _find_best_frame(config, inputs.driving, cropper, inputs.source_image, source_t, window, report)
    if reference is None:
        return 0
    from scorr_cli.media import iter_video_frames

    ref = next(iter(iter_video_frames(config.driving, start=reference, stop=reference + 1)))
    engine.set_reference(state, engine.detect(image_to_tensor(warp_crop(ref, window))))
    return reference


def _preview_frames(source_crop: np.ndarray, kp_source: np.ndarray, batch: RenderedBatch) -> list[np.ndarray]:
    return [preview_frame(source_crop, kp_source, crop, kd, result, kr)
            for crop, kd, result, kr in zip(batch.crops, batch.kp_driving, batch.frames, batch.kp_transferred)]


def _progress_iter(frames: Iterator[np.ndarray], stage: str, total: int, report: ProgressFn) -> Iterator[np.ndarray]:
    for i, frame in enumerate(frames):
        yield frame
        report(stage, i + 1, total)


def _find_best_frame(config: AnimateConfig, driving: DrivingSource, cropper: FaceCropper, source_image: np.ndarray,
                     source_t: Any, window: Any, report: ProgressFn) -> Optional[int]:
    """A first look at the clip: the frame whose mouth opening and head pose best match the source's
    (:func:`~scorr_cli.pipeline.faces.matched_reference`); None when no face could be matched."""
    from scorr_cli.media import iter_video_frames

    src_lm = cropper.landmarks(warp_crop(source_image, rescaled(source_t, LANDMARK_SIZE)))
    big = rescaled(window, LANDMARK_SIZE)
    frames = _progress_iter(iter_video_frames(config.driving, stop=driving.n_frames), "choosing the reference",
                            driving.n_frames, report)
    crops = (warp_crop(f, big) for f in frames)
    return matched_reference(src_lm, reference_landmarks(crops, driving.n_frames, cropper.landmarks))
