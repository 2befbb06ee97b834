"""Import of the authors' released checkpoints (``vox.pth``, ``celebvhq.pth``)."""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from pathlib import Path

import torch

from scorr_cli.checkpoints.store import Checkpoint, looks_like_torch_file, save_checkpoint, validate_state_dict
from scorr_cli.core.model import MRFA
from scorr_cli.core.official import config_from_official, official_to_scorr, strip_module_prefix
from scorr_cli.errors import CheckpointError, InputError


def _torch_load(path: Path) -> object:
    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols: our one-line error says enough
            warnings.simplefilter("ignore")
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)", str(e))
        if found:
            raise CheckpointError(f"{path}: refused to load: the file contains objects other than tensors "
                                  f"({found.group(1)}); only plain state dicts are accepted") from None
        if "WeightsUnpickler" in str(e) and looks_like_torch_file(path):
            raise CheckpointError(f"{path}: refused to load: the pickle holds instructions the safe (weights-only) "
                                  "loader does not run; only plain state dicts are accepted") from None
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (corrupt or not a torch file)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({msg[:160]})") from None


def read_official(path: str | Path) -> Checkpoint:
    """Read an authors' checkpoint safely and convert it to scorr's key layout (not yet validated)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    raw = _torch_load(path)
    state = raw.get("model", raw) if isinstance(raw, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a dict with a 'model' state dict (the authors' format)")
    try:
        config = config_from_official(strip_module_prefix(state))
    except KeyError:
        raise CheckpointError(f"{path}: missing key 'module.encoder.*': no MTIA, TPSM or FOMM keypoint "
                              "detector weights found; is this an MRFA checkpoint?") from None
    converted = official_to_scorr(state)
    meta = {"imported_from": path.name, "epoch": raw.get("epoch") if isinstance(raw, dict) else None}
    return Checkpoint(config, converted, meta, path)


def import_official(path: str | Path, dest: str | Path, *, name: str, force: bool = False) -> Path:
    """Validate an authors' checkpoint against the model it implies and save it in scorr's format."""
    ckpt = read_official(path)
    model = MRFA(ckpt.config)
    validate_state_dict(model, ckpt.state, str(path))
    model.load_state_dict(ckpt.state, strict=True)
    dest = Path(dest)
    if dest.exists() and not force:
        from scorr_cli.errors import OutputExistsError
        raise OutputExistsError(f"{dest}: weights named '{name}' already exist (use --force to replace)")
    meta = dict(ckpt.metadata, name=name, preset="celebvhq" if ckpt.config.background else "vox")
    return save_checkpoint(dest, model, metadata=meta)
