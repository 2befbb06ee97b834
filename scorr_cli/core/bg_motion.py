"""Background motion: a ResNet-18 on (source ‖ driving) predicts one affine map for the background."""

from __future__ import annotations

import torch
from torch import nn

from scorr_cli.core.config import ModelConfig
from scorr_cli.core.priors.resnet import ResNet18


class BGMotionPredictor(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.bg_encoder = ResNet18(6, in_channels=2 * cfg.num_channels, width=cfg.background_width)
        nn.init.zeros_(self.bg_encoder.fc.weight)
        with torch.no_grad():
            self.bg_encoder.fc.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

    def forward(self, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
        """``B×3×3`` affine mapping normalised driving coordinates to source coordinates."""
        b = source.shape[0]
        pred = self.bg_encoder(torch.cat([source, driving], dim=1)).view(b, 2, 3)
        last = torch.tensor([0.0, 0.0, 1.0], dtype=pred.dtype, device=pred.device).expand(b, 1, 3)
        return torch.cat([pred, last], dim=1)
