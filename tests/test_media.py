"""Media I/O: exact rates on real clips, streaming, atomic writes, audio muxing, one-line errors."""

from __future__ import annotations

import csv
import os
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scorr_cli.errors import InputError
from scorr_cli.media import (
    count_frames,
    is_image_file,
    is_video_file,
    iter_video_frames,
    open_writer,
    parse_fps,
    probe_video,
    read_image,
    snap_fps,
    write_image,
    VideoWriter,
)
from scorr_cli.media._ffmpeg import ffmpeg_exe
from scorr_cli.media.testing import make_test_video, synthetic_frame

NTSC = Fraction(30000, 1001)
FILM = Fraction(24000, 1001)


def _manifest(root: Path) -> dict[str, dict[str, str]]:
    with open(root / "MANIFEST.tsv", newline="") as f:
        return {row["file"]: row for row in csv.DictReader(f, delimiter="\t")}


def _real(root: Path, rel: str) -> Path:
    p = root / rel
    if not p.is_file():
        pytest.skip(f"{p} not present")
    return p


# ---- real media ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rel, fps",
    [
        ("raw/facerecognition_short_hamilton_clip.mp4", NTSC),  # stored as 2997/100 ticks
        ("raw/moviepy_audrey.mp4", FILM),
        ("driving/dpe_d.mp4", Fraction(25)),
    ],
)
def test_exact_fps_of_real_clips(faces_media: Path, rel: str, fps: Fraction) -> None:
    info = probe_video(_real(faces_media, rel))
    assert info.fps == fps and isinstance(info.fps, Fraction)


@pytest.mark.parametrize(
    "rel", ["raw/facerecognition_short_hamilton_clip.mp4", "driving/videoretalking_face_1.mp4", "raw/latentsync_demo1_video.mp4"]
)
def test_probe_matches_manifest(faces_media: Path, rel: str) -> None:
    row = _manifest(faces_media)[rel]
    info = probe_video(_real(faces_media, rel))
    assert f"{info.width}x{info.height}" == row["width_x_height"]
    assert info.n_frames == int(row["frames"])
    assert info.has_audio == (row["has_audio"] == "yes")


def test_count_frames_decodes_exactly(faces_media: Path) -> None:
    rel = "driving/vtoonify_529_2.mp4"
    assert count_frames(_real(faces_media, rel)) == int(_manifest(faces_media)[rel]["frames"])


def test_stream_portrait_1080p_and_early_break_stops_ffmpeg(faces_media: Path, monkeypatch) -> None:
    import imageio_ffmpeg._io as io

    started: list[subprocess.Popen] = []
    real_popen = io.subprocess.Popen

    def spy(*args, **kwargs):
        proc = real_popen(*args, **kwargs)
        started.append(proc)
        return proc

    monkeypatch.setattr(io.subprocess, "Popen", spy)
    frames = iter_video_frames(_real(faces_media, "raw/latentsync_demo1_video.mp4"))
    got = []
    for frame in frames:
        got.append(frame)
        if len(got) == 3:
            break
    frames.close()
    assert [f.shape for f in got] == [(1920, 1080, 3)] * 3 and got[0].dtype == np.uint8
    readers = [p for p in started if "image2pipe" in p.args]
    assert len(readers) == 1 and all(p.poll() is not None for p in started)


def test_stream_range_and_resize_from_offset_clip(faces_media: Path) -> None:
    # This clip's video starts 0.84 s into the file: frame indices must still be exact.
    src = _real(faces_media, "raw/facerecognition_short_hamilton_clip.mp4")
    tail = list(iter_video_frames(src, size=(64, 36), start=270))
    assert len(tail) == 5 and tail[0].shape == (36, 64, 3)
    assert len(list(iter_video_frames(src, size=(32, 18), start=10, stop=13))) == 3


# ---- synthetic round trips ----------------------------------------------------------------------


