"""``medaug export``: a verified dataset's output series and their label maps as NIfTI in a training layout.

Every series folder of the dataset (the original, variant 0, and every variant)
is read back with medaug's own ingest, written as one NIfTI volume
(:mod:`medaug.export.nifti`) where the layout puts it
(:mod:`medaug.export.layouts`), and listed with its digest in the export
manifest (:mod:`medaug.export.manifest`), which is written last. The label
objects the log records beside a series (the layout says which it carries) are
rasterised on the series' grid and written as integer label maps with the
image's affine (:mod:`medaug.export.labels`).

Two passes: the first reads only the label objects' headers, so every label
map of the export uses one value per segment number (:class:`~medaug.export.labels.LabelSet`)
and the layout knows whether the dataset is labelled before it takes a case.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from medaug import __version__
from medaug.atomic import write_atomic
from medaug.audit.chain import check_chain, head_of, read_lines
from medaug.canonical import sha256_hex
from medaug.dataset import layout
from medaug.dataset import records as rec
from medaug.errors import InputError, UsageError
from medaug.export import nifti
from medaug.export.labels import LabelMap, LabelSet, label_set, read_label_map
from medaug.export.layouts import Case, CaseLabel, ExportLayout, case_name
from medaug.export.manifest import (
    ExportedFile,
    ExportedLabel,
    ExportManifest,
    SkippedSeries,
    SourceRef,
    manifest_path,
)

#: Reason code of a series folder that does not read back as exactly one volume.
NOT_ONE_VOLUME = "not-one-volume"


@dataclass
class ExportResult:
    """What :func:`export_dataset` wrote.

    Attributes
    ----------
    manifest : ExportManifest
        The manifest written into the export folder.
    """

    manifest: ExportManifest
    notes: list[str] = field(default_factory=list)

    @property
    def exported(self) -> int:
        """Number of volumes written."""
        return sum(1 for f in self.manifest.files if f.series is not None and f.label is None)

    @property
    def label_maps(self) -> int:
        """Number of label maps written."""
        return sum(1 for f in self.manifest.files if f.label is not None)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: f.write(data))


def _modalities(records: list[dict[str, object]]) -> dict[str, str]:
    """Series UID (original or variant) -> modality, from the log's series and derive records."""
    modality = {str(s.series): str(s.modality) for _, s in rec.of_type(records, rec.SeriesRecord)}
    for _, d in rec.of_type(records, rec.VariantDerive):
        if str(d.series) in modality:
            modality[str(d.variant_series)] = modality[str(d.series)]
    return modality


def _outputs(records: list[dict[str, object]]) -> tuple[dict[str, str], dict[str, dict[int, str]]]:
    """From the log's output records: series folder -> modality ('' when unknown), and
    series folder -> label object number -> its file (relative to the dataset)."""
    modality_of = _modalities(records)
    folders: dict[str, str] = {}
    labels: dict[str, dict[int, str]] = {}
    for _, output in rec.of_type(records, rec.Output):
        path = str(output.path)
        rel = layout.series_folder_of(path)
        number = layout.label_number(path)
        folders.setdefault(rel, "")
        if number is not None:
            labels.setdefault(rel, {})[number] = path
        elif not folders[rel]:
            folders[rel] = modality_of.get(str(output.series), "")
    return folders, labels


@dataclass
class _LabelHeaders:
    """The first pass: values of each carried label object number, each file's kind, and headers that do not read."""

    sets: dict[int, LabelSet]
    kinds: dict[str, str]
    unreadable: dict[str, str]


def _label_headers(outdir: Path, labels: dict[str, dict[int, str]], export_layout: ExportLayout) -> _LabelHeaders:
    from medaug.ingest.labels import read_label_header

    numbers: dict[int, list[int]] = {}
    kinds: dict[str, str] = {}
    unreadable: dict[str, str] = {}
    for objects in labels.values():
        for n in export_layout.label_objects(list(objects)):
            try:
                header = read_label_header(outdir / objects[n])
            except InputError as exc:
                unreadable[objects[n]] = exc.reason
                continue
            kinds[objects[n]] = header.kind
            numbers.setdefault(n, []).extend(s.number for s in header.segments)
    return _LabelHeaders({n: label_set(v) for n, v in numbers.items()}, kinds, unreadable)


