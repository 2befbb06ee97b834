"""Photos as training clips (scorr crop --dataset --photo-frames): the moving crop, its landmarks, the layout."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from scorr_cli.faces import CropConfig, PhotoMotionConfig, get_detector
from scorr_cli.faces.dataset import build_dataset, landmark_detector
from scorr_cli.faces.landmarks import annotate_frames
from scorr_cli.faces.photo_clips import motion_path, photo_clip
from scorr_cli.media import read_image

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "source.png"


def test_motion_path_is_bounded_smooth_and_seeded():
    m = PhotoMotionConfig(frames=48)
    path = motion_path(48, m, np.random.default_rng(3))
    limits = [math.radians(m.max_turn), math.log1p(m.max_zoom), m.max_shift, m.max_shift]
    assert path.shape == (48, 4)
    assert (np.abs(path) <= np.array(limits) + 1e-12).all()
    assert (np.abs(path).max(axis=0) > 0.3 * np.array(limits)).all()  # it does move, in every parameter
    steps = np.abs(np.diff(path, axis=0)).max(axis=0)
    assert (steps < 0.25 * 2 * np.array(limits)).all()  # neighbouring frames are near each other
    assert np.array_equal(path, motion_path(48, m, np.random.default_rng(3)))
    assert not np.array_equal(path, motion_path(48, m, np.random.default_rng(4)))


def test_landmarks_move_with_the_frames():
    """The clip's stored points are the still crop's points moved by each frame's transform: dlib finds
    the same points again on the moved frames (a transform applied in the wrong order or about the wrong
    centre is off by tens of pixels at the largest turn and shift)."""
    det = get_detector("dlib")
    marker = landmark_detector(det)
    cfg = CropConfig(size=256)
    motion = PhotoMotionConfig(frames=12, max_turn=12.0, max_zoom=0.1, max_shift=0.08)
    frames, points = photo_clip(read_image(EXAMPLE), det, marker, cfg, motion, seed=0)
    assert len(frames) == 12 and frames[0].shape == (256, 256, 3) and points.shape == (12, 68, 2)
    found = annotate_frames(frames, marker)
    err = np.linalg.norm(found - points, axis=-1).mean(axis=1)  # mean point error per frame, pixels
    assert np.isfinite(err).all() and err.max() < 3.0, err
    travel = np.linalg.norm(points - points[:1], axis=-1).mean(axis=1)
    assert travel.max() > 8.0  # the face does move across the clip (otherwise the check above is empty)


def test_dataset_photo_clips_layout_resume_and_held_out(tmp_path, faces_media):
    photo = faces_media / "source" / "dreamtalk_male_face.png"
    if not photo.is_file():
        pytest.skip("dreamtalk_male_face.png missing")
    src = tmp_path / "media"
    src.mkdir()
    shutil.copy(EXAMPLE, src / "portrait.png")
    shutil.copy(photo, src / "held.png")
    (src / "notes.txt").write_text("not a photo")
    out = tmp_path / "ds"
    det = get_detector("dlib")
    cfg = CropConfig(size=128)
    motion = PhotoMotionConfig(frames=6)
    rep = build_dataset(src, out, det, cfg, test_fraction=1.0, test_patterns=("held*",), photos=motion)
    assert {v.source.name: v.status for v in rep.videos} == {"held.png": "held out", "portrait.png": "done"}
    clip = out / "train" / "portrait_photo"  # always train/, whatever test_fraction says
    assert sorted(p.name for p in clip.iterdir()) == [f"{i:05d}.png" for i in range(6)] + ["landmarks.npy"]
    assert not (out / "test").exists() and not list((out / "train").glob("held*"))
    assert json.loads((out / "_manifests" / "portrait.photo.json").read_text())["photo_motion"]["frames"] == 6

    from scorr_cli.train.data import DataConfig, FramesDataset

    ds = FramesDataset(out, DataConfig(frame_size=64, num_repeats=2))
    item = ds[0]
    assert item["source"].shape == (3, 64, 64) and np.isfinite(np.asarray(item["landmarks"])).all()

    mtime = clip.stat().st_mtime_ns
    again = build_dataset(src, out, det, cfg, test_fraction=1.0, test_patterns=("held*",), photos=motion)
    assert [v.status for v in again.videos if v.source.name == "portrait.png"] == ["skipped"]
    assert clip.stat().st_mtime_ns == mtime
    # other motion settings make the clip again
    third = build_dataset(src, out, det, cfg, test_fraction=1.0, test_patterns=("held*",),
                          photos=PhotoMotionConfig(frames=4))
    assert [v.status for v in third.videos if v.source.name == "portrait.png"] == ["done"]
    assert len(list(clip.glob("*.png"))) == 4
    # without --photo-frames the photos are not looked at: a folder of photos only has nothing to crop
    from scorr_cli.errors import InputError

    with pytest.raises(InputError, match="no video files"):
        build_dataset(src, tmp_path / "ds2", det, cfg)


def test_cli_photo_frames_needs_dataset(tmp_path):
    from scorr_cli.cli import app

    res = CliRunner().invoke(app, ["crop", str(EXAMPLE), "-o", str(tmp_path / "o"), "--photo-frames", "8",
                                   "--detector", "dlib"])
    assert res.exit_code != 0
    assert "--photo-frames" in res.output and "--dataset" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()
