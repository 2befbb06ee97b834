"""Do a checkpoint's keypoints carry the mouth? The keypoint side of the follow metric, without rendering.

For every held-out clip of a ``scorr crop --dataset`` folder (``test/``, with ``landmarks.npy``) the
prior's keypoints are detected on each frame at the model's resolution, and the distance between the
keypoints guided to the upper and the lower lip group is compared with dlib's inner-lip gap (points
62-66) in pixels at the model's resolution: the Pearson correlation and the slope (keypoint pixels per
pixel of gap). The landmark groups' own centres, the guidance target, give the slope a keypoint could
reach (~0.9). A keypoint slope far below it means the keypoints under-move the mouth, and no renderer
can open a mouth its keypoints do not open.

``--render`` asks the other half: does the renderer open a mouth when its keypoints do move? Each clip is
reconstructed from its frame 0 twice: driven by the keypoints the model detects (the reconstruction
protocol), and by its source keypoints moved exactly as the landmark groups move (the guidance targets'
displacement, frame minus frame 0). dlib's mouth opening of the outputs (at the model's resolution) is
compared with the frames' own: correlation and amplitude ratio, and the reconstruction L1 of each.

``--flow`` asks the motion field itself, with no detector on generated frames: in the same
reconstructions (detected keypoints), where does the final flow send each driving landmark, against
where that landmark is in the source (frame 0)? The mean error per coordinate in pixels at the model's
resolution, over all 68 points and over the 20 lip points, and the error of the inner-lip gap (62-66)
the flow implies against the source's (the mouth opening, apart from head motion), each next to the
same error of a still flow (no motion); their ratio is the share of the motion the field misses (1 = it
moves nothing, 0 = every landmark lands where it should). This is what ``loss.landmark_flow`` trains.
The ``prior_`` rows score the prior's own grid the same way, before the refiner corrects it.

``--cross`` asks the same of cross-identity use (what ``loss.cross_flow`` trains): each clip's motion drives
the frame 0 of the clip half the list away (another identity in the card's held-out split), transferred as
``scorr animate`` does (relative to the clip's frame 0, scaled by the keypoint hulls), and each output
landmark should sit at the source's landmark moved by the clip's landmark motion at that scale.

    python benchmarks/keypoint_motion.py DATASET [--checkpoint NAME|PATH ...] [--max-frames 120] [--render] [--flow] [--cross]

Prints a table and one JSON line per checkpoint (median over clips).
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


def clip_frames(clip: Path, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """The clip's first ``limit`` frames (N×H×W×3 uint8) and their 68 landmarks (N×68×2, frame pixels)."""
    from scorr_cli.faces.landmarks import LANDMARKS_FILE
    from scorr_cli.media import read_image

    files = sorted(p for p in clip.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:limit]
    landmarks = np.load(clip / LANDMARKS_FILE)[: len(files)]
    return np.stack([read_image(f) for f in files]), landmarks


def lip_keypoints(engine, frames: np.ndarray) -> np.ndarray:
    """Refiner keypoints (N×K×2 in [-1, 1]) of the frames, detected as ``scorr animate`` does (fp32)."""
    import torch

    from scorr_cli.pipeline.render import images_to_tensor

    with torch.no_grad():
        return torch.cat([engine.model.refiner_kp(engine.detect(images_to_tensor(list(frames[i:i + 16])))["kp"])
                          for i in range(0, len(frames), 16)]).numpy()


