"""What a training run shows and writes besides checkpoints: progress display, metrics.jsonl,
TensorBoard events (when ``tensorboard`` is installed) and sample grids."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from scorr_cli.fsutil import atomic_write_bytes

# Short names for the progress line.
SHORT = {"perceptual": "perc", "pixel": "pix", "ssim": "ssim", "equivariance_value": "eq", "equivariance_jacobian": "jac",
         "bg": "bg", "total": "loss"}


def format_losses(losses: Mapping[str, float]) -> str:
    return " ".join(f"{SHORT.get(k, k)}={v:.4g}" for k, v in losses.items())


class MetricsLog:
    """Append-only JSON lines (one object per line). On resume, lines of steps after the restored
    step (written by the interrupted run after its last checkpoint) are dropped first."""

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and path.is_file():
            kept = []
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a line cut by a kill
                if int(rec.get("step", 0)) <= resume_step:
                    kept.append(line)
            atomic_write_bytes(path, ("\n".join(kept) + ("\n" if kept else "")).encode("utf-8"))
        self._f = path.open("a", encoding="utf-8")

    def write(self, record: Mapping[str, Any]) -> None:
        self._f.write(json.dumps(dict(record), default=float) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


class TensorBoard:
    """``torch.utils.tensorboard`` writer when tensorboard is importable; otherwise does nothing."""

    def __init__(self, log_dir: Path):
        self.writer = None
        try:
            from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package
        except Exception:  # noqa: BLE001 - ImportError or a broken install: run without it
            return
        self.writer = SummaryWriter(str(log_dir))

    @property
    def enabled(self) -> bool:
        return self.writer is not None

    def scalars(self, values: Mapping[str, float], step: int, prefix: str = "train") -> None:
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(f"{prefix}/{k}", v, step)

    def image(self, tag: str, rgb_uint8: np.ndarray, step: int) -> None:
        if self.writer is not None:
            self.writer.add_image(tag, rgb_uint8, step, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class ProgressDisplay:
    """A rich progress bar (epoch, step, losses, it/s, ETA) on a terminal; plain log lines otherwise."""

    def __init__(self, total_steps: int, start_step: int, enabled: bool = True, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self.total = total_steps
        self.live = enabled and self.console.is_terminal
        self._progress: Progress | None = None
        self._task = None
        self._t0 = time.perf_counter()
        self._start = start_step
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[losses]}"), TextColumn("{task.fields[speed]}"),
                TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=self.console, transient=False)
            self._task = self._progress.add_task("train", total=total_steps, completed=start_step, epoch=0,
                                                 losses="", speed="")
            self._progress.start()

    def update(self, step: int, epoch: int, losses: Mapping[str, float] | None, it_s: float | None,
               log_line: bool) -> None:
        speed = f"{it_s:.3g} it/s" if it_s else ""
        if self._progress is not None:
            # the bar keeps to the total loss so it fits an 80-column terminal; every loss term goes
            # on a line of its own above it, every log_every steps
            kw: dict[str, Any] = {"completed": step, "epoch": epoch, "speed": speed}
            if losses is not None:
                kw["losses"] = f"loss={losses['total']:.4g}" if "total" in losses else ""
                if log_line:
                    self._progress.console.print(f"step {step} {format_losses(losses)}", highlight=False,
                                                 soft_wrap=True)
            self._progress.update(self._task, **kw)
        elif self.enabled and log_line and losses is not None:
            done = step - self._start
            elapsed = time.perf_counter() - self._t0
            eta = elapsed / done * (self.total - step) if done > 0 else float("nan")
            self.console.print(f"epoch {epoch} step {step}/{self.total} {format_losses(losses)} {speed} "
                               f"eta {_hms(eta)}", highlight=False, soft_wrap=True)

    def print(self, message: str) -> None:
        if self.enabled:
            self.console.print(message, highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _hms(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _to_rgb(t: torch.Tensor, size: int) -> torch.Tensor:
    """C×H×W (C = 1 or 3) float -> 3×size×size in [0, 1]."""
    t = t.detach().float().cpu()
    if t.shape[-1] != size or t.shape[-2] != size:
        t = F.interpolate(t[None], size=(size, size), mode="bilinear", align_corners=False)[0]
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    return t.clamp(0, 1)


def sample_grid(source: torch.Tensor, driving: torch.Tensor, prediction: torch.Tensor, warped: torch.Tensor,
                occlusion: torch.Tensor, rows: int = 4) -> np.ndarray:
    """One row per sample: source | driving | prediction | warped source | occlusion (visibility, white =
    visible). Returns H×W×3 uint8 RGB."""
    n = min(rows, source.shape[0])
    size = source.shape[-1]
    lines = []
    for i in range(n):
        cells = [_to_rgb(x[i], size) for x in (source, driving, prediction, warped, occlusion)]
        lines.append(torch.cat(cells, dim=2))
    grid = torch.cat(lines, dim=1).permute(1, 2, 0).numpy()
    return (grid * 255 + 0.5).astype(np.uint8)


def write_png(path: Path, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"cannot encode {path}")
    atomic_write_bytes(path, buf.tobytes())


__all__ = ["MetricsLog", "TensorBoard", "ProgressDisplay", "sample_grid", "write_png", "format_losses"]