def export_dataset(outdir: Path, exportdir: Path, export_layout: ExportLayout) -> ExportResult:
    """Export every output series of a verified dataset, with the label maps the layout carries.

    Parameters
    ----------
    outdir : Path
        A dataset written by ``medaug run``; it must pass ``medaug audit verify``.
    exportdir : Path
        An empty or absent folder.
    export_layout : ExportLayout
        Where volumes and index files go (:func:`medaug.export.layouts.make_layout`).

    Returns
    -------
    ExportResult

    Raises
    ------
    UsageError
        When nibabel is missing, the dataset does not verify, ``exportdir`` is
        not empty, or the layout cannot hold the dataset's modalities.
    """
    from medaug.audit.verify import verify_dataset
    from medaug.ingest import load_series, scan_archive

    nifti.load_nibabel()
    outdir, exportdir = Path(outdir), Path(exportdir)
    if exportdir.exists() and (not exportdir.is_dir() or any(exportdir.iterdir())):
        raise UsageError("the export folder is not empty: give a new or empty folder")
    check = verify_dataset(outdir)
    if not check.ok:
        raise UsageError(
            f"the dataset does not verify ({len(check.problems)} problems): run `medaug audit verify` on it"
        )
    lines = read_lines(layout.log_path(outdir))
    records, _ = check_chain(lines)
    folders, labels = _outputs(records)
    export_layout.check({m for m in folders.values() if m})
    headers = _label_headers(outdir, labels, export_layout)
    exportdir.mkdir(parents=True, exist_ok=True)

    files: list[ExportedFile] = []
    skipped: list[SkippedSeries] = []
    cases: list[Case] = []
    for rel in sorted(folders):
        folder = layout.SeriesFolder.parse(rel)
        refs = scan_archive(outdir / rel).series
        if folder is None or len(refs) != 1:
            skipped.append(SkippedSeries(rel, NOT_ONE_VOLUME))
            continue
        image = load_series(refs[0]).image
        reason = nifti.skip_reason(image)
        if reason is not None:
            skipped.append(SkippedSeries(rel, reason))
            continue
        objects = labels.get(rel, {})
        uids = tuple(r.sop_uid for r in refs[0].records)
        maps: dict[int, LabelMap | str] = {}
        for n in export_layout.label_objects(list(objects)):
            label_file = objects[n]
            maps[n] = (headers.unreadable.get(label_file)
                       or read_label_map(outdir / label_file, image.geometry, uids, headers.sets[n]))
        refusal = export_layout.refuse(
            {n: m if isinstance(m, str) else len(m.layers) for n, m in maps.items()}, labelled=bool(headers.sets)
        )
        if refusal is not None:
            skipped.append(SkippedSeries(rel, refusal))
            continue
        name = case_name(folder)
        data = nifti.nifti_bytes(image)
        target = export_layout.image_path(name)
        _write(exportdir / target, data)
        files.append(ExportedFile(target.as_posix(), sha256_hex(data), rel))
        carried: list[CaseLabel] = []
        for n, found in sorted(maps.items()):
            if isinstance(found, str):
                skipped.append(SkippedSeries(rel, found, label=n))
                continue
            data = nifti.label_nifti_bytes(found.layers, image.geometry)
            label_target = export_layout.label_path(name, n)
            _write(exportdir / label_target, data)
            held = ExportedLabel(n, headers.kinds[objects[n]], len(found.layers), headers.sets[n].names(found.numbers))
            files.append(ExportedFile(label_target.as_posix(), sha256_hex(data), rel, held))
            carried.append(CaseLabel(n, label_target))
        cases.append(Case(name, target, image.modality, tuple(carried)))
        del image, data, maps

    index: dict[PurePosixPath, bytes] = export_layout.index_files(cases, headers.sets)
    for path, data in sorted(index.items()):
        _write(exportdir / path, data)
        files.append(ExportedFile(path.as_posix(), sha256_hex(data)))

    dataset_manifest = json.loads(layout.manifest_path(outdir).read_text(encoding="utf-8"))
    source = SourceRef(str(dataset_manifest.get("format", layout.DATASET_FORMAT)), head_of(lines), len(lines))
    manifest = ExportManifest(
        layout=export_layout.name,
        medaug=__version__,
        source=source,
        files=tuple(files),
        skipped=tuple(skipped),
        options=export_layout.options(),
    )
    _write(manifest_path(exportdir), manifest.to_bytes())
    return ExportResult(manifest)


__all__ = ["NOT_ONE_VOLUME", "ExportResult", "export_dataset"]
