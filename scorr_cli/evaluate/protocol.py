"""Evaluation protocols: the paper's reconstruction protocol, and cross-identity pairs.

Reconstruction (docs/ARCHITECTURE.md §4): for each test clip, frame 0 is the source and every frame t
(0 included) drives it with **absolute** keypoints, the background predictor used when the model has
one; predictions are compared with frame t. Everything happens on lossless frames in memory: the
clip's own frames (PNG folders, or a video decoded once, never re-encoded) and the model's float
outputs; nothing passes through an MP4. Each clip is streamed once, every method sees the same frames
and the ground truth's face landmarks/embeddings are computed once for all methods. Means are over
all frames of all clips (as the authors average); the per-clip CSV has each clip's own means.

Cross-identity (``cross=True``): a source animated by a clip of another identity with relative
motion. Sources are the clips' frame 0 (each driven by a clip of another identity), or with
``sources`` photos (a face crop of each, never trained on) paired round-robin with the clips. There is
no ground truth, so the pixel metrics and AKD do not apply. Instead: the follow metric
(:mod:`scorr_cli.evaluate.follow`: correlation and amplitude ratio of mouth opening, eye opening, yaw,
pitch and roll between output and driving, the median over pairs in the summary), ARD (head-pose
distance to the driving, degrees) and AED against the *source* face (identity preservation). AUH
needs an action-unit model that scorr does not ship; it is reported as skipped with that reason.
Cross-identity pairs are measured at the size ``scorr animate`` delivers (``delivered_size``: 256² for
the 128² lite model): sources and driving frames are cut at that size, the engine shrinks them to the
model's as it does in animate, and the output is upsampled back the way animate writes it. Measured at
the model's 128² instead, dlib's landmarks on the small *driving* frames are so noisy that even the
driving frames themselves (blurred by 1 px) correlate with them only 0.79 in yaw and 0.70 in pitch.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch

from scorr_cli.choices import EVAL_BASELINES, LPIPS_NETS, one_of
from scorr_cli.errors import InputError, ScorrError
from scorr_cli.evaluate import metrics as M
from scorr_cli.evaluate.follow import FOLLOW_METRICS, follow_scores, rotation_distance, sequence_signals
from scorr_cli.fsutil import sha256_file
from scorr_cli.pipeline.render import tensor_to_images

BASELINES: tuple[str, ...] = tuple(EVAL_BASELINES)
BLUR_SIGMA = 1.0  # driving-blurred's Gaussian, pixels at the evaluated size
# Reconstruction also reports how well the expression follows the (same person's) driving frames: mouth
# and eyes, correlation and amplitude per clip, from the landmarks AKD already finds.
RECON_FOLLOW_METRICS = tuple(f"{s}_{k}" for s in ("mouth", "eyes") for k in ("corr", "amp"))
RECON_METRICS = ("l1", "psnr", "ssim", "lpips", "akd", "mkr", "aed", *RECON_FOLLOW_METRICS)
CROSS_METRICS = (*FOLLOW_METRICS, "aed", "ard", "auh")
# the summary of these is the median of the per-pair (per-clip) values: one number per sequence
PER_PAIR_METRICS = frozenset(FOLLOW_METRICS)
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
    # cross mode: photos or folders of photos as sources, in this order (several sets give one pair list,
    # the same pairs as each set evaluated alone, and medians over all of them); one path is taken as [path]
    sources: list[Path] = field(default_factory=list)
    find_best_frame: bool = True  # cross mode: animate's default reference (False: the first frame, as before)
    split_len: Optional[int] = None  # identity = first N characters of a clip name (default: up to '#')
    seed: int = 0

    def __post_init__(self) -> None:
        self.data = Path(self.data)
        for b in self.baselines:
            if b not in BASELINES:
                raise InputError(f"--baseline {b}: expected one of {', '.join(BASELINES)}")
        if not self.checkpoints and not self.baselines:
            raise InputError("nothing to evaluate: give checkpoint(s) and/or --baseline copy-source")
        if self.lpips not in LPIPS_NETS:
            raise InputError(f"--lpips {self.lpips}: expected {one_of(LPIPS_NETS)}")
        if self.batch_size < 1:
            raise InputError("--batch-size must be at least 1")
        if isinstance(self.sources, (str, Path)):
            self.sources = [self.sources]
        self.sources = [Path(p) for p in self.sources or []]
        if self.sources and not self.cross:
            raise InputError("--sources needs --cross (photos have no ground-truth frames)")


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
    reference: Optional[int] = None  # cross mode: the driving frame relative motion was measured from


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
    size: int  # the models' resolution
    measure_size: int  # frames are measured at this size (see ``measure_size``)
    seconds: float
    cropper: str = ""


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


@dataclass
class PhotoSource:
    """A face crop of a photo as a cross-identity source (``name``: the file name)."""

    name: str
    image: torch.Tensor  # 3×S×S in [0, 1]


def photo_sources(path: Path, size: int, detector) -> list[PhotoSource]:
    """Face crops (largest face, ``animate``'s framing) of a photo or of every photo in a folder.

    Photos without a face are an error naming the file: the pair list must not change silently."""
    from scorr_cli.errors import NoFaceError
    from scorr_cli.faces import crop_source_image
    from scorr_cli.media import read_image
    from scorr_cli.train.data import resize_frame, to_tensor

    path = Path(path).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp")
                       and not p.name.startswith("."))
    elif path.is_file():
        files = [path]
    else:
        raise InputError(f"--sources {path}: no such file or folder")
    if not files:
        raise InputError(f"--sources {path}: no photos (png, jpg, jpeg, webp, bmp) in the folder")
    out = []
    for f in files:
        try:
            crop, _ = crop_source_image(read_image(f), detector, size=size)
        except NoFaceError:
            raise InputError(f"{f}: no face found (remove it from --sources)") from None
        out.append(PhotoSource(f.name, to_tensor(resize_frame(crop, size))))
    return out


def photo_pairs(photos: list[PhotoSource], clips: list) -> list[tuple[Any, Any]]:
    """Photo i with clip i (both cycled): every photo and every clip is used at least once."""
    n = max(len(photos), len(clips))
    return [(photos[i % len(photos)], clips[i % len(clips)]) for i in range(n)]


# ----------------------------------------------------------------------------- methods

def checkpoint_label(arg: str) -> tuple[str, str]:
    """``LABEL=CHECKPOINT`` names a table row; a bare checkpoint is labelled by its file stem or name."""
    label, sep, rest = arg.partition("=")
    if sep and label and rest and not Path(arg).exists():
        return label, rest
    return (Path(arg).stem if Path(arg).suffix else arg), arg


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
        label, path = checkpoint_label(name)
        path = resolve_checkpoint(path)
        model, ckpt = load_checkpoint(path, device)
        if any(m.name == label for m in methods):
            label = f"{label}#{len(methods)}"
        size = model.cfg.image_size
        sizes.add(size)
        methods.append(Method(label, "checkpoint", str(path), sha256_file(path), size, model.cfg.prior,
                              AnimationEngine(model, device, config.precision, owns_model=True)))
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


def _baseline(p: _Prepared, frames: torch.Tensor) -> torch.Tensor:
    """A baseline's predictions for driving ``frames`` (N×3×S×S in [0, 1]); see ``choices.EVAL_BASELINES``."""
    if p.method.name == "driving-blurred":
        return _gaussian_blur(frames.cpu(), BLUR_SIGMA)
    return p.source.expand(frames.shape[0], -1, -1, -1).cpu()  # copy-source: no motion at all


def _gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of N×C×H×W images, edges replicated."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype)
    k = torch.exp(-x ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = images.shape[1]
    out = torch.nn.functional.pad(images, (radius,) * 4, mode="replicate")
    out = torch.nn.functional.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return torch.nn.functional.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _reconstruct(p: _Prepared, frames: torch.Tensor, use_background: bool) -> torch.Tensor:
    """The authors' reconstruction forward (absolute keypoints, background motion when the model has it)."""
    if p.method.engine is None:
        return _baseline(p, frames)
    from scorr_cli.core.engine import SourceState

    return p.method.engine.reconstruct(SourceState(p.prepared), p.source, frames, use_background)


@torch.no_grad()
def _cross(p: _Prepared, frames: torch.Tensor) -> torch.Tensor:
    """Predictions for driving ``frames`` at their own size, as ``scorr animate`` makes them: the engine
    shrinks the frames to the model's resolution, the output is upsampled back the way animate writes it."""
    if p.method.engine is None:
        return _baseline(p, frames)
    from scorr_cli.core.transfer import TransferOptions
    from scorr_cli.pipeline.render import images_to_tensor

    eng = p.method.engine
    if p.state is None:
        from scorr_cli.core.engine import SourceState

        p.state = SourceState(p.prepared)  # reference: the first driving frame (set by the engine)
    out = eng.animate(p.state, frames.to(eng.device), TransferOptions("relative", True)).prediction.cpu()
    return out if out.shape[-1] == frames.shape[-1] else images_to_tensor(tensor_to_images(out, frames.shape[-1]))


# ----------------------------------------------------------------------------- the run

def _jobs(config: EvalConfig, clips: list, size: int, detector) -> list[tuple[Any, Any]]:
    """(source, driving clip) pairs: each clip with itself, or cross-identity pairs."""
    if not config.cross:
        return [(c, c) for c in clips]
    if not config.sources:
        return cross_pairs(clips, config.split_len, config.seed)
    if detector is None:
        raise InputError("--sources: cropping the photos needs a face detector (none could be built)")
    return [pair for path in config.sources for pair in photo_pairs(photo_sources(path, size, detector), clips)]


def _recon_scores(pred: torch.Tensor, gt: torch.Tensor, gt_u8, gt_cache: list, lpips_model,
                  faces: M.FaceMetrics, landmarks: Optional[list] = None) -> dict[str, np.ndarray]:
    vals = {"l1": M.l1(pred, gt), "psnr": M.psnr(pred, gt), "ssim": M.ssim(pred, gt)}
    if lpips_model is not None:
        vals["lpips"] = lpips_model.score01(pred, gt)
    if gt_u8 is not None:
        vals.update(faces.scores(tensor_to_images(pred), gt_u8, gt_cache, landmarks))
    return vals


class _ReconFollow:
    """Same-identity follow: per method, the follow signals of its reconstructions and of their ground
    truth (from the landmarks AKD finds), scored per clip."""

    def __init__(self, methods: list[Method], size: int):
        self.size = (size, size)
        self.pairs: dict[str, list] = {m.name: [] for m in methods}  # (pred, gt) landmarks per frame

    def follow(self, method: str) -> dict[str, float]:
        pairs = self.pairs[method]
        out = sequence_signals([p for p, _ in pairs], self.size)
        gt = sequence_signals([g for _, g in pairs], self.size)
        scores = follow_scores(out, gt)
        return {k: scores[k] for k in RECON_FOLLOW_METRICS}


class _CrossPair:
    """One cross-identity pair: the follow signals of the driving frames (once) and of each method's
    outputs, per-frame ARD/AED as they come, the follow scores at the end."""

    def __init__(self, faces: M.FaceMetrics, source: torch.Tensor, methods: list[Method], size: int):
        self.faces = faces
        self.size = (size, size)
        self.driving: list[np.ndarray] = []  # frames × 5 signals per batch
        self.outputs: dict[str, list[np.ndarray]] = {m.name: [] for m in methods}
        self.source_embedding = None
        if faces.embedder is not None:
            s8 = tensor_to_images(source[None])[0]
            self.source_embedding = faces.embed(s8, faces.face(s8))

    def add_driving(self, frames: list[np.ndarray]) -> None:
        self.driving.append(self.faces.signals(frames, self.size))

    def add_output(self, method: str, frames: list[np.ndarray]) -> dict[str, np.ndarray]:
        """Per-frame ``ard`` and ``aed`` of a batch of outputs (the batch last given to add_driving)."""
        infos = [self.faces.face(f) for f in frames]
        out = sequence_signals([i.landmarks for i in infos], self.size)
        self.outputs[method].append(out)
        vals = {"ard": rotation_distance(out, self.driving[len(self.outputs[method]) - 1])}
        if self.source_embedding is not None:
            vals["aed"] = np.array([self.faces.distance_to(self.source_embedding, f, i) for f, i in zip(frames, infos)])
        return vals

    def follow(self, method: str) -> dict[str, float]:
        def rows(batches: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(batches) if batches else sequence_signals([], self.size)

        return follow_scores(rows(self.outputs[method]), rows(self.driving))


def _median(values: list[float]) -> float:
    v = [x for x in values if not math.isnan(x)]
    return float(np.median(v)) if v else math.nan


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
        for m in ("akd", "mkr", *RECON_FOLLOW_METRICS):
            skipped[m] = "AKD/MKR and the mouth/eyes follow skipped: disabled (--no-akd)"
    if not config.aed:
        skipped["aed"] = "AED skipped: disabled (--no-aed)"
    detector = embedder = None
    if want_akd or config.aed or config.cross:
        try:
            from scorr_cli.faces import get_detector

            detector = get_detector(config.detector)
        except (ScorrError, ImportError, RuntimeError) as e:
            if want_akd:
                for m in ("akd", "mkr", *RECON_FOLLOW_METRICS):
                    skipped[m] = f"AKD/MKR and the mouth/eyes follow skipped: no 68-point face landmarker available ({e})"
            if config.cross:
                for m in ("ard", *FOLLOW_METRICS):
                    skipped[m] = f"{m} skipped: no 68-point face landmarker available ({e})"
    if config.aed:
        try:
            from scorr_cli.faces import FaceEmbedder

            embedder = FaceEmbedder()
        except (ScorrError, ImportError, RuntimeError) as e:
            skipped["aed"] = f"AED skipped: no face identity embedding model available ({e})"
    return detector, embedder, getattr(detector, "name", "") if detector is not None else ""


def _skipped_metrics(config: EvalConfig, methods: list) -> tuple[dict[str, str], Any]:
    """What cannot be measured and why, and the LPIPS network when it can."""
    skipped: dict[str, str] = {}
    if config.cross:
        for m in ("l1", "psnr", "ssim", "lpips", "akd"):
            skipped[m] = f"{m.upper()} skipped: cross-identity pairs have no ground-truth frames"
        skipped["auh"] = ("AUH skipped: needs a facial action-unit detector (e.g. OpenFace) that scorr does not "
                          "ship or find on this machine")
        return skipped, None
    if config.lpips == "none":
        skipped["lpips"] = "LPIPS skipped: disabled (--lpips none)"
        return skipped, None
    files, reason = M.find_lpips_weights(config.lpips, config.lpips_weights)
    if files is None:
        skipped["lpips"] = reason
        return skipped, None
    dev = methods[-1].engine.device if methods[-1].engine is not None else torch.device("cpu")
    return skipped, M.LPIPS.from_files(config.lpips, *files).to(dev)


def _first_frame(src: Any) -> np.ndarray | torch.Tensor:
    if isinstance(src, PhotoSource):
        return src.image
    try:
        return next(iter(_frames(src, 1)))
    except StopIteration:
        raise InputError(f"{src.name}: clip has no frames") from None


def evaluate(config: EvalConfig, progress: Optional[ProgressFn] = None) -> EvalResult:
    t0 = time.perf_counter()
    report = progress or (lambda stage, done, total: None)
    methods, size = load_methods(config)
    measure = measure_size(config, size)
    clips = _clips(config, measure)
    skipped, lpips_model = _skipped_metrics(config, methods)
    metric_names = CROSS_METRICS if config.cross else RECON_METRICS
    detector, embedder, cropper = _face_tools(config, skipped)
    faces = M.FaceMetrics(detector, embedder, akd=config.akd and not config.cross)

    accs = {m.name: _Acc() for m in methods}
    per_pair: dict[str, dict[str, list[float]]] = {m.name: {x: [] for x in PER_PAIR_METRICS} for m in methods}
    frames_seen = {m.name: 0 for m in methods}
    rows: list[ClipResult] = []
    jobs = _jobs(config, clips, measure, detector)
    reference_cropper = None
    animated = any(m.engine is not None for m in methods)  # baselines alone need no motion reference
    if config.cross and config.find_best_frame and animated:
        from scorr_cli.pipeline.faces import FaceCropper

        reference_cropper = FaceCropper(True, config.detector)  # animate's landmarks, so its reference
    for k, (src, drv_clip) in enumerate(jobs):
        report("clips", k, len(jobs))
        source = _first_frame(src)
        prepared = [_prepare(m, source) for m in methods]
        clip_accs = {m.name: _Acc() for m in methods}
        run = _CrossPair(faces, source, methods, measure) if config.cross else None
        same = _ReconFollow(methods, size) if (faces.akd and not config.cross) else None
        total = drv_clip.num_frames if config.max_frames is None else min(config.max_frames, drv_clip.num_frames)
        n = 0
        reference = None  # a checkpoint's motion reference; baselines have none
        if run is not None and animated:
            reference = _set_matched_reference(prepared, source, drv_clip, total, config, reference_cropper) \
                if config.find_best_frame else 0
        for gt in _batched(_frames(drv_clip, config.max_frames), config.batch_size):
            for name, vals in _score_batch(config, prepared, gt, run, faces, lpips_model, same):
                for metric, v in vals.items():
                    accs[name].add(metric, v)
                    clip_accs[name].add(metric, v)
                frames_seen[name] += gt.shape[0]
            n += gt.shape[0]
            report("frames", n, total)
        for m in methods:
            values = {x: clip_accs[m.name].mean(x) for x in metric_names}
            follow = run.follow(m.name) if run is not None else same.follow(m.name) if same is not None else {}
            values.update(follow)
            for x, v in follow.items():
                per_pair[m.name][x].append(v)
            rows.append(ClipResult(m.name, src.name, drv_clip.name if config.cross else None, n, values,
                                   reference if m.engine is not None else None))
    report("clips", len(jobs), len(jobs))
    summary = {m.name: {x: _median(per_pair[m.name][x]) if x in PER_PAIR_METRICS else accs[m.name].mean(x)
                        for x in metric_names} for m in methods}
    _explain_unmeasured(summary, metric_names, skipped, cropper, measure)
    identical = {m.name: accs[m.name].identical for m in methods}
    return EvalResult(config, methods, rows, summary, identical, frames_seen, skipped, metric_names, size, measure,
                      time.perf_counter() - t0, cropper)


def _set_matched_reference(prepared: list, source: torch.Tensor, clip: Any, n_frames: int, config: EvalConfig,
                           cropper: Any) -> int:
    """Each checkpoint's motion reference for this pair (``n_frames`` of ``clip`` evaluated), chosen as
    ``scorr animate`` chooses it (:func:`~scorr_cli.pipeline.faces.matched_reference`; the first frame when
    no face matches): its index."""
    from scorr_cli.core.engine import SourceState
    from scorr_cli.pipeline.faces import matched_reference, reference_landmarks

    def landmarks_of(image: torch.Tensor):
        return cropper.landmarks(tensor_to_images(image[None])[0])

    kept: dict[int, torch.Tensor] = {}  # the ≤ REFERENCE_SAMPLES candidates: the chosen one is not decoded again

    def candidate_landmarks(item: tuple[int, torch.Tensor]):
        kept[item[0]] = item[1]
        return landmarks_of(item[1])  # only the candidates are converted and measured

    candidates = reference_landmarks(enumerate(_frames(clip, config.max_frames)), n_frames, candidate_landmarks)
    index = matched_reference(landmarks_of(source), candidates)
    if index is None:
        return 0
    frame = kept[index]
    for p in prepared:
        if p.method.engine is not None:
            engine = p.method.engine
            p.state = SourceState(p.prepared)
            engine.set_reference(p.state, engine.detect(frame[None].to(engine.device)))
    return index


def measure_size(config: EvalConfig, size: int) -> int:
    """Where frames are measured: reconstruction at the models' resolution (the paper's protocol);
    cross-identity pairs of checkpoints at the size ``scorr animate`` delivers, the driving frames at that
    size as the truth to follow (see the module docstring). Baselines alone: at ``size`` (``--size``)."""
    from scorr_cli.pipeline.options import delivered_size

    return delivered_size(size) if config.cross and config.checkpoints else size


def _score_batch(config: EvalConfig, prepared: list, gt: torch.Tensor, run: Optional["_CrossPair"],
                 faces: Any, lpips_model: Any, same: Optional[_ReconFollow] = None
                 ) -> Iterator[tuple[str, dict[str, float]]]:
    """Each method's scores on one batch of driving frames: follow signals of its output (cross-identity)
    or reconstruction metrics against the frames."""
    gt_u8 = tensor_to_images(gt) if (faces.active or run is not None) else None
    gt_cache: list = [None] * gt.shape[0]
    if run is not None:
        run.add_driving(gt_u8)
    for p in prepared:
        if run is not None:
            yield p.method.name, run.add_output(p.method.name, tensor_to_images(_cross(p, gt)))
        else:
            yield p.method.name, _recon_scores(_reconstruct(p, gt, config.use_background), gt, gt_u8, gt_cache,
                                               lpips_model, faces,
                                               same.pairs[p.method.name] if same is not None else None)


def _explain_unmeasured(summary: dict, metric_names: tuple, skipped: dict[str, str], cropper: Any, size: int) -> None:
    """A metric that ran but never found a face says so rather than showing NaN silently."""
    for x in metric_names:
        if x not in skipped and all(math.isnan(values[x]) for values in summary.values()):
            skipped[x] = f"{x.upper()} not measured: no face found in any ground-truth frame " \
                         f"(detector: {cropper or 'none'}; at {size}x{size})" if x in ("akd", "mkr", "aed") else \
                         f"{x.upper()} not measured"
