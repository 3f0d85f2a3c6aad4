"""Benchmark: the first ``medaug run`` after install, with an empty and with a filled kernel cache.

Run ``python -m benchmarks.bench_coldstart --rounds 3``. Each round runs, each
in a fresh process and in turn:

- ``empty``: ``medaug run`` with an empty numba cache (``NUMBA_CACHE_DIR``
  pointing at a new folder): the kernels it calls compile on first use;
- ``warm``: the same run again with that now filled cache;
- ``install``: a new empty cache filled by the install step
  (``python -m medaug.augment.compile``, timed on its own), then ``medaug run``.

The first-run overhead is a run's wall time minus the warm run's of the same
round; the kernel load time is what a fresh process spends loading the cached
kernels (``python -m medaug.augment.compile`` on a filled cache, minus the
same process's start without them). The archive is one small CT series (16
slices of 128 × 128, 4 variants), so the job itself takes about a second and
the overhead stands out. Medians over the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
MEDAUG = Path(sys.executable).parent / "medaug"


def _timed(cmd: list[str], cache: Path) -> float:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode not in (0, 3):  # 3: some input quarantined, the run itself completed
        raise RuntimeError(f"{cmd[1:3]} exited with {proc.returncode}: {proc.stderr.strip()[-300:]}")
    return seconds


def one_round(scratch: Path, policy: Path, archive: Path, key: Path, n: int) -> dict[str, float]:
    """Time the empty, warm and install-filled cases once."""

    def run(cache: Path, name: str) -> float:
        out = scratch / f"out-{n}-{name}"
        return _timed([str(MEDAUG), "run", str(policy), str(archive), str(out), "--key", str(key)], cache)

    compile_cmd = [sys.executable, "-m", "medaug.augment.compile"]
    bare_cmd = [sys.executable, "-c", "import medaug.augment.resample"]
    empty = scratch / f"cache-{n}-empty"
    installed = scratch / f"cache-{n}-install"
    result = {"empty_s": run(empty, "empty"), "warm_s": run(empty, "warm")}
    result["install_step_s"] = _timed(compile_cmd, installed)
    result["install_s"] = run(installed, "install")
    result["kernel_load_s"] = _timed(compile_cmd, installed) - _timed(bare_cmd, installed)
    result["empty_overhead_s"] = result["empty_s"] - result["warm_s"]
    result["install_overhead_s"] = result["install_s"] - result["warm_s"]
    return result


def _table(rounds: list[dict[str, float]]) -> str:
    rows = [
        ("first run, empty cache", "empty_s", "empty_overhead_s"),
        ("first run after the install step", "install_s", "install_overhead_s"),
        ("later run (cache filled)", "warm_s", None),
    ]
    lines = ["| case | wall s (median) | overhead vs later run, s |", "|---|---:|---:|"]
    for label, total, over in rows:
        t = statistics.median(r[total] for r in rounds)
        o = f"{statistics.median(r[over] for r in rounds):.2f}" if over else ""
        lines.append(f"| {label} | {t:.2f} | {o} |")
    lines.append("")
    lines.append(
        f"Install step (`python -m medaug.augment.compile`, empty cache): "
        f"{statistics.median(r['install_step_s'] for r in rounds):.1f} s; loading the cached kernels in a "
        f"fresh process: {statistics.median(r['kernel_load_s'] for r in rounds):.2f} s."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and print a Markdown table (and, with ``--json``, the raw times)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    from benchmarks.bench_throughput import bench_policy, generate_archive
    from medaug.deid.keys import write_key

    scratch = Path(tempfile.mkdtemp(prefix="medaug-coldstart-"))
    try:
        archive = scratch / "archive"
        generate_archive(archive, series=1, slices=16, size=128)
        policy = bench_policy(scratch)
        key = scratch / "bench.key"
        write_key(key)
        rounds: list[dict[str, Any]] = []
        for n in range(args.rounds):
            rounds.append(one_round(scratch, policy, archive, key, n))
            print(f"round {n + 1}", json.dumps(rounds[-1]), file=sys.stderr, flush=True)
        print(f"Machine: {platform.machine()}, {os.cpu_count()} cores; {args.rounds} rounds\n")
        print(_table(rounds))
        if args.json:
            args.json.write_text(json.dumps(rounds, indent=1))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
