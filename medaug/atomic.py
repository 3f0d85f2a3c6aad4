"""Write a file so that readers see either nothing or the whole file."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

#: Errors of the output storage itself (full, over quota, read-only), with what they mean.
#: A run that meets one stops and is resumed later; it never quarantines a series for it.
STORAGE_ERRORS: dict[int, str] = {
    errno.ENOSPC: "no space left on the device holding the output folder",
    errno.EDQUOT: "disk quota exceeded on the device holding the output folder",
    errno.EROFS: "the output folder is on a read-only file system",
}


class FlushError(OSError):
    """The output file system could not make written files durable (reported by ``syncfs``)."""

    problem = "the file system holding the output folder could not make the written files durable"


def _libc_syncfs() -> Callable[[int], int] | None:
    """Linux's ``syncfs(2)``, which Python's os module does not expose; None elsewhere."""
    try:
        function: Callable[[int], int] = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    return function


_SYNCFS = _libc_syncfs()


def storage_failure(exc: BaseException) -> OSError | None:
    """The storage OSError behind ``exc`` (itself, or anywhere in its cause chain), if any.

    pydicom re-raises an error met while writing an element as a new exception of
    the same type without its errno; the original is the ``__cause__``.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, FlushError) or (isinstance(seen, OSError) and seen.errno in STORAGE_ERRORS):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()


def write_atomic(path: Path, write: Callable[[BinaryIO], object], *, durable: bool = True) -> None:
    """Write ``path`` through a temporary file in the same directory, then rename it.

    Readers see either nothing or the whole file; on any error the temporary
    file is removed and nothing appears at ``path``. With ``durable`` the file
    and its directory are fsynced too, so a crash (power loss) leaves the old
    file, no file, or the complete new one.

    Parameters
    ----------
    path : Path
        Final location; its directory must exist.
    write : callable
        Called once with the open binary file to fill.
    durable : bool
        Fsync before returning. Writers of many files may pass False and call
        :func:`flush_to_disk` once before recording that the files exist.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "a.bin"
    >>> write_atomic(p, lambda f: f.write(b"abc"))
    >>> p.read_bytes()
    b'abc'
    """
    with _replacing(path, durable=durable) as fd, os.fdopen(fd, "wb", closefd=False) as f:
        write(f)


def write_bytes_atomic(path: Path, parts: Sequence[bytes], *, durable: bool = True) -> None:
    """:func:`write_atomic` for content already in memory: the parts in one ``writev``.

    No file object is made and the parts are not joined (a large one, such as
    Pixel Data, is not copied): a file costs the create, one write, the close
    and the rename (and the fsyncs with ``durable``).

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "a.bin"
    >>> write_bytes_atomic(p, [b"ab", b"c"])
    >>> p.read_bytes()
    b'abc'
    """
    with _replacing(path, durable=durable) as fd:
        views = [memoryview(part) for part in parts if len(part)]
        while views:
            written = os.writev(fd, views) if len(views) > 1 else os.write(fd, views[0])
            # A regular file takes all unless the device fills up (the next call then says so).
            while views and written >= len(views[0]):
                written -= len(views.pop(0))
            if written:
                views[0] = views[0][written:]


@contextlib.contextmanager
def _replacing(path: Path, *, durable: bool) -> Iterator[int]:
    """A new temporary file beside ``path`` (its descriptor), renamed to ``path`` once filled."""
    directory = path.parent
    # Same directory: os.replace is only atomic within one filesystem.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".", suffix=".tmp")
    try:
        try:
            # mkstemp makes the file private (0600); outputs get the mode an ordinary
            # open() would give them. Secrets (keys) are written elsewhere, with 0600.
            os.fchmod(fd, _FILE_MODE)
            yield fd
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_directory(directory)


def flush_to_disk(directory: Path) -> None:
    """Make every file written so far under ``directory``'s file system durable, in one call.

    One flush for a whole series of files costs far less than an fsync per
    file and per directory, and gives the same guarantee once it returns. On
    Linux only the file system holding ``directory`` is flushed (``syncfs``),
    so a run does not stall on other disks of a shared host; elsewhere the
    whole machine is (``sync``).

    Raises
    ------
    FlushError
        When the file system reports that earlier writes failed (``EIO``,
        ``ENOSPC``): the files may not be on disk.
    """
    if _SYNCFS is None:
        os.sync()
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        if _SYNCFS(fd) != 0:
            code = ctypes.get_errno()
            raise FlushError(code, os.strerror(code))
    finally:
        os.close(fd)


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
