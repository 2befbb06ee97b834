"""Unit tests of tracking, smoothing, geometry and FOMM helpers (synthetic data, fast)."""

from __future__ import annotations

import numpy as np
import pytest

from scorr_cli.errors import NoFaceError
from scorr_cli.faces import CropConfig, CropTransform, Face, find_best_frame, paste_back, warp_crop
from scorr_cli.faces.geometry import Window, eye_angle, window_transform
from scorr_cli.faces.smoothing import max_jitter, smooth_windows
from scorr_cli.faces.tracking import CutDetector, Tracker


def _face(x, y, s=50.0):
    return Face(x, y, x + s, y + s, 1.0)


def test_tracker_links_interpolates_and_splits_at_cut():
    tr = Tracker(iou_link=0.3, max_lost=4, every=2)
    for i in range(0, 40):
        if i == 20:
            tr.cut(20)
        faces = None
        if i % 2 == 0:
            faces = [_face(100 + i, 100)] if i < 20 else [_face(300, 50), _face(10, 10)]
        tr.update(i, faces)
    tracks = tr.finish(40)
    assert [(t.start, t.end) for t in tracks] == [(0, 19), (20, 39), (20, 39)]
    b = tracks[0].boxes()
    assert b.shape == (20, 4) and b[1, 0] == pytest.approx(101.0)  # interpolated between detections


def test_tracker_ends_lost_face():
    tr = Tracker(max_lost=3, every=1)
    for i in range(20):
        tr.update(i, [_face(100, 100)] if i < 8 else [])
    tracks = tr.finish(20)
    assert [(t.start, t.end) for t in tracks] == [(0, 7)]


def test_cut_detector():
    rng = np.random.default_rng(0)
    a = np.full((90, 160, 3), (200, 40, 40), np.uint8)
    b = np.full((90, 160, 3), (30, 30, 220), np.uint8)
    cd = CutDetector()
    cuts = [i for i, f in enumerate([a] * 5 + [b] * 5) if cd.is_cut(np.clip(f + rng.integers(0, 4, f.shape), 0, 255).astype(np.uint8)) and i]
    assert cuts == [5]


def test_smoothing_constant_size_and_low_jitter():
    rng = np.random.default_rng(1)
    n = 100
    x = np.linspace(100, 300, n) + rng.normal(0, 4, n)
    s = 80 + rng.normal(0, 4, n)
    boxes = np.stack([x, np.full(n, 100.0), x + s, 100 + s], axis=1)
    w = smooth_windows(boxes, 25.0, CropConfig())
    assert len({round(v.side, 6) for v in w}) == 1
    assert max_jitter(w) < 0.02


def test_transform_roundtrip_and_paste_back():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 255, (200, 300, 3), dtype=np.uint8)
    img = np.asarray(np.clip(img.astype(float) * 0 + np.linspace(0, 255, 300)[None, :, None], 0, 255), np.uint8)
    t = window_transform(Window(150, 100, 120, 0.2), 64, (300, 200))
    t2 = CropTransform.from_json(t.to_json())
    assert np.allclose(t.matrix, t2.matrix, atol=1e-5)
    crop = warp_crop(img, t)
    out = paste_back(img, crop, t, feather=0.1)
    assert out.shape == img.shape
    assert np.abs(out.astype(int) - img.astype(int))[80:120, 130:170].mean() < 4
    # a crop result at another resolution (e.g. model output) maps back to the same place
    out2 = paste_back(img, np.zeros((128, 128, 3), np.uint8), t.to_json(), feather=0.05)
    assert out2[100, 150].max() == 0 and out2[5, 5].tolist() == img[5, 5].tolist()


def test_eye_angle():
    lm = np.zeros((68, 2))
    lm[36:42] = [10, 10]
    lm[42:48] = [20, 20]
    assert eye_angle(lm) == pytest.approx(np.pi / 4)


def test_find_best_frame():
    rng = np.random.default_rng(3)
    src = rng.normal(0, 10, (68, 2))
    frames = [rng.normal(0, 10, (68, 2)) for _ in range(5)]
    frames.insert(3, src * 2.5 + 40)  # same shape, other scale and position
    frames.insert(1, None)
    assert find_best_frame(src, frames) == 4
    with pytest.raises(NoFaceError):
        find_best_frame(src, [None, None])


def _portrait_landmarks() -> np.ndarray:
    from pathlib import Path

    from scorr_cli.faces import get_detector
    from scorr_cli.media import read_image

    img = read_image(Path(__file__).resolve().parents[1] / "examples" / "source.png")
    return np.asarray(get_detector("dlib").detect(img)[0].landmarks68, dtype=np.float64)[:, :2]


def test_reference_search_matches_mouth_and_pose_not_place_or_size():
    """The motion reference is the frame whose mouth opening and head pose match the source's, wherever
    the face sits and whatever its size: a copy of the portrait's points opened at the mouth, one rolled by
    20°, one shrunk and moved (the match), one missing."""
    from scorr_cli.faces import ReferenceSearch, face_state
    from scorr_cli.faces.landmarks import mouth_opening

    src = _portrait_landmarks()
    opened = src.copy()
    span = np.linalg.norm(src[45] - src[36])
    opened[[56, 57, 58, 65, 66, 67]] += [0.0, 0.2 * span]  # lower lip down: the mouth opens
    assert mouth_opening(opened) - mouth_opening(src) > 0.15
    c = src.mean(axis=0)
    a = np.radians(20)
    rolled = (src - c) @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) + c
    moved = src * 0.6 + [30.0, -12.0]
    search = ReferenceSearch(src)
    for i, points in enumerate([opened, rolled, None, moved, opened]):
        search.add(i, points)
    assert search.best_index == 3 and search.best_error < 1e-6
    assert face_state(moved) == pytest.approx(face_state(src), abs=1e-6)
    assert abs(face_state(rolled)[3] - face_state(src)[3]) == pytest.approx(20, abs=0.5)
    with pytest.raises(NoFaceError):
        ReferenceSearch(None)


def test_reference_candidates_are_few_and_spread():
    from scorr_cli.faces import reference_candidates

    assert reference_candidates(7) == list(range(7))
    long = reference_candidates(361)
    assert len(long) == 40 and long[0] == 0 and long[-1] == 360 and max(np.diff(long)) <= 10
    assert reference_candidates(0) == []
