"""``scorr animate`` end to end on real clips with a tiny random model (64², fast on a CPU).

Real clips come from ``faces_media`` (skipped when absent); only a few frames of each are animated
(``max_frames``), which is enough to check counts, rates, audio, sizes and file handling.
"""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from typer.testing import CliRunner

from scorr_cli.cli import app
from scorr_cli.media import probe_video, read_image, write_image
from scorr_cli.media._ffmpeg import ffmpeg_exe
from scorr_cli.media.testing import make_test_video
from scorr_cli.pipeline.animate import AnimateConfig, animate

runner = CliRunner()
SOURCE = "source/liveportrait_s42.jpg"  # 512², one frontal face


def _run(media: Path, ckpt: Path, driving: str, output: Path, **kw) -> object:
    kw.setdefault("max_frames", 4)
    kw.setdefault("batch_size", 2)
    kw.setdefault("size", 64)  # the tiny model's own resolution keeps these tests fast
    return animate(AnimateConfig(source=media / SOURCE, driving=media / driving, output=output,
                                 checkpoint=str(ckpt), **kw))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".part" in p.name or p.name.startswith("."))


# ---- counts, rates, audio, sizes --------------------------------------------------------------------


def test_ntsc_clip_keeps_rate_count_and_audio_with_preview(faces_media, tiny_ckpt, tmp_path):
    out = tmp_path / "out.mp4"
    r = _run(faces_media, tiny_ckpt, "raw/facerecognition_short_hamilton_clip.mp4", out, preview=True)
    info = probe_video(out)
    assert (info.n_frames, info.fps, r.frames) == (4, Fraction(30000, 1001), 4)
    assert (info.width, info.height) == (64, 64)
    assert info.has_audio and r.has_audio
    assert abs(info.audio_duration - info.duration) <= 1 / info.fps
    prev = probe_video(r.preview)
    assert (prev.n_frames, prev.width, prev.height) == (4, 3 * 256, 256)
    assert _leftovers(tmp_path) == []


def test_odd_rate_clip_and_no_audio_flag(faces_media, tiny_ckpt, tmp_path):
    driving = "driving/videoretalking_face_1.mp4"  # 22.13 fps, with audio
    out = tmp_path / "out.mp4"
    _run(faces_media, tiny_ckpt, driving, out, audio=False, max_frames=3)
    info = probe_video(out)
    assert info.fps == probe_video(faces_media / driving).fps and abs(float(info.fps) - 22.13) < 0.01
    assert info.n_frames == 3 and not info.has_audio


def test_silent_driving_gives_silent_output_and_whole_clip(faces_media, tiny_ckpt, tmp_path):
    driving = faces_media / "driving/vtoonify_529_2.mp4"  # 376x352, 15 fps, 29 frames, no audio
    src = probe_video(driving)
    out = tmp_path / "out.mp4"
    r = animate(AnimateConfig(source=faces_media / SOURCE, driving=driving, output=out, checkpoint=str(tiny_ckpt),
                              batch_size=8, crop=False))
    info = probe_video(out)
    assert (info.n_frames, info.fps, info.has_audio) == (src.n_frames, src.fps, False) and r.frames == src.n_frames


def test_512_driving_to_png_folder(faces_media, tiny_ckpt, tmp_path):
    out = tmp_path / "frames"
    r = _run(faces_media, tiny_ckpt, "driving/liveportrait_d11.mp4", out, max_frames=3)
    assert r.kind == "png" and sorted(p.name for p in out.iterdir()) == ["00000.png", "00001.png", "00002.png"]
    assert read_image(out / "00002.png").shape == (64, 64, 3)



def test_portrait_1080x1920_driving_with_paste_back(faces_media, tiny_ckpt, tmp_path):
    out = tmp_path / "out.mp4"
    r = _run(faces_media, tiny_ckpt, "raw/latentsync_demo1_video.mp4", out, max_frames=3, paste_back=True)
    info = probe_video(out)
    assert info.n_frames == 3 and (info.width, info.height) == (512, 512) == r.size  # the source's size
    assert info.fps == 25 and info.has_audio


def test_single_driving_image_gives_an_image(faces_media, tiny_ckpt, tmp_path):
    out = tmp_path / "out.jpg"
    r = animate(AnimateConfig(source=faces_media / SOURCE, driving=faces_media / "source/sadtalker_happy.png",
                              output=out, checkpoint=str(tiny_ckpt), preview=True))
    assert r.kind == "image" and r.mode == "absolute" and r.frames == 1
    # No --size: the 64² model's output is upsampled to the default 256² output.
    assert read_image(out).shape == (256, 256, 3) and r.size == (256, 256)
    assert read_image(r.preview).shape == (256, 768, 3)


def test_greyscale_rgba_non_square_source_without_crop(faces_media, tiny_ckpt, tmp_path):
    from PIL import Image

    grey = np.asarray(Image.open(faces_media / SOURCE).convert("L").resize((300, 200)))
    src = tmp_path / "grey.png"
    Image.fromarray(np.dstack([grey, np.full_like(grey, 200)]), "LA").save(src)
    out = tmp_path / "out.png"
    r = animate(AnimateConfig(source=src, driving=faces_media / "source/sadtalker_happy.png", output=out,
                              checkpoint=str(tiny_ckpt), crop=False, paste_back=True))
    assert r.cropper == "centre" and read_image(out).shape == (200, 300, 3)


