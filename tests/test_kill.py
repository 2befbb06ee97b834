"""Kill tests: SIGKILL at seeded random moments of animate, batch and train, then run again.

Nothing finished is lost or redone (outputs recorded done keep their bytes and times), nothing is left
behind (no hidden temp file), and a resumed training run ends where an uninterrupted one does."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from scorr_cli.media import probe_video, write_image
from scorr_cli.media.testing import make_test_video, synthetic_frame

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
pytestmark = pytest.mark.slow


def _scorr(*args: object) -> list[str]:
    return [sys.executable, "-m", "scorr_cli", *map(str, args)]


def _kill_after(cmd: list[str], seconds: float) -> int:
    """Start ``cmd``, SIGKILL it after ``seconds`` (if still running); its exit code."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return proc.returncode


def _hidden(root: Path) -> list[str]:
    """Temp files and folders under ``root`` (``.NAME.PID.RANDOM.part|audio|old...``)."""
    from scorr_cli.fsutil import _TEMP_NAME

    return sorted(str(p.relative_to(root)) for p in root.rglob(".*") if _TEMP_NAME.match(p.name))


def test_animate_killed_anywhere_then_rerun(tiny_ckpt, tmp_path):
    out = tmp_path / "out" / "o.mp4"
    cmd = _scorr("animate", EXAMPLES / "source.png", EXAMPLES / "driving.mp4", "-o", out, "-c", tiny_ckpt,
                 "--no-crop", "--size", "64", "--max-frames", "40", "--batch-size", "2")
    rng = random.Random(13)
    for _ in range(3):
        code = _kill_after(cmd + ["--force"], rng.uniform(2.0, 12.0))
        assert code in (0, -signal.SIGKILL)
    subprocess.run(cmd + ["--force"], check=True, capture_output=True)
    assert probe_video(out).n_frames == 40
    assert _hidden(out.parent) == []  # the killed runs' temp files went with the next write


def test_batch_killed_anywhere_loses_and_redoes_nothing(tiny_ckpt, tmp_path):
    from scorr_cli.batch.state import DONE, merged_state

    inputs = tmp_path / "in"
    inputs.mkdir()
    rows = []
    for i in range(3):
        write_image(inputs / f"s{i}.png", synthetic_frame(5 * i + 1, (80, 80)))
        make_test_video(inputs / f"d{i}.mp4", 3, size=(64, 64))
        rows += [(f"s{i}.png", f"d{j}.mp4") for j in range(2)]
    jobs = inputs / "jobs.csv"
    jobs.write_text("source,driving\n" + "".join(f"{inputs / s},{inputs / d}\n" for s, d in rows))
    out = tmp_path / "out"
    cmd = _scorr("batch", jobs, "-o", out, "-c", tiny_ckpt, "--no-crop", "--device", "cpu")
    rng = random.Random(7)
    finished: dict[str, int] = {}
    for _ in range(4):
        _kill_after(cmd, rng.uniform(3.0, 10.0))
        for key, rec in merged_state(out).items():
            if rec.status == DONE:
                finished.setdefault(key, (out / key).stat().st_mtime_ns)
    subprocess.run(cmd, check=True, capture_output=True)
    records = merged_state(out)
    assert len(records) == len(rows) and all(r.status == DONE for r in records.values())
    for key in records:
        assert probe_video(out / key).n_frames == 3
    for key, mtime in finished.items():  # done before a kill: never written again
        assert (out / key).stat().st_mtime_ns == mtime, key
    assert _hidden(out) == []


def test_train_killed_then_resumed_ends_where_a_straight_run_does(tmp_path):
    from scorr_cli.checkpoints import read_checkpoint

    clip = tmp_path / "data" / "train" / "c"
    clip.mkdir(parents=True)
    for i in range(6):
        write_image(clip / f"{i}.png", synthetic_frame(i, (64, 64)))
    cfg = tmp_path / "run.yaml"
    cfg.write_text("run: {checkpoint_every: 1, keep: 0, sample_every: 0, eval_clips: 0, num_workers: 0, threads: 1}\n"
                   "schedule: {batch_size: 2, max_steps: 5}\ndata: {num_repeats: 4}\n"
                   "loss: {perceptual_backend: none}\n")
    base = ("train", "--data", tmp_path / "data", "--preset", "tiny", "--config", cfg, "-q")
    subprocess.run(_scorr(*base, "--out", tmp_path / "straight"), check=True, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_scorr(*base, "--out", killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    while not (killed / "checkpoints" / "step-00000002.state.safetensors").exists() and proc.poll() is None:
        assert time.monotonic() - t0 < 300
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    subprocess.run(_scorr("train", "--resume", killed, "-q"), check=True, capture_output=True)
    a = read_checkpoint(tmp_path / "straight" / "final.safetensors")
    b = read_checkpoint(killed / "final.safetensors")
    for k in a.state:
        torch.testing.assert_close(a.state[k], b.state[k], rtol=0, atol=1e-6, msg=k)
    assert _hidden(killed) == []
