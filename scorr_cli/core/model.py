"""The full MRFA model: prior keypoints + prior dense motion + refinement network + generator.

Child names (``encoder``, ``dense_motion``, ``bg_predictor``, ``decoder``, ``down``) are the
authors' state-dict prefixes, so their checkpoints load after stripping ``module.``. The training-only
VGG and image pyramid are not part of the model (see :mod:`scorr_cli.core.losses`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from scorr_cli.core.bg_motion import BGMotionPredictor
from scorr_cli.core.blocks import AntiAliasInterpolation2d
from scorr_cli.core.config import ModelConfig
from scorr_cli.core.dense_motion import build_dense_motion
from scorr_cli.core.priors import build_keypoint_network
from scorr_cli.core.refiner import RefinementNetwork, RefinerOutput, SourceFeatures


@dataclass
class PreparedSource:
    """A source image with every source-only quantity computed once."""

    kp: dict[str, torch.Tensor]  # prior keypoints (+ jacobians) of the source
    features: SourceFeatures  # refiner/generator source features

    @property
    def image(self) -> torch.Tensor:
        return self.features.image


@dataclass
class FrameOutput:
    prediction: torch.Tensor
    refiner: RefinerOutput
    dense: dict[str, torch.Tensor]
    kp_driving: dict[str, torch.Tensor]
    kp_source: dict[str, torch.Tensor] | None = None  # set by the reconstruction forward (training losses)
    source: PreparedSource | None = None  # the same


class MRFA(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = build_keypoint_network(cfg)
        self.dense_motion = build_dense_motion(cfg)
        if cfg.background:
            self.bg_predictor = BGMotionPredictor(cfg)
        self.decoder = RefinementNetwork(cfg)
        self.down = AntiAliasInterpolation2d(cfg.num_channels, 0.25)

    @property
    def has_background(self) -> bool:
        return hasattr(self, "bg_predictor")

    def detect(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.encoder(image)

    def refiner_kp(self, kp: torch.Tensor) -> torch.Tensor:
        """Keypoints the refiner sees: TPS groups are averaged to one point each."""
        if self.cfg.prior == "tpsm":
            return kp.view(kp.shape[0], self.cfg.num_kp, -1, 2).mean(2)
        return kp

    def prepare_source(self, source: torch.Tensor, kp_source: dict[str, torch.Tensor] | None = None) -> PreparedSource:
        kp = self.detect(source) if kp_source is None else kp_source
        small = self.down(source)
        return PreparedSource(kp, self.decoder.prepare_source(source, small, self.refiner_kp(kp["kp"])))

    def background_motion(self, source: torch.Tensor, driving: torch.Tensor,
                          use_background: bool = True) -> torch.Tensor | None:
        """The background predictor's source → driving affine (B×3×3), or None without one or when off."""
        return self.bg_predictor(source, driving) if (use_background and self.has_background) else None

    def prior_motion(self, source: torch.Tensor, kp_driving: dict[str, torch.Tensor], kp_source: dict[str, torch.Tensor],
                     bg_affine: torch.Tensor | None = None, dropout_p: float | None = None,
                     generator: torch.Generator | None = None,
                     source_small: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The prior's coarse motion from the keypoints: ``deformation`` (B×h×w×2 sampling grid at 1/4 size)
        and ``occlusion``. ``dropout_p``/``generator``: the TPS prior's training-time transform dropout."""
        extra = {"dropout_p": dropout_p, "generator": generator} if self.cfg.prior == "tpsm" else {}
        return self.dense_motion(source, kp_driving, kp_source, bg_affine, source_small=source_small, **extra)

    def animate(self, source: PreparedSource, kp_driving: dict[str, torch.Tensor],
                bg_affine: torch.Tensor | None = None, dropout_p: float | None = None,
                generator: torch.Generator | None = None) -> FrameOutput:
        """Render driving keypoints (already motion-transferred) onto a prepared source."""
        b = kp_driving["kp"].shape[0]
        feats = source.features.expand(b)
        kp_s = {k: v.expand(b, *v.shape[1:]) for k, v in source.kp.items()}
        dense = self.prior_motion(feats.image, kp_driving, kp_s, bg_affine, dropout_p, generator, feats.image_small)
        out = self.decoder(feats, self.refiner_kp(kp_driving["kp"]), dense)
        return FrameOutput(out.prediction, out, dense, kp_driving)

    def motion(self, source: PreparedSource, kp_driving: dict[str, torch.Tensor], dropout_p: float | None = None,
               generator: torch.Generator | None = None) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """The motion :meth:`animate` would use for ``kp_driving``, without painting the frame: the refined
        per-level flows ([] in prior-only mode) and the prior's dense motion. Training scores it where there
        is no frame to compare with (another identity's motion on this source)."""
        b = kp_driving["kp"].shape[0]
        feats = source.features.expand(b)
        kp_s = {k: v.expand(b, *v.shape[1:]) for k, v in source.kp.items()}
        dense = self.prior_motion(feats.image, kp_driving, kp_s, None, dropout_p, generator, feats.image_small)
        return self.decoder.refined_flows(feats, self.refiner_kp(kp_driving["kp"]), dense), dense

    def forward(self, source: torch.Tensor, driving: torch.Tensor, use_background: bool = True,
                dropout_p: float | None = None, generator: torch.Generator | None = None) -> FrameOutput:
        """Reconstruction forward (training and evaluation): absolute keypoints, background if built."""
        prepared = self.prepare_source(source)
        kp_driving = self.detect(driving)
        bg = self.background_motion(source, driving, use_background)
        out = self.animate(prepared, kp_driving, bg, dropout_p, generator)
        out.dense["bg_affine"] = bg
        out.kp_source = prepared.kp
        out.source = prepared
        return out
