"""The tiny preset overfits one real clip: the training loss must fall by at least half."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from scorr_cli.train.config import resolve_config
from scorr_cli.train.trainer import train

REAL_CLIP = "dreamtalk_M030_front_happy_level3_001.mp4"
STEPS = 100


@pytest.mark.slow
def test_tiny_model_overfits_one_real_clip(tmp_path: Path, faces_media: Path):
    root = tmp_path / "data"
    (root / "train").mkdir(parents=True)
    (root / "train" / REAL_CLIP).symlink_to(faces_media / "driving" / REAL_CLIP)
    (root / "test").mkdir()
    (root / "test" / REAL_CLIP).symlink_to(faces_media / "driving" / REAL_CLIP)
    no_aug = {"time_flip": 0, "horizontal_flip": 0, "brightness": 0, "contrast": 0, "saturation": 0, "hue": 0}
    cfg = resolve_config(str(root), preset="tiny", overrides={
        "run": {"out": str(tmp_path / "run"), "log_every": 1, "sample_every": 50, "checkpoint_every": 0,
                "eval_clips": 1, "eval_frames": 8, "threads": 1},
        # 64² frames of the real clip, batch 4, 25 steps per epoch; constant lr (no decay within 4 epochs)
        "schedule": {"batch_size": 4, "max_steps": STEPS, "epochs": 100, "lr": 5e-4, "milestones": []},
        "data": {"num_repeats": 100, "augment": no_aug},
        # pixel L1 + SSIM pyramid (offline) + keypoint/jacobian equivariance
        "loss": {"perceptual_backend": "none"},
    })
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = train(cfg, show_progress=False)
    finally:
        torch.set_num_threads(threads)
    assert result.step == STEPS
    totals = [h["total"] for h in result.history]
    assert len(totals) == STEPS
    start = sum(totals[:3]) / 3
    end = sum(totals[-10:]) / 10
    print(f"overfit: total loss {start:.3f} -> {end:.3f}; pixel {result.history[0]['pixel']:.3f} -> "
          f"{result.history[-1]['pixel']:.3f}; test L1 per epoch {[round(x, 4) for x in result.eval_l1]}")
    assert end <= 0.5 * start, f"loss fell only from {start:.3f} to {end:.3f}"
    # the reconstruction itself improved, not just the equivariance terms
    first, last = result.history[0], result.history[-1]
    assert last["pixel"] < 0.5 * first["pixel"] and last["ssim"] < 0.5 * first["ssim"]
    # and the per-epoch test L1 on the clip went down across the 4 epochs
    assert len(result.eval_l1) == 4 and result.eval_l1[-1] < result.eval_l1[0]
    assert sorted(p.name for p in (tmp_path / "run" / "samples").glob("*.png")) == \
        ["step-00000050.png", "step-00000100.png"]