def test_find_best_frame_and_explicit_best_frame(faces_media, tiny_ckpt, tmp_path):
    # A clip whose frame 2 is the source portrait itself; the others tilt it by ±25°: the search must pick 2.
    import cv2

    src = read_image(Path(__file__).resolve().parents[1] / "examples" / "source.png")
    h, w = src.shape[:2]
    tilted = [cv2.warpAffine(src, cv2.getRotationMatrix2D((w / 2, h / 2), a, 1.0), (w, h),
                             borderMode=cv2.BORDER_REFLECT101) for a in (25, -25)]
    clip = make_test_video(tmp_path / "clip.mp4", [tilted[0], tilted[1], src, tilted[0]], 25)
    r = animate(AnimateConfig(source=Path(__file__).resolve().parents[1] / "examples" / "source.png", driving=clip,
                              output=tmp_path / "a.mp4", checkpoint=str(tiny_ckpt), size=64, find_best_frame=True))
    assert r.reference_frame == 2 and probe_video(tmp_path / "a.mp4").n_frames == 4
    r = _run(faces_media, tiny_ckpt, "driving/liveportrait_d11.mp4", tmp_path / "b.gif", best_frame=2, max_frames=3,
             crop=False)
    assert r.reference_frame == 2 and r.kind == "gif"


def test_default_reference_is_a_closed_mouth_frame_not_the_first(faces_media, tiny_ckpt, tmp_path):
    """A held-out clip that starts mid-shout (frame 0's mouth is open wider than in ~94% of its frames)
    and a closed-mouth portrait: the default reference is a frame with the mouth nearly shut (below the
    clip's median opening), so the portrait's shut mouth is matched to a shut one. With the first frame
    as reference (the rule before) this fails: its opening is in the clip's top quarter."""
    from scorr_cli.faces import get_detector, reference_candidates
    from scorr_cli.faces.landmarks import mouth_opening
    from scorr_cli.media import iter_video_frames

    driving, n = "driving/styletalk_furious_talk1_clip2.mp4", 120
    r = animate(AnimateConfig(source=faces_media / "source/dreamtalk_male_face.png", driving=faces_media / driving,
                              output=tmp_path / "a.mp4", checkpoint=str(tiny_ckpt), size=64, max_frames=n))
    detector = get_detector("dlib")
    wanted = set(reference_candidates(n))
    mouth = {}
    for i, frame in enumerate(iter_video_frames(faces_media / driving, stop=n)):
        if i in wanted and (faces := detector.detect(frame)):
            mouth[i] = float(mouth_opening(np.asarray(max(faces, key=lambda f: f.area).landmarks68)[:, :2]))
    values = np.array(list(mouth.values()))
    assert mouth[0] > np.percentile(values, 75)  # the premise: it starts open
    assert r.reference_frame in mouth and r.reference_frame != 0
    assert mouth[r.reference_frame] < np.median(values), (r.reference_frame, mouth[r.reference_frame])
    first = animate(AnimateConfig(source=faces_media / "source/dreamtalk_male_face.png",
                                  driving=faces_media / driving, output=tmp_path / "b.mp4", checkpoint=str(tiny_ckpt),
                                  size=64, max_frames=8, find_best_frame=False))
    assert first.reference_frame == 0


# ---- engine equivalences -----------------------------------------------------------------------------


def _tiny_engine():
    from scorr_cli.core.config import preset
    from scorr_cli.core.engine import AnimationEngine
    from scorr_cli.core.model import MRFA

    torch.manual_seed(0)
    return AnimationEngine(MRFA(preset("tiny")), "cpu")


def test_batched_engine_equals_frame_by_frame():
    engine = _tiny_engine()
    g = torch.Generator().manual_seed(1)
    source, frames = torch.rand(1, 3, 64, 64, generator=g), torch.rand(3, 3, 64, 64, generator=g)
    batched_state = engine.prepare(source)
    batched = engine.animate(batched_state, frames).prediction
    single_state = engine.prepare(source)
    single = torch.cat([engine.animate(single_state, f[None]).prediction for f in frames])
    assert torch.allclose(batched, single, atol=1e-5)


def test_streamed_best_frame_equals_fomm_forward_backward():
    """FOMM animates backward (best..0) and forward (best..end) and joins them; one ordered stream with
    the best frame as reference gives the same frames."""
    from scorr_cli.pipeline.animate import join_forward_backward

    engine = _tiny_engine()
    g = torch.Generator().manual_seed(2)
    source, frames, best = torch.rand(1, 3, 64, 64, generator=g), torch.rand(4, 3, 64, 64, generator=g), 2
    state = engine.prepare(source)
    engine.set_reference(state, engine.detect(frames[best][None]))
    backward = engine.animate(state, frames[: best + 1].flip(0)).prediction
    forward = engine.animate(state, frames[best:]).prediction
    joined = torch.stack(join_forward_backward(list(backward), list(forward)))
    streamed = engine.animate(state, frames).prediction
    assert joined.shape == streamed.shape and torch.allclose(joined, streamed, atol=1e-5)


