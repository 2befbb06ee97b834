"""scorr train: configuration, training state, sampler, resume equivalence, CLI errors and help."""

from __future__ import annotations

import json
import os
import re
import signal
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from scorr_cli.checkpoints.store import read_checkpoint
from scorr_cli.cli import app
from scorr_cli.errors import CheckpointError, InputError
from scorr_cli.train import state as st
from scorr_cli.train.config import TrainConfig, resolve_config, train_preset
from scorr_cli.train.distributed import ResumableDistributedSampler
from scorr_cli.train.trainer import train

REAL_CLIP = "dreamtalk_M030_front_happy_level3_001.mp4"
TEST_CLIP = "dreamtalk_W011_front_sad_level3_001.mp4"


@pytest.fixture
def one_thread():
    """A single CPU thread: far faster than two on a busy 2-core machine (and deterministic)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def clip_root(tmp_path: Path, faces_media: Path) -> Path:
    """A dataset root with one real training clip and one real test clip (symlinks)."""
    root = tmp_path / "data"
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    (root / "train" / REAL_CLIP).symlink_to(faces_media / "driving" / REAL_CLIP)
    (root / "test" / TEST_CLIP).symlink_to(faces_media / "driving" / TEST_CLIP)
    return root


def tiny_config(root: Path, out: Path, **schedule: object) -> TrainConfig:
    return resolve_config(str(root), preset="tiny", overrides={
        "run": {"out": str(out), "log_every": 1, "sample_every": 2, "checkpoint_every": 2, "keep": 2,
                "eval_clips": 1, "eval_frames": 4, "threads": 1},
        "schedule": {"batch_size": 2, "max_steps": 6, **schedule},
        "data": {"num_repeats": 4},  # 4 items, 2 steps per epoch: 6 steps cross two epoch ends
        "loss": {"perceptual_backend": "none"},
    })


def ctrl_c_at(step: int):
    """An ``on_step`` callback that presses Ctrl-C after optimiser step ``step``: the trainer finishes the
    step, saves a checkpoint and stops (interrupted), as a user's Ctrl-C would."""

    def on_step(info) -> None:
        if info.step == step:
            os.kill(os.getpid(), signal.SIGINT)

    return on_step


# ----------------------------------------------------------------------------------- config
def test_presets_follow_the_recipe():
    vox = train_preset("vox")
    assert vox.schedule.epochs == 100 and vox.schedule.milestones == (60, 90) and vox.schedule.gamma == 0.1
    assert vox.schedule.lr == 2e-4 and vox.schedule.betas == (0.5, 0.999) and vox.schedule.batch_size == 80
    assert vox.data.num_repeats == 150 and vox.data.id_sampling and not vox.model.background
    assert vox.schedule.grad_clip == 10 and vox.schedule.clip_scope == "all"
    cel = train_preset("celebvhq")
    assert cel.data.num_repeats == 5 and cel.data.split_len == 11 and cel.model.background and cel.schedule.bg_start == 0
    tpsm = train_preset("vox", "tpsm")
    assert tpsm.schedule.milestones == (70, 90) and tpsm.loss.equivariance_jacobian == 0
    assert train_preset("tiny").model.image_size == 64 and train_preset("lite").model.image_size == 256


