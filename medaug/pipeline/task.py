"""One series, start to finish: load → de-identify → variants → write → audit records.

A task is a pure function of (series, run context): it writes its output files
atomically, then its audit records as one *fragment* file, also atomically. A
fragment is the proof that a series is done; ``--resume`` skips series whose
fragment and outputs are intact, so a task killed half-way is simply run again
and ends with the same bytes.
"""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from numpy.typing import NDArray
from pydicom.dataset import Dataset

from medaug.atomic import flush_to_disk, storage_failure, write_atomic
from medaug.augment.variant import apply_variant, elastic_acts, not_applied, variant_params, violations
from medaug.canonical import canonical_json, sha256_file
from medaug.dataset import layout
from medaug.dataset import records as rec
from medaug.deid.pseudonyms import pseudonymizer
from medaug.deid.gate import check_outputs, source_identifiers
from medaug.deid.series import deidentify_series
from medaug.errors import DeidentificationError, InputError, TransformError, WriteError
from medaug.ingest.grouping import Quarantined, SeriesRef
from medaug.ingest.image import SeriesImage
from medaug.ingest.labels import LabelFile
from medaug.ingest.volume import load_series
from medaug.pipeline.context import RunContext
from medaug.write.derivation import (
    DEIDENTIFYING_EQUIPMENT,
    PROCESSING_EQUIPMENT,
    add_contributing_equipment,
    derivation_codes,
)
from medaug.write.labels import WrittenSeries, carry
from medaug.write.series import write_series
from medaug.write.template import file_writer

#: Reason code of a series whose (de-identified) header cannot be encoded as DICOM.
UNENCODABLE_HEADER = "unencodable-header"
#: Reason code of a series lost to an unexpected error (the class name is recorded, never the message).
INTERNAL_ERROR = "internal-error"

@dataclass(frozen=True)
class SeriesTask:
    """What a worker needs for one series.

    Parameters
    ----------
    index : int
        Position of the series in the run (its fragment's name).
    ref : SeriesRef
        The series, as the header pass grouped it.
    """

    index: int
    ref: SeriesRef
    #: Label objects (SEG, RTSTRUCT) of the archive that reference this series.
    labels: tuple[LabelFile, ...] = ()


@dataclass
class SeriesOutcome:
    """The audit records of one series and its counts."""

    index: int
    records: list[dict[str, Any]] = field(default_factory=list)
    written: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    #: Variants in which a transform the policy allows could not act, by reason code.
    not_applied: dict[str, int] = field(default_factory=dict)

    def add(self, record: rec.Record) -> None:
        """Append one record (built through :mod:`medaug.dataset.records`)."""
        self.records.append(record.to_json())

    def quarantine(self, reason: str, source: str) -> None:
        """Record one quarantined source file."""
        self.add(rec.Quarantine(source=source, reason=reason))
        self.quarantined[reason] = self.quarantined.get(reason, 0) + 1

    def skip(self, reason: str, source: str) -> None:
        """Record one source file of a series the policy does not cover."""
        self.add(rec.Skip(source=source, reason=reason))
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def to_json(self) -> dict[str, Any]:
        """The fragment's content."""
        return {"index": self.index, "records": self.records, "written": self.written,
                "quarantined": self.quarantined, "skipped": self.skipped, "not_applied": self.not_applied}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SeriesOutcome":
        """Rebuild from a fragment."""
        return cls(data["index"], list(data["records"]), int(data["written"]), dict(data["quarantined"]),
                   dict(data["skipped"]), dict(data["not_applied"]))


def read_fragment(outdir: Path, index: int) -> SeriesOutcome:
    """The outcome series ``index`` recorded in its fragment.

    Raises
    ------
    OSError, ValueError, KeyError, TypeError
        When the fragment is missing or damaged.
    """
    return SeriesOutcome.from_json(json.loads(layout.fragment_path(outdir, index).read_text()))


