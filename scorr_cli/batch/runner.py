"""The batch runner: one model for every item, each source prepared once, each driving clip's keypoints once.

Built on the engine and the ``animate`` pipeline's helpers. A driving clip is decoded twice at
most per rank (the crop window, then its keypoints); every further pair with that clip animates
straight from the cached keypoints without decoding it again. A prepared source is reused by every
pair that names it. Failures are cached too, so a missing source fails all its pairs at once, with
the same reason. One item's failure never stops the others; Ctrl-C stops the batch, loses no
finished output (outputs are atomic, the state file is rewritten after every item) and leaves no
partial one.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from scorr_cli.batch.manifest import BatchItem
from scorr_cli.batch.sharding import RankInfo, device_for, shard
from scorr_cli.batch.state import DONE, FAILED, ItemRecord, RankState, merged_state
from scorr_cli.errors import InputError, ScorrError
from scorr_cli.options import option
from scorr_cli.pipeline.options import RenderOptions

if TYPE_CHECKING:
    import torch

SKIPPED = "skipped"


@dataclass
class BatchConfig(RenderOptions):
    """Options for every item: the render options ``animate`` has (a manifest row may override the
    per-pair ones, :data:`~scorr_cli.pipeline.options.PAIR_OPTIONS`) plus the batch's own."""

    outdir: Optional[Path] = option(None, "OUTDIR for every output and the state files (.scorr-batch/).",
                                    "--output", "-o", show_default=False)
    retry_failed: bool = option(False, "Run again the items recorded as failed (they are skipped otherwise).",
                                "--retry-failed")
    force: bool = option(False, "Overwrite outputs that exist but are not recorded done.", "--force")
    source_cache: int = 32  # prepared sources kept in memory
    driving_cache: int = 4  # driving clips whose keypoints are kept in memory

    def __post_init__(self) -> None:
        if self.outdir is None:
            raise InputError("missing -o/--output OUTDIR")
        self.outdir = Path(self.outdir)
        if self.outdir.exists() and not self.outdir.is_dir():
            raise InputError(f"{self.outdir}: the output folder is an existing file (give a folder with -o)")
        super().__post_init__()

    def item_options(self, item: BatchItem) -> RenderOptions:
        return self.for_pair(item.options)


@dataclass
class Outcome:
    item: BatchItem
    status: str  # done | failed | skipped
    reason: str = ""
    frames: int = 0
    seconds: float = 0.0


@dataclass
class BatchReport:
    outcomes: list[Outcome] = field(default_factory=list)
    rank: RankInfo = field(default_factory=RankInfo)
    interrupted: bool = False
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == FAILED or (o.status == SKIPPED and o.reason.startswith("failed"))]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted


class BatchProgress:
    """Callbacks the CLI turns into an overall and a per-item progress bar; all no-ops here."""

    def start(self, total: int) -> None: ...
    def item_start(self, item: BatchItem, frames: Optional[int]) -> None: ...
    def item_frames(self, stage: str, done: int, total: Optional[int]) -> None: ...
    def item_end(self, outcome: Outcome) -> None: ...


# ----------------------------------------------------------------------------- planning

def order_items(items: list[BatchItem]) -> list[BatchItem]:
    """Items sharing a driving clip (then a source) next to each other: caches hit in a row."""
    return sorted(items, key=lambda it: (str(it.driving), str(it.source), it.index))


def plan(items: list[BatchItem], config: BatchConfig, rank: RankInfo = RankInfo()) -> list[tuple[BatchItem, str, str]]:
    """This rank's items with what will happen: ('run', why), ('skip', why) or ('adopt', why)."""
    return [(item, action, why) for item, action, why, _ in _plan_steps(items, config, rank)]


def _plan_steps(items: list[BatchItem], config: BatchConfig,
                rank: RankInfo) -> list[tuple[BatchItem, str, str, Optional[int]]]:
    """:func:`plan`, plus the frame count of each output it verified for adoption (checked once)."""
    records = merged_state(config.outdir)
    out = []
    for item in shard(order_items(items), rank.rank, rank.world_size):
        rec = records.get(item.key)
        exists = (config.outdir / item.output).exists()
        if rec is not None and rec.status == DONE and exists:
            out.append((item, "skip", "done", None))
        elif rec is not None and rec.status == FAILED and not config.retry_failed:
            out.append((item, "skip", f"failed before: {rec.reason} (use --retry-failed)", None))
        elif exists and not config.force:
            frames = verified_frames(item, config)
            if frames is not None:  # renamed into place, then killed before the record was written
                out.append((item, "adopt", f"complete output ({frames} frames) not yet recorded: recorded done",
                            frames))
            else:
                out.append((item, "skip", "output exists but is not recorded done and does not match its driving "
                                          "input (use --force to overwrite)", None))
        else:
            why = "retry" if rec is not None and rec.status == FAILED else \
                ("output missing, re-run" if rec is not None else "new")
            out.append((item, "run", why, None))
    return out


