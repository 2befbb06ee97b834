"""Evaluation outputs: a rich table (one row per method), a per-clip CSV and a summary JSON.

The JSON holds everything needed to reproduce and compare a number: the exact settings, the protocol,
each checkpoint's path and sha256, the scorr and torch versions, frame counts and every skipped
metric with its reason.
"""

from __future__ import annotations

import csv
import io
import json
import math
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from scorr_cli.evaluate.protocol import EvalResult
from scorr_cli.fsutil import atomic_write_text

LABELS = {"l1": "L1 ↓", "psnr": "PSNR ↑", "ssim": "SSIM ↑", "lpips": "LPIPS ↓", "akd": "AKD ↓ (px)",
          "mkr": "MKR ↓", "aed": "AED ↓", "ard": "ARD ↓", "auh": "AUH ↓"}
PROTOCOLS = {
    "reconstruction": "frame 0 of each clip is the source; every frame (0 included) drives it with absolute "
                      "keypoints (background motion when the model has it); metrics on lossless frames in "
                      "memory, averaged over all frames of all clips",
    "cross": "frame 0 of each clip animated by a clip of another identity (relative motion from the driving "
             "clip's first frame); AED against the source face",
}


def _fmt(metric: str, v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if math.isinf(v):
        return "inf"
    return f"{v:.2f}" if metric in ("psnr", "akd") else f"{v:.4f}"


def render_table(result: EvalResult):
    from rich.table import Table

    mode = "cross-identity" if result.config.cross else "reconstruction"
    table = Table(title=f"scorr evaluate — {mode}, {result.size}x{result.size}, "
                        f"{len({c.clip for c in result.clips})} clip(s)")
    table.add_column("method", no_wrap=True, min_width=11)
    table.add_column("frames", justify="right")
    shown = [m for m in result.metrics if m not in result.skipped]
    for m in shown:
        table.add_column(LABELS.get(m, m), justify="right")
    for method in result.methods:
        row = [method.name, str(result.frames.get(method.name, 0))]
        row += [_fmt(m, result.summary[method.name][m]) for m in shown]
        table.add_row(*row)
    return table


def skipped_lines(result: EvalResult) -> list[str]:
    """One line per skipped metric (with its reason), and a note on frames left out of the PSNR mean."""
    seen, out = set(), []
    for reason in result.skipped.values():
        if reason not in seen:
            seen.add(reason)
            out.append(reason)
    for name, n in result.identical.items():
        if n:
            out.append(f"PSNR note: {name}: {n} frame(s) identical to the ground truth (infinite PSNR) are left "
                       "out of its PSNR mean")
    return out


def per_clip_csv(result: EvalResult) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = list(result.metrics)
    w.writerow(["method", "clip", "driving", "frames"] + cols)
    for r in result.clips:
        w.writerow([r.method, r.clip, r.driving or "", r.frames] +
                   ["" if math.isnan(r.values[c]) else repr(float(r.values[c])) for c in cols])
    return buf.getvalue()


def _json_num(v: float) -> Any:
    if v is None or math.isnan(v):
        return None
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def summary_json(result: EvalResult) -> dict[str, Any]:
    import torch

    from scorr_cli import __version__

    settings = asdict(result.config)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in settings.items()}
    return {
        "scorr_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "protocol": "cross" if result.config.cross else "reconstruction",
        "protocol_description": PROTOCOLS["cross" if result.config.cross else "reconstruction"],
        "resolution": result.size,
        "settings": settings,
        "face_detector": result.cropper or None,
        "metric_definitions": {
            "l1": "mean |pred - gt| on [0,1]", "psnr": "10 log10(1/MSE), peak 1.0 on [0,1], per frame",
            "ssim": "Wang et al. 2004, 11x11 Gaussian sigma 1.5, valid filtering",
            "lpips": f"LPIPS v0.1 ({result.config.lpips}), inputs scaled to [-1,1]",
            "akd": "mean Euclidean distance of 68 landmarks, pixels at the evaluated resolution",
            "mkr": "fraction of frames with a ground-truth face whose generated face is not detected",
            "aed": "mean Euclidean distance of 128-d dlib ResNet identity embeddings",
        },
        "methods": [m.describe() for m in result.methods],
        "frames": result.frames,
        "psnr_identical_frames_excluded": result.identical,
        "clips": len({c.clip for c in result.clips}),
        "metrics": {name: {m: _json_num(v) for m, v in vals.items()} for name, vals in result.summary.items()},
        "skipped": result.skipped,
        "seconds": round(result.seconds, 3),
    }


def write_outputs(result: EvalResult, outdir: Path) -> tuple[Path, Path]:
    """``per_clip.csv`` and ``summary.json`` in ``outdir`` (each written atomically)."""
    outdir.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = outdir / "per_clip.csv", outdir / "summary.json"
    atomic_write_text(csv_path, per_clip_csv(result))
    atomic_write_text(json_path, json.dumps(summary_json(result), indent=2) + "\n")
    return csv_path, json_path
