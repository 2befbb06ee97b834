"""benchmarks/gpu_train/transfer.py: the dataset and weights survive the trip to a lent GPU machine and back."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import torch

from scorr_cli.checkpoints.store import read_checkpoint, save_checkpoint
from scorr_cli.core.config import tiny
from scorr_cli.core.model import MRFA
from scorr_cli.train.data import FramesDataset

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("transfer", ROOT / "benchmarks" / "gpu_train" / "transfer.py")
transfer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(transfer)


def test_dataset_round_trip_keeps_frames_and_landmark_positions(tmp_path):
    clip = tmp_path / "ds" / "train" / "person_a"
    clip.mkdir(parents=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:256]
    for i in range(6):  # smooth moving gradients: what H.264 keeps well
        im = np.stack([(xx + 8 * i) % 256, (yy + 4 * i) % 256, (xx + yy) // 2], -1).astype(np.uint8)
        cv2.imwrite(str(clip / f"{i:05d}.png"), im)
    landmarks = rng.uniform(0, 255, (6, 68, 2)).astype(np.float32)
    np.save(clip / "landmarks.npy", landmarks)
    transfer.main(["--workers", "1", "pack-data", str(tmp_path / "ds"), str(tmp_path / "packed")])
    assert (tmp_path / "packed" / "train" / "person_a.mp4").stat().st_size < 6 * 128 * 128  # compressed
    transfer.main(["--workers", "1", "unpack-data", str(tmp_path / "packed"), str(tmp_path / "back")])
    frames = sorted((tmp_path / "back" / "train" / "person_a").glob("*.png"))
    assert len(frames) == 6
    for i, f in enumerate(frames):
        want = cv2.resize(cv2.imread(str(clip / f"{i:05d}.png")), (128, 128), interpolation=cv2.INTER_AREA)
        got = cv2.imread(str(f))
        psnr = 10 * np.log10(255**2 / np.mean((got.astype(float) - want) ** 2))
        assert psnr > 35, (i, psnr)
    # The trainer sees the same normalised landmarks from the 128² copy as from the 256² original.
    before = FramesDataset(tmp_path / "ds").clips[0]
    after = FramesDataset(tmp_path / "back").clips[0]
    norm = lambda c: c.landmarks / (c.read([0])[0].shape[0] - 1)  # noqa: E731
    assert np.abs(norm(before) - norm(after)).max() < 1e-3


def test_weights_round_trip_is_byte_exact_and_split_in_pieces(tmp_path, monkeypatch):
    torch.manual_seed(0)
    files = []
    for name in ("a", "b"):
        files.append(save_checkpoint(tmp_path / f"{name}.safetensors", MRFA(tiny()), dtype=torch.float16,
                                     metadata={"steps": 1}))
    monkeypatch.setattr(transfer, "PIECE", 200_000)  # force several pieces
    transfer.main(["--workers", "1", "pack-weights", str(tmp_path / "out"), *map(str, files)])
    assert len(list((tmp_path / "out").glob("weights*.bin"))) > 1
    assert all(p.stat().st_size <= 200_000 for p in (tmp_path / "out").glob("weights*.bin"))
    transfer.main(["--workers", "1", "unpack-weights", str(tmp_path / "out"), str(tmp_path / "back")])
    for f in files:
        assert (tmp_path / "back" / f.name).read_bytes() == f.read_bytes()
        read_checkpoint(tmp_path / "back" / f.name)
