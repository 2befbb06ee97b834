"""Typed model configuration: the one place where every architectural default lives.

The defaults reproduce the authors' ``config/vox1.yaml`` (MTIA prior, 256², refinement on) so that
their released checkpoints load; :data:`PRESETS` holds the named variants. A config round-trips
through plain dicts (:meth:`ModelConfig.to_dict` / :meth:`ModelConfig.from_dict`) so it can be stored
as JSON next to the weights.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from scorr_cli.choices import PRIORS

Prior = str  # one of choices.PRIORS (checked in ModelConfig)


@dataclass
class MTIAConfig:
    """HRNet front end + TokenPose transformer keypoint network (the default prior)."""

    stem_width: int = 64  # channels of the two stride-2 stem convolutions
    bottleneck_planes: int = 64  # layer1 bottleneck width (output is 4x this)
    num_bottlenecks: int = 4  # bottlenecks in layer1
    branch_widths: tuple[int, ...] = (32, 64, 128)  # HRNet branch widths of stages 2-3
    blocks_per_branch: int = 4  # BasicBlocks per branch in each HR module
    stage3_modules: int = 4  # HR modules in stage 3
    patch_size: int = 4  # transformer patch side on the 1/4-resolution feature map
    dim: int = 192  # transformer width
    depth: int = 12  # transformer layers
    heads: int = 8  # attention heads
    mlp_ratio: int = 3  # feed-forward width = dim * mlp_ratio


@dataclass
class TPSMConfig:
    """ResNet-18 regressor of thin-plate-spline control points."""

    points_per_tps: int = 5  # control points per TPS transform (num_tps = num_kp)
    width: int = 64  # ResNet-18 base width (64 = torchvision's)


@dataclass
class FOMMConfig:
    """Hourglass + spatial-softmax keypoint network with one shared jacobian map."""

    block_expansion: int = 32
    num_blocks: int = 5
    max_features: int = 1024
    scale_factor: float = 0.25  # keypoint network input is anti-alias down-sampled by this
    temperature: float = 0.1  # spatial softmax temperature
    single_jacobian_map: bool = True  # the authors' variant: one 4-channel map shared by all keypoints


@dataclass
class DenseMotionConfig:
    """Prior dense-motion hourglass (FOMM-style for mtia/fomm, TPS-style for tpsm)."""

    block_expansion: int = 64
    num_blocks: int = 5
    max_features: int = 1024
    kp_variance: float = 0.01  # Gaussian variance of keypoint heatmaps (normalised units)
    # TPS dropout schedule (tpsm prior, training only): p = min(epoch/inc*maxp + startp, maxp)
    dropout_epoch: int = 35
    dropout_startp: float = 0.1
    dropout_maxp: float = 0.3
    dropout_inc_epoch: int = 10


@dataclass
class GeneratorConfig:
    """Occlusion-aware generator inside the refinement network."""

    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 5  # pyramid has num_down_blocks + 1 levels


@dataclass
class RefinerConfig:
    """The non-prior refinement module: structure correlation + flow/occlusion updater."""

    prior_only: bool = False  # skip refinement entirely (the paper's baseline)
    dim: int = 256  # structure feature width entering the correlation volume
    encoder_block_expansion: int = 32  # structure-encoder hourglass width
    encoder_num_blocks: int = 5
    encoder_max_features: int = 512
    kp_variance: float = 0.1  # structure heatmap Gaussian variance (wider than the prior's)
    corr_levels: int = 2  # correlation pyramid levels (P + 1)
    corr_radius: int = 3  # lookup window radius r (window is 2r+1 square)
    context_dim: int = 192  # to_context output width
    motion_dim: int = 128  # non-prior motion feature width (incl. the 2 raw flow channels)
    hidden_dim: int = 128  # refine head width
    # Inference economy: the N finest pyramid levels skip the updater (correlation lookup, motion
    # encoder, heads) and take the next-coarser level's refined flow/occlusion upsampled. The finest
    # level is 4x the pixels of the one below, so N=1 removes ~3/4 of the updater's work. 0 = the paper.
    skip_finest_updates: int = 0
    # Ablations from the supplementary material (all True = the full method).
    occlusion_update: bool = True  # add the learned occlusion increments
    flow_update: bool = True  # add the learned flow residuals
    warped_source_feature: bool = True  # feed the warped source feature (context) to the updater
    source_image: bool = True  # the source structure encoder also sees the source image


@dataclass
class ModelConfig:
    """Everything needed to build an MRFA model; defaults = the authors' vox1 configuration."""

    prior: str = "mtia"  # prior motion model: mtia | tpsm | fomm
    image_size: int = 256  # square input/output resolution
    num_kp: int = 10  # keypoints (tpsm: number of TPS transforms)
    num_channels: int = 3
    background: bool = False  # build the ResNet-18 background affine predictor (celebvhq)
    # Base width of the background predictor's ResNet-18 (64 = torchvision's, the authors': 11.2 M
    # parameters); 32 gives 2.8 M, small enough to sit beside the lite model's 18 M (no preset sets it).
    background_width: int = 64
    mtia: MTIAConfig = field(default_factory=MTIAConfig)
    tpsm: TPSMConfig = field(default_factory=TPSMConfig)
    fomm: FOMMConfig = field(default_factory=FOMMConfig)
    dense_motion: DenseMotionConfig = field(default_factory=DenseMotionConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    refiner: RefinerConfig = field(default_factory=RefinerConfig)

    def __post_init__(self) -> None:
        if self.prior not in PRIORS:
            raise ValueError(f"unknown prior {self.prior!r}; expected one of {', '.join(PRIORS)}")
        if self.image_size % 32:
            raise ValueError(f"image_size must be a multiple of 32, got {self.image_size}")
        if self.prior == "mtia" and (self.image_size // 4) % self.mtia.patch_size:
            raise ValueError("image_size/4 must be a multiple of the MTIA patch size")
        if not 0 <= self.refiner.skip_finest_updates <= self.generator.num_down_blocks + 1:
            raise ValueError(f"refiner.skip_finest_updates must be 0..{self.generator.num_down_blocks + 1} "
                             f"(the pyramid's levels), got {self.refiner.skip_finest_updates}")

    @property
    def prior_size(self) -> int:
        """Side of the prior flow / structure grid (the image at 1/4 resolution)."""
        return self.image_size // 4

    @property
    def level_sizes(self) -> tuple[int, ...]:
        """Generator pyramid sides, coarse to fine (8..256 for 256² and 5 down blocks)."""
        n = self.generator.num_down_blocks
        return tuple(self.image_size // 2 ** (n - i) for i in range(n + 1))

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(copy.deepcopy(self), **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Build from a (possibly partial) dict; unknown keys are an error so typos surface."""
        check_fields(cls, data, "model config key ")
        kwargs: dict[str, Any] = {}
        nested = {"mtia": MTIAConfig, "tpsm": TPSMConfig, "fomm": FOMMConfig,
                  "dense_motion": DenseMotionConfig, "generator": GeneratorConfig, "refiner": RefinerConfig}
        for key, value in data.items():
            if key in nested:
                kwargs[key] = _sub_from_dict(nested[key], value, key)
            else:
                kwargs[key] = value
        return cls(**kwargs)


def check_fields(cls: type, data: Any, what: str) -> None:
    """Reject keys ``cls`` has no field for, so a typo in a config file fails with its name.

    ``what`` prefixes the key in the message, e.g. ``"model config key refiner."``.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise ValueError(f"unknown {what}{key!r}")


def _sub_from_dict(cls: type, value: Any, prefix: str) -> Any:
    if isinstance(value, cls):
        return value
    check_fields(cls, value, f"model config key {prefix}.")
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
    return cls(**kw)


def vox() -> ModelConfig:
    """The authors' ``config/vox1.yaml`` (released ``vox.pth``)."""
    return ModelConfig()


def celebvhq() -> ModelConfig:
    """The authors' ``config/celebvhq.yaml``: vox1 plus the background predictor."""
    return ModelConfig(background=True)


def lite(image_size: int = 256) -> ModelConfig:
    """A narrow MTIA model that trains on one CPU/GPU and animates at interactive speed on a CPU.

    ~18 M parameters and ~45 GFLOP per 256² frame (the authors' model: 114 M, ~387 GFLOP). The
    refinement heads are shared by all six levels, so their width is what the 256² level costs.
    """
    return ModelConfig(
        prior="mtia",
        image_size=image_size,
        mtia=MTIAConfig(stem_width=32, bottleneck_planes=16, num_bottlenecks=2, branch_widths=(16, 32, 64),
                        blocks_per_branch=2, stage3_modules=2, dim=96, depth=4, heads=4),
        dense_motion=DenseMotionConfig(block_expansion=32, max_features=256),
        generator=GeneratorConfig(block_expansion=32, max_features=256),
        refiner=RefinerConfig(dim=64, encoder_block_expansion=16, encoder_max_features=128, context_dim=32,
                              motion_dim=32, hidden_dim=32),
    )


def tiny(image_size: int = 64) -> ModelConfig:
    """A very small model for tests and smoke runs (64² frames)."""
    return ModelConfig(
        prior="mtia",
        image_size=image_size,
        mtia=MTIAConfig(stem_width=16, bottleneck_planes=8, num_bottlenecks=1, branch_widths=(8, 16, 32),
                        blocks_per_branch=1, stage3_modules=1, patch_size=2, dim=32, depth=2, heads=2),
        dense_motion=DenseMotionConfig(block_expansion=8, max_features=64, num_blocks=3),
        generator=GeneratorConfig(block_expansion=8, max_features=64),
        refiner=RefinerConfig(dim=16, encoder_block_expansion=8, encoder_max_features=32, encoder_num_blocks=3,
                              context_dim=16, motion_dim=16, hidden_dim=16),
        fomm=FOMMConfig(block_expansion=8, max_features=64, num_blocks=3),
        tpsm=TPSMConfig(width=8),
    )


PRESETS = {"vox": vox, "celebvhq": celebvhq, "lite": lite, "tiny": tiny}


def preset(name: str) -> ModelConfig:
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}") from None
