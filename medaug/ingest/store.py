"""Instance records spilled to disk, read back one volume at a time.

The header pass of a large archive makes one small record per file. Holding
them all until grouping makes memory grow with the archive; this store keeps
them in a temporary SQLite file instead and hands them back grouped by volume
(in the order of :func:`medaug.ingest.grouping.group_key`), so the scan holds
one volume's records at a time whatever the archive's size.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
import tempfile
import weakref
from collections.abc import Iterator
from itertools import groupby

from medaug.ingest.grouping import group_key
from medaug.ingest.headers import InstanceRecord

# Fields of a group key are joined with NUL, the smallest character, so the joined
# strings sort exactly as the key tuples do (SQLite compares TEXT bytewise, in code
# point order for UTF-8).
_SEPARATOR = "\x00"


class RecordStore:
    """A temporary on-disk table of instance records, keyed by file number.

    The file is deleted when the store is closed or garbage-collected.

    Examples
    --------
    >>> store = RecordStore()
    >>> store.count()
    0
    >>> store.close()
    """

    def __init__(self) -> None:
        fd, path = tempfile.mkstemp(prefix="medaug-scan-", suffix=".sqlite")
        os.close(fd)
        self._db = sqlite3.connect(path)
        # Scratch data: no journal and no fsync; a crash simply means scanning again.
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(
            "CREATE TABLE records (number INTEGER PRIMARY KEY, sop TEXT UNIQUE, volume TEXT, record BLOB)"
        )
        self._indexed = False
        self._finalizer = weakref.finalize(self, _remove, self._db, path)

    def add(self, number: int, record: InstanceRecord) -> bool:
        """Store a record; False (and nothing stored) when its SOP Instance UID is already there."""
        key = _SEPARATOR.join(group_key(record))
        try:
            self._db.execute(
                "INSERT INTO records VALUES (?, ?, ?, ?)",
                (number, record.sop_uid, key, pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)),
            )
        except sqlite3.IntegrityError:
            return False
        return True

    def count(self) -> int:
        """Number of records stored."""
        return int(self._db.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    def volume_count(self) -> int:
        """Number of distinct volumes (groups) among the records."""
        self._index()
        return int(self._db.execute("SELECT COUNT(DISTINCT volume) FROM records").fetchone()[0])

    def volumes(self) -> Iterator[list[tuple[int, InstanceRecord]]]:
        """Each volume's (file number, record) pairs, volumes in key order, files in walk order."""
        self._index()
        rows = self._db.execute("SELECT volume, number, record FROM records ORDER BY volume, number")
        for _key, members in groupby(rows, key=lambda row: row[0]):
            yield [(int(number), pickle.loads(blob)) for _, number, blob in members]

    def close(self) -> None:
        """Delete the file now."""
        self._finalizer()

    def _index(self) -> None:
        if not self._indexed:
            self._db.execute("CREATE INDEX IF NOT EXISTS by_volume ON records (volume, number)")
            self._indexed = True


def _remove(db: sqlite3.Connection, path: str) -> None:
    db.close()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
