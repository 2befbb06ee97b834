"""Structure correlation volume and its RAFT-style pyramid lookup, adapted to coarse-to-fine levels.

The volume compares every driving position with every source position of the structure features
(at the prior resolution, 64² for 256² images). It is stored with the *driving* positions as the
spatial axes so that coarse levels can average-pool them; lookups happen over *source* positions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from scorr_cli.core.geometry import coords_grid, pixel_sample, resize


def correlation_volume(f_driving: torch.Tensor, f_source: torch.Tensor) -> torch.Tensor:
    """``(B·n_src)×1×h×w`` volume over driving positions: ⟨f_d[i], f_s[j]⟩/√C."""
    b, c, h, w = f_driving.shape
    corr = torch.matmul(f_source.reshape(b, c, h * w).transpose(1, 2), f_driving.reshape(b, c, h * w))
    return (corr / math.sqrt(c)).reshape(b * h * w, 1, h, w)


def lookup_window(radius: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(2r+1)×(2r+1)×2`` integer offsets in RAFT's transposed layout: x varies slowly, y fast."""
    d = torch.linspace(-radius, radius, 2 * radius + 1, dtype=dtype, device=device)
    dy, dx = torch.meshgrid(d, d, indexing="ij")
    return torch.stack([dy, dx], dim=-1)  # channel 0 (used as x) = slow index, as in RAFT


class CorrelationLookup:
    """Builds per-level source-side pyramids lazily and samples windows around flow targets."""

    def __init__(self, volume: torch.Tensor, batch: int, size: int, levels: int, radius: int):
        self.volume = volume  # (B·n_src)×1×size×size over driving positions
        self.batch, self.size, self.levels, self.radius = batch, size, levels, radius
        self._pyramids: dict[int, list[torch.Tensor]] = {}

    def _source_pyramid(self, pool: int) -> list[torch.Tensor]:
        """Volume with driving axes pooled by ``pool``, reordered to (B·n_drv)×1×size×size over source."""
        if pool not in self._pyramids:
            self._pyramids[pool] = self._build_pyramid(pool)
        return self._pyramids[pool]

    def _build_pyramid(self, pool: int) -> list[torch.Tensor]:
        b, s = self.batch, self.size
        vol = self.volume if pool == 1 else F.avg_pool2d(self.volume, pool, stride=pool)
        sd = vol.shape[-1]
        vol = vol.view(b, s * s, sd * sd).transpose(1, 2).reshape(b * sd * sd, 1, s, s)
        pyramid = [vol]
        for _ in range(self.levels - 1):
            pyramid.append(F.avg_pool2d(pyramid[-1], 2, stride=2))
        return pyramid

    def sample(self, pyramid: list[torch.Tensor], coords: torch.Tensor) -> torch.Tensor:
        """``coords`` ``B×2×h×w`` in source pixel units of the volume -> ``B×(L·(2r+1)²)×h×w``."""
        b, _, h, w = coords.shape
        r = self.radius
        window = lookup_window(r, coords.dtype, coords.device).view(1, 2 * r + 1, 2 * r + 1, 2)
        centre = coords.permute(0, 2, 3, 1).reshape(b * h * w, 1, 1, 2)
        out = []
        for lvl, vol in enumerate(pyramid):
            sampled = pixel_sample(vol, centre / 2**lvl + window)
            out.append(sampled.view(b, h, w, -1))
        return torch.cat(out, dim=-1).permute(0, 3, 1, 2).contiguous()

    def __call__(self, flow: torch.Tensor) -> torch.Tensor:
        """Correlation features for a level whose flow (pixel units of that level) is ``flow``."""
        b, _, s_i, _ = flow.shape
        s = self.size
        if s_i <= s:
            factor = s // s_i
            coords = (flow + coords_grid(b, s_i, s_i, flow.dtype, flow.device)) * factor
            return self.sample(self._source_pyramid(factor), coords)
        # Finer than the volume: look up at the volume's resolution and resize back.
        small = resize(flow, s) * (s / s_i)
        coords = small + coords_grid(b, s, s, flow.dtype, flow.device)
        return resize(self.sample(self._source_pyramid(1), coords), s_i)
