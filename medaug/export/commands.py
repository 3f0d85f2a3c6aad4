"""The ``medaug export`` command: arguments in, exit code out."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from medaug.export.build import export_dataset
from medaug.export.layouts import make_layout


def export_command(args: argparse.Namespace) -> int:
    """``export OUTDIR --format F -o EXPORTDIR [--dataset-id N] [--name NAME] [--label N] [--json]``; 0 when written."""
    chosen = make_layout(args.format, dataset_id=args.dataset_id, name=args.name, label=args.label)
    result = export_dataset(Path(args.outdir), Path(args.output), chosen)
    m = result.manifest
    if args.json:
        sys.stdout.write(json.dumps(m.to_json(), indent=2, sort_keys=True) + "\n")
        return 0
    series: dict[str, int] = {}
    labels: dict[str, int] = {}
    for s in m.skipped:
        counts = series if s.label is None else labels
        counts[s.reason] = counts.get(s.reason, 0) + 1
    sys.stdout.write(
        f"exported {result.exported} volumes and {result.label_maps} label maps ({m.layout}) "
        f"from the dataset with log head {m.source.log_head}\n"
        f"skipped series: {_counts(series)}\n"
        f"skipped label objects: {_counts(labels)}\n"
        "check it with `medaug audit verify EXPORTDIR --against OUTDIR`\n"
    )
    return 0


def _counts(reasons: dict[str, int]) -> str:
    return ", ".join(f"{n} {r}" for r, n in sorted(reasons.items())) or "none"


__all__ = ["export_command"]
