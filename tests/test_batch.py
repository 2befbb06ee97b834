"""``scorr batch``: failures isolated, resumable, interrupt-safe, sharded; with a tiny random 64² model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from scorr_cli.batch import (BatchConfig, BatchRunner, RankInfo, build_items, merged_state, pair_folders, read_manifest,
                             run_batch)
from scorr_cli.batch.manifest import check_name_template
from scorr_cli.batch.sharding import rank_info, shard
from scorr_cli.cli import app
from scorr_cli.errors import InputError
from scorr_cli.media import probe_video, write_image
from scorr_cli.media.testing import make_test_video, synthetic_frame

runner = CliRunner()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """s0, s1 (images), d0, d1 (2-frame clips), bad.mp4 (corrupt); 6 manifest rows, 2 of them bad."""
    root = tmp_path_factory.mktemp("inputs")
    for i in range(2):
        write_image(root / f"s{i}.png", synthetic_frame(7 * i + 3, (80, 80)))
        make_test_video(root / f"d{i}.mp4", 2, size=(64, 64))  # 2 frames: the random model costs ~1 s/frame
    (root / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(3000))
    rows = [("s0.png", "d0.mp4"), ("s0.png", "d1.mp4"), ("s1.png", "d0.mp4"), ("s1.png", "d1.mp4"),
            ("s0.png", "bad.mp4"), ("missing.png", "d0.mp4")]
    (root / "jobs.csv").write_text("source,driving\n" + "".join(f"{s},{d}\n" for s, d in rows))
    return root


def _config(out: Path, ckpt: Path, **kw) -> BatchConfig:
    return BatchConfig(outdir=out, checkpoint=str(ckpt), device="cpu", crop=False, batch_size=2, **kw)


def _snapshot(out: Path) -> dict[str, float]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}


def _partials(out: Path) -> list[str]:
    return [str(p) for p in out.rglob("*") if ".part" in p.name]


def test_failures_are_isolated_reported_and_rerun_does_nothing(inputs, tiny_ckpt, tmp_path, monkeypatch):
    out = tmp_path / "out"
    runners: list[BatchRunner] = []
    real_run = BatchRunner.run

    def spy(self, *a, **kw):
        runners.append(self)
        return real_run(self, *a, **kw)

    monkeypatch.setattr(BatchRunner, "run", spy)
    args = ["batch", str(inputs / "jobs.csv"), "-o", str(out), "-c", str(tiny_ckpt), "--device", "cpu", "--no-crop",
            "-b", "2"]
    res = runner.invoke(app, args)
    assert res.exit_code == 1, res.output
    assert "4 done, 2 failed, 0 skipped" in res.output
    outputs = sorted(p.name for p in out.glob("*.mp4"))
    assert outputs == ["s0__d0.mp4", "s0__d1.mp4", "s1__d0.mp4", "s1__d1.mp4"]
    for name in outputs:
        assert probe_video(out / name).n_frames == 2
    records = merged_state(out)
    failed = {k: r.reason for k, r in records.items() if r.status == "failed"}
    assert set(failed) == {"s0__bad.mp4", "missing__d0.mp4"}
    assert "missing.png" in failed["missing__d0.mp4"] and "bad.mp4" in failed["s0__bad.mp4"]
    assert not _partials(out)
    stats = runners[0].stats  # one model, each source prepared once, each clip's keypoints once
    assert (stats["model_loads"], stats["sources_prepared"], stats["driving_keypoint_passes"]) == (1, 2, 2)

    before = _snapshot(out)
    res = runner.invoke(app, args)
    assert res.exit_code == 1  # still failed items, reported as such
    assert "0 done, 0 failed, 6 skipped (2 failed before; --retry-failed)" in res.output
    assert _snapshot(out) == before  # nothing rewritten, not even the state file
    assert runners[1].stats["model_loads"] == 0  # nothing to do: the model is not even loaded

    res = runner.invoke(app, ["batch", "--status", str(out)])
    assert res.exit_code == 1 and "4 done, 2 failed" in res.output
    res = runner.invoke(app, ["batch", str(inputs / "jobs.csv"), "-o", str(out), "--dry-run"])
    assert res.exit_code == 0 and "0 to run, 6 to skip" in res.output

    write_image(inputs / "missing.png", synthetic_frame(1, (80, 80)))
    try:
        res = runner.invoke(app, args + ["--retry-failed"])
    finally:
        (inputs / "missing.png").unlink()
    assert res.exit_code == 1 and "1 done, 1 failed, 4 skipped" in res.output
    assert merged_state(out)["missing__d0.mp4"].status == "done" and (out / "missing__d0.mp4").is_file()


def test_interrupted_run_resumes_and_writes_each_output_once(inputs, tiny_ckpt, tmp_path, monkeypatch):
    items = build_items(read_manifest(inputs / "jobs.csv"))[:2]
    out = tmp_path / "o"
    writes: list[str] = []
    real = BatchRunner.run_item

    def counting(self, item, progress):
        n = real(self, item, progress)
        writes.append(item.key)
        return n

    def once_then_interrupt(self, item, progress):
        if writes:
            raise KeyboardInterrupt
        return counting(self, item, progress)

    monkeypatch.setattr(BatchRunner, "run_item", once_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        BatchRunner(_config(out, tiny_ckpt)).run(items)
    assert len(writes) == 1 and (out / writes[0]).is_file() and not _partials(out)
    assert set(merged_state(out)) == {writes[0]}

    monkeypatch.setattr(BatchRunner, "run_item", counting)
    report = BatchRunner(_config(out, tiny_ckpt)).run(items)
    assert report.count("done") == 1 and report.count("skipped") == 1
    assert sorted(writes) == sorted(i.key for i in items)  # each exactly once
    assert all(r.status == "done" for r in merged_state(out).values()) and len(merged_state(out)) == 2


def test_two_rank_sharding_covers_every_item_once(inputs, tiny_ckpt, tmp_path):
    items = build_items(read_manifest(inputs / "jobs.csv"))[:3]
    out = tmp_path / "o"
    seen = []
    for r in range(2):
        report = BatchRunner(_config(out, tiny_ckpt), rank=RankInfo(r, 2, r)).run(items)
        seen += [o.item.key for o in report.outcomes if o.status == "done"]
    assert sorted(seen) == sorted(i.key for i in items)
    assert sorted(p.name for p in (out / ".scorr-batch").glob("state.rank*.json")) == \
        ["state.rank0.json", "state.rank1.json"]
    assert {r.rank for r in merged_state(out).values()} == {0, 1}
    res = runner.invoke(app, ["batch", "--status", str(out)])
    assert res.exit_code == 0 and "3 done, 0 failed" in res.output


def test_shard_has_no_gaps_or_duplicates():
    for n in range(0, 23):
        for w in range(1, 6):
            parts = [shard(list(range(n)), r, w) for r in range(w)]
            assert sum(parts, []) == list(range(n))
    assert rank_info({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == RankInfo(3, 4, 1)
    with pytest.raises(InputError):
        rank_info({"RANK": "4", "WORLD_SIZE": "4"})


def test_manifest_formats_folders_and_naming(inputs, tmp_path):
    jl = tmp_path / "jobs.jsonl"
    jl.write_text(json.dumps({"source": str(inputs / "s0.png"), "driving": str(inputs / "d0.mp4"),
                              "output": "a/x.gif", "mode": "absolute", "max_frames": 2}) + "\n")
    (item,) = build_items(read_manifest(jl))
    assert item.key == "a/x.gif" and item.options == {"mode": "absolute", "max_frames": 2}
    bad = tmp_path / "bad.csv"
    bad.write_text("source,driving,colour\na.png,b.mp4,red\n")
    with pytest.raises(InputError, match="unknown column 'colour'"):
        read_manifest(bad)
    zipped = build_items(pair_folders(inputs, inputs, "product"), "{index}_{source}.{ext}", "gif")
    assert len(zipped) == 2 * 5 and zipped[0].key == "0_s0.gif"  # 2 images x (3 clips + 2 images as drivings)
    with pytest.raises(InputError, match="needs as many"):
        pair_folders(inputs, _only_clips(inputs, tmp_path), "zip")
    with pytest.raises(InputError, match="collide"):
        check_name_template("{source}.mp4")
    dup = tmp_path / "dup.csv"
    dup.write_text("source,driving,output\na.png,b.mp4,x.mp4\nc.png,d.mp4,x.mp4\n")
    with pytest.raises(InputError, match="both write x.mp4"):
        build_items(read_manifest(dup))


def _only_clips(inputs: Path, tmp: Path) -> Path:
    d = tmp / "clips"
    d.mkdir()
    for name in ("d0.mp4", "d1.mp4", "bad.mp4"):
        (d / name).symlink_to(inputs / name)
    return d


def test_help_is_complete():
    res = runner.invoke(app, ["batch", "--help"], terminal_width=200)
    assert res.exit_code == 0
    for flag in ("--sources", "--drivings", "--pairing", "--name", "--status", "--dry-run", "--retry-failed",
                 "--checkpoint", "--device", "--max-frames", "torchrun"):
        assert flag in res.output, flag


def test_real_faces_cropped_and_no_face_reported(faces_media, tiny_ckpt, tmp_path):
    """Default face cropping on real media; a faceless source fails with its reason, the other item is done."""
    blank = tmp_path / "blank.png"
    write_image(blank, np.full((200, 200, 3), 128, np.uint8))
    manifest = tmp_path / "jobs.jsonl"
    drive = faces_media / "driving/dreamtalk_M030_front_neutral_level1_001.mp4"
    manifest.write_text("\n".join(json.dumps({"source": str(s), "driving": str(drive), "max_frames": 2})
                                  for s in (faces_media / "source/liveportrait_s42.jpg", blank)) + "\n")
    out = tmp_path / "out"
    br = BatchRunner(BatchConfig(outdir=out, checkpoint=str(tiny_ckpt), device="cpu", detector="dlib"))
    report = br.run(build_items(read_manifest(manifest)))
    by_status = {o.status: o for o in report.outcomes}
    assert report.count("done") == 1 and report.count("failed") == 1
    assert "no face found in the source image" in by_status["failed"].reason
    assert probe_video(out / by_status["done"].item.output).n_frames == 2


def test_batch_and_animate_write_identical_frames(tiny_ckpt, tmp_path):
    """The same pair and options through `scorr animate` and `scorr batch`: the same frames, byte for byte
    after decoding (face crop, motion reference, model, output size and encoder all agree)."""
    from scorr_cli.media import iter_video_frames
    from scorr_cli.pipeline.animate import AnimateConfig, animate

    examples = Path(__file__).resolve().parents[1] / "examples"
    drive = tmp_path / "drive.mp4"
    make_test_video(drive, list(iter_video_frames(examples / "driving.mp4", stop=40)), 25)
    r = animate(AnimateConfig(source=examples / "source.png", driving=drive, output=tmp_path / "a.mp4",
                              checkpoint=str(tiny_ckpt), audio=False, batch_size=2))
    assert r.reference_frame != 0  # the matched reference (not the first frame) must agree too
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(f"source,driving,output\n{examples / 'source.png'},{drive},b.mp4\n")
    report = run_batch(build_items(read_manifest(jobs)), BatchConfig(outdir=tmp_path / "out", checkpoint=str(tiny_ckpt),
                                                                      device="cpu", batch_size=2, audio=False))
    assert [o.status for o in report.outcomes] == ["done"]
    a = list(iter_video_frames(tmp_path / "a.mp4"))
    b = list(iter_video_frames(tmp_path / "out" / "b.mp4"))
    assert len(a) == len(b) == 40
    for fa, fb in zip(a, b):
        assert np.array_equal(fa, fb)