def test_resolve_layers_and_yaml_round_trip(tmp_path: Path):
    cfg = resolve_config("vox")
    assert cfg.data_name == "vox" and cfg.data_root == "data/voxceleb1-png" and cfg.preset == "vox"
    cfg = resolve_config("celebvhq", preset="lite")
    assert cfg.preset == "lite" and cfg.data.split_len == 11 and cfg.data_root == "data/celebvhq256-png"
    cfg = resolve_config(str(tmp_path), preset="tiny", overrides={"model": {"prior": "tpsm"}})
    assert cfg.data_name == "custom" and cfg.model.prior == "tpsm" and cfg.loss.equivariance_jacobian == 0
    assert cfg.schedule.milestones == (7, 9)
    # --config YAML below CLI overrides; unknown keys are one-line errors
    yml = tmp_path / "c.yaml"
    yml.write_text("schedule: {lr: 1.0e-3, epochs: 7}\nrun: {keep: 9}\n")
    cfg = resolve_config("vox", config_file=yml, overrides={"schedule": {"epochs": 3}})
    assert cfg.schedule.lr == 1e-3 and cfg.schedule.epochs == 3 and cfg.run.keep == 9
    again = TrainConfig.from_dict(__import__("yaml").safe_load(cfg.to_yaml()))
    assert again.to_dict() == cfg.to_dict()
    # a reused run's config.yaml names its dataset; --data on the command line wins over it, and the file's
    # root stays when --data is not given
    yml.write_text(f"data_name: custom\ndata_root: {tmp_path / 'old'}\n")
    assert resolve_config(str(tmp_path / "new"), config_file=yml).data_root == str(tmp_path / "new")
    assert resolve_config("vox", config_file=yml).data_root == "data/voxceleb1-png"
    assert resolve_config(None, config_file=yml).data_root == str(tmp_path / "old")
    yml.write_text("schedule: {lrr: 1}\n")
    with pytest.raises(InputError, match="unknown training config key schedule.'lrr'"):
        resolve_config("vox", config_file=yml)
    # perceptual 'none' alone turns the pixel and SSIM terms on
    cfg = resolve_config("vox", overrides={"loss": {"perceptual_backend": "none"}})
    assert cfg.loss.pixel == 10 and cfg.loss.ssim == 10


# ----------------------------------------------------------------------------------- state
def test_training_state_round_trip_without_pickle(tmp_path: Path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    opt = torch.optim.Adam([{"params": model[0].parameters(), "name": "a"},
                            {"params": model[1].parameters(), "name": "b"}], lr=1e-2, betas=(0.5, 0.999))
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [2, 4], 0.1)
    for _ in range(3):
        model(torch.randn(5, 3)).sum().backward()
        opt.step()
        sched.step()
    rng = st.capture_rng()
    path = st.save_training_state(tmp_path / "s.state.safetensors", optimizer=opt, scheduler=sched,
                                  scalars={"epoch": 3, "step": 30, "samples_in_epoch": 8}, rng=rng)
    ts = st.load_training_state(path)
    assert ts.scalars == {"epoch": 3, "step": 30, "samples_in_epoch": 8}
    opt2 = torch.optim.Adam([{"params": model[0].parameters(), "name": "a"},
                             {"params": model[1].parameters(), "name": "b"}], lr=1.0)
    sched2 = torch.optim.lr_scheduler.MultiStepLR(opt2, [2, 4], 0.1)
    opt2.load_state_dict(ts.optimizer)
    sched2.load_state_dict(ts.scheduler)
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for pid in a["state"]:
        for k in a["state"][pid]:
            assert torch.equal(torch.as_tensor(a["state"][pid][k]), torch.as_tensor(b["state"][pid][k]))
    assert sched2.last_epoch == 3 and sched2.milestones == Counter([2, 4]) and sched2.get_last_lr() == sched.get_last_lr()
    # RNG: restoring reproduces the same draws of torch, numpy and python
    draws = (torch.rand(3), np.random.rand(3), __import__("random").random())
    st.restore_rng(ts.rng)
    assert torch.equal(torch.rand(3), draws[0]) and np.array_equal(np.random.rand(3), draws[1])
    assert __import__("random").random() == draws[2]
    (tmp_path / "bad.state.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError):
        st.load_training_state(tmp_path / "bad.state.safetensors")


def test_sampler_resumes_mid_epoch_and_shards():
    full = ResumableDistributedSampler(22, global_batch=4, num_replicas=1, rank=0, seed=3)
    full.set_epoch(5)
    order = [i for _, i in full]
    assert len(order) == 20 and len(set(order)) == 20 and full.steps_per_epoch == 5
    full.set_epoch(5, start=8)
    assert [i for _, i in full] == order[8:]
    # two ranks after 8 samples: together exactly the remaining samples, disjoint, interleaved
    shards = []
    for r in range(2):
        s = ResumableDistributedSampler(22, global_batch=4, num_replicas=2, rank=r, seed=3)
        s.set_epoch(5, start=8)
        shards.append([i for e, i in s])
        assert all(e == 5 for e, _ in s) and len(s) == 6
    assert sorted(shards[0] + shards[1]) == sorted(order[8:]) and not set(shards[0]) & set(shards[1])


# ------------------------------------------------------------------------------ training
def test_resume_continues_identically(clip_root: Path, tmp_path: Path, one_thread):
    """6 steps straight == 3 steps, Ctrl-C (saves and stops), resume, 3 more steps."""
    straight = train(tiny_config(clip_root, tmp_path / "a"), show_progress=False)
    assert straight.step == 6 and straight.epoch == 3 and not straight.interrupted

    first = train(tiny_config(clip_root, tmp_path / "b"), on_step=ctrl_c_at(3), show_progress=False)
    assert first.interrupted and first.step == 3 and first.final is None
    assert first.checkpoint.name == "step-00000003.safetensors"
    second = train(tiny_config(clip_root, tmp_path / "b"), resume=tmp_path / "b", show_progress=False)
    assert second.step == 6 and not second.interrupted

    a = read_checkpoint(straight.final)
    b = read_checkpoint(second.final)
    assert a.state.keys() == b.state.keys()
    for k in a.state:
        torch.testing.assert_close(a.state[k], b.state[k], rtol=0, atol=1e-6, msg=k)
    # the resumed run continued the same loss curve
    assert [h["total"] for h in second.history] == pytest.approx([h["total"] for h in straight.history[3:]],
                                                                 rel=1e-6)

    # what a run leaves behind
    out = tmp_path / "b"
    assert (out / "config.yaml").is_file() and list((out / "samples").glob("step-*.png"))
    ckpts = st.list_checkpoints(out / "checkpoints")
    assert [s for s, _, _ in ckpts] == [4, 6]  # keep 2
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r["type"] == "step"]
    assert steps == [1, 2, 3, 4, 5, 6]  # no duplicates after the resume
    epochs = [r for r in records if r["type"] == "epoch"]
    assert len(epochs) == 3 and all(r["eval_l1"] is not None and 0 < r["eval_l1"] < 1 for r in epochs)
    meta = b.metadata
    assert meta["perceptual"] == "none" and meta["preset"] == "tiny" and meta["steps"] == 6 and meta["epoch"] == 3
    assert meta["data_root_name"] == "data" and meta["device"] == "cpu" and meta["wall_time_s"] > 0
    # a finished run is not restarted by accident
    with pytest.raises(Exception, match="already holds a training run"):
        train(tiny_config(clip_root, out), show_progress=False)


