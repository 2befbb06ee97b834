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

from scorr_cli.evaluate.follow import SIGNALS
from scorr_cli.evaluate.protocol import EvalResult
from scorr_cli.fsutil import atomic_write_text

LABELS = {"l1": "L1 ↓", "psnr": "PSNR ↑", "ssim": "SSIM ↑", "lpips": "LPIPS ↓", "akd": "AKD ↓ (px)",
          "mkr": "MKR ↓", "aed": "AED ↓", "ard": "ARD ↓ (°)", "auh": "AUH ↓",
          **{f"{s}_corr": f"{s} correlation ↑" for s in SIGNALS},
          **{f"{s}_amp": f"{s} amplitude ratio (1 = driving's)" for s in SIGNALS}}
# The reconstruction table has one column per metric: the follow metrics get short headers there.
COLUMN_LABELS = {**{f"{s}_corr": f"{s} r ↑" for s in SIGNALS}, **{f"{s}_amp": f"{s} amp" for s in SIGNALS}}
PROTOCOLS = {
    "reconstruction": "frame 0 of each clip is the source; every frame (0 included) drives it with absolute "
                      "keypoints (background motion when the model has it); metrics on lossless frames in "
                      "memory, averaged over all frames of all clips; mouth/eyes follow per clip, median over clips",
    "cross": "a source (frame 0 of a clip, or a face crop of a --sources photo) animated by a clip of another "
             "identity (relative motion from the driving frame whose mouth opening and head pose match the "
             "source's, as scorr animate chooses it: the per-pair 'reference' column; from the first frame with "
             "settings.find_best_frame false); follow metrics per pair, their median over pairs in the summary; "
             "ARD against the driving's head pose; AED against the source face; "
             "measured at the size scorr animate delivers (measured_at): sources and driving frames cut at that "
             "size, the model's output upsampled to it as animate writes it",
}


def _fmt(metric: str, v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if math.isinf(v):
        return "inf"
    return f"{v:.2f}" if metric in ("psnr", "akd", "ard") or metric.endswith(("_corr", "_amp")) else f"{v:.4f}"


def render_table(result: EvalResult):
    """One row per method (reconstruction, its expression follow in a second table); cross mode has many
    follow metrics, so one row per metric."""
    from rich.table import Table

    mode = "cross-identity" if result.config.cross else "reconstruction"
    at = f" (measured at {result.measure_size}x{result.measure_size})" if result.measure_size != result.size else ""
    table = Table(title=f"scorr evaluate — {mode}, {result.size}x{result.size}{at}, "
                        f"{len({c.clip for c in result.clips})} clip(s)")
    shown = [m for m in result.metrics if m not in result.skipped]
    if result.config.cross:
        table.caption = "correlations and amplitude ratios: median over pairs; AED, ARD: mean over frames"
        table.add_column("metric", no_wrap=True)
        for method in result.methods:
            table.add_column(method.name, justify="right")
        table.add_row("frames", *[str(result.frames.get(m.name, 0)) for m in result.methods])
        for metric in shown:
            table.add_row(LABELS.get(metric, metric), *[_fmt(metric, result.summary[m.name][metric])
                                                        for m in result.methods])
        return table
    pixels = [m for m in shown if m not in COLUMN_LABELS]
    follow = [m for m in shown if m in COLUMN_LABELS]
    _method_rows(table, result, pixels, frames=True)
    if not follow:
        return table
    from rich.console import Group

    expression = Table(title="expression follow, medians over clips",
                       caption="r: correlation with the ground truth; amp: amplitude ratio (1 = equal)")
    _method_rows(expression, result, follow, frames=False)
    return Group(table, expression)


def _method_rows(table, result: EvalResult, metrics: list[str], frames: bool) -> None:
    """A method column, then one column per metric; one row per method."""
    table.add_column("method", no_wrap=True, min_width=11)
    if frames:
        table.add_column("frames", justify="right")
    for m in metrics:
        table.add_column(COLUMN_LABELS.get(m, LABELS.get(m, m)), justify="right")
    for method in result.methods:
        row = [method.name] + ([str(result.frames.get(method.name, 0))] if frames else [])
        table.add_row(*row, *[_fmt(m, result.summary[method.name][m]) for m in metrics])


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
    w.writerow(["method", "clip", "driving", "frames"] + cols + ["reference"])
    for r in result.clips:
        w.writerow([r.method, r.clip, r.driving or "", r.frames] +
                   ["" if math.isnan(r.values[c]) else repr(float(r.values[c])) for c in cols] +
                   ["" if r.reference is None else r.reference])
    return buf.getvalue()


def _json_num(v: float) -> Any:
    if v is None or math.isnan(v):
        return None
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def _plain(value: Any) -> Any:
    """A setting as JSON holds it: paths (alone or in lists, e.g. ``sources``) as strings."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def summary_json(result: EvalResult) -> dict[str, Any]:
    import torch

    from scorr_cli import __version__

    settings = {k: _plain(v) for k, v in asdict(result.config).items()}
    return {
        "scorr_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "protocol": "cross" if result.config.cross else "reconstruction",
        "protocol_description": PROTOCOLS["cross" if result.config.cross else "reconstruction"],
        "resolution": result.size,
        "measured_at": result.measure_size,
        "settings": settings,
        "face_detector": result.cropper or None,
        "metric_definitions": {
            "l1": "mean |pred - gt| on [0,1]", "psnr": "10 log10(1/MSE), peak 1.0 on [0,1], per frame",
            "ssim": "Wang et al. 2004, 11x11 Gaussian sigma 1.5, valid filtering",
            "lpips": f"LPIPS v0.1 ({result.config.lpips}), inputs scaled to [-1,1]",
            "akd": "mean Euclidean distance of 68 landmarks, pixels at the evaluated resolution",
            "mkr": "fraction of frames with a ground-truth face whose generated face is not detected",
            "aed": "mean Euclidean distance of 128-d dlib ResNet identity embeddings",
            "ard": "mean |yaw, pitch, roll difference| in degrees between output and driving (yaw, pitch: "
                   "a generic 3-D face fitted in closed form, scaled orthographic, to the eye-corner and nose "
                   "landmarks; roll: the eye line)",
            "<signal>_corr": "Pearson correlation of the signal between output and driving frames of a pair "
                             "(0 when the output does not vary); signals: mouth = inner-lip gap / eye-corner "
                             "distance, eyes = eye aspect ratio, yaw/pitch/roll = head pose; median over pairs "
                             "(reconstruction: mouth and eyes against the ground-truth frames, median over clips)",
            "<signal>_amp": "standard deviation of the output's signal over the driving's; median over pairs "
                            "(reconstruction: over clips)",
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
