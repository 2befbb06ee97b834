"""Evaluation protocols: the paper's reconstruction protocol, and cross-identity pairs.

Reconstruction (ARCHITECTURE.md §11): for each test clip, frame 0 is the source and every frame t
(0 included) drives it with **absolute** keypoints, the background predictor used when the model has
one; predictions are compared with frame t. Everything happens on lossless frames in memory: the
clip's own frames (PNG folders, or a video decoded once, never re-encoded) and the model's float
outputs; nothing passes through an MP4. Each clip is streamed once, every method sees the same frames
and the ground truth's face landmarks/embeddings are computed once for all methods. Means are over
all frames of all clips (as the authors average); the per-clip CSV has each clip's own means.

Cross-identity (``cross=True``): clip A's frame 0 animated by clip B (another identity) with relative
motion. There is no ground truth, so the pixel metrics and AKD do not apply; AED is measured against
the *source* face (identity preservation). ARD / AUH need a head-pose and an action-unit model that
scorr does not ship; they are reported as skipped with that reason.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch

from scorr_cli.errors import InputError, ScorrError
from scorr_cli.evaluate import metrics as M

BASELINES = ("copy-source",)
RECON_METRICS = ("l1", "psnr", "ssim", "lpips", "akd", "mkr", "aed")
CROSS_METRICS = ("aed", "ard", "auh")
DEFAULT_SIZE = 256


@dataclass
class EvalConfig:
    data: Path
    checkpoints: list[str] = field(default_factory=list)
    baselines: list[str] = field(default_factory=list)
    split: str = "test"
    size: Optional[int] = None  # evaluated resolution: the models' (they must agree); 256 for baselines alone
    max_clips: Optional[int] = None
    max_frames: Optional[int] = None
    batch_size: int = 8
    device: str = "auto"
    precision: str = "fp32"
    lpips: str = "vgg"  # vgg (the authors' choice), alex, or none
    lpips_weights: Optional[Path] = None
    akd: bool = True
    aed: bool = True
    detector: str = "auto"
    use_background: bool = True
    cross: bool = False
    split_len: Optional[int] = None  # identity = first N characters of a clip name (default: up to '#')
    seed: int = 0

    def __post_init__(self) -> None:
        self.data = Path(self.data)
        for b in self.baselines:
            if b not in BASELINES:
                raise InputError(f"--baseline {b}: expected one of {', '.join(BASELINES)}")
        if not self.checkpoints and not self.baselines:
            raise InputError("nothing to evaluate: give checkpoint(s) and/or --baseline copy-source")
        if self.lpips not in ("vgg", "alex", "none"):
            raise InputError(f"--lpips {self.lpips}: expected vgg, alex or none")
        if self.batch_size < 1:
            raise InputError("--batch-size must be at least 1")


@dataclass
class Method:
    name: str
    kind: str  # baseline | checkpoint
    path: Optional[str] = None
    sha256: Optional[str] = None
    image_size: Optional[int] = None
    prior: Optional[str] = None
    engine: Any = field(default=None, repr=False)

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "engine"}


@dataclass
class ClipResult:
    method: str
    clip: str
    driving: Optional[str]  # cross mode: the driving clip
    frames: int
    values: dict[str, float]  # per-clip means (NaN when not measured)


@dataclass
class EvalResult:
    config: EvalConfig
    methods: list[Method]
    clips: list[ClipResult]
    summary: dict[str, dict[str, float]]  # method -> metric -> mean over all frames
    identical: dict[str, int]  # method -> frames equal to the ground truth (left out of the PSNR mean)
    frames: dict[str, int]
    skipped: dict[str, str]  # metric -> reason
    metrics: tuple[str, ...]
    size: int
    seconds: float
    cropper: str = ""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------- inputs

def clip_source(data: Path, split: str) -> tuple[Path, str]:
    """(root, split) for ``iter_test_clips``: a dataset root with ``<split>/``, or a folder of clips itself."""
    data = Path(data).expanduser()
    if not data.is_dir():
        raise InputError(f"{data}: dataset root / clip folder not found")
    if (data / split).is_dir():
        return data, split
    return data.parent, data.name  # a plain folder of clips is read as the "split" of its parent


def _clips(config: EvalConfig, size: int) -> list:
    from scorr_cli.train.data import iter_test_clips

    root, split = clip_source(config.data, config.split)
    clips = list(iter_test_clips(root, size, split=split))
    return clips[: config.max_clips] if config.max_clips else clips


def _frames(clip, max_frames: Optional[int]) -> Iterator[torch.Tensor]:
    for i, f in enumerate(clip.frames()):
        if max_frames is not None and i >= max_frames:
            return
        yield f


def _batched(frames: Iterator[torch.Tensor], n: int) -> Iterator[torch.Tensor]:
    batch: list[torch.Tensor] = []
    for f in frames:
        batch.append(f)
        if len(batch) == n:
            yield torch.stack(batch)
            batch = []
    if batch:
        yield torch.stack(batch)


def cross_pairs(clips: list, split_len: Optional[int], seed: int) -> list[tuple[Any, Any]]:
    """Each clip as a source once, driven by a clip of another identity chosen with a seeded generator."""
    from scorr_cli.train.data import identity_of

    ids = [identity_of(c.name, split_len) for c in clips]
    if len(set(ids)) < 2:
        raise InputError(f"--cross needs clips of at least two identities; found only {ids[0] if ids else 'none'} "
                         "(identity = clip name up to '#', or its first --split-len characters)")
    rng = np.random.default_rng(seed)
    pairs = []
    for i, c in enumerate(clips):
        others = [j for j, other in enumerate(ids) if other != ids[i]]
        pairs.append((c, clips[int(rng.choice(others))]))
    return pairs


# ----------------------------------------------------------------------------- methods

def load_methods(config: EvalConfig) -> tuple[list[Method], int]:
    from scorr_cli.checkpoints import load_checkpoint, resolve_checkpoint
    from scorr_cli.core.engine import AnimationEngine, resolve_device

    methods = [Method(b, "baseline") for b in config.baselines]
    if config.checkpoints:
        try:
            device = resolve_device(config.device)
        except (ValueError, RuntimeError) as e:
            raise InputError(f"--device {config.device}: {e}") from None
    sizes = set()
    for name in config.checkpoints:
        path = resolve_checkpoint(name)
        model, ckpt = load_checkpoint(path, device)
        label = Path(name).stem if Path(name).suffix else name
        if any(m.name == label for m in methods):
            label = f"{label}#{len(methods)}"
        size = model.cfg.image_size
        sizes.add(size)
        methods.append(Method(label, "checkpoint", str(path), sha256_file(path), size, model.cfg.prior,
                              AnimationEngine(model, device, config.precision)))
    if len(sizes) > 1:
        raise InputError(f"the checkpoints have different resolutions ({', '.join(map(str, sorted(sizes)))}); "
                         "one table needs one evaluated resolution: evaluate them separately")
    size = sizes.pop() if sizes else (config.size or DEFAULT_SIZE)
    if config.size is not None and config.size != size:
        raise InputError(f"--size {config.size}: the checkpoints run at {size}x{size} (evaluate at that size)")
    return methods, size


@dataclass
class _Prepared:
    method: Method
    prepared: Any = None
    source: Optional[torch.Tensor] = None  # 1×3×S×S on the method's device
    state: Any = None  # cross mode: SourceState with the driving reference


def _prepare(method: Method, source: torch.Tensor) -> _Prepared:
    if method.engine is None:
        return _Prepared(method, source=source[None])
    eng = method.engine
    return _Prepared(method, eng.prepare(source[None]).prepared, source[None].to(eng.device))


@torch.no_grad()
def _reconstruct(p: _Prepared, frames: torch.Tensor, use_background: bool) -> torch.Tensor:
    """The authors' reconstruction forward: absolute keypoints, background motion when the model has it."""
    if p.method.engine is None:  # copy-source: no motion at all
        return p.source.expand(frames.shape[0], -1, -1, -1).cpu()
    from scorr_cli.core.engine import autocast_context

    eng = p.method.engine
    x = frames.to(eng.device)
    kp = eng.detect(x)
    model = eng.model
    with autocast_context(eng.device, eng.precision):
        bg = None
        if use_background and model.has_background:
            bg = model.bg_predictor(p.source.expand(x.shape[0], -1, -1, -1), x)
        out = model.animate(p.prepared, kp, bg)
    return out.prediction.float().clamp(0, 1).cpu()


