"""The speed benchmarks still run and print the JSON line their reports are built from (tiny sizes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _json_line(script: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                         check=True, timeout=300).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_bench_animate_reports_floor_and_allocator():
    result = _json_line("bench_animate.py", "--preset", "tiny", "--priors", "mtia,tpsm", "--batches", "1,2",
                        "--repeats", "1", "--allocator", "system")
    assert result["allocator"] == "system" and result["conv_gflops"] > 0
    assert [(r["prior"], r["batch"]) for r in result["rows"]] == [("mtia", 1), ("mtia", 2), ("tpsm", 1), ("tpsm", 2)]
    for row in result["rows"]:
        assert row["min_ms"] <= row["median_ms"] <= row["max_ms"]
        assert row["gflop_per_frame"] > 0
        assert abs(row["x_floor"] - row["median_ms"] / row["floor_ms"]) < 1e-9


def test_bench_corr_runs_the_torch_lookup():
    result = _json_line("bench_corr.py", "--batch", "1", "--repeats", "1", "--device", "cpu")
    assert [r["impl"] for r in result["rows"]] == ["torch"]
    assert result["rows"][0]["ms_per_frame_median"] > 0
