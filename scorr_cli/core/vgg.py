"""Frozen VGG-19 feature extractor for the perceptual training loss.

Written in plain torch (torchvision cannot be installed beside our torch) but with torchvision's
module layout, so the state dict keys are exactly ``features.<i>.weight/bias`` of
``torchvision.models.vgg19().features`` and the official ImageNet file ``vgg19-dcbbe2e5.pth`` loads
after dropping its classifier. The authors' checkpoints store the same tensors as ``slice<n>.<i>.*``
(FOMM's ``Vgg19``); :func:`vgg19_state_from_any` accepts both spellings. Reading the weight file is
:mod:`scorr_cli.checkpoints.vgg`'s job.
"""

from __future__ import annotations

import math
import re
from typing import Mapping

import torch
from torch import nn

from scorr_cli.errors import MissingWeightsError

# torchvision's configuration "E": channel counts, "M" = 2x2 max pool.
VGG19_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                                    512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
# Exclusive end index (into ``features``) of each slice: relu1_1, relu2_1, relu3_1, relu4_1, relu5_1.
SLICE_ENDS: tuple[int, ...] = (2, 7, 12, 21, 30)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG19_FILENAME = "vgg19-dcbbe2e5.pth"
VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILENAME}"


def _make_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    in_ch = 3
    for v in VGG19_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_ch, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            in_ch = int(v)
    return nn.Sequential(*layers)


class VGG19Features(nn.Module):
    """ImageNet-normalising VGG-19 returning the five relu*_1 activations; parameters frozen.

    All 37 ``features`` layers exist (so the key set matches torchvision's) but only the first 30 run.
    Gradients still flow to the *input*, which is what the perceptual loss needs.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = _make_features()
        # Not persistent: constants, and keeping them out keeps the key set torchvision's.
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGG19Features":
        # No BN/dropout in the features, but stay in eval so callers' .train() can't suggest otherwise.
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x``: B×3×H×W RGB in [0, 1]. Returns [relu1_1, relu2_1, relu3_1, relu4_1, relu5_1].

        Slices whose input would pool below one pixel (deep pyramid levels of tiny frames, e.g. 8² at
        64²/8) are left out, so the list can be shorter; callers zip it with their layer weights.
        """
        h = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        outs: list[torch.Tensor] = []
        start = 0
        for end in SLICE_ENDS:
            pools = sum(isinstance(self.features[i], nn.MaxPool2d) for i in range(start, end))
            if min(h.shape[-2:]) < 2**pools:
                break
            for i in range(start, end):
                h = self.features[i](h)
            outs.append(h)
            start = end
        return outs


def vgg19_state_from_any(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a torchvision ``vgg19()`` / ``vgg19().features`` / FOMM ``Vgg19`` state dict to our keys.

    Accepted prefixes: ``features.<i>.`` (torchvision), ``<i>.`` (a bare ``features`` dict),
    ``[module.][vgg.]slice<n>.<i>.`` (the authors' checkpoints). Other keys (classifier, mean/std)
    are ignored.
    """
    out: dict[str, torch.Tensor] = {}
    pat = re.compile(r"^(?:module\.)?(?:vgg\.)?(?:features\.|slice\d+\.)?(\d+)\.(weight|bias)$")
    for key, value in state.items():
        m = pat.match(key)
        if m:
            out[f"features.{m.group(1)}.{m.group(2)}"] = value
    return out


def _random_init_(model: VGG19Features, seed: int) -> None:
    """torchvision's VGG init (Kaiming normal, fan_out, ReLU; zero bias) from a private generator."""
    gen = torch.Generator().manual_seed(int(seed))
    for m in model.features:
        if isinstance(m, nn.Conv2d):
            fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
            std = math.sqrt(2.0 / fan_out)
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * std)
                m.bias.zero_()


def build_vgg19(weights: Mapping[str, torch.Tensor] | None = None, seed: int = 0) -> VGG19Features:
    """ImageNet VGG-19 from ``weights`` (any spelling :func:`vgg19_state_from_any` accepts), or a
    fixed-seed random one when ``weights`` is None (offline runs and smoke tests).

    Only the layers the loss uses (``features.0``–``features.28``) must be present; missing deeper
    layers stay randomly initialised since they never run.
    """
    model = VGG19Features()
    _random_init_(model, seed)
    if weights is not None:
        state = vgg19_state_from_any(weights)
        needed = {k for k in model.state_dict() if int(k.split(".")[1]) < SLICE_ENDS[-1]}
        missing = sorted(needed - state.keys(), key=lambda k: int(k.split(".")[1]))
        if missing:
            raise MissingWeightsError(f"VGG-19 weights lack {len(missing)} tensors (first: {missing[0]})")
        model.load_state_dict(state, strict=False)
    return model


__all__ = ["VGG19Features", "build_vgg19", "vgg19_state_from_any", "SLICE_ENDS", "VGG19_FILENAME", "VGG19_URL"]
