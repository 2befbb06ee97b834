"""ONNX export and the onnxruntime backend: each graph against torch, ``animate``/``batch`` with
``--backend onnx`` against the torch backend, the export command's folder and manifest, the cache, and
the one-line errors without the optional packages.

Exports the tiny random model (64²) and the default weights (128²) once per module (~20 s on one
core); the inputs are the example portrait and the first frames of the example clip.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from scorr_cli.cli import app  # noqa: E402
from scorr_cli.core.engine import AnimationEngine  # noqa: E402
from scorr_cli.core.transfer import TransferOptions  # noqa: E402
from scorr_cli.errors import CheckpointError, InputError  # noqa: E402
from scorr_cli.export import Manifest, OnnxEngine, export_onnx  # noqa: E402
from scorr_cli.export.graphs import source_tensors  # noqa: E402
from scorr_cli.pipeline.render import image_to_tensor, images_to_tensor, load_engine  # noqa: E402

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _example_frames(n: int) -> torch.Tensor:
    from scorr_cli.media import iter_video_frames

    return images_to_tensor(list(iter_video_frames(EXAMPLES / "driving.mp4", stop=n)))


def _source() -> torch.Tensor:
    from scorr_cli.media import read_image

    return image_to_tensor(read_image(EXAMPLES / "source.png"))


@pytest.fixture(scope="module")
def tiny_export(tiny_ckpt, tmp_path_factory) -> Path:
    """The tiny model exported by the command line."""
    out = tmp_path_factory.mktemp("tiny") / "onnx"
    r = runner.invoke(app, ["export", str(tiny_ckpt), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert f"--onnx-dir {out}" in r.stdout
    return out


@pytest.fixture(scope="module")
def default_export(tmp_path_factory) -> Path:
    """The default weights (no checkpoint given) exported by the library."""
    out = tmp_path_factory.mktemp("default") / "onnx"
    export_onnx(None, out)
    return out


def _torch_engine(manifest: Manifest) -> AnimationEngine:
    from scorr_cli.checkpoints import load_checkpoint

    model, _ = load_checkpoint(Path(manifest.checkpoint["path"]), torch.device("cpu"))
    return AnimationEngine(model, "cpu")


# ---- each graph against torch ------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["tiny_export", "default_export"])
def test_each_graph_matches_torch(which, request):
    """Same example portrait and frames through both engines: keypoints, every prepared-source tensor and
    the rendered frames (relative motion, so the transfer in between is the shared torch code)."""
    folder = request.getfixturevalue(which)
    onnx = OnnxEngine(folder)
    ref = _torch_engine(onnx.manifest)
    frames, source = _example_frames(3), _source()

    kp_t, kp_o = ref.detect(frames), onnx.detect(frames)
    assert list(kp_o) == onnx.manifest.keypoint_outputs == list(kp_t)
    kp_diff = max((kp_t[k] - kp_o[k]).abs().max().item() for k in kp_t)
    assert kp_diff < 1e-4

    st_t, st_o = ref.prepare(source), onnx.prepare(source)
    src_t, src_o = source_tensors(st_t.prepared), source_tensors(st_o.prepared)
    assert list(src_o) == onnx.manifest.source_outputs == list(src_t)
    src_diff = max((src_t[k] - src_o[k]).abs().max().item() for k in src_t)
    assert src_diff < 1e-4

    # Render from the same keypoints (torch's), so this measures the render graph alone.
    out_t = ref.animate(st_t, None, TransferOptions(), kp_driving=kp_t)
    out_o = onnx.animate(st_o, None, TransferOptions(), kp_driving=kp_t)
    pred_diff = (out_t.prediction - out_o.prediction).abs().max().item()
    print(f"\n{which}: max |torch - onnxruntime|: keypoints {kp_diff:.2e}, source {src_diff:.2e}, "
          f"prediction {pred_diff:.2e}")
    assert out_o.prediction.shape == (3, 3, onnx.size, onnx.size)
    assert pred_diff < 1e-3
    assert all(torch.allclose(out_t.kp_driving[k], out_o.kp_driving[k], atol=1e-4) for k in kp_t)  # transferred


def test_manifest_describes_the_graphs(tiny_export, tiny_ckpt):
    import onnxruntime as ort

    data = json.loads((tiny_export / "manifest.json").read_text())
    assert data["format"] == "scorr-onnx" and data["format_version"] == 1
    assert (data["image_size"], data["num_kp"], data["prior"], data["opset"]) == (64, 10, "mtia", 17)
    assert data["checkpoint"]["sha256"] == hashlib.sha256(tiny_ckpt.read_bytes()).hexdigest()
    assert Path(data["checkpoint"]["path"]) == tiny_ckpt.resolve()
    assert data["keypoint_outputs"] == ["kp", "jacobian"]
    assert data["graphs"]["source"]["outputs"] == data["source_outputs"]
    for name, graph in data["graphs"].items():  # the names and order of the files themselves
        session = ort.InferenceSession(str(tiny_export / graph["file"]), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == graph["inputs"], name
        assert [o.name for o in session.get_outputs()] == graph["outputs"], name
        assert data["max_abs_diff"][name] < 1e-3


# ---- end to end --------------------------------------------------------------------------------------

def test_animate_with_onnx_matches_torch(default_export, tmp_path):
    """The example pair with the default weights: the frames of both backends differ by at most 2/255."""
    from scorr_cli.media import read_image
    from scorr_cli.pipeline.animate import animate
    from scorr_cli.pipeline.options import AnimateConfig

    outs = {}
    for backend, extra in (("torch", {}), ("onnx", {"onnx_dir": default_export})):
        outs[backend] = tmp_path / backend
        animate(AnimateConfig(source=EXAMPLES / "source.png", driving=EXAMPLES / "driving.mp4", output=outs[backend],
                              max_frames=3, device="cpu", backend=backend, precision="fp32", **extra))
    frames = {b: [read_image(p) for p in sorted(o.glob("*.png"))] for b, o in outs.items()}
    assert len(frames["torch"]) == len(frames["onnx"]) == 3
    diffs = [int(np.abs(t.astype(int) - o.astype(int)).max()) for t, o in zip(frames["torch"], frames["onnx"])]
    print(f"\nanimate, default weights: max |torch - onnx| per frame (of 255): {diffs}")
    assert max(diffs) <= 2


def test_batch_exports_once_into_the_cache(tiny_ckpt, tmp_path, monkeypatch):
    """``batch --backend onnx`` without --onnx-dir exports into $XDG_CACHE_HOME/scorr/onnx/<sha256>/ once."""
    from scorr_cli.batch import BatchConfig, run_batch
    from scorr_cli.batch.manifest import BatchItem
    from scorr_cli.export import exporter
    from scorr_cli.media import write_image
    from scorr_cli.media.testing import make_test_video, synthetic_frame

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    write_image(tmp_path / "s.png", synthetic_frame(3, (80, 80)))
    make_test_video(tmp_path / "d.mp4", 2, size=(64, 64))
    config = BatchConfig(outdir=tmp_path / "out", checkpoint=str(tiny_ckpt), device="cpu", crop=False,
                         backend="onnx")
    item = BatchItem(index=0, source=tmp_path / "s.png", driving=tmp_path / "d.mp4", output=Path("o.mp4"))
    assert run_batch([item], config).ok
    cached = tmp_path / "cache" / "scorr" / "onnx" / hashlib.sha256(tiny_ckpt.read_bytes()).hexdigest()
    assert Manifest.read(cached).checkpoint["path"] == str(tiny_ckpt.resolve())

    monkeypatch.setattr(exporter, "write_graphs", lambda *a: pytest.fail("exported again"))
    engine = load_engine(config)
    assert isinstance(engine, OnnxEngine) and engine.folder == cached


def test_skip_updates_exports_its_own_graphs(tiny_ckpt, tmp_path, monkeypatch):
    """--backend onnx --skip-updates N caches a separate export (<sha256>-skipN) that renders what torch
    renders with the same setting, and not what the model's own setting renders."""
    from scorr_cli.checkpoints import load_checkpoint
    from scorr_cli.pipeline.options import RenderOptions

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    onnx = load_engine(RenderOptions(checkpoint=str(tiny_ckpt), backend="onnx", device="cpu", skip_updates=2))
    digest = hashlib.sha256(tiny_ckpt.read_bytes()).hexdigest()
    assert onnx.folder == tmp_path / "cache" / "scorr" / "onnx" / f"{digest}-skip2"
    assert onnx.manifest.checkpoint["skip_finest_updates"] == "2"
    frames, source = _example_frames(2), _source()
    predictions = {}
    for skip, engine in (("onnx", onnx), (2, None), (0, None)):
        if engine is None:
            engine = AnimationEngine(load_checkpoint(tiny_ckpt, skip_updates=skip)[0], "cpu")
        kp = engine.detect(frames)
        predictions[skip] = engine.animate(engine.prepare(source), None, TransferOptions(), kp_driving=kp).prediction
    assert (predictions["onnx"] - predictions[2]).abs().max() < 1e-3
    assert (predictions["onnx"] - predictions[0]).abs().max() > 1e-3