# ---- errors and interruption (CLI) -------------------------------------------------------------------


def _cli(*args: object):
    r = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in r.output
    return r


def test_skip_updates_renders_the_skipping_model(faces_media, tiny_ckpt, tmp_path):
    """--skip-updates N gives exactly the frames of the same weights with skip_finest_updates=N in the
    checkpoint, and differs from the model's own setting (0 for the tiny model)."""
    import copy

    from scorr_cli.checkpoints import read_checkpoint, save_checkpoint

    ck = read_checkpoint(tiny_ckpt)
    cfg = copy.deepcopy(ck.config)
    cfg.refiner.skip_finest_updates = 2
    skipping = save_checkpoint(tmp_path / "skip2.safetensors", ck.state, cfg, metadata=ck.metadata)
    frames = {}
    for name, ckpt, kw in (("own", tiny_ckpt, {}), ("flag", tiny_ckpt, {"skip_updates": 2}),
                           ("stored", skipping, {})):
        _run(faces_media, ckpt, "driving/liveportrait_d10.mp4", tmp_path / name, format="png", max_frames=2, **kw)
        frames[name] = [read_image(p) for p in sorted((tmp_path / name).glob("*.png"))]
    assert len(frames["flag"]) == 2
    assert all(np.array_equal(a, b) for a, b in zip(frames["flag"], frames["stored"]))
    assert any(not np.array_equal(a, b) for a, b in zip(frames["flag"], frames["own"]))


def test_cli_error_cases(faces_media, tiny_ckpt, tmp_path):
    src = faces_media / SOURCE
    clip = make_test_video(tmp_path / "clip.mp4", 3, 25)
    out = tmp_path / "out.mp4"

    def fails(code: int, text: str, *args: object) -> None:
        r = _cli("animate", *args)
        assert r.exit_code == code and text in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1, r.output
        assert not out.exists() and _leftovers(tmp_path) == []

    fails(2, "missing.jpg: file not found", tmp_path / "missing.jpg", clip, "-o", out)
    fails(2, "nope.mp4: file not found", src, tmp_path / "nope.mp4", "-o", out)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    fails(2, "corrupt.mp4: not a readable", src, corrupt, "-o", out)
    zero = tmp_path / "zero.avi"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "color=size=64x64:rate=25", "-frames:v", "0",
                    "-c:v", "mjpeg", str(zero)], check=True)
    fails(2, "zero.avi: contains no video frames", src, zero, "-o", out)
    fails(2, "clip.mp4: is a video, expected an image", clip, src, "-o", out)  # arguments swapped
    fake = tmp_path / "photo.mp4"
    fake.write_bytes(src.read_bytes())
    fails(2, "photo.mp4: is an image, expected a video", src, fake, "-o", out)
    fails(2, "unsupported output extension '.avi'", src, clip, "-o", tmp_path / "out.avi")
    fails(2, "unsupported output extension '.jpg'", src, clip, "-o", tmp_path / "out.jpg")
    fails(2, "is a single image", src, src, "-o", out)
    fails(2, "unknown checkpoint 'no-such-weights'", src, clip, "-o", out, "-c", "no-such-weights")
    fails(2, "checkpoint not found", src, clip, "-o", out, "-c", tmp_path / "none.safetensors")
    blank = tmp_path / "blank.png"
    write_image(blank, np.full((200, 160, 3), 128, np.uint8))
    fails(2, "--skip-updates 7: ", src, clip, "-o", out, "-c", tiny_ckpt, "--skip-updates", 7)
    fails(2, "drop --skip-updates", src, clip, "-o", out, "--backend", "onnx", "--onnx-dir", tmp_path,
          "--skip-updates", 1)
    fails(6, "blank.png: no face found in the source image", blank, clip, "-o", out, "-c", tiny_ckpt)
    fails(6, "clip.mp4: no face found in the driving video", src, clip, "-o", out, "-c", tiny_ckpt)
    out.write_bytes(b"keep")
    r = _cli("animate", src, clip, "-o", out, "-c", tiny_ckpt)
    assert r.exit_code == 3 and "--force" in r.output and out.read_bytes() == b"keep"


def test_interrupted_run_leaves_no_output(faces_media, tiny_ckpt, tmp_path, monkeypatch):
    from scorr_cli.core.engine import AnimationEngine

    calls = {"n": 0}
    real = AnimationEngine.animate

    def interrupt_second_batch(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(AnimationEngine, "animate", interrupt_second_batch)
    out = tmp_path / "out.mp4"
    r = _cli("animate", faces_media / SOURCE, faces_media / "driving/liveportrait_d11.mp4", "-o", out, "-c", tiny_ckpt,
             "--max-frames", 3, "--batch-size", 1, "--no-crop", "--preview")
    assert r.exit_code == 130 and "interrupted" in r.output
    assert calls["n"] == 2 and sorted(p.name for p in tmp_path.iterdir()) == []
