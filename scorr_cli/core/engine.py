"""Inference engine shared by every command: prepare a source once, animate driving frames in batches.

Everything that depends only on the source (keypoints, the generator's feature pyramid, the source
structure features, the 1/4-resolution source) is computed once in :meth:`AnimationEngine.prepare`
and reused for every batch of driving frames. Frames are ``B×3×H×W`` float tensors in [0, 1] at the
model's resolution (other sizes are resized on the way in); converting from/to images is the caller's job.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from scorr_cli.core.blocks import fold_batchnorm
from scorr_cli.core.model import MRFA, FrameOutput, PreparedSource
from scorr_cli.core.transfer import TransferOptions, movement_scale, transfer_keypoints

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _concat_outputs(parts: list[FrameOutput]) -> FrameOutput:
    """Join per-chunk outputs along the batch (every tensor in them is batch-first)."""
    def cat(items):
        first = items[0]
        if isinstance(first, torch.Tensor):
            return torch.cat(items)
        if isinstance(first, dict):
            return {k: cat([it[k] for it in items]) if first[k] is not None else None for k in first}
        if isinstance(first, list):
            return [cat(list(z)) for z in zip(*items)]
        return first

    ref = parts[0].refiner
    refiner = type(ref)(**{f: cat([getattr(p.refiner, f) for p in parts]) for f in ref.__dataclass_fields__})
    return FrameOutput(cat([p.prediction for p in parts]), refiner, cat([p.dense for p in parts]),
                       cat([p.kp_driving for p in parts]))


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; an explicit device that is absent is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was requested but this torch build or machine has no CUDA device")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("MPS was requested but is not available on this machine")
    return device


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AMX tiles or AVX512-BF16): there oneDNN runs bf16
    convolutions faster than fp32; elsewhere bf16 is emulated and slower."""
    return cpu_has_amx() or bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())


