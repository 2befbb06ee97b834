"""``scorr animate`` end to end, today's code against an earlier release, in one run.

Each side is the real command in a fresh process (start-up, weights, face scan, decode, model, encode:
what a user waits for), on the same clip and source, alternating round robin so both see the same
machine load; the median run per side is reported, with the ratio. The earlier release runs from a
``git worktree`` of ``--against`` (its own code and its own default weights: same architecture, so the
same cost per frame), with the same Python environment.

    python benchmarks/bench_release.py [--against d899b0e] [--clip PATH] [--source PATH] [--seconds 10] [--repeats 3]
                                       [--threads N] [-- extra animate options for today's side]

``d899b0e`` is the code as it stood when issue 15 ("10 fps on a 2-core CPU, 2x the previous release")
was filed: the previous release. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / "shared" / "data" / "faces"
DEFAULT_CLIP = MEDIA / "driving" / "liveportrait_d10.mp4"  # 512², 30 fps, 10 s, with audio
DEFAULT_SOURCE = MEDIA / "source" / "liveportrait_s42.jpg"
PREVIOUS_RELEASE = "d899b0e"


def frame_count(clip: Path, seconds: float) -> int:
    sys.path.insert(0, str(REPO))
    from scorr_cli.media import probe_video

    info = probe_video(clip)
    return min(int(info.n_frames), round(seconds * float(info.fps)))


def worktree(rev: str, where: Path) -> Path:
    """A checkout of ``rev`` beside the repository's own (no effect on the working tree); first forgets the
    worktrees of earlier runs that were killed before removing theirs."""
    subprocess.run(["git", "-C", str(REPO), "worktree", "prune"], capture_output=True)
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(where), rev], check=True,
                   capture_output=True)
    return where


def animate_seconds(code: Path, source: Path, clip: Path, frames: int, out: Path, threads: int | None,
                    extra: list[str]) -> float:
    """Wall seconds of one ``scorr animate`` run of the code in ``code`` (a fresh process)."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, "-m", "scorr_cli", "animate", str(source), str(clip), "-o", str(out), "--force",
           "--max-frames", str(frames), *extra]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=code, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{code}: scorr animate failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", default=PREVIOUS_RELEASE, help="git revision of the earlier release")
    ap.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    ap.add_argument("--seconds", type=float, default=10.0, help="animate this much of the clip (--max-frames)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for both sides (default: all cores)")
    ap.add_argument("extra", nargs="*", help="options for today's animate (after --)")
    args = ap.parse_args()
    for path in (args.clip, args.source):
        if not path.is_file():
            raise SystemExit(f"{path}: not found (the shared face media is needed)")
    frames = frame_count(args.clip, args.seconds)
    runs: dict[str, list[float]] = {args.against: [], "today": []}
    with tempfile.TemporaryDirectory(prefix="bench-release-") as tmp:
        tmp = Path(tmp)
        old = worktree(args.against, tmp / "previous")
        try:
            sides = {args.against: (old, []), "today": (REPO, list(args.extra))}
            for _ in range(args.repeats):
                for name, (code, extra) in sides.items():
                    out = tmp / f"{name}-{len(runs[name])}.mp4"
                    runs[name].append(animate_seconds(code, args.source, args.clip, frames, out, args.threads, extra))
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)], capture_output=True)
    median = {k: statistics.median(v) for k, v in runs.items()}
    ratio = median[args.against] / median["today"]
    print(f"scorr animate {args.source.name} {args.clip.name} ({frames} frames), end to end, "
          f"median of {args.repeats} alternating runs")
    print("| code | seconds | fps end to end | runs (s) |")
    print("|---|---|---|---|")
    for name, v in runs.items():
        print(f"| {name} | {median[name]:.1f} | {frames / median[name]:.2f} | {', '.join(f'{x:.1f}' for x in v)} |")
    print(f"today / {args.against}: {ratio:.2f}x")
    print(json.dumps({"benchmark": "animate_vs_release", "against": args.against, "clip": args.clip.name,
                      "frames": frames, "threads": args.threads, "extra": args.extra,
                      "runs_s": {k: [round(x, 3) for x in v] for k, v in runs.items()},
                      "fps": {k: round(frames / m, 3) for k, m in median.items()}, "speedup": round(ratio, 3)}))


if __name__ == "__main__":
    main()
