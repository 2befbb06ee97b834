"""Typer commands built from option dataclasses (:mod:`scorr_cli.options`), as LivePortrait builds its
CLI from typed dataclasses: each option is declared once, in the library, with its help text."""

from __future__ import annotations

import inspect
import typing
from typing import Any, Callable

import typer

from scorr_cli.options import option_fields


def typer_parameters(*classes: type) -> tuple[list[inspect.Parameter], dict[str, Any]]:
    """One ``inspect.Parameter`` (default: a ``typer.Option``/``typer.Argument``) per declared field.

    Order (positional arguments, and --help): arguments, required options, the class's own options,
    then those it inherits (a command's own options first, the shared ones after)."""
    params: list[inspect.Parameter] = []
    hints: dict[str, Any] = {}
    for cls in classes:
        types = typing.get_type_hints(cls)
        own = set(cls.__dict__.get("__annotations__", {}))
        order = lambda f: (not f.metadata.get("argument"), not f.metadata.get("required"), f.name not in own)  # noqa: E731
        for f in sorted(option_fields(cls), key=order):
            meta = f.metadata
            if meta.get("argument"):
                info = typer.Argument(... if meta["required"] else None, help=meta["help"], show_default=False,
                                      **meta["cli"])
            else:
                flags = meta["flags"] or ("--" + f.name.replace("_", "-"),)
                default = ... if meta["required"] else f.default
                cli = {"show_default": False, **meta["cli"]} if meta["required"] else meta["cli"]
                info = typer.Option(default, *flags, help=meta["help"], **cli)
            params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=info,
                                            annotation=types[f.name]))
            hints[f.name] = types[f.name]
    return params, hints


def typer_command(*classes: type, run: Callable[[dict[str, Any]], Any], doc: str | None = None) -> Callable[..., Any]:
    """A function Typer can register whose parameters are the options of ``classes``; it calls
    ``run(values)`` with every option by field name."""
    params, hints = typer_parameters(*classes)

    def command(**values: Any) -> Any:
        return run(values)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = hints
    command.__doc__ = doc
    return command
