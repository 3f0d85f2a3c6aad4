"""Progress on stderr: a bar on a terminal, plain lines otherwise.

Only counts are ever shown, never a file name or any value from the archive.
"""

from __future__ import annotations

import sys
from typing import TextIO


class Progress:
    """Counts finished series out of a total.

    Parameters
    ----------
    total : int
        Number of series in the job.
    stream : text stream, optional
        Where to draw; ``sys.stderr`` by default.
    """

    width = 30

    def __init__(self, total: int, *, stream: TextIO | None = None) -> None:
        self.total = total
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def advance(self, files_written: int, files_quarantined: int) -> None:
        """Record one finished series and redraw."""
        self.done += 1
        if self.tty:
            filled = self.width * self.done // max(self.total, 1)
            bar = "#" * filled + "." * (self.width - filled)
            self.stream.write(f"\r[{bar}] {self.done}/{self.total} series")
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(
                f"medaug: series {self.done}/{self.total} done "
                f"({files_written} files written, {files_quarantined} quarantined)\n"
            )
        self.stream.flush()