def completed(outdir: Path, index: int) -> SeriesOutcome | None:
    """The outcome of a series finished by an earlier (interrupted) run, if intact."""
    try:
        outcome = read_fragment(outdir, index)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for _, output in rec.of_type(outcome.records, rec.Output):
        out = outdir / output.path
        if not out.is_file() or sha256_file(out) != output.sha256:
            return None
    return outcome


def run_series(task: SeriesTask, ctx: RunContext) -> SeriesOutcome:
    """Process one series and record it (flush, then its fragment); never raises for bad input.

    Parameters
    ----------
    task : SeriesTask
        The series.
    ctx : RunContext
        The run's policy, key and folders.

    Returns
    -------
    SeriesOutcome
        Its audit records (also written as the series' fragment).
    """
    outcome = process_series(task, ctx)
    record_series(outcome, ctx.outdir)
    return outcome


def process_series(task: SeriesTask, ctx: RunContext) -> SeriesOutcome:
    """Process one series: its outputs are written but not yet durable, and no fragment exists.

    :func:`record_series` must follow, in any process on the same machine: a local
    pool leaves it to the parent, so workers go on to the next series while the
    parent waits for the disk.
    """
    outcome = SeriesOutcome(task.index)
    sources = [ctx.source_pseudonym(p) for p in task.ref.files]
    # A series' label objects share its fate when it is skipped or quarantined.
    every = sources + [ctx.source_pseudonym(label.path) for label in task.labels]
    folders: list[Path] = []  # the series' output folders, as they are started
    try:
        with warnings.catch_warnings():
            # pydicom warns while copying or converting a damaged header, quoting the value.
            warnings.simplefilter("ignore")
            first = task.ref.records[0]
            out_of_scope = ctx.policy.out_of_scope(task.ref.modality, body_part=first.body_part,
                                                   image_type=first.image_type, anatomic_region=first.anatomic_region)
            if out_of_scope is not None:
                for source in every:
                    outcome.skip(out_of_scope, source)
            else:
                _process(task, ctx, sources, outcome, folders)
    except (InputError, DeidentificationError) as exc:
        _discard(folders)
        outcome = SeriesOutcome(task.index)
        for source in every:
            outcome.quarantine(exc.reason, source)
    except WriteError:
        # A header element pydicom cannot encode as its VR says (a value of the wrong VR):
        # the input's fault, named as such, not an internal error.
        _discard(folders)
        outcome = SeriesOutcome(task.index)
        for source in every:
            outcome.quarantine(UNENCODABLE_HEADER, source)
    except Exception as exc:
        # Unexpected (an input no check foresaw, or a defect of ours): the series is
        # quarantined whole and the batch goes on. Only the exception's class is
        # recorded; a message from a library could quote a value.
        if storage_failure(exc) is not None:
            raise
        _discard(folders)
        outcome = SeriesOutcome(task.index)
        for source in every:
            outcome.quarantine(f"{INTERNAL_ERROR}:{type(exc).__name__}", source)
    return outcome


def record_series(outcome: SeriesOutcome, outdir: Path) -> None:
    """Make a processed series' outputs durable, then write its fragment (which says they exist).

    Outputs are written without an fsync each; one flush of the output's file
    system makes them all durable.
    """
    flush_to_disk(outdir)
    fragment = layout.fragment_path(outdir, outcome.index)
    fragment.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(fragment, lambda f: f.write(canonical_json(outcome.to_json()).encode("ascii")))


def _discard(folders: list[Path]) -> None:
    """Remove the outputs of a series that is quarantined after it began writing.

    Its files are not in the audit log, so none may stay in the dataset. Each folder
    belongs to this one volume; anything else at that path (not a folder) is left alone.
    """
    for folder in folders:
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder)


