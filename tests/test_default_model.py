"""The shipped default model on the shipped examples: the README Quickstart must give motion.

Guards ``weights/scorr-lite.safetensors`` (what `scorr animate` uses without --checkpoint): the
animated face has to move with the driving head, not merely reproduce the source. Head pose is read
off every frame with dlib's offline 68-point landmarks: face centre (x, y) and eye-line roll, and the
follow metric of ``scorr evaluate --cross`` (mouth, eyes, yaw, pitch, roll). Runs on CPU in ~20 s;
the held-out cross-identity pair needs ../shared/data/faces (skipped without it).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from scorr_cli.faces import eye_angle, get_detector
from scorr_cli.media import iter_video_frames
from scorr_cli.pipeline.animate import AnimateConfig, animate

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FRAMES = 100  # the whole 4 s driving clip: the head turns both ways, nods, tilts, leans
# Held-out pair: a photo no model was trained on and a clip of an identity held out of the default
# model's training (weights/README.md); 100 frames of her talking and turning.
HELD_OUT_PAIR = ("source/dreamtalk_male_face.png", "driving/styletalk_furious_talk2_clip1.mp4")
PAIR_FRAMES = 100
# What the shipped weights reach (weights/README.md has the measured values), with a margin.
# The Quickstart's driving clip is the portrait moved by a 2-D motion (examples/make_examples.py): no
# mouth, no yaw or pitch to follow, but the head tilts (roll) by ±7°. Measured: roll r 0.99, amplitude 0.79
# (the 3,691-step release: 0.86, 0.36).
QUICKSTART_FLOORS = {"roll_corr": 0.8, "roll_amp": 0.6}
# Held-out pair, measured with the 11,801-step release (weights/README.md; OpenCV 5.1), from animate's matched
# reference (its default since 2026-12-04): mouth r 0.83 (amplitude 0.48), yaw r 0.98 (0.71), pitch r 0.74 (1.27),
# roll r 0.92 (0.88); from the first frame: mouth r 0.75 (amplitude 0.49), yaw r 0.98 (0.70), pitch r 0.62 (1.39),
# roll r 0.83 (0.92). The 9,651-step release had mouth 0.71-0.73
# (0.53), yaw 0.98 (0.61-0.62), pitch 0.69-0.77, roll 0.97 (0.91-0.92), the ranges being OpenCV 4.14 and 5.1,
# which render the frames a little differently (1.3 grey levels apart on average); this pair's roll fell
# while the median over the 9 card pairs stayed at 0.79. The mouth is what the motion warm-up brought:
# the 4,918-step release had mouth r 0.23 here and fails the mouth floor.
PAIR_FLOORS = {"mouth_corr": 0.5, "mouth_amp": 0.3, "yaw_corr": 0.9, "yaw_amp": 0.4, "pitch_corr": 0.5,
               "roll_corr": 0.7, "roll_amp": 0.2}
# The target; the 1,541-step release had 0.009 (all ten keypoints in one cluster), this one 0.32.
KEYPOINT_SPREAD_FLOOR = 0.15


def head_poses(path: Path) -> np.ndarray:
    """``N×3``: face centre x, y (fraction of the frame size) and roll (degrees), per frame."""
    detector = get_detector("dlib")
    poses = []
    for frame in iter_video_frames(path, stop=FRAMES):
        faces = detector.detect(frame)
        assert faces, f"{path.name}: no face found in a frame"
        face = max(faces, key=lambda f: f.width)
        centre = face.landmarks68.mean(axis=0) / np.array(frame.shape[1::-1])
        poses.append([*centre, math.degrees(eye_angle(face.landmarks68))])
    return np.array(poses)


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("quickstart") / "out.mp4"
    animate(AnimateConfig(source=EXAMPLES / "source.png", driving=EXAMPLES / "driving.mp4", output=out,
                          max_frames=FRAMES))
    return out


def test_quickstart_face_follows_the_driving_motion(quickstart):
    drive, out = head_poses(EXAMPLES / "driving.mp4"), head_poses(quickstart)
    assert out.shape == (FRAMES, 3)
    motion_d, motion_o = drive - drive[0], out - out[0]
    for axis, name in enumerate(("x", "y", "roll")):
        r = np.corrcoef(motion_d[:, axis], motion_o[:, axis])[0, 1]
        print(f"{name}: driving range {np.ptp(motion_d[:, axis]):.3f}, output range "
              f"{np.ptp(motion_o[:, axis]):.3f}, correlation {r:.2f}")
    # The face moves with the driving head, sideways and up/down, by visible amounts (at 256²:
    # 5% = 13 px), and tilts with it. Today's early checkpoint tilts only ~40% as far as the driving
    # head (its keypoints still sit close together; see weights/README.md), so roll asks for the
    # direction and a few degrees (the 986-step release: 2.4°, correlation -0.35, fails here).
    assert np.corrcoef(motion_d[:, 0], motion_o[:, 0])[0, 1] > 0.9
    assert np.ptp(motion_o[:, 0]) > 0.05
    assert np.corrcoef(motion_d[:, 1], motion_o[:, 1])[0, 1] > 0.8
    assert np.ptp(motion_o[:, 1]) > 0.015
    assert np.corrcoef(motion_d[:, 2], motion_o[:, 2])[0, 1] > 0.6
    assert np.ptp(motion_o[:, 2]) > 4.0


def landmark_signals(path: Path, stop: int = FRAMES) -> np.ndarray:
    """frames × 5 follow signals (mouth, eyes, yaw, pitch, roll) of a video, NaN where no face."""
    from scorr_cli.evaluate.follow import frame_signals

    detector = get_detector("dlib")
    rows = []
    for frame in iter_video_frames(path, stop=stop):
        faces = detector.detect(frame)
        points = max(faces, key=lambda f: f.area).landmarks68 if faces else None
        rows.append(frame_signals(points, frame.shape[:2]))
    return np.array(rows)


def _report(name: str, scores: dict) -> None:
    print(name, " ".join(f"{k}={v:.2f}" for k, v in scores.items()))


def test_quickstart_follow_metric(quickstart):
    """The follow metric of `scorr evaluate --cross` on the Quickstart: mouth and head pose follow."""
    from scorr_cli.evaluate.follow import follow_scores

    scores = follow_scores(landmark_signals(quickstart), landmark_signals(EXAMPLES / "driving.mp4"))
    _report("quickstart", scores)
    for key, floor in QUICKSTART_FLOORS.items():
        assert scores[key] > floor, (key, scores[key])


def test_keypoints_spread_over_the_face():
    """The prior's keypoints of the example portrait are spread over the face (mean per-axis standard
    deviation in normalised [-1, 1] units), not collapsed into one cluster."""
    import torch

    from scorr_cli.checkpoints import load_checkpoint, resolve_checkpoint
    from scorr_cli.faces import crop_source_image
    from scorr_cli.media import read_image
    from scorr_cli.train.data import resize_frame, to_tensor

    model, _ = load_checkpoint(resolve_checkpoint(None), "cpu")
    crop, _ = crop_source_image(read_image(EXAMPLES / "source.png"), get_detector("dlib"), size=256)
    with torch.no_grad():
        kp = model.eval().detect(to_tensor(resize_frame(crop, model.cfg.image_size))[None])["kp"][0].numpy()
    spread = float(kp.std(axis=0).mean())
    print(f"keypoint spread {spread:.3f}: {np.round(kp, 2).tolist()}")
    assert spread > KEYPOINT_SPREAD_FLOOR


def test_held_out_cross_identity_pair(faces_media, tmp_path):
    """A photo never trained on, driven by a clip of an identity held out of training."""
    from scorr_cli.evaluate.follow import follow_scores

    drive = faces_media / HELD_OUT_PAIR[1]
    out = tmp_path / "pair.mp4"
    animate(AnimateConfig(source=faces_media / HELD_OUT_PAIR[0], driving=drive, output=out, max_frames=PAIR_FRAMES))
    scores = follow_scores(landmark_signals(out, PAIR_FRAMES), landmark_signals(drive, PAIR_FRAMES))
    _report("held-out pair", scores)
    for key, floor in PAIR_FLOORS.items():
        assert scores[key] > floor, (key, scores[key])
