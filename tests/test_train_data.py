"""Training data: clip discovery, frame pairs, id sampling, seeding, augmentation, errors, test split."""

from __future__ import annotations

from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
import torch

from scorr_cli.errors import InputError
from scorr_cli.train import augment as aug
from scorr_cli.train.data import Clip, DataConfig, FramesDataset, data_preset, iter_test_clips

VIDEO_FRAMES = 48
REAL_CLIP = "dreamtalk_M030_front_happy_level3_001.mp4"


def _level(k: int) -> int:
    """Grey level that encodes frame number ``k`` (4 levels apart: survives H.264)."""
    return 20 + 4 * k


def _write_frames(folder: Path, n: int, size: int = 64, ext: str = ".png") -> None:
    folder.mkdir(parents=True)
    for k in range(n):
        # Unpadded names (1, 2, ..., 10, 11): listing order must be natural, not lexicographic.
        cv2.imwrite(str(folder / f"{k + 1}{ext}"), np.full((size, size, 3), _level(k), np.uint8))


def _write_video(path: Path, n: int = VIDEO_FRAMES, size: int = 32) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = imageio_ffmpeg.write_frames(str(path), (size, size), fps=25, quality=9, ffmpeg_log_level="error")
    writer.send(None)
    for k in range(n):
        writer.send(np.full((size, size, 3), _level(k), np.uint8).tobytes())
    writer.close()


def _frame_number(t: torch.Tensor) -> float:
    return (t.mean().item() * 255 - 20) / 4


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    r = tmp_path_factory.mktemp("dataset")
    _write_frames(r / "train" / "id1#a", 12)
    _write_video(r / "train" / "id1#b.mp4")
    _write_frames(r / "train" / "id2#c", 6, ext=".jpg")
    (r / "train" / "notes.txt").write_text("not a clip")
    _write_frames(r / "test" / "id3#d", 5)
    _write_video(r / "test" / "id4#e.mp4", n=7)
    return r


def _plain(**kw) -> DataConfig:
    return DataConfig(**{"frame_size": 32, "augment": aug.AugmentConfig.disabled(), **kw})


def test_items_are_sorted_frame_pairs_of_one_clip(root):
    ds = FramesDataset(root, _plain())
    assert [c.name for c in ds.clips] == ["id1#a", "id1#b.mp4", "id2#c"]
    assert len(ds) == 3
    for i in range(len(ds)):
        for epoch in range(4):
            item = ds[(epoch, i)]
            src, drv = item["source"], item["driving"]
            assert src.shape == drv.shape == (3, 32, 32) and src.dtype == torch.float32
            assert 0 <= src.min() and src.max() <= 1
            a, b = item["frame_indices"].tolist()
            assert a <= b
            # Pixel content is the frame the index names (folders: natural order; video: exact seek).
            assert abs(_frame_number(src) - a) < 0.5 and abs(_frame_number(drv) - b) < 0.5


def test_time_flip_swaps_source_and_driving(root):
    flip = aug.AugmentConfig(time_flip=1.0, horizontal_flip=0.0, brightness=0.0, contrast=0.0, saturation=0.0,
                             hue=0.0)
    ds = FramesDataset(root, _plain(augment=flip))
    for i in range(3):
        item = ds[i]
        a, b = item["frame_indices"].tolist()
        assert a >= b
        assert abs(_frame_number(item["source"]) - a) < 0.5 and abs(_frame_number(item["driving"]) - b) < 0.5


def test_video_random_access_matches_sequential_decode(root):
    clip = Clip(root / "train" / "id1#b.mp4")
    assert clip.num_frames == VIDEO_FRAMES
    sequential = list(clip.iter_frames())
    assert len(sequential) == VIDEO_FRAMES
    # Out of order, repeated, far apart (seek) and close (decode on); a lone far frame (seek from 0).
    for wanted in ([45, 2, 3, 40, 2], [44], [10, 30, 47]):
        for k, frame in zip(wanted, clip.read(wanted)):
            assert np.array_equal(frame, sequential[k])


def test_id_sampling_and_repeats(root):
    ds = FramesDataset(root, _plain(id_sampling=True, num_repeats=20))
    assert ds.identities == ["id1", "id2"]
    assert len(ds) == 40
    names = [ds[i]["name"] for i in range(0, 40, 2)]  # even indices: identity id1
    assert set(names) == {"id1#a", "id1#b.mp4"}
    assert all(ds[i]["name"] == "id2#c" for i in range(1, 9, 2))
    prefix = FramesDataset(root, _plain(id_sampling=True, split_len=2))
    assert prefix.identities == ["id"]
    assert data_preset("vox").num_repeats == 150 and data_preset("celebvhq").split_len == 11


