"""Landmark guidance end to end: the 68-point scheme, landmarks stored with a dataset, flipped with its
frames, turned into keypoint targets and a loss that pulls keypoints toward them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from scorr_cli.faces import landmarks as lm68
from scorr_cli.faces.detectors import DlibDetector
from scorr_cli.media import iter_video_frames, read_image, write_image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def detector() -> DlibDetector:
    return DlibDetector(upsample=0, max_side=None)


def _points(detector, image) -> np.ndarray:
    faces = detector.detect(np.ascontiguousarray(image))
    assert faces, "no face found"
    return max(faces, key=lambda f: f.area).landmarks68


def test_mirror_map_is_an_involution_that_swaps_sides():
    m = lm68.MIRROR_68
    assert sorted(m.tolist()) == list(range(68)) and (m[m] == np.arange(68)).all()
    groups = dict(lm68.KEYPOINT_GROUPS)
    for left, right in (("eye_left", "eye_right"), ("brow_left", "brow_right"), ("jaw_left", "jaw_right")):
        assert sorted(m[list(groups[left])].tolist()) == sorted(groups[right])
    for centre in ("nose", "lip_upper", "lip_lower", "chin"):
        assert sorted(m[list(groups[centre])].tolist()) == sorted(groups[centre])


def test_flip_matches_landmarks_detected_on_the_mirrored_photo(detector):
    """The mirror map is right only if it predicts what a detector finds on the flipped image."""
    image = read_image(EXAMPLES / "source.png")
    size = image.shape[1]
    found = lm68.to_normalised(_points(detector, image), size)
    found_on_flipped = lm68.to_normalised(_points(detector, image[:, ::-1]), size)
    predicted = lm68.flip_normalised(found)
    err_px = np.abs(predicted - found_on_flipped).mean() * (size - 1) / 2
    assert err_px < 2.0, err_px
    # without the index permutation the eyes would be swapped: tens of pixels off
    naive = found.copy()
    naive[:, 0] *= -1
    assert np.abs(naive - found_on_flipped).mean() * (size - 1) / 2 > 10


def test_group_matrix_gives_group_centres():
    pts = np.random.default_rng(0).normal(size=(68, 2)).astype(np.float32)
    centres = lm68.group_matrix() @ pts
    for g, (_, idx) in enumerate(lm68.KEYPOINT_GROUPS):
        np.testing.assert_allclose(centres[g], pts[list(idx)].mean(0), atol=1e-6)


def test_measurements_respond_to_an_open_mouth_and_closed_eyes(detector):
    pts = _points(detector, read_image(EXAMPLES / "source.png")).astype(np.float64)
    opened = pts.copy()
    opened[[65, 66, 67, 55, 56, 57, 58, 59], 1] += 0.1 * lm68.interocular(pts)  # lower lip down
    assert lm68.mouth_opening(opened) == pytest.approx(lm68.mouth_opening(pts) + 0.1, abs=0.005)
    closed = pts.copy()
    closed[[37, 38, 43, 44], 1] = closed[[41, 40, 47, 46], 1]  # upper lids onto lower lids
    assert lm68.eye_opening(closed) < 0.3 * lm68.eye_opening(pts)


@pytest.fixture(scope="module")
def clip_dataset(tmp_path_factory, detector) -> Path:
    """train/<clip>/ with 12 frames of the example driving clip, annotated as `crop --dataset` does."""
    root = tmp_path_factory.mktemp("lmds")
    clip = root / "train" / "example"
    clip.mkdir(parents=True)
    for i, frame in enumerate(iter_video_frames(EXAMPLES / "driving.mp4", stop=12)):
        write_image(clip / f"{i:05d}.png", frame)
    assert lm68.annotate_clip_folder(clip, detector) == clip / lm68.LANDMARKS_FILE
    assert lm68.annotate_clip_folder(clip, detector) is None  # present: kept
    return root


def test_annotated_clip_has_a_face_in_every_frame(clip_dataset):
    points = lm68.load_clip_landmarks(clip_dataset / "train" / "example", 12)
    assert points is not None and points.shape == (12, 68, 2) and np.isfinite(points).all()
    assert lm68.load_clip_landmarks(clip_dataset / "train" / "example", 13) is None  # frames changed: stale


@pytest.mark.parametrize("hflip", [0.0, 1.0])
def test_dataset_item_landmarks_sit_on_the_item_face(clip_dataset, detector, hflip):
    """The item's (flipped) landmarks agree with a fresh detection on the item's (flipped) frames."""
    from scorr_cli.train.augment import AugmentConfig
    from scorr_cli.train.data import DataConfig, FramesDataset

    aug = AugmentConfig(time_flip=0.5, horizontal_flip=hflip, brightness=0, contrast=0, saturation=0, hue=0)
    ds = FramesDataset(clip_dataset, DataConfig(num_repeats=4, augment=aug))
    for index in range(2):
        item = ds[index]
        assert item["landmarks"].shape == (2, 68, 2)
        for k, key in enumerate(("source", "driving")):
            frame = (item[key].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            seen = lm68.to_normalised(_points(detector, frame), frame.shape[1])
            err_px = np.abs(item["landmarks"][k].numpy() - seen).mean() * (frame.shape[1] - 1) / 2
            assert err_px < 2.0, (hflip, index, key, err_px)


def test_clip_without_landmarks_gives_nan_targets(tmp_path):
    from scorr_cli.train.data import FramesDataset

    clip = tmp_path / "train" / "plain"
    clip.mkdir(parents=True)
    for i in range(3):
        write_image(clip / f"{i}.png", np.full((32, 32, 3), 100 + i, np.uint8))
    item = FramesDataset(tmp_path)[0]
    assert torch.isnan(item["landmarks"]).all()


def test_guidance_loss_pulls_keypoints_to_known_targets_only():
    from scorr_cli.core.losses import LossConfig, landmark_guidance_loss

    targets = torch.tensor([[[0.5, -0.5], [float("nan"), float("nan")]]])
    kp = torch.zeros(1, 2, 2, requires_grad=True)
    loss = landmark_guidance_loss(kp, targets, 10.0)
    assert loss.item() == pytest.approx(10 * 0.5)  # the NaN target is left out of sum and count
    loss.backward()
    assert kp.grad[0, 0, 0] < 0 and kp.grad[0, 0, 1] > 0  # descent moves toward (0.5, -0.5)
    assert (kp.grad[0, 1] == 0).all()
    none = landmark_guidance_loss(kp, torch.full((1, 2, 2), float("nan")), 10.0)
    assert none.item() == 0 and none.requires_grad
    cfg = LossConfig(landmarks=10, landmarks_anneal_steps=100)
    assert [cfg.landmark_weight(s) for s in (0, 50, 100, 200)] == [10, 5, 0, 0]
    assert LossConfig(landmarks=3).landmark_weight(10**6) == 3
    with pytest.raises(ValueError):
        LossConfig(landmarks=-1)


def test_motion_guidance_compares_displacements_not_positions():
    """landmark_motion_loss: keypoints offset from their targets by the same amount in source and driving
    cost nothing (the motion is right); a driving keypoint that moves less than its target costs the
    shortfall, and descent enlarges its motion. A frame pair with a missing target is left out."""
    from scorr_cli.core.losses import LossConfig, landmark_motion_loss

    targets = torch.tensor([[[[0.0, 0.0], [0.5, 0.5]], [[0.0, 0.2], [0.5, 0.5]]]])  # B×2×K×2: kp 0 moves down
    shifted = (targets + 0.3).clone().requires_grad_(True)
    assert landmark_motion_loss(shifted, targets, 10.0).item() == pytest.approx(0.0, abs=1e-6)
    lazy = targets.clone()
    lazy[0, 1, 0, 1] = 0.05  # moved 0.05 instead of 0.2
    lazy.requires_grad_(True)
    loss = landmark_motion_loss(lazy, targets, 10.0)
    assert loss.item() == pytest.approx(10 * (0.15 / 2) / 2)  # mean over x,y, then over the 2 keypoints
    loss.backward()
    assert lazy.grad[0, 1, 0, 1] < 0 and lazy.grad[0, 0, 0, 1] > 0  # driving moves on, source back
    missing = targets.clone()
    missing[0, 1, 1] = float("nan")
    assert landmark_motion_loss(lazy.detach(), missing, 10.0).item() == pytest.approx(10 * 0.075)  # kp 1 out
    cfg = LossConfig(landmarks=10, landmark_motion=4, landmarks_anneal_steps=100)
    assert [cfg.landmark_motion_weight(s) for s in (0, 50, 100)] == [4, 2, 0]


def test_training_with_motion_guidance_alone_logs_it(clip_dataset, tmp_path):
    """loss.landmark_motion without the position term still reads the landmarks and logs its own loss."""
    from scorr_cli.train.trainer import train

    cfg = _guided_config(clip_dataset, tmp_path / "run", landmark_motion=10.0)
    cfg.schedule.max_steps = 2
    result = train(cfg, show_progress=False)
    assert "landmark_motion" in result.history[0] and "landmarks" not in result.history[0]


def test_training_with_the_lip_region_loss_and_mouth_pairs_logs_it(clip_dataset, tmp_path):
    """loss.mouth reads the driving lips and logs its own term; data.mouth_pairs changes which frames
    are paired (the other losses see different items)."""
    from scorr_cli.train.trainer import train

    cfg = _guided_config(clip_dataset, tmp_path / "run", mouth=10.0)
    cfg.schedule.max_steps = 2
    plain = train(cfg, show_progress=False).history
    assert all(h["mouth"] > 0 for h in plain)
    cfg = _guided_config(clip_dataset, tmp_path / "pairs", mouth=10.0)
    cfg.schedule.max_steps = 2
    cfg.data.mouth_pairs = 8
    assert train(cfg, show_progress=False).history[0]["pixel"] != plain[0]["pixel"]


def test_landmark_flow_loss_scores_where_the_flow_sends_each_driving_landmark():
    """A flow that carries every driving landmark onto its source landmark costs nothing; a still flow
    costs the landmarks' displacement; NaN points and points outside the image are left out; without
    refined flows the prior's sampling grid is scored."""
    from scorr_cli.core.losses import LossConfig, landmark_flow_loss

    size = 17  # level pixels; 8 pixels per [-1, 1] unit
    drv = torch.tensor([[0.0, 0.0], [0.5, -0.25], [-0.5, 0.5], [float("nan"), 0.0], [0.2, 1.5]])
    shift = torch.tensor([0.25, -0.125])  # the source lies this far from the driving, every point
    lm = torch.stack([drv + shift, drv])[None]  # B×2×P×2 (source, driving)
    exact = (shift * 8).view(1, 2, 1, 1).expand(1, 2, size, size).clone().requires_grad_(True)
    still = torch.zeros(1, 2, size, size, requires_grad=True)
    assert landmark_flow_loss([exact], lm, 10.0).item() == pytest.approx(0.0, abs=1e-6)
    loss = landmark_flow_loss([still], lm, 10.0)
    assert loss.item() == pytest.approx(10 * shift.abs().mean().item())  # 3 valid points, each off by the shift
    loss.backward()
    assert still.grad[0, 0].sum() < 0 and still.grad[0, 1].sum() > 0  # descent moves toward the shift
    assert landmark_flow_loss([still, exact], lm, 10.0).item() == pytest.approx(loss.item() / 2)  # levels averaged
    wrong_mouth = exact.detach().clone()
    wrong_mouth[0, :, 5:8, 11:14] = 0.0  # only around the second point (0.5, -0.25): row 6, column 12
    assert landmark_flow_loss([wrong_mouth], lm, 1.0).item() == pytest.approx(shift.abs().mean().item() / 3)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    identity = torch.stack([xs, ys], -1)[None]  # the prior's grid: B×h×w×2 in [-1, 1]
    assert landmark_flow_loss([], lm, 1.0, identity).item() == pytest.approx(shift.abs().mean().item(), abs=1e-5)
    assert landmark_flow_loss([], lm, 1.0, identity + shift).item() == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError):
        LossConfig(landmark_flow=-1)


