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


def _cmd_keygen(args: argparse.Namespace) -> int:
    from pathlib import Path

    from medaug.deid.keys import write_key

    write_key(Path(args.keyfile))
    print(f"wrote a new 256-bit key to {args.keyfile} (mode 0600); keep it secret and keep it safe")
    return EXIT_OK


def _cmd_policy_validate(args: argparse.Namespace) -> int:
    from medaug.policy.commands import validate_command

    return validate_command(args.policy, out=sys.stdout)


def _cmd_policy_approve(args: argparse.Namespace) -> int:
    from medaug.policy.commands import approve_command

    return approve_command(args.policy, by=args.by, out=sys.stdout)


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

    p = sub.add_parser(
        "keygen",
        help="write a new secret pseudonymisation key",
        description="Write a new random 256-bit key to KEYFILE (file mode 0600). The key never lands in an output.",
    )
    p.add_argument("keyfile", help="where to write the key (must not exist)")
    p.set_defaults(handler=_cmd_keygen)

    p = sub.add_parser("policy", help="validate and approve policies")
    psub = p.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    q = psub.add_parser(
        "validate",
        help="check a policy against the schema and the clinical caps",
        description="Check POLICY against the published schema and the hard clinical caps per modality.",
    )
    q.add_argument("policy", help="policy YAML file")
    q.set_defaults(handler=_cmd_policy_validate)
    q = psub.add_parser(
        "approve",
        help="record an approval bound to the policy's exact content",
        description=(
            "Validate POLICY, then record the approver, the time and the SHA-256 of its canonical "
            "content beside it. A policy changed after approval is refused by `medaug run`."
        ),
    )
    q.add_argument("policy", help="policy YAML file")
    q.add_argument("--by", required=True, help="name of the approver")
    q.set_defaults(handler=_cmd_policy_approve)
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
