"""``medaug audit verify``: check a dataset against its audit log, with no secret.

Checks, each reported under its name:

``chain``
    every record links to the one before (edited, inserted, deleted or reordered
    records are reported by sequence number);
``tail``
    the log starts with ``run_start``, ends with ``run_end``, and the manifest's
    head and record count are those of the log (a truncated tail is caught);
``counts``
    ``run_end`` counts agree with the records and with the manifest;
``files``
    every file of the images folder has exactly one output record with its path and
    SHA-256, every output record has its file, nothing else lies in the dataset;
``policy``
    the recorded policy re-validates (schema and clinical caps), its hash is the
    recorded one and the approval's;
``bounds``
    every realised parameter lies inside the recorded policy's bounds and every
    elastic variant's minimum Jacobian determinant is > 0; every label record has a
    voxel-count ratio row per series written from its series, one ratio per segment,
    and exactly 1 where no voxel moved (the original, a variant with no spatial
    transform). Ratios under a spatial variant are not bounded here: counted on the
    grid, a small structure's volume change can exceed what the continuous Jacobian
    range allows (the tests check the bound on structures large enough);
``kinds``
    every field of every record is of an allowed kind (:mod:`medaug.audit.kinds`);
``signature``
    (with a public key) the signature file signs the log's head.

Problems name a sequence number, a key path or a path *inside the dataset*
(output paths are pseudonymous), never a value.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medaug.audit.chain import check_chain, head_of, read_lines
from medaug.audit.kinds import check_record
from medaug.canonical import FileDigests, sha256_hex
from medaug.dataset import layout
from medaug.dataset import records as rec

#: Names of the checks, in the order they are reported.
CHECKS = ("chain", "tail", "counts", "files", "policy", "bounds", "kinds", "signature")



@dataclass(frozen=True)
class Problem:
    """One failed check.

    Attributes
    ----------
    check : str
        One of :data:`CHECKS`.
    message : str
        What is wrong (never a value from the archive).
    seq : int or None
        Sequence number of the record concerned.
    path : str or None
        Relative path inside the dataset of the file concerned.
    """

    check: str
    message: str
    seq: int | None = None
    path: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {"check": self.check, "message": self.message, "seq": self.seq, "path": self.path}

    def __str__(self) -> str:
        where = []
        if self.seq is not None:
            where.append(f"seq {self.seq}")
        if self.path is not None:
            where.append(self.path)
        place = f" [{', '.join(where)}]" if where else ""
        return f"{self.check}{place}: {self.message}"


@dataclass
class CheckOutcome:
    """The problems found by a verification and the checks that ran (a dataset's or an export's)."""

    problems: list[Problem] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return not self.problems

    def failed(self, check: str) -> bool:
        """True when ``check`` reported a problem."""
        return any(p.check == check for p in self.problems)

    def check_states(self) -> dict[str, str]:
        """``pass`` or ``fail`` for every check that ran, in order (the JSON ``checks``)."""
        return {c: ("fail" if self.failed(c) else "pass") for c in self.checked}


@dataclass
class VerifyResult(CheckOutcome):
    """Outcome of :func:`verify_dataset`.

    Attributes
    ----------
    problems : list of Problem
    checked : list of str
        The checks that ran (``signature`` only with a public key).
    records : int
        Lines in the log.
    head : str
        SHA-256 of the log's last line.
    files : int
        Files found in the images folder.
    """

    notes: list[str] = field(default_factory=list)
    records: int = 0
    head: str = ""
    files: int = 0

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (what ``--json`` prints)."""
        return {
            "ok": self.ok,
            "records": self.records,
            "head": self.head,
            "files": self.files,
            "checks": self.check_states(),
            "problems": [p.to_json() for p in self.problems],
            "notes": list(self.notes),
        }