# ---- the export command and its folder ---------------------------------------------------------------

def test_export_refuses_an_existing_folder_without_force(tiny_export, tiny_ckpt):
    before = {p.name: p.stat().st_mtime_ns for p in tiny_export.iterdir()}
    r = runner.invoke(app, ["export", str(tiny_ckpt), "-o", str(tiny_export)])
    assert r.exit_code == 3 and "--force" in r.stderr and "Traceback" not in r.output
    assert {p.name: p.stat().st_mtime_ns for p in tiny_export.iterdir()} == before
    r = runner.invoke(app, ["export", str(tiny_ckpt), "-o", str(tiny_export.parent / "x"), "--opset", "12"])
    assert r.exit_code == 2 and "--opset 12" in r.stderr


def test_a_folder_is_replaced_only_by_a_finished_one(tmp_path):
    from scorr_cli.fsutil import atomic_folder

    target = tmp_path / "graphs"
    target.mkdir()
    (target / "old").write_text("old")
    with pytest.raises(RuntimeError), atomic_folder(target) as tmp:
        (tmp / "new").write_text("new")
        raise RuntimeError("export failed half way")
    assert [p.name for p in tmp_path.iterdir()] == ["graphs"] and (target / "old").exists()
    with atomic_folder(target) as tmp:
        (tmp / "new").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["graphs"] and [p.name for p in target.iterdir()] == ["new"]


