"""The shipped default model on the shipped examples: the README Quickstart must give motion.

Guards ``weights/scorr-lite.safetensors`` (what `scorr animate` uses without --checkpoint): the
animated face has to move with the driving head, not merely reproduce the source. Head pose is read
off every frame with dlib's offline 68-point landmarks: face centre (x, y) and eye-line roll.
Runs on CPU in ~20 s; needs nothing outside the repository.
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