def verify_dataset(outdir: Path, *, public_key: Path | None = None) -> VerifyResult:
    """Check a dataset written by ``medaug run``.

    Parameters
    ----------
    outdir : Path
        The dataset folder.
    public_key : Path, optional
        Ed25519 public key (PEM); when given, the signed head is checked too and
        a missing signature is a failure.

    Returns
    -------
    VerifyResult
        Every problem found; ``ok`` when there is none.

    Raises
    ------
    UsageError
        When ``outdir`` is not a folder or the public key cannot be loaded.
    """
    from medaug.errors import UsageError

    outdir = Path(outdir)
    if not outdir.is_dir():
        raise UsageError("the dataset folder does not exist")
    if not layout.log_path(outdir).exists() and not layout.manifest_path(outdir).exists():
        raise UsageError("the folder is not a medaug dataset: it has neither an audit log nor a manifest")
    key = None
    if public_key is not None:
        from medaug.audit.signing import load_public_key

        key = load_public_key(public_key)
    result = VerifyResult(checked=[c for c in CHECKS if c != "signature" or key is not None])
    add = result.problems.append

    log = layout.log_path(outdir)
    try:
        lines = read_lines(log)
    except FileNotFoundError:
        add(Problem("tail", "the audit log is missing", path=layout.LAYOUT.log))
        lines = []
    except (OSError, UnicodeDecodeError):
        add(Problem("chain", "the audit log is not readable ASCII text", path=layout.LAYOUT.log))
        lines = []
    records, chain_problems = check_chain(lines)
    for cp in chain_problems:
        message = f"line {cp.line}: {cp.problem}"
        if cp.problem.startswith("previous-record hash") and cp.line >= 2:
            before = _seq(records[cp.line - 2]) if len(records) >= cp.line - 1 else None
            message += f"; the record before it (seq {before}) changed, or records were inserted, deleted or moved here"
        add(Problem("chain", message, seq=cp.seq))
    result.records = len(lines)
    result.head = head_of(lines)

    # The outputs are hashed in background threads while this thread checks the
    # log (the checks are pure Python, the hashing is not), so the files check
    # runs last; its problems are put back in their place in the report.
    on_disk = _dataset_files(outdir)
    recorded = {str(output.path) for _, output in rec.of_type(records, rec.Output)}
    with FileDigests(file for file, rel in on_disk if layout.is_image_path(rel) and rel in recorded) as digests:
        manifest = _load_json(layout.manifest_path(outdir))
        _check_tail(records, lines, result.head, manifest, add)
        _check_counts(records, manifest, add)
        files_at = len(result.problems)
        policy = _check_policy(records, manifest, add)
        if policy is not None:
            _check_bounds(records, policy, add)
        _check_labels(records, add)
        for record in records:
            for v in check_record(record):
                add(Problem("kinds", f"{v.field}: {v.problem}", seq=v.seq))
        if key is not None:
            _check_signature(outdir, result.head, key, add)
        elif layout.signature_path(outdir).exists():
            signature = _load_json(layout.signature_path(outdir))
            if not isinstance(signature, dict) or signature.get("head") != result.head:
                add(Problem("tail", "the signature file signs another head than the log's (stale or replaced)",
                            path=layout.LAYOUT.signature))
            result.notes.append("the dataset is signed, but the signature was not checked: pass --public-key to check it")
        file_problems: list[Problem] = []
        result.files = _check_files(on_disk, records, file_problems.append, digests.digest)
    result.problems[files_at:files_at] = file_problems
    return result


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


Add = Any  # the bound ``list.append`` of the result's problems


