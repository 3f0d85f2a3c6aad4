"""Benchmark: ``medaug audit verify`` and ``audit scan`` against ``sha256sum`` of the same files.

Run ``python -m benchmarks.bench_audit`` (full size: the throughput benchmark's
archive of 20 CT series of 128 slices of 512 x 512 and its policy of 4
variants; about 6.5 GB of dataset). ``--series``, ``--slices`` and ``--size``
make a smaller trial. One ``medaug run`` (2 workers) makes the dataset; then,
in each of ``--rounds`` rounds, in turn, each in a subprocess:

- ``sha256sum`` of every file of the dataset (one process at a time, through
  ``xargs``): reading and hashing the bytes, nothing else;
- ``medaug audit verify OUTDIR``;
- ``medaug audit scan OUTDIR --against ARCHIVE``.

MB/s is the dataset's size (every file in it, 10^6 bytes a MB) over each
command's wall time, so the three rates are of the same bytes. The dataset was
just written and fits in memory here, so all three read it from the page cache:
the rates compare hashing and checking, not the disk. Results go to
``docs/bench/audit.md`` (and JSON on stdout).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_throughput import ROOT, add_archive_arguments, bench_policy, generate_archive, run_end_to_end

#: The tools each round runs, in this order.
TOOLS = ("sha256sum", "verify", "scan")
NAMES = {"sha256sum": "`sha256sum` (via `xargs`)", "verify": "`medaug audit verify`", "scan": "`medaug audit scan`"}
TARGET_VERIFY = 0.5


def dataset_files(out: Path) -> list[Path]:
    """Every file of the dataset folder, sorted."""
    return sorted(p for p in out.rglob("*") if p.is_file())


def time_tool(tool: str, out: Path, archive: Path, files: list[Path]) -> float:
    """Wall time of one tool over the dataset; a failure (or a check that fails) raises."""
    medaug = [sys.executable, "-m", "medaug.cli", "audit"]
    if tool == "sha256sum":
        argv, stdin = ["xargs", "-0", "sha256sum", "--"], b"\0".join(os.fsencode(p) for p in files)
    elif tool == "verify":
        argv, stdin = medaug + ["verify", str(out)], b""
    else:
        argv, stdin = medaug + ["scan", str(out), "--against", str(archive)], b""
    t0 = time.perf_counter()
    proc = subprocess.run(argv, input=stdin, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{tool} exited with {proc.returncode}: {tail[0][:200]}")
    return seconds


def write_report(result: dict[str, Any], path: Path, command: str) -> None:
    """The Markdown page ``docs/bench/audit.md``."""
    mb = result["bytes"] / 1e6
    a = result["archive"]
    rounds = result["rounds"]
    median = {tool: float(np.median([r[tool] for r in rounds])) for tool in TOOLS}
    lines = [
        "# `audit verify` and `audit scan` against `sha256sum`",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}.",
        "",
        f"Dataset: `medaug run` (2 workers) of {a['series']} synthetic CT series of {a['slices']} slices of "
        f"{a['size']} x {a['size']} under the throughput benchmark's policy: {result['files']:,} files, "
        f"{mb:,.0f} MB, read from the page cache by every tool. Median of {len(rounds)} rounds, run in turn; "
        "each ratio is the median of the rounds' ratios.",
        "",
        "| tool | wall time (s) | MB/s | × sha256sum | lowest | highest |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for tool in TOOLS:
        ratios = [r["sha256sum"] / r[tool] for r in rounds]
        lines.append(f"| {NAMES[tool]} | {median[tool]:.1f} | {mb / median[tool]:,.0f} | "
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
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    """Generate, run once, time the three tools in rounds, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_archive_arguments(parser)
    parser.add_argument("--rounds", type=int, default=3, help="run the three tools in turn this many times")
    parser.add_argument("--root", type=Path, help="scratch folder (default: a temporary one, removed after)")
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "bench" / "audit.md")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    from medaug.deid.keys import write_key

    scratch = Path(tempfile.mkdtemp(prefix="medaug-audit-", dir=args.root))
    try:
        archive, out, key = scratch / "archive", scratch / "dataset", scratch / "bench.key"
        generate_archive(archive, series=args.series, slices=args.slices, size=args.size)
        policy = bench_policy(scratch)
        write_key(key)
        run = run_end_to_end(policy, archive, out, key, workers=2, scheduler=None, worker_pids=lambda _p: [])
        if not run["files_written"]:
            raise RuntimeError("the run wrote no file: nothing to verify")
        files = dataset_files(out)
        result: dict[str, Any] = {
            "archive": {"series": args.series, "slices": args.slices, "size": args.size},
            "files": len(files),
            "bytes": sum(p.stat().st_size for p in files),
            "rounds": [],
        }
        for number in range(args.rounds):
            seconds = {tool: time_tool(tool, out, archive, files) for tool in TOOLS}
            print(f"round {number + 1}", json.dumps(seconds), file=sys.stderr)
            result["rounds"].append(seconds)
        command = "python -m benchmarks.bench_audit " + " ".join(argv if argv is not None else sys.argv[1:])
        write_report(result, args.report, command)
        print(json.dumps(result))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
