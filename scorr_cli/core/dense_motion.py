"""Prior dense motion: blend per-keypoint candidate warps into one coarse flow and occlusion logits.

Both variants work on the source at 1/4 resolution and return ``deformation`` (``B×h×w×2``,
normalised (x, y) sampling grid into the source) and ``occlusion`` (``B×1×h×w`` logits).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from scorr_cli.core.blocks import AntiAliasInterpolation2d, Hourglass
from scorr_cli.core.config import ModelConfig
from scorr_cli.core.geometry import (KeypointTPS, apply_affine_to_grid, kp2gaussian, make_coordinate_grid)


def heatmap_difference(kp_driving: torch.Tensor, kp_source: torch.Tensor, h: int, w: int,
                       variance: float) -> torch.Tensor:
    """Driving minus source Gaussians with a leading all-zero background map: ``B×(K+1)×h×w``."""
    heatmap = kp2gaussian(kp_driving, h, w, variance) - kp2gaussian(kp_source, h, w, variance)
    zeros = torch.zeros_like(heatmap[:, :1])
    return torch.cat([zeros, heatmap], dim=1)


def background_grid(batch: int, h: int, w: int, like: torch.Tensor, bg_affine: torch.Tensor | None) -> torch.Tensor:
    grid = make_coordinate_grid(h, w, like.dtype, like.device).view(1, 1, h, w, 2).repeat(batch, 1, 1, 1, 1)
    if bg_affine is not None:
        grid = apply_affine_to_grid(grid, bg_affine)
    return grid


def deform_source(source: torch.Tensor, grids: torch.Tensor, align_corners: bool) -> torch.Tensor:
    """Warp the source by each of N candidate grids: ``B×N×h×w×2`` -> ``B×N×C×h×w``."""
    b, n, h, w, _ = grids.shape
    rep = source.unsqueeze(1).expand(b, n, *source.shape[1:]).reshape(b * n, -1, *source.shape[2:])
    out = F.grid_sample(rep, grids.reshape(b * n, h, w, 2).to(source.dtype), align_corners=align_corners)
    return out.view(b, n, -1, h, w)


def blend(grids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per-pixel convex combination of candidate grids: ``B×N×h×w×2``, ``B×N×h×w`` -> ``B×h×w×2``."""
    return (grids.permute(0, 1, 4, 2, 3) * weights.unsqueeze(2)).sum(dim=1).permute(0, 2, 3, 1)


class DenseMotionNetwork(nn.Module):
    """FOMM-style: first-order (keypoint + jacobian) candidate warps, softmax masks (mtia / fomm priors)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.dense_motion
        self.num_kp = cfg.num_kp
        self.kp_variance = d.kp_variance
        in_features = (cfg.num_kp + 1) * (cfg.num_channels + 1)
        self.hourglass = Hourglass(d.block_expansion, in_features, d.num_blocks, d.max_features)
        self.mask = nn.Conv2d(self.hourglass.out_filters, cfg.num_kp + 1, 7, padding=3)
        self.occlusion = nn.Conv2d(self.hourglass.out_filters, 1, 7, padding=3)
        self.down = AntiAliasInterpolation2d(cfg.num_channels, 0.25)

    def sparse_motions(self, h: int, w: int, kp_driving: dict, kp_source: dict,
                       bg_affine: torch.Tensor | None) -> torch.Tensor:
        kd, ks = kp_driving["kp"], kp_source["kp"]
        b = kd.shape[0]
        identity = make_coordinate_grid(h, w, kd.dtype, kd.device).view(1, 1, h, w, 2)
        grid = identity - kd.view(b, self.num_kp, 1, 1, 2)
        if "jacobian" in kp_driving and "jacobian" in kp_source:
            jac = torch.matmul(kp_source["jacobian"], torch.inverse(kp_driving["jacobian"]))
            grid = torch.matmul(jac[:, :, None, None], grid.unsqueeze(-1)).squeeze(-1)
        driving_to_source = grid + ks.view(b, self.num_kp, 1, 1, 2)
        return torch.cat([background_grid(b, h, w, kd, bg_affine), driving_to_source], dim=1)

    def forward(self, source: torch.Tensor, kp_driving: dict, kp_source: dict,
                bg_affine: torch.Tensor | None = None, source_small: torch.Tensor | None = None,
                **_: object) -> dict[str, torch.Tensor]:
        """``source_small`` lets a caller pass the cached 1/4-resolution source."""
        small = self.down(source) if source_small is None else source_small
        b, _, h, w = small.shape
        heatmap = heatmap_difference(kp_driving["kp"], kp_source["kp"], h, w, self.kp_variance).unsqueeze(2)
        grids = self.sparse_motions(h, w, kp_driving, kp_source, bg_affine)
        deformed = deform_source(small, grids, align_corners=False)
        features = self.hourglass(torch.cat([heatmap, deformed], dim=2).view(b, -1, h, w))
        mask = F.softmax(self.mask(features), dim=1)
        return {"deformation": blend(grids, mask), "occlusion": self.occlusion(features)}


def tps_dropout_softmax(logits: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Softmax over the candidates that survive a per-sample dropout (background never dropped)."""
    b, n = logits.shape[:2]
    keep = (torch.rand(b, n, generator=generator, device=logits.device) < (1 - p)).to(logits.dtype)
    keep[:, 0] = 1
    x = logits - logits.max(1, keepdim=True).values
    e = x.exp() * keep[:, :, None, None]
    return e / (e.sum(dim=1, keepdim=True) + 1e-6)