def _seq(record: dict[str, Any]) -> int | None:
    seq = record.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def _check_tail(records: list[dict[str, Any]], lines: list[str], head: str, manifest: Any, add: Add) -> None:
    if not records:
        add(Problem("tail", "the audit log holds no records", path=layout.LAYOUT.log))
    else:
        if not rec.is_type(records[0], rec.RunStart):
            add(Problem("tail", "the first record is not run_start", seq=_seq(records[0])))
        if not rec.is_type(records[-1], rec.RunEnd):
            add(Problem("tail", "the last record is not run_end (the log is truncated)", seq=_seq(records[-1])))
        for r in records[1:]:
            if rec.is_type(r, rec.RunStart):
                add(Problem("tail", "a second run_start record", seq=_seq(r)))
        for r in records[:-1]:
            if rec.is_type(r, rec.RunEnd):
                add(Problem("tail", "run_end is not the last record", seq=_seq(r)))
    if not isinstance(manifest, dict):
        add(Problem("tail", "the manifest is missing or not JSON", path=layout.LAYOUT.manifest))
        return
    mlog = manifest.get("log")
    if not isinstance(mlog, dict):
        add(Problem("tail", "the manifest has no log entry", path=layout.LAYOUT.manifest))
        return
    if mlog.get("head") != head:
        add(Problem("tail", "the manifest's log head is not the head of the log (truncated or rewritten)", path=layout.LAYOUT.manifest))
    if mlog.get("records") != len(lines):
        add(Problem("tail", f"the manifest records {mlog.get('records')!r:.12} lines, the log has {len(lines)}", path=layout.LAYOUT.manifest))


def _check_counts(records: list[dict[str, Any]], manifest: Any, add: Add) -> None:
    ends = list(rec.of_type(records, rec.RunEnd))
    if not ends:
        return
    seq, end = ends[-1]
    counts = end.counts
    by_type = Counter(r.get("type") for r in records)
    reasons = Counter(str(r.get("reason")) for r in records if rec.is_type(r, rec.Quarantine))
    skips = Counter(str(r.get("reason")) for r in records if rec.is_type(r, rec.Skip))
    expected = {
        "files_written": (counts.files_written, by_type[rec.Output.TYPE]),
        "indexes": (counts.indexes, by_type[rec.Index.TYPE]),
        "inputs": (
            counts.inputs,
            sum(by_type[cls.TYPE] for cls in (rec.Ingest, rec.Label, rec.Quarantine, rec.Skip, rec.Index)),
        ),
    }
    for name, (recorded, value) in expected.items():
        if recorded != value:
            add(Problem("counts", f"run_end counts.{name} does not match the records ({value})", seq=seq))
    if counts.quarantined != dict(reasons):
        add(Problem("counts", "run_end counts.quarantined does not match the quarantine records", seq=seq))
    if counts.skipped != dict(skips):
        add(Problem("counts", "run_end counts.skipped does not match the skip records", seq=seq))
    if isinstance(manifest, dict) and manifest.get("counts") != rec.RunEnd(counts=counts).to_json()["counts"]:
        add(Problem("counts", "the manifest's counts differ from run_end's", path=layout.LAYOUT.manifest))


def _dataset_files(outdir: Path) -> list[tuple[Path, str]]:
    """Every file below the dataset folder, sorted, with its POSIX path relative to it."""
    return [(file, file.relative_to(outdir).as_posix()) for file in sorted(outdir.rglob("*")) if not file.is_dir()]


def _check_files(on_disk: list[tuple[Path, str]], records: list[dict[str, Any]], add: Add,
                 digest: Callable[[Path], str]) -> int:
    by_path: dict[str, list[tuple[int | None, rec.Output]]] = {}
    by_hash: Counter[str] = Counter()
    for seq, output in rec.of_type(records, rec.Output):
        by_path.setdefault(str(output.path), []).append((seq, output))
        by_hash[str(output.sha256)] += 1
    for rs in by_path.values():
        for seq, _ in rs[1:]:
            add(Problem("files", "a second output record for the same path", seq=seq))
    allowed = set(layout.record_files())
    present: set[str] = set()
    files = 0
    for file, rel in on_disk:
        if rel in allowed:
            continue
        present.add(rel)
        if not layout.is_image_path(rel):
            add(Problem("files", "a file outside the images folder that the dataset does not define", path=_safe(rel)))
            continue
        files += 1
        found = by_path.get(rel)
        if not found:
            add(Problem("files", "a file no output record accounts for", path=_safe(rel)))
            continue
        seq, output = found[0]
        sha256 = digest(file)
        if sha256 != output.sha256:
            add(Problem("files", "the file's SHA-256 differs from its output record (replaced or edited)", seq=seq, path=rel))
        elif by_hash[sha256] > 1:
            add(Problem("files", "the file's SHA-256 matches more than one output record", seq=seq, path=rel))
    for recorded, rs in sorted(by_path.items()):
        if recorded not in present:
            add(Problem("files", "an output record whose file is missing", seq=rs[0][0], path=_safe(recorded)))
    return files


