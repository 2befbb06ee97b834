"""Prior keypoint networks (the ``encoder`` of the authors' model)."""

from __future__ import annotations

from torch import nn

from scorr_cli.core.config import ModelConfig


def build_keypoint_network(cfg: ModelConfig) -> nn.Module:
    if cfg.prior == "mtia":
        from scorr_cli.core.priors.mtia import MTIAKeypointNetwork
        return MTIAKeypointNetwork(cfg)
    if cfg.prior == "tpsm":
        from scorr_cli.core.priors.tpsm import TPSKeypointNetwork
        return TPSKeypointNetwork(cfg)
    from scorr_cli.core.priors.fomm import FOMMKeypointNetwork
    return FOMMKeypointNetwork(cfg)
