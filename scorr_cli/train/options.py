"""What ``scorr train`` can be told, declared once: each option's default, help text, spelling and its
place in the configuration tree (``key``); :meth:`TrainOptions.overrides` turns the options given
into the partial tree that :func:`scorr_cli.train.config.resolve_config` layers over the preset and
``--config`` file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional

from scorr_cli.choices import PERCEPTUAL_BACKENDS, PRIORS, TRAIN_PRECISIONS, one_of
from scorr_cli.errors import InputError
from scorr_cli.options import option, option_fields

# --ablation NAME -> the refiner switch it turns off (docs/ARCHITECTURE.md: the paper's ablations).
ABLATIONS: dict[str, str] = {
    "no-occlusion-update": "occlusion_update",
    "no-flow-update": "flow_update",
    "no-warped-source-feature": "warped_source_feature",
    "no-source-image": "source_image",
}


@dataclass
class TrainOptions:
    """Every ``scorr train`` option; None means "not given": the preset or ``--config`` value stays."""

    data: Optional[str] = option(
        None, "Dataset: 'vox' or 'celebvhq' select that preset (model + schedule) and its default root "
              "(data/voxceleb1-png, data/celebvhq256-png); a PATH is a dataset root trained with the 'vox' "
              "preset unless --preset says otherwise. Required unless --resume.",
        "--data", "-d", metavar="vox|celebvhq|PATH")
    data_root: Optional[Path] = option(
        None, "Dataset root for a named --data (overrides the default location).", key="data_root")
    preset: Optional[str] = option(
        None, "Training preset: model size + schedule. vox/celebvhq: the authors' recipes (100 epochs, batch 80); "
              "lite: a narrow 256² model (60 epochs, batch 16); tiny: a 64² smoke-test model.",
        "--preset", "--model-preset", metavar="vox|celebvhq|lite|tiny")
    prior: Optional[str] = option(
        None, "Prior motion model (tpsm: no jacobian loss, LR milestones [70, 90], TPS dropout).",
        metavar="|".join(PRIORS), key="model.prior")
    prior_only: Optional[bool] = option(
        None, "Train the prior-only baseline (no refinement network).", "--prior-only/--refine",
        key="model.refiner.prior_only")
    ablation: Optional[List[str]] = option(
        None, "Switch off part of the refinement (repeatable): " + ", ".join(ABLATIONS) + ".", metavar="NAME")
    corr_levels: Optional[int] = option(None, "Correlation pyramid levels (default 2).", min=1,
                                        key="model.refiner.corr_levels")
    corr_radius: Optional[int] = option(None, "Correlation lookup radius r, window (2r+1)² (default 3).", min=0,
                                        key="model.refiner.corr_radius")
    config: Optional[Path] = option(
        None, "YAML file overriding any part of the configuration (see the saved config.yaml of a run for every "
              "key); command-line options win over it.", "--config", "-c")
    out: Optional[Path] = option(
        None, "Run folder for checkpoints, logs and samples (default: runs/train, or the resumed run's folder).",
        "--out", "-o", key="run.out")
    resume: Optional[Path] = option(
        None, "Continue a run: its folder, its checkpoints/ folder or a step-N.safetensors. Restores weights, "
              "optimiser, scheduler, epoch/step, sampler position and RNG; uses the run's config.yaml unless "
              "--config is given.")
    init: Optional[Path] = option(
        None, "Fine-tune: start from this scorr checkpoint's weights (tensors whose name and shape match), with a "
              "fresh optimiser and schedule. Not a resume.", key="run.init")
    epochs: Optional[int] = option(None, "Number of epochs.", min=1, key="schedule.epochs")
    max_steps: Optional[int] = option(None, "Stop after this many optimiser steps in total (resumable).", min=0,
                                      key="schedule.max_steps")
    max_cpu_minutes: Optional[float] = option(
        None, "Stop (saving a checkpoint) once the training steps have used this much CPU time, summed over "
              "resumes: ablations at equal CPU time on a busy machine. Resume with a larger budget to go on.",
        min=0.0, key="schedule.max_cpu_minutes")
    batch_size: Optional[int] = option(
        None, "Global batch per optimiser step, summed over all GPUs/processes and --accum micro-batches.",
        "--batch-size", "-b", min=1, key="schedule.batch_size")
    accum: Optional[int] = option(None, "Gradient-accumulation micro-batches per step.", min=1, key="schedule.accum")
    lr: Optional[float] = option(None, "Adam learning rate (default 2e-4).", min=0.0, key="schedule.lr")
    ema_decay: Optional[float] = option(
        None, "Keep an exponential moving average of the weights with this decay (e.g. 0.99) and save it as "
              "the checkpoints (0: off, the paper's).", min=0.0, max=0.9999, key="schedule.ema_decay")
    freeze: Optional[List[str]] = option(
        None, "Hold this part of the model fixed for the whole run (repeatable): encoder (the keypoint network), "
              "dense_motion (the prior's dense motion), bg_predictor, decoder (refinement + generator). With "
              "--init, '--freeze encoder --freeze dense_motion' trains the refinement and generator on the "
              "keypoints and coarse motion the weights have.", metavar="PART", key="schedule.frozen")
    num_workers: Optional[int] = option(None, "Data-loader workers per process.", min=0, key="run.num_workers")
    device: Optional[str] = option(None, "Where to train (auto: CUDA if available).", metavar="auto|cpu|cuda",
                                   key="run.device")
    precision: Optional[str] = option(None, "fp32, or bf16 autocast (for CUDA GPUs with bf16).",
                                      metavar="|".join(TRAIN_PRECISIONS), key="run.precision")
    perceptual: Optional[str] = option(
        None, "Reconstruction loss: vgg19 (ImageNet VGG-19 perceptual pyramid, the paper's), random (a fixed "
              "random VGG-19: offline smoke tests), none (pixel L1 + SSIM pyramid only). Recorded in checkpoints.",
        metavar="|".join(PERCEPTUAL_BACKENDS), key="loss.perceptual_backend")
    landmarks: Optional[float] = option(
        None, "Landmark guidance (not in the paper): pull the 10 keypoints toward dlib landmark groups (eyes, "
              "brows, nose, lips, jaw, chin) with this weight; needs landmarks.npy from `scorr crop --dataset`. "
              "0 = the paper's losses (default).", min=0.0, metavar="WEIGHT", key="loss.landmarks")
    landmark_motion: Optional[float] = option(
        None, "Landmark motion guidance (not in the paper): pull each keypoint's driving − source displacement "
              "toward its landmark group's displacement with this weight (the size of a motion: mouth opening). "
              "0 = off (default).", min=0.0, metavar="WEIGHT", key="loss.landmark_motion")
    mouth: Optional[float] = option(
        None, "Lip-region loss (not in the paper): L1 + perceptual terms on a crop around the driving frame's "
              "lips with this weight; needs landmarks.npy. 0 = off (default).", min=0.0, metavar="WEIGHT",
        key="loss.mouth")
    landmark_flow: Optional[float] = option(
        None, "Landmark flow (not in the paper): the motion field must send each dlib landmark of the driving "
              "frame to the same landmark of the source, with this weight; needs landmarks.npy. 0 = off (default).",
        min=0.0, metavar="WEIGHT", key="loss.landmark_flow")
    lip_flow: Optional[float] = option(
        None, "Lip-shape flow (not in the paper): at the two finest flow levels, the 20 lip landmarks relative "
              "to the lips' centre must land on the source's, with this weight (the mouth's opening, head motion "
              "removed); needs landmarks.npy. 0 = off (default).", min=0.0, metavar="WEIGHT", key="loss.lip_flow")
    cross_flow: Optional[float] = option(
        None, "Cross-identity flow (not in the paper): drive each source with another batch item's motion, "
              "transferred as `scorr animate` does, and score the flow at the source's landmarks moved by that "
              "item's landmark motion, with this weight; needs landmarks.npy. 0 = off (default).", min=0.0,
        metavar="WEIGHT", key="loss.cross_flow")
    cross_lip_flow: Optional[float] = option(
        None, "Cross-identity lip shape (not in the paper): the lip-shape flow term on that transferred motion, "
              "with this weight; needs landmarks.npy. 0 = off (default).", min=0.0, metavar="WEIGHT",
        key="loss.cross_lip_flow")
    mouth_pairs: Optional[int] = option(
        None, "Draw N frame pairs per training item and keep the one whose mouth openings differ most "
              "(needs landmarks.npy; 1 = the paper's random pair).", min=1, metavar="N", key="data.mouth_pairs")
    motion_pairs: Optional[int] = option(
        None, "Draw N frame pairs per training item and keep the one whose face landmarks move most: more "
              "large head motions to learn from (needs landmarks.npy; 1 = the paper's random pair).", min=1,
        metavar="N", key="data.motion_pairs")
    vgg_weights: Optional[Path] = option(
        None, "ImageNet VGG-19 file (vgg19-dcbbe2e5.pth) (default: the torch hub cache).", key="run.vgg_weights")
    checkpoint_every: Optional[int] = option(
        None, "Save every N optimiser steps (always at each epoch end; 0: only there).", min=0,
        key="run.checkpoint_every")
    keep: Optional[int] = option(None, "Checkpoints to keep (0: all).", min=0, key="run.keep")
    sample_every: Optional[int] = option(None, "Write a sample grid every N steps (0: never).", min=0,
                                         key="run.sample_every")
    log_every: Optional[int] = option(None, "Steps between metrics.jsonl records / log lines.", min=1,
                                      key="run.log_every")
    threads: Optional[int] = option(
        None, "CPU threads per process (default: torch's; use 1 on a busy machine).", min=1, key="run.threads")
    seed: Optional[int] = option(None, "Seed for initialisation, data order and augmentation.",
                                 key=("run.seed", "data.seed"))
    quiet: bool = option(False, "No progress display.", "--quiet", "-q")

    def check(self) -> None:
        """The checks a configuration file cannot express: which options go together, valid names."""
        from scorr_cli.train.config import DATA_NAMES, MODULE_GROUPS, TRAIN_PRESETS

        if self.data is None and self.resume is None:
            raise InputError("--data is required (vox, celebvhq or a dataset folder), unless continuing with --resume")
        for flag, value, valid in (("--preset", self.preset, TRAIN_PRESETS), ("--prior", self.prior, PRIORS),
                                   ("--precision", self.precision, TRAIN_PRECISIONS),
                                   ("--perceptual", self.perceptual, PERCEPTUAL_BACKENDS),
                                   *(("--ablation", name, tuple(ABLATIONS)) for name in self.ablation or ()),
                                   *(("--freeze", name, MODULE_GROUPS) for name in self.freeze or ())):
            if value is not None and value not in valid:
                raise InputError(f"{flag} must be {one_of(valid)}, got {value!r}")
        if self.data_root is not None and self.data is not None and self.data not in DATA_NAMES:
            raise InputError("--data-root goes with --data vox|celebvhq; for your own dataset pass --data PATH")

    def overrides(self) -> dict[str, Any]:
        """The options given, as a partial configuration tree (paths as strings)."""
        tree: dict[str, Any] = {}
        given = [(f.metadata["key"], getattr(self, f.name)) for f in option_fields(type(self)) if f.metadata.get("key")]
        given += [(f"model.refiner.{ABLATIONS[name]}", False) for name in self.ablation or ()]
        for keys, value in given:
            if value is None:
                continue
            for dotted in (keys,) if isinstance(keys, str) else keys:
                *parents, leaf = dotted.split(".")
                node = tree
                for p in parents:
                    node = node.setdefault(p, {})
                node[leaf] = str(value) if isinstance(value, Path) else value
        return tree
