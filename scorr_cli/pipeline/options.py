"""How a (source, driving) pair is rendered: the options ``animate`` and ``batch`` share, declared once,
and ``animate``'s own (:class:`AnimateConfig`). A light module (no torch, OpenCV or numpy): the CLI
builds its options from it without loading them.

Both commands build their command-line options from these fields (plus their own: the paths of
``animate``, the manifest and state options of ``batch``), validate them here, and resolve the
rules that depend on the input here (``auto`` motion mode, output size, audio), so the two cannot
render a pair differently. A batch manifest row may override the :data:`PAIR_OPTIONS` per item.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from scorr_cli.choices import BACKENDS, FACE_DETECTORS, INFERENCE_PRECISIONS, MOTION_MODES, OUTPUT_FORMATS, one_of
from scorr_cli.errors import InputError
from scorr_cli.options import argument, option

DEFAULT_OUTPUT_SIZE = 256  # smaller models are upsampled to this; larger ones keep their resolution


def delivered_size(model_size: int, requested: Optional[int] = None) -> int:
    """The size faces are cut and written at (``--size``, else the model's or DEFAULT_OUTPUT_SIZE, the
    larger): what a user of ``scorr animate`` sees, and what ``scorr evaluate --cross`` measures."""
    return requested or max(model_size, DEFAULT_OUTPUT_SIZE)


# Options a batch manifest row may set for its own pair (the others hold for the whole batch).
PAIR_OPTIONS: tuple[str, ...] = ("mode", "adapt_scale", "crop", "max_frames", "find_best_frame", "best_frame", "format",
                                 "audio")


@dataclass
class RenderOptions:
    """The model, where it runs, and how one pair's motion is transferred, cropped and written."""

    checkpoint: Optional[str] = option(
        None, "Weights by name (see `scorr weights list`) or path; default: the bundled default weights.",
        "--checkpoint", "-c")
    device: str = option("auto", "auto (CUDA, then MPS, then CPU; under torchrun the local rank's GPU), cpu, cuda, "
                                 "cuda:1, mps.")
    precision: str = option("auto", "auto: bf16 on a CPU with AMX (~1.5x faster there; frames within ~1/255 on "
                                    "average), fp32 elsewhere; fp32 (exact, the same frames on every machine); "
                                    "bf16/fp16 mixed precision on CUDA, bf16 also on a CPU with AVX512-BF16.",
                            metavar="|".join(INFERENCE_PRECISIONS))
    backend: str = option("torch", "What runs the networks: torch, or onnx (onnxruntime, from scorr's onnx extra). "
                                   "The onnx graphs come from --onnx-dir, else they are exported once per checkpoint "
                                   "into $XDG_CACHE_HOME/scorr/onnx (~/.cache/scorr/onnx).",
                          metavar="|".join(BACKENDS))
    onnx_dir: Optional[Path] = option(None, "With --backend onnx: a folder written by `scorr export` (it holds its "
                                            "own weights, so no --checkpoint).", show_default=False)
    skip_updates: Optional[int] = option(
        None, "Skip the flow/occlusion updater on the N finest pyramid levels, which then reuse the next level's "
              "refinement upsampled (faster; the finest level is 3/4 of the updater's work). Default: the "
              "model's own setting (the default model: 1; the authors' models: 0).", min=0, show_default=False)
    batch_size: int = option(4, "Driving frames per engine call (more is faster on a GPU, costs memory).",
                             "--batch-size", "-b", min=1)
    mode: str = option("auto", "Motion transfer: relative (follow the driving motion from a reference frame), "
                               "absolute (copy driving keypoints), or auto (relative for videos, absolute for a "
                               "single driving image).", metavar="|".join(MOTION_MODES))
    adapt_scale: bool = option(True, "Scale relative motion by the face-size ratio of source and reference.",
                               "--adapt-scale/--no-adapt-scale")
    crop: bool = option(True, "Face-crop the source and the driving video (one stable window for the whole clip); "
                              "--no-crop uses the centre square.", "--crop/--no-crop")
    detector: str = option("auto", "Face detector for cropping: auto (face-alignment when its weights are here, "
                                   "else dlib), dlib (offline) or face-alignment.", metavar="|".join(FACE_DETECTORS))
    max_frames: Optional[int] = option(None, "Animate only the first N driving frames (quick tries).", min=1)
    find_best_frame: bool = option(True, "Relative motion from the driving frame whose mouth opening and head pose "
                                         "best match the source's (looked for among evenly spaced frames); "
                                         "--first-frame: from the first frame.", "--find-best-frame/--first-frame")
    best_frame: Optional[int] = option(None, "Use driving frame N (0-based) as the motion reference.", min=0)
    format: Optional[str] = option(None, "Output format (mp4, gif, png: a folder of frames) when the extension "
                                         "does not say.", "--format", "-f")
    audio: bool = option(True, "Copy the driving video's audio into an MP4 output.", "--audio/--no-audio")
    size: Optional[int] = option(None, f"Output side in pixels (default: {DEFAULT_OUTPUT_SIZE}, or the model's "
                                       "resolution if larger); the model runs at its own resolution.", min=32)

    def __post_init__(self) -> None:
        for flag, value, valid in (("--mode", self.mode, MOTION_MODES),
                                   ("--precision", self.precision, INFERENCE_PRECISIONS),
                                   ("--backend", self.backend, BACKENDS),
                                   ("--detector", self.detector, FACE_DETECTORS),
                                   ("--format", self.format, OUTPUT_FORMATS)):
            if value is not None and value not in valid:
                raise InputError(f"{flag} {value}: expected {one_of(valid)}")
        for flag, value, least in (("--batch-size", self.batch_size, 1), ("--max-frames", self.max_frames, 1),
                                   ("--best-frame", self.best_frame, 0), ("--size", self.size, 32),
                                   ("--skip-updates", self.skip_updates, 0)):
            if value is not None and value < least:
                raise InputError(f"{flag} must be at least {least}, got {value}")
        self._check_backend()

    def _check_backend(self) -> None:
        if self.onnx_dir is not None:
            self.onnx_dir = Path(self.onnx_dir)
            if self.backend != "onnx":
                raise InputError(f"--onnx-dir {self.onnx_dir}: needs --backend onnx")
            if self.checkpoint is not None:
                raise InputError(f"--onnx-dir {self.onnx_dir}: the folder holds its own weights; drop --checkpoint")
            if self.skip_updates is not None:
                raise InputError(f"--onnx-dir {self.onnx_dir}: its graphs were fixed at export; drop --skip-updates "
                                 "(or `scorr export --skip-updates N`)")
        if self.backend == "onnx" and self.precision not in ("auto", "fp32"):
            raise InputError(f"--precision {self.precision}: the onnx backend runs the fp32 graphs; use --backend torch")

    def for_pair(self, overrides: dict[str, Any]) -> "RenderOptions":
        """These options with a manifest row's own values (only :data:`PAIR_OPTIONS`) in place."""
        unknown = set(overrides) - set(PAIR_OPTIONS)
        if unknown:
            raise ValueError(f"not per-pair options: {sorted(unknown)}")
        return dataclasses.replace(self, **overrides) if overrides else self

    def motion_mode(self, driving_kind: str) -> str:
        """``auto`` is relative for a video and absolute for a single image (one image has no motion)."""
        return self.mode if self.mode != "auto" else ("absolute" if driving_kind == "image" else "relative")

    def output_size(self, model_size: int) -> int:
        """Faces are cut and written at this size; the engine resizes them to the model's."""
        return delivered_size(model_size, self.size)

    def audio_from(self, kind: str, driving: Path, has_audio: bool) -> Optional[Path]:
        """The file to copy audio from: the driving video, for an MP4 output, unless --no-audio."""
        return driving if self.audio and kind == "mp4" and has_audio else None


