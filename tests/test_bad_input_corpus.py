"""A corpus of bad inputs over every command: each must give one line on stderr that starts with
``scorr: error:`` and names the problem, the expected exit code, no traceback, no warning, and leave
every file as it was (no output, no temp file, inputs unchanged)."""

from __future__ import annotations

import hashlib
import os
import pickle
import random
import subprocess
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from scorr_cli.cli import app
from scorr_cli.media._ffmpeg import ffmpeg_exe

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
runner = CliRunner()


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Path:
    """Inputs good and bad, built once: every case below runs against a copy-free, hashed folder."""
    from scorr_cli.checkpoints import save_checkpoint
    from scorr_cli.core.config import preset
    from scorr_cli.core.model import MRFA

    d = tmp_path_factory.mktemp("lab")
    torch.manual_seed(0)
    ckpt = save_checkpoint(d / "tiny.safetensors", MRFA(preset("tiny")))
    (d / "cut.safetensors").write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    (d / "noise.safetensors").write_bytes(os.urandom(4000))
    torch.save({"model": {"w": torch.zeros(2)}}, d / "authors.pth")
    (d / "evil.pth").write_bytes(pickle.dumps({"model": _Evil()}, protocol=2))
    (d / "garbage.pth").write_bytes(b"\x00garbage" * 100)
    (d / "face.png").write_bytes((EXAMPLES / "source.png").read_bytes())
    (d / "drive.mp4").write_bytes((EXAMPLES / "driving.mp4").read_bytes())
    (d / "empty.png").write_bytes(b"")
    (d / "empty.mp4").write_bytes(b"")
    png = (EXAMPLES / "source.png").read_bytes()
    (d / "cut.png").write_bytes(png[: len(png) // 3])
    (d / "noise.jpg").write_bytes(os.urandom(3000))
    (d / "noise.mp4").write_bytes(os.urandom(5000))
    (d / "text.mp4").write_text("not a video\n" * 50)
    (d / "photo.mp4").write_bytes(png)
    (d / "folder").mkdir()
    from PIL import Image

    Image.new("RGB", (160, 200), (128, 128, 128)).save(d / "blank.png")
    full = d / "long.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc=size=128x128:rate=25", "-t", "7",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(full)], check=True)
    (d / "damaged.mp4").write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    full.unlink()
    (d / "jobs.csv").write_text(f"source,driving\n{d / 'face.png'},{d / 'drive.mp4'}\n")
    (d / "badheader.csv").write_text("portrait,video\na.png,b.mp4\n")
    (d / "nojobs.csv").write_text("source,driving\n")
    (d / "taken").write_text("a file")
    (d / "exists.mp4").write_bytes(b"mine")
    (d / "notyaml.yaml").write_text("model: [unclosed\n")
    (d / "typo.yaml").write_text("model:\n  num_kpp: 3\n")
    (d / "ds" / "train").mkdir(parents=True)
    # a "clip" that is no video: OpenCV would print libav's own lines. Seeded noise: fresh os.urandom bytes
    # now and then probe as some audio stream, and the message becomes "has no video stream" (a red CI)
    garbage = random.Random(0).randbytes(5000)
    for split in ("train", "test"):
        (d / "badclips" / split).mkdir(parents=True)
        (d / "badclips" / split / "x.mp4").write_bytes(garbage)
    (d / "nodata").mkdir()
    (d / "novideos").mkdir()
    (d / "novideos" / "readme.txt").write_text("nothing here")
    return d


