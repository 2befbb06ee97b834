"""HRNet stages 1-3: the MTIA keypoint network's CNN front end (32 channels at 1/4 resolution).

Module names follow the official HRNet code so that checkpoint keys match
(``layer1``, ``transition1``, ``stage2``, ``fuse_layers`` ...).
"""

from __future__ import annotations

import torch
from torch import nn

from scorr_cli.core.config import MTIAConfig


def _conv_bn(cin: int, cout: int, kernel: int, stride: int, relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    expansion = 1
    CONV_BN_PAIRS = (("conv1", "bn1"), ("conv2", "bn2"))  # for core.blocks.fold_batchnorm

    def __init__(self, inplanes: int, planes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class Bottleneck(nn.Module):
    expansion = 4
    CONV_BN_PAIRS = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))

    def __init__(self, inplanes: int, planes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if inplanes != planes * 4:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, bias=False), nn.BatchNorm2d(planes * 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


class HighResolutionModule(nn.Module):
    """Parallel branches of BasicBlocks followed by all-to-all multi-resolution fusion."""

    def __init__(self, widths: tuple[int, ...], num_blocks: int, multi_scale_output: bool = True):
        super().__init__()
        self.num_branches = len(widths)
        self.branches = nn.ModuleList(
            nn.Sequential(*[BasicBlock(w, w) for _ in range(num_blocks)]) for w in widths)
        fuse_layers = []
        for i in range(self.num_branches if multi_scale_output else 1):
            row: list[nn.Module | None] = []
            for j in range(self.num_branches):
                if j > i:
                    row.append(nn.Sequential(nn.Conv2d(widths[j], widths[i], 1, 1, 0, bias=False),
                                             nn.BatchNorm2d(widths[i]),
                                             nn.Upsample(scale_factor=2 ** (j - i), mode="nearest")))
                elif j == i:
                    row.append(None)
                else:
                    chain = [_conv_bn(widths[j], widths[i] if k == i - j - 1 else widths[j], 3, 2,
                                      relu=k != i - j - 1) for k in range(i - j)]
                    row.append(nn.Sequential(*chain))
            fuse_layers.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse_layers)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        fused = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[0] if i == 0 else row[0](xs[0])
            for j in range(1, self.num_branches):
                y = y + (xs[j] if i == j else row[j](xs[j]))
            fused.append(self.relu(y))
        return fused


class HRNetFrontEnd(nn.Module):
    """Stem + layer1 + stages 2 and 3; returns the highest-resolution branch."""

    CONV_BN_PAIRS = (("conv1", "bn1"), ("conv2", "bn2"))

    def __init__(self, cfg: MTIAConfig, in_channels: int = 3):
        super().__init__()
        w = cfg.branch_widths
        stem = cfg.stem_width
        self.conv1 = nn.Conv2d(in_channels, stem, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.conv2 = nn.Conv2d(stem, stem, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        planes = cfg.bottleneck_planes
        self.layer1 = nn.Sequential(*[Bottleneck(stem if k == 0 else planes * 4, planes)
                                      for k in range(cfg.num_bottlenecks)])
        c1 = planes * 4
        # transition1: branch 0 at full (1/4) res, branch 1 one stride-2 conv lower.
        self.transition1 = nn.ModuleList([_conv_bn(c1, w[0], 3, 1, relu=True),
                                          nn.Sequential(_conv_bn(c1, w[1], 3, 2, relu=True))])
        self.stage2 = nn.Sequential(HighResolutionModule(w[:2], cfg.blocks_per_branch))
        # transition2: branches 0, 1 pass through; branch 2 from branch 1's output.
        self.transition2 = nn.ModuleList([nn.Identity(), nn.Identity(),
                                          nn.Sequential(_conv_bn(w[1], w[2], 3, 2, relu=True))])
        n3 = cfg.stage3_modules
        self.stage3 = nn.Sequential(*[HighResolutionModule(w, cfg.blocks_per_branch, multi_scale_output=k < n3 - 1)
                                      for k in range(n3)])
        self.out_channels = w[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.layer1(x)
        ys = self.stage2([t(x) for t in self.transition1])
        xs = [self.transition2[0](ys[0]), self.transition2[1](ys[1]), self.transition2[2](ys[-1])]
        for module in self.stage3:
            xs = module(xs)
        return xs[0]
