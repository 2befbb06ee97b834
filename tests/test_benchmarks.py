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


def _flops_per_frame(prior: str) -> float:
    """GFLOP of animating one frame, counted by torch's FlopCounterMode (the benchmark uses the profiler)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from scorr_cli.core.config import preset
    from scorr_cli.core.engine import AnimationEngine
    from scorr_cli.core.model import MRFA

    engine = AnimationEngine(MRFA(preset("tiny").replace(prior=prior)), "cpu")
    s = engine.size
    state = engine.prepare(torch.rand(1, 3, s, s))
    frame = torch.rand(1, 3, s, s)
    engine.animate(state, frame)  # the reference frame is set on the first call, as in the benchmark
    with FlopCounterMode(display=False) as counter:
        engine.animate(state, frame)
    return counter.get_total_flops() / 1e9


def test_bench_animate_reports_floor_and_allocator():
    """The FLOP floor the table compares speed with rests on the benchmark's FLOP count: it must agree with an
    independent counter (a count that missed the refiner or doubled the generator would not)."""
    result = _json_line("bench_animate.py", "--preset", "tiny", "--priors", "mtia,tpsm", "--batches", "1,2",
                        "--repeats", "1", "--allocator", "system")
    assert result["allocator"] == "system" and result["conv_gflops"] > 0
    assert [(r["prior"], r["batch"]) for r in result["rows"]] == [("mtia", 1), ("mtia", 2), ("tpsm", 1), ("tpsm", 2)]
    for row in result["rows"]:
        assert row["min_ms"] <= row["median_ms"] <= row["max_ms"]
        want = _flops_per_frame(row["prior"])
        assert abs(row["gflop_per_frame"] - want) <= 0.02 * want, (row, want)


def test_bench_corr_runs_the_torch_lookup():
    result = _json_line("bench_corr.py", "--batch", "1", "--repeats", "1", "--device", "cpu")
    assert [r["impl"] for r in result["rows"]] == ["torch"]
    assert result["rows"][0]["ms_per_frame_median"] > 0


def test_bench_stages_compares_variants_in_one_run(faces_media):
    """Each variant is a whole animate run; a JSON line per variant, stages that cover the networks."""
    out = subprocess.run([sys.executable, str(BENCH / "bench_stages.py"), "--seconds", "0.1", "--threads", "1",
                          "--variants", "fp32:0,fp32:1", "--repeats", "2"], capture_output=True, text=True,
                         check=True, timeout=300).stdout
    lines = [json.loads(line) for line in out.splitlines() if line.startswith('{"benchmark": "animate_stages"')]
    assert [(v["variant"], v["skip_updates"]) for v in lines] == [("fp32 (fp32, skip 0)", 0),
                                                                   ("fp32 (fp32, skip 1)", 1)]
    assert "fp32 (fp32, skip 1) vs fp32 (fp32, skip 0):" in out
    assert all(len(v["runs_s"]) == 2 and v["run_s"] in v["runs_s"] for v in lines)
    for v in lines:
        assert v["frames"] == 3 and v["fps_end_to_end"] > 0
        assert {"keypoints", "dense motion", "correlation", "updates", "generator"} <= set(v["stages_s"])


def test_bench_release_times_both_codes_end_to_end(faces_media):
    """bench_release runs the earlier release from a git worktree and today's code, each as the real
    `scorr animate` command, alternating; the worktree is removed afterwards."""
    import pytest

    repo = BENCH.parent
    if subprocess.run(["git", "-C", str(repo), "cat-file", "-e", "d899b0e^{commit}"], capture_output=True).returncode:
        pytest.skip("the previous release's commit is not in this clone (shallow?)")
    result = _json_line("bench_release.py", "--seconds", "0.2", "--repeats", "1", "--threads", "1")
    assert result["against"] == "d899b0e" and result["frames"] == 6
    assert set(result["runs_s"]) == {"d899b0e", "today"} and all(len(v) == 1 for v in result["runs_s"].values())
    assert result["speedup"] == pytest.approx(result["runs_s"]["d899b0e"][0] / result["runs_s"]["today"][0], rel=1e-2)
    listed = subprocess.run(["git", "-C", str(repo), "worktree", "list"], capture_output=True, text=True).stdout
    assert "bench-release-" not in listed