def _state(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


A = ["animate"]
T = ["-c", "{d}/tiny.safetensors", "--size", "64"]
CASES = [
    # (id, exit code, text in the message, argv with {d} for the lab folder)
    ("animate-missing-source", 2, "file not found", A + ["{d}/none.png", "{d}/drive.mp4", "-o", "{d}/o.mp4"]),
    ("animate-missing-driving", 2, "file not found", A + ["{d}/face.png", "{d}/none.mp4", "-o", "{d}/o.mp4"]),
    ("animate-source-folder", 2, "folder", A + ["{d}/folder", "{d}/drive.mp4", "-o", "{d}/o.mp4"]),
    ("animate-empty-source", 2, "empty.png", A + ["{d}/empty.png", "{d}/drive.mp4", "-o", "{d}/o.mp4"]),
    ("animate-cut-png", 2, "cut.png", A + ["{d}/cut.png", "{d}/drive.mp4", "-o", "{d}/o.mp4"] + T),
    ("animate-noise-jpg", 2, "noise.jpg", A + ["{d}/noise.jpg", "{d}/drive.mp4", "-o", "{d}/o.mp4"]),
    ("animate-video-as-source", 2, "is a video", A + ["{d}/drive.mp4", "{d}/face.png", "-o", "{d}/o.mp4"]),
    ("animate-text-driving", 2, "text.mp4", A + ["{d}/face.png", "{d}/text.mp4", "-o", "{d}/o.mp4"]),
    ("animate-empty-driving", 2, "empty.mp4", A + ["{d}/face.png", "{d}/empty.mp4", "-o", "{d}/o.mp4"]),
    ("animate-noise-driving", 2, "noise.mp4", A + ["{d}/face.png", "{d}/noise.mp4", "-o", "{d}/o.mp4"]),
    ("animate-damaged-driving", 2, "damaged video", A + ["{d}/face.png", "{d}/damaged.mp4", "-o", "{d}/o.mp4"] + T),
    ("animate-photo-named-mp4", 2, "is an image", A + ["{d}/face.png", "{d}/photo.mp4", "-o", "{d}/o.mp4"]),
    ("animate-avi-output", 2, "unsupported output extension", A + ["{d}/face.png", "{d}/drive.mp4", "-o", "{d}/o.avi"]),
    ("animate-jpg-output-for-video", 2, "'.jpg'", A + ["{d}/face.png", "{d}/drive.mp4", "-o", "{d}/o.jpg"]),
    ("animate-output-exists", 3, "--force", A + ["{d}/face.png", "{d}/drive.mp4", "-o", "{d}/exists.mp4"] + T),
    ("animate-output-is-input", 3, "replace the input",
     A + ["{d}/face.png", "{d}/drive.mp4", "-o", "{d}/drive.mp4", "--force"] + T),
    ("animate-bad-mode", 2, "--mode", A + ["{d}/face.png", "{d}/drive.mp4", "-o", "{d}/o.mp4", "--mode", "sideways"]),
    ("animate-bad-precision", 2, "precision",
     A + ["{d}/face.png", "{d}/drive.mp4", "-o", "{d}/o.mp4", "--precision", "fp8"]),
    ("animate-bad-device", 2, "device", A + ["{d}/face.png", "{d}/drive.mp4", "-o", "{d}/o.mp4", "--device", "tpu"]),
    ("animate-missing-checkpoint", 2, "checkpoint not found",
     A + ["{d}/face.png", "{d}/drive.mp4", "-o", "{d}/o.mp4", "-c", "{d}/none.safetensors"]),
    ("animate-unknown-checkpoint", 2, "unknown checkpoint",
     A + ["{d}/face.png", "{d}/drive.mp4", "-o", "{d}/o.mp4", "-c", "no-such-weights"]),
    ("animate-noise-checkpoint", 5, "noise.safetensors",
     A + ["{d}/face.png", "{d}/drive.mp4", "-o", "{d}/o.mp4", "-c", "{d}/noise.safetensors"]),
    ("animate-cut-checkpoint", 5, "cut.safetensors",
     A + ["{d}/face.png", "{d}/drive.mp4", "-o", "{d}/o.mp4", "-c", "{d}/cut.safetensors"]),
    ("animate-pth-checkpoint", 5, "scorr weights import",
     A + ["{d}/face.png", "{d}/drive.mp4", "-o", "{d}/o.mp4", "-c", "{d}/authors.pth"]),
    ("animate-best-frame-too-far", 2, "--best-frame 500",
     A + ["{d}/face.png", "{d}/drive.mp4", "-o", "{d}/o.mp4", "--best-frame", "500"] + T),
    ("animate-relative-image", 2, "--mode relative needs a driving video",
     A + ["{d}/face.png", "{d}/face.png", "-o", "{d}/o.png", "--mode", "relative"] + T),
    ("animate-blank-source", 6, "no face found", A + ["{d}/blank.png", "{d}/drive.mp4", "-o", "{d}/o.mp4"] + T),
    ("animate-onnx-dir-without-backend", 2, "needs --backend onnx",
     A + ["{d}/face.png", "{d}/drive.mp4", "-o", "{d}/o.mp4", "--onnx-dir", "{d}/folder"]),
    ("animate-onnx-half-precision", 2, "fp32 graphs",
     A + ["{d}/face.png", "{d}/drive.mp4", "-o", "{d}/o.mp4", "--backend", "onnx", "--precision", "bf16"]),
    ("crop-missing", 2, "file not found", ["crop", "{d}/none.mp4", "-o", "{d}/c"]),
    ("crop-folder-without-dataset", 2, "--dataset", ["crop", "{d}/folder", "-o", "{d}/c"]),
    ("crop-noise-video", 2, "noise.mp4", ["crop", "{d}/noise.mp4", "-o", "{d}/c", "--detector", "dlib"]),
    ("crop-damaged-video", 2, "damaged video", ["crop", "{d}/damaged.mp4", "-o", "{d}/c", "--detector", "dlib"]),
    ("crop-dataset-of-a-file", 2, "needs a folder", ["crop", "{d}/drive.mp4", "--dataset", "{d}/c"]),
    ("crop-dataset-no-videos", 2, "no video files", ["crop", "{d}/novideos", "--dataset", "{d}/c"]),
    ("crop-bad-detector", 2, "unknown detector", ["crop", "{d}/face.png", "-o", "{d}/c", "--detector", "haar"]),
    ("crop-photo-without-face", 6, "no face found", ["crop", "{d}/blank.png", "-o", "{d}/c", "--detector", "dlib"]),
    ("batch-missing-manifest", 2, "none.csv", ["batch", "{d}/none.csv", "-o", "{d}/b"]),
    ("batch-bad-header", 2, "badheader.csv", ["batch", "{d}/badheader.csv", "-o", "{d}/b"]),
    ("batch-empty-manifest", 2, "nojobs.csv", ["batch", "{d}/nojobs.csv", "-o", "{d}/b"]),
    ("batch-output-is-a-file", 2, "existing file", ["batch", "{d}/jobs.csv", "-o", "{d}/taken"]),
    ("batch-bad-mode", 2, "--mode", ["batch", "{d}/jobs.csv", "-o", "{d}/b", "--mode", "sideways"]),
    ("batch-bad-backend", 2, "--backend tf", ["batch", "{d}/jobs.csv", "-o", "{d}/b", "--backend", "tf"]),
    ("export-missing-checkpoint", 2, "checkpoint not found", ["export", "{d}/none.safetensors", "-o", "{d}/x"]),
    ("export-output-exists", 3, "--force", ["export", "{d}/tiny.safetensors", "-o", "{d}/folder"]),
    ("export-bad-opset", 2, "--opset 9", ["export", "{d}/tiny.safetensors", "-o", "{d}/x", "--opset", "9"]),
    ("train-missing-data", 2, "does not exist", ["train", "--data", "{d}/none", "--out", "{d}/r"]),
    ("train-no-train-split", 2, "no train/ folder", ["train", "--data", "{d}/nodata", "--out", "{d}/r"]),
    ("train-empty-train-split", 2, "holds no clips", ["train", "--data", "{d}/ds", "--out", "{d}/r"]),
    ("train-config-not-yaml", 2, "not valid YAML",
     ["train", "--data", "{d}/ds", "--config", "{d}/notyaml.yaml", "--out", "{d}/r"]),
    ("train-config-typo", 2, "num_kpp", ["train", "--data", "{d}/ds", "--config", "{d}/typo.yaml", "--out", "{d}/r"]),
    ("train-resume-nothing", 2, "--resume", ["train", "--resume", "{d}/none"]),
    ("train-clip-not-a-video", 2, "x.mp4: not a readable", ["train", "--data", "{d}/badclips", "--preset", "tiny",
                                                            "--out", "{d}/r"]),
    ("evaluate-nothing-to-evaluate", 2, "nothing to evaluate", ["evaluate", "--data", "{d}/ds", "-o", "{d}/e"]),
    ("evaluate-missing-data", 2, "not found", ["evaluate", "--baseline", "copy-source", "--data", "{d}/none",
                                              "-o", "{d}/e"]),
    ("evaluate-sources-without-cross", 2, "needs --cross",
     ["evaluate", "--baseline", "copy-source", "--data", "{d}/ds", "--sources", "{d}/face.png", "-o", "{d}/e"]),
    ("evaluate-clip-not-a-video", 2, "x.mp4: not a readable",
     ["evaluate", "--baseline", "copy-source", "--data", "{d}/badclips", "-o", "{d}/e"]),
    ("evaluate-bad-lpips", 2, "--lpips", ["evaluate", "--baseline", "copy-source", "--data", "{d}/ds", "--lpips",
                                          "squeeze", "-o", "{d}/e"]),
    ("weights-import-missing", 2, "not found", ["weights", "import", "{d}/none.pth", "--name", "x"]),
    ("weights-import-evil-pickle", 5, "refused to load", ["weights", "import", "{d}/evil.pth", "--name", "x"]),
    ("weights-import-garbage", 5, "not a readable PyTorch checkpoint",
     ["weights", "import", "{d}/garbage.pth", "--name", "x"]),
]


@pytest.mark.parametrize("code, text, argv", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(lab, monkeypatch, tmp_path, code, text, argv):
    monkeypatch.setenv("SCORR_WEIGHTS_DIR", str(tmp_path / "registry"))  # weights import writes nowhere shared
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    before = _state(lab)
    r = runner.invoke(app, [a.format(d=lab) for a in argv])
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == code, (r.exit_code, r.stderr, r.stdout)
    assert len(lines) == 1 and lines[0].startswith("scorr: error:"), r.stderr
    assert text in lines[0], lines[0]
    assert "Traceback" not in r.stdout + r.stderr and "Warning" not in r.stdout + r.stderr
    assert _state(lab) == before  # nothing written, nothing changed, no temp file


def test_the_corpus_is_large_and_covers_every_command():
    commands = {c[3][0] for c in CASES}
    assert len(CASES) >= 40 and commands == {"animate", "crop", "batch", "train", "evaluate", "weights",
                                                   "export"}
