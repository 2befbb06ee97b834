"""Write a checkpoint's three ONNX graphs and their manifest (``scorr export``), and the per-checkpoint
cache ``--backend onnx`` exports into on first use.

The graphs are traced with torch's TorchScript exporter (``dynamo=False``). The torch.export-based
exporter was tried first: it has no ONNX function for the jacobian inverse either, and once that was
decomposed it had not finished the tiny model's render graph after 15 minutes (most of it in the ONNX
optimiser, with the batch axis symbolic), where tracing takes seconds. ONNX has no matrix inverse, so
the 2×2 jacobian inverse of the dense motion is written out in closed form (:func:`_inverse_2x2`).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch

from scorr_cli.errors import CheckpointError, InputError, ScorrError
from scorr_cli.export.graphs import KEYPOINTS, SOURCE, GraphSpec, model_graphs
from scorr_cli.export.manifest import Manifest
from scorr_cli.export.options import DEFAULT_OPSET
from scorr_cli.export.runtime import open_session, require
from scorr_cli.fsutil import atomic_folder, check_output, sha256_file

EXPORTABLE_PRIORS = ("mtia", "fomm")  # tpsm fits thin-plate splines with an 8×8 matrix inverse ONNX lacks
PARITY_TOLERANCE = 1e-3  # an export further than this from torch on any output is refused
PARITY_BATCH = 3  # not the traced batch: the check also proves the batch axis is dynamic


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/scorr/onnx`` (default ``~/.cache/scorr/onnx``): one folder per checkpoint sha256."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "scorr" / "onnx"


def export_onnx(checkpoint: Optional[str], output: Path, force: bool = False,
                opset: int = DEFAULT_OPSET, skip_updates: Optional[int] = None) -> Manifest:
    """``scorr export``: the checkpoint (a name, a path, or None for the default weights) as ONNX graphs
    in the folder ``output``, which must not exist unless ``force``."""
    from scorr_cli.checkpoints import resolve_checkpoint

    path = resolve_checkpoint(checkpoint)
    check_output(output, force, (path,))
    require("onnx", "scorr export")
    require("onnxruntime", "scorr export")  # the export is checked against torch before it is kept
    return write_graphs(path, output, opset, skip_updates)


def cached_export(checkpoint: Path, skip_updates: Optional[int] = None) -> Path:
    """The folder holding ``checkpoint``'s graphs in the cache (one per ``skip_updates`` setting), exported
    first if absent or made by another scorr version."""
    folder = cache_root() / (sha256_file(checkpoint) + ("" if skip_updates is None else f"-skip{skip_updates}"))
    with contextlib.suppress(InputError):
        if Manifest.read(folder).current:
            return folder
    require("onnx", "--backend onnx (to export the graphs once)")
    write_graphs(checkpoint, folder, DEFAULT_OPSET, skip_updates)
    return folder


def write_graphs(checkpoint: Path, output: Path, opset: int, skip_updates: Optional[int] = None) -> Manifest:
    """Export, check against torch, then rename into place: ``output`` is replaced only by a checked export."""
    from scorr_cli.checkpoints import load_checkpoint

    model, _ = load_checkpoint(checkpoint, torch.device("cpu"), skip_updates=skip_updates)
    if model.cfg.prior not in EXPORTABLE_PRIORS:
        raise CheckpointError(f"{checkpoint}: the {model.cfg.prior} prior cannot be exported to ONNX (its thin-plate "
                              f"splines need an 8×8 matrix inverse, which ONNX lacks); {' and '.join(EXPORTABLE_PRIORS)} "
                              "models can")
    specs = {spec.name: spec for spec in model_graphs(model.eval())}
    with atomic_folder(output) as tmp:
        for spec in specs.values():
            _export_graph(spec, tmp / _file(spec.name), opset)
        diffs = max_abs_differences(tmp, model)
        worst = max(diffs, key=diffs.get)
        if not diffs[worst] <= PARITY_TOLERANCE:
            raise ScorrError(f"{checkpoint}: the exported {worst} graph differs from torch by {diffs[worst]:.3g} "
                             f"(more than {PARITY_TOLERANCE}); nothing written")
        manifest = Manifest(
            image_size=model.cfg.image_size, num_kp=model.cfg.num_kp, prior=model.cfg.prior,
            keypoint_outputs=specs[KEYPOINTS].outputs, source_outputs=specs[SOURCE].outputs,
            checkpoint={"path": str(Path(checkpoint).resolve()), "sha256": sha256_file(checkpoint),
                        "skip_finest_updates": str(model.cfg.refiner.skip_finest_updates)}, opset=opset,
            graphs={name: {"file": _file(name), "inputs": list(s.inputs), "outputs": s.outputs}
                    for name, s in specs.items()},
            max_abs_diff=diffs)
        manifest.write(tmp)
    return manifest


def _file(graph: str) -> str:
    return f"{graph}.onnx"


def _export_graph(spec: GraphSpec, file: Path, opset: int) -> None:
    # Tracing warns about every Python branch on a tensor's shape: the image size is fixed per export, and
    # the batch axis is checked by max_abs_differences at another batch size.
    with warnings.catch_warnings(), _inverse_2x2(opset):
        warnings.simplefilter("ignore")
        torch.onnx.export(spec.module.eval(), tuple(spec.inputs.values()), str(file), dynamo=False,
                          input_names=list(spec.inputs), output_names=spec.outputs,
                          dynamic_axes=spec.dynamic_axes, opset_version=opset)


def max_abs_differences(folder: Path, model: Any) -> dict[str, float]:
    """Each exported graph against its torch module on fresh random inputs, largest absolute difference."""
    diffs = {}
    for spec in model_graphs(model, batch=PARITY_BATCH, seed=1):
        session = open_session(folder / _file(spec.name), torch.device("cpu"))
        with torch.no_grad():
            expected = spec.module(*spec.inputs.values())
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = session.run(spec.outputs, {k: v.numpy() for k, v in spec.inputs.items()})
        diffs[spec.name] = max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected))
    return diffs


def _inverse_2x2_symbolic(g: Any, a: Any) -> Any:
    """``torch.inverse`` of ``…×2×2`` matrices as ONNX ops: ``[[d, -b], [-c, a]] / (ad - bc)``."""
    sizes = a.type().varyingSizes() if a.type().kind() == "TensorType" else None
    if not sizes or sizes[-2:] != [2, 2]:  # never a wrong graph: any other inverse fails the export
        raise ValueError(f"only 2×2 matrix inverses can be exported to ONNX, not {sizes}")

    def const(value: Any) -> Any:
        return g.op("Constant", value_t=torch.tensor(value))

    def entry(i: int, j: int) -> Any:
        return g.op("Gather", g.op("Gather", a, const(i), axis_i=-2), const(j), axis_i=-1)

    m00, m01, m10, m11 = entry(0, 0), entry(0, 1), entry(1, 0), entry(1, 1)
    det = g.op("Sub", g.op("Mul", m00, m11), g.op("Mul", m01, m10))

    def row(x: Any, y: Any) -> Any:  # [x, y] / det as a …×1×2 row
        pair = g.op("Concat", g.op("Unsqueeze", x, const([-1])), g.op("Unsqueeze", y, const([-1])), axis_i=-1)
        return g.op("Unsqueeze", g.op("Div", pair, g.op("Unsqueeze", det, const([-1]))), const([-2]))

    return g.op("Concat", row(m11, g.op("Neg", m01)), row(g.op("Neg", m10), m00), axis_i=-2)


@contextlib.contextmanager
def _inverse_2x2(opset: int) -> Iterator[None]:
    """Register :func:`_inverse_2x2_symbolic` for the export only (the registry is process-wide)."""
    torch.onnx.register_custom_op_symbolic("aten::linalg_inv", _inverse_2x2_symbolic, opset)
    try:
        yield
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::linalg_inv", opset)
