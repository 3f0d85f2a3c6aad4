"""Scan an archive: discovery and the header pass, without decoding any pixels."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from medaug.errors import InputError, UsageError
from medaug.ingest import reasons
from medaug.ingest.discover import dicomdir_references, walk_files
from medaug.ingest.grouping import Quarantined, SeriesRef, group_records
from medaug.ingest.headers import InstanceRecord, read_record


@dataclass
class ArchiveScan:
    """What a scan found.

    Every discovered file is in exactly one of ``series`` (through a
    :class:`SeriesRef`), ``quarantined`` or ``directories`` (DICOMDIR indexes).
    ``files`` lists them all in walk order; a file's *number* is its 1-based
    position there (the order of ``find ARCHIVE -type f | LC_ALL=C sort``).
    """

    root: Path
    files: list[Path] = field(default_factory=list)
    series: list[SeriesRef] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    directories: list[Path] = field(default_factory=list)
    _numbers: dict[Path, int] = field(default_factory=dict, repr=False)

    def number(self, path: Path) -> int:
        """1-based file number of ``path`` (0 when it was not discovered)."""
        if len(self._numbers) != len(self.files):
            self._numbers = {p: i + 1 for i, p in enumerate(self.files)}
        return self._numbers.get(path, 0)


def scan_archive(root: Path) -> ArchiveScan:
    """Discover DICOM files under ``root``, read their headers and group them into series.

    Parameters
    ----------
    root : Path
        Folder searched recursively; a DICOMDIR is honoured (missing referenced
        files are reported as ``unreadable``).

    Returns
    -------
    ArchiveScan
        Series in a stable order and quarantined files with reason codes.

    Raises
    ------
    UsageError
        When ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise UsageError("the archive is not a folder")
    scan = ArchiveScan(root=root)
    records: list[InstanceRecord] = []
    for number, path in enumerate(walk_files(root), start=1):
        scan.files.append(path)
        try:
            rec = read_record(path)
        except InputError as exc:
            scan.quarantined.append(Quarantined(path, exc.reason, _detail(exc), number))
            continue
        if rec.is_directory:
            scan.directories.append(path)
        else:
            records.append(rec)
    found = set(scan.files)
    for dicomdir in scan.directories:
        try:
            refs = dicomdir_references(dicomdir, root)
        except Exception:  # a damaged DICOMDIR only loses its cross-check
            continue
        for ref in refs:
            if ref not in found:
                found.add(ref)
                scan.quarantined.append(
                    Quarantined(ref, reasons.UNREADABLE, "referenced by a DICOMDIR but not found", 0)
                )
    grouped = group_records(records)
    scan.series = grouped.series
    for rec, reason, detail in grouped.quarantined:
        scan.quarantined.append(Quarantined(rec.path, reason, detail, scan.number(rec.path)))
    scan.quarantined.sort(key=lambda q: (q.number == 0, q.number, str(q.path)))
    return scan


def _detail(exc: InputError) -> str:
    """The detail part of an InputError message (after ``reason: ``)."""
    text = str(exc)
    prefix = f"{exc.reason}: "
    return text[len(prefix):] if text.startswith(prefix) else ""
