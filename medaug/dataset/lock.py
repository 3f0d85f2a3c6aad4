"""One run at a time holds an output folder: an exclusive lock on the folder itself.

The lock is ``flock(2)`` on the folder's own descriptor, so nothing is added to
the dataset and a run that dies (even by kill -9) releases it with its process.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medaug.errors import UsageError


@contextmanager
def hold(outdir: Path) -> Iterator[None]:
    """Hold the output folder for the duration of the block.

    Raises
    ------
    UsageError
        When another process (a run, or a ``--resume`` of it) holds the folder.
    """
    fd = os.open(outdir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(
                "another medaug run is writing into the output folder; wait for it to end "
                "(or stop it), then run again with --resume"
            ) from None
        yield
    finally:
        os.close(fd)
