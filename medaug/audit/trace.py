"""``medaug audit trace``: link outputs to their source files, with the run's key.

For data stewards only. The log names a source file by its keyed pseudonym
(``F-…``, an HMAC of its path relative to the archive); with the key, every
file of the archive is pseudonymised the same way
(:meth:`medaug.deid.pseudonyms.Pseudonymizer.source_file`, as the run does) and
matched; the recorded policy is not needed. With a
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
from medaug.dataset import layout
from medaug.dataset import records as rec
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
    #: With a patient ID: whether any file of the archive holds it (None without one).
    patient_in_archive: bool | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (what ``--json`` prints)."""
        return {
            "patient": self.patient,
            "outputs": [e.to_json() for e in self.entries],
            "unmatched_sources": self.unmatched_sources,
            "patient_in_archive": self.patient_in_archive,
        }


def check_key(records: list[dict[str, Any]], key: Key) -> None:
    """Refuse a key other than the run's.

    Raises
    ------
    UsageError
        When run_start is missing or its key fingerprint is not the key's.
    """
    start = records[0] if records and rec.is_type(records[0], rec.RunStart) else None
    if start is None:
        raise UsageError("the audit log has no run_start record; cannot check the key")
    if start.get("key_fingerprint") != key.fingerprint:
        raise UsageError("this is not the key the dataset was made with (key fingerprints differ); refusing to trace")


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
    from medaug.deid.pseudonyms import patient_identity, pseudonymizer
    from medaug.ingest.discover import walk_files

    outdir, archive = Path(outdir), Path(archive)
    if not archive.is_dir():
        raise UsageError("the archive is not a folder")
    try:
        records, _problems = check_chain(read_lines(layout.log_path(outdir)))
    except (OSError, UnicodeDecodeError):
        raise UsageError("the dataset's audit log cannot be read") from None
    check_key(records, key)
    pseudo = pseudonymizer(key)
    root = archive.resolve()
    by_pseudonym = {pseudo.source_file(p.relative_to(root).as_posix()): p.relative_to(root).as_posix() for p in walk_files(root)}

    patient_of: dict[str, str] = {}
    instances: dict[str, list[tuple[str, str]]] = {}  # source series -> [(instance, source pseudonym)]
    variant_of: dict[str, tuple[str, int]] = {}  # output series -> (source series, variant)
    for _, series_record in rec.of_type(records, rec.SeriesRecord):
        patient_of[series_record.series] = series_record.patient
        variant_of[series_record.series] = (series_record.series, 0)
    for _, ingest in rec.of_type(records, rec.Ingest):
        instances.setdefault(ingest.series, []).append((ingest.instance, ingest.source))
    for _, derive in rec.of_type(records, rec.VariantDerive):
        variant_of[derive.variant_series] = (derive.series, derive.variant)

    wanted = None
    if patient_id is not None:
        wanted = pseudo.patient_id(patient_identity(patient_id, ""))
    result = TraceResult(patient=wanted)
    position: dict[str, int] = {}
    outputs = [output for _, output in rec.of_type(records, rec.Output)]
    files_of_series = Counter(output.series for output in outputs)
    sources_used: set[str] = set()
    # Label objects: a label file's folder names its image series; its number, which label of it.
    labels_of: dict[str, list[str]] = {}
    for _, label in rec.of_type(records, rec.Label):
        labels_of.setdefault(label.series, []).append(label.source)
    series_of_folder: dict[str, str] = {}
    for output in outputs:
        if layout.label_number(output.path) is None:
            series_of_folder.setdefault(layout.series_folder_of(output.path), output.series)
    for output in outputs:
        number = layout.label_number(output.path)
        if number is not None:
            image_series = series_of_folder.get(layout.series_folder_of(output.path), "")
            series, variant = variant_of.get(image_series, (image_series, output.variant))
            pseudos = labels_of.get(series, [])[number - 1 : number]
        else:
            series, variant = variant_of.get(output.series, (output.series, output.variant))
            k = position.get(output.series, 0)
            position[output.series] = k + 1
            members = instances.get(series, [])
            if variant == 0:
                pseudos = [s for uid, s in members if uid == output.instance]
            else:
                whole = files_of_series[output.series] == 1  # one multi-frame file (or a single slice)
                pseudos = [s for _, s in members] if whole else [s for _, s in members[k : k + 1]]
        patient = patient_of.get(series, "")
        if wanted is not None and patient != wanted:
            continue
        sources_used.update(pseudos)
        result.entries.append(
            TraceEntry(output.path, variant, patient, tuple(by_pseudonym.get(s, "?" + s) for s in pseudos))
        )
    result.unmatched_sources = sum(1 for s in sources_used if s not in by_pseudonym)
    if patient_id is not None:
        result.patient_in_archive = _holds_patient(root, patient_id)
    return result


def _holds_patient(root: Path, patient_id: str) -> bool:
    """Whether any file of the archive has this Patient ID (headers only; the ID is never shown)."""
    import warnings

    import pydicom

    from medaug.ingest.discover import walk_files

    wanted = patient_id.strip()
    for path in walk_files(root):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path, force=True, stop_before_pixels=True, specific_tags=["PatientID"])
        except Exception:  # noqa: BLE001 - an unreadable file holds no patient we can name
            continue
        if str(ds.get("PatientID", "") or "").strip() == wanted:
            return True
    return False


def format_result(result: TraceResult) -> str:
    """The human-readable listing (holds source paths: for the steward's eyes only)."""
    lines = []
    if result.patient is not None:
        if result.patient_in_archive is False:
            lines.append("no file of the archive holds this patient ID (check the ID): nothing to withdraw")
        elif not result.entries:
            lines.append(f"the patient (pseudonym {result.patient}) is in the archive but has no outputs in this dataset")
        else:
            lines.append(f"outputs derived from the patient (pseudonym {result.patient}): {len(result.entries)}")
    for e in result.entries:
        lines.append(f"{e.output}\tv{e.variant}\t<- {', '.join(e.sources) or '(no source recorded)'}")
    if result.unmatched_sources:
        lines.append(f"{result.unmatched_sources} source pseudonym(s) match no file of the archive (moved or renamed?)")
    return "\n".join(lines) + "\n"