def test_seeded_and_epoch_dependent(root):
    cfg = DataConfig(frame_size=32, seed=7)  # full augmentation
    a, b = FramesDataset(root, cfg), FramesDataset(root, cfg)
    for i in range(3):
        x, y = a[i], b[i]
        assert torch.equal(x["source"], y["source"]) and torch.equal(x["driving"], y["driving"])
    a.set_epoch(1)
    other_seed = FramesDataset(root, DataConfig(frame_size=32, seed=8))

    def sig(d: FramesDataset) -> list[tuple[int, ...]]:
        return [tuple(d[i]["frame_indices"].tolist()) + (round(d[i]["source"].sum().item(), 3),) for i in range(3)]

    b.set_epoch(0)
    assert sig(a) != sig(b)
    assert sig(other_seed) != sig(b)
    assert sig(a) == [tuple(b[(1, i)]["frame_indices"].tolist()) + (round(b[(1, i)]["source"].sum().item(), 3),)
                      for i in range(3)]


def test_batches_through_a_dataloader(root):
    loader = torch.utils.data.DataLoader(FramesDataset(root, DataConfig(frame_size=32)), batch_size=3)
    batch = next(iter(loader))
    assert batch["source"].shape == (3, 3, 32, 32) and batch["frame_indices"].shape == (3, 2)


def test_flips_and_jitter():
    rng = np.random.default_rng(0)
    f0, f1 = rng.random((2, 8, 10, 3), dtype=np.float32)
    out = aug.apply([f0, f1], aug.AugmentParams(time_flip=True, horizontal_flip=True, jitter=()))
    assert np.array_equal(out[0], f1[:, ::-1]) and np.array_equal(out[1], f0[:, ::-1])
    assert np.allclose(aug.adjust(f0, "hue", 0.0), f0, atol=1e-5)
    assert np.allclose(aug.adjust(f0, "brightness", 1.0), f0)
    grey = aug.adjust(f0, "saturation", 0.0)
    assert np.allclose(grey[..., 0], grey[..., 2], atol=1e-6)
    shifted = aug.adjust(f0, "hue", 0.5)
    assert np.allclose(aug.adjust(shifted, "hue", 0.5), f0, atol=1e-4)
    assert aug.adjust(f0, "brightness", 1.5).max() <= 1.0

    def both_rate(cfg: aug.AugmentConfig) -> float:
        r = np.random.default_rng(1)
        draws = [aug.sample_params(cfg, r) for _ in range(2000)]
        return float(np.mean([d.time_flip and d.horizontal_flip for d in draws]))

    assert 0.2 < both_rate(aug.AugmentConfig()) < 0.3  # independent flips
    assert both_rate(aug.AugmentConfig(independent_flips=False)) == 0.0  # the authors' coupling
    params = aug.sample_params(aug.AugmentConfig(), np.random.default_rng(3))
    assert sorted(op for op, _ in params.jitter) == sorted(aug.JITTER_OPS)


def test_resizes_to_frame_size(root):
    item = FramesDataset(root, _plain(frame_size=48))[0]
    assert item["source"].shape == (3, 48, 48)
    native = FramesDataset(root, DataConfig(augment=aug.AugmentConfig.disabled()))
    assert native[0]["source"].shape == (3, 64, 64)  # None keeps the stored size


def test_bad_roots(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        FramesDataset(tmp_path / "nope")
    with pytest.raises(InputError, match="no train/"):
        FramesDataset(tmp_path)
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "readme.md").write_text("x")
    with pytest.raises(InputError, match="holds no clips"):
        FramesDataset(tmp_path)
    _write_frames(tmp_path / "train" / "ok", 3)
    _write_frames(tmp_path / "train" / "short", 1)
    with pytest.raises(InputError, match="'short'.*1 frame") as err:
        FramesDataset(tmp_path)
    assert "\n" not in str(err.value)
    (tmp_path / "train" / "broken.mp4").write_bytes(b"not a video")
    (tmp_path / "train" / "short" / "1.png").unlink()
    (tmp_path / "train" / "short").rmdir()
    with pytest.raises(InputError, match="broken.mp4"):
        FramesDataset(tmp_path)


def test_test_split_streams_whole_clips_in_order(root):
    clips = list(iter_test_clips(root, frame_size=16))
    assert [c.name for c in clips] == ["id3#d", "id4#e.mp4"]
    for clip, n in zip(clips, (5, 7)):
        assert clip.num_frames == n
        frames = list(clip.frames())
        assert len(frames) == n and frames[0].shape == (3, 16, 16)
        assert [round(_frame_number(f)) for f in frames] == list(range(n))


def test_real_clip(faces_media, tmp_path):
    video = faces_media / "driving" / REAL_CLIP
    if not video.is_file():
        pytest.skip(f"{video} not present")
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / REAL_CLIP).symlink_to(video)
    ds = FramesDataset(tmp_path, _plain(frame_size=64))
    item = ds[0]
    a, b = item["frame_indices"].tolist()
    # Independent decoder (the ffmpeg binary) as the reference.
    ref = list(imageio_ffmpeg.read_frames(str(video), output_params=["-s", "64x64", "-sws_flags", "area"]))
    meta, frames = ref[0], ref[1:]
    assert ds.clips[0].num_frames == len(frames)
    w, h = meta["size"]
    for idx, got in ((a, item["source"]), (b, item["driving"])):
        want = torch.from_numpy(np.frombuffer(frames[idx], np.uint8).reshape(h, w, 3).copy()).permute(2, 0, 1)
        assert (got - want.float() / 255).abs().mean() < 0.03
