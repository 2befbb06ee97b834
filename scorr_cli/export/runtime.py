"""``--backend onnx``: :class:`OnnxEngine` runs the exported graphs with onnxruntime behind the interface
``animate`` and ``batch`` use (``size``, ``device``, ``detect``, ``prepare``, ``set_reference``,
``animate``). Resizing, the motion reference and motion transfer are :class:`EngineBase`'s, shared with
the torch engine; only the three networks run in onnxruntime.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Optional

import numpy as np
import torch

from scorr_cli.core.engine import EngineBase, SourceState, resolve_device
from scorr_cli.core.transfer import TransferOptions
from scorr_cli.errors import InputError
from scorr_cli.export.graphs import (DRIVING_KP, FRAMES, KEYPOINTS, PREDICTION, RENDER, SOURCE, SOURCE_IMAGE,
                                     prepared_source, source_tensors)
from scorr_cli.export.manifest import Manifest

INSTALL_HINT = "pip install 'scorr[onnx]'"


def require(module: str, purpose: str) -> ModuleType:
    """Import an optional dependency, or fail with one line saying what needs it and how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(f"{purpose} needs {module}: {INSTALL_HINT}") from None


def onnx_device(name: str) -> torch.device:
    """``auto``: CUDA when both torch and onnxruntime have it, else the CPU (onnxruntime has no MPS)."""
    ort = require("onnxruntime", "--backend onnx")
    has_cuda_ep = "CUDAExecutionProvider" in ort.get_available_providers()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() and has_cuda_ep else "cpu")
    try:
        device = resolve_device(name)
    except (ValueError, RuntimeError) as e:
        raise InputError(f"--device {name}: {e}") from None
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"--device {name}: --backend onnx runs on cpu or cuda")
    if device.type == "cuda" and not has_cuda_ep:
        raise InputError(f"--device {name}: this onnxruntime has no CUDAExecutionProvider "
                         "(pip install onnxruntime-gpu)")
    return device


def open_session(path: Path, device: torch.device) -> Any:
    """An inference session for one graph file. Threads follow torch's setting (``OMP_NUM_THREADS``), so
    both backends use the machine alike."""
    ort = require("onnxruntime", "--backend onnx")
    if not path.is_file():
        raise InputError(f"{path}: missing (export again with `scorr export --force`)")
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: warnings about unused initialisers are noise to users
    providers: list[Any] = ["CPUExecutionProvider"]
    if device.type == "cuda":
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as e:  # onnxruntime raises its own exception types for damaged files
        raise InputError(f"{path}: not a loadable ONNX graph ({str(e).splitlines()[0]})") from None


@dataclass
class OnnxOutput:
    prediction: torch.Tensor  # B×3×S×S in [0, 1]
    kp_driving: dict[str, torch.Tensor]  # the keypoints that drove it (after motion transfer)


class OnnxEngine(EngineBase):
    def __init__(self, folder: str | Path, device: torch.device = torch.device("cpu"),
                 render_chunk: Optional[int] = None):
        self.folder = Path(folder)
        self.manifest = Manifest.read(self.folder)
        super().__init__(self.manifest.image_size, device, render_chunk)
        self.sessions = {name: open_session(self.folder / graph["file"], device)
                         for name, graph in self.manifest.graphs.items()}

    def _run(self, graph: str, feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        spec = self.manifest.graphs[graph]
        arrays = {name: np.ascontiguousarray(feeds[name].detach().float().cpu().numpy()) for name in spec["inputs"]}
        outputs = self.sessions[graph].run(spec["outputs"], arrays)
        return {name: torch.from_numpy(out).to(self.device) for name, out in zip(spec["outputs"], outputs)}

    def detect(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        return self._run(KEYPOINTS, {FRAMES: self._to_device(frames)})

    def prepare(self, source: torch.Tensor) -> SourceState:
        image = self._to_device(source)
        return SourceState(prepared_source(image, self._run(SOURCE, {SOURCE_IMAGE: image})))

    def animate(self, state: SourceState, frames: Optional[torch.Tensor],
                options: TransferOptions = TransferOptions(),
                kp_driving: Optional[dict[str, torch.Tensor]] = None) -> OnnxOutput:
        """:meth:`AnimationEngine.animate <scorr_cli.core.engine.AnimationEngine.animate>` in onnxruntime."""
        kp = self.transfer(state, frames, options, kp_driving)
        fixed = {SOURCE_IMAGE: state.prepared.image, **source_tensors(state.prepared)}
        n = kp["kp"].shape[0]
        chunk = self.render_chunk or n
        parts = [self._run(RENDER, {**fixed, **{DRIVING_KP + k: v[i:i + chunk] for k, v in kp.items()}})
                 for i in range(0, n, chunk)]
        prediction = torch.cat([p[PREDICTION] for p in parts]).clamp_(0, 1)
        return OnnxOutput(prediction, kp)


def load_onnx_engine(checkpoint: Optional[str], onnx_dir: Optional[Path], device: str,
                     skip_updates: Optional[int] = None) -> OnnxEngine:
    """The engine for ``--backend onnx``: graphs from ``onnx_dir``, else the checkpoint's cached export
    (made on first use, :func:`scorr_cli.export.exporter.cached_export`)."""
    resolved = onnx_device(device)
    if onnx_dir is None:
        from scorr_cli.checkpoints import resolve_checkpoint
        from scorr_cli.export.exporter import cached_export

        onnx_dir = cached_export(resolve_checkpoint(checkpoint), skip_updates)
    return OnnxEngine(onnx_dir, resolved)
