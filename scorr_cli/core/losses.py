"""Training losses of MRFA (docs/ARCHITECTURE.md §3) plus pixel/SSIM terms for offline runs.

:class:`LossConfig` is the single source of the loss weights; :class:`ReconstructionLoss` holds the
image pyramid and the (frozen) VGG so the trainer builds them once. :func:`ssim` is also the metric
used by evaluation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from scorr_cli.choices import PERCEPTUAL_BACKENDS
from scorr_cli.core.config import check_fields
from scorr_cli.core.transforms import RandomTransform, TransformConfig

PerceptualBackend = str  # one of choices.PERCEPTUAL_BACKENDS (checked in LossConfig)
KeypointNetwork = Callable[[torch.Tensor], Mapping[str, torch.Tensor]]


@dataclass
class LossConfig:
    """Loss weights (the authors' ``loss_weights``) and the offline switches.

    ``perceptual`` has one weight per VGG layer (relu1_1 … relu5_1); ``pixel`` / ``ssim`` weight an
    L1 / (1 − SSIM) term per pyramid scale. ``perceptual_backend``: ``vgg19`` (ImageNet weights),
    ``random`` (fixed-seed random VGG, no download) or ``none``.
    """

    scales: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125)
    perceptual: tuple[float, ...] = (10.0, 10.0, 10.0, 10.0, 10.0)
    equivariance_value: float = 10.0
    equivariance_jacobian: float = 10.0
    bg: float = 10.0
    # Landmark guidance (not in the paper; 0 reproduces it): L1 from each keypoint to its landmark group's
    # centre, so keypoints spread over the face from the first steps; decays linearly to 0 over
    # ``landmarks_anneal_steps`` optimiser steps of the run (0: constant).
    landmarks: float = 0.0
    landmarks_anneal_steps: int = 0
    # Landmark *motion* guidance (not in the paper): L1 between the keypoints' driving − source displacement
    # and their landmark groups' displacement. The position term above leaves the size of a motion to
    # chance (its error, ~1.5 px at 128², is as large as a mouth opening); this one targets the motion that
    # relative animation transfers. Same decay as ``landmarks``.
    landmark_motion: float = 0.0
    # Lip-region loss (not in the paper; LivePortrait's cascaded loss adds one): the reconstruction terms
    # again on a ``mouth_size``² crop around the driving frame's lips (dlib points 48-67), L1 plus the
    # perceptual layers scaled by ``mouth`` / 10. The mouth covers ~2% of a 128² face, so the whole-image
    # terms barely ask the model to open it; this one does. Needs landmarks; 0 = off.
    mouth: float = 0.0
    mouth_size: int = 48
    # Landmark flow (not in the paper): the motion field itself is supervised where the motion is known.
    # Every dlib landmark of the driving frame must be sent by the flow to the same landmark of the
    # source (``landmark_flow`` × mean |flow(p_driving) − p_source| in [-1, 1] units, each refined
    # level; the prior's field in prior-only mode). Keypoint terms only reach the field through the
    # keypoints and never say how far the lips move; this says it at 68 points, 20 of them on the lips.
    # Needs landmarks; not annealed (true correspondences stay true); 0 = off.
    landmark_flow: float = 0.0
    # Lip-shape flow (not in the paper): ``landmark_flow`` weighs 68 points and six levels alike, so head
    # motion rules it and the mouth's 2-3 px opening is lost. This term looks at the 20 lip points only,
    # each relative to the lips' centre (head motion cancels), at the ``lip_flow_levels`` finest levels
    # (the coarse ones cannot separate the lips): ``lip_flow`` × mean |(flow(p) − mean) − (p_source − mean)|.
    # Needs landmarks; 0 = off.
    lip_flow: float = 0.0
    lip_flow_levels: int = 2
    # Cross-identity transfer flow (not in the paper): the two flow terms above, on the motion of *another*
    # clip in the batch transferred to this source as ``scorr animate`` transfers it (relative keypoints and
    # jacobians, scaled by the keypoint hulls' size). The motion has no frame to reconstruct, but its
    # landmarks are known: this source's landmarks moved by the other clip's landmark motion (same scale).
    # Reconstruction pairs one person with himself, so keypoint motion may stay tied to the identity it was
    # detected on; this trains the use the follow metric measures. ``cross_flow`` weighs all 68 points,
    # ``cross_lip_flow`` the lips' shape (as ``lip_flow``). Needs landmarks; 0 = off.
    cross_flow: float = 0.0
    cross_lip_flow: float = 0.0
    pixel: float = 0.0
    ssim: float = 0.0
    perceptual_backend: PerceptualBackend = "vgg19"
    random_vgg_seed: int = 0
    transform: TransformConfig = field(default_factory=TransformConfig)

    # The terms that read dlib landmarks (the data must have them).
    LANDMARK_TERMS = ("landmarks", "landmark_motion", "mouth", "landmark_flow", "lip_flow", "cross_flow",
                      "cross_lip_flow")

    def __post_init__(self) -> None:
        self.scales = tuple(float(s) for s in self.scales)
        self.perceptual = tuple(float(w) for w in self.perceptual)
        if isinstance(self.transform, Mapping):
            self.transform = TransformConfig(**self.transform)
        if self.perceptual_backend not in PERCEPTUAL_BACKENDS:
            raise ValueError(f"unknown perceptual backend {self.perceptual_backend!r}; "
                             f"expected one of {', '.join(PERCEPTUAL_BACKENDS)}")
        if len(self.perceptual) != 5:
            raise ValueError(f"perceptual needs 5 layer weights (relu1_1..relu5_1), got {len(self.perceptual)}")
        non_negative = self.LANDMARK_TERMS + ("landmarks_anneal_steps",)
        if min(getattr(self, name) for name in non_negative) < 0:
            raise ValueError(f"{', '.join(non_negative)} must be >= 0")
        if self.lip_flow_levels < 1:
            raise ValueError(f"lip_flow_levels must be at least 1, got {self.lip_flow_levels}")
        if self.mouth_size < 8:
            raise ValueError(f"mouth_size must be at least 8 pixels, got {self.mouth_size}")
        if not self.scales or any(not 0 < s <= 1 for s in self.scales):
            raise ValueError(f"pyramid scales must lie in (0, 1], got {self.scales}")

    @classmethod
    def for_prior(cls, prior: str, **changes: Any) -> "LossConfig":
        """Defaults for a prior: the TPSM keypoint network has no jacobian, so its jacobian weight is 0."""
        if prior == "tpsm":
            changes.setdefault("equivariance_jacobian", 0.0)
        return cls(**changes)

    def landmark_weight(self, step: int) -> float:
        """The landmark-guidance weight at optimiser step ``step`` of the run (linear decay)."""
        return self.landmarks * self._landmark_decay(step)

    def landmark_motion_weight(self, step: int) -> float:
        """The landmark-motion weight at optimiser step ``step`` (the same decay)."""
        return self.landmark_motion * self._landmark_decay(step)

    def _landmark_decay(self, step: int) -> float:
        if not self.landmarks_anneal_steps:
            return 1.0
        return max(0.0, 1.0 - step / self.landmarks_anneal_steps)

    @property
    def uses_landmarks(self) -> bool:
        return any(getattr(self, name) > 0 for name in self.LANDMARK_TERMS)

    @property
    def uses_perceptual(self) -> bool:
        return self.perceptual_backend != "none" and any(w != 0 for w in self.perceptual)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LossConfig":
        check_fields(cls, sorted(data), "loss config key ")
        return cls(**dict(data))


def _scale_key(scale: float) -> str:
    """FOMM's module-dict key: ``0.25`` -> ``"0-25"``, ``1.0`` -> ``"1"`` (checkpoint-compatible)."""
    return str(scale).replace(".", "-") if scale != 1 else "1"


class ImagePyramid(nn.Module):
    """Anti-aliased down-samplings of an image; keys ``downs.{1,0-5,0-25,0-125}`` as the checkpoints."""

    def __init__(self, scales: tuple[float, ...], num_channels: int = 3):
        super().__init__()
        from scorr_cli.core.blocks import AntiAliasInterpolation2d

        self.scales = tuple(float(s) for s in scales)
        self.downs = nn.ModuleDict({_scale_key(s): AntiAliasInterpolation2d(num_channels, s) for s in self.scales})

    def forward(self, x: torch.Tensor) -> dict[float, torch.Tensor]:
        return {s: self.downs[_scale_key(s)](x) for s in self.scales}


def perceptual_pyramid_loss(vgg: nn.Module, pred_pyramid: Mapping[float, torch.Tensor],
                            gt_pyramid: Mapping[float, torch.Tensor], weights: tuple[float, ...]) -> torch.Tensor:
    """Σ_scales Σ_layers w_l · mean|φ_l(pred) − φ_l(gt)|, gt features without a graph (= detach)."""
    total = next(iter(pred_pyramid.values())).new_zeros(())
    for s, pred in pred_pyramid.items():
        x_feats = vgg(pred)
        with torch.no_grad():
            y_feats = vgg(gt_pyramid[s])
        for w, xf, yf in zip(weights, x_feats, y_feats):
            if w != 0:
                total = total + w * (xf - yf).abs().mean()
    return total


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float32,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """Normalised 1-D Gaussian of odd ``size``."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype=dtype, device=device)


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, window_size: int = 11,
         sigma: float = 1.5, reduction: Literal["mean", "none"] = "mean") -> torch.Tensor:
    """SSIM of Wang et al. 2004: Gaussian 11×11 window (σ 1.5), K1 0.01, K2 0.03, 'valid' filtering
    (no padding, as the reference MATLAB code), averaged over the map and the channels.

    ``x``, ``y``: B×C×H×W in [0, data_range]. ``reduction='none'`` gives one value per image. Images
    smaller than the window (deep pyramid levels of small frames) use the largest odd window that fits.
    Computed in at least float32 with autocast off: the variances are differences of close numbers.
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"ssim needs two B×C×H×W tensors of one shape, got {tuple(x.shape)}, {tuple(y.shape)}")
    with torch.autocast(x.device.type, enabled=False):
        return _ssim(x.float() if x.dtype in _LOW else x, y.float() if y.dtype in _LOW else y,
                     data_range, window_size, sigma, reduction)


