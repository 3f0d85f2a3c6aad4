"""Benchmark: writing a series' files with pydicom's ``dcmwrite`` and with medaug's template writer.

Run ``python -m benchmarks.bench_write`` (default: one CT series of 64 slices of
512 x 512, de-identified under the bundled CT policy, written as a run writes it:
the original and 4 derived variants, 320 files). ``--slices``, ``--size`` and
``--variants`` make a smaller trial; ``--rounds N`` (default 5) measures the
writers in turn N times, so a drift in the machine's speed touches both alike,
and the report gives the median of the rounds and each round's ratio.

Two measures per writer, both single-threaded in this process:

- ``encode``: the output datasets of the whole series, built once by
  :func:`medaug.write.series.write_series` and kept (a fresh deep copy for
  each round, not timed), written to files one after another (open, encode,
  close; no fsync). This is the writer alone: files per second.
- ``write_series``: :func:`medaug.write.series.write_series` end to end for
  the original and every variant (header building, stored values, atomic
  files), one writer for the whole series as a run uses it. The variants'
  pixel volumes are made before the clock starts: they are not write work.

Both writers' files are compared (by SHA-256) in every round: the two
measures are of the same work. Times are this process's CPU time (user and
system, ``time.process_time``) by default, as the machine may be shared;
``--clock wall`` takes elapsed time instead. Results go to ``docs/bench/write.md`` (and
JSON on stdout). The target (issue 17) is the template writer at ≥ 2× dcmwrite's
files per second.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import hashlib
import json
import platform
import shutil
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from benchmarks.harness import ROOT, add_common_arguments, command_line, scratch_folder, write_page

POLICY = ROOT / "policies" / "ct-chest-conservative.yaml"
TARGET = 2.0
WRITERS = ("dcmwrite", "template")
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


class _Keep:
    """A file writer that keeps a copy of each dataset it is given and writes nothing."""

    def __init__(self) -> None:
        self.datasets: list[Any] = []

    def write(self, fp: BinaryIO, ds: Any) -> None:
        self.datasets.append(copy.deepcopy(ds))

    def encode(self, ds: Any) -> list[bytes]:
        self.write(None, ds)  # type: ignore[arg-type]
        return []


def _series(archive: Path) -> Any:
    """The benchmark series, read and de-identified as a run does."""
    from medaug.deid.keys import Key
    from medaug.deid.series import deidentify_series
    from medaug.ingest import load_series, scan_archive
    from medaug.policy.load import load_policy

    scan = scan_archive(archive)
    loaded = load_series(scan.series[0])
    return deidentify_series(loaded.image, load_policy(POLICY).deid, Key(bytes(range(32))))


def _volumes(image: Any, variants: int) -> list[Any]:
    """The original's pixels and ``variants`` others (same header work), made once: not write work."""
    import numpy as np

    return [image.data, *(np.roll(image.data, v, axis=2) for v in range(1, variants + 1))]


def _write_all(image: Any, outdir: Path, writer: Any, volumes: list[Any]) -> list[Path]:
    """The original and the derived variants (one per further volume) through one writer, as a run writes them."""
    from medaug.write.derivation import DEIDENTIFYING_EQUIPMENT, PROCESSING_EQUIPMENT, add_contributing_equipment
    from medaug.write.series import write_series

    def mark(ds: Any, _k: int) -> None:
        add_contributing_equipment(ds, DEIDENTIFYING_EQUIPMENT)
        add_contributing_equipment(ds, PROCESSING_EQUIPMENT)

    n = image.geometry.shape[0]
    paths: list[Path] = []
    for v, data in enumerate(volumes):
        result = write_series(
            replace(image, data=data), outdir / f"v{v}", series_uid=f"1.2.826.0.1.3680043.10.543.5.{v}",
            sop_instance_uids=[f"1.2.826.0.1.3680043.10.543.4.{v}.{k}" for k in range(n)],
            frame_of_reference_uid=f"1.2.826.0.1.3680043.10.543.3.{v}" if v else None,
            derived=bool(v), derivation_description=f"medaug variant {v}" if v else None,
            extra=mark, durable=False, writer=writer,
        )
        paths.extend(result.paths)
    return paths


def _encode(datasets: list[Any], outdir: Path, kind: str, clock: Any) -> tuple[float, list[Path]]:
    """Seconds to write ``datasets`` to files with a fresh writer of ``kind``."""
    from medaug.write.template import file_writer

    outdir.mkdir(parents=True)
    paths = [outdir / f"{k + 1}.dcm" for k in range(len(datasets))]
    writer = file_writer(kind)  # type: ignore[arg-type]
    with _no_gc():
        t0 = clock()
        for ds, path in zip(datasets, paths):
            with open(path, "wb") as f:
                writer.write(f, ds)
        return clock() - t0, paths


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Collect, then no cyclic collection while timed (as timeit): the datasets this benchmark
    keeps made a full collection land in the same round of every run, in whichever writer ran."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _digests(paths: list[Path], folder: Path) -> list[str]:
    """The files' SHA-256, then the folder removed: outputs left on disk until the round's end
    became gigabytes of dirty pages whose writeback landed in whichever writer ran in round 4 or 5."""
    digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    shutil.rmtree(folder)
    return digests


