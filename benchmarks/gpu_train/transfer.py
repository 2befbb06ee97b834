"""Move a training job to a lent GPU machine and its weights back, within a device tool's size limits.

A lent machine gets the working tree (64 MiB, the default model's 36.7 MB included) and returns at most
64 MiB in files of 16 MiB. A `scorr crop --dataset` folder (256² PNG frames, ~1.1 GB here) does not fit,
and two exported fp16 models (2 x 36.7 MB) do not come back as they are. So:

  pack-data DATASET DIR [--crf 10]   each clip -> DIR/SPLIT/NAME.mp4 (the trainer's 128² area-filtered
                                     frames, H.264 yuv444, ~42 dB PSNR at crf 10) + NAME.npy (its landmarks,
                                     rescaled to 128², float16): the 65 clips here take 19 MB
  unpack-data DIR DATASET            back to PNG folders with landmarks.npy (checks every frame count)
  pack-weights OUT FILE...           exported .safetensors -> byte planes of the fp16 data, lzma each,
                                     cut into 15.5 MB pieces (two models: 61.8 MB)
  unpack-weights DIR DEST            the files again, byte for byte (sha256 checked)

Only the packing is here; the device machine runs `gpu_train.sh`. Media never enter the repository:
DIR belongs in a git-ignored folder that the device call carries.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from scorr_cli.media._ffmpeg import BASE_ARGS, ffmpeg_exe
from scorr_cli.train.data import Clip, resize_frame, scan_clips

SIZE = 128  # the lite preset's image_size: the trainer would area-filter 256² frames to this anyway
PIECE = 15_500_000  # under the device tool's 16 MiB per returned file
SPLITS = ("train", "test")


def pack_clip(clip: Clip, out: Path, crf: int) -> int:
    """``clip`` read and resized as the trainer reads it (its frame order, its landmark check, its
    ``resize_frame`` rule), encoded at 128²."""
    landmarks = clip.landmarks
    if landmarks is None:
        raise SystemExit(f"{clip.path}: no landmarks.npy matching its {clip.num_frames} frames")
    enc = subprocess.Popen([ffmpeg_exe(), *BASE_ARGS, "-y", "-loglevel", "error", "-f", "rawvideo",
                            "-pix_fmt", "rgb24", "-s", f"{SIZE}x{SIZE}", "-r", "25", "-i", "-", "-c:v", "libx264",
                            "-preset", "veryslow", "-crf", str(crf), "-pix_fmt", "yuv444p",
                            str(out / f"{clip.name}.mp4")], stdin=subprocess.PIPE)
    h = w = None
    for frame in clip.iter_frames():
        h, w = frame.shape[:2]
        enc.stdin.write(np.rint(resize_frame(frame, SIZE) * 255).astype(np.uint8).tobytes())
    enc.stdin.close()
    if enc.wait() != 0:
        raise SystemExit(f"{clip.path}: ffmpeg failed")
    # The trainer normalises landmarks by (side - 1): rescale so they land on the same [-1, 1] points.
    scale = np.array([(SIZE - 1) / (w - 1), (SIZE - 1) / (h - 1)], dtype=np.float32)
    np.save(out / f"{clip.name}.npy", (landmarks * scale).astype(np.float16))
    return clip.num_frames


def unpack_clip(job: tuple[Path, Path]) -> int:
    video, dest = job
    folder = dest / video.stem
    folder.mkdir(parents=True, exist_ok=True)
    cap, n = cv2.VideoCapture(str(video)), 0
    while True:
        ok, im = cap.read()
        if not ok:
            break
        cv2.imwrite(str(folder / f"{n:05d}.png"), im)
        n += 1
    landmarks = np.load(video.with_suffix(".npy"), allow_pickle=False).astype(np.float32)
    if n < 2 or len(landmarks) != n:
        raise SystemExit(f"{video}: decoded {n} frames for {len(landmarks)} landmark rows")
    np.save(folder / "landmarks.npy", landmarks)
    return n


def _planes(path: str) -> tuple[bytes, bytes, bytes, str]:
    """(safetensors header, lzma of the low bytes, lzma of the high bytes, sha256): fp16 high bytes
    (sign, exponent) compress far better apart from the low ones (30.8 against 32.7 MB for one model)."""
    raw = Path(path).read_bytes()
    n = int.from_bytes(raw[:8], "little")
    data = np.frombuffer(raw[8 + n:], np.uint8).reshape(-1, 2)  # the data block starts 8-aligned
    return (raw[:8 + n], lzma.compress(data[:, 0].tobytes()), lzma.compress(data[:, 1].tobytes()),
            hashlib.sha256(raw).hexdigest())


def _map(fn, items: list, workers: int | None) -> list:
    """``fn`` over ``items`` in worker processes (the device machine has 16 cores), or in this one."""
    if workers == 1:
        return [fn(x) for x in items]
    with ProcessPoolExecutor(workers) as ex:
        return list(ex.map(fn, items))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack-data"); p.add_argument("dataset", type=Path); p.add_argument("dir", type=Path)
    p.add_argument("--crf", type=int, default=10)
    p = sub.add_parser("unpack-data"); p.add_argument("dir", type=Path); p.add_argument("dataset", type=Path)
    p = sub.add_parser("pack-weights"); p.add_argument("out", type=Path); p.add_argument("files", nargs="+")
    p = sub.add_parser("unpack-weights"); p.add_argument("dir", type=Path); p.add_argument("dest", type=Path)
    a = ap.parse_args(argv)
    if a.cmd == "pack-data":
        for split in SPLITS:
            if not (a.dataset / split).is_dir():
                continue
            (a.dir / split).mkdir(parents=True, exist_ok=True)
            for clip in scan_clips(a.dataset, split):
                print(split, clip.name, pack_clip(clip, a.dir / split, a.crf), flush=True)
    elif a.cmd == "unpack-data":
        jobs = [(v, a.dataset / s) for s in SPLITS for v in sorted((a.dir / s).glob("*.mp4"))]
        counts = _map(unpack_clip, jobs, a.workers)
        print(f"unpacked {len(jobs)} clips, {sum(counts)} frames", flush=True)
    elif a.cmd == "pack-weights":
        parts = _map(_planes, a.files, a.workers)
        blob, index = bytearray(), []
        for f, (head, lo, hi, sha) in zip(a.files, parts):
            index.append({"name": Path(f).name, "sha256": sha, "sizes": [len(head), len(lo), len(hi)]})
            blob += head + lo + hi
        a.out.mkdir(parents=True, exist_ok=True)
        for i in range(0, len(blob), PIECE):
            (a.out / f"weights{i // PIECE}.bin").write_bytes(blob[i:i + PIECE])
        (a.out / "weights.json").write_text(json.dumps(index))
        print(f"packed {len(a.files)} files into {len(blob)} bytes", flush=True)
    else:
        index = json.loads((a.dir / "weights.json").read_text())
        blob = b"".join((a.dir / f"weights{i}.bin").read_bytes() for i in range(len(list(a.dir.glob("weights*.bin")))))
        a.dest.mkdir(parents=True, exist_ok=True)
        pos = 0
        for e in index:
            h, nl, nh = e["sizes"]
            lo = lzma.decompress(blob[pos + h:pos + h + nl])
            hi = lzma.decompress(blob[pos + h + nl:pos + h + nl + nh])
            data = np.empty((len(lo), 2), np.uint8)
            data[:, 0], data[:, 1] = np.frombuffer(lo, np.uint8), np.frombuffer(hi, np.uint8)
            raw = blob[pos:pos + h] + data.tobytes()
            pos += h + nl + nh
            if hashlib.sha256(raw).hexdigest() != e["sha256"]:
                raise SystemExit(f"{e['name']}: checksum mismatch")
            (a.dest / e["name"]).write_bytes(raw)
            print("restored", a.dest / e["name"], flush=True)


if __name__ == "__main__":
    sys.exit(main())
