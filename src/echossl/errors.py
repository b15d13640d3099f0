"""Errors that the CLI turns into one clear sentence and exit code 1.

Every reader raises :class:`DataError` for bad input, naming the file and, where
there is one, the row, so that a user can fix the data without reading a traceback.
"""

from __future__ import annotations

from pathlib import Path


class EchosslError(Exception):
    """Base class for errors that are the user's input, not a bug (exit code 1)."""


class DataError(EchosslError):
    """Bad or unreadable input data.

    Args:
        path: the offending file.
        message: what is wrong, as a sentence fragment (no trailing full stop needed).
        row: 1-based data row in a CSV (header excluded), when there is one.
    """

    def __init__(self, path: str | Path, message: str, row: int | None = None):
        self.path = Path(path)
        self.row = row
        self.message = _one_line(message).rstrip(".")
        where = _one_line(str(self.path)) + (f", row {row}" if row is not None else "")
        super().__init__(f"{where}: {self.message}.")


def _one_line(text: str) -> str:
    """``text`` with control characters escaped (newline as ``\\n``): a hostile file name or
    cell can neither split the one-line error nor send terminal escape codes."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


class CheckpointError(EchosslError):
    """A checkpoint that is missing, unsafe, or made for another task."""


class ConfigError(EchosslError):
    """An unknown preset, a malformed config file, or an invalid option value."""


class OutputError(EchosslError):
    """An output file or folder cannot be written: a full disk, no permission, a read-only file system."""