def test_lip_flow_loss_scores_the_lips_shape_apart_from_head_motion_at_the_finest_levels():
    """A flow that moves the whole mouth rigidly (head motion) costs nothing, whatever the shift; a still
    flow where the mouth opens costs the opening; only the finest ``levels`` count; items with a missing
    lip point are left out."""
    from scorr_cli.core.losses import LossConfig, lip_flow_loss

    size = 17  # 8 level pixels per [-1, 1] unit
    closed = torch.tensor([[-0.5, 0.0], [0.0, -0.125], [0.5, 0.0], [0.0, 0.125]]) + torch.tensor([0.125, 0.375])
    opening = torch.tensor([[0.0, 0.0], [0.0, -0.25], [0.0, 0.0], [0.0, 0.25]])
    lips = torch.stack([closed, closed + opening])[None]  # source closed, driving open (corners, upper, lower)
    rigid = torch.tensor([2.0, -1.0]).view(1, 2, 1, 1).expand(1, 2, size, size)  # the whole mouth off by 2, -1 px
    assert lip_flow_loss([rigid], torch.stack([closed, closed])[None], 1.0, 2).item() == pytest.approx(0.0, abs=1e-6)
    still = torch.zeros(1, 2, size, size, requires_grad=True)
    loss = lip_flow_loss([still], lips, 1.0, 2)
    assert loss.item() == pytest.approx(opening.abs().mean().item())  # centre unchanged: the opening itself
    loss.backward()
    assert still.grad.abs().sum() > 0
    coarse = torch.randn(1, 2, 5, 5, generator=torch.Generator().manual_seed(0)) * 4  # a level beyond the two finest
    assert lip_flow_loss([coarse, still, still], lips, 1.0, 2).item() == pytest.approx(loss.item())
    assert lip_flow_loss([coarse, still, still], lips, 1.0, 3).item() != pytest.approx(loss.item())
    missing = torch.cat([lips, lips.clone()])
    missing[1, 0, 2] = float("nan")
    assert lip_flow_loss([still.detach().expand(2, -1, -1, -1)], missing, 1.0, 2).item() == pytest.approx(loss.item())
    with pytest.raises(ValueError):
        LossConfig(lip_flow_levels=0)


