"""Progress on stderr: a bar on a terminal, one plain line per series otherwise, with rate and time left."""

from __future__ import annotations

import io
from collections.abc import Iterator

from medaug.pipeline.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _ticks(*values: float) -> Iterator[float]:
    yield from values


def test_plain_lines_with_rate_and_time_left_when_not_a_terminal() -> None:
    stream = io.StringIO()
    clock = _ticks(0.0, 30.0, 60.0)
    progress = Progress(3, stream=stream, clock=lambda: next(clock))
    progress.advance(3, 0)
    progress.advance(0, 1)
    assert stream.getvalue().splitlines() == [
        "medaug: series 1/3 done (3 files written, 0 quarantined; 0:00:30 elapsed, 2.0 series/min, ~0:01:00 left)",
        "medaug: series 2/3 done (0 files written, 1 quarantined; 0:01:00 elapsed, 2.0 series/min, ~0:00:30 left)",
    ]


def test_series_kept_on_resume_are_said_and_do_not_count_in_the_rate() -> None:
    stream = io.StringIO()
    clock = _ticks(0.0, 0.0, 60.0)
    progress = Progress(2, stream=stream, clock=lambda: next(clock))
    progress.advance(5, 0, kept=True)
    progress.advance(5, 0)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("medaug: series 1/2 kept from the interrupted run (5 files written")
    assert lines[1].endswith("0:01:00 elapsed, 1.0 series/min, ~0:00:00 left)")


def test_a_bar_with_counts_on_a_terminal() -> None:
    stream = _Terminal()
    progress = Progress(4, stream=stream)
    for _ in range(4):
        progress.advance(1, 0)
    text = stream.getvalue()
    assert "4/4" in text and "4 written, 0 quarantined" in text and "series" in text
    assert "\r" in text
