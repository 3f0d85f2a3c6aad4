"""`make bench`: every benchmark in one run, peers measured beside medaug.

Runs the de-identification, transform, label, burned-in text, throughput (with the composite peer
and the I/O floors), audit, scale, write and cold-start benchmarks in turn and writes their raw
results to ``out/bench/``. The peer libraries live in their own environments
(``.venv-bench`` for TorchIO, MONAI and elasticdeform, and dicognito for the
composite peer; ``.venv-bench-deid`` for dicognito, dicom-anonymizer and deid),
created by the Makefile, so none of them becomes a dependency of medaug.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out" / "bench"

#: (module, arguments) of each benchmark, in the order they run.
BENCHMARKS: dict[str, list[str]] = {
    "deid": ["--files", "400", "--out-json", str(OUT / "deid.json")],
    "transforms": [
        "--peer-python", str(ROOT / ".venv-bench" / "bin" / "python"),
        "--skip", "monai:512x512x256-int16-CT",
        "--json", str(OUT / "transforms.json"),
    ],
    "labels": ["--json", str(OUT / "labels.json")],
    "text": [],
    "throughput": ["--rounds", "3"],
    "audit": ["--rounds", "3"],
    "scale": [],
    "write": [],
    "coldstart": ["--json", str(OUT / "coldstart.json")],
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen benchmarks (all by default); returns the worst exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run: {', '.join(BENCHMARKS)} (default: all)")
    args = parser.parse_args(argv)
    unknown = set(args.names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark: {', '.join(sorted(unknown))}")
    OUT.mkdir(parents=True, exist_ok=True)
    status = 0
    for name in args.names or list(BENCHMARKS):
        module = importlib.import_module(f"benchmarks.bench_{name}")
        print(f"== benchmark: {name}", flush=True)
        status = max(status, int(module.main(BENCHMARKS[name]) or 0))
    return status


if __name__ == "__main__":
    sys.exit(main())
