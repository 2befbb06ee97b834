"""Options declared once: a dataclass field carries its default, its help text and its command-line
spelling. The library validates and uses the fields; the CLI builds its Typer options from them
(:func:`scorr_cli.cli.from_options.typer_command`), so a default or a help text cannot drift between
the two. A leaf module: it imports nothing from scorr, so any layer may declare options with it.
"""

from __future__ import annotations

from dataclasses import MISSING, Field, field, fields
from typing import Any

_REQUIRED = MISSING  # marks an option the command line must give


def option(default: Any, help: str, *flags: str, key: str | tuple[str, ...] | None = None,
           required: bool = False, **cli: Any) -> Any:
    """A dataclass field that is also a command-line option.

    ``flags``: its spellings (``"--batch-size", "-b"``; default ``--field-name``; a bool may give
    ``"--crop/--no-crop"``). ``key``: the dotted place(s) in a configuration tree the value overrides
    (``scorr train``). ``required``: the command line must give it (the dataclass still defaults to
    ``default`` so library callers can build it field by field). ``cli``: further Typer keywords
    (``min``, ``metavar``, ``show_default``).
    """
    return field(default=default, metadata={"help": help, "flags": flags, "key": key, "required": required,
                                            "cli": cli})


def argument(help: str, required: bool = True, **cli: Any) -> Any:
    """A dataclass field that is a positional command-line argument (default None in Python)."""
    return field(default=None, metadata={"help": help, "argument": True, "required": required, "cli": cli})


def option_fields(cls: type) -> list[Field]:
    """The fields of ``cls`` declared with :func:`option` or :func:`argument`, in declaration order."""
    return [f for f in fields(cls) if "help" in f.metadata]


def help_for(cls: type, name: str) -> str:
    return next(f.metadata["help"] for f in fields(cls) if f.name == name)