def test_training_with_the_landmark_flow_loss_lowers_it(clip_dataset, tmp_path):
    """loss.landmark_flow reads the item's 68 points and the model learns to send the driving landmarks
    to the source's (the example's head moves, so the still start is off)."""
    from scorr_cli.train.trainer import train

    result = train(_guided_config(clip_dataset, tmp_path / "run", landmark_flow=10.0), show_progress=False)
    curve = [h["landmark_flow"] for h in result.history]
    assert len(curve) == 12 and curve[0] > 0
    assert np.mean(curve[-3:]) < 0.8 * np.mean(curve[:3]), curve


def test_training_reports_the_lip_flow_loss(clip_dataset, tmp_path):
    from scorr_cli.train.trainer import train

    cfg = _guided_config(clip_dataset, tmp_path / "run", lip_flow=10.0)
    cfg.schedule.max_steps = 2
    result = train(cfg, show_progress=False)
    assert all(h["lip_flow"] > 0 for h in result.history)


def _guided_config(root: Path, out: Path, **loss: object):
    from scorr_cli.train.config import resolve_config

    return resolve_config(str(root), preset="tiny", overrides={
        "run": {"out": str(out), "log_every": 1, "sample_every": 0, "checkpoint_every": 0, "eval_clips": 0,
                "threads": 1, "num_workers": 0},
        "schedule": {"batch_size": 2, "max_steps": 12, "lr": 2e-3},
        "data": {"num_repeats": 24},
        "loss": {"perceptual_backend": "none", "pixel": 1e-3, "equivariance_value": 0,
                 "equivariance_jacobian": 0, **loss},
    })


