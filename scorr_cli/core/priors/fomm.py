"""FOMM-style prior: hourglass heatmaps -> soft-argmax keypoints, one shared jacobian map."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from scorr_cli.core.blocks import AntiAliasInterpolation2d, Hourglass
from scorr_cli.core.config import ModelConfig
from scorr_cli.core.geometry import make_coordinate_grid


class FOMMKeypointNetwork(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        f = cfg.fomm
        self.num_kp = cfg.num_kp
        self.temperature = f.temperature
        self.predictor = Hourglass(f.block_expansion, cfg.num_channels, f.num_blocks, f.max_features)
        self.kp = nn.Conv2d(self.predictor.out_filters, cfg.num_kp, 7, padding=0)
        self.num_jacobian_maps = 1 if f.single_jacobian_map else cfg.num_kp
        self.jacobian = nn.Conv2d(self.predictor.out_filters, 4 * self.num_jacobian_maps, 7, padding=0)
        nn.init.zeros_(self.jacobian.weight)
        with torch.no_grad():
            self.jacobian.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0] * self.num_jacobian_maps))
        self.scale_factor = f.scale_factor
        if f.scale_factor != 1:
            self.down = AntiAliasInterpolation2d(cfg.num_channels, f.scale_factor)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.down(image) if self.scale_factor != 1 else image
        feature_map = self.predictor(x)
        logits = self.kp(feature_map)
        b, k, h, w = logits.shape
        heatmap = F.softmax(logits.view(b, k, -1) / self.temperature, dim=2).view(b, k, h, w)
        grid = make_coordinate_grid(h, w, heatmap.dtype, heatmap.device)
        kp = (heatmap.unsqueeze(-1) * grid[None, None]).sum(dim=(2, 3))
        jacobian_map = self.jacobian(feature_map).reshape(b, self.num_jacobian_maps, 4, h, w)
        jacobian = (heatmap.unsqueeze(2) * jacobian_map).view(b, k, 4, -1).sum(dim=-1).view(b, k, 2, 2)
        return {"kp": kp, "jacobian": jacobian}
