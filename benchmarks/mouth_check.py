"""Can the follow metric see a mouth at the model's resolution, and does the model open one it was trained on?

For each clip of a ``scorr crop --dataset`` split (``--split train`` asks about clips the model has seen),
the first N frames are reconstructed as ``scorr evaluate`` does (frame 0 is the source, every frame
drives itself), and dlib's mouth opening (the follow metric's signal) is measured on the ground truth,
on the ground truth blurred by a Gaussian of ``--blur`` pixels (a control: a soft but correct face),
and on the reconstruction. Per clip and as medians: the correlation and amplitude ratio of the blurred
truth and of the model against the truth. A control near r 1 says the metric can see the mouth at this
resolution; a model near 0 there says the model does not move it. ``--montage DIR`` writes, per clip,
frame 0 and the six frames whose mouths open most: truth above, model below.

    python benchmarks/mouth_check.py DATASET [--split test|train] [--clips NAME ...] [--checkpoint CK]
                                     [--max-frames 60] [--blur 1.0] [--montage DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--split", default="test")
    ap.add_argument("--clips", nargs="*", default=None, help="clip-name prefixes to keep (default: all)")
    ap.add_argument("--checkpoint", default=None, help="default: the default weights")
    ap.add_argument("--max-frames", type=int, default=60)
    ap.add_argument("--blur", type=float, default=1.0, help="the control's Gaussian sigma, pixels at the model's size")
    ap.add_argument("--montage", type=Path, default=None)
    args = ap.parse_args()

    import cv2
    import torch

    from scorr_cli.core.engine import SourceState
    from scorr_cli.evaluate.follow import SIGNALS, amplitude, pearson
    from scorr_cli.evaluate.metrics import FaceMetrics
    from scorr_cli.faces import get_detector
    from scorr_cli.pipeline.options import RenderOptions
    from scorr_cli.pipeline.render import load_engine, tensor_to_images
    from scorr_cli.train.data import iter_test_clips

    engine = load_engine(RenderOptions(checkpoint=args.checkpoint, precision="fp32", device="cpu"))
    faces = FaceMetrics(get_detector("dlib"))

    def mouth(images: list[np.ndarray]) -> np.ndarray:
        return faces.signals(images, images[0].shape[:2])[:, SIGNALS.index("mouth")]

    rows = []
    for clip in iter_test_clips(args.dataset, engine.size, split=args.split):
        if args.clips and not any(clip.name.startswith(p) for p in args.clips):
            continue
        frames = [f for _, f in zip(range(args.max_frames), clip.frames())]
        truth = torch.stack(frames)
        state = SourceState(engine.prepare(truth[:1]).prepared)
        pred = torch.cat([engine.reconstruct(state, truth[:1], truth[i:i + 8], engine.model.has_background)
                          for i in range(0, len(truth), 8)])
        truth_u8, pred_u8 = tensor_to_images(truth), tensor_to_images(pred)
        blurred = [cv2.GaussianBlur(im, (0, 0), args.blur) for im in truth_u8]
        t, b, p = mouth(truth_u8), mouth(blurred), mouth(pred_u8)
        rows.append({"clip": clip.name, "frames": len(frames), "truth_std": float(np.nanstd(t)),
                     "control_r": pearson(b, t), "control_amp": amplitude(b, t),
                     "model_r": pearson(p, t), "model_amp": amplitude(p, t)})
        if args.montage:
            args.montage.mkdir(parents=True, exist_ok=True)
            pick = [0] + list(np.argsort(-np.nan_to_num(t - t[0], nan=-np.inf))[:6])
            sheet = np.concatenate([np.concatenate([truth_u8[i] for i in pick], 1),
                                    np.concatenate([pred_u8[i] for i in pick], 1)], 0)
            cv2.imwrite(str(args.montage / f"{clip.name}.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not rows:
        raise SystemExit(f"{args.dataset}/{args.split}: no clips")
    print(f"| clip | frames | truth opening std | control (blur {args.blur}) r / amp | model r / amp |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['clip'][:40]} | {r['frames']} | {r['truth_std']:.3f} | {r['control_r']:.2f} / "
              f"{r['control_amp']:.2f} | {r['model_r']:.2f} / {r['model_amp']:.2f} |")
    med = {k: statistics.median(r[k] for r in rows) for k in ("control_r", "control_amp", "model_r", "model_amp")}
    print(f"median: control r {med['control_r']:.2f} / amp {med['control_amp']:.2f}, "
          f"model r {med['model_r']:.2f} / amp {med['model_amp']:.2f}")
    print(json.dumps({"benchmark": "mouth_check", "checkpoint": args.checkpoint or "default", "split": args.split,
                      "blur": args.blur, "clips": len(rows), **{f"median_{k}": round(v, 3) for k, v in med.items()},
                      "rows": rows}))


if __name__ == "__main__":
    main()
