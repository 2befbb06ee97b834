"""Video tracking and cropping on real footage (dlib backend, offline)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scorr_cli.faces import CropConfig, get_detector
from scorr_cli.faces.smoothing import max_jitter
from scorr_cli.faces.video import analyse_video, crop_video

HAMILTON = "raw/facerecognition_short_hamilton_clip.mp4"
LATENTSYNC = "raw/latentsync_demo1_video.mp4"


@pytest.fixture(scope="module")
def dlib_detector():
    return get_detector("dlib", max_side=None)


@pytest.fixture(scope="module")
def hamilton(request, tmp_path_factory, dlib_detector):
    from tests.conftest import media_root

    src = media_root() / HAMILTON
    if not src.is_file():
        pytest.skip(f"{src} not found")
    out = tmp_path_factory.mktemp("hamilton")
    analysis, manifest = crop_video(src, out, dlib_detector, CropConfig(every=3))
    return analysis, manifest


def test_tracks_split_at_cuts(hamilton):
    analysis, _ = hamilton
    assert len(analysis.cuts) >= 2, analysis.cuts  # the clip has several camera cuts
    assert analysis.clips
    for clip in analysis.clips:
        assert not any(clip.start < cut <= clip.end for cut in analysis.cuts), (clip.start, clip.end, analysis.cuts)


def test_face_centre_inside_every_crop(hamilton):
    analysis, _ = hamilton
    for clip in analysis.clips:
        assert len(clip.windows) == len(clip.boxes) == clip.n_frames
        for box, win, t in zip(clip.boxes, clip.windows, clip.transforms):
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            assert win.contains(cx, cy)
            u, v = t.apply(np.array([[cx, cy]]))[0]
            assert 0 <= u <= t.size and 0 <= v <= t.size


def test_clip_files_and_manifest(hamilton):
    from scorr_cli.media import probe_video

    analysis, manifest = hamilton
    data = json.loads(manifest.read_text())
    assert len(data["clips"]) == len(analysis.clips)
    for rec, clip in zip(data["clips"], analysis.clips):
        info = probe_video(rec["output"])
        assert (info.width, info.height) == (256, 256)
        assert info.n_frames == clip.n_frames == rec["n_frames"] == len(rec["boxes"])
        assert info.has_audio  # source audio cut to the clip's range
        assert abs(rec["end_time"] - rec["start_time"] - clip.n_frames / analysis.fps) < 1e-3


def test_single_person_one_stable_track(faces_media, dlib_detector):
    src = faces_media / LATENTSYNC
    if not src.is_file():
        pytest.skip(f"{src} not found")
    a = analyse_video(src, dlib_detector, CropConfig(every=3, detect_max_side=480))
    assert len(a.clips) == 1
    clip = a.clips[0]
    coverage = clip.n_frames / a.n_frames
    jitter = max_jitter(clip.windows)
    print(f"latentsync: coverage {coverage:.1%}, jitter {jitter:.2%} of crop")
    assert coverage >= 0.9
    assert jitter < 0.02
    sides = {round(w.side, 6) for w in clip.windows}
    assert len(sides) == 1  # no size pumping
