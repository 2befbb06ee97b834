"""``scorr evaluate``: the paper's reconstruction protocol (and cross-identity pairs) with honest metrics."""

from scorr_cli.evaluate.metrics import LPIPS, FaceMetrics, find_lpips_weights, l1, psnr, ssim
from scorr_cli.evaluate.protocol import BASELINES, EvalConfig, EvalResult, evaluate
from scorr_cli.evaluate.report import per_clip_csv, render_table, summary_json, write_outputs

__all__ = ["LPIPS", "FaceMetrics", "find_lpips_weights", "l1", "psnr", "ssim", "BASELINES", "EvalConfig",
           "EvalResult", "evaluate", "per_clip_csv", "render_table", "summary_json", "write_outputs"]
