"""Where the time of ``scorr animate`` goes, stage by stage, on a 10 s clip with the default model.

Start-up is a fresh process that builds the CLI and imports what ``animate`` runs, plus loading the
weights. The animation is one in-process ``animate()`` run (the CLI's code path) whose stages are
timed by wrapping the functions and modules that do them; times are *exclusive* (a stage nested in
another, e.g. decoding inside the face scan, counts only for itself):

    decode       video frames out of ffmpeg            face scan    the driving clip's face window
    crop         warp_crop of every frame              keypoints    the prior's keypoint network
    dense motion the prior's coarse flow + occlusion   correlation  structure features + lookups
    updates      the flow/occlusion update heads       generator    the occlusion-aware decoder
    to images    resize to the output size, uint8      paste back   (with --paste-back)
    encode       frames into ffmpeg, audio mux         other        everything not listed

Stages marked "beside the model" ran in the reader or writer thread (``scorr_cli.pipeline.overlap``):
their time overlaps the model's, so the rows add up to more than the wall time. End-to-end fps counts
start-up, loading and the run. Prints a table and one JSON line.

    python benchmarks/bench_stages.py [--clip PATH] [--source PATH] [--seconds 10] [--threads N]
                                      [--checkpoint NAME|PATH] [--paste-back] [--variants fp32:0,auto]
                                      [--repeats N]

Each variant (precision[:skip-updates], as ``--precision`` / ``--skip-updates`` of animate; no skip =
the model's own setting) is one whole run in the same process, repeated round robin, so their ratio is
measured under the same machine load; a bf16 variant runs fp32 on a CPU without native bf16. The
column header says what ran: asked precision (precision that ran, updater levels skipped).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MEDIA = REPO.parent / "shared" / "data" / "faces"
DEFAULT_CLIP = MEDIA / "driving" / "liveportrait_d10.mp4"  # 512², 30 fps, with audio
DEFAULT_SOURCE = MEDIA / "source" / "liveportrait_s42.jpg"
BESIDE = " (beside the model)"  # a stage timed in the reader or writer thread


class StageClock:
    """Exclusive wall time per stage: entering a stage pauses the one it is nested in. Each thread has its
    own nesting; stages that ran outside the main thread (decoding, encoding: beside the model) are
    marked, and their time overlaps the main thread's."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._local = threading.local()
        self._lock = threading.Lock()

    @property
    def _stack(self) -> list[list]:  # [name, started, paused_for] per open stage of this thread
        if not hasattr(self._local, "stack"):
            self._local.stack = []
        return self._local.stack

    def enter(self, name: str) -> None:
        self._stack.append([name, time.perf_counter(), 0.0])

    def leave(self) -> None:
        stack = self._stack
        name, started, nested = stack.pop()
        elapsed = time.perf_counter() - started
        if threading.current_thread() is not threading.main_thread():
            name = f"{name}{BESIDE}"
        with self._lock:
            self.seconds[name] = self.seconds.get(name, 0.0) + elapsed - nested
        if stack:
            stack[-1][2] += elapsed

    @contextlib.contextmanager
    def stage(self, name: str):
        self.enter(name)
        try:
            yield
        finally:
            self.leave()

    def wrap(self, name: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            with self.stage(name):
                return fn(*args, **kwargs)
        return timed

    def wrap_iter(self, name: str, make_iter):
        """Time each ``next()`` of the iterators ``make_iter`` returns (a decoder's work happens there)."""
        @functools.wraps(make_iter)
        def timed(*args, **kwargs):
            it = iter(make_iter(*args, **kwargs))
            while True:
                with self.stage(name):
                    try:
                        item = next(it)
                    except StopIteration:
                        return
                yield item
        return timed

    def hook(self, name: str, module) -> None:
        module.register_forward_pre_hook(lambda m, a: self.enter(name))
        module.register_forward_hook(lambda m, a, o: self.leave())


@contextlib.contextmanager
def patched(obj, attr: str, value):
    old = getattr(obj, attr)
    setattr(obj, attr, value)
    try:
        yield
    finally:
        setattr(obj, attr, old)


def startup_seconds() -> float:
    """A fresh process that builds the CLI and imports what ``animate`` runs (torch, OpenCV, the pipeline):
    what ``scorr animate`` pays before its first step."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import scorr_cli.cli, scorr_cli.pipeline.animate"], check=True,
                   capture_output=True, cwd=REPO)
    return time.perf_counter() - t0


def instrument(clock: StageClock, engine, stack: contextlib.ExitStack) -> None:
    import scorr_cli.media as media
    import scorr_cli.pipeline.animate as animate_mod
    import scorr_cli.pipeline.render as render_mod
    from scorr_cli.media.writers import _Writer
    from scorr_cli.pipeline.faces import FaceCropper

    model = engine.model
    clock.hook("keypoints", model.encoder)
    clock.hook("dense motion", model.dense_motion)
    clock.hook("correlation", model.decoder)  # refinement minus what is timed inside it
    clock.hook("updates", model.decoder.refine)
    clock.hook("updates", model.decoder.corr_enc)
    gen = model.decoder.generator
    stack.enter_context(patched(gen, "decode", clock.wrap("generator", gen.decode)))
    stack.enter_context(patched(gen, "encode", clock.wrap("generator", gen.encode)))
    stack.enter_context(patched(media, "iter_video_frames", clock.wrap_iter("decode", media.iter_video_frames)))
    stack.enter_context(patched(animate_mod, "warp_crop", clock.wrap("crop", animate_mod.warp_crop)))
    stack.enter_context(patched(animate_mod, "paste_back", clock.wrap("paste back", animate_mod.paste_back)))
    stack.enter_context(patched(render_mod, "tensor_to_images", clock.wrap("to images", render_mod.tensor_to_images)))
    stack.enter_context(patched(FaceCropper, "video_window", clock.wrap("face scan", FaceCropper.video_window)))
    stack.enter_context(patched(FaceCropper, "source", clock.wrap("face scan", FaceCropper.source)))
    stack.enter_context(patched(_Writer, "write", clock.wrap("encode", _Writer.write)))
    stack.enter_context(patched(_Writer, "close", clock.wrap("encode", _Writer.close)))


def run_variant(args, precision: str, skip_updates) -> dict:
    """One whole ``animate()`` run of the clip with this precision / updater setting, stage by stage."""
    from scorr_cli.pipeline.animate import AnimateConfig, animate
    from scorr_cli.pipeline.render import load_engine

    with tempfile.TemporaryDirectory() as tmp:
        config = AnimateConfig(source=args.source, driving=args.clip, output=Path(tmp) / "out.mp4",
                               checkpoint=args.checkpoint, device="cpu", max_frames=args.frames,
                               paste_back=args.paste_back, detector="dlib", precision=precision,
                               skip_updates=skip_updates)
        t0 = time.perf_counter()
        engine = load_engine(config)
        load = time.perf_counter() - t0
        clock = StageClock()
        with contextlib.ExitStack() as stack:
            instrument(clock, engine, stack)
            t0 = time.perf_counter()
            with clock.stage("other"):
                result = animate(config, engine=engine)
            run = time.perf_counter() - t0
    skip = engine.model.cfg.refiner.skip_finest_updates if hasattr(engine, "model") else skip_updates
    return {"name": f"{precision} ({engine.precision}, skip {skip})",
            "precision": engine.precision, "skip_updates": skip, "frames": result.frames,
            "size": result.size[0], "load": load, "run": run, "stages": clock.seconds}


def parse_variants(text: str) -> list[tuple[str, object]]:
    """``fp32,bf16,bf16:1`` -> [(fp32, None), (bf16, None), (bf16, 1)] (precision[:skip-updates])."""
    out = []
    for item in text.split(","):
        precision, _, skip = item.partition(":")
        out.append((precision, int(skip) if skip else None))
    return out


def print_report(args, info, startup: float, variants: list[dict]) -> None:
    import torch
    from rich.console import Console
    from rich.table import Table

    first = variants[0]
    table = Table(title=f"scorr animate, {first['frames']} frames of {args.clip.name} ({info.width}x{info.height}, "
                        f"{float(info.fps):.0f} fps) -> {first['size']}², {torch.get_num_threads()} thread(s); "
                        "ms/frame")
    table.add_column("stage")
    for v in variants:
        table.add_column(v["name"], justify="right")
    order = ("decode", "face scan", "crop", "keypoints", "dense motion", "correlation", "updates", "generator",
             "to images", "paste back", "encode", "other")
    labels = [label for name in order for label in (name, name + BESIDE)
              if any(label in v["stages"] for v in variants)]
    ms = lambda sec, v: f"{1000 * sec / v['frames']:.1f}"  # noqa: E731
    table.add_row("start-up (imports)", *[ms(startup, v) for v in variants])
    table.add_row("load weights", *[ms(v["load"], v) for v in variants])
    for label in labels:
        table.add_row(label, *[ms(v["stages"].get(label, 0.0), v) for v in variants])
    for v in variants:
        v["total"] = startup + v["load"] + v["run"]
    table.add_row("wall time", *[ms(v["total"], v) for v in variants])
    table.add_row("end to end fps", *[f"{v['frames'] / v['total']:.2f}" for v in variants])
    Console().print(table)
    for v in variants[1:]:
        print(f"{v['name']} vs {first['name']}: {first['total'] / v['total']:.2f}x end to end "
              f"({first['run'] / v['run']:.2f}x the animation alone), same run")
    for v in variants:
        print(json.dumps({"benchmark": "animate_stages", "variant": v["name"], "precision": v["precision"],
                          "skip_updates": v["skip_updates"], "clip": args.clip.name, "frames": v["frames"],
                          "threads": torch.get_num_threads(), "startup_s": round(startup, 3),
                          "load_s": round(v["load"], 3), "run_s": round(v["run"], 3),
                          "fps_end_to_end": round(v["frames"] / v["total"], 3),
                          "fps_run": round(v["frames"] / v["run"], 3), "runs_s": v["runs_s"],
                          "stages_s": {k: round(x, 3) for k, x in v["stages"].items()}, "torch": torch.__version__}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    ap.add_argument("--seconds", type=float, default=10.0, help="animate this much of the clip")
    ap.add_argument("--checkpoint", default=None, help="weights (default: the bundled default model)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--paste-back", action="store_true")
    ap.add_argument("--variants", default="fp32:0,auto",
                    help="precision[:skip-updates] runs to compare in this process, e.g. fp32:0,bf16,auto; the "
                         "first is the baseline (fp32:0 = what scorr 0.1 ran on a CPU; auto = today's default)")
    ap.add_argument("--repeats", type=int, default=1, help="runs of each variant (round robin); the median is shown")
    args = ap.parse_args()
    for path in (args.clip, args.source):
        if not path.is_file():
            sys.exit(f"bench_stages: {path} not found (give --clip/--source)")

    import torch

    from scorr_cli import runtime
    from scorr_cli.media import probe_video

    runtime.keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    startup = startup_seconds()
    info = probe_video(args.clip)
    args.frames = min(info.n_frames, round(args.seconds * float(info.fps)))
    runs: dict[int, list[dict]] = {}
    for _ in range(args.repeats):  # round robin, so a noisy minute hits every variant alike
        for i, (precision, skip) in enumerate(parse_variants(args.variants)):
            runs.setdefault(i, []).append(run_variant(args, precision, skip))
    variants = []
    for i in sorted(runs):
        ordered = sorted(runs[i], key=lambda v: v["run"])
        median = ordered[len(ordered) // 2]
        median["runs_s"] = [round(v["run"], 3) for v in runs[i]]
        variants.append(median)
    print_report(args, info, startup, variants)


if __name__ == "__main__":
    main()
