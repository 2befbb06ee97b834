"""Peak memory of ``scorr animate`` on a 10 s and a 10 min driving video: it must not grow with length.

Both clips are made by looping one real clip (stream copy, so the 10 min one takes a second to
make). Each run is a fresh process that reports its own peak RSS (``ru_maxrss``) and the peak RSS of
its whole process tree (itself plus the ffmpeg decoders/encoders, sampled every 50 ms).

``--engine passthrough`` (the default on a CPU) replaces the network with one that returns the
driving crop: everything else — probing, face-window scan, decoding, cropping, batching, encoding,
audio mux — is the real pipeline, and that is the part whose memory could grow with video length;
the model's memory depends on the batch size only. ``--engine tiny|lite`` runs a random model of
that preset (use it on a GPU: on a CPU a 10 min clip takes hours).

    python benchmarks/bench_memory.py [--clip PATH] [--engine passthrough|tiny|lite] [--long-seconds 600]
                                      [--allocator reuse|system]

Prints a table and one JSON line; exits 1 when the peaks differ by more than 20 %.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_CLIP = REPO.parent / "shared" / "data" / "faces" / "driving" / "liveportrait_d11.mp4"
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "faces" / "source" / "liveportrait_s42.jpg"
TOLERANCE = 0.20


class PassthroughEngine:
    """The engine's interface without the network: the 'animation' is the driving crop itself."""

    def __init__(self, size: int = 256):
        import torch

        self.size, self.device, self._torch = size, torch.device("cpu"), torch

    def _kp(self, b: int) -> dict:
        return {"kp": self._torch.zeros(b, 10, 2), "jacobian": self._torch.eye(2).repeat(b, 10, 1, 1)}

    def prepare(self, source):
        from types import SimpleNamespace

        return SimpleNamespace(prepared=SimpleNamespace(kp=self._kp(1)), reference=None)

    def detect(self, frames):
        return self._kp(frames.shape[0])

    def set_reference(self, state, kp) -> None:
        state.reference = kp

    def animate(self, state, frames, options=None, kp_driving=None):
        from types import SimpleNamespace

        return SimpleNamespace(prediction=frames.clone(), kp_driving=kp_driving or self._kp(frames.shape[0]))


def _tree_rss_kib(pid: int) -> int:
    """RSS of ``pid`` and all its descendants, from /proc (Linux)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def child(args: argparse.Namespace) -> None:
    """One measured run (in its own process so peaks do not mix)."""
    from scorr_cli import runtime
    from scorr_cli.pipeline.animate import AnimateConfig, animate

    runtime.use_allocator(args.allocator)  # as `scorr animate` does unless --allocator system

    peak = {"tree": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak["tree"] = max(peak["tree"], _tree_rss_kib(os.getpid()))
            time.sleep(0.05)

    threading.Thread(target=sample, daemon=True).start()
    engine = None
    if args.engine == "passthrough":
        engine = PassthroughEngine()
    else:
        import torch

        from scorr_cli.core.config import preset
        from scorr_cli.core.engine import AnimationEngine
        from scorr_cli.core.model import MRFA

        torch.manual_seed(0)
        engine = AnimationEngine(MRFA(preset(args.engine)), args.device)
    t0 = time.perf_counter()
    result = animate(AnimateConfig(source=args.source, driving=args.driving, output=args.output, force=True,
                                   batch_size=args.batch_size), engine=engine)
    stop.set()
    print(json.dumps({"frames": result.frames, "seconds": round(time.perf_counter() - t0, 1),
                      "self_peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "tree_peak_mib": round(peak["tree"] / 1024, 1)}))


def make_loop(clip: Path, seconds: float, out: Path) -> Path:
    """``clip`` repeated to ``seconds`` by stream copy (real content, any length, no re-encode)."""
    from scorr_cli.media._ffmpeg import ffmpeg_exe

    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-stream_loop", "-1", "-i", str(clip), "-t", f"{seconds}",
                    "-c", "copy", str(out)], check=True)
    return out


def main() -> int:
    from scorr_cli import runtime

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="real driving clip to loop")
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    ap.add_argument("--engine", default="passthrough", choices=("passthrough", "tiny", "lite"))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--short-seconds", type=float, default=10.0)
    ap.add_argument("--long-seconds", type=float, default=600.0)
    ap.add_argument("--allocator", default="reuse", choices=runtime.ALLOCATOR_MODES,
                    help="reuse: keep freed memory as every scorr command does; system: the C library's defaults")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--driving", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return 0
    if not args.clip.is_file() or not args.source.is_file():
        print(f"bench_memory: test media not found ({args.clip}, {args.source})", file=sys.stderr)
        return 2
    rows = {}
    with tempfile.TemporaryDirectory(prefix="scorr-bench-") as tmp:
        for label, seconds in (("short", args.short_seconds), ("long", args.long_seconds)):
            driving = make_loop(args.clip, seconds, Path(tmp) / f"{label}.mp4")
            cmd = [sys.executable, __file__, "--child", "--engine", args.engine, "--device", args.device,
                   "--allocator", args.allocator,
                   "--batch-size", str(args.batch_size), "--source", str(args.source), "--driving", str(driving),
                   "--output", str(Path(tmp) / f"{label}-out.mp4")]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                print(res.stderr, file=sys.stderr)
                return 2
            rows[label] = {"video_seconds": seconds, **json.loads(res.stdout.strip().splitlines()[-1])}
    ratio = rows["long"]["tree_peak_mib"] / rows["short"]["tree_peak_mib"]
    self_ratio = rows["long"]["self_peak_mib"] / rows["short"]["self_peak_mib"]
    ok = abs(ratio - 1) <= TOLERANCE and abs(self_ratio - 1) <= TOLERANCE
    print(f"{'video':>7} {'frames':>7} {'run s':>7} {'python peak MiB':>16} {'tree peak MiB':>14}")
    for label, r in rows.items():
        print(f"{r['video_seconds']:>6.0f}s {r['frames']:>7} {r['seconds']:>7.1f} {r['self_peak_mib']:>16.1f} "
              f"{r['tree_peak_mib']:>14.1f}")
    print(f"long/short peak: python {self_ratio:.3f}, tree {ratio:.3f} (limit 1 ± {TOLERANCE}) -> "
          f"{'OK' if ok else 'FAIL'}")
    print(json.dumps({"benchmark": "animate_peak_rss", "engine": args.engine, "allocator": args.allocator,
                      "clip": args.clip.name,
                      "short": rows["short"], "long": rows["long"], "ratio_python": round(self_ratio, 3),
                      "ratio_tree": round(ratio, 3), "ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
