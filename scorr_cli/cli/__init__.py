"""The ``scorr`` command line: a thin Typer layer over the library packages.

Every subcommand lives in its own module and only parses options, calls one library function and
prints the result. Errors a user can fix surface as one line on stderr with a non-zero exit code.
"""

from __future__ import annotations

import typer

from scorr_cli import __version__, runtime
from scorr_cli.cli import common

app = typer.Typer(
    name="scorr",
    help="Animate a portrait with the motion of a talking-head video (MRFA).",
    epilog=f"Environment: {runtime.ALLOCATOR_ENV}=system leaves the C library's memory allocator alone "
           "(by default scorr keeps freed memory for reuse: faster on a CPU, ~15% more peak memory); "
           "SCORR_DEBUG=1 is --debug.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"scorr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    common.STATE.debug = debug
    runtime.keep_freed_memory()  # every command makes and frees large tensors per frame or step
    runtime.sigterm_as_interrupt()  # kill / a scheduler's stop: cleaned up like Ctrl-C, exit 130


def _register() -> None:
    for name in ("animate", "crop", "batch", "train", "evaluate", "weights", "export"):
        module = __import__(f"scorr_cli.cli.{name}", fromlist=["register"])
        module.register(app)


_register()


def main() -> None:
    app()
