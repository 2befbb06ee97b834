"""The MRFA refinement network (the authors' ``RaftFlow``, checkpoint prefix ``decoder``).

It corrects the prior's coarse flow and occlusion coarse to fine, guided by a correlation volume
between source and driving *structure* features, then runs the occlusion-aware generator.

The work is split so that everything depending only on the source can be computed once
(:meth:`RefinementNetwork.prepare_source`) and reused for every driving frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from scorr_cli.core.blocks import Hourglass
from scorr_cli.core.config import ModelConfig
from scorr_cli.core.correlation import CorrelationLookup
from scorr_cli.core.generator import OcclusionAwareGenerator
from scorr_cli.core.geometry import (coords_grid, grid_sample_default, kp2gaussian, resize, resize_grid,
                                     warp_by_flow)
from scorr_cli.core.update import MotionEncoder, RefineHeads


@dataclass
class SourceFeatures:
    """Everything the refiner needs from the source image alone."""

    image: torch.Tensor  # B×3×H×W full resolution
    image_small: torch.Tensor  # B×3×h×w (1/4, anti-aliased)
    kp: torch.Tensor  # B×K×2 refiner keypoints
    pyramid: list[torch.Tensor]  # generator encoder features, coarse to fine
    structure: torch.Tensor | None  # B×dim×h×w source structure features (None in prior-only mode)

    def as_fp32(self) -> "SourceFeatures":
        """fp32, contiguous copies (made once per source): under a CPU's bf16 autocast every frame samples
        these in fp32, so bf16 features would be converted again for every frame."""
        f = lambda t: None if t is None else t.float().contiguous()  # noqa: E731
        return SourceFeatures(f(self.image), f(self.image_small), self.kp, [f(t) for t in self.pyramid],
                              f(self.structure))

    def expand(self, batch: int) -> "SourceFeatures":
        """View the (batch-1) source as ``batch`` copies without copying memory."""
        if self.image.shape[0] == batch:
            return self
        ex = lambda t: t.expand(batch, *t.shape[1:])  # noqa: E731
        return SourceFeatures(ex(self.image), ex(self.image_small), ex(self.kp), [ex(f) for f in self.pyramid],
                              None if self.structure is None else ex(self.structure))


@dataclass
class RefinerOutput:
    prediction: torch.Tensor  # B×3×H×W (None only inside refined_flows, which paints nothing)
    warped: torch.Tensor  # B×3×H×W source warped by the final flow (the same)
    visibility: list[torch.Tensor]  # per level, sigmoid of the refined occlusion logits
    flows: list[torch.Tensor]  # per level, refined pixel flows (empty in prior-only mode)
    prior_visibility: torch.Tensor  # sigmoid of the prior occlusion at the prior resolution

    def occlusion_strip(self) -> torch.Tensor:
        """The authors' visualisation: all maps resized to H and concatenated along the width."""
        size = self.prediction.shape[-1]
        maps = list(self.visibility) + ([self.prior_visibility] if self.flows else [])
        return torch.cat([resize(m, size) for m in maps], dim=3)