_LOW = (torch.float16, torch.bfloat16)


def _ssim(x: torch.Tensor, y: torch.Tensor, data_range: float, window_size: int, sigma: float,
          reduction: str) -> torch.Tensor:
    b, c, h, w = x.shape
    size = min(window_size, h, w)
    size -= 1 - size % 2
    g = gaussian_window(size, sigma, x.dtype, x.device)
    kh = g.view(1, 1, size, 1).expand(c, 1, size, 1)
    kw = g.view(1, 1, 1, size).expand(c, 1, 1, size)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, kh, groups=c), kw, groups=c)

    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    smap = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    per_image = smap.flatten(1).mean(1)
    return per_image if reduction == "none" else per_image.mean()


def pixel_pyramid_loss(pred_pyramid: Mapping[float, torch.Tensor], gt_pyramid: Mapping[float, torch.Tensor],
                       weight: float) -> torch.Tensor:
    """Σ_scales w · mean|pred − gt|."""
    return sum(weight * (p - gt_pyramid[s]).abs().mean() for s, p in pred_pyramid.items())  # type: ignore[return-value]


def ssim_pyramid_loss(pred_pyramid: Mapping[float, torch.Tensor], gt_pyramid: Mapping[float, torch.Tensor],
                      weight: float) -> torch.Tensor:
    """Σ_scales w · (1 − SSIM(pred, gt))."""
    return sum(weight * (1 - ssim(p, gt_pyramid[s])) for s, p in pred_pyramid.items())  # type: ignore[return-value]


