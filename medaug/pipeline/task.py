"""One series, start to finish: load → de-identify → variants → write → audit records.

A task is a pure function of (series, run context): it writes its output files
atomically, then its audit records as one *fragment* file, also atomically. A
fragment is the proof that a series is done; ``--resume`` skips series whose
fragment and outputs are intact, so a task killed half-way is simply run again
and ends with the same bytes.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from medaug.canonical import canonical_json, sha256_file
from medaug.augment.variant import (
    VariantParams,
    apply_variant,
    sample_variant,
    variant_rng,
)
from medaug.deid import burned_in
from medaug.deid.engine import deidentify
from medaug.deid.pseudonyms import Pseudonymizer
from medaug.errors import DeidentificationError, InputError
from medaug.ingest.grouping import Quarantined, SeriesRef
from medaug.ingest.image import SeriesImage
from medaug.ingest.volume import load_series
from medaug.pipeline.context import RunContext
from medaug.policy.model import Policy
from medaug.atomic import flush_to_disk, storage_failure, write_atomic
from medaug.write.derivation import (
    DEIDENTIFYING_EQUIPMENT,
    PIXEL_ADDITION,
    PIXEL_MULTIPLICATION,
    PROCESSING_EQUIPMENT,
    SPATIAL_RESAMPLING,
    Code,
    add_contributing_equipment,
)
from medaug.write.series import write_series

#: Reason code of a series lost to an unexpected error (the class name is recorded, never the message).
INTERNAL_ERROR = "internal-error"
#: Reason code of a series whose modality the policy does not cover.
NOT_IN_POLICY = "modality-not-in-policy"

FRAGMENT_DIR = Path(".work") / "series"


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


@dataclass
class SeriesOutcome:
    """The audit records of one series and its counts."""

    index: int
    records: list[dict[str, Any]] = field(default_factory=list)
    written: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)

    def quarantine(self, reason: str, source: str) -> None:
        """Record one quarantined source file."""
        self.records.append({"type": "quarantine", "source": source, "reason": reason})
        self.quarantined[reason] = self.quarantined.get(reason, 0) + 1

    def to_json(self) -> dict[str, Any]:
        """The fragment's content."""
        return {"index": self.index, "records": self.records, "written": self.written, "quarantined": self.quarantined}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SeriesOutcome":
        """Rebuild from a fragment."""
        return cls(data["index"], list(data["records"]), int(data["written"]), dict(data["quarantined"]))


def fragment_path(outdir: Path, index: int) -> Path:
    """Where the fragment of series ``index`` lives."""
    return outdir / FRAGMENT_DIR / f"{index:06d}.json"




def read_fragment(outdir: Path, index: int) -> SeriesOutcome:
    """The outcome series ``index`` recorded in its fragment.

    Raises
    ------
    OSError, ValueError, KeyError, TypeError
        When the fragment is missing or damaged.
    """
    return SeriesOutcome.from_json(json.loads(fragment_path(outdir, index).read_text()))


def completed(outdir: Path, index: int) -> SeriesOutcome | None:
    """The outcome of a series finished by an earlier (interrupted) run, if intact."""
    try:
        outcome = read_fragment(outdir, index)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for record in outcome.records:
        if record.get("type") == "output":
            out = outdir / record["path"]
            if not out.is_file() or sha256_file(out) != record["sha256"]:
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
    folders: list[Path] = []  # the series' output folders, as they are started
    try:
        with warnings.catch_warnings():
            # pydicom warns while copying or converting a damaged header, quoting the value.
            warnings.simplefilter("ignore")
            if not ctx.policy.covers(task.ref.modality):
                for source in sources:
                    outcome.quarantine(NOT_IN_POLICY, source)
            else:
                _process(task, ctx, sources, outcome, folders)
    except (InputError, DeidentificationError) as exc:
        _discard(folders)
        outcome = SeriesOutcome(task.index)
        for source in sources:
            outcome.quarantine(exc.reason, source)
    except Exception as exc:
        # Unexpected (an input no check foresaw, or a defect of ours): the series is
        # quarantined whole and the batch goes on. Only the exception's class is
        # recorded; a message from a library could quote a value.
        if storage_failure(exc) is not None:
            raise
        _discard(folders)
        outcome = SeriesOutcome(task.index)
        for source in sources:
            outcome.quarantine(f"{INTERNAL_ERROR}:{type(exc).__name__}", source)
    return outcome


