"""Prior keypoint detectors (the ``encoder`` of the authors' model)."""

from __future__ import annotations

from torch import nn

from scorr_cli.core.config import ModelConfig


def build_detector(cfg: ModelConfig) -> nn.Module:
    if cfg.prior == "mtia":
        from scorr_cli.core.priors.mtia import MTIADetector
        return MTIADetector(cfg)
    if cfg.prior == "tpsm":
        from scorr_cli.core.priors.tpsm import TPSDetector
        return TPSDetector(cfg)
    from scorr_cli.core.priors.fomm import FOMMDetector
    return FOMMDetector(cfg)
