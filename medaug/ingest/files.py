"""Open an archive file: the very file the walk found, or a refusal with a reason code.

The walk checks each entry once (a regular file, a link resolving inside the
archive); the header and pixel passes open the path again, later. In between,
the path may have been replaced: by a link to a file outside the archive, by a
FIFO (whose ``open`` would block the run), or by another file. Every open of an
archive file goes through :func:`open_file`, which opens without blocking and
without acquiring a terminal, then compares the opened file's device and inode
with what the walk saw *before a byte is read*. A file outside the archive can
therefore be opened, but is never read.

The opened file has no name: pydicom reads a deferred value (Pixel Data) back
by reopening a file by its name, which would bypass the check. A dataset read
through :func:`open_file` reads its deferred values through the same descriptor
while it is open (:func:`medaug.ingest.headers.opened_dataset`), and cannot read
them at all once it is closed.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

from medaug.errors import InputError
from medaug.ingest import reasons

#: ``(st_dev, st_ino)`` of a file as the walk found it.
FileId = tuple[int, int]

_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)


def file_id(st: os.stat_result) -> FileId:
    """The identity :func:`open_file` compares, from a stat result."""
    return st.st_dev, st.st_ino


def open_file(path: Path, expected: FileId | None = None) -> io.FileIO:
    """Open ``path`` for reading, refusing anything but the regular file ``expected`` names.

    Parameters
    ----------
    path : Path
        The file, as the walk listed it (links inside the archive are followed).
    expected : (int, int), optional
        Its :func:`file_id` at the walk; any regular file is accepted when omitted.

    Raises
    ------
    InputError
        ``not-a-regular-file`` when the path now leads to a FIFO, socket or
        device; ``changed-during-run`` when it leads to another file than the
        walk found (a link swapped in, the file replaced); ``unreadable`` when
        it cannot be opened. ``OSError`` never escapes.
    """
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        raise InputError(reasons.UNREADABLE, f"{type(exc).__name__} while opening") from None
    try:
        try:
            st = os.fstat(fd)
        except OSError as exc:
            raise InputError(reasons.UNREADABLE, f"{type(exc).__name__} while opening") from None
        if not stat.S_ISREG(st.st_mode):
            raise InputError(reasons.NOT_A_REGULAR_FILE, "the path now leads to a FIFO, socket or device file")
        if expected is not None and file_id(st) != expected:
            raise InputError(reasons.CHANGED_DURING_RUN, "the path leads to another file than the walk found")
        os.set_blocking(fd, True)
        fh = io.FileIO(fd, "rb", closefd=True)
        # No name (a FileIO opened on a descriptor is named by its number): nothing may reopen
        # the path unchecked, and no library message can quote it.
        fh.name = ""
        return fh
    except BaseException:
        os.close(fd)
        raise


def confirm_unchanged(path: Path, expected: FileId | None) -> None:
    """Check that ``path`` still leads to the file ``expected`` names, after it has been read.

    A file read through a held descriptor is the file the walk found even when its
    path was replaced meanwhile; the replacement means the archive changed under
    the run, and what was read is no longer what the archive holds.

    Raises
    ------
    InputError
        ``changed-during-run`` when the path now leads to another file or to none.
    """
    if expected is None:
        return
    try:
        st = os.stat(path)
    except OSError:
        raise InputError(reasons.CHANGED_DURING_RUN, "the path no longer leads to the file that was read") from None
    if not stat.S_ISREG(st.st_mode) or file_id(st) != expected:
        raise InputError(reasons.CHANGED_DURING_RUN, "the path leads to another file than the one read")
