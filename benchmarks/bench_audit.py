"""Benchmark: ``medaug audit verify`` and ``audit scan`` against ``sha256sum`` of the same files.

Run ``python -m benchmarks.bench_audit`` (default: 4 synthetic CT series of 64
slices of 512 x 512 from the throughput benchmark's archive, under its policy of
4 variants: 1,280 files, about 670 MB of dataset; ``--series``, ``--slices``
and ``--size`` set another size, ``--series 20 --slices 128`` the throughput
benchmark's full 6.5 GB). One ``medaug run`` (2 workers) makes the dataset;
then, in each of ``--rounds`` rounds, in turn (each round starting with the
next tool, so none always runs first), each in a subprocess:

- ``sha256sum`` of every file of the dataset (one process at a time, through
  ``xargs``): reading and hashing the bytes, nothing else;
- ``medaug audit verify OUTDIR``;
- ``medaug audit scan OUTDIR --against ARCHIVE``, with its default options.

MB/s is the dataset's size (every file in it, 10^6 bytes a MB) over each
command's wall time, so the three rates are of the same bytes; the ratio to
``sha256sum`` is taken round by round and its median reported. CPU time (user
and system, of the command and its children) is reported beside, as the
machine may be shared. The dataset was just written and fits in memory here,
so all three read it from the page cache: the rates compare hashing and
checking, not the disk. Results go to ``docs/bench/audit.md`` (and JSON on
stdout).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_throughput import add_archive_arguments, run_end_to_end, run_inputs
from benchmarks.harness import ROOT, add_common_arguments, command_line, page_head, scratch_folder, write_page

#: The tools, in the report's order (each round starts one further on: :func:`round_order`).
TOOLS = ("sha256sum", "verify", "scan")
NAMES = {"sha256sum": "`sha256sum` (via `xargs`)", "verify": "`medaug audit verify`", "scan": "`medaug audit scan`"}
TARGET_VERIFY = 0.5


def dataset_files(out: Path) -> list[Path]:
    """Every file of the dataset folder, sorted."""
    return sorted(p for p in out.rglob("*") if p.is_file())


def time_tool(tool: str, out: Path, archive: Path, files: list[Path]) -> tuple[float, float]:
    """Wall time and CPU time of one tool over the dataset; a failure (or a check that fails) raises."""
    medaug = [sys.executable, "-m", "medaug.cli", "audit"]
    if tool == "sha256sum":
        argv, stdin = ["xargs", "-0", "sha256sum", "--"], b"\0".join(os.fsencode(p) for p in files)
    elif tool == "verify":
        argv, stdin = medaug + ["verify", str(out)], b""
    else:
        argv, stdin = medaug + ["scan", str(out), "--against", str(archive)], b""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, input=stdin, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{tool} exited with {proc.returncode}: {tail[0][:200]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def round_order(number: int) -> tuple[str, ...]:
    """The tools of round ``number`` (from 0): each round starts with the next one.

    Examples
    --------
    >>> round_order(1)
    ('verify', 'scan', 'sha256sum')
    """
    k = number % len(TOOLS)
    return TOOLS[k:] + TOOLS[:k]


def write_report(result: dict[str, Any], path: Path, command: str) -> None:
    """The Markdown page ``docs/bench/audit.md``."""
    mb = result["bytes"] / 1e6
    a = result["archive"]
    rounds, cpu_rounds = result["rounds"], result["cpu_rounds"]
    median = {tool: float(np.median([r[tool] for r in rounds])) for tool in TOOLS}
    cpu = {tool: float(np.median([r[tool] for r in cpu_rounds])) for tool in TOOLS}
    lines = [
        *page_head("`audit verify` and `audit scan` against `sha256sum`", command),
        "",
        f"Dataset: `medaug run` (2 workers) of {a['series']} synthetic CT series of {a['slices']} slices of "
        f"{a['size']} x {a['size']} under the throughput benchmark's policy: {result['files']:,} files, "
        f"{mb:,.0f} MB, read from the page cache by every tool. Median of {len(rounds)} rounds, run in turn; "
        "each ratio is the median of the rounds' ratios (of rates: the tool's MB/s over `sha256sum`'s).",
        "",
        "| tool | wall time (s) | MB/s | CPU time (s) | × sha256sum | lowest | highest |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for tool in TOOLS:
        ratios = [r["sha256sum"] / r[tool] for r in rounds]
        lines.append(f"| {NAMES[tool]} | {median[tool]:.1f} | {mb / median[tool]:,.0f} | {cpu[tool]:.1f} | "
                     f"**{float(np.median(ratios)):.2f}** | {min(ratios):.2f} | {max(ratios):.2f} |")
    lines += [
        "",
        f"Target: `audit verify` ≥ {TARGET_VERIFY} × the rate of `sha256sum` on the same files.",
        "",
        "| round | " + " | ".join(f"{NAMES[t]} (s)" for t in TOOLS) + " |",
        "| ---: | " + " | ".join("---:" for _ in TOOLS) + " |",
    ]
    for number, r in enumerate(rounds, 1):
        lines.append(f"| {number} | " + " | ".join(f"{r[t]:.1f}" for t in TOOLS) + " |")
    lines += ["", "How to read these figures: [../benchmarks.md](../benchmarks.md).", ""]
    write_page(path, lines)


def main(argv: list[str] | None = None) -> int:
    """Generate, run once, time the three tools in rounds, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_archive_arguments(parser, series=4, slices=64)
    add_common_arguments(parser, page="audit.md", rounds=3, rounds_help="run the three tools in turn this many times")
    args = parser.parse_args(argv)

    with scratch_folder("audit", args.root) as scratch:
        archive, policy, key = run_inputs(scratch, series=args.series, slices=args.slices, size=args.size)
        out = scratch / "dataset"
        run = run_end_to_end(policy, archive, out, key, workers=2, scheduler=None, worker_pids=lambda _p: [])
        if not run["files_written"]:
            raise RuntimeError("the run wrote no file: nothing to verify")
        print(f"dataset written in {run['seconds']:.0f} s", file=sys.stderr)
        files = dataset_files(out)
        result: dict[str, Any] = {
            "archive": {"series": args.series, "slices": args.slices, "size": args.size},
            "files": len(files),
            "bytes": sum(p.stat().st_size for p in files),
            "rounds": [],
            "cpu_rounds": [],
        }
        for number in range(args.rounds):
            timed = {tool: time_tool(tool, out, archive, files) for tool in round_order(number)}
            seconds = {tool: timed[tool][0] for tool in TOOLS}
            result["rounds"].append(seconds)
            result["cpu_rounds"].append({tool: timed[tool][1] for tool in TOOLS})
            print(f"round {number + 1}", json.dumps(seconds), file=sys.stderr)
        write_report(result, args.report, command_line("bench_audit", argv))
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