def verified_frames(item: BatchItem, config: BatchConfig) -> Optional[int]:
    """Frames of ``item``'s existing output if it is complete (decodes, intact, as many frames as the
    driving input gives under the item's options), else None."""
    from scorr_cli.media import is_video_file, probe_video, read_image
    from scorr_cli.media.frames import frame_files

    output = config.outdir / item.output
    opts = config.item_options(item)
    try:
        if not is_video_file(item.driving):
            read_image(output)
            return 1
        want = probe_video(item.driving).n_frames
        want = want if opts.max_frames is None else min(want, opts.max_frames)
        if output.is_dir():
            got = len(frame_files(output))
        else:
            info = probe_video(output)
            got = info.n_frames if info.damage is None else -1
    except (ScorrError, OSError, ValueError):
        return None
    return got if got == want else None


# ----------------------------------------------------------------------------- caches

class _LRU:
    def __init__(self, size: int):
        self.size = max(1, size)
        self.data: collections.OrderedDict = collections.OrderedDict()

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        if key in self.data:
            self.data.move_to_end(key)
            value = self.data[key]
        else:
            try:
                value = make()
            except ScorrError as e:
                value = e  # a bad input fails all its items with one reason, without retrying each time
            self.data[key] = value
            while len(self.data) > self.size:
                self.data.popitem(last=False)
        if isinstance(value, ScorrError):
            raise value
        return value


@dataclass
class _Source:
    prepared: Any  # PreparedSource
    crop: Any  # uint8 crop
    landmarks: Any = None  # 68 points of the crop (the motion reference is matched to them), or None


@dataclass
class CachedDriving:
    kind: str  # video | image
    info: Any  # VideoInfo or None
    n_frames: int
    kp: dict[str, torch.Tensor]  # every frame's keypoints, on the CPU
    reference_landmarks: list = field(default_factory=list)  # (frame, 68 points or None) candidates


