"""Errors a user can act on: the ``attnkit`` command prints them as one line, without a traceback.

Every exception here derives from :class:`UserError`. Its message is one line that names the offending
file, key or value and says what to do. The command-line entry points print ``attnkit: error: <message>``
and exit non-zero for these; ``--debug`` (or ``ATTNKIT_DEBUG=1``) shows the traceback as well.

The subclasses also derive from the built-in type a caller would expect (``FileNotFoundError``,
``ValueError``), so ``except FileNotFoundError`` keeps working.

This module imports nothing but the standard library, so any module may raise these cheaply.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "CheckpointNotFoundError",
    "ConfigError",
    "DataFormatError",
    "DataNotFoundError",
    "UserError",
]


class UserError(Exception):
    """A mistake in the user's input or environment, not a bug: its message names the file/key and the fix."""


class DataNotFoundError(UserError, FileNotFoundError):
    """A data file or folder is missing (and could not be downloaded)."""


class DataFormatError(UserError, ValueError):
    """A data file exists but cannot be read as the expected format."""


class ConfigError(UserError, ValueError):
    """A config file is malformed (YAML syntax) or holds an invalid value."""


class CheckpointError(UserError, ValueError):
    """A checkpoint file cannot be read or does not hold what the loader expects."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint path does not exist."""
