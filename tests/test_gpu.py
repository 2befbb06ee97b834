"""CUDA checks (skipped without a GPU): bf16 against fp32 on the authors' vox model, the engine on CUDA,
and that benchmarks/gpu_check.sh skips cleanly (and its table reads its logs) where there is no GPU."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
HAS_CUDA = torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_bf16_close_to_fp32_on_the_vox_model():
    from scorr_cli.core.config import vox
    from scorr_cli.core.engine import AnimationEngine
    from scorr_cli.core.model import MRFA
    from scorr_cli.core.transfer import TransferOptions

    torch.manual_seed(0)
    model = MRFA(vox()).cuda().eval()
    src, drv = torch.rand(1, 3, 256, 256, device="cuda"), torch.rand(4, 3, 256, 256, device="cuda")
    outs = {}
    for precision in ("fp32", "bf16"):
        engine = AnimationEngine(model, torch.device("cuda"), precision)
        state = engine.prepare(src)
        outs[precision] = engine.animate(state, drv, TransferOptions("absolute", False)).prediction.float()
    diff = (outs["bf16"] - outs["fp32"]).abs()
    assert diff.mean() < 0.02 and diff.max() < 0.25, (diff.mean().item(), diff.max().item())


@pytest.mark.skipif(HAS_CUDA or shutil.which("nvidia-smi") is not None, reason="a GPU is here: the script runs it")
def test_gpu_check_skips_cleanly_without_a_gpu(tmp_path):
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin", "GPU_CHECK_OUT": str(tmp_path / "out")}, timeout=60)
    assert r.returncode == 0 and "no CUDA GPU found" in r.stdout and "skipped" in r.stdout
    assert not (tmp_path / "out").exists()  # nothing installed, nothing written


def test_gpu_table_reads_the_logs(tmp_path):
    (tmp_path / "status").write_text("tests 0\ntrain_vox_20 0\nanimate_fp32_fused 0\nbench_corr 124\n")
    (tmp_path / "tests.log").write_text("....\n========= 6 passed in 9.1s =========\n")
    (tmp_path / "train_vox_20.log").write_text("table\n" + json.dumps(
        {"benchmark": "train_step", "s_per_step": 0.5, "samples_per_s": 16.0, "peak_mem_gb": 21.0,
         "device_name": "NVIDIA H200"}) + "\n")
    (tmp_path / "animate_fp32_fused.log").write_text(json.dumps(
        {"benchmark": "animate", "rows": [{"batch": 1, "median_ms": 31.5}, {"batch": 8, "median_ms": 12.25}]}))
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_table.py"), str(tmp_path)],
                       capture_output=True, text=True, check=True)
    lines = r.stdout.splitlines()
    assert lines[2] == "| tests | 0 | 6 passed in 9.1s |"
    assert lines[3] == "| train_vox_20 | 0 | 0.500 s/step, 16.0 samples/s, peak 21.0 GB |"
    assert lines[4] == "| animate_fp32_fused | 0 | batch 1: 31.5 ms/frame, batch 8: 12.2 ms/frame |"
    assert lines[5] == "| bench_corr | 124 | timed out |" and lines[-1] == "NVIDIA H200"