def _process(
    task: SeriesTask, ctx: RunContext, sources: list[str], outcome: SeriesOutcome, folders: list[Path]
) -> None:
    elastic = ctx.policy.augment.elastic
    # The working-memory estimate counts the control grid the policy's spacing implies, when
    # one is built for this series at all.
    grid = elastic_acts(ctx.policy.augment, task.ref.geometry)
    loaded = load_series(task.ref, control_spacing_mm=elastic.control_spacing_mm if elastic and grid else None)
    by_path = {p: s for p, s in zip(task.ref.files, sources)}
    for q in loaded.quarantined:
        outcome.quarantine(q.reason, by_path.get(q.path, ctx.source_pseudonym(q.path)))
    kept_sources = [by_path[p] for p in _kept_paths(task.ref, loaded.quarantined)]

    policy = ctx.policy
    source_headers = loaded.image.headers
    image = deidentify_series(loaded.image, policy.deid, ctx.key)
    first = image.headers[0]
    series_uid = str(first.SeriesInstanceUID)
    patient = str(first.get("PatientID", "")) or "UNKNOWN"
    instance_uids = [str(h.SOPInstanceUID) for h in image.headers]

    def folder(variant: int) -> Path:
        place = layout.SeriesFolder.of(
            patient=patient,
            study_uid=str(first.get("StudyInstanceUID", "")),
            series_uid=series_uid,
            first_instance_uid=instance_uids[0],
            variant=variant,
        )
        folders.append(place.path(ctx.outdir))
        return folders[-1]

    outcome.add(
        rec.SeriesRecord(
            series=series_uid,
            patient=patient,
            modality=task.ref.modality,
            kind=task.ref.kind,
            shape=tuple(image.geometry.shape),
            problems=tuple(sorted(image.problems)),
            instances=len(image.headers),
        )
    )
    for uid, source in zip(instance_uids, kept_sources):
        outcome.add(rec.Ingest(series=series_uid, instance=uid, source=source))
    for k, boxes in image.redactions:
        outcome.add(rec.Redaction(series=series_uid, slice=k, boxes=boxes))

    transfer_syntax = policy.output.transfer_syntax_uid
    per_file = _per_file(image, instance_uids)
    writer = file_writer(ctx.writer)  # one per series: its variants share most of the header
    written: list[WrittenSeries] = []
    if policy.include_original:
        result = write_series(
            image,
            folder(0),
            series_uid=series_uid,
            sop_instance_uids=per_file,
            file_names=layout.image_names(len(per_file)),
            transfer_syntax=transfer_syntax,
            extra=_mark_deidentified,
            durable=False,
            writer=writer,
        )
        outcome.add(rec.OriginalDerive(series=series_uid, clipped=result.clipped))
        _record_outputs(outcome, ctx.outdir, result.paths, series_uid, per_file, 0, result.sha256)
        written.append(WrittenSeries(0, folders[-1], tuple(result.paths), None))

    pseudo = pseudonymizer(ctx.key)
    value_range = None if image.is_colour else image.modality_range
    unapplied = not_applied(policy.augment, geometry=image.geometry, regular=image.regular_grid)
    # The last variant's pixels once written: the next is warped into them (see resample's ``out``).
    done_with: NDArray[Any] | None = None
    for v in range(1, policy.variants_per_series + 1):
        params = variant_params(
            policy.augment, seed=policy.seed, series_key=series_uid, variant=v,
            geometry=image.geometry, modality=image.modality, regular=image.regular_grid,
        )
        if violations(params, policy.augment):
            raise TransformError("a sampled variant left the policy's bounds")  # a defect of ours
        applied = apply_variant(image.data, image.geometry, params, modality=image.modality, value_range=value_range,
                                out=done_with)
        variant_uid = pseudo.uid(f"medaug-variant-{v}:{series_uid}")
        sop_uids = [pseudo.uid(f"medaug-variant-{v}:{uid}") for uid in per_file]
        frame_uid = pseudo.uid(f"medaug-variant-{v}-frame:{series_uid}") if params.is_spatial else None
        result = write_series(
            replace(image, data=applied.data),
            folder(v),
            series_uid=variant_uid,
            sop_instance_uids=sop_uids,
            file_names=layout.image_names(len(sop_uids)),
            frame_of_reference_uid=frame_uid,
            derived=True,
            derivation_codes=derivation_codes(params),
            derivation_description=f"medaug variant {v}",
            transfer_syntax=transfer_syntax,
            extra=_mark_derived,
            durable=False,
            writer=writer,
        )
        outcome.add(
            rec.VariantDerive(
                series=series_uid,
                variant=v,
                variant_series=variant_uid,
                frame_of_reference=frame_uid,
                params=params.to_json(),
                seed={"run_seed": policy.seed, "variant": v},
                min_jacobian=applied.min_jacobian,
                max_jacobian=applied.max_jacobian,
                clipped=result.clipped,
                not_applied=tuple(unapplied),
            )
        )
        for code in unapplied:
            outcome.not_applied[code] = outcome.not_applied.get(code, 0) + 1
        _record_outputs(outcome, ctx.outdir, result.paths, variant_uid, sop_uids, v, result.sha256)
        written.append(WrittenSeries(v, folders[-1], tuple(result.paths), params))
        done_with = applied.data
    _carry_labels(task, ctx, outcome, image, source_headers, series_uid, written)
    # The release gate: nothing of this series' own sources may be in what it wrote.
    outputs = [ctx.outdir / r["path"] for r in outcome.records if r.get("type") == rec.Output.TYPE]
    check_outputs(outputs, ctx.outdir, source_identifiers(source_headers, policy.deid), options=policy.deid)