class ReconstructionLoss(nn.Module):
    """Perceptual / pixel / SSIM pyramid terms between a prediction and the driving frame.

    ``vgg`` is required iff the config uses the perceptual term; pass ``build_vgg19(...)`` for
    ``vgg19`` (ImageNet weights) or ``build_vgg19(None, config.random_vgg_seed)`` for ``random``.
    """

    def __init__(self, config: LossConfig, vgg: nn.Module | None = None, num_channels: int = 3):
        super().__init__()
        if config.uses_perceptual and vgg is None:
            raise ValueError(f"perceptual backend {config.perceptual_backend!r} needs a VGG network")
        self.config = config
        self.pyramid = ImagePyramid(config.scales, num_channels)
        self.vgg = vgg if config.uses_perceptual else None

    def forward(self, prediction: torch.Tensor, target: torch.Tensor,
                lips: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``lips``: B×20×2 driving lip landmarks in [-1, 1] (NaN: none) for the lip-region term."""
        cfg = self.config
        pred_pyr = self.pyramid(prediction)
        gt_pyr = self.pyramid(target)
        out: dict[str, torch.Tensor] = {}
        if self.vgg is not None:
            out["perceptual"] = perceptual_pyramid_loss(self.vgg, pred_pyr, gt_pyr, cfg.perceptual)
        if cfg.pixel:
            out["pixel"] = pixel_pyramid_loss(pred_pyr, gt_pyr, cfg.pixel)
        if cfg.ssim:
            out["ssim"] = ssim_pyramid_loss(pred_pyr, gt_pyr, cfg.ssim)
        if cfg.mouth and lips is not None:
            out["mouth"] = self.mouth_loss(prediction, target, lips)
        return out

    def mouth_loss(self, prediction: torch.Tensor, target: torch.Tensor, lips: torch.Tensor) -> torch.Tensor:
        """``mouth`` · (L1 + perceptual layers / 10) on crops around the driving lips; items without
        landmarks count zero."""
        cfg = self.config
        boxes, valid = mouth_boxes(lips)
        pred = crop_boxes(prediction, boxes, cfg.mouth_size)
        with torch.no_grad():
            gt = crop_boxes(target, boxes, cfg.mouth_size)
        keep = valid.to(pred.dtype).view(-1, 1, 1, 1)
        share = keep.mean().clamp_min(1e-6)  # the mean over the items that have lips
        total = cfg.mouth * ((pred - gt).abs() * keep).mean() / share
        if self.vgg is not None:
            weights = tuple(w * cfg.mouth / 10.0 for w in cfg.perceptual)
            total = total + perceptual_pyramid_loss(self.vgg, {1.0: pred * keep}, {1.0: gt * keep}, weights) / share
        return total


def mouth_boxes(lips: torch.Tensor, scale: float = 0.8, min_half: float = 0.12) -> tuple[torch.Tensor, torch.Tensor]:
    """Square crop boxes around lip landmarks (B×P×2 in [-1, 1]): centre (B×2) and half side (B), and
    which items have landmarks. The half side is ``scale`` × the mouth's width (corner to corner,
    whatever the opening), at least ``min_half`` so a far face still gives a mouth-sized crop."""
    valid = ~torch.isnan(lips).flatten(1).any(1)
    pts = torch.where(valid.view(-1, 1, 1), lips, torch.zeros_like(lips))
    centre = pts.mean(1)
    width = (pts.max(1).values - pts.min(1).values)[:, 0]
    half = (width * scale).clamp_min(min_half)
    return torch.cat([centre, half[:, None]], 1), valid


def crop_boxes(images: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear ``size``² crops of B×C×H×W images at boxes (B×3: centre x, y and half side in [-1, 1])."""
    b = images.shape[0]
    theta = images.new_zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = boxes[:, 2].to(images.dtype)
    theta[:, :, 2] = boxes[:, :2].to(images.dtype)
    grid = F.affine_grid(theta, [b, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def equivariance_losses(keypoint_net: KeypointNetwork, driving: torch.Tensor, kp_driving: Mapping[str, torch.Tensor],
                        value_weight: float, jacobian_weight: float, transform: RandomTransform
                        ) -> dict[str, torch.Tensor]:
    """Keypoint equivariance under the random warp T (FOMM):

    value: w · mean|kp_d − T(kp_t)|; jacobian: w · mean|I − J_d⁻¹ · ∇T(kp_t) · J_t|, where kp_t, J_t are
    detected on T-warped ``driving`` and kp_d, J_d on ``driving`` itself (``kp_driving``, already
    computed by the forward pass). Zero weights skip the term; both zero skip the keypoint network call.
    """
    out: dict[str, torch.Tensor] = {}
    if not value_weight and not jacobian_weight:
        return out
    if jacobian_weight and "jacobian" not in kp_driving:
        raise ValueError("jacobian equivariance needs a keypoint network with jacobians (set its weight to 0 for tpsm)")
    transformed = keypoint_net(transform.transform_frame(driving))
    # Small tensors: do the geometry in float32 even under bf16 autocast (a 2×2 inverse is fragile).
    with torch.autocast(driving.device.type, enabled=False):
        kp_t = transformed["kp"].float()
        if value_weight:
            diff = kp_driving["kp"].float() - transform.warp_coordinates(kp_t)
            out["equivariance_value"] = value_weight * diff.abs().mean()
        if jacobian_weight:
            if "jacobian" not in transformed:
                raise ValueError("jacobian equivariance needs a keypoint network with jacobians")
            jac_t = transform.jacobian(kp_t) @ transformed["jacobian"].float()
            value = torch.linalg.inv(kp_driving["jacobian"].float()) @ jac_t
            eye = torch.eye(2, dtype=value.dtype, device=value.device)
            out["equivariance_jacobian"] = jacobian_weight * (eye - value).abs().mean()
    return out


def landmark_guidance_loss(kp: torch.Tensor, targets: torch.Tensor, weight: float) -> torch.Tensor:
    """``weight`` × mean |keypoint − target| over keypoints whose target is known.

    ``kp`` and ``targets`` are B×K×2 in [-1, 1]; NaN targets (frames without a detected face) are
    left out. A batch without any target gives a zero that still depends on ``kp`` (DDP sees the use).
    """
    valid = torch.isfinite(targets).all(-1)
    diff = (kp.float() - torch.nan_to_num(targets.float())).abs().mean(-1)
    return weight * (diff * valid).sum() / valid.sum().clamp(min=1)


def landmark_motion_loss(kp: torch.Tensor, targets: torch.Tensor, weight: float) -> torch.Tensor:
    """``weight`` × mean |(kp_d − kp_s) − (target_d − target_s)| over keypoints with both targets known.

    ``kp`` and ``targets`` are B×2×K×2 (source, driving) in [-1, 1]."""
    valid = torch.isfinite(targets).all(-1).all(1)
    t = torch.nan_to_num(targets.float())
    diff = ((kp[:, 1].float() - kp[:, 0].float()) - (t[:, 1] - t[:, 0])).abs().mean(-1)
    return weight * (diff * valid).sum() / valid.sum().clamp(min=1)


def flow_destinations(flows: Sequence[torch.Tensor], points: torch.Tensor,
                      deformation: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Where each level's backward flow sends ``points`` (B×P×2 in [-1, 1], driving frame): B×P×2 source
    positions in [-1, 1] per level.

    ``flows``: the refiner's per-level flows (B×2×h×w, pixels of their level, align_corners=True as
    :func:`~scorr_cli.core.geometry.pixel_sample` reads them). Without refined flows, ``deformation``
    (B×h×w×2, the prior's sampling grid: positions in [-1, 1] whose identity is
    :func:`~scorr_cli.core.geometry.make_coordinate_grid`) gives the one level.
    """
    def sample(field: torch.Tensor) -> torch.Tensor:  # B×C×h×w at the points -> B×P×C
        return F.grid_sample(field.float(), points[:, :, None, :].float(), mode="bilinear", padding_mode="border",
                             align_corners=True)[..., 0].transpose(1, 2)

    if flows:
        return [points + sample(f) * (2.0 / (f.shape[-1] - 1)) for f in flows]
    if deformation is not None:
        return [sample(deformation.permute(0, 3, 1, 2))]
    raise ValueError("flow_destinations needs the refined flows or the prior's deformation")


def landmark_flow_loss(flows: Sequence[torch.Tensor], landmarks: torch.Tensor, weight: float,
                       deformation: torch.Tensor | None = None) -> torch.Tensor:
    """``weight`` × mean |flow(p_driving) − p_source| over the landmarks and levels, in [-1, 1] units.

    ``landmarks``: B×2×P×2 (source, driving) in [-1, 1] pixel-centre units (``x·2/(W−1) − 1``); points
    that are NaN in either frame or outside the image are left out. ``flows`` / ``deformation``: as
    :func:`flow_destinations`; each level weighs alike. A batch without any usable point gives a zero
    that still depends on the flows (DDP sees the use).
    """
    lm, usable = _usable_points(landmarks)
    valid = usable.float()  # B×P
    reached = flow_destinations(flows, lm[:, 1], deformation)
    total = sum(((r - lm[:, 0]).abs().mean(-1) * valid).sum() for r in reached)
    return weight * total / (len(reached) * valid.sum().clamp(min=1))


def _usable_points(landmarks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """B×2×P×2 (source, driving) landmarks -> the same in float32 with NaN set to 0, and which points
    (B×P) are usable: finite and inside the image in both frames."""
    lm = landmarks.float()
    usable = (torch.isfinite(lm) & (lm.abs() <= 1)).all(-1).all(1)
    return torch.nan_to_num(lm), usable


def lip_flow_loss(flows: Sequence[torch.Tensor], lips: torch.Tensor, weight: float, levels: int,
                  deformation: torch.Tensor | None = None) -> torch.Tensor:
    """``weight`` × mean |(flow(p_d) − centre) − (p_s − centre_s)| over the lip points at the ``levels``
    finest flow levels: the lips' shape the flow implies against the source's, head motion removed.

    ``lips``: B×2×P×2 lip landmarks (source, driving) in [-1, 1]; items whose lips are not all usable (NaN
    or outside the image in either frame) are left out. ``flows`` / ``deformation``: as
    :func:`flow_destinations` (the prior's one level in prior-only mode).
    """
    lips, usable = _usable_points(lips)
    valid = usable.all(1).float()  # B: the shape needs every lip point
    target = lips[:, 0] - lips[:, 0].mean(1, keepdim=True)
    finest = sorted(flows, key=lambda f: f.shape[-1])[-levels:]  # coarse to fine as the refiner makes them
    reached = flow_destinations(finest, lips[:, 1], deformation)
    total = sum((((r - r.mean(1, keepdim=True)) - target).abs().mean((1, 2)) * valid).sum() for r in reached)
    return weight * total / (len(reached) * valid.sum().clamp(min=1))


def transferred_landmarks(landmarks: torch.Tensor, scale: torch.Tensor, shift: int = 1) -> torch.Tensor:
    """Where each item's landmarks go when item ``i + shift``'s motion drives it (the cross-identity terms).

    ``landmarks``: B×2×P×2 (source, driving) in [-1, 1]; ``scale``: B, the motion's size on item i over its
    size on the other item (:func:`~scorr_cli.core.transfer.movement_scale` of the keypoints, as animation
    scales it). Returns B×2×P×2: item i's source landmarks, and them moved by ``scale`` × the other item's
    driving − source displacement (NaN where either item has none)."""
    lm = landmarks.float()
    other = lm.roll(-shift, 0)
    moved = lm[:, 0] + scale.to(lm).view(-1, 1, 1) * (other[:, 1] - other[:, 0])
    return torch.stack([lm[:, 0], moved], 1)


def background_loss(affine_sd: torch.Tensor, affine_ds: torch.Tensor, weight: float) -> torch.Tensor:
    """Cycle consistency of the background predictor: w · mean|I₃ − A(s,d)·A(d,s)| (B×3×3 each)."""
    eye = torch.eye(3, dtype=affine_sd.dtype, device=affine_sd.device)
    return weight * (eye - affine_sd @ affine_ds).abs().mean()


__all__ = ["LossConfig", "ImagePyramid", "ReconstructionLoss", "perceptual_pyramid_loss", "pixel_pyramid_loss",
           "ssim_pyramid_loss", "ssim", "gaussian_window", "equivariance_losses", "background_loss",
           "landmark_guidance_loss", "landmark_motion_loss", "landmark_flow_loss", "lip_flow_loss",
           "transferred_landmarks",
           "flow_destinations", "mouth_boxes", "crop_boxes",
           "PERCEPTUAL_BACKENDS"]
