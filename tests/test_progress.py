"""Progress on stderr: a redrawn bar on a terminal, one plain line per series otherwise."""

from __future__ import annotations

import io

from medaug.pipeline.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_a_terminal() -> None:
    stream = io.StringIO()
    progress = Progress(2, stream=stream)
    progress.advance(3, 0)
    progress.advance(0, 1)
    assert stream.getvalue().splitlines() == [
        "medaug: series 1/2 done (3 files written, 0 quarantined)",
        "medaug: series 2/2 done (0 files written, 1 quarantined)",
    ]


def test_a_bar_redrawn_in_place_on_a_terminal() -> None:
    stream = _Terminal()
    progress = Progress(4, stream=stream)
    for _ in range(4):
        progress.advance(1, 0)
    text = stream.getvalue()
    assert text.count("\r") == 4 and text.endswith("4/4 series\n")
    assert "[" + "#" * Progress.width + "]" in text