def usable_frames(clip: Path, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`clip_frames` without the frames that have no landmarks."""
    frames, landmarks = clip_frames(clip, limit)
    ok = np.isfinite(landmarks).all(axis=(1, 2))
    return frames[ok], landmarks[ok]


def measure(engine, clip: Path, frames: np.ndarray, landmarks: np.ndarray) -> dict:
    from scorr_cli.faces import landmarks as lm68

    size = engine.size
    to_model = size / frames.shape[1]
    gap = np.linalg.norm(landmarks[:, 66] - landmarks[:, 62], axis=1) * to_model
    upper, lower = lm68.GROUP_NAMES.index("lip_upper"), lm68.GROUP_NAMES.index("lip_lower")
    kp = lip_keypoints(engine, frames)
    kp_gap = np.linalg.norm(kp[:, lower] - kp[:, upper], axis=1) * size / 2
    centres = np.einsum("gk,nkc->ngc", lm68.group_matrix(), landmarks) * to_model
    target_gap = np.linalg.norm(centres[:, lower] - centres[:, upper], axis=1)
    return {"clip": clip.name, "frames": int(len(gap)), "gap_std_px": float(gap.std()),
            "r": float(np.corrcoef(gap, kp_gap)[0, 1]), "slope": float(np.polyfit(gap, kp_gap, 1)[0]),
            "target_slope": float(np.polyfit(gap, target_gap, 1)[0])}


def render_follow(engine, faces, clip: Path, frames: np.ndarray, landmarks: np.ndarray) -> dict:
    """Mouth follow and L1 of reconstructions driven by the detected keypoints and by landmark-moved ones;
    ``faces``: the evaluation's :class:`~scorr_cli.evaluate.metrics.FaceMetrics` (dlib's landmarks)."""
    import torch

    from scorr_cli.core.transfer import TransferOptions
    from scorr_cli.evaluate.follow import SIGNALS, amplitude, pearson
    from scorr_cli.faces import landmarks as lm68
    from scorr_cli.pipeline.render import images_to_tensor, tensor_to_images

    def mouth(batch: torch.Tensor) -> np.ndarray:  # the follow metric's mouth signal of each frame
        images = tensor_to_images(batch)
        return faces.signals(images, images[0].shape[:2])[:, SIGNALS.index("mouth")]

    x = engine._to_device(images_to_tensor(list(frames)))
    targets = torch.from_numpy(np.einsum("gk,nkc->ngc", lm68.group_matrix(),
                                         lm68.to_normalised(landmarks, frames.shape[1]))).float()
    state = engine.prepare(x[:1])
    detected = [engine.detect(x[i:i + 8]) for i in range(0, len(x), 8)]
    absolute = TransferOptions("absolute")
    truth = mouth(x)
    out = {"clip": clip.name, "frames": int(len(x))}
    for name in ("detected", "landmark_moved"):
        parts = []
        for i, kp in zip(range(0, len(x), 8), detected):
            if name == "landmark_moved":  # the detected jacobians, positions moved by the landmark groups
                kp = {**kp, "kp": state.prepared.kp["kp"] + (targets[i:i + 8] - targets[:1])}
            parts.append(engine.animate(state, None, absolute, kp_driving=kp).prediction)
        pred = torch.cat(parts)
        opening = mouth(pred)
        out[name] = {"l1": float((pred - x.cpu()).abs().mean()), "mouth_r": pearson(opening, truth),
                     "mouth_amp": amplitude(opening, truth)}
    return out


def flow_follow(engine, clip: Path, frames: np.ndarray, landmarks: np.ndarray,
                source: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """Landmark errors of the final flow against a still flow, px at the model's size: all 68 points, the
    20 lip points, and the inner-lip opening (62-66).

    ``source``: another identity's frame and its landmarks (``--cross``): the clip's motion is transferred
    to it as ``scorr animate`` does (relative to the clip's frame 0, hull-scaled), and each output landmark
    should sit at the source's landmark moved by the clip's landmark motion at that scale."""
    import torch

    from scorr_cli.core.losses import flow_destinations
    from scorr_cli.core.transfer import TransferOptions
    from scorr_cli.faces import landmarks as lm68
    from scorr_cli.pipeline.render import images_to_tensor

    x = engine._to_device(images_to_tensor(list(frames)))
    points = torch.from_numpy(lm68.to_normalised(landmarks, frames.shape[1])).float()
    if source is None:  # reconstruction: absolute keypoints, frame 0 is the source
        state, options, truth = engine.prepare(x[:1]), TransferOptions("absolute"), points[:1]
    else:
        state, options = engine.prepare(engine._to_device(images_to_tensor([source[0]]))), TransferOptions()
        engine.set_reference(state, engine.detect(x[:1]))
        truth = torch.from_numpy(lm68.to_normalised(source[1][None], source[0].shape[0])).float()
        points = truth + state.scale.float().view(1, 1, 1) * (points - points[:1])
    with torch.no_grad():
        sent, prior = [], []
        for i in range(0, len(x), 8):
            out = engine.animate(state, None, options, kp_driving=engine.detect(x[i:i + 8]))
            # the field that warps the image: the finest refined level (prior-only: the prior's grid)
            sent.append(flow_destinations(out.refiner.flows[-1:], points[i:i + 8], out.dense["deformation"])[0])
            # and the prior's own grid, before the refiner corrects it
            prior.append(flow_destinations([], points[i:i + 8], out.dense["deformation"])[0])
    sent, prior = torch.cat(sent).numpy(), torch.cat(prior).numpy()
    truth, still = truth.numpy(), points.numpy()  # where each landmark should land; a still flow's landing
    px = (engine.size - 1) / 2

    def error(landing: np.ndarray, idx: list[int]) -> float:
        return float(np.abs(landing[:, idx] - truth[:, idx]).mean() * px)

    def opening_error(landing: np.ndarray) -> float:  # the vertical inner-lip gap the flow implies
        gap = landing[:, 66, 1] - landing[:, 62, 1]
        return float(np.abs(gap - (truth[:, 66, 1] - truth[:, 62, 1])).mean() * px)

    def row(model_err: float, still_err: float) -> dict:
        return {"model_px": model_err, "still_px": still_err, "missed": model_err / max(still_err, 1e-9)}

    lips, every = list(lm68.LIPS), list(range(68))
    return {"clip": clip.name, "frames": int(len(x)), "all": row(error(sent, every), error(still, every)),
            "lips": row(error(sent, lips), error(still, lips)),
            "opening": row(opening_error(sent), opening_error(still)),
            "prior_lips": row(error(prior, lips), error(still, lips)),
            "prior_opening": row(opening_error(prior), opening_error(still))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path, help="a scorr crop --dataset folder with test/ clips and landmarks")
    ap.add_argument("--checkpoint", action="append", default=None, help="checkpoint(s) (default: the default weights)")
    ap.add_argument("--max-frames", type=int, default=120)
    ap.add_argument("--render", action="store_true",
                    help="also render: mouth follow with detected vs landmark-moved keypoints")
    ap.add_argument("--flow", action="store_true",
                    help="also score the final flow at the landmarks (all 68, lips) against a still flow")
    ap.add_argument("--cross", action="store_true",
                    help="score the flow with --flow's measures across identities: each clip's motion drives "
                         "the frame 0 of the clip half the list away (another identity in the card's split)")
    args = ap.parse_args()

    from scorr_cli.faces.landmarks import LANDMARKS_FILE
    from scorr_cli.pipeline.options import RenderOptions
    from scorr_cli.pipeline.render import load_engine

    clips = sorted(c for c in (args.dataset / "test").iterdir() if (c / LANDMARKS_FILE).is_file()) \
        if (args.dataset / "test").is_dir() else []
    if not clips:
        raise SystemExit(f"{args.dataset}/test: no clip folders with {LANDMARKS_FILE} (build it with scorr crop --dataset)")
    faces = None
    if args.render:
        from scorr_cli.evaluate.metrics import FaceMetrics
        from scorr_cli.faces import get_detector

        faces = FaceMetrics(get_detector("dlib"))
    for name in args.checkpoint or [None]:
        engine = load_engine(RenderOptions(checkpoint=name, precision="fp32", device="cpu"))
        rows, rendered, flowed, crossed = [], [], [], []
        for clip in clips:  # each clip read once for every measure
            frames, landmarks = usable_frames(clip, args.max_frames)
            rows.append(measure(engine, clip, frames, landmarks))
            if faces is not None:
                rendered.append(render_follow(engine, faces, clip, frames, landmarks))
            if args.flow:
                flowed.append(flow_follow(engine, clip, frames, landmarks))
            if args.cross:
                other, other_lm = usable_frames(clips[(clips.index(clip) + len(clips) // 2) % len(clips)], 1)
                crossed.append(flow_follow(engine, clip, frames, landmarks, (other[0], other_lm[0])))
        print(f"{name or 'default weights'}: keypoint lip distance vs dlib's inner-lip gap, px at {engine.size}²")
        print("| clip | frames | gap std px | r | slope | target slope |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['clip'][:40]} | {r['frames']} | {r['gap_std_px']:.2f} | {r['r']:.2f} | {r['slope']:.2f} | "
                  f"{r['target_slope']:.2f} |")
        med = {k: statistics.median(r[k] for r in rows) for k in ("r", "slope", "target_slope")}
        print(f"median: r {med['r']:.2f}, slope {med['slope']:.2f} (target {med['target_slope']:.2f})")
        print(json.dumps({"benchmark": "keypoint_motion", "checkpoint": name or "default", "clips": len(rows),
                          **{f"median_{k}": round(v, 3) for k, v in med.items()}, "rows": rows}))
        if args.render:
            print("| clip | keypoints | L1 | mouth r | mouth amplitude |")
            print("|---|---|---|---|---|")
            for r in rendered:
                for kind in ("detected", "landmark_moved"):
                    print(f"| {r['clip'][:40]} | {kind} | {r[kind]['l1']:.4f} | {r[kind]['mouth_r']:.2f} | "
                          f"{r[kind]['mouth_amp']:.2f} |")
            summary = {kind: {k: statistics.median(r[kind][k] for r in rendered) for k in ("l1", "mouth_r", "mouth_amp")}
                       for kind in ("detected", "landmark_moved")}
            for kind, v in summary.items():
                print(f"median, {kind} keypoints: L1 {v['l1']:.4f}, mouth r {v['mouth_r']:.2f}, "
                      f"amplitude {v['mouth_amp']:.2f}")
            print(json.dumps({"benchmark": "keypoint_motion_render", "checkpoint": name or "default",
                              "clips": len(rendered), "median": summary, "rows": rendered}))
        for kind, scored in (("flow", flowed), ("cross_flow", crossed)):
            if scored:
                print_flow_table(name, kind, scored)


def print_flow_table(name: str | None, kind: str, flowed: list[dict]) -> None:
    """--flow / --cross: the per-clip table, the medians and the JSON line."""
    print(f"{kind}: " + ("the clip's motion on another identity's frame 0" if kind == "cross_flow"
                         else "reconstruction from frame 0"))
    regions = ("all", "lips", "opening", "prior_lips", "prior_opening")
    print("| clip | " + " | ".join(f"{g}: flow px | still px | missed" for g in regions) + " |")
    print("|---|" + "---|" * 3 * len(regions))
    for r in flowed:
        print(f"| {r['clip'][:40]} | " + " | ".join(
            f"{r[g]['model_px']:.2f} | {r[g]['still_px']:.2f} | {r[g]['missed']:.2f}" for g in regions) + " |")
    fsum = {g: {k: statistics.median(r[g][k] for r in flowed) for k in ("model_px", "still_px", "missed")}
            for g in regions}
    for g, v in fsum.items():
        print(f"median, {g}: flow error {v['model_px']:.2f} px, still {v['still_px']:.2f} px, "
              f"missed share {v['missed']:.2f}")
    print(json.dumps({"benchmark": f"keypoint_motion_{kind}", "checkpoint": name or "default",
                      "clips": len(flowed), "median": fsum, "rows": flowed}))


if __name__ == "__main__":
    main()
