"""What the benchmarks' command lines share: options, a scratch folder, the command and machine lines, the page.

Each ``benchmarks/bench_*.py`` measures its own thing; this module owns what
they all do around it, so the pages and the options read alike:

- :func:`add_common_arguments`: ``--root`` (where the scratch folder goes),
  ``--report`` (the generated page, under ``docs/bench/``) and, for a
  benchmark that repeats its measures, ``--rounds``;
- :func:`scratch_folder`: a fresh temporary folder, removed afterwards however
  the benchmark ends;
- :func:`command_line`, :func:`machine_line` and :func:`page_head`: the first
  lines of a page;
- :func:`write_page`: the page written, its folder made.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

#: The repository's root (benchmarks run from it and write their pages below it).
ROOT = Path(__file__).resolve().parent.parent
#: Where the generated pages go.
PAGES = ROOT / "docs" / "bench"


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_common_arguments(parser: argparse.ArgumentParser, *, page: str, rounds: int | None = None,
                         rounds_help: str = "measure in turn this many times") -> None:
    """Add ``--root``, ``--report`` (default ``docs/bench/<page>``) and, with a default count, ``--rounds``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The benchmark's parser.
    page : str
        File name of the generated page under ``docs/bench/``.
    rounds : int, optional
        Default number of rounds; without it the benchmark takes no ``--rounds``.
    rounds_help : str
        What a round is, for ``--help``.
    """
    if rounds is not None:
        parser.add_argument("--rounds", type=_at_least_one, default=rounds, help=f"{rounds_help} (default {rounds})")
    parser.add_argument("--root", type=Path, help="scratch folder (default: a temporary one, removed after)")
    parser.add_argument("--report", type=Path, default=PAGES / page)


@contextmanager
def scratch_folder(name: str, root: Path | None = None) -> Iterator[Path]:
    """A new folder ``medaug-<name>-*`` (under ``root`` when given), removed with all it holds on exit."""
    folder = Path(tempfile.mkdtemp(prefix=f"medaug-{name}-", dir=root))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def command_line(module: str, argv: Sequence[str] | None = None) -> str:
    """The command a page names: ``python -m benchmarks.<module>`` and the arguments it ran with.

    Examples
    --------
    >>> command_line("bench_audit", ["--rounds", "3"])
    'python -m benchmarks.bench_audit --rounds 3'
    >>> command_line("bench_audit", [])
    'python -m benchmarks.bench_audit'
    """
    words = list(argv if argv is not None else sys.argv[1:])
    return " ".join([f"python -m benchmarks.{module}", *words])


def machine_line(*, shared: bool = False) -> str:
    """``Machine: …``: architecture, cores (``shared`` when others run beside), Python and system."""
    cores = f"{os.cpu_count()} cores" + (" (shared)" if shared else "")
    return (f"Machine: {platform.machine()}, {cores}, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}.")


def page_head(title: str, command: str, *, shared: bool = False) -> list[str]:
    """A page's first lines: its title, the command that made it and the machine it ran on."""
    return [f"# {title}", "", f"Command: `{command}`  ", machine_line(shared=shared)]


def write_page(path: Path, lines: Iterable[str]) -> None:
    """Write a generated page (one string a line), making its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