class RefinementNetwork(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        r = cfg.refiner
        self.cfg = r
        self.num_kp = cfg.num_kp
        self.prior_size = cfg.prior_size
        self.level_sizes = cfg.level_sizes
        # Runtime choice, not model config: auto | torch | fused (see core.correlation.CORR_IMPLS).
        self.corr_impl = "auto"
        self.generator = OcclusionAwareGenerator(cfg.generator, cfg.num_channels)
        if r.prior_only:
            # Kept for checkpoint compatibility with the authors' prior-only models, but never used:
            # frozen so optimisers and DDP ignore them.
            self.generator.channel_block.requires_grad_(False)
            return
        s = cfg.prior_size
        self.pos_embedding = nn.Parameter(torch.zeros(1, cfg.num_kp, s, s))
        nn.init.trunc_normal_(self.pos_embedding, std=0.02)
        self.kp = Hourglass(r.encoder_block_expansion, cfg.num_kp, r.encoder_num_blocks, r.encoder_max_features)
        self.kp_head = nn.Conv2d(self.kp.out_filters, r.dim, 1)
        img_channels = cfg.num_channels if r.source_image else 0
        self.kp_img = Hourglass(r.encoder_block_expansion, cfg.num_kp + img_channels, r.encoder_num_blocks,
                                r.encoder_max_features)
        self.kp_img_head = nn.Conv2d(self.kp_img.out_filters, r.dim, 1)
        self.corr_enc = MotionEncoder(r.corr_levels * (2 * r.corr_radius + 1) ** 2, r.motion_dim)
        self.refine = RefineHeads(r)
        if r.warped_source_feature:
            self.to_context = nn.ModuleList(nn.Conv2d(c, r.context_dim, 1) for c in self.generator.level_channels)

    # ------------------------------------------------------------------ source side
    def structure_source(self, kp_source: torch.Tensor, image_small: torch.Tensor) -> torch.Tensor:
        s = self.prior_size
        heat = kp2gaussian(kp_source, s, s, self.cfg.kp_variance) + self.pos_embedding.to(kp_source.dtype)
        x = torch.cat([heat, image_small], dim=1) if self.cfg.source_image else heat
        return self.kp_img_head(self.kp_img(x))

    def structure_driving(self, kp_driving: torch.Tensor) -> torch.Tensor:
        s = self.prior_size
        heat = kp2gaussian(kp_driving, s, s, self.cfg.kp_variance) + self.pos_embedding.to(kp_driving.dtype)
        return self.kp_head(self.kp(heat))

    def prepare_source(self, image: torch.Tensor, image_small: torch.Tensor, kp_source: torch.Tensor) -> SourceFeatures:
        structure = None if self.cfg.prior_only else self.structure_source(kp_source, image_small)
        return SourceFeatures(image, image_small, kp_source, self.generator.encode(image), structure)

    # ------------------------------------------------------------------ driving side
    def forward(self, source: SourceFeatures, kp_driving: torch.Tensor, dense: dict[str, torch.Tensor]) -> RefinerOutput:
        source = source.expand(kp_driving.shape[0])
        if self.cfg.prior_only:
            return self._prior_only(source, dense)
        return self._refine(source, kp_driving, dense)

    def _prior_only(self, source: SourceFeatures, dense: dict[str, torch.Tensor]) -> RefinerOutput:
        deformation, occlusion = dense["deformation"], dense["occlusion"]
        warped_feats = [grid_sample_default(f, resize_grid(deformation, f.shape[-1])) for f in source.pyramid]
        visibility = [torch.sigmoid(resize(occlusion, f.shape[-1])) for f in source.pyramid]
        warped = grid_sample_default(source.image, resize_grid(deformation, source.image.shape[-1]))
        prediction = self.generator.decode(warped_feats, visibility, warped)
        return RefinerOutput(prediction, warped, visibility, [], torch.sigmoid(occlusion))

    def refined_flows(self, source: SourceFeatures, kp_driving: torch.Tensor,
                      dense: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """The per-level refined flows alone, without painting a frame (training losses on the motion of
        keypoints that have no image to reconstruct, e.g. another identity's motion); [] in prior-only mode."""
        if self.cfg.prior_only:
            return []
        return self._refine(source.expand(kp_driving.shape[0]), kp_driving, dense, paint=False).flows

    def _refine(self, source: SourceFeatures, kp_driving: torch.Tensor, dense: dict[str, torch.Tensor],
                paint: bool = True) -> RefinerOutput:
        cfg = self.cfg
        s = self.prior_size
        b = kp_driving.shape[0]
        deformation, occlusion = dense["deformation"], dense["occlusion"]
        lookup = CorrelationLookup(self.structure_driving(kp_driving), source.structure, cfg.corr_levels,
                                   cfg.corr_radius, self.corr_impl)
        grid = coords_grid(b, s, s, deformation.dtype, deformation.device)
        prior_flow = (s - 1) * (deformation.permute(0, 3, 1, 2) + 1) / 2 - grid  # pixels at s²

        warped_feats, coarse_feats, visibility, flows = [], [], [], []
        flow_acc = occ_acc = None
        n = len(self.level_sizes)
        for i, size in enumerate(self.level_sizes):
            feat = source.pyramid[i]
            flow = resize(prior_flow, size) * (size / s)
            logits = resize(occlusion, size)
            if flow_acc is not None:
                flow = flow + flow_acc
                logits = logits + occ_acc
            if i >= n - cfg.skip_finest_updates:
                delta_flow, delta_occ = torch.zeros_like(flow), torch.zeros_like(logits)
            else:
                delta_flow, delta_occ = self._update(i, feat, flow, lookup)
            refined = flow + delta_flow
            flows.append(refined)
            if paint:
                warped_feats.append(warp_by_flow(feat, refined))
                visibility.append(torch.sigmoid(logits + delta_occ))
                coarse_feats.append(grid_sample_default(feat, resize_grid(deformation, size)))
            if i < n - 1:
                # The next level starts from the re-scaled prior plus all residuals so far.
                up = lambda t: F.interpolate(t, scale_factor=2.0, mode="bilinear", align_corners=True)  # noqa: E731
                flow_acc = 2 * up(delta_flow) + (2 * up(flow_acc) if flow_acc is not None else 0)
                occ_acc = up(delta_occ) + (up(occ_acc) if occ_acc is not None else 0)
        if not paint:  # the motion only (refined_flows)
            return RefinerOutput(None, None, [], flows, torch.sigmoid(occlusion))
        # The authors warp the image with the last level's flow *before* its own update (reproduced).
        warped = warp_by_flow(source.image, flow)
        prediction = self.generator.decode(warped_feats, visibility, warped, coarse_feats)
        return RefinerOutput(prediction, warped, visibility, flows, torch.sigmoid(occlusion))

    def _update(self, level: int, feat: torch.Tensor, flow: torch.Tensor,
                lookup: CorrelationLookup) -> tuple[torch.Tensor, torch.Tensor]:
        """One level's learned correction: a flow residual and an occlusion-logit increment."""
        cfg = self.cfg
        motion = self.corr_enc(flow, lookup.at_most_volume_size(flow))
        context = None
        if cfg.warped_source_feature:
            context = F.relu(self.to_context[level](warp_by_flow(feat, flow)), inplace=True)
        delta_flow, delta_occ = self.refine(motion, context)
        if not cfg.flow_update:
            delta_flow = torch.zeros_like(delta_flow)
        if not cfg.occlusion_update:
            delta_occ = torch.zeros_like(delta_occ)
        return delta_flow, delta_occ