def measure(
    scratch: Path, *, slices: int, size: int, variants: int, rounds: int, clock: str = "cpu"
) -> dict[str, Any]:
    """Generate the series, then time both writers ``rounds`` times in turn."""
    from benchmarks.bench_throughput import generate_archive
    from medaug.write.template import file_writer

    timer = CLOCKS[clock]
    archive = scratch / "archive"
    generate_archive(archive, series=1, slices=slices, size=size)
    image = _series(archive)
    volumes = _volumes(image, variants)
    keep = _Keep()
    _write_all(image, scratch / "kept", keep, volumes)
    files = len(keep.datasets)
    # Warm-up: numba kernels loaded, pydicom's lazy imports done.
    _write_all(image, scratch / "warm", file_writer("template"), volumes)
    per_round: list[dict[str, Any]] = []
    for r in range(rounds):
        times: dict[str, dict[str, float]] = {}
        written: dict[str, dict[str, list[str]]] = {}
        # Each writer goes first in every other round: neither always meets the other's writeback.
        for kind in WRITERS if r % 2 == 0 else WRITERS[::-1]:
            datasets = [copy.deepcopy(ds) for ds in keep.datasets]
            seconds, paths = _encode(datasets, scratch / f"r{r}-{kind}-encode", kind, timer)
            encoded = _digests(paths, scratch / f"r{r}-{kind}-encode")
            with _no_gc():
                t0 = timer()
                series_paths = _write_all(image, scratch / f"r{r}-{kind}-series", file_writer(kind), volumes)  # type: ignore[arg-type]
                times[kind] = {"encode": seconds, "write_series": timer() - t0}
            written[kind] = {"encode": encoded, "write_series": _digests(series_paths, scratch / f"r{r}-{kind}-series")}
        if written["dcmwrite"] != written["template"]:
            raise RuntimeError("the two writers wrote different bytes")
        per_round.append({
            kind: {m: files / times[kind][m] for m in ("encode", "write_series")} for kind in WRITERS
        })
        print(f"round {r + 1}: {json.dumps(per_round[-1])}", file=sys.stderr)
    medians = {
        kind: {m: statistics.median(p[kind][m] for p in per_round) for m in ("encode", "write_series")}
        for kind in WRITERS
    }
    ratios = {
        m: [p["template"][m] / p["dcmwrite"][m] for p in per_round] for m in ("encode", "write_series")
    }
    return {
        "series": {"slices": slices, "size": size, "variants": variants, "files": files},
        "clock": clock,
        "rounds": per_round,
        "files_per_second": medians,
        "ratio": {m: medians["template"][m] / medians["dcmwrite"][m] for m in ratios},
        "round_ratios": ratios,
    }


def write_report(result: dict[str, Any], path: Path, command: str) -> None:
    """The generated page: the command, the machine, medians and ratios."""
    import numpy
    import pydicom

    s = result["series"]
    lines = [
        "# Write benchmark: pydicom's dcmwrite against the template writer",
        "",
        "Generated by `benchmarks/bench_write.py`; do not edit.",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, numpy {numpy.__version__}, "
        f"pydicom {pydicom.__version__}; one thread.",
        "",
        f"Series: {s['slices']} CT slices of {s['size']}×{s['size']} (de-identified under the CT policy), "
        f"the original and {s['variants']} variants: {s['files']} files. Median of {len(result['rounds'])} "
        "rounds, the writers in turn; both writers' files compared (SHA-256) in every round. "
        f"Times: {'CPU time of the process' if result.get('clock', 'cpu') == 'cpu' else 'elapsed time'}.",
        "",
        "| measure | dcmwrite files/s | template files/s | ratio | ratios by round |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for m in ("encode", "write_series"):
        fps = result["files_per_second"]
        rounds = ", ".join(f"{x:.2f}" for x in result["round_ratios"][m])
        lines.append(f"| {m} | {fps['dcmwrite'][m]:.0f} | {fps['template'][m]:.0f} | "
                     f"{result['ratio'][m]:.2f}× | {rounds} |")
    lines += [
        "",
        f"Target: template ≥ {TARGET:.0f}× dcmwrite's files per second (encode).",
        "",
    ]
    write_page(path, lines)


def main(argv: list[str] | None = None) -> int:
    """Generate, measure, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--variants", type=int, default=4)
    add_common_arguments(parser, page="write.md", rounds=5, rounds_help="measure the writers in turn this many times")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu", help="what a time is (default: CPU time)")
    args = parser.parse_args(argv)
    if args.slices < 1 or args.variants < 0 or args.size < 16:
        parser.error("--slices must be at least 1, --variants at least 0, --size at least 16")
    with scratch_folder("write", args.root) as scratch:
        result = measure(scratch, slices=args.slices, size=args.size, variants=args.variants, rounds=args.rounds,
                         clock=args.clock)
        write_report(result, args.report, command_line("bench_write", argv))
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
