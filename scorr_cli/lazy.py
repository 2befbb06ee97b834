"""Package namespaces that import their submodules on first use (PEP 562).

``scorr --help`` and every command's option parsing must not pay for torch, OpenCV or dlib: a
package whose ``__init__`` re-exports names from heavy submodules declares them here instead, and a
name's submodule is imported when the name is first used (``from scorr_cli.faces import warp_crop``
works as before).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, names: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` exporting each name from its submodule (name -> module)."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value  # later lookups are plain attribute reads
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