def cpu_has_amx() -> bool:
    """AMX tiles (Intel Sapphire Rapids and later): where ``--precision auto`` picks bf16 (measured there:
    ~1.5x the frames per second of fp32, landmarks of the frames within the detector's own noise)."""
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def effective_precision(device: torch.device, precision: str) -> str:
    """The precision that actually runs. ``auto``: bf16 on a CPU with AMX, fp32 everywhere else (bf16 on a
    GPU is a choice, not yet measured here). CUDA takes bf16/fp16 as asked; a CPU takes bf16 when it has
    native bf16 (:func:`cpu_has_fast_bf16`) and runs fp32 otherwise (fp16 is a CUDA option)."""
    if precision not in PRECISIONS and precision != "auto":
        raise ValueError(f"unknown precision {precision!r}; expected auto or one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if device.type == "cpu" and cpu_has_amx() else "fp32"
    if device.type == "cuda" or precision == "fp32":
        return precision
    return "bf16" if device.type == "cpu" and precision == "bf16" and cpu_has_fast_bf16() else "fp32"


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Mixed precision where it pays off (CUDA; bf16 on a CPU with native bf16); fp32 everywhere else."""
    precision = effective_precision(device, precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=PRECISIONS[precision])


def prepare_for_cpu_bf16(model: MRFA) -> None:
    """Make the dense motion, refiner and generator run as bf16 convolutions on a CPU: their convolution and
    linear weights are stored in bf16 (autocast would otherwise cast every weight on every call) and in
    channels-last order (oneDNN's native layout for bf16). Keypoints steer every flow, so of the keypoint
    network only the part it names as ``bf16_part()`` goes bf16 (MTIA's CNN front end; the transformer
    that regresses the positions stays fp32, other priors stay fp32 whole). BatchNorms that follow a
    convolution are folded into it first, in fp32 (:func:`~scorr_cli.core.blocks.fold_batchnorm`)."""
    fold_batchnorm(model)
    bf16_keypoints = getattr(model.encoder, "bf16_part", None)
    parts = [model.dense_motion, model.decoder] + ([bf16_keypoints()] if bf16_keypoints else [])
    for part in parts:
        part.to(memory_format=torch.channels_last)
        for module in part.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                module.to(torch.bfloat16)


@dataclass
class SourceState:
    """A prepared source plus the motion reference (first/best driving frame) once it is known."""

    prepared: PreparedSource
    reference: dict[str, torch.Tensor] | None = None
    scale: torch.Tensor | None = None  # adapt-scale factor, computed once per reference
    extras: dict = field(default_factory=dict)


class EngineBase:
    """What every engine shares (this torch one, and the onnxruntime one in :mod:`scorr_cli.export`):
    frames resized to the model's input, the motion reference and motion transfer, so both backends
    move keypoints with the same code. Subclasses run the networks: ``detect``, ``prepare``, ``animate``."""

    def __init__(self, size: int, device: torch.device, render_chunk: int | None = None):
        self.size = size
        self.device = device
        # Keypoints are detected for the whole batch at once, but on a CPU the refiner/generator run
        # faster one frame at a time (their ~100 MB-per-frame working set then stays in cache).
        self.render_chunk = render_chunk if render_chunk is not None else (1 if device.type == "cpu" else None)

    def _to_device(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.dim() == 3:
            frames = frames[None]
        frames = frames.to(self.device, torch.float32, non_blocking=True)
        if frames.shape[-1] != self.size or frames.shape[-2] != self.size:
            # Crops may be larger than the model (e.g. 256² output from a 128² model): anti-aliased resize.
            frames = F.interpolate(frames, size=(self.size, self.size), mode="bilinear", align_corners=False,
                                   antialias=frames.shape[-1] > self.size)
        return frames

    def set_reference(self, state: SourceState, kp_reference: dict[str, torch.Tensor]) -> None:
        """Fix the driving frame that relative motion is measured from."""
        state.reference = {k: v[:1] for k, v in kp_reference.items()}
        state.scale = movement_scale(state.prepared.kp["kp"], state.reference["kp"])

    def transfer(self, state: SourceState, frames: torch.Tensor | None, options: TransferOptions,
                 kp_driving: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The keypoints to render: driving keypoints (detected in ``frames`` unless given) moved onto the
        source; the first driving frame becomes the reference if relative motion has none yet."""
        if kp_driving is None:
            kp_driving = self.detect(frames)
        if options.mode == "relative" and state.reference is None:
            self.set_reference(state, kp_driving)
        return transfer_keypoints(state.prepared.kp, kp_driving, state.reference, options, state.scale)


class AnimationEngine(EngineBase):
    def __init__(self, model: MRFA, device: str | torch.device = "cpu", precision: str = "fp32",
                 render_chunk: int | None = None, corr_impl: str = "auto", owns_model: bool = False):
        """``owns_model``: the engine may change ``model`` (a model loaded for it alone): BatchNorms that
        follow a convolution are folded into it in every precision (one pass over the features fewer
        per block, the same frames to ~1e-5). Otherwise the caller's model is left as it is, and only
        the bf16 CPU path, which works on a copy, folds them."""
        device = device if isinstance(device, torch.device) else resolve_device(device)
        super().__init__(model.cfg.image_size, device, render_chunk)
        self.precision = effective_precision(self.device, precision)
        if self._cpu_bf16:
            model = model if owns_model else copy.deepcopy(model)  # its weights become bf16
            prepare_for_cpu_bf16(model)
        elif owns_model:
            fold_batchnorm(model.eval())
        self.model = model.to(self.device).eval()
        # auto: the fused Triton correlation lookup on CUDA when triton is installed, torch elsewhere.
        self.model.decoder.corr_impl = corr_impl

    @property
    def _cpu_bf16(self) -> bool:
        """bf16 on a CPU: bf16 weights (:func:`prepare_for_cpu_bf16`), fp32 keypoints and source features."""
        return self.device.type == "cpu" and self.precision == "bf16"

    def _autocast(self) -> contextlib.AbstractContextManager:
        return autocast_context(self.device, self.precision)

    @torch.no_grad()
    def detect(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        # The CPU bf16 path keeps the keypoint network in fp32 (see prepare_for_cpu_bf16).
        with self._autocast() if self.device.type == "cuda" else contextlib.nullcontext():
            kp = self.model.detect(self._to_device(frames))
        return {k: v.float() for k, v in kp.items()}

    @torch.no_grad()
    def prepare(self, source: torch.Tensor) -> SourceState:
        source = self._to_device(source)
        kp = self.detect(source)
        with self._autocast():
            prepared = self.model.prepare_source(source, kp)
        if self._cpu_bf16:
            prepared.features = prepared.features.as_fp32()
        return SourceState(prepared)

    @torch.no_grad()
    def animate(self, state: SourceState, frames: torch.Tensor | None, options: TransferOptions = TransferOptions(),
                kp_driving: dict[str, torch.Tensor] | None = None) -> FrameOutput:
        """Animate a batch of driving frames, or of driving keypoints detected earlier (``frames=None``).

        Passing cached ``kp_driving`` lets batch jobs detect each driving clip once for many sources.
        """
        kp = self.transfer(state, frames, options, kp_driving)
        n = kp["kp"].shape[0]
        chunk = self.render_chunk or n
        with self._autocast():
            parts = [self.model.animate(state.prepared, {k: v[i:i + chunk] for k, v in kp.items()})
                     for i in range(0, n, chunk)]
        out = parts[0] if len(parts) == 1 else _concat_outputs(parts)
        out.prediction = out.prediction.float().clamp_(0, 1)
        return out

    @torch.no_grad()
    def reconstruct(self, state: SourceState, source: torch.Tensor, frames: torch.Tensor,
                    use_background: bool = True) -> torch.Tensor:
        """The paper's reconstruction forward (evaluation): each frame drives the source with its own
        **absolute** keypoints, plus background motion when the model has a predictor and
        ``use_background``. Returns predictions ``B×3×S×S`` in [0, 1] on the CPU."""
        x = self._to_device(frames)
        kp = self.detect(x)
        with self._autocast():
            bg = None
            if use_background and self.model.has_background:
                bg = self.model.bg_predictor(self._to_device(source).expand(x.shape[0], -1, -1, -1), x)
            out = self.model.animate(state.prepared, kp, bg)
        return out.prediction.float().clamp(0, 1).cpu()