def test_training_pulls_keypoints_toward_the_landmark_groups(clip_dataset, tmp_path):
    from scorr_cli.train.trainer import train

    result = train(_guided_config(clip_dataset, tmp_path / "run", landmarks=10.0), show_progress=False)
    curve = [h["landmarks"] for h in result.history]
    assert len(curve) == 12
    assert np.mean(curve[-3:]) < 0.6 * np.mean(curve[:3]), curve  # keypoints move to their groups
    plain = train(_guided_config(clip_dataset, tmp_path / "plain"), show_progress=False)
    assert "landmarks" not in plain.history[0]  # weight 0: the paper's losses only


def test_guidance_refuses_data_without_landmarks_and_other_keypoint_counts(clip_dataset, tmp_path):
    import shutil

    from scorr_cli.errors import InputError
    from scorr_cli.train.trainer import train

    cfg = _guided_config(clip_dataset, tmp_path / "k8", landmarks=1.0)
    cfg.model.num_kp = 8
    with pytest.raises(InputError, match="num_kp 8"):
        train(cfg, show_progress=False)
    bare = tmp_path / "bare"
    shutil.copytree(clip_dataset, bare)
    (bare / "train" / "example" / lm68.LANDMARKS_FILE).unlink()
    with pytest.raises(InputError, match="scorr crop --dataset"):
        train(_guided_config(bare, tmp_path / "r2", landmarks=1.0), show_progress=False)
    for i, loss in enumerate(({"mouth": 1.0}, {"landmark_flow": 1.0}, {"lip_flow": 1.0})):
        with pytest.raises(InputError, match="lip-region and the flow losses need"):
            train(_guided_config(bare, tmp_path / f"r{3 + i}", **loss), show_progress=False)


