"""TPSM prior: a ResNet-18 regresses ``num_kp`` groups of TPS control points (no jacobians)."""

from __future__ import annotations

import torch
from torch import nn

from scorr_cli.core.config import ModelConfig
from scorr_cli.core.priors.resnet import ResNet18


class TPSKeypointNetwork(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.num_points = cfg.num_kp * cfg.tpsm.points_per_tps
        self.fg_encoder = ResNet18(self.num_points * 2, cfg.num_channels, cfg.tpsm.width)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        out = torch.sigmoid(self.fg_encoder(image)) * 2 - 1
        return {"kp": out.view(image.shape[0], self.num_points, 2)}