@torch.no_grad()
def _cross(p: _Prepared, frames: torch.Tensor) -> torch.Tensor:
    if p.method.engine is None:
        return p.source.expand(frames.shape[0], -1, -1, -1).cpu()
    from scorr_cli.core.transfer import TransferOptions

    eng = p.method.engine
    if p.state is None:
        from scorr_cli.core.engine import SourceState

        p.state = SourceState(p.prepared)  # reference: the first driving frame (set by the engine)
    return eng.animate(p.state, frames.to(eng.device), TransferOptions("relative", True)).prediction.cpu()


# ----------------------------------------------------------------------------- the run

ProgressFn = Callable[[str, int, Optional[int]], None]


class _Acc:
    """Sums and counts per metric, ignoring NaN (frames where a metric does not apply) and counting
    apart the infinite PSNR of frames identical to the ground truth (the copy-source baseline's frame 0),
    which would otherwise make the mean infinite."""

    def __init__(self) -> None:
        self.sum: dict[str, float] = {}
        self.n: dict[str, int] = {}
        self.identical = 0

    def add(self, name: str, values: np.ndarray) -> None:
        v = np.asarray(values, dtype=np.float64)
        v = v[~np.isnan(v)]
        if name == "psnr":
            self.identical += int(np.isinf(v).sum())
            v = v[np.isfinite(v)]
        self.sum[name] = self.sum.get(name, 0.0) + float(v.sum()) if v.size else self.sum.get(name, 0.0)
        self.n[name] = self.n.get(name, 0) + int(v.size)

    def mean(self, name: str) -> float:
        n = self.n.get(name, 0)
        return self.sum[name] / n if n else math.nan