def test_accumulation_matches_full_batch(tmp_path: Path, one_thread, monkeypatch):
    """Batch 4 in one micro-batch vs 2 × 2 accumulated: the same gradient reaches the optimiser.

    Every item is the same frame pair (a still clip, no augmentation, no random warp), so BatchNorm sees
    the same statistics in either split and the two gradients must agree to rounding (the whole gradient
    vector; single biases in front of a BatchNorm have near-zero, noise-level gradients). A loss not
    divided by ``accum`` doubles them; a gradient cleared between micro-batches halves them."""
    from scorr_cli.media import write_image
    from scorr_cli.train import trainer as trainer_mod

    clip = tmp_path / "still" / "train" / "c"
    clip.mkdir(parents=True)
    frame = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    for i in range(2):
        write_image(clip / f"{i}.png", frame)
    grads: list[dict[str, torch.Tensor]] = []
    real_clip = trainer_mod.Trainer._clip

    def capture(self):
        grads.append({n: p.grad.detach().clone() for n, p in self.model.named_parameters() if p.grad is not None})
        real_clip(self)

    monkeypatch.setattr(trainer_mod.Trainer, "_clip", capture)
    off = {"time_flip": 0, "horizontal_flip": 0, "brightness": 0, "contrast": 0, "saturation": 0, "hue": 0}
    for name, accum in (("a", 1), ("b", 2)):
        cfg = resolve_config(str(tmp_path / "still"), preset="tiny", overrides={
            "run": {"out": str(tmp_path / name), "eval_clips": 0, "sample_every": 0, "threads": 1},
            "schedule": {"batch_size": 4, "accum": accum, "max_steps": 1},
            "data": {"num_repeats": 4, "augment": off},
            "loss": {"perceptual_backend": "none", "equivariance_value": 0, "equivariance_jacobian": 0}})
        train(cfg, show_progress=False)
    full, accumulated = grads
    assert full.keys() == accumulated.keys() and len(full) > 100
    a = torch.cat([accumulated[k].flatten() for k in full])
    f = torch.cat([full[k].flatten() for k in full])
    rel = float((a - f).norm() / f.norm())
    print(f"relative gradient difference {rel:.2e}")
    assert rel < 1e-3  # a scale error gives 0.5 or 1; a biased split far more than rounding