def _safe(rel: str) -> str:
    """A path inside the dataset, for messages; one not of medaug's making is summarised.

    Output paths are pseudonymous by construction; a stray file's name could be
    anything (someone may have dropped a source file in), so only its folder and
    a short hash of the name are shown.
    """
    if layout.is_output_path(rel):
        return rel
    parent, _, name = rel.rpartition("/")
    top = parent.split("/", 1)[0] if parent else "."
    return f"{top}/…/<file {sha256_hex(name)[:8]}>"




def _check_policy(records: list[dict[str, Any]], manifest: Any, add: Add) -> Any:
    """Re-validate the recorded policy and its hashes; the Policy, or None when unusable."""
    from medaug.errors import PolicyError
    from medaug.policy.load import content_sha256, policy_from_mapping

    starts = [r for r in records if rec.is_type(r, rec.RunStart)]
    if not starts:
        add(Problem("policy", "no run_start record, so no policy to check against"))
        return None
    start = starts[0]
    seq = _seq(start)
    recorded = start.get("policy")
    approval = start.get("approval")
    if not isinstance(recorded, dict) or not isinstance(recorded.get("content"), dict):
        add(Problem("policy", "run_start holds no policy content", seq=seq))
        return None
    content = recorded["content"]
    digest = content_sha256(content)
    if digest != recorded.get("sha256"):
        add(Problem("policy", "the policy content's SHA-256 is not the recorded policy.sha256 (edited after the run)", seq=seq))
    if not isinstance(approval, dict):
        add(Problem("policy", "run_start holds no approval", seq=seq))
    else:
        if approval.get("content_sha256") != digest:
            add(Problem("policy", "the policy content's SHA-256 is not the approved approval.content_sha256", seq=seq))
        if approval.get("policy_id") != content.get("id") or approval.get("policy_version") != content.get("version"):
            add(Problem("policy", "the approval names another policy id or version", seq=seq))
    if recorded.get("id") != content.get("id") or recorded.get("version") != content.get("version"):
        add(Problem("policy", "policy.id or policy.version differs from the content", seq=seq))
    if isinstance(manifest, dict):
        mp = manifest.get("policy")
        if not isinstance(mp, dict) or mp.get("sha256") != recorded.get("sha256") or mp.get("id") != recorded.get("id"):
            add(Problem("policy", "the manifest names another policy than run_start", path=layout.LAYOUT.manifest))
    try:
        return policy_from_mapping(content)
    except PolicyError as exc:
        add(Problem("policy", f"the recorded policy does not validate: {exc}", seq=seq))
        return None


