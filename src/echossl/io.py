"""Atomic file writes: a crash or a full disk never leaves half a file under the real name.

Every output file (checkpoints, ``metrics.json``, CSVs, reports) goes through
:func:`atomic_write_bytes`: the bytes go to a temporary file in the target's
folder, are flushed to disk, and the temporary file is renamed over the target.
A failure at any point leaves the previous version of the target untouched and
removes the temporary file; the failure itself becomes one sentence
(:class:`~echossl.errors.OutputError`) naming the path.
"""

from __future__ import annotations

import errno
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from echossl.errors import OutputError

# Why a write failed, in words a user can act on; other errnos use the OS's own text.
WRITE_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "the file is larger than this system allows",
    errno.EACCES: "permission is denied",
    errno.EPERM: "permission is denied",
    errno.EROFS: "the file system is read-only",
    errno.ENOTDIR: "a file stands where a folder is needed",
    errno.EEXIST: "a file stands where a folder is needed",
    errno.EISDIR: "a folder stands where the file should go",
}


def output_error(err: OSError, path: str | Path, intact: bool = True) -> OutputError:
    """One sentence for a failed write of ``path``: what went wrong and, for atomic
    writers (``intact``), that the files written before are unchanged."""
    reason = WRITE_REASONS.get(err.errno, (err.strerror or str(err)).rstrip(".").lower())
    return OutputError(f"cannot write {path}: {reason}" + (" (files written before are unchanged)" if intact else ""))


@contextmanager
def writing(path: str | Path):
    """Turn an ``OSError`` raised inside the block into :func:`output_error` for ``path``."""
    try:
        yield
    except OSError as err:
        raise output_error(err, path) from err


def make_dirs(path: str | Path) -> Path:
    """``mkdir -p path``; a failure is one sentence naming the folder."""
    path = Path(path)
    with writing(path):
        path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``.

    Raises:
        OutputError: the folder cannot be created or the file written (disk full,
            no permission, read-only); ``path`` then still holds its old content.
    """
    path = Path(path)
    make_dirs(path.parent)
    with writing(path):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            # mkstemp creates 0600; give the file the mode a plain open() would have
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, 0o666 & ~umask)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def npz_shapes(path: str | Path) -> dict[str, tuple]:
    """``{array name: shape}`` of an ``.npz`` from the arrays' headers, reading no array data,
    so a header that claims a huge array costs nothing.

    Raises:
        DataError: not a readable NPZ (bad zip, bad CRC of a header, bad ``.npy`` header).
    """
    import zipfile

    import numpy as np

    from echossl.errors import DataError

    try:
        with zipfile.ZipFile(path) as zf:
            out = {}
            for member in zf.namelist():
                if member.endswith(".npy"):
                    with zf.open(member) as fh:
                        version = np.lib.format.read_magic(fh)
                        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                else np.lib.format.read_array_header_2_0)
                        out[member[:-4]] = tuple(read(fh)[0])
            return out
    except Exception as err:  # zipfile, zlib and numpy's header parser raise many types
        raise DataError(path, f"cannot be read as NPZ ({err.__class__.__name__})") from None
