"""``medaug audit trace``: link outputs to their source files, with the run's key.

For data stewards only. The log names a source file by its keyed pseudonym
(``F-…``, an HMAC of its path relative to the archive); with the key, every
file of the archive is pseudonymised the same way (by the pipeline's own
:meth:`medaug.pipeline.context.RunContext.source_pseudonym`) and matched. With a
patient ID, the patient pseudonym is recomputed
(:meth:`medaug.deid.pseudonyms.Pseudonymizer.patient_id`) and the outputs of that
patient's series are listed: what to withdraw when consent is withdrawn.

The output of trace holds source paths relative to the archive. That is
acceptable only because trace is a steward's tool that needs the secret key
and the archive itself; never publish what it prints. The patient ID given is
never echoed.

Mapping rules (``docs/audit.md``): a de-identified original (variant 0) keeps
the SOP Instance UID its ``ingest`` record gives; a variant's files are written
in the order of its series' instances, so the k-th output file of a variant
series derives from the k-th ingested instance (a multi-frame file from all of
its series' instances).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medaug.audit.chain import check_chain, read_lines
from medaug.deid.keys import Key
from medaug.errors import UsageError


@dataclass(frozen=True)
class TraceEntry:
    """One output and where it came from.

    Attributes
    ----------
    output : str
        Path inside the dataset.
    variant : int
        0 for the de-identified original.
    patient : str
        Patient pseudonym.
    sources : tuple of str
        Source files relative to the archive (``?F-…`` when a source is no longer there).
    """

    output: str
    variant: int
    patient: str
    sources: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {"output": self.output, "variant": self.variant, "patient": self.patient, "sources": list(self.sources)}


@dataclass
class TraceResult:
    """Outcome of :func:`trace_dataset`."""

    entries: list[TraceEntry] = field(default_factory=list)
    patient: str | None = None
    unmatched_sources: int = 0

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (what ``--json`` prints)."""
        return {
            "patient": self.patient,
            "outputs": [e.to_json() for e in self.entries],
            "unmatched_sources": self.unmatched_sources,
        }


def check_key(records: list[dict[str, Any]], key: Key) -> None:
    """Refuse a key other than the run's.

    Raises
    ------
    UsageError
        When run_start is missing or its key fingerprint is not the key's.
    """
    start = records[0] if records and records[0].get("type") == "run_start" else None
    if start is None:
        raise UsageError("the audit log has no run_start record; cannot check the key")
    if start.get("key_fingerprint") != key.fingerprint:
        raise UsageError("this is not the key the dataset was made with (key fingerprints differ); refusing to trace")


def _context(records: list[dict[str, Any]], key: Key, archive: Path, outdir: Path) -> Any:
    """The run's context, rebuilt from the recorded policy, to reuse its source pseudonyms."""
    from medaug.pipeline.context import RunContext
    from medaug.policy.load import policy_from_mapping

    policy = policy_from_mapping(records[0]["policy"]["content"])
    return RunContext(policy=policy, key=key, archive=archive.resolve(), outdir=outdir.resolve())


def trace_dataset(outdir: Path, key: Key, archive: Path, *, patient_id: str | None = None) -> TraceResult:
    """Map every output of ``outdir`` to its source files in ``archive``.

    Parameters
    ----------
    outdir : Path
        The dataset folder.
    key : Key
        The run's secret key.
    archive : Path
        The source archive the run read.
    patient_id : str, optional
        List only the outputs derived from this patient.

    Returns
    -------
    TraceResult

    Raises
    ------
    UsageError
        Wrong key, missing folders or an unreadable log.
    """
    from medaug.deid.pseudonyms import Pseudonymizer, patient_identity
    from medaug.ingest.discover import walk_files

    outdir, archive = Path(outdir), Path(archive)
    if not archive.is_dir():
        raise UsageError("the archive is not a folder")
    try:
        records, _problems = check_chain(read_lines(outdir / "audit" / "log.jsonl"))
    except (OSError, UnicodeDecodeError):
        raise UsageError("the dataset's audit log cannot be read") from None
    check_key(records, key)
    ctx = _context(records, key, archive, outdir)
    by_pseudonym = {ctx.source_pseudonym(p): p.relative_to(ctx.archive).as_posix() for p in walk_files(ctx.archive)}

    patient_of: dict[str, str] = {}
    instances: dict[str, list[tuple[str, str]]] = {}  # source series -> [(instance, source pseudonym)]
    variant_of: dict[str, tuple[str, int]] = {}  # output series -> (source series, variant)
    for r in records:
        t = r.get("type")
        if t == "series":
            patient_of[r["series"]] = r["patient"]
            variant_of[r["series"]] = (r["series"], 0)
        elif t == "ingest":
            instances.setdefault(r["series"], []).append((r["instance"], r["source"]))
        elif t == "derive" and r.get("variant_series"):
            variant_of[r["variant_series"]] = (r["series"], int(r["variant"]))

    wanted = None
    if patient_id is not None:
        wanted = Pseudonymizer(key).patient_id(patient_identity(patient_id, ""))
    result = TraceResult(patient=wanted)
    position: dict[str, int] = {}
    files_of_series = Counter(str(r.get("series")) for r in records if r.get("type") == "output")
    sources_used: set[str] = set()
    for r in records:
        if r.get("type") != "output":
            continue
        series, variant = variant_of.get(r["series"], (r["series"], int(r.get("variant", 0))))
        k = position.get(r["series"], 0)
        position[r["series"]] = k + 1
        members = instances.get(series, [])
        if variant == 0:
            pseudos = [s for uid, s in members if uid == r["instance"]]
        else:
            whole = files_of_series[r["series"]] == 1  # one multi-frame file (or a single slice)
            pseudos = [s for _, s in members] if whole else [s for _, s in members[k : k + 1]]
        patient = patient_of.get(series, "")
        if wanted is not None and patient != wanted:
            continue
        sources_used.update(pseudos)
        result.entries.append(
            TraceEntry(r["path"], variant, patient, tuple(by_pseudonym.get(s, "?" + s) for s in pseudos))
        )
    result.unmatched_sources = sum(1 for s in sources_used if s not in by_pseudonym)
    return result


def format_result(result: TraceResult) -> str:
    """The human-readable listing (holds source paths: for the steward's eyes only)."""
    lines = []
    if result.patient is not None:
        lines.append(f"outputs derived from the patient (pseudonym {result.patient}): {len(result.entries)}")
    for e in result.entries:
        lines.append(f"{e.output}\tv{e.variant}\t<- {', '.join(e.sources) or '(no source recorded)'}")
    if result.unmatched_sources:
        lines.append(f"{result.unmatched_sources} source pseudonym(s) match no file of the archive (moved or renamed?)")
    return "\n".join(lines) + "\n"
