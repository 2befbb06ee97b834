"""Convolutional building blocks shared by the prior and refinement networks (FOMM lineage).

Attribute names (``conv``, ``norm``, ``conv1``...) are those of the authors' checkpoints.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class NarrowConv2d(nn.Conv2d):
    """A stride-1 'same' convolution with few output channels (flow/occlusion/RGB heads).

    oneDNN runs such layers at 10-40 GFLOP/s on a CPU, a tenth of its rate on wide ones. On the CPU
    this computes them as one matmul giving all k²·C_out tap responses, then k² shifted adds:
    same values up to float rounding, same parameters, 2-3x faster at 256² (bench: 3×3 128→2,
    7×7 64→3). Other devices, and ONNX export (where the trick would become k² slice-and-add nodes
    that onnxruntime runs slower than its own convolution), use the ordinary convolution; so does
    anything autograd records (training): the backward of each of the k² slices is a zero-filled copy
    of the whole tap tensor (77 MB for the 7×7 RGB head at batch 8, 128², 49 of them), which cost a
    lite training step 14% of its CPU time.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.device.type != "cpu" or self.weight.dtype != torch.float32 or torch.is_autocast_enabled("cpu")
                or torch.onnx.is_in_onnx_export() or self._records_gradient(x)):
            return super().forward(x)  # (bf16 on a CPU: oneDNN's own convolution is the fast one)
        b, c, h, w = x.shape
        o, k = self.out_channels, self.kernel_size[0]
        p = k // 2
        # contiguous(): for one output channel the reshape is a transposed view, and BLAS is 6x slower on it.
        weight = self.weight.permute(2, 3, 0, 1).reshape(k * k * o, c).contiguous()
        taps = torch.matmul(weight, x.reshape(b, c, h * w))
        taps = taps.view(b, k, k, o, h, w)
        out = x.new_zeros(b, o, h, w) if self.bias is None else self.bias.view(1, o, 1, 1).repeat(b, 1, h, w)
        for i in range(k):  # output (y, x) gathers tap (i, j) of input (y + i - p, x + j - p)
            y0, y1 = max(0, p - i), min(h, h + p - i)
            for j in range(k):
                x0, x1 = max(0, p - j), min(w, w + p - j)
                out[:, :, y0:y1, x0:x1] += taps[:, i, j, :, y0 + i - p:y1 + i - p, x0 + j - p:x1 + j - p]
        return out

    def _records_gradient(self, x: torch.Tensor) -> bool:
        return torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters()))


class SameBlock2d(nn.Module):
    """conv (same padding) -> BN -> ReLU."""

    CONV_BN_PAIRS = (("conv", "norm"),)

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=kernel_size // 2)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)), inplace=True)


class DownBlock2d(nn.Module):
    """conv 3x3 -> BN -> ReLU -> 2x2 average pool."""

    CONV_BN_PAIRS = (("conv", "norm"),)

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, 3, padding=1)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.relu(self.norm(self.conv(x)), inplace=True), 2)


class UpBlock2d(nn.Module):
    """nearest x2 -> conv 3x3 -> BN -> ReLU."""

    CONV_BN_PAIRS = (("conv", "norm"),)

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, 3, padding=1)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(F.interpolate(x, scale_factor=2.0))), inplace=True)


class ResBlock2d(nn.Module):
    """Pre-activation residual block that keeps the channel count."""

    CONV_BN_PAIRS = (("conv1", "norm2"),)  # norm1 acts on the input: not foldable

    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)
        self.norm1 = nn.BatchNorm2d(features, affine=True)
        self.norm2 = nn.BatchNorm2d(features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x), inplace=True))
        out = self.conv2(F.relu(self.norm2(out), inplace=True))
        return out + x


