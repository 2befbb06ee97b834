"""User-facing errors: each carries a one-line message and an exit code.

Library code raises these; the CLI prints ``scorr: error: <message>`` and exits with ``exit_code``
(a traceback only with ``--debug``).
"""

from __future__ import annotations


class ScorrError(Exception):
    """Base class of every error a user can cause and fix."""

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # one line, always
        return " ".join(self.message.split())


class InputError(ScorrError):
    """A file the user named is missing, unreadable, corrupt or of the wrong kind."""

    exit_code = 2


class OutputExistsError(ScorrError):
    """An output would overwrite something the user has; ``--force`` allows it."""

    exit_code = 3


class MissingWeightsError(ScorrError):
    """Third-party or scorr weights needed for an operation are not on this machine."""

    exit_code = 4


class CheckpointError(ScorrError):
    """A checkpoint is foreign, truncated, unsafe or does not match the model."""

    exit_code = 5


class NoFaceError(ScorrError):
    """No face was found where one is needed."""

    exit_code = 6