def _face_tools(config: EvalConfig, skipped: dict[str, str]) -> tuple[Any, Any, str]:
    """(68-point detector, identity embedder, detector name); what is missing is recorded in ``skipped``."""
    want_akd = config.akd and not config.cross
    if not config.cross and not config.akd:
        skipped["akd"] = skipped["mkr"] = "AKD/MKR skipped: disabled (--no-akd)"
    if not config.aed:
        skipped["aed"] = "AED skipped: disabled (--no-aed)"
    detector = embedder = None
    if want_akd or config.aed:
        try:
            from scorr_cli.faces import get_detector

            detector = get_detector(config.detector)
        except (ScorrError, ImportError, RuntimeError) as e:
            if want_akd:
                skipped["akd"] = skipped["mkr"] = f"AKD/MKR skipped: no 68-point face landmarker available ({e})"
    if config.aed:
        try:
            from scorr_cli.faces import FaceEmbedder

            embedder = FaceEmbedder()
        except (ScorrError, ImportError, RuntimeError) as e:
            skipped["aed"] = f"AED skipped: no face identity embedding model available ({e})"
    return detector, embedder, getattr(detector, "name", "") if detector is not None else ""


def evaluate(config: EvalConfig, progress: Optional[ProgressFn] = None) -> EvalResult:
    t0 = time.perf_counter()
    report = progress or (lambda stage, done, total: None)
    methods, size = load_methods(config)
    clips = _clips(config, size)
    skipped: dict[str, str] = {}
    metric_names = CROSS_METRICS if config.cross else RECON_METRICS
    lpips_model = None
    if config.cross:
        for m in ("l1", "psnr", "ssim", "lpips", "akd"):
            skipped[m] = f"{m.upper()} skipped: cross-identity pairs have no ground-truth frames"
        skipped["ard"] = ("ARD skipped: needs a head-pose estimator (e.g. Hopenet) whose weights scorr does not "
                          "ship or find on this machine")
        skipped["auh"] = ("AUH skipped: needs a facial action-unit detector (e.g. OpenFace) that scorr does not "
                          "ship or find on this machine")
    elif config.lpips == "none":
        skipped["lpips"] = "LPIPS skipped: disabled (--lpips none)"
    else:
        files, reason = M.find_lpips_weights(config.lpips, config.lpips_weights)
        if files is None:
            skipped["lpips"] = reason
        else:
            dev = methods[-1].engine.device if methods[-1].engine is not None else torch.device("cpu")
            lpips_model = M.LPIPS.from_files(config.lpips, *files).to(dev)
    detector, embedder, cropper = _face_tools(config, skipped)
    faces = M.FaceMetrics(detector, embedder, akd=config.akd and not config.cross)

    accs = {m.name: _Acc() for m in methods}
    frames_seen = {m.name: 0 for m in methods}
    rows: list[ClipResult] = []
    jobs = cross_pairs(clips, config.split_len, config.seed) if config.cross else [(c, c) for c in clips]
    for k, (src_clip, drv_clip) in enumerate(jobs):
        report("clips", k, len(jobs))
        try:
            source = next(iter(_frames(src_clip, 1)))
        except StopIteration:
            raise InputError(f"{src_clip.name}: clip has no frames") from None
        prepared = [_prepare(m, source) for m in methods]
        clip_accs = {m.name: _Acc() for m in methods}
        src_embed = None
        if config.cross and embedder is not None:
            s8 = M.to_uint8(source[None])[0]
            src_embed = faces.embed(s8, faces.face(s8))
        n = 0
        for gt in _batched(_frames(drv_clip, config.max_frames), config.batch_size):
            gt_u8 = M.to_uint8(gt) if faces.active else None
            gt_cache: list = [None] * gt.shape[0]
            for p in prepared:
                name = p.method.name
                pred = _cross(p, gt) if config.cross else _reconstruct(p, gt, config.use_background)
                vals: dict[str, np.ndarray] = {}
                if not config.cross:
                    vals["l1"] = M.l1(pred, gt)
                    vals["psnr"] = M.psnr(pred, gt)
                    vals["ssim"] = M.ssim(pred, gt)
                    if lpips_model is not None:
                        vals["lpips"] = lpips_model.score01(pred, gt)
                    if gt_u8 is not None:
                        vals.update(faces.scores(M.to_uint8(pred), gt_u8, gt_cache))
                elif src_embed is not None:
                    vals["aed"] = np.array([faces.distance_to(src_embed, img) for img in M.to_uint8(pred)])
                for metric, v in vals.items():
                    accs[name].add(metric, v)
                    clip_accs[name].add(metric, v)
                frames_seen[name] += gt.shape[0]
            n += gt.shape[0]
            report("frames", n, drv_clip.num_frames if config.max_frames is None else
                   min(config.max_frames, drv_clip.num_frames))
        for m in methods:
            rows.append(ClipResult(m.name, src_clip.name, drv_clip.name if config.cross else None, n,
                                   {x: clip_accs[m.name].mean(x) for x in metric_names}))
    report("clips", len(jobs), len(jobs))
    summary = {m.name: {x: accs[m.name].mean(x) for x in metric_names} for m in methods}
    for x in metric_names:  # a metric that ran but never found a face says so rather than showing NaN silently
        if x not in skipped and all(math.isnan(summary[m.name][x]) for m in methods):
            skipped[x] = f"{x.upper()} not measured: no face found in any ground-truth frame " \
                         f"(detector: {cropper or 'none'}; at {size}x{size})" if x in ("akd", "mkr", "aed") else \
                         f"{x.upper()} not measured"
    identical = {m.name: accs[m.name].identical for m in methods}
    return EvalResult(config, methods, rows, summary, identical, frames_seen, skipped, metric_names, size,
                      time.perf_counter() - t0, cropper)
