"""How far apart are the follow scores of two renders that nobody could tell apart? The noise floor of
``scorr evaluate --cross``, against which an inference setting (bf16, skipped updater levels) is judged.

For each cross-identity pair of an earlier ``scorr evaluate --cross`` run (its ``per_clip.csv``), the
default weights render the first N driving frames in several variants; dlib's 68 landmarks are found on
every output frame. Printed per pair and as medians: the mean landmark distance (pixels at the model's
resolution) of each variant to the fp32 render, and each variant's yaw/pitch/roll correlation with the
driving clip. The control variant is the fp32 render dithered by ±1/255 (invisible): what it moves is the
detector's own noise.

    python benchmarks/follow_noise.py --data DATA --sources PHOTOS --pairs EVAL/per_clip.csv [--frames 30]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
VARIANTS = {"bf16": ("bf16", 0), "skip1": ("fp32", 1), "bf16 skip1": ("bf16", 1)}  # name: (precision, skip)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="dataset root (its test/ clips drive)")
    ap.add_argument("--sources", type=Path, required=True, help="the photos of the --cross run")
    ap.add_argument("--pairs", type=Path, required=True, help="per_clip.csv of a `scorr evaluate --cross` run")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--checkpoint", default=None)
    args = ap.parse_args()

    import numpy as np
    import torch

    from scorr_cli.checkpoints import load_checkpoint, resolve_checkpoint
    from scorr_cli.core.engine import AnimationEngine
    from scorr_cli.core.transfer import TransferOptions
    from scorr_cli.evaluate import metrics as M
    from scorr_cli.evaluate.follow import follow_scores, sequence_signals
    from scorr_cli.evaluate.protocol import photo_sources
    from scorr_cli.faces import get_detector
    from scorr_cli.media import read_image
    from scorr_cli.pipeline.render import images_to_tensor, tensor_to_images

    path = resolve_checkpoint(args.checkpoint)
    engines = {"fp32": AnimationEngine(load_checkpoint(path, skip_updates=0)[0], "cpu", "fp32")}
    for name, (precision, skip) in VARIANTS.items():
        engines[name] = AnimationEngine(load_checkpoint(path, skip_updates=skip)[0], "cpu", precision)
    size = engines["fp32"].size
    faces = M.FaceMetrics(get_detector("dlib"))
    photos = {p.name: p.image for p in photo_sources(args.sources, size, faces.detector)}
    pairs = sorted({(r["clip"], r["driving"]) for r in csv.DictReader(args.pairs.open())})
    rng = np.random.default_rng(0)

    def landmarks(frames):
        return [faces.face(f).landmarks for f in frames]

    def distance(a, b):
        d = [np.linalg.norm(x - y, axis=1).mean() for x, y in zip(a, b) if x is not None and y is not None]
        return float(np.mean(d)) if d else float("nan")

    rows = []
    for photo, clip in pairs:
        files = sorted((args.data / "test" / clip).glob("*.png"))[:args.frames]
        driving = torch.nn.functional.interpolate(images_to_tensor([read_image(f) for f in files]), size=size,
                                                  mode="bilinear", antialias=True)
        outputs = {}
        for name, engine in engines.items():
            state = engine.prepare(photos[photo][None])
            preds = [engine.animate(state, driving[i:i + 8], TransferOptions("relative", True)).prediction
                     for i in range(0, len(driving), 8)]
            outputs[name] = list(tensor_to_images(torch.cat(preds)))
        outputs["fp32 dithered"] = [np.clip(o.astype(np.int16) + rng.integers(-1, 2, o.shape), 0, 255).astype(np.uint8)
                                    for o in outputs["fp32"]]
        marks = {name: landmarks(frames) for name, frames in outputs.items()}
        drive = sequence_signals(landmarks(list(tensor_to_images(driving))), (size, size))
        row = {"pair": f"{photo} / {clip}"}
        for name in marks:
            if name != "fp32":
                row[f"{name}: landmark px"] = distance(marks["fp32"], marks[name])
            scores = follow_scores(sequence_signals(marks[name], (size, size)), drive)
            row.update({f"{name}: {k}": scores[k] for k in ("yaw_corr", "pitch_corr", "roll_corr")})
        rows.append(row)
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    medians = {k: round(float(np.nanmedian([r[k] for r in rows])), 3) for k in rows[0] if k != "pair"}
    print(json.dumps({"benchmark": "follow_noise", "frames": args.frames, "pairs": len(rows), "medians": medians}))


if __name__ == "__main__":
    main()