def test_keypoint_warmup_trains_the_detector_alone_first(clip_dataset, tmp_path):
    """schedule.keypoint_warmup_steps: the first steps move only the keypoint detector (landmark and
    equivariance losses, no reconstruction); then the whole model trains."""
    from scorr_cli.checkpoints import read_checkpoint
    from scorr_cli.errors import InputError
    from scorr_cli.train.trainer import train

    cfg = _guided_config(clip_dataset, tmp_path / "warm", landmarks=10.0, equivariance_value=10.0)
    cfg.schedule.keypoint_warmup_steps = 3
    cfg.schedule.max_steps = 3
    cfg.run.checkpoint_every = 0
    warm = train(cfg, show_progress=False)
    assert all("pixel" not in h and "landmarks" in h for h in warm.history)
    torch.manual_seed(cfg.run.seed)
    from scorr_cli.core.model import MRFA

    start = MRFA(cfg.model).state_dict()  # the same seeded initialisation the run began from
    after = read_checkpoint(warm.final).state
    changed = {k.split(".")[0] for k in start if not torch.equal(start[k], after[k])}
    assert changed == {"encoder"}, changed
    full = _guided_config(clip_dataset, tmp_path / "full", landmarks=10.0)
    full.schedule.keypoint_warmup_steps = 2
    full.schedule.max_steps = 4
    history = train(full, show_progress=False).history
    assert ["pixel" in h for h in history] == [False, False, True, True]
    bad = _guided_config(clip_dataset, tmp_path / "bad")
    bad.schedule.keypoint_warmup_steps = 2
    with pytest.raises(InputError, match="loss.landmarks"):
        train(bad, show_progress=False)


def test_motion_warmup_trains_keypoints_and_prior_motion_on_the_flow_losses(clip_dataset, tmp_path):
    """schedule.motion_warmup_steps: after the keypoint warm-up, steps that move only the keypoint detector
    and the prior's dense motion, on the flow losses scored on the prior's grid (no refiner, no
    generator, no reconstruction loss); the phases follow each other by step."""
    from scorr_cli.checkpoints import read_checkpoint
    from scorr_cli.core.model import MRFA
    from scorr_cli.errors import InputError
    from scorr_cli.train.trainer import train

    cfg = _guided_config(clip_dataset, tmp_path / "motion", landmark_flow=20.0, lip_flow=10.0)
    assert [cfg.schedule.phase(s) for s in range(3)] == ["full"] * 3  # off by default: the paper's steps
    cfg.schedule.keypoint_warmup_steps, cfg.schedule.motion_warmup_steps = 0, 3
    cfg.schedule.max_steps = 3
    cfg.run.checkpoint_every = 0
    warm = train(cfg, show_progress=False)
    assert all("pixel" not in h and h["landmark_flow"] > 0 and h["lip_flow"] > 0 for h in warm.history)
    torch.manual_seed(cfg.run.seed)
    start = MRFA(cfg.model).state_dict()  # the same seeded initialisation the run began from
    after = read_checkpoint(warm.final).state
    changed = {k.split(".")[0] for k in start if not torch.equal(start[k], after[k])}
    assert changed == {"encoder", "dense_motion"}, changed
    both = _guided_config(clip_dataset, tmp_path / "both", landmarks=10.0, landmark_flow=20.0)
    both.schedule.keypoint_warmup_steps, both.schedule.motion_warmup_steps = 1, 2
    assert [both.schedule.phase(s) for s in range(4)] == ["keypoints", "motion", "motion", "full"]
    both.schedule.max_steps = 4
    history = train(both, show_progress=False).history
    assert [("landmark_flow" in h, "pixel" in h) for h in history] == [(False, False), (True, False),
                                                                       (True, False), (True, True)]
    bad = _guided_config(clip_dataset, tmp_path / "bad", landmarks=10.0)
    bad.schedule.motion_warmup_steps = 2
    with pytest.raises(InputError, match="loss.landmark_flow"):
        train(bad, show_progress=False)


