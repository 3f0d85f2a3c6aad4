"""Scan an archive: discovery and the header pass, without decoding any pixels."""

from __future__ import annotations

import secrets
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from medaug.errors import InputError, UsageError
from medaug.ingest import reasons
from medaug.ingest.discover import dicomdir_references, walk_entries
from medaug.ingest.grouping import (
    DUPLICATE_DETAIL,
    GroupResult,
    Quarantined,
    SeriesRef,
    build_volume,
)
from medaug.ingest.headers import read_record
from medaug.ingest.labels import LabelFile
from medaug.ingest.store import RecordStore


class ArchiveScan:
    """What a scan found, with the volumes read back from disk one at a time.

    Every entry of the walk (:func:`~medaug.ingest.discover.walk_entries`) is
    in exactly one of: a volume (through a :class:`SeriesRef`),
    ``quarantined`` (files refused, and links, FIFOs, devices and unlistable
    folders refused at the walk) or ``directories`` (DICOMDIR indexes). An
    entry's *number* is its 1-based position in the walk (sorted bytes of the
    paths).

    Memory does not grow with the archive: the per-file records live in a
    temporary on-disk store and :meth:`iter_series` builds one volume at a time.
    Files refused while grouping (``inconsistent-series``) are found as their
    volume is built; :attr:`quarantined` is always complete.

    Attributes
    ----------
    root : Path
        The archive folder.
    file_count : int
        Entries accounted for (files read plus entries refused at the walk).
    identity_salt : bytes
        Random salt of this scan's identity digests (see
        :func:`medaug.ingest.headers.identity_digest`); never stored.
    series_count : int
        Volumes the scan will yield.
    directories : list of Path
        DICOMDIR index files.
    missing_references : int
        Files a DICOMDIR names that the archive lacks (reported, not inputs).
    """

    def __init__(self, root: Path, store: RecordStore) -> None:
        self.root = root
        self.file_count = 0
        self.identity_salt = secrets.token_bytes(16)
        self._quarantined: list[Quarantined] = []
        self.directories: list[Path] = []
        #: Label objects (SEG, RTSTRUCT) tied to a series of the archive: source Series UID -> files.
        self.labels: dict[str, list[LabelFile]] = {}
        self._series_uids: set[str] = set()
        self.missing_references = 0
        self._listing = hashlib.sha256()
        self._store = store
        self.series_count = 0
        self._grouped = False
        self._series: list[SeriesRef] | None = None

    def iter_series(self) -> Iterator[SeriesRef]:
        """Build and yield each volume in a stable order (study, series, echo, phase, diffusion, instance)."""
        record_refusals = not self._grouped
        for members in self._store.volumes():
            numbers = {id(rec): number for number, rec in members}
            out = GroupResult()
            ref = build_volume([rec for _, rec in members], out)
            if record_refusals:
                for rec, reason, detail in out.quarantined:
                    self._quarantined.append(Quarantined(rec.path, reason, detail, numbers[id(rec)]))
            yield ref
        if record_refusals:
            self._grouped = True
            self._quarantined.sort(key=lambda q: q.number)

    def listing_digest(self) -> bytes:
        """SHA-256 of every entry's path (relative to the root) and size, in walk order.

        Binds a run to its archive: a caller keys it (HMAC) before storing it anywhere,
        since paths and sizes are the archive's own.
        """
        return self._listing.digest()

    @property
    def quarantined(self) -> list[Quarantined]:
        """Every file that cannot be used, in file-number order.

        Grouping refusals are known once every volume has been built: the first
        look completes a pass over the volumes if none was made (without keeping them).
        """
        if not self._grouped:
            for _ in self.iter_series():
                pass
        return self._quarantined

    @property
    def series(self) -> list[SeriesRef]:
        """Every volume as a list (holds all their records: for small archives and tests)."""
        if self._series is None:
            self._series = list(self.iter_series())
        return self._series


def scan_archive(root: Path) -> ArchiveScan:
    """Discover DICOM files under ``root`` and read their headers, in bounded memory.

    Parameters
    ----------
    root : Path
        Folder searched recursively; a DICOMDIR is honoured (files it names that
        are missing are counted in ``missing_references``).

    Returns
    -------
    ArchiveScan
        Volumes to read (one at a time) and quarantined files with reason codes.

    Raises
    ------
    UsageError
        When ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise UsageError("the archive is not a folder")
    scan = ArchiveScan(root, RecordStore())
    pending_labels: list[tuple[int, LabelFile]] = []
    for number, entry in enumerate(walk_entries(root), start=1):
        scan.file_count = number
        path = entry.path
        scan._listing.update(_listing_line(root, path, readable=entry.reason is None))
        if entry.reason is not None:
            scan._quarantined.append(Quarantined(path, entry.reason, entry.detail, number))
            continue
        try:
            rec = read_record(path, salt=scan.identity_salt, expected=entry.file_id)
        except InputError as exc:
            if exc.reason == reasons.LABEL_OBJECT:
                pending_labels.append((number, LabelFile(path, entry.file_id)))
                continue
            scan._quarantined.append(Quarantined(path, exc.reason, _detail(exc), number))
            continue
        scan._series_uids.add(rec.series_uid)
        if rec.is_directory:
            scan.directories.append(path)
        elif not scan._store.add(number, rec):
            # Two files with one SOP Instance UID would make outputs with one UID:
            # the first in walk order is used.
            scan._quarantined.append(Quarantined(path, reasons.DUPLICATE_INSTANCE, DUPLICATE_DETAIL, number))
    _tie_labels(scan, pending_labels)
    for dicomdir in scan.directories:
        try:
            refs = dicomdir_references(dicomdir, root)
        except Exception:  # a damaged DICOMDIR only loses its cross-check
            continue
        # A referenced file inside the archive was walked already if it exists.
        scan.missing_references += sum(1 for ref in refs if not ref.is_file())
    scan.series_count = scan._store.volume_count()
    return scan


def _tie_labels(scan: ArchiveScan, found: list[tuple[int, LabelFile]]) -> None:
    """Attach each label object to the series it references, or quarantine it (label-unreferenced)."""
    from medaug.ingest.labels import read_label_header

    for number, label in found:
        path = label.path
        try:
            header = read_label_header(path, expected=label.file_id)
        except InputError as exc:
            scan._quarantined.append(Quarantined(path, exc.reason, "label object cannot be read", number))
            continue
        except Exception:  # noqa: BLE001 - a label object that does not parse cannot be used
            scan._quarantined.append(Quarantined(path, reasons.BAD_HEADER, "label object does not parse", number))
            continue
        if header.referenced_series_uid not in scan._series_uids:
            scan._quarantined.append(
                Quarantined(path, reasons.LABEL_UNREFERENCED, "its referenced series is not in the archive", number)
            )
            continue
        scan.labels.setdefault(header.referenced_series_uid, []).append(label)


def _listing_line(root: Path, path: Path, *, readable: bool) -> bytes:
    """One entry of :meth:`ArchiveScan.listing_digest`: relative path and size (-1 for a refused entry).

    A refused entry (a link leading outside, a FIFO...) is never stat'ed through.
    """
    size = -1
    if readable:
        try:
            size = os.stat(path).st_size
        except OSError:
            size = -1
    try:
        rel = path.relative_to(root)
    except ValueError:
        rel = path
    return os.fsencode(rel.as_posix()) + b"\0" + str(size).encode("ascii") + b"\n"


def _detail(exc: InputError) -> str:
    """The detail part of an InputError message (after ``reason: ``)."""
    text = str(exc)
    prefix = f"{exc.reason}: "
    return text[len(prefix):] if text.startswith(prefix) else ""
