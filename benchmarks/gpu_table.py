"""One markdown table from the logs of ``benchmarks/gpu_check.sh`` (its JSON lines and exit codes).

    python benchmarks/gpu_table.py gpu_check_out/
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def _json_line(log: Path) -> dict | None:
    if not log.is_file():
        return None
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def _pytest_summary(log: Path) -> str:
    if not log.is_file():
        return "no log"
    found = re.findall(r"^=*\s*(\d+ (?:passed|failed).*?)\s*=*$", log.read_text(errors="replace"), re.M)
    return found[-1] if found else "no summary (see log)"


def describe(name: str, log: Path) -> str:
    if name == "tests":
        return _pytest_summary(log)
    data = _json_line(log)
    if data is None:
        return "no result (see log)"
    if data.get("benchmark") == "corr_lookup":
        rows = ", ".join(f"{r.get('impl', '?')} {r.get('ms_per_frame_median', float('nan')):.2f} ms" for r in data["rows"])
        return f"{rows}; max |diff| {data.get('max_abs_diff', float('nan')):.1e}"
    if data.get("benchmark") == "animate":
        return ", ".join(f"batch {r['batch']}: {r['median_ms']:.1f} ms/frame" for r in data["rows"])
    if data.get("benchmark") == "train_step":
        mem = f", peak {data['peak_mem_gb']} GB" if data.get("peak_mem_gb") is not None else ""
        return f"{data['s_per_step']:.3f} s/step, {data['samples_per_s']:.1f} samples/s{mem}"
    return json.dumps(data)[:120]


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "gpu_check_out")
    status = out / "status"
    if not status.is_file():
        sys.exit(f"{status}: not found (run benchmarks/gpu_check.sh first)")
    device = ""
    print("| check | exit | result |")
    print("|---|---|---|")
    for line in status.read_text().splitlines():
        name, _, code = line.partition(" ")
        data = _json_line(out / f"{name}.log") or {}
        device = device or data.get("device_name") or ""
        result = "timed out" if code == "124" else describe(name, out / f"{name}.log")
        print(f"| {name} | {code} | {result} |")
    if device:
        print(f"\n{device}")


if __name__ == "__main__":
    main()