# ----------------------------------------------------------------------------------- CLI
runner = CliRunner()


def _cli(*args: str):
    return runner.invoke(app, ["train", *args])


def test_bad_data_roots_give_one_line_errors(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cases = []
    r = _cli("--data", "vox", "--preset", "tiny")
    cases.append((r, "dataset 'vox' not found at data/voxceleb1-png: pass --data-root PATH"))
    r = _cli("--data", str(tmp_path / "missing"), "--preset", "tiny")
    cases.append((r, "does not exist"))
    (tmp_path / "empty").mkdir()
    r = _cli("--data", str(tmp_path / "empty"), "--preset", "tiny")
    cases.append((r, "has no train/ folder"))
    (tmp_path / "noclips" / "train").mkdir(parents=True)
    r = _cli("--data", str(tmp_path / "noclips"), "--preset", "tiny")
    cases.append((r, "holds no clips"))
    short = tmp_path / "short" / "train" / "clip1"
    short.mkdir(parents=True)
    import cv2
    cv2.imwrite(str(short / "0.png"), np.zeros((64, 64, 3), np.uint8))
    r = _cli("--data", str(tmp_path / "short"), "--preset", "tiny")
    cases.append((r, "has 1 frame(s); at least 2 are needed"))
    cv2.imwrite(str(short / "1.png"), np.zeros((64, 64, 3), np.uint8))
    r = _cli("--data", str(tmp_path / "short"), "--preset", "tiny", "--batch-size", "8")
    cases.append((r, "fewer than one batch of 8"))
    r = _cli("--data", str(tmp_path / "short"), "--preset", "tiny", "--config", str(tmp_path / "nope.yaml"))
    cases.append((r, "training config"))
    r = _cli("--preset", "tiny")
    cases.append((r, "--data is required"))
    for result, message in cases:
        assert result.exit_code == 2, (message, result.output)
        lines = [ln for ln in result.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("scorr: error: "), result.output
        assert message in lines[0], (message, lines[0])


def test_missing_vgg_weights_is_a_one_line_error(tmp_path: Path):
    clip = tmp_path / "d" / "train" / "c"
    clip.mkdir(parents=True)
    import cv2
    for k in range(2):
        cv2.imwrite(str(clip / f"{k}.png"), np.zeros((64, 64, 3), np.uint8))
    r = _cli("--data", str(tmp_path / "d"), "--preset", "tiny", "--perceptual", "vgg19", "--batch-size", "1",
             "--vgg-weights", str(tmp_path / "vgg.pth"), "--out", str(tmp_path / "o"))
    assert r.exit_code == 4 and "VGG-19 ImageNet weights not found" in r.output and "--perceptual random" in r.output


def test_help_documents_every_option():
    r = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    text = re.sub(r"\s+", " ", r.output)
    for opt in ("--data", "--data-root", "--preset", "--model-preset", "--prior", "--prior-only", "--ablation",
                "--corr-levels", "--corr-radius", "--config", "--out", "--resume", "--epochs", "--max-steps",
                "--batch-size", "--accum", "--lr", "--num-workers", "--device", "--precision", "--perceptual",
                "--vgg-weights", "--landmarks", "--checkpoint-every", "--keep", "--sample-every", "--seed", "--threads"):
        assert opt in text, opt
    assert "torchrun" in text and "global" in text


def test_cli_trains_and_resumes(clip_root: Path, tmp_path: Path, one_thread):
    out = tmp_path / "run"
    common = ["--threads", "1", "-q"]
    r = _cli("--data", str(clip_root), "--preset", "tiny", "--perceptual", "none", "--batch-size", "2",
             "--max-steps", "1", "--out", str(out), "--ablation", "no-flow-update", "--corr-radius", "2", *common)
    assert r.exit_code == 0, r.output
    ckpt = read_checkpoint(out / "final.safetensors")
    assert ckpt.config.refiner.flow_update is False and ckpt.config.refiner.corr_radius == 2
    # --resume alone picks up the run's config.yaml and folder
    r = _cli("--resume", str(out), "--max-steps", "2", *common)
    assert r.exit_code == 0, r.output
    assert read_checkpoint(out / "final.safetensors").metadata["steps"] == 2
    # --init: fine-tuning starts from those weights (0 steps: the final weights are exactly them)
    r = _cli("--data", str(clip_root), "--preset", "tiny", "--perceptual", "none", "--batch-size", "2",
             "--max-steps", "0", "--init", str(out / "final.safetensors"), "--out", str(tmp_path / "ft"),
             "--ablation", "no-flow-update", "--corr-radius", "2", *common)
    assert r.exit_code == 0, r.output
    a, b = read_checkpoint(out / "final.safetensors"), read_checkpoint(tmp_path / "ft" / "final.safetensors")
    assert a.state.keys() == b.state.keys() and all(torch.equal(a.state[k], b.state[k]) for k in a.state)
    # Published metadata names folders, never the training machine's paths.
    assert b.metadata["steps"] == 0 and b.metadata["steps_total"] == 2  # the init's training counts
    published = b.metadata["train_config"]
    assert published["data_root"] == clip_root.name and published["run"]["init"] == "final.safetensors"
    assert str(tmp_path) not in json.dumps(b.metadata)
    # Resuming the fine-tuning run keeps counting on top of the init's steps.
    r = _cli("--resume", str(tmp_path / "ft"), "--max-steps", "1", *common)
    assert r.exit_code == 0, r.output
    assert read_checkpoint(tmp_path / "ft" / "final.safetensors").metadata["steps_total"] == 3
    r = _cli("--resume", str(tmp_path / "nothing"), *common)
    assert r.exit_code == 2 and "no such file or folder" in r.output


def test_every_train_option_lands_in_the_configuration(tmp_path: Path):
    """Each keyed option of TrainOptions (declared once, the CLI is built from it) overrides a real key of the
    resolved configuration: a typo in a key, or an option that silently goes nowhere, fails here."""
    import dataclasses

    from scorr_cli.options import option_fields
    from scorr_cli.train.config import resolve_config
    from scorr_cli.train.options import TrainOptions

    values = {"prior": "tpsm", "device": "cpu", "precision": "bf16", "perceptual": "none", "prior_only": True,
              "mouth_pairs": 1, "freeze": ["decoder"]}  # motion_pairs gets 7: the pair draws may not both be > 1
    given = {}
    for f in option_fields(TrainOptions):
        if not f.metadata.get("key"):
            continue
        hint = str(f.type)
        given[f.name] = values.get(f.name, tmp_path / f.name if "Path" in hint else
                                   (7 if "int" in hint else 0.25 if "float" in hint else True))
    options = TrainOptions(data="vox", ablation=["no-flow-update"], **given)
    options.check()
    tree = resolve_config(options.data, preset="tiny", overrides=options.overrides()).to_dict()
    for f in option_fields(TrainOptions):
        keys = f.metadata.get("key")
        for dotted in ((keys,) if isinstance(keys, str) else keys or ()):
            node = tree
            for part in dotted.split("."):
                node = node[part]
            want = given[f.name]
            node = list(node) if isinstance(node, tuple) else node  # a repeatable option's values
            assert node == (str(want) if isinstance(want, Path) else want), (f.name, dotted, node)
    assert tree["model"]["refiner"]["flow_update"] is False
    assert dataclasses.replace(options, seed=None).overrides()["run"].get("seed") is None
    # mouth_pairs sat at its default above (beside motion_pairs 7); on its own it lands too
    alone = TrainOptions(data="vox", mouth_pairs=7)
    assert resolve_config(alone.data, preset="tiny", overrides=alone.overrides()).data.mouth_pairs == 7


def test_cpu_budget_stops_with_a_checkpoint_and_resumes(clip_root: Path, tmp_path: Path, one_thread):
    """--max-cpu-minutes: equal-CPU-time ablations. A budget smaller than one step's CPU time stops after the
    first step with a resumable checkpoint (no final weights); a larger budget on --resume goes on from it,
    counting the CPU time already spent."""
    out = tmp_path / "run"
    common = ["--threads", "1", "-q"]
    r = _cli("--data", str(clip_root), "--preset", "tiny", "--perceptual", "none", "--batch-size", "2",
             "--max-steps", "4", "--max-cpu-minutes", "0.0001", "--out", str(out), *common)
    assert r.exit_code == 0, r.output
    assert not (out / "final.safetensors").exists()
    (first,) = sorted((out / "checkpoints").glob("step-*[0-9].safetensors"))
    assert first.name == "step-00000001.safetensors"
    spent = st.load_training_state(st.state_path_for(first)).scalars["cpu_time"]
    assert 0.006 <= spent < 60
    r = _cli("--resume", str(out), "--max-cpu-minutes", "10", *common)
    assert r.exit_code == 0, r.output
    assert read_checkpoint(out / "final.safetensors").metadata["steps"] == 4


# ------------------------------------------------------------------------------ weight average
def test_weight_average_follows_the_ema_formula_and_swaps_back():
    """update(): avg ← d·avg + (1 − d)·w with d = min(decay, (1 + n)/(10 + n)); integer buffers copied;
    applied_to() lends the model the average and gives its own weights back."""
    from scorr_cli.train.ema import WeightAverage

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    average = WeightAverage(model, decay=0.9)
    expect = model[0].weight.detach().clone()
    for n in range(4):
        with torch.no_grad():
            model[0].weight.add_(1.0)
        model(torch.randn(3, 2))  # BatchNorm counts a batch
        d = min(0.9, (1 + n) / (10 + n))
        expect = d * expect + (1 - d) * model[0].weight.detach()
        average.update(model)
    torch.testing.assert_close(average.average["0.weight"], expect, rtol=0, atol=1e-6)
    assert int(average.average["1.num_batches_tracked"]) == 4 and average.updates == 4
    own = model[0].weight.detach().clone()
    with average.applied_to(model) as m:
        torch.testing.assert_close(m[0].weight, expect, rtol=0, atol=1e-6)
    assert torch.equal(model[0].weight, own)
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(model, decay=1.0)


def test_learning_rate_warm_up_scales_the_first_full_steps_and_resumes_exactly(clip_root: Path, tmp_path: Path,
                                                                                one_thread):
    """schedule.lr_warmup_steps: Adam's first step moves each weight by about the learning rate (its moment
    estimates start at zero), so with a 4-step ramp the first step moves the weights a quarter as far; the
    logged rate ramps, and a run interrupted inside the ramp resumes to the same weights."""
    from scorr_cli.core.model import MRFA

    cfg = tiny_config(clip_root, tmp_path / "ramp", lr_warmup_steps=4)
    assert [cfg.schedule.lr_factor(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    cfg.schedule.keypoint_warmup_steps = 2  # the ramp starts with the full phase
    assert [cfg.schedule.lr_factor(s) for s in range(4)] == [1.0, 1.0, 0.25, 0.5]
    lr = cfg.schedule.lr

    def first_step_move(**schedule: object) -> float:
        config = tiny_config(clip_root, tmp_path / f"one{len(schedule)}", max_steps=1, **schedule)
        torch.manual_seed(config.run.seed)
        start = dict(MRFA(config.model).named_parameters())  # the run's seeded initialisation
        trained = dict(train(config, show_progress=False).model.named_parameters())
        return max(float((trained[k].detach().cpu() - start[k].detach()).abs().max()) for k in start)

    assert first_step_move() == pytest.approx(lr, rel=0.05)
    assert first_step_move(lr_warmup_steps=4) == pytest.approx(lr / 4, rel=0.05)

    straight = train(tiny_config(clip_root, tmp_path / "a", lr_warmup_steps=4), show_progress=False)
    assert [h["lr"] for h in straight.history] == pytest.approx([lr / 4, lr / 2, 3 * lr / 4, lr, lr, lr])

    train(tiny_config(clip_root, tmp_path / "b", lr_warmup_steps=4), on_step=ctrl_c_at(2), show_progress=False)
    second = train(tiny_config(clip_root, tmp_path / "b", lr_warmup_steps=4), resume=tmp_path / "b",
                   show_progress=False)
    assert [h["lr"] for h in second.history] == pytest.approx([3 * lr / 4, lr, lr, lr])
    a, b = read_checkpoint(straight.final), read_checkpoint(second.final)
    for k in a.state:
        torch.testing.assert_close(a.state[k], b.state[k], rtol=0, atol=1e-6, msg=k)


def test_weight_average_is_saved_and_resumed_exactly(clip_root: Path, tmp_path: Path, one_thread):
    """schedule.ema_decay: checkpoints hold the average, the state file the optimiser's weights; a run
    interrupted and resumed ends with the same average and the same weights as one run straight through."""
    straight = train(tiny_config(clip_root, tmp_path / "a", ema_decay=0.5), show_progress=False)

    train(tiny_config(clip_root, tmp_path / "b", ema_decay=0.5), on_step=ctrl_c_at(3), show_progress=False)
    second = train(tiny_config(clip_root, tmp_path / "b", ema_decay=0.5), resume=tmp_path / "b",
                   show_progress=False)
    a, b = read_checkpoint(straight.final), read_checkpoint(second.final)
    for k in a.state:
        torch.testing.assert_close(a.state[k], b.state[k], rtol=0, atol=1e-6, msg=k)
    trained_a, trained_b = straight.model.state_dict(), second.model.state_dict()
    for k in trained_a:
        torch.testing.assert_close(trained_a[k], trained_b[k], rtol=0, atol=1e-6, msg=k)
    # the checkpoint is the average, not the trained weights; the state file keeps those
    k = "encoder.kp_head.weight" if "encoder.kp_head.weight" in a.state else next(
        n for n in a.state if n.endswith("weight") and a.state[n].dim() == 4)
    assert not torch.allclose(a.state[k], trained_a[k].cpu())
    _, model_file, state_file = st.list_checkpoints(tmp_path / "b" / "checkpoints")[-1]
    ts = st.load_training_state(state_file)
    assert ts.scalars["ema_updates"] == 6
    torch.testing.assert_close(ts.weights[k], trained_b[k].cpu(), rtol=0, atol=0)
    # switched off at a resume, the run goes on from the trained weights
    off = train(tiny_config(clip_root, tmp_path / "b", ema_decay=0.0, max_steps=7), resume=tmp_path / "b",
                show_progress=False)
    assert off.step == 7 and "ema_updates" not in st.load_training_state(
        st.list_checkpoints(tmp_path / "b" / "checkpoints")[-1][2]).scalars


def test_frozen_parts_keep_their_weights_and_statistics(clip_root: Path, tmp_path: Path, one_thread):
    """schedule.frozen (--freeze): a continuation with the prior held fixed leaves every entry of the keypoint
    network's and the prior dense motion's state (weights and BatchNorm running statistics) as --init gave
    it, gives those parts no optimiser state, and still trains the refinement and generator."""
    cfg = tiny_config(clip_root, tmp_path / "start", max_steps=2)
    start = read_checkpoint(train(cfg, show_progress=False).final)
    run = tiny_config(clip_root, tmp_path / "frozen", max_steps=3, frozen=["encoder", "dense_motion"])
    run.run.init = str(tmp_path / "start" / "checkpoints" / "step-00000002.safetensors")
    result = train(run, show_progress=False)
    after = read_checkpoint(result.final)
    prior = [k for k in start.state if k.startswith(("encoder.", "dense_motion."))]
    assert any("running_mean" in k for k in prior)  # the statistics a training-mode BatchNorm would move
    for k in prior:
        assert torch.equal(after.state[k], start.state[k]), k
    moved = [k for k in start.state if k.startswith("decoder.") and not torch.equal(after.state[k], start.state[k])]
    assert len(moved) > 10
    state = st.load_training_state(st.state_path_for(result.checkpoint))
    assert [g["name"] for g in state.optimizer["param_groups"]] == ["decoder"]
    assert not any(p.requires_grad for p in result.model.encoder.parameters())
    # after the epoch-end evaluations the run is back in training mode, all but the frozen parts
    assert result.model.decoder.training and not result.model.encoder.training
    assert not result.model.dense_motion.training

    with pytest.raises(InputError, match="unknown model part 'prior'"):
        tiny_config(clip_root, tmp_path / "x", frozen=["prior"])
    with pytest.raises(InputError, match="nothing would train"):
        tiny_config(clip_root, tmp_path / "x", frozen=["encoder", "dense_motion", "decoder"])
    with pytest.raises(InputError, match="keypoint network"):
        tiny_config(clip_root, tmp_path / "x", frozen=["encoder"], keypoint_warmup_steps=2)
