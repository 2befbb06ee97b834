"""Checkpoint format, official import, safety (no unpickling of code) and the weights CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from scorr_cli.checkpoints import import_official, load_checkpoint, read_checkpoint, resolve_checkpoint, save_checkpoint
from scorr_cli.cli import app
from scorr_cli.core.config import tiny
from scorr_cli.core.model import MRFA
from scorr_cli.errors import CheckpointError, InputError

runner = CliRunner()


@pytest.fixture
def weights_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "weights"
    monkeypatch.setenv("SCORR_WEIGHTS_DIR", str(d))
    return d


def _official_state(cfg, with_extras: bool = True) -> dict[str, torch.Tensor]:
    """A model's state in the authors' layout: ``module.`` prefix, VGG + NaN pyramid kernel."""
    torch.manual_seed(0)
    state = {f"module.{k}": v for k, v in MRFA(cfg).state_dict().items()}
    if with_extras:
        state["module.vgg.slice1.0.weight"] = torch.randn(64, 3, 3, 3)
        state["module.pyramid.downs.1.weight"] = torch.full((3, 1, 1, 1), math.nan)
    return state


def test_save_load_round_trip(tmp_path):
    cfg = tiny()
    model = MRFA(cfg).eval()
    path = save_checkpoint(tmp_path / "m.safetensors", model, metadata={"preset": "tiny", "steps": 3})
    loaded, ckpt = load_checkpoint(path)
    assert ckpt.config == cfg and ckpt.metadata == {"preset": "tiny", "steps": 3}
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    # fp16 storage halves floats but loads back as float32 close to the original.
    half = save_checkpoint(tmp_path / "h.safetensors", model, dtype=torch.float16)
    assert half.stat().st_size < 0.6 * path.stat().st_size
    loaded16, _ = load_checkpoint(half)
    w = next(loaded16.parameters())
    assert w.dtype == torch.float32


def test_official_import_drops_training_only_keys_and_tolerates_nan(tmp_path):
    cfg = tiny()
    pth = tmp_path / "vox.pth"
    torch.save({"model": _official_state(cfg), "optimizer": {}, "epoch": 99}, pth)
    # tiny widths are not the authors'; import must recognise the prior, then fail on shapes.
    with pytest.raises(CheckpointError, match=r"shape .* model expects"):
        import_official(pth, tmp_path / "out.safetensors", name="x")


def test_official_import_full_size_round_trip(tmp_path):
    from scorr_cli.core.config import ModelConfig
    cfg = ModelConfig(prior="tpsm")  # the smallest authors' variant
    pth = tmp_path / "tpsm.pth"
    torch.save({"model": _official_state(cfg), "optimizer": {}, "epoch": 99}, pth)
    out = import_official(pth, tmp_path / "tpsm.safetensors", name="tpsm")
    ckpt = read_checkpoint(out)
    assert ckpt.config.prior == "tpsm" and not ckpt.config.background
    assert not any(k.startswith(("vgg.", "pyramid.")) for k in ckpt.state)
    assert ckpt.metadata["imported_from"] == "tpsm.pth" and ckpt.metadata["epoch"] == 99


def test_truncated_state_names_first_missing_key(tmp_path):
    from scorr_cli.core.config import ModelConfig
    cfg = ModelConfig(prior="tpsm")
    state = _official_state(cfg)
    del state["module.decoder.kp_head.weight"]
    pth = tmp_path / "trunc.pth"
    torch.save({"model": state}, pth)
    with pytest.raises(CheckpointError) as err:
        import_official(pth, tmp_path / "o.safetensors", name="t")
    msg = str(err.value)
    assert "missing key 'decoder.kp_head.weight'" in msg and "[" in msg and "\n" not in msg


def test_foreign_and_corrupt_files_are_one_line_errors(tmp_path):
    foreign = tmp_path / "foreign.pth"
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, foreign)
    with pytest.raises(CheckpointError, match="no MTIA, TPSM or FOMM"):
        import_official(foreign, tmp_path / "o.safetensors", name="f")
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        import_official(corrupt, tmp_path / "o.safetensors", name="c")
    bad_safetensors = tmp_path / "bad.safetensors"
    bad_safetensors.write_bytes(b"{}")
    with pytest.raises(CheckpointError):
        read_checkpoint(bad_safetensors)
    with pytest.raises(InputError, match="not found"):
        read_checkpoint(tmp_path / "absent.safetensors")


class _Exploit:
    def __reduce__(self):
        import os
        return (os.system, (f"touch {_Exploit.marker}",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    _Exploit.marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"model": {"module.encoder.fg_encoder.fc.weight": torch.zeros(1)}, "payload": _Exploit()}, evil)
    with pytest.raises(CheckpointError, match="refused to load"):
        import_official(evil, tmp_path / "o.safetensors", name="evil")
    assert not _Exploit.marker.exists()


def test_weights_cli_import_and_list(tmp_path, weights_dir):
    from scorr_cli.core.config import ModelConfig
    pth = tmp_path / "tpsm.pth"
    torch.save({"model": _official_state(ModelConfig(prior="tpsm")), "epoch": 1}, pth)
    r = runner.invoke(app, ["weights", "import", str(pth), "--name", "mine"])
    assert r.exit_code == 0, r.output
    assert (weights_dir / "mine.safetensors").is_file()
    assert resolve_checkpoint("mine") == weights_dir / "mine.safetensors"
    r = runner.invoke(app, ["weights", "list"])
    assert r.exit_code == 0 and "mine" in r.output and "tpsm" in r.output
    r = runner.invoke(app, ["weights", "import", str(pth), "--name", "mine"])
    assert r.exit_code != 0 and "--force" in r.output
    r = runner.invoke(app, ["weights", "import", str(tmp_path / "nope.pth"), "--name", "z"])
    assert r.exit_code != 0 and "nope.pth" in r.output and "Traceback" not in r.output


def test_unknown_checkpoint_name(weights_dir):
    with pytest.raises(InputError, match="unknown checkpoint 'nosuch'"):
        resolve_checkpoint("nosuch")


def test_weights_cli_export_half_without_local_paths(tmp_path):
    model = MRFA(tiny()).eval()
    meta = {"steps": 7, "train_config": {"data_root": str(tmp_path / "secret" / "faces256"),
                                         "run": {"out": str(tmp_path / "runs" / "a"), "init": None}}}
    src = save_checkpoint(tmp_path / "final.safetensors", model, metadata=meta)
    dest = tmp_path / "shared.safetensors"
    r = runner.invoke(app, ["weights", "export", str(src), str(dest), "--half"])
    assert r.exit_code == 0, r.output
    out = read_checkpoint(dest)
    assert all(v.dtype == torch.float16 for v in out.state.values() if v.is_floating_point())
    assert out.metadata["steps"] == 7 and out.metadata["storage_dtype"] == "float16"
    assert out.metadata["train_config"]["data_root"] == "faces256"
    assert out.metadata["train_config"]["run"]["out"] == "a"
    from safetensors import safe_open
    with safe_open(str(dest), "pt") as f:
        assert str(tmp_path) not in json.dumps(f.metadata())
    loaded, _ = load_checkpoint(dest)
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        if a.is_floating_point():
            torch.testing.assert_close(b, a.half().float(), msg=k)
    # Never overwrites without --force; a missing source is a one-line error.
    before = dest.read_bytes()
    r = runner.invoke(app, ["weights", "export", str(src), str(dest)])
    assert r.exit_code != 0 and "--force" in r.output and dest.read_bytes() == before
    r = runner.invoke(app, ["weights", "export", str(tmp_path / "nope.safetensors"), str(tmp_path / "x.safetensors")])
    assert r.exit_code != 0 and "nope.safetensors" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "x.safetensors").exists()
