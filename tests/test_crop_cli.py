"""``scorr crop`` errors and outputs through the CLI (one-line messages, exit codes)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from scorr_cli.cli import app
from scorr_cli.errors import InputError, MissingWeightsError, NoFaceError, OutputExistsError


@pytest.fixture(autouse=True)
def _offline_weights(tmp_path, monkeypatch):
    # 'auto' must resolve to dlib here whatever the user's torch hub cache holds.
    monkeypatch.setenv("SCORR_FACE_WEIGHTS", str(tmp_path / "no_weights"))


def _run(*args):
    r = CliRunner().invoke(app, ["crop", *map(str, args)])
    return r.exit_code, (r.stderr if hasattr(r, "stderr") else r.output).strip()


def _one_line(msg):
    lines = [ln for ln in msg.splitlines() if ln.strip()]
    assert len(lines) == 1, msg
    assert "Traceback" not in msg
    return lines[0]


def test_missing_file(tmp_path):
    code, msg = _run(tmp_path / "nope.mp4")
    assert code == InputError.exit_code
    assert "nope.mp4" in _one_line(msg)


def test_no_face(tmp_path):
    from scorr_cli.media import write_image

    img = tmp_path / "noise.png"
    write_image(img, np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8))
    code, msg = _run(img, "-o", tmp_path / "out")
    assert code == NoFaceError.exit_code
    line = _one_line(msg)
    assert "no face found" in line and "noise.png" in line


def test_existing_output_needs_force(faces_media, tmp_path):
    src = faces_media / "source/sadtalker_happy.png"
    out = tmp_path / "out"
    code, msg = _run(src, "-o", out, "--face", "largest")
    assert code == 0, msg
    side = json.loads((out / "sadtalker_happy_face00.json").read_text())
    assert side["crop_size"] == 256 and side["source_size"] == [256, 256]
    code, msg = _run(src, "-o", out, "--face", "largest")
    assert code == OutputExistsError.exit_code
    assert "sadtalker_happy" in _one_line(msg) and "--force" in msg
    code, msg = _run(src, "-o", out, "--face", "largest", "--force")
    assert code == 0, msg


def test_face_alignment_without_weights(faces_media, tmp_path):
    code, msg = _run(faces_media / "source/sadtalker_happy.png", "-o", tmp_path / "o", "--detector", "face-alignment",
                     "--weights-dir", tmp_path / "empty")
    assert code == MissingWeightsError.exit_code
    line = _one_line(msg)
    assert "2DFAN4-11f355bf06.pth.tar" in line and "--detector dlib" in line


def test_bad_face_choice(faces_media, tmp_path):
    code, msg = _run(faces_media / "source/sadtalker_happy.png", "-o", tmp_path / "o", "--face", "7")
    assert code == InputError.exit_code and "--face 7" in _one_line(msg)
