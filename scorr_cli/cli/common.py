"""Shared CLI plumbing: error reporting and the global ``--debug`` switch."""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import typer

from scorr_cli.errors import ScorrError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class _State:
    debug: bool = bool(os.environ.get("SCORR_DEBUG"))


STATE = _State()


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"scorr: error: {' '.join(message.split())}", err=True)
    return typer.Exit(code)


def handle_errors(fn: F) -> F:
    """Turn library errors into one-line messages and exit codes (tracebacks only with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ScorrError as e:
            if STATE.debug:
                raise
            raise fail(str(e), e.exit_code) from None
        except KeyboardInterrupt:
            if STATE.debug:
                raise
            raise fail("interrupted", 130) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as e:  # an unexpected bug: still one line, but say how to see more
            if STATE.debug:
                raise
            print(f"scorr: internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)",
                  file=sys.stderr)
            raise typer.Exit(70) from None

    return wrapper  # type: ignore[return-value]