class ChannelBlock2d(nn.Module):
    """BN -> ReLU -> conv 3x3 halving the channels: fuses refined and coarse features."""

    def __init__(self, in_features: int):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_features, affine=True)
        self.conv1 = nn.Conv2d(in_features, in_features // 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(F.relu(self.norm1(x), inplace=True))


class Encoder(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock2d(in_features if i == 0 else min(max_features, block_expansion * 2**i),
                        min(max_features, block_expansion * 2 ** (i + 1)))
            for i in range(num_blocks)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class Decoder(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            in_filters = (1 if i == num_blocks - 1 else 2) * min(max_features, block_expansion * 2 ** (i + 1))
            blocks.append(UpBlock2d(in_filters, min(max_features, block_expansion * 2**i)))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        skips = list(skips)
        out = skips.pop()
        for block in self.up_blocks:
            out = torch.cat([block(out), skips.pop()], dim=1)
        return out


class Hourglass(nn.Module):
    """U-Net whose output is the last decoder features concatenated with the raw input."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256):
        super().__init__()
        self.encoder = Encoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = Decoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def gaussian_blur_kernel(channels: int, scale: float) -> torch.Tensor:
    """The anti-aliasing kernel of FOMM's ``AntiAliasInterpolation2d`` (float32, same arithmetic)."""
    sigma = (1 / scale - 1) / 2
    size = 2 * round(sigma * 4) + 1
    kernel = torch.ones((), dtype=torch.float32)
    grids = torch.meshgrid([torch.arange(size, dtype=torch.float32)] * 2, indexing="ij")
    for grid in grids:
        mean = (size - 1) / 2
        kernel = kernel * torch.exp(-((grid - mean) ** 2) / (2 * sigma**2))
    kernel = kernel / torch.sum(kernel)
    return kernel.view(1, 1, size, size).repeat(channels, 1, 1, 1)


class AntiAliasInterpolation2d(nn.Module):
    """Gaussian blur then nearest down-sampling: a cheap alias-free resize by ``scale`` (< 1)."""

    def __init__(self, channels: int, scale: float):
        super().__init__()
        self.scale = float(scale)
        self.groups = channels
        if self.scale == 1.0:
            # The authors' checkpoint stores a NaN kernel here (sigma = 0); it is never used.
            self.register_buffer("weight", torch.full((channels, 1, 1, 1), math.nan))
            self.ka = self.kb = 0
        else:
            kernel = gaussian_blur_kernel(channels, self.scale)
            self.register_buffer("weight", kernel)
            k = kernel.shape[-1]
            self.ka = k // 2
            self.kb = self.ka - 1 if k % 2 == 0 else self.ka

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 1.0:
            return x
        out = F.pad(x, (self.ka, self.kb, self.ka, self.kb))
        out = F.conv2d(out, self.weight.to(out.dtype), groups=self.groups)
        step = round(1 / self.scale)
        if abs(step - 1 / self.scale) < 1e-9:
            # Nearest resize by 1/step picks every step-th pixel; slicing is the same and cheaper.
            return out[:, :, ::step, ::step]
        return F.interpolate(out, scale_factor=(self.scale, self.scale))


def _fold_into(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> None:
    """``conv`` followed by the inference-mode ``norm`` becomes one convolution (computed in fp32)."""
    scale = norm.weight.float() / torch.sqrt(norm.running_var.float() + norm.eps)
    bias = conv.bias.float() if conv.bias is not None else torch.zeros_like(scale)
    conv.weight.copy_((conv.weight.float() * scale.view(-1, 1, 1, 1)).to(conv.weight.dtype))
    new_bias = (bias - norm.running_mean.float()) * scale + norm.bias.float()
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias.to(conv.weight.dtype))
    else:
        conv.bias.copy_(new_bias.to(conv.bias.dtype))


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> int:
    """Fold every inference-mode BatchNorm that directly follows a convolution into that convolution's
    weight and bias (``conv → BN`` becomes one conv: the same affine map, one pass over the features fewer).
    Only for evaluation: the running statistics are baked in. The pairs are the ``CONV_BN_PAIRS`` a block
    class names (attribute names, conv first) and consecutive ``Conv2d, BatchNorm2d`` in an
    ``nn.Sequential``; the folded BatchNorm becomes an ``nn.Identity``. Returns how many were folded."""
    folded = 0
    for block in model.modules():
        for conv_name, norm_name in getattr(type(block), "CONV_BN_PAIRS", ()):
            conv, norm = getattr(block, conv_name), getattr(block, norm_name)
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                _fold_into(conv, norm)
                setattr(block, norm_name, nn.Identity())
                folded += 1
        if isinstance(block, nn.Sequential):
            for i in range(len(block) - 1):
                if isinstance(block[i], nn.Conv2d) and isinstance(block[i + 1], nn.BatchNorm2d):
                    _fold_into(block[i], block[i + 1])
                    block[i + 1] = nn.Identity()
                    folded += 1
    return folded