def test_keypoint_motion_benchmark_reads_a_dataset(clip_dataset, tmp_path):
    """benchmarks/keypoint_motion.py on a crop --dataset folder: one row per test clip, and the guidance
    target's own lip-gap slope near 1 (the group centres move with the lips), the number the keypoints'
    slope is read against."""
    import json
    import shutil
    import subprocess
    import sys

    root = tmp_path / "ds"
    shutil.copytree(clip_dataset / "train" / "example", root / "test" / "example")
    out = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "benchmarks" / "keypoint_motion.py"),
                          str(root), "--max-frames", "12", "--render", "--flow", "--cross"], capture_output=True,
                         text=True, timeout=300, check=True)
    line, rendered, flowed, crossed = [x for x in out.stdout.splitlines() if x.startswith("{")]
    result = json.loads(line)
    assert result["clips"] == 1 and result["rows"][0]["frames"] == 12
    assert 0.2 < result["median_target_slope"] < 1.5, result  # the example mouth barely moves: 0.33
    assert -1 <= result["median_r"] <= 1 and np.isfinite(result["median_slope"])
    # --render: both reconstructions look like the clip (the example portrait's own frames); moving the
    # keypoints by the landmarks instead changes the frames
    rows = json.loads(rendered)["rows"][0]
    assert rows["frames"] == 12 and 0 < rows["detected"]["l1"] < 0.1 and 0 < rows["landmark_moved"]["l1"] < 0.1, rows
    assert rows["detected"]["l1"] != rows["landmark_moved"]["l1"]
    # --flow: the default model's final flow carries the example's head motion (a flow read with the wrong
    # sign or units would miss more than a still one)
    flow = json.loads(flowed)["rows"][0]
    assert flow["all"]["still_px"] > 1 and flow["all"]["missed"] < 0.8, flow
    # --cross with one clip pairs it with itself: relative transfer from its own frame 0 is the reconstruction
    # (scale 1, targets = the clip's landmarks), so every measure must match --flow's
    cross = json.loads(crossed)["rows"][0]
    for region in ("all", "lips", "opening", "prior_opening"):
        for key in ("model_px", "still_px"):
            assert cross[region][key] == pytest.approx(flow[region][key], rel=1e-3, abs=1e-4), (region, cross, flow)


def test_lip_region_loss_sees_the_mouth_and_nothing_else():
    """The lip-region term crops around the driving lips: a prediction wrong only at the mouth costs it,
    one wrong only away from the mouth costs nothing, and an item without landmarks counts zero."""
    from scorr_cli.core.losses import LossConfig, ReconstructionLoss, crop_boxes, mouth_boxes

    size = 64
    lips = torch.tensor([[0.2, 0.4], [0.4, 0.4], [0.3, 0.35], [0.3, 0.45]]).unsqueeze(0)  # B×P×2, mouth at (0.3, 0.4)
    boxes, valid = mouth_boxes(lips, scale=0.8, min_half=0.05)
    assert valid.tolist() == [True] and torch.allclose(boxes, torch.tensor([[0.3, 0.4, 0.16]]))
    target = torch.zeros(1, 3, size, size)
    xs = (torch.arange(size) + 0.5) / size * 2 - 1
    near_mouth = ((xs[None, :] - 0.3).abs() < 0.1) & ((xs[:, None] - 0.4).abs() < 0.1)  # [y, x]
    crop = crop_boxes(near_mouth.float().expand(1, 3, size, size), boxes, 16)
    assert crop[0, 0, 8, 8] == 1 and crop[0, 0, 0, 0] == 0  # the crop is centred on the mouth
    loss = ReconstructionLoss(LossConfig(perceptual_backend="none", pixel=1.0, mouth=10.0, mouth_size=16))
    open_mouth = target.clone()
    open_mouth[:, :, near_mouth] = 1.0
    far = target.clone()
    far[:, :, :8, :8] = 1.0  # the top-left corner: no mouth there
    assert loss(open_mouth, target, lips)["mouth"].item() > 1.0
    assert loss(far, target, lips)["mouth"].item() == 0.0
    assert loss(far, target, lips)["pixel"].item() > 0.0  # the whole-image term still sees it
    none = torch.full_like(lips, float("nan"))
    assert loss(open_mouth, target, none)["mouth"].item() == 0.0
    assert "mouth" not in loss(open_mouth, target)  # no landmarks passed: no term
    both = loss(open_mouth.expand(2, -1, -1, -1), target.expand(2, -1, -1, -1), torch.cat([lips, none]))
    assert both["mouth"].item() == pytest.approx(loss(open_mouth, target, lips)["mouth"].item())  # mean over items with lips


