"""ONNX export of a checkpoint (``scorr export``) and the onnxruntime engine behind ``--backend onnx``.

Above ``core/`` (which stays pure torch): :mod:`.graphs` cuts the model into the three graphs the
engine runs, :mod:`.exporter` writes them with a :mod:`.manifest`, :mod:`.runtime` runs them. onnx and
onnxruntime are an optional extra (``pip install 'scorr[onnx]'``), imported only when used; names are
imported from their submodule on first use (``scorr_cli.lazy``), so the CLI can read
:mod:`.options` without loading torch.
"""

from scorr_cli.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("cache_root", "cached_export", "export_onnx", "max_abs_differences"), "exporter"),
    **dict.fromkeys(("Manifest",), "manifest"),
    **dict.fromkeys(("ExportOptions",), "options"),
    **dict.fromkeys(("OnnxEngine", "load_onnx_engine"), "runtime"),
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