def test_a_tps_prior_is_refused_in_one_line(tmp_path):
    """ONNX has no matrix inverse; the TPS prior's 8×8 one is not written out: a clear error before any
    tracing (torch would print the whole graph when the 2×2 inverse refuses it), no folder."""
    from scorr_cli.checkpoints import save_checkpoint
    from scorr_cli.core.config import preset
    from scorr_cli.core.model import MRFA

    ckpt = save_checkpoint(tmp_path / "tps.safetensors", MRFA(preset("tiny").replace(prior="tpsm")))
    with pytest.raises(CheckpointError, match="tpsm prior cannot be exported"):
        export_onnx(str(ckpt), tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tps.safetensors"]


# ---- without the optional packages --------------------------------------------------------------------

@pytest.mark.parametrize("module, argv, message", [
    ("onnxruntime", ["animate", "{ex}/source.png", "{ex}/driving.mp4", "-o", "{tmp}/o.mp4", "--backend", "onnx"],
     "--backend onnx needs onnxruntime: pip install 'scorr[onnx]'"),
    ("onnx", ["export", "-o", "{tmp}/graphs"], "scorr export needs onnx: pip install 'scorr[onnx]'"),
])
def test_missing_package_is_one_line(module, argv, message, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    r = runner.invoke(app, [a.format(ex=EXAMPLES, tmp=tmp_path) for a in argv])
    assert r.exit_code == 2 and r.stderr.strip() == f"scorr: error: {message}", r.output
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="needs"):
        from scorr_cli.export.runtime import require

        require(module, "--backend onnx")


def test_command_line_does_not_import_onnx():
    code = "import sys, scorr_cli.cli; print(','.join(m for m in ('onnx', 'onnxruntime') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_benchmark_times_onnxruntime_beside_torch():
    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_animate.py"
    out = subprocess.run([sys.executable, str(bench), "--preset", "tiny", "--priors", "mtia", "--batches", "1",
                          "--repeats", "1", "--backends", "torch,onnx"], capture_output=True, text=True, check=True,
                         timeout=300).stdout
    rows = json.loads(out.strip().splitlines()[-1])["rows"]
    assert [(r["backend"], r["batch"]) for r in rows] == [("torch", 1), ("onnx", 1)]
    assert rows[1]["vs_torch"] == pytest.approx(rows[1]["median_ms"] / rows[0]["median_ms"])
