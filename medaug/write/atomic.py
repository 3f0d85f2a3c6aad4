"""Write a file so that readers see either nothing or the whole file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()


def write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` through a temporary file in the same directory, then rename it.

    The temporary file is flushed and fsynced before :func:`os.replace`, so a
    crash leaves either the old file, no file, or the complete new one; on any
    error the temporary file is removed and nothing appears at ``path``.

    Parameters
    ----------
    path : Path
        Final location; its directory must exist.
    write : callable
        Called once with the open binary file to fill.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "a.bin"
    >>> write_atomic(p, lambda f: f.write(b"abc"))
    >>> p.read_bytes()
    b'abc'
    """
    directory = path.parent
    # Same directory: os.replace is only atomic within one filesystem.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".", suffix=".tmp")
    try:
        # mkstemp makes the file private (0600); outputs get the mode an ordinary
        # open() would give them. Secrets (keys) are written elsewhere, with 0600.
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (not supported on every platform)."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(dfd)
    finally:
        os.close(dfd)
