"""Training checkpoints: scorr model weights + a pickle-free training-state file, side by side.

Layout under ``<out>/checkpoints/``::

    step-00001200.safetensors         the model in scorr's format (``scorr animate --checkpoint`` reads it)
    step-00001200.state.safetensors   optimiser moments + RNG tensors; JSON scalars in its header

The state file holds tensors only (safetensors) plus JSON strings in the header (optimiser param
groups, scheduler state, epoch/step/sampler position, numpy and Python RNG states): nothing is
unpickled on resume. The state file is written first and the model file last (each atomically), so a
checkpoint is complete exactly when its model file exists beside its state file; incomplete pairs are
ignored by :func:`list_checkpoints`.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from scorr_cli.checkpoints.store import is_complete_safetensors, read_safetensors
from scorr_cli.errors import CheckpointError, InputError
from scorr_cli.fsutil import atomic_path

STATE_FORMAT = "scorr-train-state"
STATE_VERSION = 1
_NAME = re.compile(r"^step-(\d+)\.safetensors$")


@dataclass
class TrainingState:
    """Everything besides the weights that a resumed run needs."""

    scalars: dict[str, Any]  # epoch, step, samples_in_epoch, wall_time, world_size, ...
    optimizer: dict[str, Any]  # torch optimiser state dict (tensors restored)
    scheduler: dict[str, Any]
    rng: dict[str, Any] = field(default_factory=dict)  # torch / cuda tensors, numpy and python states
    # The weights the optimiser updates, when the model file holds something else (the weight average
    # of schedule.ema_decay); empty otherwise.
    weights: dict[str, torch.Tensor] = field(default_factory=dict)


def checkpoint_dir(out: str | Path) -> Path:
    return Path(out) / "checkpoints"


def model_path(ckpt_dir: Path, step: int) -> Path:
    return ckpt_dir / f"step-{step:08d}.safetensors"


def state_path_for(model_file: Path) -> Path:
    return model_file.with_name(model_file.name[: -len(".safetensors")] + ".state.safetensors")


def list_checkpoints(ckpt_dir: str | Path) -> list[tuple[int, Path, Path]]:
    """Complete (step, model file, state file) triples, oldest first."""
    d = Path(ckpt_dir)
    if not d.is_dir():
        return []
    out = []
    for p in d.iterdir():
        m = _NAME.match(p.name)
        if m and state_path_for(p).is_file():
            out.append((int(m.group(1)), p, state_path_for(p)))
    return sorted(out)


def prune_checkpoints(ckpt_dir: str | Path, keep: int, protect: tuple[Path, ...] = ()) -> list[Path]:
    """Delete all but the newest ``keep`` complete checkpoints (``keep`` 0: delete nothing)."""
    if keep <= 0:
        return []
    removed = []
    for _, mp, sp in list_checkpoints(ckpt_dir)[:-keep]:
        if mp in protect:
            continue
        for p in (mp, sp):  # model first: a state file without its model is ignored, never half-used
            p.unlink(missing_ok=True)
        removed.append(mp)
    return removed


def find_resume(path: str | Path) -> tuple[Path, Path]:
    """``--resume DIR|PATH`` -> (model file, state file) of the newest complete checkpoint.

    Accepts a run folder (holding ``checkpoints/``), a ``checkpoints/`` folder, a model file
    ``step-N.safetensors`` or its ``.state.safetensors``.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        for d in (checkpoint_dir(p), p):
            found = list_checkpoints(d)
            # newest first; a pair cut short (killed mid-write, disk full) gives way to the one before
            for _, mp, sp in reversed(found):
                if is_complete_safetensors(mp) and is_complete_safetensors(sp):
                    return mp, sp
            if found:
                raise InputError(f"--resume {p}: every checkpoint in {d} is incomplete (cut short); "
                                 "start again with --init from a model file")
        raise InputError(f"--resume {p}: no complete training checkpoint (step-N.safetensors + "
                         "step-N.state.safetensors) found there or in its checkpoints/ folder")
    if not p.is_file():
        raise InputError(f"--resume {p}: no such file or folder")
    if p.name.endswith(".state.safetensors"):
        mp = p.with_name(p.name[: -len(".state.safetensors")] + ".safetensors")
        sp = p
    else:
        mp, sp = p, state_path_for(p)
    if not mp.is_file() or not sp.is_file():
        raise InputError(f"--resume {p}: needs both {mp.name} and {sp.name} (the training state); "
                         "a bare model file can only initialise weights")
    return mp, sp


# ----------------------------------------------------------------------------------------- RNG
def capture_rng() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state["numpy"] = [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]
    version, internal, gauss = random.getstate()
    state["python"] = [version, list(internal), gauss]
    return state