class BatchRunner:
    """Holds the engine and the caches; :meth:`run` does this rank's share of a batch."""

    def __init__(self, config: BatchConfig, engine: Any = None, rank: RankInfo = RankInfo()):
        self.config = config
        self.rank = rank
        self._engine = engine
        self.sources = _LRU(config.source_cache)
        self.drivings = _LRU(config.driving_cache)
        self._croppers: dict[tuple[bool, str], Any] = {}
        self.stats = collections.Counter()  # prepared sources, driving keypoint passes (tests check reuse)

    # -- lazily built pieces
    @property
    def engine(self) -> Any:
        if self._engine is None:
            from scorr_cli.pipeline.render import load_engine

            self._engine = load_engine(self.config, device=device_for(self.rank, self.config.device))
            self.stats["model_loads"] += 1
        return self._engine

    @property
    def crop_size(self) -> int:
        """Faces are cut at the output size and the engine resizes them to the model's, as ``animate``
        does, so the two commands give the same frames."""
        return self.config.output_size(self.engine.size)

    def cropper(self, crop: bool) -> Any:
        from scorr_cli.pipeline.faces import FaceCropper

        key = (crop, self.config.detector)
        if key not in self._croppers:
            self._croppers[key] = FaceCropper(crop, self.config.detector, device="cpu")
        return self._croppers[key]

    # -- cached inputs
    def source(self, path: Path, crop: bool) -> _Source:
        def make() -> _Source:
            from scorr_cli.media import read_image
            from scorr_cli.pipeline.render import image_to_tensor

            image = read_image(path)
            cropper = self.cropper(crop)
            crop_img, _ = cropper.source(image, self.crop_size, str(path))
            self.stats["sources_prepared"] += 1
            prepared = self.engine.prepare(image_to_tensor(crop_img)).prepared
            return _Source(prepared, crop_img, cropper.landmarks(crop_img))

        return self.sources.get((str(path), crop), make)

    def driving(self, path: Path, crop: bool, max_frames: Optional[int], progress: BatchProgress) -> CachedDriving:
        def make() -> CachedDriving:
            from scorr_cli.media import iter_video_frames
            import torch

            from scorr_cli.faces import reference_candidates, warp_crop
            from scorr_cli.pipeline.render import chunked, image_to_tensor, images_to_tensor, open_driving

            engine = self.engine
            drv = open_driving(path, max_frames)
            cropper = self.cropper(crop)
            self.stats["driving_keypoint_passes"] += 1
            if drv.kind == "image":
                window = cropper.image_window(drv.image, self.crop_size, str(path))
                kp = engine.detect(image_to_tensor(warp_crop(drv.image, window)))
                return CachedDriving("image", None, 1, {k: v.cpu() for k, v in kp.items()})
            info, n = drv.info, drv.n_frames
            window = cropper.video_window(iter_video_frames(path, stop=n), n, info.width, info.height,
                                          self.crop_size, str(path))
            parts: list[dict[str, torch.Tensor]] = []
            seen = 0
            wanted = set(reference_candidates(n))
            candidates: list = []

            def crops_measured():
                # The same candidates animate measures (matched_reference), on the crops this pass cuts anyway.
                for i, f in enumerate(iter_video_frames(path, stop=n)):
                    crop_img = warp_crop(f, window)
                    if i in wanted:
                        candidates.append((i, cropper.landmarks(crop_img)))
                    yield crop_img

            for batch in chunked(crops_measured(), self.config.batch_size):
                parts.append({k: v.cpu() for k, v in engine.detect(images_to_tensor(batch)).items()})
                seen += len(batch)
                progress.item_frames("keypoints", seen, n)
            if not parts:
                raise InputError(f"{path}: no frames could be decoded")
            kp = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
            return CachedDriving("video", info, seen, kp, candidates)

        return self.drivings.get((str(path), crop, max_frames), make)

    # -- one item
    def run_item(self, item: BatchItem, progress: BatchProgress) -> int:
        """Animate one item into its output (atomically); returns the number of frames written."""
        from scorr_cli.core.engine import SourceState
        from scorr_cli.core.transfer import TransferOptions
        from scorr_cli.media import write_image
        from scorr_cli.pipeline.faces import matched_reference
        from scorr_cli.pipeline.render import output_kind, render, write_clip

        opts = self.config.item_options(item)
        output = self.config.outdir / item.output
        src = self.source(item.source, opts.crop)
        drv = self.driving(item.driving, opts.crop, opts.max_frames, progress)
        kind = output_kind(output, opts.format, item.driving, drv.kind)
        mode = opts.motion_mode(drv.kind)
        transfer = TransferOptions(mode=mode, adapt_scale=opts.adapt_scale)
        engine = self.engine
        state = SourceState(src.prepared)  # fresh reference for every pair; the prepared source is shared
        if mode == "relative":
            ref = opts.best_frame
            if ref is None and opts.find_best_frame and drv.kind == "video":
                ref = matched_reference(src.landmarks, drv.reference_landmarks)
            ref = ref or 0
            if ref >= drv.n_frames:
                raise InputError(f"best_frame {ref}: {item.driving} has {drv.n_frames} frame(s)")
            engine.set_reference(state, {k: v[ref:ref + 1].to(engine.device) for k, v in drv.kp.items()})
        n, bs = drv.n_frames, self.config.batch_size
        batches = (render(engine, state, {k: v[lo:lo + bs].to(engine.device) for k, v in drv.kp.items()},
                          transfer, self.crop_size) for lo in range(0, n, bs))
        if output.exists():  # --force (the plan skips existing outputs otherwise)
            _remove(output)
        if kind == "image":
            write_image(output, next(batches).frames[0])
            return 1
        audio_from = opts.audio_from(kind, item.driving, drv.info.has_audio)
        return write_clip(batches, [(output, lambda b: b.frames)], kind, drv.info.fps, audio_from, n,
                          progress.item_frames)

    def run(self, items: list[BatchItem], progress: Optional[BatchProgress] = None,
            state: Optional[RankState] = None) -> BatchReport:
        progress = progress or BatchProgress()
        t0 = time.perf_counter()
        report = BatchReport(rank=self.rank)
        steps = _plan_steps(items, self.config, self.rank)
        state = state or RankState(self.config.outdir, self.rank.rank, self.rank.world_size)
        progress.start(len(steps))
        try:
            for item, action, why, verified in steps:
                if action == "skip":
                    outcome = Outcome(item, SKIPPED, why)
                    report.outcomes.append(outcome)
                    progress.item_end(outcome)
                    continue
                if action == "adopt":
                    outcome = Outcome(item, DONE, why, verified)
                    state.record(item.key, ItemRecord(DONE, str(item.source), str(item.driving), why, outcome.frames, 0.0))
                    report.outcomes.append(outcome)
                    progress.item_end(outcome)
                    continue
                progress.item_start(item, None)
                t1 = time.perf_counter()
                try:
                    frames = self.run_item(item, progress)
                except ScorrError as e:
                    outcome = Outcome(item, FAILED, str(e), seconds=time.perf_counter() - t1)
                except (OSError, RuntimeError, ValueError) as e:  # a corrupt input deep in a decoder or the model
                    outcome = Outcome(item, FAILED, f"{type(e).__name__}: {' '.join(str(e).split())}",
                                      seconds=time.perf_counter() - t1)
                else:
                    outcome = Outcome(item, DONE, "", frames, time.perf_counter() - t1)
                state.record(item.key, ItemRecord(outcome.status, str(item.source), str(item.driving),
                                                  outcome.reason, outcome.frames, round(outcome.seconds, 3)))
                report.outcomes.append(outcome)
                progress.item_end(outcome)
        except KeyboardInterrupt:
            report.interrupted = True
            report.seconds = time.perf_counter() - t0
            raise
        report.seconds = time.perf_counter() - t0
        return report


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def run_batch(items: list[BatchItem], config: BatchConfig, progress: Optional[BatchProgress] = None,
              engine: Any = None, rank: Optional[RankInfo] = None) -> BatchReport:
    """Run this process's share (by ``RANK``/``WORLD_SIZE``) of ``items``."""
    from scorr_cli.batch.sharding import rank_info

    rank = rank or rank_info()
    config.outdir.mkdir(parents=True, exist_ok=True)
    return BatchRunner(config, engine, rank).run(items, progress)
