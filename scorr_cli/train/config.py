"""Training configuration: one typed, YAML-round-trippable tree (model, loss, data, schedule, run).

A configuration is resolved in three layers, later ones winning:

1. a *training preset* (``vox``, ``celebvhq``, ``lite``, ``tiny``): model preset + schedule + data
   settings (docs/ARCHITECTURE.md §3), adjusted for the prior (TPSM: milestones [70, 90], no jacobian
   equivariance);
2. ``--config FILE.yaml``: any subset of the tree below (unknown keys are an error);
3. command-line options.

The resolved tree is saved as ``config.yaml`` beside the checkpoints and can be fed back with
``--config``. Layout::

    preset: vox               # the training preset the tree started from
    data_name: vox            # vox | celebvhq | custom (a path was given)
    data_root: data/voxceleb1-png
    model:    {...}           # scorr_cli.core.config.ModelConfig
    loss:     {...}           # scorr_cli.core.losses.LossConfig
    data:     {...}           # scorr_cli.train.data.DataConfig (num_repeats, id_sampling, augment, ...)
    schedule: {...}           # ScheduleConfig: epochs, milestones, lr, batch, clipping, ...
    run:      {...}           # RunConfig: output, device, precision, checkpoints, logging, seed
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from scorr_cli.choices import TRAIN_DEVICES, TRAIN_PRECISIONS
from scorr_cli.core import config as model_config
from scorr_cli.core.config import ModelConfig, check_fields
from scorr_cli.core.losses import LossConfig
from scorr_cli.errors import InputError
from scorr_cli.train.data import DataConfig

TRAIN_PRESETS: tuple[str, ...] = ("vox", "celebvhq", "lite", "tiny")
DATA_NAMES: tuple[str, ...] = ("vox", "celebvhq")
# Default dataset roots (relative to the working directory, as the authors' configs).
DEFAULT_ROOTS: dict[str, str] = {"vox": "data/voxceleb1-png", "celebvhq": "data/celebvhq256-png"}
PRECISIONS = TRAIN_PRECISIONS
DEVICES = TRAIN_DEVICES
CLIP_SCOPES: tuple[str, ...] = ("all", "authors")
# What an optimiser step trains (ScheduleConfig.phase): the keypoint network alone, the keypoints and the
# prior dense motion, or the whole model.
TRAINING_PHASES: tuple[str, ...] = ("keypoints", "motion", "full")
# The model's trainable parts, as MRFA names them: one optimiser parameter group each, and what
# ScheduleConfig.frozen may hold fixed. encoder = the keypoint network, dense_motion = the prior's dense
# motion, bg_predictor = the background affine predictor, decoder = the refinement network + generator.
MODULE_GROUPS: tuple[str, ...] = ("encoder", "dense_motion", "bg_predictor", "decoder")


@dataclass
class ScheduleConfig:
    """Optimisation schedule. ``batch_size`` is *global*: the number of samples per optimiser step
    summed over all ranks and accumulation micro-batches (per-rank micro-batch =
    batch_size / (world_size × accum), which must divide evenly)."""

    epochs: int = 100
    milestones: tuple[int, ...] = (60, 90)  # MultiStepLR milestones (epochs); stepped once per epoch
    gamma: float = 0.1
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    batch_size: int = 80
    accum: int = 1  # gradient-accumulation micro-batches per optimiser step
    max_steps: int | None = None  # stop after this many optimiser steps in total (None: run all epochs)
    # Stop (with a checkpoint, resumable) once the run's optimiser steps have used this much CPU time of the
    # training process, summed over resumes: equal-CPU-time ablations on a shared or busy machine, where
    # wall time says little. None: no budget.
    max_cpu_minutes: float | None = None
    # Optimiser steps at the start of a run that train only the keypoint detector, on landmark guidance
    # and equivariance (no dense motion, refinement or generator: a fraction of a full step's cost), so
    # the keypoints carry the face's motion before the rest learns to use them. Needs loss.landmarks > 0.
    keypoint_warmup_steps: int = 0
    # Optimiser steps after the keypoint warm-up that train the keypoints and the prior's dense motion
    # alone, on the landmark and flow losses applied to the prior's grid (no refinement, generator or
    # reconstruction loss: ~1/18 of a full step's cost), so the coarse motion follows the landmarks (the
    # mouth's opening with loss.lip_flow) before the refiner and the generator learn to use it. Needs
    # loss.landmark_flow or loss.lip_flow > 0.
    motion_warmup_steps: int = 0
    # Full-phase optimiser steps over which the learning rate ramps linearly up to its scheduled value
    # (step k of the full phase runs at (k + 1) / N of it). A run that starts from trained weights with a
    # fresh optimiser (--init) otherwise takes Adam's first, full-size steps (its moment estimates start
    # at zero) with the whole learning rate and loses part of what the weights had learnt. 0: off, the paper.
    lr_warmup_steps: int = 0
    # Model parts (MODULE_GROUPS) held fixed for the whole run: no gradient, no optimiser state, their
    # BatchNorms in inference mode, so they compute exactly what the --init weights did. Holding the prior
    # ("encoder", "dense_motion") lets a continuation fit the refinement and generator to the reconstruction
    # loss without the keypoints and coarse motion drifting from the landmark-guided ones. (): the paper.
    frozen: tuple[str, ...] = ()
    bg_start: int = 1000  # epoch from which the background predictor is used (models with one)
    grad_clip: float = 10.0  # max ∞-norm of each module's gradient (0 disables)
    # "all": clip encoder, dense_motion, bg_predictor AND the refinement network/generator (decoder);
    # "authors": leave the decoder unclipped, as the authors' train.py does.
    clip_scope: str = "all"
    # Exponential moving average of the weights (0: off, the paper). Checkpoints then hold the average
    # (over the last ~1/(1 − decay) steps) and the training state the optimiser's own weights: at a
    # small batch and constant learning rate single checkpoints scatter, their average does less.
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        self.milestones = tuple(int(m) for m in self.milestones)
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]
        if len(self.betas) != 2:
            raise ValueError(f"betas needs two values, got {self.betas}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1 or self.accum < 1:
            raise ValueError("batch_size and accum must be at least 1")
        if self.keypoint_warmup_steps < 0:
            raise ValueError(f"keypoint_warmup_steps must be >= 0, got {self.keypoint_warmup_steps}")
        if self.motion_warmup_steps < 0:
            raise ValueError(f"motion_warmup_steps must be >= 0, got {self.motion_warmup_steps}")
        if self.lr_warmup_steps < 0:
            raise ValueError(f"lr_warmup_steps must be >= 0, got {self.lr_warmup_steps}")
        self.frozen = tuple(str(name) for name in self.frozen)
        unknown = [name for name in self.frozen if name not in MODULE_GROUPS]
        if unknown:
            raise ValueError(f"frozen: unknown model part {unknown[0]!r}; expected some of {', '.join(MODULE_GROUPS)}")
        if {"encoder", "dense_motion", "decoder"} <= set(self.frozen):
            raise ValueError("frozen holds every part of the model fixed: nothing would train")
        if self.keypoint_warmup_steps and "encoder" in self.frozen:
            raise ValueError("keypoint_warmup_steps trains the keypoint network, which frozen holds fixed (encoder)")
        if self.motion_warmup_steps and {"encoder", "dense_motion"} <= set(self.frozen):
            raise ValueError("motion_warmup_steps trains the prior (encoder, dense_motion), which frozen holds fixed")
        if self.max_steps is not None and self.max_steps < 0:
            raise ValueError(f"max_steps must be >= 0, got {self.max_steps}")
        if self.max_cpu_minutes is not None and self.max_cpu_minutes <= 0:
            raise ValueError(f"max_cpu_minutes must be > 0, got {self.max_cpu_minutes}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.clip_scope not in CLIP_SCOPES:
            raise ValueError(f"clip_scope must be one of {', '.join(CLIP_SCOPES)}, got {self.clip_scope!r}")

    def phase(self, step: int) -> str:
        """What optimiser step ``step`` (0-based) trains: one of :data:`TRAINING_PHASES` ("keypoints", then
        "motion", then "full")."""
        if step < self.keypoint_warmup_steps:
            return "keypoints"
        if step < self.keypoint_warmup_steps + self.motion_warmup_steps:
            return "motion"
        return "full"

    def lr_factor(self, step: int) -> float:
        """The share of the scheduled learning rate optimiser step ``step`` (0-based) runs at: the linear
        ramp of ``lr_warmup_steps`` over the first full-phase steps, 1 everywhere else."""
        full_step = step - self.keypoint_warmup_steps - self.motion_warmup_steps
        if full_step < 0 or full_step >= self.lr_warmup_steps:
            return 1.0
        return (full_step + 1) / self.lr_warmup_steps


@dataclass
class RunConfig:
    """Where and how a run executes, what it writes, and how often."""

    out: str = "runs/train"
    device: str = "auto"  # auto | cpu | cuda (torchrun: cuda:LOCAL_RANK)
    precision: str = "fp32"  # fp32 | bf16 (autocast; meant for CUDA)
    num_workers: int = 4  # data-loader worker processes per rank
    vgg_weights: str | None = None  # ImageNet VGG-19 file; None: torch hub cache
    init: str | None = None  # start from this scorr checkpoint's weights (matching names/shapes); fresh optimiser
    checkpoint_every: int = 1000  # optimiser steps between checkpoints (0: only at epoch ends)
    keep: int = 3  # checkpoints kept (oldest deleted first; 0 keeps all)
    sample_every: int = 500  # optimiser steps between sample grids (0: never)
    log_every: int = 10  # optimiser steps between metrics.jsonl lines / log lines
    eval_clips: int = 4  # test clips for the per-epoch reconstruction L1 (0: off)
    eval_frames: int = 16  # frames per test clip (evenly spaced)
    seed: int = 0
    threads: int | None = None  # torch CPU threads per process (None: torch's default; 1 is best on a busy CPU)
    # DDP: None = auto (on when some parameters get no gradient: prior-only, the occlusion/flow-update
    # ablations, a background predictor before bg_start); true/false force it.
    find_unused_parameters: bool | None = None
    sync_batchnorm: bool = True  # convert BatchNorm to SyncBatchNorm for multi-GPU CUDA runs

    def __post_init__(self) -> None:
        if self.device not in DEVICES and not str(self.device).startswith("cuda:"):
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for name in ("num_workers", "checkpoint_every", "keep", "sample_every", "eval_clips"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")
        if self.log_every < 1 or self.eval_frames < 1:
            raise ValueError("log_every and eval_frames must be at least 1")


@dataclass
class TrainConfig:
    preset: str = "vox"
    data_name: str = "vox"
    data_root: str = DEFAULT_ROOTS["vox"]
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        check_fields(cls, sorted(data), "training config key ")
        kw: dict[str, Any] = {k: v for k, v in data.items() if k in ("preset", "data_name", "data_root")}
        if "model" in data:
            kw["model"] = data["model"] if isinstance(data["model"], ModelConfig) else ModelConfig.from_dict(data["model"])
        if "loss" in data:
            kw["loss"] = data["loss"] if isinstance(data["loss"], LossConfig) else LossConfig.from_dict(data["loss"])
        for key, typ in (("data", DataConfig), ("schedule", ScheduleConfig), ("run", RunConfig)):
            if key in data:
                kw[key] = data[key] if isinstance(data[key], typ) else _section(typ, data[key], key)
        return cls(**kw)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(copy.deepcopy(self), **changes)


def _section(cls: type, value: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(value, Mapping):
        raise ValueError(f"config section {prefix!r} must be a mapping")
    check_fields(cls, value, f"training config key {prefix}.")
    return cls(**dict(value))


def _plain(obj: Any) -> Any:
    """Tuples -> lists, recursively (YAML/JSON friendly)."""
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def train_preset(name: str, prior: str | None = None) -> TrainConfig:
    """The training preset ``name`` for ``prior`` (None: the preset's own, MTIA).

    * ``vox``: the authors' vox1 recipe — 100 epochs, MultiStepLR [60, 90] ×0.1 (tpsm: [70, 90]),
      Adam 2e-4 (0.5, 0.999), global batch 80, num_repeats 150, id sampling, no background model.
    * ``celebvhq``: vox1 plus the background predictor from epoch 0, num_repeats 5, 11-character ids.
    * ``lite``: the narrow ``lite`` model at 256² on one GPU or a patient CPU — 60 epochs, [36, 54],
      batch 16, num_repeats 20.
    * ``tiny``: the 64² test model — 10 epochs, [6, 9], batch 4, num_repeats 4, random-VGG perceptual
      loss (no download), frequent checkpoints/samples. For smoke tests, not for use.
    """
    if name not in TRAIN_PRESETS:
        raise ValueError(f"unknown training preset {name!r}; expected one of {', '.join(TRAIN_PRESETS)}")
    model = model_config.preset(name)
    if prior is not None:
        model = model.replace(prior=prior)
    prior = model.prior
    tpsm = prior == "tpsm"
    loss_kw: dict[str, Any] = {}
    data = DataConfig(id_sampling=True, num_repeats=150)
    sched = ScheduleConfig(milestones=(70, 90) if tpsm else (60, 90))
    run = RunConfig()
    data_name = "vox"
    if name == "celebvhq":
        data = DataConfig(id_sampling=True, split_len=11, num_repeats=5)
        sched = dataclasses.replace(sched, bg_start=0)
        data_name = "celebvhq"
    elif name == "lite":
        data = DataConfig(id_sampling=True, num_repeats=20)
        sched = ScheduleConfig(epochs=60, milestones=(42, 54) if tpsm else (36, 54), batch_size=16, bg_start=0)
        run = RunConfig(checkpoint_every=500, sample_every=250)
    elif name == "tiny":
        data = DataConfig(id_sampling=True, num_repeats=4)
        sched = ScheduleConfig(epochs=10, milestones=(7, 9) if tpsm else (6, 9), batch_size=4, bg_start=0)
        run = RunConfig(checkpoint_every=50, sample_every=50, eval_frames=8, num_workers=0)
        loss_kw["perceptual_backend"] = "random"
    loss = LossConfig.for_prior(prior, **loss_kw)
    return TrainConfig(preset=name, data_name=data_name, data_root=DEFAULT_ROOTS[data_name], model=model,
                       loss=loss, data=data, schedule=sched, run=run)


def load_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"training config {p} not found")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise InputError(f"training config {p} is not valid YAML ({str(e).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise InputError(f"training config {p} must be a mapping of sections (model, loss, data, schedule, run)")
    return dict(data)


def run_dir_of(resume: str | Path) -> Path:
    """The run folder of a ``--resume`` target (the parent of its ``checkpoints/``)."""
    from scorr_cli.train.state import find_resume

    model_file, _ = find_resume(resume)
    return model_file.parent.parent if model_file.parent.name == "checkpoints" else model_file.parent


def resolve_config(data: str | None = None, *, preset: str | None = None, config_file: str | Path | None = None,
                   overrides: Mapping[str, Any] | None = None, resume: str | Path | None = None) -> TrainConfig:
    """Build the run's configuration from ``--data``, ``--preset``, ``--config`` and CLI overrides.

    ``data``: ``vox`` / ``celebvhq`` (a named dataset: its preset and default root) or a dataset
    path (preset ``vox`` unless ``preset`` is given). ``overrides``: a partial tree, as the YAML.
    ``resume``: when given without ``config_file``, the run's saved ``config.yaml`` is the file layer
    and its folder the default output, so ``scorr train --resume RUN`` needs no other option.
    ``perceptual_backend: none`` with neither pixel nor SSIM weight set turns both on (weight 10).
    Raises :class:`InputError` (one line) for bad files, keys or values.
    """
    file_tree = load_yaml(config_file) if config_file else {}
    over = copy.deepcopy(dict(overrides or {}))
    if resume is not None and not config_file:
        run_dir = run_dir_of(resume)
        if (run_dir / "config.yaml").is_file():
            file_tree = load_yaml(run_dir / "config.yaml")
        over.setdefault("run", {}).setdefault("out", str(run_dir))
    data_given = data is not None
    if data is None:
        data = file_tree.get("data_name") or "vox"
        if data == "custom":
            data = str(file_tree.get("data_root") or "")
    try:
        name = preset or file_tree.get("preset") or (data if data in DATA_NAMES else "vox")
        prior = (over.get("model", {}) or {}).get("prior") or (file_tree.get("model", {}) or {}).get("prior")
        base = train_preset(name, prior)
        tree = base.to_dict()
        if data in DATA_NAMES:
            if data != base.data_name:
                # The dataset's naming convention (identity prefix) follows the data, not the preset.
                tree["data"]["split_len"] = 11 if data == "celebvhq" else None
            where = {"data_name": data, "data_root": DEFAULT_ROOTS[data]}
        else:
            where = {"data_name": "custom", "data_root": str(data)}
        tree.update(where)
        tree = deep_merge(tree, file_tree)
        if data_given:  # --data is a command-line option: it wins over a file's (e.g. a reused config.yaml's)
            tree.update(where)
        tree = deep_merge(tree, over)
        tree["preset"] = name
        loss = tree.get("loss", {})
        if tree.get("model", {}).get("prior") == "tpsm" and "equivariance_jacobian" not in (over.get("loss") or {}):
            loss["equivariance_jacobian"] = 0.0  # the TPSM detector has no jacobians
        if loss.get("perceptual_backend") == "none" and not loss.get("pixel") and not loss.get("ssim"):
            loss["pixel"], loss["ssim"] = 10.0, 10.0
        cfg = TrainConfig.from_dict(tree)
    except (ValueError, TypeError) as e:
        raise InputError(f"bad training configuration: {e}") from None
    if cfg.model.prior == "tpsm" and cfg.loss.equivariance_jacobian:
        raise InputError("bad training configuration: the tpsm prior has no jacobians; "
                         "set loss.equivariance_jacobian to 0")
    return cfg


__all__ = ["TrainConfig", "ScheduleConfig", "RunConfig", "TRAIN_PRESETS", "DEFAULT_ROOTS", "train_preset",
           "resolve_config", "load_yaml", "deep_merge", "run_dir_of"]
