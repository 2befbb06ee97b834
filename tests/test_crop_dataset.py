"""Dataset mode: train/test PNG layout, deterministic split, resumable reruns."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from scorr_cli.faces import CropConfig, get_detector
from scorr_cli.faces.dataset import build_dataset, split_for
from scorr_cli.faces.landmarks import LANDMARKS_FILE, load_clip_landmarks

CLIPS = ["driving/vtoonify_529_2.mp4", "driving/vtoonify_7154235.mp4"]


def test_dataset_layout_and_resume(faces_media, tmp_path):
    src = tmp_path / "videos"
    src.mkdir()
    for c in CLIPS:
        if not (faces_media / c).is_file():
            pytest.skip(f"{c} missing")
        shutil.copy(faces_media / c, src / (faces_media / c).name)
    out = tmp_path / "ds"
    det = get_detector("dlib")
    cfg = CropConfig(every=3, min_frames=10, size=128)
    rep = build_dataset(src, out, det, cfg, test_fraction=0.5)
    assert [v.status for v in rep.videos] == ["done", "done"], rep.videos
    folders = sorted(p for split in ("train", "test") if (out / split).is_dir() for p in (out / split).iterdir())
    assert folders and all(not p.name.startswith(".") for p in folders)  # no leftover temp folders
    for v in rep.videos:
        assert v.split == split_for(v.source.name, 0.5)
    total = 0
    for f in folders:
        pngs = sorted(f.glob("*.png"))
        assert pngs[0].name == "00000.png" and pngs[-1].name == f"{len(pngs) - 1:05d}.png"
        total += len(pngs)
        # every crop frame has its 68 landmarks (training's landmark guidance), inside the crop
        points = load_clip_landmarks(f, len(pngs))
        assert points is not None and np.isfinite(points).mean() > 0.95
        assert np.nanmin(points) > -5 and np.nanmax(points) < 133
    assert total == sum(v.frames for v in rep.videos)
    mtimes = {p: p.stat().st_mtime_ns for f in folders for p in [f, *f.iterdir()]}

    again = build_dataset(src, out, det, cfg, test_fraction=0.5)
    assert [v.status for v in again.videos] == ["skipped", "skipped"]
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes

    # a clip folder lost (e.g. run interrupted) is redone, the rest is left alone
    lost = folders[0]
    shutil.rmtree(lost)
    third = build_dataset(src, out, det, cfg, test_fraction=0.5)
    assert lost.is_dir()
    assert sum(v.written for v in third.videos) == 1
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items() if lost not in (p, p.parent))

    # a set built before landmarks were stored gets them on the next run; nothing else is redone
    marks = folders[1] / LANDMARKS_FILE
    marks.unlink()
    fourth = build_dataset(src, out, det, cfg, test_fraction=0.5)
    assert [v.status for v in fourth.videos] == ["skipped", "skipped"] and marks.is_file()


def test_test_video_patterns_hold_out_whole_identities():
    names = [f"idA_clip{i}.mp4" for i in range(5)] + [f"idB_clip{i}.mp4" for i in range(5)]
    splits = {n: split_for(n, 0.0, ["idB_*"]) for n in names}
    assert all(splits[n] == "test" for n in names if n.startswith("idB"))
    assert all(splits[n] == "train" for n in names if n.startswith("idA"))
    # Without patterns the hash split decides, and a fraction of 1 sends everything to test.
    assert all(split_for(n, 1.0) == "test" for n in names)