@dataclass
class AnimateConfig(RenderOptions):
    """Everything ``scorr animate`` can be told: the shared render options plus its own; the CLI builds
    its options (and --help) from these fields."""

    source: Path = argument("Portrait to animate (PNG, JPEG, WebP, BMP, TIFF; any size).")
    driving: Path = argument("Driving video (anything ffmpeg reads), or one driving image.")
    output: Path = option(None, "Output: .mp4/.mov/.mkv, .gif, a folder name for PNG frames, or an image "
                                "(.png/.jpg/.webp) when the driving input is an image.", "--output", "-o",
                          required=True)
    force: bool = option(False, "Overwrite an existing output.", "--force")
    paste_back: bool = option(False, "Blend the animated face back into the full-resolution source image (output "
                                     "has the source's size).", "--paste-back")
    preview: bool = option(False, "Also write <output>.preview: source | driving | result side by side, keypoints "
                                  "drawn.", "--preview")
    accept_damaged: bool = option(False, "Animate the readable part of a damaged (cut short, corrupt) driving video "
                                         "instead of refusing it; the summary says how many frames were used.",
                                  "--accept-damaged")

    def __post_init__(self) -> None:
        for name in ("source", "driving", "output"):
            value = getattr(self, name)
            if value is None:
                raise ValueError(f"AnimateConfig.{name} is required")
            setattr(self, name, Path(value))
        super().__post_init__()
