"""``medaug export``: a verified dataset's output series as NIfTI volumes in a training layout.

Every series folder of the dataset (the original, variant 0, and every variant)
is read back with medaug's own ingest, written as one NIfTI volume
(:mod:`medaug.export.nifti`) where the layout puts it
(:mod:`medaug.export.layouts`), and listed with its digest in the export
manifest (:mod:`medaug.export.manifest`), which is written last.
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
from medaug.errors import UsageError
from medaug.export import nifti
from medaug.export.layouts import Case, ExportLayout, case_name
from medaug.export.manifest import ExportedFile, ExportManifest, SkippedSeries, SourceRef, manifest_path

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
        return sum(1 for f in self.manifest.files if f.series is not None)


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


def export_dataset(outdir: Path, exportdir: Path, export_layout: ExportLayout) -> ExportResult:
    """Export every output series of a verified dataset.

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
    modality_of = _modalities(records)
    folders: dict[str, str] = {}
    for _, output in rec.of_type(records, rec.Output):
        folders.setdefault(layout.series_folder_of(str(output.path)), modality_of.get(str(output.series), ""))
    export_layout.check({m for m in folders.values() if m})
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
        data = nifti.nifti_bytes(image)
        target = export_layout.image_path(case_name(folder))
        _write(exportdir / target, data)
        files.append(ExportedFile(target.as_posix(), sha256_hex(data), rel))
        cases.append(Case(case_name(folder), target, image.modality))
        del image, data

    index: dict[PurePosixPath, bytes] = export_layout.index_files(cases)
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