def test_mouth_contrast_pairs_pick_the_pair_whose_mouths_differ():
    """data.mouth_pairs: of N drawn frame pairs the one with the largest mouth-opening difference; 1
    keeps the paper's draw (the same frames as before the option existed)."""
    from scorr_cli.train.data import mouth_contrast_pair

    points = np.zeros((20, 68, 2), np.float32)
    points[:, 36], points[:, 45] = (0, 0), (10, 0)  # eye corners: inter-ocular 10
    points[:, 61:64, 1], points[:, 65:68, 1] = 20, 20  # closed mouth
    points[7, 65:68, 1] = 25  # frame 7 opens it
    points[3] = np.nan  # frame 3 has no face
    rng = np.random.default_rng(0)
    picked = [mouth_contrast_pair(points, [0, 1], 32, rng) for _ in range(5)]
    assert all(7 in pair and 3 not in pair for pair in picked), picked
    assert mouth_contrast_pair(points, [3, 5], 1, rng) == [3, 5]


def test_motion_contrast_pairs_pick_the_pair_whose_landmarks_move_most():
    """data.motion_pairs: of N drawn frame pairs the one whose landmarks move most; frames without a face
    never win; 1 keeps the paper's draw; it cannot be combined with mouth_pairs."""
    from scorr_cli.train.data import DataConfig, motion_contrast_pair

    points = np.tile(np.linspace(0, 100, 68 * 2, dtype=np.float32).reshape(1, 68, 2), (20, 1, 1))
    points[11] += 30.0  # the head moves in frame 11 only
    points[4] = np.nan  # frame 4 has no face
    points[5, :, 0] += 5.0  # a small motion, in a pair that also has a NaN frame
    rng = np.random.default_rng(0)
    picked = [motion_contrast_pair(points, [0, 1], 32, rng) for _ in range(5)]
    assert all(11 in pair and 4 not in pair for pair in picked), picked
    assert motion_contrast_pair(points, [4, 5], 1, rng) == [4, 5]
    with pytest.raises(ValueError, match="only one"):
        DataConfig(mouth_pairs=4, motion_pairs=4)


def test_mouth_check_benchmark_runs_on_a_training_split(clip_dataset, tmp_path):
    """benchmarks/mouth_check.py reads a split of a crop --dataset folder: one row per clip, its blurred
    control measured against the truth, and a montage (truth above, model below) per clip."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "benchmarks" / "mouth_check.py"),
                          str(clip_dataset), "--split", "train", "--max-frames", "8", "--montage", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["clips"] == 1 and result["rows"][0]["frames"] == 8
    assert np.isfinite(result["median_control_amp"]) and result["median_control_amp"] > 0
    sheet = read_image(tmp_path / "example.png")
    assert sheet.shape[:2] == (2 * 128, 7 * 128)  # 7 frames, truth over model, at the default model's size


def test_pose_metric_benchmark_compares_the_estimators_on_a_split(clip_dataset):
    """benchmarks/pose_metric.py: for each clip, the pose of the stored 256² landmarks against landmarks found
    again at 128², for the follow metric's fit and for cv2.solvePnP; medians in the last (JSON) line."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "benchmarks" / "pose_metric.py"),
                          str(clip_dataset), "--split", "train", "--frames", "8"],
                         capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["benchmark"] == "pose_metric" and result["clips"] == 1 and result["frames"] == 8
    for estimator in ("fit", "solvePnP", "solvePnP from the fit"):
        assert np.isfinite(result["medians"][f"{estimator} yaw jitter"]), estimator
        assert -1 <= result["medians"][f"{estimator} pitch r"] <= 1, estimator