def test_write_round_trip_keeps_ntsc_rate_and_count(tmp_path: Path) -> None:
    src = make_test_video(tmp_path / "src.mp4", 20, NTSC)
    out = tmp_path / "out.mp4"
    with VideoWriter(out, probe_video(src).fps) as w:
        for frame in iter_video_frames(src):
            w.write(frame)
    info = probe_video(out)
    assert (info.fps, info.n_frames, info.width, info.height) == (NTSC, 20, 64, 48)
    first = next(iter(iter_video_frames(out)))
    assert np.abs(first.astype(int) - synthetic_frame(0).astype(int)).mean() < 6


def test_odd_frame_size_is_padded_to_even(tmp_path: Path) -> None:
    with open_writer(tmp_path / "odd.mp4", 25) as w:
        for i in range(3):
            w.write(synthetic_frame(i, (65, 37)))
    info = probe_video(tmp_path / "odd.mp4")
    assert (info.width, info.height, info.n_frames) == (66, 38, 3)


@pytest.mark.parametrize("with_audio", [True, False])
def test_audio_present_iff_source_has_audio(tmp_path: Path, with_audio: bool) -> None:
    src = make_test_video(tmp_path / "src.mp4", 30, NTSC, with_audio=with_audio)
    out = tmp_path / "out.mp4"
    with VideoWriter(out, NTSC, audio_from=src) as w:
        for frame in iter_video_frames(src):
            w.write(frame)
    info = probe_video(out)
    assert info.has_audio == with_audio and info.n_frames == 30
    if with_audio:
        assert abs(info.audio_duration - info.duration) <= 1 / float(NTSC)


def test_audio_range_longer_than_video_is_cut_to_video(tmp_path: Path) -> None:
    src = make_test_video(tmp_path / "src.mp4", 10, 25, with_audio=True, audio_seconds=3.0)
    with VideoWriter(tmp_path / "out.mp4", 25, audio_from=src, audio_range=(0.2, 3.0)) as w:
        for frame in iter_video_frames(src):
            w.write(frame)
    info = probe_video(tmp_path / "out.mp4")
    assert info.n_frames == 10 and abs(info.audio_duration - 0.4) <= 1 / 25


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
@pytest.mark.parametrize("name", ["out.mp4", "out.gif", "frames"])
def test_exception_mid_write_leaves_nothing(tmp_path: Path, exc: type[BaseException], name: str) -> None:
    with pytest.raises(exc):
        with open_writer(tmp_path / name, 25) as w:
            for i in range(5):
                w.write(synthetic_frame(i))
            raise exc()
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_existing_target(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with open_writer(target, 25) as w:
            w.write(synthetic_frame(0))
            raise RuntimeError
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]


def test_gif_and_png_folder_outputs(tmp_path: Path) -> None:
    with open_writer(tmp_path / "a.gif", 10) as w:
        for i in range(4):
            w.write(synthetic_frame(i))
    assert probe_video(tmp_path / "a.gif").n_frames == 4
    with open_writer(tmp_path / "frames", 10, format="png") as w:
        for i in range(3):
            w.write(synthetic_frame(i))
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert names == ["00000.png", "00001.png", "00002.png"]
    assert np.array_equal(read_image(tmp_path / "frames" / "00002.png"), synthetic_frame(2))


def test_unknown_output_extension(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="out.xyz"):
        open_writer(tmp_path / "out.xyz", 25)


def test_rotated_video_reports_display_size(tmp_path: Path) -> None:
    src = make_test_video(tmp_path / "src.mp4", 3, 25)
    rot = tmp_path / "rot.mp4"
    cmd = [ffmpeg_exe(), "-v", "error", "-display_rotation", "90", "-i", str(src), "-c", "copy", str(rot)]
    subprocess.run(cmd, check=True)
    info = probe_video(rot)
    assert (info.rotation, info.width, info.height) == (90, 48, 64)
    assert next(iter(iter_video_frames(rot))).shape == (64, 48, 3)


# ---- errors ---------------------------------------------------------------------------------------


