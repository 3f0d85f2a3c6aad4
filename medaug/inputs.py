"""Read the small files an operator names on the command line: keys, policies, approvals.

Each must be a regular file, no larger than its kind allows. A FIFO, a device or
a folder given where a file is expected is refused at once (opening a FIFO for
reading would block until someone writes to it), and the refusal names the
argument, never the file's content.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from medaug.errors import UsageError


def read_regular_file(path: Path, *, what: str, max_bytes: int, shown: str | None = None) -> bytes:
    """The bytes of ``path``, which must be a regular file of at most ``max_bytes``.

    Parameters
    ----------
    path : Path
        The file named by the operator.
    what : str
        What the file is, for messages (``"key file"``, ``"policy file"``).
    max_bytes : int
        Largest size accepted.
    shown : str, optional
        How messages name the file (the path by default).

    Raises
    ------
    UsageError
        Missing, not a regular file, unreadable or too large.

    Examples
    --------
    >>> read_regular_file(Path("/dev/null"), what="key file", max_bytes=10)
    Traceback (most recent call last):
    ...
    medaug.errors.UsageError: key file /dev/null cannot be read: it is not a regular file
    """
    name = str(path) if shown is None else shown
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; the type is checked next.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise UsageError(f"{what} {name} not found") from None
    except IsADirectoryError:
        raise UsageError(f"{what} {name} cannot be read: it is not a regular file") from None
    except OSError as exc:
        raise UsageError(f"{what} {name} cannot be read ({errno.errorcode.get(exc.errno or 0, 'error')})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{what} {name} cannot be read: it is not a regular file")
        if info.st_size > max_bytes:
            raise UsageError(f"{what} {name} is larger than {_size(max_bytes)}")
        chunks = []
        size = 0
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise UsageError(f"{what} {name} is larger than {_size(max_bytes)}")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise UsageError(f"{what} {name} cannot be read ({errno.errorcode.get(exc.errno or 0, 'error')})") from None
    finally:
        os.close(fd)


def others_can_read(path: Path) -> bool:
    """Whether users other than the owner may read ``path`` (group or world read bits)."""
    try:
        return bool(os.stat(path).st_mode & (stat.S_IRGRP | stat.S_IROTH))
    except OSError:
        return False


def _size(n: int) -> str:
    return f"{n // 1024} KiB" if n % 1024 == 0 else f"{n} bytes"