@pytest.mark.parametrize("phase", ["full", "motion"])
def test_cross_identity_terms_score_the_next_items_motion_transferred_as_animate_does(clip_dataset, tmp_path, phase):
    """loss.cross_flow / cross_lip_flow: item i's source driven by item i+1's motion (relative keypoints and
    jacobians, hull-scaled), scored at i's landmarks moved by i+1's landmark motion. One item drives itself,
    so the terms equal the reconstruction's landmark_flow / lip_flow; with three, they equal the flow terms on
    the flows `scorr animate`'s painting path gives for the next item's motion."""
    from scorr_cli.checkpoints import load_checkpoint, resolve_checkpoint
    from scorr_cli.core.losses import landmark_flow_loss, lip_flow_loss
    from scorr_cli.core.transfer import TransferOptions, movement_scale, transfer_keypoints
    from scorr_cli.train.data import resize_frame, to_tensor
    from scorr_cli.train.trainer import TrainingStep

    cfg = _guided_config(clip_dataset, tmp_path / "x", landmark_flow=2.0, lip_flow=3.0, cross_flow=2.0,
                         cross_lip_flow=3.0)
    model, _ = load_checkpoint(resolve_checkpoint(None), "cpu")  # trained: its flows follow the keypoints
    model.eval()
    step = TrainingStep(model, cfg)
    frames = sorted((clip_dataset / "train" / "example").glob("*.png"))
    images = torch.stack([to_tensor(resize_frame(read_image(f), model.cfg.image_size)) for f in frames])
    source, driving = images[[0, 5, 9]], images[[3, 1, 11]]
    source[1], driving[1] = source[1].flip(-1), driving[1].flip(-1)  # another "person" for item 1
    g = torch.Generator().manual_seed(1)
    landmarks = torch.rand(3, 2, 68, 2, generator=g) * 1.2 - 0.6
    with torch.no_grad():
        one = step(source[:1], driving[:1], None, False, None, None, phase=phase, landmarks=landmarks[:1])["losses"]
        assert one["cross_flow"].item() == pytest.approx(one["landmark_flow"].item(), rel=1e-4)
        assert one["cross_lip_flow"].item() == pytest.approx(one["lip_flow"].item(), rel=1e-4)
        three = step(source, driving, None, False, None, None, phase=phase, landmarks=landmarks)["losses"]
        assert three["cross_flow"].item() != pytest.approx(three["landmark_flow"].item(), rel=1e-2)
        nxt = [1, 2, 0]
        kp_s, kp_d = model.detect(source), model.detect(driving)
        reference = {k: v[nxt] for k, v in kp_s.items()}
        scale = movement_scale(kp_s["kp"], reference["kp"])
        kp = transfer_keypoints(kp_s, {k: v[nxt] for k, v in kp_d.items()}, reference, TransferOptions(), scale)
        moved = landmarks[:, 0] + scale.float().view(3, 1, 1) * (landmarks[nxt, 1] - landmarks[nxt, 0])
        points = torch.stack([landmarks[:, 0], moved], 1)
        if phase == "full":
            rendered = model.animate(model.prepare_source(source), kp)
            flows, deformation = rendered.refiner.flows, rendered.dense["deformation"]
            assert len(flows) > 1
        else:
            flows, deformation = [], model.prior_motion(source, kp, kp_s)["deformation"]
    assert three["cross_flow"].item() == pytest.approx(landmark_flow_loss(flows, points, 2.0, deformation).item(),
                                                       rel=1e-4)
    lips = points[:, :, list(lm68.LIPS)]
    assert three["cross_lip_flow"].item() == pytest.approx(lip_flow_loss(flows, lips, 3.0, 2, deformation).item(),
                                                           rel=1e-4)


def test_training_reports_the_cross_identity_terms(clip_dataset, tmp_path):
    from scorr_cli.train.trainer import train

    cfg = _guided_config(clip_dataset, tmp_path / "run", cross_flow=5.0, cross_lip_flow=10.0)
    cfg.schedule.max_steps = 2
    result = train(cfg, show_progress=False)
    assert all(h["cross_flow"] > 0 and h["cross_lip_flow"] > 0 for h in result.history)