def _one_line_error(path: Path, fn=probe_video) -> str:
    with pytest.raises(InputError) as e:
        fn(path)
    msg = str(e.value)
    assert path.name in msg and "\n" not in msg
    return msg


def test_bad_video_inputs_give_one_line_errors(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert "not a readable" in _one_line_error(corrupt)
    assert "not found" in _one_line_error(tmp_path / "missing.mp4")
    assert "folder" in _one_line_error(tmp_path)
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert "empty" in _one_line_error(tmp_path / "empty.mp4")
    write_image(tmp_path / "drive.png", synthetic_frame(0))
    assert "is an image, expected a video" in _one_line_error(tmp_path / "drive.png")
    assert "is an image" in _one_line_error(tmp_path / "drive.png", lambda p: list(iter_video_frames(p)))
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=d=0.2", str(tmp_path / "tone.m4a")], check=True)
    assert "no video stream" in _one_line_error(tmp_path / "tone.m4a")


def test_bad_image_inputs_give_one_line_errors(tmp_path: Path) -> None:
    video = make_test_video(tmp_path / "clip.mp4", 2, 25)
    assert "is a video, expected an image" in _one_line_error(video, read_image)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    _one_line_error(broken, read_image)
    assert "not found" in _one_line_error(tmp_path / "nope.jpg", read_image)


def test_kind_checks_use_extension_and_content(tmp_path: Path) -> None:
    video = make_test_video(tmp_path / "clip.mp4", 2, 25)
    write_image(tmp_path / "face.jpg", synthetic_frame(0))
    os.link(tmp_path / "face.jpg", tmp_path / "face.mp4")
    assert is_video_file(video) and not is_image_file(video)
    assert is_image_file(tmp_path / "face.jpg") and not is_video_file(tmp_path / "face.jpg")
    assert not is_video_file(tmp_path / "face.mp4")


# ---- images -------------------------------------------------------------------------------------


def test_read_image_conversions(tmp_path: Path) -> None:
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, 3:, 3] = 255  # left half transparent -> white, right half opaque red
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    img = read_image(tmp_path / "rgba.png")
    assert img.shape == (4, 6, 3) and img.dtype == np.uint8
    assert tuple(img[0, 0]) == (255, 255, 255) and tuple(img[0, 5]) == (200, 0, 0)

    Image.fromarray(np.full((5, 7), 77, np.uint8), "L").save(tmp_path / "grey.png")
    assert np.all(read_image(tmp_path / "grey.png") == 77) and read_image(tmp_path / "grey.png").shape == (5, 7, 3)

    Image.fromarray(np.full((3, 3), 65535, np.uint16)).save(tmp_path / "deep.png")
    assert np.all(read_image(tmp_path / "deep.png") == 255)

    Image.fromarray(synthetic_frame(1)).convert("P").save(tmp_path / "pal.png")
    assert read_image(tmp_path / "pal.png").shape == (48, 64, 3)


def test_read_image_honours_exif_orientation(tmp_path: Path) -> None:
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)  # left half red as stored
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    im.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    img = read_image(tmp_path / "phone.jpg")
    assert img.shape == (40, 20, 3)
    assert img[2, 10, 0] > 200 and img[37, 10, 0] < 60  # stored left -> displayed top


def test_write_image_is_atomic_and_round_trips(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", synthetic_frame(3))
    assert np.array_equal(read_image(tmp_path / "a.png"), synthetic_frame(3))
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]
    with pytest.raises(InputError, match="a.xyz"):
        write_image(tmp_path / "a.xyz", synthetic_frame(0))


def test_fps_parsing() -> None:
    assert parse_fps(29.97) == NTSC and parse_fps("23.976") == FILM and parse_fps("30000/1001") == NTSC
    assert parse_fps(25) == 25 and snap_fps(Fraction(2997, 100)) == NTSC and snap_fps(Fraction(30)) == 30
    assert snap_fps(Fraction(1350, 61)) == Fraction(1350, 61)
    with pytest.raises(ValueError):
        parse_fps("fast")