def restore_rng(state: dict[str, Any]) -> None:
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
    if "numpy" in state:
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))


# ------------------------------------------------------------------------------- (de)serialise
def _json_default(obj: Any) -> Any:
    if isinstance(obj, Counter):
        return {"__counter__": [[k, v] for k, v in obj.items()]}
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, tuple):
        return list(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if torch.is_tensor(obj) and obj.numel() == 1:
        return obj.item()
    raise TypeError(f"cannot store {type(obj).__name__} in the training state")


def _json_hook(obj: dict[str, Any]) -> Any:
    if set(obj) == {"__counter__"}:
        return Counter({k: v for k, v in obj["__counter__"]})
    return obj


def _tag(obj: Any) -> Any:
    """Counters (dict subclasses, which json would write as plain dicts with string keys) get a tag."""
    if isinstance(obj, Counter):
        return {"__counter__": [[_tag(k), v] for k, v in obj.items()]}
    if isinstance(obj, dict):
        return {k: _tag(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_tag(v) for v in obj]
    return obj


def _dumps(obj: Any) -> str:
    return json.dumps(_tag(obj), default=_json_default)


def _loads(text: str) -> Any:
    return json.loads(text, object_hook=_json_hook)


def save_training_state(path: str | Path, *, optimizer: torch.optim.Optimizer, scheduler: Any,
                        scalars: dict[str, Any], rng: dict[str, Any] | None = None,
                        weights: dict[str, torch.Tensor] | None = None) -> Path:
    """Write the training state atomically (tensors in safetensors, the rest as JSON in its header).
    ``weights``: the optimiser's own weights where the model file beside it holds their average."""
    tensors: dict[str, torch.Tensor] = {f"weights.{k}": v.detach().cpu().contiguous()
                                        for k, v in (weights or {}).items()}
    opt = optimizer.state_dict()
    per_param: dict[str, dict[str, Any]] = {}
    for pid, st in opt["state"].items():
        plain = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optimizer.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                plain[k] = v
        per_param[str(pid)] = plain
    rng = dict(rng or {})
    rng_json = {}
    for k, v in rng.items():
        if torch.is_tensor(v):
            tensors[f"rng.{k}"] = v.detach().cpu().contiguous()
        elif k == "cuda":
            for i, t in enumerate(v):
                tensors[f"rng.cuda.{i}"] = t.detach().cpu().contiguous()
            rng_json["cuda_count"] = len(v)
        else:
            rng_json[k] = v
    header = {
        "format": STATE_FORMAT,
        "format_version": str(STATE_VERSION),
        "scalars": _dumps(scalars),
        "optimizer_groups": _dumps(opt["param_groups"]),
        "optimizer_plain": _dumps(per_param),
        "scheduler": _dumps(scheduler.state_dict() if scheduler is not None else {}),
        "rng": _dumps(rng_json),
    }
    path = Path(path)
    if not tensors:  # safetensors needs at least one tensor to be a useful file on every version
        tensors["_empty"] = torch.zeros(1)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return path


def load_training_state(path: str | Path) -> TrainingState:
    """Read a state file written by :func:`save_training_state` (safetensors + JSON; no pickle)."""
    path = Path(path)
    header, tensors = read_safetensors(path, "training state")
    if header.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: not a scorr training state")
    if int(header.get("format_version", "0")) > STATE_VERSION:
        raise CheckpointError(f"{path}: training state format is newer than this scorr supports")
    try:
        scalars = _loads(header["scalars"])
        groups = _loads(header["optimizer_groups"])
        plain = _loads(header["optimizer_plain"])
        scheduler = _loads(header["scheduler"])
        rng_json = _loads(header["rng"])
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt training state ({e})") from None
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    state: dict[int, dict[str, Any]] = {int(pid): dict(v) for pid, v in plain.items()}
    rng: dict[str, Any] = {}
    cuda: dict[int, torch.Tensor] = {}
    weights: dict[str, torch.Tensor] = {}
    for key, t in tensors.items():
        if key.startswith("weights."):
            weights[key[len("weights."):]] = t
        elif key.startswith("optimizer."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = t
        elif key.startswith("rng.cuda."):
            cuda[int(key.rsplit(".", 1)[1])] = t
        elif key.startswith("rng."):
            rng[key[4:]] = t
    if cuda:
        rng["cuda"] = [cuda[i] for i in sorted(cuda)]
    rng_json.pop("cuda_count", None)
    rng.update(rng_json)
    return TrainingState(scalars, {"state": state, "param_groups": groups}, scheduler, rng, weights)


__all__ = ["TrainingState", "checkpoint_dir", "model_path", "state_path_for", "list_checkpoints",
           "prune_checkpoints", "find_resume", "capture_rng", "restore_rng", "save_training_state",
           "load_training_state"]
