"""Every list of valid values a user can pass, defined once (options, config files, manifests and the
library's own checks all read these). A leaf module: it imports nothing, so any layer may use it."""

from __future__ import annotations

MOTION_MODES: tuple[str, ...] = ("auto", "relative", "absolute")  # auto: relative for videos, absolute for an image
TRANSFER_MODES: tuple[str, ...] = ("relative", "absolute")  # what ``auto`` resolves to
OUTPUT_FORMATS: tuple[str, ...] = ("mp4", "gif", "png")  # png: a folder of frames
INFERENCE_PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")  # see core.engine.effective_precision
TRAIN_PRECISIONS: tuple[str, ...] = ("fp32", "bf16")
TRAIN_DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")  # and cuda:N
PRIORS: tuple[str, ...] = ("mtia", "tpsm", "fomm")  # prior motion models
PERCEPTUAL_BACKENDS: tuple[str, ...] = ("vgg19", "random", "none")
LPIPS_NETS: tuple[str, ...] = ("vgg", "alex", "none")
BACKENDS: tuple[str, ...] = ("torch", "onnx")  # what runs the networks for animate/batch; onnx: onnxruntime
ONNX_OPSETS: tuple[int, ...] = (16, 17, 18, 19, 20)  # GridSample needs 16; torch's TorchScript exporter stops at 20
# `scorr evaluate --baseline` rows, name: what it predicts. copy-source is the floor (nothing moves);
# driving-blurred the follow metric's ceiling: the driving frame itself softened by a Gaussian of σ 1 px (a
# correct face no sharper than a model's), so its follow scores are what landmark noise leaves of a perfect
# follower (in --cross its identity distance is another person's).
EVAL_BASELINES: dict[str, str] = {
    "copy-source": "the source frame as every prediction: no motion",
    "driving-blurred": "the driving frame blurred by σ 1 px: a perfect follower, the follow metric's ceiling",
}
FACE_DETECTORS: tuple[str, ...] = ("auto", "face-alignment", "dlib")  # auto: face-alignment when its weights are here


def one_of(values: tuple[str, ...]) -> str:
    """'a, b or c' for messages."""
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"
