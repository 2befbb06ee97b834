"""The per-level updater: non-prior motion features and the flow / occlusion refinement heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from scorr_cli.core.blocks import NarrowConv2d
from scorr_cli.core.config import RefinerConfig
from scorr_cli.core.geometry import resize


class MotionEncoder(nn.Module):
    """RAFT's BasicMotionEncoder: fuse correlation features with the current flow.

    Output width is ``motion_dim``: ``motion_dim - 2`` learned channels plus the raw flow.
    """

    def __init__(self, corr_planes: int, motion_dim: int):
        super().__init__()
        c1, c2, f1, f2 = motion_dim, motion_dim * 3 // 4, motion_dim, motion_dim // 2
        self.convc1 = nn.Conv2d(corr_planes, c1, 1)
        self.convc2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.convf1 = nn.Conv2d(2, f1, 7, padding=3)
        self.convf2 = nn.Conv2d(f1, f2, 3, padding=1)
        self.conv = nn.Conv2d(c2 + f2, motion_dim - 2, 3, padding=1)

    def forward(self, flow: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
        """``corr`` may be smaller than ``flow`` (a level finer than the correlation volume): the 1×1
        ``convc1`` then runs at its size and its output is resized. Bilinear weights sum to one, so a 1×1
        convolution (bias included) commutes with the resize: the same values as resizing the wide
        correlation features first, at a fraction of the work (98 -> 32 channels at 128²)."""
        cor = self.convc1(corr)
        if cor.shape[-1] != flow.shape[-1]:
            cor = resize(cor, flow.shape[-1])
        # In-place ReLUs on fresh conv outputs: same values and gradients, one memory pass less.
        cor = F.relu(self.convc2(F.relu(cor, inplace=True)), inplace=True)
        flo = F.relu(self.convf2(F.relu(self.convf1(flow), inplace=True)), inplace=True)
        out = F.relu(self.conv(torch.cat([cor, flo], dim=1)), inplace=True)
        return torch.cat([out, flow], dim=1)


class RefineHeads(nn.Module):
    """One feed-forward update per level: a flow residual and an occlusion-logit increment."""

    def __init__(self, cfg: RefinerConfig):
        super().__init__()
        hidden = cfg.hidden_dim
        self.use_context = cfg.warped_source_feature
        inp = cfg.motion_dim
        if self.use_context:
            self.convc1 = nn.Conv2d(cfg.context_dim, hidden, 3, padding=1)
            inp += hidden
        self.conv1 = nn.Conv2d(inp, hidden, 3, padding=1)
        self.conv2 = NarrowConv2d(hidden, 2, 3)
        self.convo1 = nn.Conv2d(inp, hidden, 3, padding=1)
        self.convo2 = NarrowConv2d(hidden, 1, 3)

    def forward(self, motion: torch.Tensor, context: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        x = motion
        if self.use_context:
            x = torch.cat([motion, F.relu(self.convc1(context), inplace=True)], dim=1)
        # conv1 and convo1 read the same input: one convolution with both filter banks is one pass
        # over x instead of two (checkpoint names stay separate).
        hidden = F.conv2d(x, torch.cat([self.conv1.weight, self.convo1.weight]),
                          torch.cat([self.conv1.bias, self.convo1.bias]), padding=1)
        h_flow, h_occ = F.relu(hidden, inplace=True).split(self.conv1.out_channels, dim=1)
        return self.conv2(h_flow), self.convo2(h_occ)