class TPSDenseMotionNetwork(nn.Module):
    """TPSM-style: one thin-plate spline per keypoint group, softmax contribution maps (tpsm prior)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.dense_motion
        self.num_tps = cfg.num_kp
        self.points_per_tps = cfg.tpsm.points_per_tps
        self.kp_variance = d.kp_variance
        self.cfg = d
        in_features = cfg.num_channels * (cfg.num_kp + 1) + cfg.num_kp * cfg.tpsm.points_per_tps + 1
        self.down = AntiAliasInterpolation2d(cfg.num_channels, 0.25)
        self.hourglass = Hourglass(d.block_expansion, in_features, d.num_blocks, d.max_features)
        self.maps = nn.Conv2d(self.hourglass.out_filters, cfg.num_kp + 1, 7, padding=3)
        self.occlusion = nn.ModuleList([nn.Conv2d(self.hourglass.out_filters, 1, 7, padding=3)])

    def dropout_p(self, epoch: int) -> float | None:
        """TPS dropout probability at ``epoch`` during training, or None when off."""
        d = self.cfg
        if epoch >= d.dropout_epoch:
            return None
        return min(epoch / d.dropout_inc_epoch * d.dropout_maxp + d.dropout_startp, d.dropout_maxp)

    def forward(self, source: torch.Tensor, kp_driving: dict, kp_source: dict,
                bg_affine: torch.Tensor | None = None, source_small: torch.Tensor | None = None,
                dropout_p: float | None = None, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        small = self.down(source) if source_small is None else source_small
        b, _, h, w = small.shape
        kd, ks = kp_driving["kp"], kp_source["kp"]
        heatmap = heatmap_difference(kd, ks, h, w, self.kp_variance)
        g, n = self.num_tps, self.points_per_tps
        tps = KeypointTPS(kd.view(b, g, n, 2), ks.view(b, g, n, 2))
        grids = torch.cat([background_grid(b, h, w, kd, bg_affine), tps.grids(h, w)], dim=1)
        deformed = deform_source(small, grids, align_corners=True).reshape(b, -1, h, w)
        features = self.hourglass(torch.cat([heatmap, deformed], dim=1))
        logits = self.maps(features)
        if dropout_p is not None and self.training:
            weights = tps_dropout_softmax(logits, dropout_p, generator)
        else:
            weights = F.softmax(logits, dim=1)
        return {"deformation": blend(grids, weights), "occlusion": self.occlusion[0](features)}


def build_dense_motion(cfg: ModelConfig) -> nn.Module:
    return TPSDenseMotionNetwork(cfg) if cfg.prior == "tpsm" else DenseMotionNetwork(cfg)