def _check_bounds(records: list[dict[str, Any]], policy: Any, add: Add) -> None:
    from medaug.augment.variant import VariantParams, violations
    from medaug.errors import TransformError

    for r in records:
        seq = _seq(r)
        if rec.is_type(r, rec.SeriesRecord) and isinstance(r.get("modality"), str) and not policy.covers(r["modality"]):
            add(Problem("bounds", "a series of a modality the policy does not cover", seq=seq))
        if not rec.is_type(r, rec.VariantDerive):
            continue
        variant = r.get("variant")
        if not isinstance(variant, int) or isinstance(variant, bool) or variant < 0:
            add(Problem("bounds", "variant is not a non-negative integer", seq=seq))
            continue
        if variant == 0:
            if not policy.include_original:
                add(Problem("bounds", "a de-identified original (variant 0) the policy does not include", seq=seq))
            if r.get("params") is not None:
                add(Problem("bounds", "variant 0 carries transform parameters", seq=seq))
            continue
        if variant > policy.variants_per_series:
            add(Problem("bounds", f"variant {variant} beyond the policy's variants_per_series", seq=seq))
        seed = r.get("seed")
        if not isinstance(seed, dict) or seed.get("run_seed") != policy.seed or seed.get("variant") != variant:
            add(Problem("bounds", "seed is not the policy's run seed and this variant", seq=seq))
        try:
            params = VariantParams.from_json(r.get("params"))  # type: ignore[arg-type]
        except TransformError as exc:
            add(Problem("bounds", f"params do not parse: {exc}", seq=seq))
            continue
        for message in violations(params, policy.augment):
            add(Problem("bounds", message, seq=seq))
        jmin: Any = r.get("min_jacobian")
        jmax: Any = r.get("max_jacobian")
        if not _is_number(jmin) or not float(jmin) > 0:
            add(Problem("bounds", "min_jacobian is not > 0 (the variant may fold)", seq=seq))
        elif not _is_number(jmax) or float(jmax) < float(jmin):
            add(Problem("bounds", "max_jacobian is below min_jacobian", seq=seq))
        if params.is_spatial != (r.get("frame_of_reference") is not None):
            add(Problem("bounds", "frame_of_reference does not match whether the variant moves voxels", seq=seq))


def _check_labels(records: list[dict[str, Any]], add: Add) -> None:
    from medaug.augment.variant import VariantParams
    from medaug.errors import TransformError

    # Per image series, whether each written series moved voxels, in variant order.
    moved: dict[str, dict[int, bool]] = {}
    for _, derive in rec.of_type(records, rec.OriginalDerive):
        moved.setdefault(str(derive.series), {})[int(derive.variant)] = False
    for _, variant in rec.of_type(records, rec.VariantDerive):
        try:
            spatial = VariantParams.from_json(variant.params).is_spatial  # type: ignore[arg-type]
        except (TransformError, TypeError, ValueError):
            spatial = True  # reported by the bounds check; nothing is claimed of its labels
        moved.setdefault(str(variant.series), {})[int(variant.variant)] = spatial
    for seq, label in rec.of_type(records, rec.Label):
        rows = [spatial for _, spatial in sorted(moved.get(str(label.series), {}).items())]
        if len(label.ratios) != len(rows):
            add(Problem("bounds", f"a label has {len(label.ratios)} ratio rows for {len(rows)} written series", seq=seq))
            continue
        for n, (row, spatial) in enumerate(zip(label.ratios, rows)):
            if len(row) != label.segments:
                add(Problem("bounds", f"ratio row {n} of a label has {len(row)} values for {label.segments} segments",
                            seq=seq))
            elif not spatial and any(r != 1.0 for r in row):
                add(Problem("bounds", f"ratio row {n} of a label is not 1 where no voxel moved", seq=seq))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_signature(outdir: Path, head: str, key: Any, add: Add) -> None:
    from medaug.audit.signing import signature_problems

    path = layout.signature_path(outdir)
    if not path.is_file():
        add(Problem("signature", "no signature file, but a public key was given", path=layout.LAYOUT.signature))
        return
    signature = _load_json(path)
    for message in signature_problems(signature, head, key):
        add(Problem("signature", message, path=layout.LAYOUT.signature))


def format_result(result: VerifyResult) -> str:
    """The human-readable report of ``audit verify``."""
    lines = [f"audit log: {result.records} records, head {result.head}", f"files under {layout.LAYOUT.images}/: {result.files}"]
    for check in result.checked:
        lines.append(f"  {check:<10} {'FAIL' if result.failed(check) else 'ok'}")
    for p in result.problems:
        lines.append(f"problem: {p}")
    for note in result.notes:
        lines.append(f"note: {note}")
    lines.append("verified: all checks pass" if result.ok else f"NOT verified: {len(result.problems)} problem(s)")
    return "\n".join(lines) + "\n"
