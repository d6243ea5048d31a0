"""Errors that end a command with one clear line instead of a traceback.

The front ends catch `AigcError` at the top and print `str(err)`; the exit code says whether
the user asked for something wrong (2) or something failed while doing it (1).
"""

from __future__ import annotations


class AigcError(Exception):
    """Base for every error meant to be shown to the user as one line."""

    exit_code = 1


class UsageError(AigcError):
    """Bad flags, bad config, bad parameter values: the user can fix the input."""

    exit_code = 2


class ConfigError(UsageError):
    """A config file value is wrong; the message names the file and the key."""

    def __init__(self, path: object, key: str, reason: str) -> None:
        self.path = str(path)
        self.key = key
        self.reason = reason
        where = f"{self.path}: {key}" if key else self.path
        super().__init__(f"{where}: {reason}")


class ParamError(UsageError):
    """A generation parameter is out of range or not supported by the backend."""


class ModelError(AigcError):
    """A model file cannot be used (missing, not GGUF, corrupt, unsupported)."""


class BackendError(AigcError):
    """A backend failed at run time (load failure, server error, ...)."""


class OutputError(AigcError):
    """stdout (or an output file) cannot be written: a full disk, /dev/full, an I/O error."""
