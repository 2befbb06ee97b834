"""Damaged inputs and killed runs (issue 13): refuse what is broken in one line, leave nothing behind,
never replace an input, and pick up what a killed run finished or left."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from scorr_cli.cli import app
from scorr_cli.media import probe_video, write_image
from scorr_cli.media._ffmpeg import ffmpeg_exe

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def truncated(tmp_path_factory) -> Path:
    """A faststart MP4 whose header says 7 s at 25 fps (175 frames), cut to its first half."""
    folder = tmp_path_factory.mktemp("damaged")
    full = folder / "full.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc=size=128x128:rate=25", "-t", "7",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(full)], check=True)
    cut = folder / "cut.mp4"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    return cut


def _cli(*args: object):
    r = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in r.output, r.output
    return r


def _one_line_error(r, code: int, *texts: str) -> None:
    assert r.exit_code == code, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scorr: error:"), r.output
    for t in texts:
        assert t in lines[0], r.output


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ---- damaged video ----------------------------------------------------------------------------------


def test_probe_reports_a_cut_file_with_its_declared_rate(truncated):
    info = probe_video(truncated)
    assert info.damage is not None and info.declared_frames == 175
    assert info.fps == Fraction(25)  # not packets over the span of what is left (that gave 150/7 or 24)
    assert 0 < info.n_frames < 175
    whole = probe_video(EXAMPLES / "driving.mp4")
    assert whole.damage is None and whole.declared_frames == whole.n_frames == 100


def test_animate_refuses_a_damaged_video_unless_told(truncated, tiny_ckpt, tmp_path):
    out = tmp_path / "out.mp4"
    n = probe_video(truncated).n_frames
    r = _cli("animate", EXAMPLES / "source.png", truncated, "-o", out, "-c", tiny_ckpt, "--no-crop")
    _one_line_error(r, 2, "cut.mp4: damaged video", f"fails at frame {n} of 175", "--accept-damaged")
    assert list(tmp_path.iterdir()) == []
    r = _cli("animate", EXAMPLES / "source.png", truncated, "-o", out, "-c", tiny_ckpt, "--no-crop", "--size", "64",
             "--accept-damaged")
    assert r.exit_code == 0, r.output
    info = probe_video(out)
    assert info.fps == Fraction(25) and 0 < info.n_frames <= n
    assert f"used its {info.n_frames} readable frame(s) of 175 declared" in r.output


def test_crop_refuses_a_damaged_video_and_leaves_no_folder(truncated, tmp_path):
    out = tmp_path / "crops" / "here"
    _one_line_error(_cli("crop", truncated, "-o", out, "--detector", "dlib"), 2, "cut.mp4: damaged video")
    assert not (tmp_path / "crops").exists()


def test_crop_dataset_where_every_video_fails_is_an_error(truncated, tmp_path):
    src = tmp_path / "videos"
    src.mkdir()
    (src / "cut.mp4").write_bytes(truncated.read_bytes())
    (src / "noise.mp4").write_bytes(os.urandom(5000))
    r = _cli("crop", src, "--dataset", tmp_path / "ds", "--detector", "dlib")
    assert r.exit_code == 2 and "no clip could be made" in r.output, r.output


# ---- outputs: inputs are never replaced, no folder left by a refused run --------------------------------


def test_animate_never_replaces_its_own_input(tiny_ckpt, tmp_path):
    drive = tmp_path / "drive.mp4"
    drive.write_bytes((EXAMPLES / "driving.mp4").read_bytes())
    before = drive.read_bytes()
    r = _cli("animate", EXAMPLES / "source.png", drive, "-o", drive, "--force", "-c", tiny_ckpt)
    _one_line_error(r, 3, "would replace the input")
    assert drive.read_bytes() == before
    src = tmp_path / "face.png"
    src.write_bytes((EXAMPLES / "source.png").read_bytes())
    r = _cli("animate", src, EXAMPLES / "driving.mp4", "-o", tmp_path / "." / "face.png", "--force", "-c", tiny_ckpt)
    assert r.exit_code != 0 and src.read_bytes() == (EXAMPLES / "source.png").read_bytes()


def test_evaluate_refused_leaves_no_output_folder(tmp_path):
    r = _cli("evaluate", "--baseline", "copy-source", "--data", tmp_path / "nothing", "-o", tmp_path / "a" / "b")
    _one_line_error(r, 2, "nothing")
    assert list(tmp_path.iterdir()) == []


def test_batch_output_folder_that_is_a_file(tmp_path):
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(f"source,driving\n{EXAMPLES / 'source.png'},{EXAMPLES / 'driving.mp4'}\n")
    taken = tmp_path / "taken"
    taken.write_text("mine")
    _one_line_error(_cli("batch", jobs, "-o", taken), 2, "taken: the output folder is an existing file")
    assert taken.read_text() == "mine"


# ---- killed runs ------------------------------------------------------------------------------------


def test_a_killed_writers_temp_file_is_removed_by_the_next_write(tmp_path):
    from scorr_cli.fsutil import atomic_path

    code = ("import os\nfrom scorr_cli.fsutil import atomic_path\n"
            f"with atomic_path({str(tmp_path / 'out.mp4')!r}) as t:\n"
            "    t.write_bytes(b'half'); os.kill(os.getpid(), 9)\n")
    subprocess.run([sys.executable, "-c", code], check=False)
    left = _hidden(tmp_path)
    assert len(left) == 1 and left[0].startswith(".out.") and left[0].endswith(".part.mp4")
    with atomic_path(tmp_path / "out.mp4") as t:
        assert _hidden(tmp_path) == [t.name]  # the dead run's file went; this run's own is there
        t.write_bytes(b"whole")
    assert _hidden(tmp_path) == [] and (tmp_path / "out.mp4").read_bytes() == b"whole"
    # a live writer's temp file is never touched
    with atomic_path(tmp_path / "x.mp4") as mine, atomic_path(tmp_path / "x.mp4") as other:
        assert mine.exists() and other.exists()
        mine.write_bytes(b"1")
        other.write_bytes(b"2")


def _wait_for(predicate, timeout: float = 120.0) -> None:
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("timed out")
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["animate", "batch"])
def test_sigterm_stops_like_ctrl_c(tiny_ckpt, tmp_path, command):
    """SIGTERM mid-run: exit 130, one line, no output and no temp file (batch: its state says why)."""
    out = tmp_path / "out"
    out.mkdir()
    if command == "animate":
        args = ["animate", str(EXAMPLES / "source.png"), str(EXAMPLES / "driving.mp4"), "-o", str(out / "o.mp4")]
    else:
        jobs = tmp_path / "jobs.csv"
        jobs.write_text(f"source,driving\n{EXAMPLES / 'source.png'},{EXAMPLES / 'driving.mp4'}\n")
        args = ["batch", str(jobs), "-o", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "scorr_cli", *args, "-c", str(tiny_ckpt), "--no-crop",
                             "--batch-size", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for(lambda: any(".part" in p for p in _hidden(out)) or proc.poll() is not None)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stderr.decode().strip().splitlines()[-1] == "scorr: error: interrupted"
    assert [p.name for p in out.iterdir() if p.name != ".scorr-batch"] == []


def test_batch_adopts_a_finished_output_whose_record_was_lost(tiny_ckpt, tmp_path):
    """Killed between the rename and the state record: the next run verifies the output and records it;
    an output that does not match its driving input is left alone."""
    from scorr_cli.batch.manifest import build_items, read_manifest
    from scorr_cli.batch.runner import BatchConfig, plan, run_batch
    from scorr_cli.batch.state import DONE, merged_state, state_dir
    from scorr_cli.media.testing import make_test_video

    drive = make_test_video(tmp_path / "d.mp4", 3, size=(64, 64))
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(f"source,driving,output\n{EXAMPLES / 'source.png'},{drive},a.mp4\n"
                    f"{EXAMPLES / 'source.png'},{drive},b.mp4\n")
    items = build_items(read_manifest(jobs))
    out = tmp_path / "out"
    config = BatchConfig(outdir=out, checkpoint=str(tiny_ckpt), device="cpu", crop=False)
    run_batch(items, config)
    assert {k: r.status for k, r in merged_state(out).items()} == {"a.mp4": DONE, "b.mp4": DONE}
    import shutil

    shutil.rmtree(state_dir(out))  # the records never made it to disk
    make_test_video(out / "b.mp4", 2, size=(64, 64))  # and b.mp4 is not what this job writes
    steps = {item.key: (action, why) for item, action, why in plan(items, config)}
    assert steps["a.mp4"][0] == "adopt" and "3 frames" in steps["a.mp4"][1]
    assert steps["b.mp4"][0] == "skip" and "does not match" in steps["b.mp4"][1]
    mtime = (out / "a.mp4").stat().st_mtime_ns
    report = run_batch(items, config)
    assert merged_state(out)["a.mp4"].status == DONE and (out / "a.mp4").stat().st_mtime_ns == mtime
    assert "b.mp4" not in merged_state(out) and probe_video(out / "b.mp4").n_frames == 2
    assert [o.status for o in report.outcomes if o.item.key == "a.mp4"] == [DONE]


def test_resume_from_another_working_folder(tmp_path, monkeypatch):
    """config.yaml keeps absolute paths: `--resume RUN` works wherever it is typed."""
    from scorr_cli.train.config import resolve_config
    from scorr_cli.train.trainer import train

    clip = tmp_path / "work" / "data" / "train" / "c"
    clip.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        write_image(clip / f"{i}.png", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    monkeypatch.chdir(tmp_path / "work")
    # an earlier run in the same folder was killed before its first checkpoint: its log lines must go
    (tmp_path / "work" / "run").mkdir()
    (tmp_path / "work" / "run" / "metrics.jsonl").write_text(
        "".join(f'{{"type": "step", "step": {i}}}\n' for i in range(1, 6)))
    overrides = {"run": {"out": "run", "threads": 1, "num_workers": 0, "eval_clips": 0, "sample_every": 0,
                         "checkpoint_every": 1}, "schedule": {"batch_size": 2, "max_steps": 1},
                 "data": {"num_repeats": 2}, "loss": {"perceptual_backend": "none"}}
    train(resolve_config("data", preset="tiny", overrides=overrides), show_progress=False)
    monkeypatch.chdir(tmp_path)
    cfg = resolve_config(None, resume="work/run", overrides={"schedule": {"max_steps": 2}})
    assert Path(cfg.data_root).is_absolute()
    result = train(cfg, resume="work/run", show_progress=False)
    assert result.step == 2
    import json

    from scorr_cli.train import state as st

    records = [json.loads(x) for x in (tmp_path / "work/run/metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r["type"] == "step"]
    assert steps == [1, 2], steps  # no repeated steps from the killed run
    # the newest training state cut short (killed mid-write): resuming falls back to the one before
    newest = st.find_resume("work/run")
    assert newest[0].name == "step-00000002.safetensors"
    data = newest[1].read_bytes()
    newest[1].write_bytes(data[: len(data) // 2])
    assert st.find_resume("work/run")[0].name == "step-00000001.safetensors"


# ---- smaller rough edges ------------------------------------------------------------------------------


def test_huge_photo_decodes_without_a_warning(tmp_path):
    import warnings

    from PIL import Image

    from scorr_cli.media import read_image

    big = tmp_path / "big.png"
    Image.new("L", (9500, 9500), 90).save(big, compress_level=1)  # 90 MP: above PIL's warning size
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        img = read_image(big)
    assert img.shape == (9500, 9500, 3)


def test_malicious_pickle_is_refused_without_warnings(tmp_path):
    import pickle

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"model": Payload()}, protocol=4))
    r = _cli("weights", "import", evil, "--name", "evil")
    _one_line_error(r, 5, "evil.pth: refused to load")
    assert not (tmp_path / "pwned").exists()


def test_a_pth_given_as_checkpoint_says_how_to_import_it(tmp_path):
    pth = tmp_path / "vox.pth"
    torch.save({"model": {"w": torch.zeros(2)}}, pth)
    r = _cli("animate", EXAMPLES / "source.png", EXAMPLES / "driving.mp4", "-o", tmp_path / "o.mp4", "-c", pth)
    _one_line_error(r, 5, "vox.pth: a PyTorch .pth file", "scorr weights import")


def test_relative_mode_with_one_driving_image_is_refused(tiny_ckpt, tmp_path):
    r = _cli("animate", EXAMPLES / "source.png", EXAMPLES / "source.png", "-o", tmp_path / "o.png", "-c", tiny_ckpt,
             "--mode", "relative")
    _one_line_error(r, 2, "--mode relative needs a driving video")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_no_libav_lines_for_a_clip_that_is_not_a_video(tmp_path, command):
    """OpenCV's decoder prints from C ("moov atom not found"), past Python's stderr: a real process."""
    garbage = random.Random(0).randbytes(5000)  # seeded: fresh noise now and then probes as an audio stream
    for split in ("train", "test"):
        (tmp_path / "d" / split).mkdir(parents=True)
        (tmp_path / "d" / split / "x.mp4").write_bytes(garbage)
    args = (["train", "--data", str(tmp_path / "d"), "--preset", "tiny", "--out", str(tmp_path / "r")]
            if command == "train" else
            ["evaluate", "--baseline", "copy-source", "--data", str(tmp_path / "d"), "-o", str(tmp_path / "e")])
    r = subprocess.run([sys.executable, "-m", "scorr_cli", *args], capture_output=True, text=True)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scorr: error:") and "x.mp4: not a readable" in lines[0], lines


def test_animate_without_a_terminal_prints_periodic_progress(tiny_ckpt, tmp_path, monkeypatch):
    from scorr_cli.cli import animate as animate_cli

    monkeypatch.setattr(animate_cli, "LOG_EVERY_S", 0.0)  # every update is due
    r = _cli("animate", EXAMPLES / "source.png", EXAMPLES / "driving.mp4", "-o", tmp_path / "o.mp4", "-c", tiny_ckpt,
             "--no-crop", "--size", "64", "--max-frames", "6", "--batch-size", "2")
    assert r.exit_code == 0, r.output
    lines = [x for x in r.stderr.splitlines() if x.startswith("scorr animate: animating")]
    assert lines[-1].startswith("scorr animate: animating 6/6") and len(lines) >= 3, r.stderr


def test_train_progress_fits_80_columns_and_logs_every_loss():
    import io

    from rich.console import Console

    from scorr_cli.train.monitor import ProgressDisplay

    buf = io.StringIO()
    console = Console(file=buf, width=80, force_terminal=True, color_system=None)
    display = ProgressDisplay(1000, 0, console=console)
    losses = {"perceptual": 2.345, "equivariance_value": 0.2617, "equivariance_jacobian": 0.4056,
              "landmarks": 0.5427, "total": 3.555}
    display.update(10, 0, losses, 0.135, log_line=True)
    display.close()
    text = buf.getvalue()
    assert "landmarks=0.5427" in text and "loss=3.555" in text
    import re

    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r", "\n")
    assert all(len(line.rstrip()) <= 80 for line in plain.splitlines()), plain


def test_crop_log_lines_name_the_video_not_the_source_line(tmp_path):
    src = tmp_path / "videos"
    src.mkdir()
    (src / "clip.mp4").write_bytes((EXAMPLES / "driving.mp4").read_bytes())
    r = _cli("crop", src, "--dataset", tmp_path / "ds", "--detector", "dlib", "--every", "10")
    assert r.exit_code == 0, r.output
    assert "clip.mp4" in r.stderr and "crop.py" not in r.stderr


def test_batch_item_progress_counts_each_frame_once_per_pass(tiny_ckpt, tmp_path):
    from scorr_cli.batch.manifest import build_items, read_manifest
    from scorr_cli.batch.runner import BatchConfig, BatchProgress, run_batch
    from scorr_cli.media.testing import make_test_video

    drive = make_test_video(tmp_path / "d.mp4", 3, size=(64, 64))
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(f"source,driving\n{EXAMPLES / 'source.png'},{drive}\n")
    calls = []

    class Recorder(BatchProgress):
        def item_frames(self, stage, done, total):
            calls.append((stage, done, total))

    run_batch(build_items(read_manifest(jobs)), BatchConfig(outdir=tmp_path / "o", checkpoint=str(tiny_ckpt),
                                                            device="cpu", crop=False, batch_size=2), Recorder())
    assert calls[-1] == ("rendering", 3, 3) and ("keypoints", 3, 3) in calls
    assert all(done <= total == 3 for _, done, total in calls)


def test_bf16_training_on_a_cpu_says_it_is_slow(tmp_path):
    from rich.console import Console

    from scorr_cli.train import monitor

    clip = tmp_path / "data" / "train" / "c"
    clip.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        write_image(clip / f"{i}.png", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    from scorr_cli.train.config import resolve_config
    from scorr_cli.train.trainer import train

    cfg = resolve_config(str(tmp_path / "data"), preset="tiny", overrides={
        "run": {"out": str(tmp_path / "r"), "threads": 1, "num_workers": 0, "eval_clips": 0, "sample_every": 0,
                "precision": "bf16", "device": "cpu"},
        "schedule": {"batch_size": 1, "max_steps": 1}, "data": {"num_repeats": 1},
        "loss": {"perceptual_backend": "none"}})
    import io

    buf = io.StringIO()
    real = monitor.ProgressDisplay.__init__

    def to_buffer(self, *a, **kw):
        kw["console"] = Console(file=buf, width=200)
        real(self, *a, **kw)

    import unittest.mock

    with unittest.mock.patch.object(monitor.ProgressDisplay, "__init__", to_buffer):
        train(cfg, show_progress=True)
    assert "bf16 autocast on a CPU runs about 15x slower" in buf.getvalue()
