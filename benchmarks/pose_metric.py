"""How much of a head-pose follow score is the measurement? The ceiling of ``scorr evaluate --cross``'s
yaw and pitch correlations, for the follow metric's pose fit and for ``cv2.solvePnP`` (what it used before).

For each clip of a dataset split (``scorr crop --dataset``), the first N frames: the pose from the 68
landmarks stored with the clip (found on the 256² crops) against the pose from landmarks found again on
the same frames shrunk to the model's 128² (what the protocol measures outputs at). A perfect model
cannot score higher than this self-consistency ``r``. Also per clip: the jitter (median |change| between
consecutive frames, degrees) and the spread (standard deviation over the clip) of the full-size signal;
a pose that jumps on a still head has a jitter close to its spread. Printed per clip, as a table of
medians, and as one JSON line.

    python benchmarks/pose_metric.py DATA [--split test] [--frames 60] [--size 128]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def solvepnp_pose(points, image_size, seeded=False):
    """Yaw and pitch the way the follow metric measured them until it fitted the pose itself: OpenCV's
    iterative PnP of the same rigid points on a pinhole camera whose focal length is the image width.
    ``seeded``: start PnP's iterations from the metric's own fit (rotation, and a translation from its
    scale and the points' centre) instead of OpenCV's own first guess: a perspective refinement of it."""
    import cv2
    import numpy as np

    from scorr_cli.faces import pose

    h, w = image_size
    image = np.asarray(points, np.float64)[list(pose._MODEL_INDICES)]
    camera = np.array([[w, 0, w / 2.0], [0, w, h / 2.0], [0, 0, 1]], dtype=np.float64)
    guess = {}
    if seeded:
        rotation = pose._fit_rotation(image)
        centre = pose._MODEL_POINTS.mean(axis=0)
        scale = np.linalg.norm(image - image.mean(0)) / np.linalg.norm((pose._MODEL_POINTS - centre) @ rotation[:2].T)
        depth = w / scale
        shift = np.array([(image[:, 0].mean() - w / 2) * depth / w, (image[:, 1].mean() - h / 2) * depth / w, depth])
        guess = {"rvec": cv2.Rodrigues(rotation)[0], "tvec": (shift - rotation @ centre).reshape(3, 1),
                 "useExtrinsicGuess": True}
    ok, rvec, _ = cv2.solvePnP(pose._MODEL_POINTS, image, camera, np.zeros(4), flags=cv2.SOLVEPNP_ITERATIVE,
                               **guess)
    if not ok:
        return np.full(2, np.nan)
    return np.array(pose.yaw_pitch(cv2.Rodrigues(rvec)[0]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="dataset root (scorr crop --dataset), clips with landmarks.npy")
    ap.add_argument("--split", default="test")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--size", type=int, default=128, help="side the frames are shrunk to (the model's)")
    args = ap.parse_args()

    import cv2
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from scorr_cli.evaluate import follow
    from scorr_cli.evaluate.metrics import FaceMetrics
    from scorr_cli.faces import get_detector, pose
    from scorr_cli.media import read_image

    estimators = {"fit": lambda p, size: pose.head_pose(p, size)[:2], "solvePnP": solvepnp_pose,
                  "solvePnP from the fit": lambda p, size: solvepnp_pose(p, size, seeded=True)}
    faces = FaceMetrics(get_detector("dlib"))
    clips = sorted(d for d in (args.data / args.split).iterdir() if (d / "landmarks.npy").is_file())
    if not clips:
        sys.exit(f"{args.data / args.split}: no clips with landmarks.npy")
    rows = []
    for clip in clips:
        full = np.load(clip / "landmarks.npy")[:args.frames]
        small = []
        for f in sorted(clip.glob("*.png"))[:len(full)]:
            frame = read_image(f)
            shape = frame.shape[:2]
            small.append(faces.face(cv2.resize(frame, (args.size, args.size), interpolation=cv2.INTER_AREA)).landmarks)
        row = {"clip": clip.name}
        for name, estimate in estimators.items():
            big = np.array([estimate(p, shape) if np.isfinite(p).all() else [np.nan] * 2 for p in full])
            low = np.array([estimate(p, (args.size,) * 2) if p is not None else [np.nan] * 2 for p in small])
            for k, axis in enumerate(("yaw", "pitch")):
                row[f"{name} {axis} r"] = follow.pearson(low[:, k], big[:, k])
                row[f"{name} {axis} jitter"] = float(np.nanmedian(np.abs(np.diff(big[:, k]))))
                row[f"{name} {axis} spread"] = float(np.nanstd(big[:, k]))
        rows.append(row)
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)

    keys = [k for k in rows[0] if k != "clip"]
    medians = {k: round(float(np.nanmedian([r[k] for r in rows])), 3) for k in keys}
    table = Table(title=f"pose self-consistency, {len(rows)} {args.split} clips × {args.frames} frames "
                        f"(256² landmarks vs re-found at {args.size}²), medians")
    for col in ("estimator", "yaw r", "pitch r", "yaw jitter °", "yaw spread °", "pitch jitter °", "pitch spread °"):
        table.add_column(col)
    for name in estimators:
        table.add_row(name, *(f"{medians[f'{name} {k}']:.2f}" for k in
                              ("yaw r", "pitch r", "yaw jitter", "yaw spread", "pitch jitter", "pitch spread")))
    Console(stderr=True).print(table)
    print(json.dumps({"benchmark": "pose_metric", "split": args.split, "clips": len(rows), "frames": args.frames,
                      "size": args.size, "opencv": cv2.__version__, "medians": medians}))


if __name__ == "__main__":
    main()
