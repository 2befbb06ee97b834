"""Occlusion-aware generator: encode the source once, decode from warped features level by level."""

from __future__ import annotations

import torch
from torch import nn

from scorr_cli.core.blocks import ChannelBlock2d, DownBlock2d, NarrowConv2d, ResBlock2d, SameBlock2d, UpBlock2d
from scorr_cli.core.config import GeneratorConfig


class OcclusionAwareGenerator(nn.Module):
    def __init__(self, cfg: GeneratorConfig, num_channels: int = 3):
        super().__init__()
        e, m, n = cfg.block_expansion, cfg.max_features, cfg.num_down_blocks
        self.first = SameBlock2d(num_channels, e, kernel_size=7)
        self.down_blocks = nn.ModuleList(
            DownBlock2d(min(m, e * 2**i), min(m, e * 2 ** (i + 1))) for i in range(n))
        # Decoder, coarse to fine: level j has the width of encoder output n-j.
        widths = [min(m, e * 2**i) for i in range(n + 1)][::-1]  # e.g. 512,512,512,256,128,64
        self.up_blocks = nn.ModuleList(UpBlock2d(widths[j], widths[j + 1]) for j in range(n))
        self.resblock = nn.ModuleList(ResBlock2d(widths[j]) for j in range(n))
        self.channel_block = nn.ModuleList(ChannelBlock2d(2 * widths[j]) for j in range(n))
        self.final = NarrowConv2d(e, num_channels, 7)
        self.level_channels = tuple(widths)

    def encode(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Feature pyramid of the source, coarse to fine (8², ..., 256² at 256²)."""
        feats = [self.first(image)]
        for block in self.down_blocks:
            feats.append(block(feats[-1]))
        return feats[::-1]

    def decode(self, warped: list[torch.Tensor], visibility: list[torch.Tensor], warped_image: torch.Tensor,
               coarse: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Paint the frame: visible regions copy warped features, occluded ones come from the decoder.

        ``coarse`` (prior-warped features, refinement mode) are concatenated and fused by the channel
        blocks; without them (prior-only) the channel blocks are skipped.
        """
        x = warped[0] * visibility[0]
        if coarse is not None:
            x = torch.cat([x, coarse[0]], dim=1)
        n = len(self.up_blocks)
        for j in range(n):
            if coarse is not None:
                x = self.channel_block[j](x)
            x = self.up_blocks[j](self.resblock[j](x))
            m = visibility[j + 1]
            x = warped[j + 1] * m + x * (1 - m)
            if coarse is not None and j < n - 1:
                x = torch.cat([x, coarse[j + 1]], dim=1)
        y = torch.sigmoid(self.final(x))
        m = visibility[-1]
        return y * (1 - m) + warped_image * m
