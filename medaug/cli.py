"""The ``medaug`` command line.

Exit codes: 0 done; 3 done with quarantined inputs; 2 usage or policy error;
1 internal error; 130 interrupted (resumable with ``--resume``). Messages name places (file numbers, tags, key paths), never
values from the archive.
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Callable, Sequence

from medaug import __version__
from medaug.errors import MedaugError, PolicyError, UsageError
from medaug.export.layouts import FORMATS as EXPORT_FORMATS

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_QUARANTINED = 3
EXIT_INTERRUPTED = 130

Handler = Callable[[argparse.Namespace], int]

EPILOG = (
    "Exit codes: 0 done; 3 done with quarantined inputs; 2 usage or policy error; 1 internal error "
    "or a failed check; 130 interrupted (complete it with --resume)."
)


def _cmd_inspect(args: argparse.Namespace) -> int:
    from medaug.ingest.inspect import TextCounter, run_inspect

    counter: TextCounter | None = None
    if args.text:
        from medaug.deid.text_detect import OCR_PACKAGES, frames_with_text, ocr_available
        from medaug.errors import InputError
        from medaug.ingest.grouping import SeriesRef
        from medaug.ingest.volume import load_series

        if not ocr_available():
            # Never a silent zero: the report then has no text counts, and says why here.
            print(f"medaug: burned-in text not counted: tesseract with its English model is missing "
                  f"(apt install {OCR_PACKAGES}); --no-text skips the count", file=sys.stderr)
        else:
            def count(ref: SeriesRef) -> int | None:
                try:
                    image = load_series(ref).image
                except InputError:
                    return None  # pixels unreadable: not looked at, and said so (a run quarantines such files)
                return frames_with_text(image.data, modality=image.modality, photometric=image.photometric)

            counter = count
    return run_inspect(args.archive, as_json=args.json, out=sys.stdout, text_counter=counter)


def _cmd_keygen(args: argparse.Namespace) -> int:
    from pathlib import Path

    from medaug.deid.keys import write_key

    if args.signing:
        from medaug.audit.signing import write_signing_keypair

        public = write_signing_keypair(Path(args.keyfile))
        print(f"wrote an Ed25519 signing key to {args.keyfile} (mode 0600) and its public key to {public}")
        return EXIT_OK
    write_key(Path(args.keyfile))
    print(f"wrote a new 256-bit key to {args.keyfile} (mode 0600); keep it secret and keep it safe")
    return EXIT_OK


def _cmd_policy_validate(args: argparse.Namespace) -> int:
    from medaug.policy.commands import validate_command

    return validate_command(args.policy, out=sys.stdout)


def _cmd_policy_approve(args: argparse.Namespace) -> int:
    from medaug.policy.commands import approve_command

    return approve_command(args.policy, by=args.by, out=sys.stdout)


def _cmd_run(args: argparse.Namespace) -> int:
    from medaug.pipeline.commands import run_command

    return run_command(
        args.policy,
        args.archive,
        args.outdir,
        keyfile=args.key,
        workers=args.workers,
        scheduler=args.scheduler,
        signing_key=args.signing_key,
        resume=args.resume,
        out=sys.stdout,
        err=sys.stderr,
    )


def _cmd_policy_preview(args: argparse.Namespace) -> int:
    from medaug.policy.commands import preview_command

    return preview_command(args)


def _cmd_audit(args: argparse.Namespace) -> int:
    from medaug.audit import commands

    handler: Handler = getattr(commands, f"{args.audit_command}_command")
    return handler(args)


def _cmd_export(args: argparse.Namespace) -> int:
    from medaug.export.commands import export_command

    return export_command(args)


def _doing(args: argparse.Namespace) -> str:
    """What the command was doing, for an operating-system error (never a path)."""
    sub = getattr(args, "audit_command", None) or getattr(args, "policy_command", None)
    return f"running `medaug {args.command}{' ' + sub if sub else ''}`"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="medaug",
        description=(
            "Privacy-aware augmentation of DICOM archives: de-identify (PS3.15 Annex E), "
            "make clinically plausible variants, write valid DICOM, keep a verifiable audit log."
        ),
        epilog=EPILOG,
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
    p.add_argument(
        "--text",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="count, per series, the frames that carry burned-in text (decodes every image; needs tesseract); "
        "--no-text skips it on a huge archive",
    )
    p.set_defaults(handler=_cmd_inspect)

    p = sub.add_parser(
        "keygen",
        help="write a new secret pseudonymisation key",
        description="Write a new random 256-bit key to KEYFILE (file mode 0600). The key never lands in an output.",
    )
    p.add_argument("keyfile", help="where to write the key (must not exist)")
    p.add_argument(
        "--signing",
        action="store_true",
        help="write an Ed25519 signing key pair instead (KEYFILE and KEYFILE.pub) for signed audit logs",
    )
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
    q = psub.add_parser(
        "preview",
        help="contact sheet of what a policy does to one series, for approvers",
        description=(
            "De-identify the series in SERIES_DIR, make N variants under POLICY and draw a contact sheet: "
            "mid slices in three planes of the source and of each variant, displacement magnitude and "
            "difference maps. The policy need not be approved yet."
        ),
    )
    q.add_argument("policy", help="policy YAML file")
    q.add_argument("series_dir", help="folder holding one series")
    q.add_argument("--key", required=True, help="secret key file")
    q.add_argument("-o", "--output", required=True, help="PNG file to write")
    q.add_argument("--variants", type=int, default=3, help="number of variants to show (default 3)")
    q.set_defaults(handler=_cmd_policy_preview)

    p = sub.add_parser(
        "run",
        help="de-identify and augment an archive under an approved policy",
        description=(
            "Ingest ARCHIVE, de-identify every series, make the policy's variants, write them as DICOM "
            "under OUTDIR/dicom and the hash-chained audit log under OUTDIR/audit. The policy must be "
            "approved and unchanged since. Every input file is written or quarantined with a reason."
        ),
        epilog=EPILOG,
    )
    p.add_argument("policy", help="approved policy YAML file")
    p.add_argument("archive", help="folder holding the source DICOM files")
    p.add_argument("outdir", help="output folder (must be empty or absent, unless --resume)")
    p.add_argument("--key", help="secret key file (from `medaug keygen`)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="local worker processes (default: all cores)")
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on an existing Dask cluster (e.g. tcp://host:8786); outputs go to a folder all workers share",
    )
    p.add_argument("--signing-key", help="Ed25519 private key (from `medaug keygen --signing`) to sign the log's head")
    p.add_argument("--resume", action="store_true", help="complete an interrupted run in OUTDIR")
    p.set_defaults(handler=_cmd_run)

    p = sub.add_parser(
        "export",
        help="write a verified dataset's series as NIfTI for training (nnU-Net v2, MONAI, plain)",
        description=(
            "Read every output series of OUTDIR (the de-identified original and every variant) back with "
            "medaug's own reader and write it as one NIfTI-1 volume (.nii.gz) into EXPORTDIR, in one of three "
            "layouts: 'nnunet' (Dataset<NNN>_<NAME>/imagesTr/<case>_0000.nii.gz and dataset.json, one "
            "modality per dataset), 'monai' (imagesTr/<case>.nii.gz and a Decathlon-style datalist.json) or "
            "'nifti' (images/<case>.nii.gz). Case names are <patient pseudonym>_<volume token>_v<variant>. "
            "The affine is the series' geometry in RAS (qform = sform, code 1); CT is int16 HU when every value "
            "fits, otherwise float32 modality units. Series NIfTI cannot hold without resampling are skipped with a "
            "reason code: gantry-tilt (sheared grid), uneven-spacing (missing or irregular slices), colour. "
            "Label objects (SEG, RTSTRUCT; label-<n>.dcm beside a series' images) become integer label maps on the "
            "image's grid with the image's affine: 0 background, each segment number one consecutive value, "
            "overlapping segments as layers of a 4-D map. 'nifti' writes every label object "
            "(labels/<case>_label-<n>.nii.gz); 'nnunet' and 'monai' write label object --label N of each series "
            "(labelsTr/<case>.nii.gz). When some series has it, nnU-Net takes only series whose map is one layer "
            "(others are skipped: no-label, overlapping-segments) and MONAI lists series without it under "
            "'unlabelled'. "
            "EXPORTDIR/medaug-export.json lists every file with its SHA-256, the skipped series and the dataset's "
            "audit-log head; check it with `medaug audit verify EXPORTDIR --against OUTDIR`. OUTDIR must pass "
            "`medaug audit verify` and EXPORTDIR must be new or empty, else exit 2. Needs nibabel: "
            "pip install 'medaug[nifti]'."
        ),
        epilog=EPILOG,
    )
    p.add_argument("outdir", help="dataset folder written by `medaug run`")
    p.add_argument("--format", required=True, choices=EXPORT_FORMATS, help="the layout to write")
    p.add_argument("-o", "--output", required=True, metavar="EXPORTDIR", help="new or empty folder to write into")
    p.add_argument("--dataset-id", type=int, default=1, metavar="N",
                   help="nnU-Net dataset number, 1..999 (default 1): the NNN of Dataset<NNN>_<NAME>")
    p.add_argument("--name", default="medaug",
                   help="nnU-Net dataset name: letters, digits, hyphens (default medaug)")
    p.add_argument("--label", type=int, default=1, metavar="N",
                   help="nnunet and monai: the label object of each series to train on, label-<N>.dcm (default 1; "
                        "0 exports the images only); 'nifti' writes them all")
    p.add_argument("--json", action="store_true", help="print the export manifest as JSON")
    p.set_defaults(handler=_cmd_export)

    p = sub.add_parser("audit", help="verify, scan, trace and report a generated dataset")
    asub = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    q = asub.add_parser(
        "verify",
        help="check a dataset against its audit log; needs no secret",
        description=(
            "Check the log's hash chain, its head against the manifest, every file against its output "
            "record, every realised parameter against the recorded policy's bounds, the policy hash "
            "against its approval, and that no record field holds anything like a name, ID or date. "
            "A folder written by `medaug export` (it holds medaug-export.json) is checked as an export "
            "instead: every listed file against its SHA-256, no unlisted file, and with --against the "
            "source dataset's log head. Exit 0 when all hold, 1 otherwise."
        ),
    )
    q.add_argument("outdir", help="dataset folder written by `medaug run`, or export folder of `medaug export`")
    q.add_argument("--json", action="store_true", help="print machine-readable JSON")
    q.add_argument("--public-key", help="Ed25519 public key; also check the log's signed head")
    q.add_argument("--against", metavar="OUTDIR",
                   help="for an export: the dataset it was made from; its audit-log head must be the recorded one")
    q.set_defaults(handler=_cmd_audit)
    q = asub.add_parser(
        "scan",
        help="search a dataset for every identifying value of its source archive",
        description=(
            "Collect every identifying value of ARCHIVE and search every output file (every element at every "
            "depth, file meta, file names) and the audit log for them, and every frame of every output image for "
            "burned-in text with the detector `run` uses (Tesseract needed; --no-pixels skips the pixels on a "
            "dataset too large for them, and the report then says the pixels were not checked). Hits are reported "
            "by output file number and tag, never by value. Exit 1 on any hit, 2 when the pixels are to be "
            "checked and Tesseract is missing."
        ),
    )
    q.add_argument("outdir", help="dataset folder")
    q.add_argument("--against", required=True, metavar="ARCHIVE", help="the source archive")
    q.add_argument("--pixels", action=argparse.BooleanOptionalAction, default=True,
                   help="look for burned-in text in every frame of every output image (the default; needs "
                        "tesseract); --no-pixels searches headers, names and audit files only")
    q.add_argument("--json", action="store_true", help="print machine-readable JSON")
    q.set_defaults(handler=_cmd_audit)
    q = asub.add_parser(
        "trace",
        help="link outputs to source files with the key (data stewards only)",
        description=(
            "With the run's key, map each output to its source file, or list the outputs derived from one "
            "patient (consent withdrawal). Refuses a key other than the run's. Its output holds source "
            "paths: it is for data stewards holding the key only; never publish it."
        ),
    )
    q.add_argument("outdir", help="dataset folder")
    q.add_argument("--key", required=True, help="the run's secret key")
    q.add_argument("--source", required=True, metavar="ARCHIVE", help="the source archive")
    q.add_argument("--patient-id", help="list only the outputs derived from this patient ID")
    q.add_argument("--json", action="store_true", help="print machine-readable JSON")
    q.set_defaults(handler=_cmd_audit)
    q = asub.add_parser(
        "sign",
        help="sign the head of an existing dataset's log",
        description=(
            "Verify OUTDIR, then sign its audit log's head with an Ed25519 private key (from "
            "`medaug keygen --signing`) into the signature file. A dataset that does not verify is refused (exit 2)."
        ),
    )
    q.add_argument("outdir", help="dataset folder written by `medaug run`")
    q.add_argument("--signing-key", required=True, help="Ed25519 private key (PEM)")
    q.set_defaults(handler=_cmd_audit)
    q = asub.add_parser(
        "report",
        help="write a self-contained HTML report for auditors",
        description="Write one self-contained HTML file: summary, policy, counts, parameter plots, verification, thumbnails.",
    )
    q.add_argument("outdir", help="dataset folder")
    q.add_argument("-o", "--output", required=True, help="HTML file to write")
    q.add_argument("--public-key", help="Ed25519 public key; the report then shows whether the signature is valid")
    q.set_defaults(handler=_cmd_audit)
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
    except OSError as exc:
        # The operating system refused something (permission, not a folder, missing folder).
        # exc.filename is never printed: it may be a path inside the archive.
        code = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        print(f"medaug: error: {exc.strerror or type(exc).__name__} (errno {code}) while {_doing(args)}; "
              "nothing is half-written: fix it and run the same command"
              + (" with --resume" if args.command == "run" else ""), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        # Outputs and fragments are written atomically: nothing half-written remains.
        print("medaug: interrupted; run the same command with --resume to complete it", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