def _carry_labels(
    task: SeriesTask, ctx: RunContext, outcome: SeriesOutcome, image: SeriesImage,
    source_headers: tuple[Dataset, ...], series_uid: str, written: list[WrittenSeries],
) -> None:
    """Carry the series' label objects into every series it wrote (or quarantine those that do not fit).

    A label follows its image whatever the layout: the frames of a multi-frame object, or the
    real slice planes of an unevenly spaced stack (whose variants are never resampled, so
    neither are its labels).
    """
    pseudo = pseudonymizer(ctx.key)
    instances = tuple(str(h.SOPInstanceUID) for h in source_headers)
    for number, label in enumerate(task.labels, start=1):
        source = ctx.source_pseudonym(label.path)
        try:
            carried = carry(label, number, image=image, source_instance_uids=instances, written=written,
                            uid=lambda name: pseudo.uid(f"{name}:{series_uid}"))
        except InputError as exc:
            outcome.quarantine(exc.reason, source)
            continue
        outcome.add(rec.Label(series=series_uid, source=source, kind=carried.kind, segments=carried.segments,
                              ratios=carried.ratios))
        for file, label_series, label_instance, variant in carried.files:
            _record_outputs(outcome, ctx.outdir, [file], label_series, [label_instance], variant)


def _mark_deidentified(ds: Dataset, _k: int) -> None:
    add_contributing_equipment(ds, DEIDENTIFYING_EQUIPMENT)


def _mark_derived(ds: Dataset, _k: int) -> None:
    add_contributing_equipment(ds, DEIDENTIFYING_EQUIPMENT)
    add_contributing_equipment(ds, PROCESSING_EQUIPMENT)


def _record_outputs(
    outcome: SeriesOutcome, outdir: Path, paths: list[Path], series_uid: str, sop_uids: list[str], variant: int,
    digests: list[str] | None = None,
) -> None:
    """Output records of written files; ``digests`` when the writer hashed what it wrote (else read back)."""
    for n, (path, uid) in enumerate(zip(paths, sop_uids)):
        outcome.add(
            rec.Output(
                path=path.relative_to(outdir).as_posix(),
                sha256=digests[n] if digests is not None else sha256_file(path),
                series=series_uid,
                instance=uid,
                variant=variant,
            )
        )
        outcome.written += 1


def _per_file(image: SeriesImage, instance_uids: list[str]) -> list[str]:
    return instance_uids[:1] if image.multiframe else instance_uids


def _kept_paths(ref: SeriesRef, quarantined: list[Quarantined]) -> list[Path]:
    dropped = {q.path for q in quarantined}
    return [p for p in ref.files if p not in dropped]
