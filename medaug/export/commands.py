"""The ``medaug export`` command: arguments in, exit code out."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from medaug.export.build import export_dataset
from medaug.export.layouts import make_layout


def export_command(args: argparse.Namespace) -> int:
    """``export OUTDIR --format F -o EXPORTDIR [--dataset-id N] [--name NAME] [--json]``; 0 when written."""
    chosen = make_layout(args.format, dataset_id=args.dataset_id, name=args.name)
    result = export_dataset(Path(args.outdir), Path(args.output), chosen)
    m = result.manifest
    if args.json:
        sys.stdout.write(json.dumps(m.to_json(), indent=2, sort_keys=True) + "\n")
        return 0
    reasons: dict[str, int] = {}
    for s in m.skipped:
        reasons[s.reason] = reasons.get(s.reason, 0) + 1
    skipped = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items())) or "none"
    sys.stdout.write(
        f"exported {result.exported} volumes ({m.layout}) from the dataset with log head {m.source.log_head}\n"
        f"skipped: {skipped}\n"
        "check it with `medaug audit verify EXPORTDIR --against OUTDIR`\n"
    )
    return 0


__all__ = ["export_command"]
