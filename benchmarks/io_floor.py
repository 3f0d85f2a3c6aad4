"""The I/O floor of a run: read every source file, write as many files as the run writes.

Two floors, each of which nothing that reads and writes DICOM files can beat:

- ``pydicom``: :func:`pydicom.dcmread` of every source file, then ``save_as``
  of that dataset once per output copy (the de-identified original and each
  variant), with no processing in between;
- ``raw``: the bytes of every source file read, then written once per copy.

Each source file thus becomes ``copies`` files of its own size, as many as
``medaug run`` writes for it. Like ``medaug run``, the floors flush each
series to disk once (:func:`medaug.atomic.flush_to_disk`) before the next.
``--workers N`` spreads the series over N processes, as the run's pool does::

    python -m benchmarks.io_floor pydicom ARCHIVE OUT --copies 5 --workers 2

It prints one JSON line: files read and files written.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

from benchmarks.peer_composite import series_folders

KINDS = ("pydicom", "raw")


def copy_series(folder: Path, *, kind: str, out: Path, copies: int) -> tuple[int, int]:
    """Copy one series folder ``copies`` times under ``out``; return the files read and written."""
    import pydicom

    from medaug.atomic import flush_to_disk

    files = sorted(folder.glob("*.dcm"))
    targets = [out / f"c{c}" for c in range(copies)]
    for target in targets:
        target.mkdir(parents=True)
    for path in files:
        if kind == "raw":
            data = path.read_bytes()
            for target in targets:
                (target / path.name).write_bytes(data)
        else:
            ds = pydicom.dcmread(path)
            for target in targets:
                ds.save_as(target / path.name)
    flush_to_disk(out)
    return len(files), len(files) * copies


def run(kind: str, archive: Path, out: Path, *, copies: int, workers: int = 1) -> dict[str, int]:
    """Copy every series of ``archive`` ``copies`` times into ``out``; return the counts."""
    folders = series_folders(archive)
    jobs = [(folder, out / f"{n:04d}") for n, folder in enumerate(folders)]
    if workers == 1:
        counts = [copy_series(folder, kind=kind, out=dest, copies=copies) for folder, dest in jobs]
    else:
        with ProcessPoolExecutor(workers) as pool:
            counts = list(pool.map(partial(_copy_job, kind=kind, copies=copies), jobs))
    return {
        "files_read": sum(c[0] for c in counts),
        "files_written": sum(c[1] for c in counts),
    }


def _copy_job(job: tuple[Path, Path], *, kind: str, copies: int) -> tuple[int, int]:
    return copy_series(job[0], kind=kind, out=job[1], copies=copies)


def main(argv: list[str] | None = None) -> int:
    """Run one floor and print its counts as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("archive", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--copies", type=int, required=True, help="files written per source file")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.kind, args.archive, args.out, copies=args.copies, workers=args.workers)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
