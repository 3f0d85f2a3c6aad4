"""The ``medaug`` command line.

Exit codes: 0 done; 3 done with quarantined inputs; 2 usage or policy error;
1 internal error. Messages name places (file numbers, tags, key paths), never
values from the archive.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from medaug import __version__
from medaug.errors import MedaugError, PolicyError, UsageError

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_QUARANTINED = 3

Handler = Callable[[argparse.Namespace], int]


def _cmd_inspect(args: argparse.Namespace) -> int:
    from medaug.ingest.inspect import run_inspect

    return run_inspect(args.archive, as_json=args.json, out=sys.stdout)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="medaug",
        description=(
            "Privacy-aware augmentation of DICOM archives: de-identify (PS3.15 Annex E), "
            "make clinically plausible variants, write valid DICOM, keep a verifiable audit log."
        ),
        epilog="Exit codes: 0 done; 3 done with quarantined inputs; 2 usage or policy error; 1 internal error.",
    )
    parser.add_argument("--version", action="version", version=f"medaug {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "inspect",
        help="summarise an archive without showing any identifying value",
        description=(
            "Walk ARCHIVE, group its DICOM files into series and report counts by modality, "
            "sizes, geometry and problems by reason code. Series are numbered; no name, ID, "
            "UID, date or path from the archive is printed."
        ),
    )
    p.add_argument("archive", help="folder holding DICOM files (searched recursively; DICOMDIR honoured)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(handler=_cmd_inspect)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; ``sys.argv[1:]`` when omitted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except (UsageError, PolicyError) as exc:
        print(f"medaug: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MedaugError as exc:
        print(f"medaug: error: {exc}", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