def record_series(outcome: SeriesOutcome, outdir: Path) -> None:
    """Make a processed series' outputs durable, then write its fragment (which says they exist).

    Outputs are written without an fsync each; one flush of the output's file
    system makes them all durable.
    """
    flush_to_disk(outdir)
    fragment = fragment_path(outdir, outcome.index)
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
    loaded = load_series(task.ref)
    image = loaded.image
    by_path = {p: s for p, s in zip(task.ref.files, sources)}
    for q in loaded.quarantined:
        outcome.quarantine(q.reason, by_path.get(q.path, ctx.source_pseudonym(q.path)))
    kept_sources = [by_path[p] for p in _kept_paths(task.ref, loaded.quarantined)]

    image = deidentify_series(image, ctx)
    clean_headers = list(image.headers)

    first = clean_headers[0]
    pseudo = Pseudonymizer(ctx.key)
    series_uid = str(first.SeriesInstanceUID)
    patient = str(first.get("PatientID", "")) or "UNKNOWN"
    study_dir = "st-" + hashlib.sha256(str(first.get("StudyInstanceUID", "")).encode()).hexdigest()[:12]
    # One folder per volume: a source series can hold several (echoes, phases, multi-frame
    # objects), so the token covers the volume's first instance as well as its series.
    volume_token = f"{series_uid}/{first.SOPInstanceUID}"
    series_dir = "se-" + hashlib.sha256(volume_token.encode()).hexdigest()[:12]
    base = Path("dicom") / patient / study_dir

    outcome.records.append(
        {
            "type": "series",
            "series": series_uid,
            "patient": patient,
            "modality": task.ref.modality,
            "kind": task.ref.kind,
            "shape": list(image.geometry.shape),
            "problems": sorted(image.problems),
            "instances": len(clean_headers),
        }
    )
    instance_uids = [str(h.SOPInstanceUID) for h in clean_headers]
    for uid, source in zip(instance_uids, kept_sources):
        outcome.records.append({"type": "ingest", "series": series_uid, "instance": uid, "source": source})

    policy = ctx.policy
    transfer_syntax = policy.output.transfer_syntax_uid
    if policy.include_original:
        folders.append(ctx.outdir / base / f"{series_dir}-v0")
        result = write_series(
            image,
            folders[-1],
            series_uid=series_uid,
            sop_instance_uids=_per_file(image, instance_uids),
            transfer_syntax=transfer_syntax,
            extra=_mark_deidentified,
            durable=False,
        )
        outcome.records.append({"type": "derive", "series": series_uid, "variant": 0, "params": None, "clipped": result.clipped})
        _record_outputs(outcome, ctx.outdir, result.paths, series_uid, _per_file(image, instance_uids), 0)

    value_range = None if image.is_colour else image.modality_range
    for v in range(1, policy.variants_per_series + 1):
        params = variant_params(image, policy, series_uid, v)
        applied = apply_variant(image.data, image.geometry, params, modality=image.modality, value_range=value_range)
        variant_uid = pseudo.uid(f"medaug-variant-{v}:{series_uid}")
        sop_uids = [pseudo.uid(f"medaug-variant-{v}:{uid}") for uid in _per_file(image, instance_uids)]
        frame_uid = pseudo.uid(f"medaug-variant-{v}-frame:{series_uid}") if params.is_spatial else None
        folders.append(ctx.outdir / base / f"{series_dir}-v{v}")
        result = write_series(
            replace(image, data=applied.data),
            folders[-1],
            series_uid=variant_uid,
            sop_instance_uids=sop_uids,
            frame_of_reference_uid=frame_uid,
            derived=True,
            derivation_codes=_derivation_codes(params),
            derivation_description=f"medaug variant {v}",
            transfer_syntax=transfer_syntax,
            extra=_mark_derived,
            durable=False,
        )
        outcome.records.append(
            {
                "type": "derive",
                "series": series_uid,
                "variant": v,
                "variant_series": variant_uid,
                "frame_of_reference": frame_uid,
                "params": params.to_json(),
                "seed": {"run_seed": policy.seed, "variant": v},
                "min_jacobian": applied.min_jacobian,
                "max_jacobian": applied.max_jacobian,
                "clipped": result.clipped,
            }
        )
        _record_outputs(outcome, ctx.outdir, result.paths, variant_uid, sop_uids, v)


