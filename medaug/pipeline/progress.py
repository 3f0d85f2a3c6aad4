"""Progress on stderr: a tqdm bar on a terminal, plain lines otherwise.

Both show series done out of the total, elapsed time, rate and an estimate of the
time left; on ``--resume`` the series kept from the interrupted run are counted
apart. Only counts are ever shown, never a file name or any value from the archive.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO


def _clock_text(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Counts finished series out of a total.

    Parameters
    ----------
    total : int
        Number of series in the job.
    stream : text stream, optional
        Where to draw; ``sys.stderr`` by default.
    clock : callable, optional
        Seconds since an arbitrary origin (``time.monotonic``); tests pass their own.
    """

    def __init__(self, total: int, *, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.done = 0
        self.kept = 0
        self.written = 0
        self.quarantined = 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._clock = clock
        self._start = clock()
        self._bar: Any = None
        if self.tty:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="series", file=self.stream, dynamic_ncols=True, leave=True)

    def advance(self, files_written: int, files_quarantined: int, *, kept: bool = False) -> None:
        """Record one finished series (``kept``: finished by an interrupted run) and redraw."""
        self.done += 1
        self.kept += kept
        self.written += files_written
        self.quarantined += files_quarantined
        if self._bar is not None:
            postfix = f"{self.written} written, {self.quarantined} quarantined"
            if self.kept:
                postfix += f", {self.kept} kept"
            self._bar.set_postfix_str(postfix, refresh=False)
            self._bar.update(1)
            if self.done >= self.total:
                self._bar.close()
            return
        self.stream.write(
            f"medaug: series {self.done}/{self.total} {'kept from the interrupted run' if kept else 'done'} "
            f"({files_written} files written, {files_quarantined} quarantined; {self._timing()})\n"
        )
        self.stream.flush()

    def _timing(self) -> str:
        elapsed = self._clock() - self._start
        made = self.done - self.kept  # kept series cost nothing: they must not inflate the rate
        if made <= 0 or elapsed <= 0:
            return f"{_clock_text(elapsed)} elapsed"
        per_series = elapsed / made
        left = per_series * (self.total - self.done)
        return f"{_clock_text(elapsed)} elapsed, {60.0 / per_series:.1f} series/min, ~{_clock_text(left)} left"

    def close(self) -> None:
        """End the bar (if the run stopped before the total)."""
        if self._bar is not None:
            self._bar.close()
