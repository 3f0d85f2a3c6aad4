"""The ``medaug audit …`` commands: arguments in, exit code out.

Exit codes: 0 all checks pass / no leak / done; 1 a check failed or a leak was
found; 2 usage error (raised as :class:`~medaug.errors.UsageError`, e.g. a
wrong key for ``trace``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def verify_command(args: argparse.Namespace) -> int:
    """``audit verify OUTDIR [--json] [--public-key PEM]``; 0 when every check holds, else 1.

    A folder holding an export manifest is checked as an export
    (:func:`medaug.export.verify.verify_export`, ``--against`` the dataset it came from).
    """
    from medaug.audit.verify import format_result, verify_dataset
    from medaug.export.manifest import is_export

    if is_export(Path(args.outdir)):
        from medaug.export import verify as export_verify

        if args.public_key is not None:
            from medaug.errors import UsageError

            raise UsageError("--public-key checks a dataset's signature; for an export pass --against OUTDIR")
        against = None if args.against is None else Path(args.against)
        checked = export_verify.verify_export(Path(args.outdir), against=against)
        if args.json:
            _print_json(checked.to_json())
        else:
            sys.stdout.write(export_verify.format_result(checked))
        return EXIT_OK if checked.ok else EXIT_FAILED
    if args.against is not None:
        from medaug.errors import UsageError

        raise UsageError("--against is for an export folder; this folder has no export manifest")
    public = None if args.public_key is None else Path(args.public_key)
    result = verify_dataset(Path(args.outdir), public_key=public)
    if args.json:
        _print_json(result.to_json())
    else:
        sys.stdout.write(format_result(result))
    return EXIT_OK if result.ok else EXIT_FAILED


def scan_command(args: argparse.Namespace) -> int:
    """``audit scan OUTDIR --against ARCHIVE [--json]``; 1 on any hit."""
    from medaug.audit.scan import format_result, scan_dataset

    result = scan_dataset(Path(args.outdir), Path(args.against), pixels=args.pixels)
    if args.json:
        _print_json(result.to_json())
    else:
        sys.stdout.write(format_result(result))
    return EXIT_OK if result.clean else EXIT_FAILED


def trace_command(args: argparse.Namespace) -> int:
    """``audit trace OUTDIR --key KEY --source ARCHIVE [--patient-id ID] [--json]`` (steward only)."""
    from medaug.audit.trace import format_result, trace_dataset
    from medaug.deid.keys import load_key

    key = load_key(Path(args.key))
    result = trace_dataset(Path(args.outdir), key, Path(args.source), patient_id=args.patient_id)
    if args.json:
        _print_json(result.to_json())
    else:
        sys.stdout.write(format_result(result))
    return EXIT_OK


def report_command(args: argparse.Namespace) -> int:
    """``audit report OUTDIR -o report.html``; 0 when written (the page shows the verification result)."""
    from medaug.audit.report import write_report

    public = None if args.public_key is None else Path(args.public_key)
    verified = write_report(Path(args.outdir), Path(args.output), public_key=public)
    sys.stdout.write(f"wrote {args.output} (verification: {'pass' if verified else 'FAIL'})\n")
    return EXIT_OK


def sign_command(args: argparse.Namespace) -> int:
    """``audit sign OUTDIR --signing-key PEM``: sign a dataset that verifies; 2 when it does not."""
    from medaug.audit.signing import sign_dataset

    head = sign_dataset(Path(args.outdir), Path(args.signing_key))
    sys.stdout.write(f"signed the log head {head}\n")
    return EXIT_OK