def _mark_deidentified(ds: Dataset, _k: int) -> None:
    add_contributing_equipment(ds, DEIDENTIFYING_EQUIPMENT)


def _mark_derived(ds: Dataset, _k: int) -> None:
    add_contributing_equipment(ds, DEIDENTIFYING_EQUIPMENT)
    add_contributing_equipment(ds, PROCESSING_EQUIPMENT)


def deidentify_series(image: SeriesImage, ctx: RunContext) -> SeriesImage:
    """The series de-identified: burned-in regions blanked per the policy's rules, headers cleaned.

    Raises
    ------
    DeidentificationError
        When an image cannot be made safe (burned-in annotation without a matching rule, ...).
    """
    options = ctx.deid_options
    data = image.data
    headers: list[Dataset] = []
    for k, header in enumerate(image.headers):
        rule = burned_in.assess(_with_pixel_marker(header), options)
        if rule is not None:
            data = _blank(data, image, k, rule.regions)
        clean, _report = deidentify(copy.deepcopy(header), options, ctx.key, pixels_cleaned=rule is not None)
        headers.append(clean)
    return replace(image, headers=tuple(headers), data=data)


def variant_params(image: SeriesImage, policy: Policy, series_uid: str, variant: int) -> VariantParams:
    """The parameters of one variant of a de-identified series, keyed by its (new) Series UID.

    Spatial transforms assume a regular grid: a stack with gaps or uneven steps keeps
    its geometry exactly and gets intensity changes only.
    """
    rng = variant_rng(policy.seed, series_uid, variant)
    params = sample_variant(rng, policy.augment, image.geometry, modality=image.modality)
    if params.is_spatial and _irregular(image):
        params = VariantParams(intensity=params.intensity, interpolation=params.interpolation)
    return params


def _record_outputs(
    outcome: SeriesOutcome, outdir: Path, paths: list[Path], series_uid: str, sop_uids: list[str], variant: int
) -> None:
    for path, uid in zip(paths, sop_uids):
        outcome.records.append(
            {
                "type": "output",
                "path": path.relative_to(outdir).as_posix(),
                "sha256": sha256_file(path),
                "series": series_uid,
                "instance": uid,
                "variant": variant,
            }
        )
        outcome.written += 1


def _per_file(image: SeriesImage, instance_uids: list[str]) -> list[str]:
    return instance_uids[:1] if image.multiframe else instance_uids


def _kept_paths(ref: SeriesRef, quarantined: list[Quarantined]) -> list[Path]:
    dropped = {q.path for q in quarantined}
    return [p for p in ref.files if p not in dropped]


def _irregular(image: SeriesImage) -> bool:
    return bool({"missing-slices", "irregular-spacing"} & set(image.problems))


def _derivation_codes(params: VariantParams) -> list[Code]:
    codes: list[Code] = []
    if params.is_spatial:
        codes.append(SPATIAL_RESAMPLING)
    if params.intensity is not None:
        if params.intensity.to_json().get("shift"):
            codes.append(PIXEL_ADDITION)
        if any(params.intensity.to_json().get(k) for k in ("scale", "bias")):
            codes.append(PIXEL_MULTIPLICATION)
    return codes


def _with_pixel_marker(header: Dataset) -> Dataset:
    """The header as the burned-in check must see it: an image with pixels.

    Ingest strips Pixel Data from headers; the pixels are in the series' array.
    """
    marked = Dataset()
    marked.update(header)
    marked.PixelData = b""
    return marked


def _blank(data: Any, image: SeriesImage, k: int, regions: tuple[tuple[int, int, int, int], ...]) -> Any:
    """Blank burned-in regions of slice(s) of header ``k`` to the lowest storable value."""
    out = np.array(data, copy=True)
    slices = range(out.shape[0]) if image.multiframe else [k]
    low = image.stored_range[0] if image.is_colour else image.modality_range[0]
    for s in slices:
        for x, y, w, h in regions:
            out[s, y : y + h, x : x + w] = low
    return out
