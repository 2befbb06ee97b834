"""``scorr train``: the MRFA training loop (docs/ARCHITECTURE.md §3) on one CPU/GPU or many (torchrun + DDP).

One optimiser step = ``accum`` micro-batches per rank; each micro-batch runs the reconstruction
forward (TPS dropout by epoch for the tpsm prior; the background predictor from ``bg_start``), the
losses (reconstruction pyramid, keypoint/jacobian equivariance, background cycle), and backward of
(sum of the terms) / accum. Then each module's gradient is clipped to ∞-norm ≤ ``grad_clip``
(encoder, dense_motion, bg_predictor and — unlike the authors, unless ``clip_scope: authors`` — the
decoder), and Adam steps. MultiStepLR steps once per epoch. Optional warm-up phases come first
(``ScheduleConfig.phase``): keypoint-only steps, then keypoint + prior-motion steps on the landmark and
flow losses; neither runs the refiner, the generator or the reconstruction loss.

Reproducibility: every random draw of a step (the equivariance warp, TPS dropout) comes from
generators seeded by (seed, rank, step, micro-batch); the data order and per-item randomness from
(seed, epoch, index). A checkpoint stores weights, optimiser, scheduler, epoch/step, the sampler's
position inside the epoch and the global RNG states, so ``--resume`` continues bit-for-bit the run
it interrupted (on the same hardware and rank count).
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, Dataset

from scorr_cli.checkpoints.store import publishable_metadata, read_checkpoint, save_checkpoint, validate_state_dict
from scorr_cli.core.losses import (LossConfig, ReconstructionLoss, background_loss, equivariance_losses,
                                   landmark_flow_loss, landmark_guidance_loss, landmark_motion_loss, lip_flow_loss,
                                   transferred_landmarks)
from scorr_cli.core.model import MRFA
from scorr_cli.core.transfer import TransferOptions, movement_scale, transfer_keypoints
from scorr_cli.core.transforms import RandomTransform
from scorr_cli.checkpoints.vgg import load_vgg19_weights
from scorr_cli.core.vgg import build_vgg19
from scorr_cli.errors import CheckpointError, InputError, OutputExistsError
from scorr_cli.faces import landmarks as landmarks68
from scorr_cli.fsutil import atomic_write_text, remove_stale_temps_in
from scorr_cli.train import state as st
from scorr_cli.train.config import DATA_NAMES, MODULE_GROUPS, TrainConfig
from scorr_cli.train.data import FramesDataset, iter_test_clips
from scorr_cli.train.ema import WeightAverage
from scorr_cli.train.distributed import (DistInfo, ResumableDistributedSampler, all_reduce_mean, any_rank, barrier,
                                         cleanup, init_distributed)
from scorr_cli.train.monitor import MetricsLog, ProgressDisplay, TensorBoard, format_losses, sample_grid, write_png


@dataclass
class StepInfo:
    """Passed to the ``on_step`` callback after every optimiser step (on every rank)."""

    step: int
    epoch: int
    losses: dict[str, float]  # this rank's mean over the step's micro-batches
    indices: list[int]  # dataset indices this rank trained on in this step
    rank: int
    world_size: int


@dataclass
class TrainResult:
    out: Path
    step: int
    epoch: int
    checkpoint: Path | None  # newest checkpoint written (rank 0; None elsewhere or if none)
    final: Path | None  # final.safetensors when the run completed
    interrupted: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)  # logged step records (rank 0)
    eval_l1: list[float] = field(default_factory=list)  # per-epoch reconstruction L1 on test clips
    model: MRFA | None = field(default=None, repr=False)  # this rank's model, the optimiser's weights (not the EMA)


class _Indexed(Dataset):
    """Adds the dataset index to each item (for logging which samples a rank saw)."""

    def __init__(self, ds: FramesDataset):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        item = self.ds[key]
        item["index"] = key[1]
        return item


class TrainingStep(nn.Module):
    """The model plus the losses that need its sub-networks (equivariance, background cycle), in one
    forward so that DDP sees every parameter use. The reconstruction loss (frozen VGG) stays outside."""

    def __init__(self, model: MRFA, config: TrainConfig):
        super().__init__()
        self.model = model
        self.loss_cfg = config.loss

    def forward(self, source: torch.Tensor, driving: torch.Tensor, transform: RandomTransform | None,
                use_background: bool, dropout_p: float | None, generator: torch.Generator | None,
                landmark_targets: torch.Tensor | None = None, landmark_weights: tuple[float, float] = (0.0, 0.0),
                phase: str = "full", landmarks: torch.Tensor | None = None) -> dict[str, Any]:
        """``landmark_targets``: B×2×K×2 group centres (source, driving) for the keypoint guidance;
        ``landmarks``: B×2×68×2 dlib points for the flow losses (``loss.landmark_flow``, ``loss.lip_flow``);
        ``phase``: what this step trains (:meth:`ScheduleConfig.phase`); the warm-ups make no prediction."""
        lc = self.loss_cfg
        out = dense = None
        flows: list[torch.Tensor] = []  # the warm-ups have no refined flows: the flow losses read the prior's grid
        if phase != "full":  # the warm-ups: the keypoint network (and the prior's dense motion) alone
            kp_source, kp_driving = self.model.detect(source), self.model.detect(driving)
            if phase == "motion":
                bg = self.model.background_motion(source, driving, use_background)
                dense = self.model.prior_motion(source, kp_driving, kp_source, bg, dropout_p, generator)
        else:
            out = self.model(source, driving, use_background=use_background, dropout_p=dropout_p,
                             generator=generator)
            kp_source, kp_driving, flows, dense = out.kp_source, out.kp_driving, out.refiner.flows, out.dense
        losses: dict[str, torch.Tensor] = {}
        position, motion = landmark_weights
        if landmark_targets is not None and (position > 0 or motion > 0):
            # targets: B×2×K×2, (source, driving) group centres
            kp = torch.stack([self.model.refiner_kp(kp_source["kp"]), self.model.refiner_kp(kp_driving["kp"])], 1)
            if position > 0:
                losses["landmarks"] = landmark_guidance_loss(kp.flatten(0, 1), landmark_targets.flatten(0, 1),
                                                             position)
            if motion > 0:
                losses["landmark_motion"] = landmark_motion_loss(kp, landmark_targets, motion)
        if transform is not None:
            losses.update(equivariance_losses(self.model.encoder, driving, kp_driving, lc.equivariance_value,
                                              lc.equivariance_jacobian, transform))
        if landmarks is not None and dense is not None and lc.landmark_flow:
            losses["landmark_flow"] = landmark_flow_loss(flows, landmarks, lc.landmark_flow, dense["deformation"])
        if landmarks is not None and dense is not None and lc.lip_flow:
            losses["lip_flow"] = lip_flow_loss(flows, landmarks[:, :, list(landmarks68.LIPS)], lc.lip_flow,
                                               lc.lip_flow_levels, dense["deformation"])
        if landmarks is not None and phase != "keypoints" and (lc.cross_flow or lc.cross_lip_flow):
            losses.update(self.cross_identity_losses(source, kp_source, kp_driving, landmarks, out, dropout_p,
                                                     generator))
        if out is None:
            return {"prediction": None, "losses": losses}
        bg = out.dense.get("bg_affine")
        if bg is not None and lc.bg:
            losses["bg"] = background_loss(bg.float(), self.model.bg_predictor(driving, source).float(), lc.bg)
        vis = max(out.refiner.visibility, key=lambda v: v.shape[-1]) if out.refiner.visibility \
            else out.refiner.prior_visibility
        return {"prediction": out.prediction, "warped": out.refiner.warped, "visibility": vis, "losses": losses}


    def cross_identity_losses(self, source: torch.Tensor, kp_source: dict[str, torch.Tensor],
                              kp_driving: dict[str, torch.Tensor], landmarks: torch.Tensor, out: Any,
                              dropout_p: float | None, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """``loss.cross_flow`` / ``loss.cross_lip_flow``: each source driven by the next item's motion (its
        driving keypoints relative to its source's, transferred as ``scorr animate`` does), the flow scored
        at the source's landmarks moved by that item's landmark motion. ``out``: the reconstruction forward's
        output (its prepared source is reused), None in the motion warm-up (the prior's grid is scored)."""
        lc = self.loss_cfg
        with torch.autocast(source.device.type, enabled=False):  # a 2×2 inverse is fragile in bf16
            kp_s = {k: v.float() for k, v in kp_source.items()}
            reference = {k: v.float().roll(-1, 0) for k, v in kp_source.items()}
            driving = {k: v.float().roll(-1, 0) for k, v in kp_driving.items()}
            scale = movement_scale(kp_s["kp"], reference["kp"])
            kp = transfer_keypoints(kp_s, driving, reference, TransferOptions(), scale)
        if out is None:
            flows, dense = [], self.model.prior_motion(source, kp, kp_source, None, dropout_p, generator)
        else:
            flows, dense = self.model.motion(out.source, kp, dropout_p, generator)
        points = transferred_landmarks(landmarks, scale)
        losses: dict[str, torch.Tensor] = {}
        if lc.cross_flow:
            losses["cross_flow"] = landmark_flow_loss(flows, points, lc.cross_flow, dense["deformation"])
        if lc.cross_lip_flow:
            losses["cross_lip_flow"] = lip_flow_loss(flows, points[:, :, list(landmarks68.LIPS)], lc.cross_lip_flow,
                                                     lc.lip_flow_levels, dense["deformation"])
        return losses


def _loader_worker_init(_: int) -> None:
    """Loader workers ignore Ctrl-C: the main process handles it (saves, then shuts them down)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _seed_for(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1, dtype=np.uint64)[0]
               & 0x7FFFFFFFFFFFFFFF)


class _StopFlag:
    """SIGINT / SIGTERM set a flag (the loop saves and stops after the current step); a second
    Ctrl-C raises KeyboardInterrupt at once."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __enter__(self) -> "_StopFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def check_data_root(config: TrainConfig) -> Path:
    """The dataset root, or a one-line :class:`InputError` saying what is wrong and how to fix it."""
    root = Path(config.data_root).expanduser()
    if config.data_name in DATA_NAMES and not root.exists():
        raise InputError(f"dataset '{config.data_name}' not found at {root}: pass --data-root PATH "
                         f"(a folder with train/ and test/), or --data PATH")
    if not root.exists():
        raise InputError(f"dataset root {root} does not exist")
    if not root.is_dir():
        raise InputError(f"dataset root {root} is not a folder (expected a folder with train/ and test/)")
    return root


class _RunLog:
    """What a run shows and writes as it goes: the progress display, metrics.jsonl and TensorBoard (rank 0),
    loss means over each ``log_every`` window (averaged over ranks), and sample grids."""

    def __init__(self, display: ProgressDisplay, metrics: MetricsLog | None, tb: TensorBoard | None):
        self.display, self.metrics, self.tb = display, metrics, tb
        self.history: list[dict[str, Any]] = []
        self.window: dict[str, float] = {}
        self.window_n = 0
        self.t_window = time.perf_counter()

    @classmethod
    def open(cls, trainer: "Trainer", total: int) -> "_RunLog":
        cfg, info = trainer.cfg, trainer.info
        metrics = tb = None
        if info.is_main:
            trainer.out.mkdir(parents=True, exist_ok=True)
            for folder in (trainer.out, trainer.ckpt_dir, trainer.out / "samples"):  # what a killed run was writing
                remove_stale_temps_in(folder)
            atomic_write_text(trainer.out / "config.yaml", trainer.saved_config().to_yaml())
            # a fresh start drops what an earlier run killed before its first checkpoint logged
            metrics = MetricsLog(trainer.out / "metrics.jsonl",
                                 resume_step=trainer.step if trainer.resumed_from else 0)
            tb = TensorBoard(trainer.out / "tensorboard")
        display = ProgressDisplay(total, trainer.step, enabled=trainer.show_progress)
        if trainer.init_note:
            display.print(trainer.init_note)
        if cfg.run.precision == "bf16" and trainer.device.type == "cpu":
            display.print("note: bf16 autocast on a CPU runs about 15x slower than fp32 here (no bf16 matrix units); "
                          "it is meant for CUDA GPUs")
        if trainer.resumed_from is not None:
            display.print(f"resumed from {trainer.resumed_from} (epoch {trainer.epoch}, step {trainer.step})")
        sched = cfg.schedule
        display.print(f"training {cfg.preset}/{cfg.model.prior} on {trainer.root} ({len(trainer.dataset)} items/epoch, "
                      f"{trainer.steps_per_epoch} steps/epoch) device {trainer.device} × {info.world_size}, "
                      f"batch {sched.batch_size} = {info.world_size} rank(s) × {sched.accum} × {trainer.micro}; "
                      f"output {trainer.out}" + ("" if tb is None or tb.enabled else "; tensorboard not installed"))
        return cls(display, metrics, tb)

    def step(self, trainer: "Trainer", losses: dict[str, float], indices: list[int], vis: Any, force: bool) -> None:
        """After an optimiser step: the window sums, a log record every ``log_every`` steps (or ``force``),
        a sample grid every ``sample_every``."""
        run = trainer.cfg.run
        for k, v in losses.items():
            self.window[k] = self.window.get(k, 0.0) + v
        self.window_n += 1
        if trainer.step % run.log_every == 0 or force:
            self._record(trainer)
        else:
            self.display.update(trainer.step, trainer.epoch, None, None, log_line=False)
        if trainer.info.is_main and run.sample_every and trainer.step % run.sample_every == 0 and vis:
            grid = sample_grid(vis["source"], vis["driving"], vis["prediction"], vis["warped"], vis["visibility"])
            write_png(trainer.out / "samples" / f"step-{trainer.step:08d}.png", grid)
            self.tb.image("samples", grid, trainer.step)

    def _record(self, trainer: "Trainer") -> None:
        keys = sorted(self.window)
        mean = all_reduce_mean(torch.tensor([self.window[k] / self.window_n for k in keys], dtype=torch.float64),
                               trainer.info).tolist()
        avg = dict(zip(keys, mean))
        avg = {k: avg[k] for k in [*(k for k in keys if k != "total"), "total"] if k in avg}
        dt = time.perf_counter() - self.t_window
        it_s = self.window_n / dt if dt > 0 else None
        if trainer.info.is_main:
            batch = trainer.cfg.schedule.batch_size
            rec = {"type": "step", "step": trainer.step, "epoch": trainer.epoch,
                   "lr": trainer.optimizer.param_groups[0]["lr"] * trainer.cfg.schedule.lr_factor(trainer.step - 1),
                   **avg, "it_s": it_s,
                   "samples_s": it_s * batch if it_s else None, "wall_time": round(trainer.wall_time, 3)}
            self.history.append(rec)
            self.metrics.write(rec)
            self.tb.scalars({**avg, "lr": rec["lr"]}, trainer.step)
        self.display.update(trainer.step, trainer.epoch, avg, it_s, log_line=True)
        self.window, self.window_n, self.t_window = {}, 0, time.perf_counter()

    def close(self) -> None:
        self.display.close()
        if self.metrics is not None:
            self.metrics.close()
        if self.tb is not None:
            self.tb.close()


class Trainer:
    def __init__(self, config: TrainConfig, info: DistInfo, on_step: Callable[[StepInfo], None] | None = None,
                 show_progress: bool = True, resume: str | Path | None = None):
        self.cfg = config
        self.info = info
        self.on_step = on_step
        self.show_progress = show_progress and info.is_main
        self.device = info.device
        self.out = Path(config.run.out).expanduser()
        self.ckpt_dir = st.checkpoint_dir(self.out)
        if resume is None and st.list_checkpoints(self.ckpt_dir):
            raise OutputExistsError(f"{self.out} already holds a training run: continue it with --resume {self.out}, "
                                    "or choose another --out")
        self._build_data()
        self._build_model(resume)
        self._build_losses()
        self._build_optimizer()
        self.average = WeightAverage(self.model, config.schedule.ema_decay) if config.schedule.ema_decay else None

        # counters
        self.epoch = 0
        self.step = 0
        self.samples_in_epoch = 0
        self.wall_time = 0.0
        self.cpu_time = 0.0  # CPU seconds of this process in optimiser steps (schedule.max_cpu_minutes)
        self.last_eval: float | None = None
        self.eval_history: list[float] = []
        self.last_checkpoint: Path | None = None
        self.resumed_from: Path | None = None
        if resume is not None:
            self._resume(resume)
        barrier(info)

        self.autocast_dtype = torch.bfloat16 if config.run.precision == "bf16" else None
        self.eval_frames = self._load_eval_frames() if info.is_main else []

    # ------------------------------------------------------------------------------ builders
    def _build_data(self) -> None:
        """The training set, its resumable sampler and the per-rank micro-batch."""
        config, info, sched = self.cfg, self.info, self.cfg.schedule
        self.root = check_data_root(config)
        data_cfg = config.data
        if data_cfg.frame_size is None:
            data_cfg = type(data_cfg)(**{**data_cfg.__dict__, "frame_size": config.model.image_size})
        self.dataset = FramesDataset(self.root, data_cfg, "train")
        per_step = info.world_size * sched.accum
        if sched.batch_size % per_step:
            raise InputError(f"--batch-size {sched.batch_size} is global: it must be a multiple of "
                             f"world size × accum = {info.world_size} × {sched.accum}")
        self.micro = sched.batch_size // per_step
        if len(self.dataset) < sched.batch_size:
            raise InputError(f"the training set has {len(self.dataset)} items per epoch "
                             f"({len(self.dataset.items)} clips/identities × num_repeats {data_cfg.num_repeats}), "
                             f"fewer than one batch of {sched.batch_size}: lower --batch-size or raise num_repeats")
        self.sampler = ResumableDistributedSampler(len(self.dataset), sched.batch_size // sched.accum,
                                                   info.world_size, info.rank, seed=self.cfg.run.seed)
        self.steps_per_epoch = self.sampler.steps_per_epoch

    def _build_model(self, resume: str | Path | None) -> None:
        """The model (seeded; ``--init`` weights unless resuming), on its device, SyncBN for multi-GPU."""
        run = self.cfg.run
        torch.manual_seed(run.seed)
        np.random.seed(run.seed % 2**32)
        import random as _random
        _random.seed(run.seed)
        self.model = MRFA(self.cfg.model)
        for name in self.cfg.schedule.frozen:
            part = getattr(self.model, name, None)
            if part is None:
                raise InputError(f"schedule.frozen: this model has no {name} (model.background is off)")
            part.requires_grad_(False)
        self._train_mode(self.model)
        self.init_note = ""
        # Training behind --init weights (followed through resumes): the published totals add it up.
        self.lineage: dict[str, float] = {}
        if run.init and resume is None:
            self.init_note = self._init_weights(run.init)
        self.model.to(self.device)
        if self.info.distributed and self.device.type == "cuda" and run.sync_batchnorm:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)

    def _build_losses(self) -> None:
        """The reconstruction loss (with its frozen VGG), the landmark groups, the step module (model +
        the losses that use its sub-networks) and its DDP wrapper."""
        config, lc = self.cfg, self.cfg.loss
        self.vgg_backend = lc.perceptual_backend
        self.landmark_groups = self._check_landmark_guidance()
        if config.schedule.keypoint_warmup_steps and not (lc.landmarks or lc.landmark_motion):
            raise InputError("schedule.keypoint_warmup_steps trains the keypoints on landmark guidance: "
                             "set loss.landmarks (--landmarks) or loss.landmark_motion (--landmark-motion) above 0")
        if config.schedule.motion_warmup_steps and not (lc.landmark_flow or lc.lip_flow):
            raise InputError("schedule.motion_warmup_steps trains the prior's motion on the flow losses: "
                             "set loss.landmark_flow (--landmark-flow) or loss.lip_flow (--lip-flow) above 0")
        if not lc.uses_perceptual and not lc.pixel and not lc.ssim:
            raise InputError("no reconstruction loss: enable the perceptual term (--perceptual vgg19|random) "
                             "or set loss.pixel / loss.ssim")
        vgg = None
        if lc.uses_perceptual and lc.perceptual_backend == "vgg19":
            vgg = build_vgg19(load_vgg19_weights(config.run.vgg_weights))
        elif lc.uses_perceptual:
            vgg = build_vgg19(None, lc.random_vgg_seed)
        self.recon = ReconstructionLoss(lc, vgg, config.model.num_channels).to(self.device)
        self.step_module = TrainingStep(self.model, config)
        self.ddp: nn.Module = self.step_module
        if self.info.distributed:
            find_unused = config.run.find_unused_parameters
            if find_unused is None:
                r = config.model.refiner
                find_unused = (r.prior_only or not r.occlusion_update or not r.flow_update
                               or (config.model.background and config.schedule.bg_start > 0)
                               or config.schedule.keypoint_warmup_steps > 0
                               or config.schedule.motion_warmup_steps > 0)
            self.ddp = DDP(self.step_module, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                           find_unused_parameters=find_unused)

    def _build_optimizer(self) -> None:
        """Adam over one parameter group per module, MultiStepLR, and the groups gradient clipping covers."""
        sched = self.cfg.schedule
        groups = []
        for name in MODULE_GROUPS:
            mod = getattr(self.model, name, None)
            if mod is not None:
                params = [p for p in mod.parameters() if p.requires_grad]
                if params:
                    groups.append({"params": params, "name": name})
        covered = {id(p) for g in groups for p in g["params"]}
        rest = [p for p in self.model.parameters() if p.requires_grad and id(p) not in covered]
        if rest:
            groups.append({"params": rest, "name": "other"})
        self.optimizer = torch.optim.Adam(groups, lr=sched.lr, betas=tuple(sched.betas))
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, list(sched.milestones), sched.gamma)
        clip_names = {"encoder", "dense_motion", "bg_predictor", "other"}
        if sched.clip_scope == "all":
            clip_names.add("decoder")
        self.clip_groups = [g["params"] for g in groups if g["name"] in clip_names]

    def _check_landmark_guidance(self) -> torch.Tensor:
        """The (groups × 68) averaging matrix; refuses guidance the model or the data cannot take."""
        groups = torch.from_numpy(landmarks68.group_matrix())
        lc = self.cfg.loss
        if not lc.uses_landmarks:
            return groups
        if (lc.landmarks > 0 or lc.landmark_motion > 0) and self.cfg.model.num_kp != groups.shape[0]:
            raise InputError(f"landmark guidance pulls {groups.shape[0]} keypoints toward the landmark groups "
                             f"({', '.join(landmarks68.GROUP_NAMES)}); this model has num_kp {self.cfg.model.num_kp} "
                             "(set loss.landmarks: 0)")
        if not any(c.landmarks is not None for c in self.dataset.clips):
            terms = ", ".join(f"loss.{name}" for name in LossConfig.LANDMARK_TERMS)
            raise InputError(f"landmark guidance, the lip-region and the flow losses need "
                             f"{landmarks68.LANDMARKS_FILE} in the clip folders of {self.root}/train: build the set "
                             f"with 'scorr crop --dataset' (re-running it on a finished set adds them), or set "
                             f"{terms} to 0")
        return groups

    # ------------------------------------------------------------------------------ init / resume
    def _init_weights(self, path: str) -> str:
        """Start from another checkpoint's weights (fine-tuning): every tensor whose name and shape match
        is loaded; optimiser, schedule and counters start fresh (the authors' ``--checkpoint``)."""
        ckpt = read_checkpoint(Path(path).expanduser())
        own = self.model.state_dict()
        loaded = {k: v for k, v in ckpt.state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
        if not loaded:
            raise CheckpointError(f"--init {path}: no tensor matches this model configuration")
        self.model.load_state_dict({k: v.to(own[k].dtype) for k, v in loaded.items()}, strict=False)
        meta = ckpt.metadata
        if meta.get("steps") is not None:
            self.lineage = {"steps": int(meta.get("steps_total", meta["steps"])),
                            "wall_time_s": float(meta.get("wall_time_s_total", meta.get("wall_time_s", 0.0)))}
        return f"initialised {len(loaded)}/{len(own)} tensors from {path}"

    def _resume(self, target: str | Path) -> None:
        mp, sp = st.find_resume(target)
        ckpt = read_checkpoint(mp)
        if ckpt.config.to_dict() != self.cfg.model.to_dict():
            a, b = ckpt.config.to_dict(), self.cfg.model.to_dict()
            diff = next((k for k in a if a[k] != b.get(k)), "?")
            raise CheckpointError(f"--resume {mp}: it was trained with another model configuration "
                                  f"(model.{diff}: {a.get(diff)!r} vs {b.get(diff)!r})")
        validate_state_dict(self.model, ckpt.state, str(mp))
        self.model.load_state_dict({k: v.to(self.device) for k, v in ckpt.state.items()}, strict=True)
        self.lineage = dict(ckpt.metadata.get("init_from") or {})
        ts = st.load_training_state(sp)
        self._resume_weights(ts, sp)
        try:
            self.optimizer.load_state_dict(ts.optimizer)
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"--resume {sp}: optimiser state does not match this model ({e})") from None
        if ts.scheduler:
            self.scheduler.load_state_dict(ts.scheduler)
        # A changed schedule in the config wins over the stored one (e.g. more epochs, new milestones).
        self.scheduler.milestones = Counter(self.cfg.schedule.milestones)
        self.scheduler.gamma = self.cfg.schedule.gamma
        s = ts.scalars
        self.epoch, self.step = int(s["epoch"]), int(s["step"])
        self.samples_in_epoch = int(s.get("samples_in_epoch", 0))
        if self.samples_in_epoch >= self.sampler.usable:  # the epoch's samples were all used
            self.samples_in_epoch = 0
            self.epoch += 1
        self.samples_in_epoch -= self.samples_in_epoch % self.info.world_size
        self.wall_time = float(s.get("wall_time", 0.0))
        self.cpu_time = float(s.get("cpu_time", 0.0))
        self.eval_history = [float(x) for x in s.get("eval_history", [])]
        if int(s.get("world_size", 1)) == self.info.world_size and self.info.rank == 0:
            st.restore_rng(ts.rng)
        self.resumed_from = mp
        self.last_checkpoint = mp

    def _resume_weights(self, ts: st.TrainingState, sp: Path) -> None:
        """With a weight average the model file held the average and the state file the optimiser's
        weights: put each where it belongs. An average switched on at a resume starts from the weights;
        switched off, the run goes on from the optimiser's weights."""
        if ts.weights:
            stored = {k: v.to(self.device) for k, v in ts.weights.items()}
            validate_state_dict(self.model, stored, str(sp))
            if self.average is not None:
                self.average.load(self.model.state_dict(), int(ts.scalars.get("ema_updates", 0)))
            self.model.load_state_dict(stored, strict=True)
        elif self.average is not None:
            self.average = WeightAverage(self.model, self.cfg.schedule.ema_decay)

    # ------------------------------------------------------------------------------ eval data
    def _load_eval_frames(self) -> list[torch.Tensor]:
        run = self.cfg.run
        if not run.eval_clips or not (self.root / "test").is_dir():
            return []
        out = []
        try:
            for i, clip in enumerate(iter_test_clips(self.root, self.cfg.model.image_size)):
                if i >= run.eval_clips:
                    break
                n = clip.num_frames
                if n < 2:
                    continue
                want = set(np.linspace(0, n - 1, min(n, run.eval_frames)).round().astype(int).tolist())
                frames = [f for k, f in enumerate(clip.frames()) if k in want]
                if len(frames) >= 2:
                    out.append(torch.stack(frames))
        except InputError:
            return out  # an empty or odd test/ folder only disables the metric
        return out

    @torch.no_grad()
    def evaluate(self) -> float | None:
        """Mean |prediction − driving| over the test clips: source = the clip's first frame."""
        if not self.eval_frames:
            return None
        total, count = 0.0, 0
        with self.published_weights() as model:
            model.eval()
            try:
                for frames in self.eval_frames:
                    frames = frames.to(self.device)
                    source = frames[:1]
                    for chunk in frames.split(8):
                        pred = model(source.expand(chunk.shape[0], -1, -1, -1), chunk).prediction
                        total += (pred.float() - chunk).abs().mean(dim=(1, 2, 3)).sum().item()
                        count += chunk.shape[0]
            finally:
                self._train_mode(model)
        return total / count

    def _train_mode(self, model: MRFA) -> None:
        """Training mode, except for the frozen parts (``schedule.frozen``): their BatchNorms keep
        normalising with the running statistics and leave them unchanged, as at inference."""
        model.train()
        for name in self.cfg.schedule.frozen:
            getattr(model, name).eval()

    def published_weights(self) -> contextlib.AbstractContextManager[MRFA]:
        """The model as checkpoints publish it: holding the weight average when the run keeps one."""
        if self.average is None:
            return contextlib.nullcontext(self.model)
        return self.average.applied_to(self.model)

    # ------------------------------------------------------------------------------ checkpoints
    def metadata(self) -> dict[str, Any]:
        """Model-checkpoint metadata: no local paths (the run's config.yaml keeps them for resuming)."""
        return publishable_metadata({
            "preset": self.cfg.preset, "prior": self.cfg.model.prior, "perceptual": self.vgg_backend,
            "steps": self.step, "epoch": self.epoch, "samples_in_epoch": self.samples_in_epoch,
            "wall_time_s": round(self.wall_time, 3), "device": str(self.device), "world_size": self.info.world_size,
            "precision": self.cfg.run.precision, "batch_size": self.cfg.schedule.batch_size,
            "data": self.cfg.data_name, "data_root_name": self.root.resolve().name, "eval_l1": self.last_eval,
            "source": "scorr train", "train_config": self.cfg.to_dict(),
            **self.lineage_metadata(),
        })

    def saved_config(self) -> TrainConfig:
        """The configuration as ``config.yaml`` keeps it: file paths made absolute, so ``--resume RUN``
        works from any working folder (the data root was relative to where the run started)."""
        saved = self.cfg.replace(data_root=str(self.root.resolve()))
        for key in ("vgg_weights", "init"):
            value = getattr(saved.run, key)
            if value and Path(value).expanduser().exists():
                setattr(saved.run, key, str(Path(value).expanduser().resolve()))
        return saved

    def lineage_metadata(self) -> dict[str, Any]:
        if not self.lineage:
            return {}
        return {"init_from": self.lineage, "steps_total": int(self.lineage["steps"]) + self.step,
                "wall_time_s_total": round(float(self.lineage["wall_time_s"]) + self.wall_time, 3)}

    def save(self) -> Path | None:
        """Rank 0 writes step-N (training state first, then the model), prunes to ``keep``."""
        if self.info.is_main:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            mp = st.model_path(self.ckpt_dir, self.step)
            scalars = {"epoch": self.epoch, "step": self.step, "samples_in_epoch": self.samples_in_epoch,
                       "wall_time": self.wall_time, "cpu_time": self.cpu_time, "world_size": self.info.world_size,
                       "batch_size": self.cfg.schedule.batch_size, "eval_history": self.eval_history,
                       "seed": self.cfg.run.seed}
            trained = None
            if self.average is not None:
                scalars["ema_updates"] = self.average.updates
                trained = self.model.state_dict()
            st.save_training_state(st.state_path_for(mp), optimizer=self.optimizer, scheduler=self.scheduler,
                                   scalars=scalars, rng=st.capture_rng(), weights=trained)
            with self.published_weights() as model:
                save_checkpoint(mp, model, metadata=self.metadata())
            st.prune_checkpoints(self.ckpt_dir, self.cfg.run.keep, protect=(mp,))
            self.last_checkpoint = mp
        barrier(self.info)
        return self.last_checkpoint if self.info.is_main else None

    # ------------------------------------------------------------------------------ one step
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _micro_step(self, batch: dict[str, Any], micro: int, sync: bool) -> tuple[dict[str, float], dict[str, Any]]:
        cfg = self.cfg
        source = batch["source"].to(self.device, non_blocking=True)
        driving = batch["driving"].to(self.device, non_blocking=True)
        b = source.shape[0]
        lc = cfg.loss
        transform = None
        if lc.equivariance_value or lc.equivariance_jacobian:
            g = torch.Generator().manual_seed(_seed_for(cfg.run.seed, self.info.rank, self.step, micro, 0))
            transform = RandomTransform.sample(b, lc.transform, generator=g, device=self.device)
        dropout_p = None
        gen = None
        if cfg.model.prior == "tpsm":
            dropout_p = self.model.dense_motion.dropout_p(self.epoch)
            gen = torch.Generator(device=self.device).manual_seed(
                _seed_for(cfg.run.seed, self.info.rank, self.step, micro, 1))
        use_bg = self.model.has_background and self.epoch >= cfg.schedule.bg_start
        lm_weights = (lc.landmark_weight(self.step), lc.landmark_motion_weight(self.step))
        lm_targets = None
        if max(lm_weights) > 0:
            lm_targets = torch.einsum("gk,bskc->bsgc", self.landmark_groups, batch["landmarks"].float()).to(self.device)
        phase = cfg.schedule.phase(self.step)
        warmup = phase != "full"
        ctx = self.ddp.no_sync() if (isinstance(self.ddp, DDP) and not sync) else contextlib.nullcontext()
        with ctx:
            with self._autocast():
                points = batch["landmarks"].to(self.device) if (lc.landmark_flow or lc.lip_flow or lc.cross_flow
                                                                or lc.cross_lip_flow) else None
                out = self.ddp(source, driving, transform, use_bg, dropout_p, gen, lm_targets, lm_weights, phase,
                               points)
                lips = batch["landmarks"][:, 1, list(landmarks68.LIPS)].to(self.device) if lc.mouth else None
                losses = {} if warmup else dict(self.recon(out["prediction"], driving, lips))
            losses.update(out["losses"])
            total = sum(v.float().mean() for v in losses.values())
            (total / cfg.schedule.accum).backward()
        values = {k: float(v.detach().float().mean()) for k, v in losses.items()}
        values["total"] = float(total.detach())
        if warmup:
            return values, None
        vis = {"source": source, "driving": driving, "prediction": out["prediction"], "warped": out["warped"],
               "visibility": out["visibility"]}
        return values, vis

    def _optimizer_step(self) -> None:
        """Adam's step at the scheduled learning rate, scaled by the warm-up ramp
        (``schedule.lr_warmup_steps``); the scheduler's own rates are put back after it, so the epoch
        schedule and a resume see the unscaled values."""
        factor = self.cfg.schedule.lr_factor(self.step)
        if factor == 1.0:
            self.optimizer.step()
            return
        scheduled = [group["lr"] for group in self.optimizer.param_groups]
        for group, lr in zip(self.optimizer.param_groups, scheduled):
            group["lr"] = lr * factor
        try:
            self.optimizer.step()
        finally:
            for group, lr in zip(self.optimizer.param_groups, scheduled):
                group["lr"] = lr

    def _clip(self) -> None:
        max_norm = self.cfg.schedule.grad_clip
        if max_norm and max_norm > 0:
            for params in self.clip_groups:
                with_grad = [p for p in params if p.grad is not None]
                if with_grad:
                    torch.nn.utils.clip_grad_norm_(with_grad, max_norm=max_norm, norm_type=math.inf)

    # ------------------------------------------------------------------------------ the loop
    def _loader(self) -> DataLoader:
        run = self.cfg.run
        return DataLoader(_Indexed(self.dataset), batch_size=self.micro, sampler=self.sampler,
                          num_workers=run.num_workers, drop_last=True, pin_memory=self.device.type == "cuda",
                          persistent_workers=False, worker_init_fn=_loader_worker_init if run.num_workers else None)

    def total_steps(self) -> int:
        total = self.cfg.schedule.epochs * self.steps_per_epoch
        if self.cfg.schedule.max_steps is not None:
            total = min(total, self.cfg.schedule.max_steps)
        return total

    def run(self) -> TrainResult:
        """Epochs of optimiser steps until the schedule or ``max_steps`` ends, or Ctrl-C/SIGTERM asks to stop
        (then the step in flight finishes, a checkpoint is saved and the run can be resumed)."""
        total = self.total_steps()
        log = _RunLog.open(self, total)
        self._interrupted = self._epoch_exhausted = False
        final: Path | None = None
        saved_at = self.step if self.resumed_from else -1
        try:
            with _StopFlag() as stop:
                while (self.epoch < self.cfg.schedule.epochs and self.step < total and not self._stopping(stop)
                       and not self._budget_spent()):
                    for losses, indices, vis, end_of_epoch in self._steps(total, stop):
                        log.step(self, losses, indices, vis, end_of_epoch or self.step == total)
                        if end_of_epoch or self._stopping(stop) or self._budget_spent():
                            break
                        if self.cfg.run.checkpoint_every and self.step % self.cfg.run.checkpoint_every == 0:
                            saved_at = self._save_at()
                    if self.samples_in_epoch >= self.sampler.usable or self._epoch_exhausted:
                        self._end_epoch(log.metrics, log.tb, log.display)
                        saved_at = self.step
                if saved_at != self.step:
                    self.save()
                if self._interrupted:
                    log.display.print(f"interrupted ({stop.requested}) at step {self.step}: saved "
                                      f"{self.last_checkpoint}; continue with --resume {self.out}")
                elif self._budget_spent() and self.step < total:
                    log.display.print(f"CPU budget of {self.cfg.schedule.max_cpu_minutes:g} min spent at step "
                                      f"{self.step}: saved {self.last_checkpoint}; continue with --resume {self.out} "
                                      "and a larger --max-cpu-minutes")
                elif self.info.is_main and self.step >= total:
                    with self.published_weights() as model:
                        final = save_checkpoint(self.out / "final.safetensors", model, metadata=self.metadata())
            self._sync_buffers()
        finally:
            log.close()
        return TrainResult(self.out, self.step, self.epoch, self.last_checkpoint if self.info.is_main else None,
                           final, self._interrupted, log.history, list(self.eval_history), self.model)

    def _stopping(self, stop: "_StopFlag") -> bool:
        """Whether any rank was asked to stop (all ranks must leave the loop at the same step)."""
        if any_rank(stop.requested is not None, self.info):
            stop.requested = stop.requested or "peer"
            self._interrupted = True
        return self._interrupted

    def _budget_spent(self) -> bool:
        """Whether the CPU-time budget is used up (on any rank: all ranks stop at the same step)."""
        budget = self.cfg.schedule.max_cpu_minutes
        return budget is not None and any_rank(self.cpu_time >= 60.0 * budget, self.info)

    def _save_at(self) -> int:
        self.save()
        return self.step

    def _steps(self, total: int, stop: "_StopFlag") -> Iterator[tuple[dict[str, float], list[int], Any, bool]]:
        """This epoch's optimiser steps: (mean losses, dataset indices, sample tensors, end of epoch) after
        each. Sets ``_epoch_exhausted`` when the loader runs dry before the sampler's epoch length."""
        sched = self.cfg.schedule
        self.sampler.set_epoch(self.epoch, self.samples_in_epoch)
        self.dataset.set_epoch(self.epoch)
        self._epoch_exhausted = False
        batches = iter(self._loader())
        while self.step < total:
            t0, c0 = time.perf_counter(), time.process_time()
            self.optimizer.zero_grad(set_to_none=True)
            losses: dict[str, float] = {}
            indices: list[int] = []
            vis = None
            try:
                for m in range(sched.accum):
                    batch = next(batches)
                    indices += [int(i) for i in batch["index"]]
                    values, vis = self._micro_step(batch, m, sync=m == sched.accum - 1)
                    for k, v in values.items():
                        losses[k] = losses.get(k, 0.0) + v / sched.accum
            except StopIteration:
                self._epoch_exhausted = True
                return
            except RuntimeError:
                if stop.requested:  # a loader worker died of the same Ctrl-C
                    return
                raise
            self._clip()
            self._optimizer_step()
            if self.average is not None:
                self.average.update(self.model)
            self.step += 1
            self.samples_in_epoch += sched.batch_size
            self.wall_time += time.perf_counter() - t0
            self.cpu_time += time.process_time() - c0
            if self.on_step is not None:
                self.on_step(StepInfo(self.step, self.epoch, losses, indices, self.info.rank, self.info.world_size))
            yield losses, indices, vis, self.samples_in_epoch >= self.sampler.usable

    def _sync_buffers(self) -> None:
        """DDP broadcasts BatchNorm statistics from rank 0 at the start of each forward, so after the
        last step each rank still holds its own; make every rank's model the one rank 0 saved."""
        if self.info.distributed:
            import torch.distributed as dist

            for buf in self.model.buffers():
                dist.broadcast(buf.data, src=0)

    def _end_epoch(self, metrics: MetricsLog | None, tb: TensorBoard | None, display: ProgressDisplay) -> None:
        finished = self.epoch
        self.scheduler.step()
        self.epoch += 1
        self.samples_in_epoch = 0
        if self.info.is_main:
            self.last_eval = self.evaluate()
            if self.last_eval is not None:
                self.eval_history.append(self.last_eval)
            rec = {"type": "epoch", "step": self.step, "epoch": finished, "eval_l1": self.last_eval,
                   "lr": self.optimizer.param_groups[0]["lr"], "wall_time": round(self.wall_time, 3)}
            metrics.write(rec)
            if self.last_eval is not None:
                tb.scalars({"reconstruction_l1": self.last_eval}, self.step, prefix="eval")
            display.print(f"epoch {finished} done at step {self.step}"
                          + (f": test reconstruction L1 {self.last_eval:.4f}" if self.last_eval is not None else ""))
        self.save()


def train(config: TrainConfig, *, resume: str | Path | None = None, on_step: Callable[[StepInfo], None] | None = None,
          show_progress: bool = True) -> TrainResult:
    """Run a training run, or continue one from ``resume`` (a run folder, its ``checkpoints/`` or a
    ``step-N.safetensors``); returns where it stopped. ``on_step`` is called after every optimiser
    step on every rank. ``config.run.out`` receives checkpoints, ``config.yaml``, ``metrics.jsonl``,
    ``samples/``, ``tensorboard/`` and, when the run completes, ``final.safetensors``.

    Under torchrun (``WORLD_SIZE`` > 1) joins the process group, trains with DDP and leaves it again.
    """
    threads = torch.get_num_threads()
    if config.run.threads:
        torch.set_num_threads(config.run.threads)
    info = init_distributed(config.run.device)
    try:
        trainer = Trainer(config, info, on_step=on_step, show_progress=show_progress, resume=resume)
        return trainer.run()
    finally:
        cleanup(info)
        torch.set_num_threads(threads)


__all__ = ["train", "Trainer", "TrainResult", "StepInfo", "TrainingStep", "check_data_root", "format_losses"]
