"""Find candidate DICOM files under a folder: a sorted recursive walk plus DICOMDIR.

Every regular file under the root is a candidate, whatever its name (DICOM
files often have no extension). A DICOMDIR is read only to notice files it
references that are missing; its own records are not images.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom

#: Media Storage Directory Storage (a DICOMDIR).
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"


def walk_files(root: Path) -> Iterator[Path]:
    """Every regular file under ``root``, in the order of ``find ROOT -type f | LC_ALL=C sort``.

    Depth first, one directory listing at a time, so memory grows with the
    largest directory, never with the archive. Entries sort by their name's
    bytes with ``/`` appended to folders, which is exactly the order of the full
    paths. Symbolic links to folders are not followed, so a link loop cannot
    hang the walk.
    """
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    keyed = []
    for entry in entries:
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            continue
        keyed.append((os.fsencode(entry.name) + (b"/" if is_dir else b""), is_dir, entry.path))
    del entries
    keyed.sort()
    for _key, is_dir, path in keyed:
        if is_dir:
            yield from walk_files(Path(path))
        elif os.path.isfile(path):
            yield Path(path)


def sniff(head: bytes) -> bool | None:
    """Whether the first bytes look like DICOM: True (128-byte preamble + DICM), False (no preamble), None (not DICOM).

    A file without the preamble must start with a File Meta (0002,xxxx) or an
    Identifying (0008,xxxx) element, little or big endian, explicit or implicit VR.
    """
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    if len(head) < 8:
        return None
    group_le = int.from_bytes(head[0:2], "little")
    group_be = int.from_bytes(head[0:2], "big")
    if group_le in (0x0002, 0x0008) or group_be == 0x0008:
        vr = head[4:6]
        if vr.isalpha() and vr.isupper():
            return False
        # Implicit VR: a 4-byte length follows; a sane first element is short.
        if int.from_bytes(head[4:8], "little") < 1 << 20:
            return False
    return None


def dicomdir_references(path: Path, root: Path) -> list[Path]:
    """Files a DICOMDIR references (resolved case-insensitively), kept only if inside ``root``.

    Raises
    ------
    Exception
        Whatever pydicom raises for an unreadable DICOMDIR; the caller quarantines it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, force=True)
        records = list(ds.get("DirectoryRecordSequence", []))
    out: list[Path] = []
    base = path.parent
    root_resolved = root.resolve()
    for rec in records:
        ref = rec.get("ReferencedFileID")
        if ref is None:
            continue
        parts = [str(p) for p in (ref if isinstance(ref, (list, tuple, pydicom.multival.MultiValue)) else [ref])]
        if any(p in ("", ".", "..") or "/" in p or "\\" in p for p in parts):
            continue
        target = _resolve_casefold(base, parts)
        try:
            target.resolve().relative_to(root_resolved)
        except ValueError:
            continue
        out.append(target)
    return out


def _resolve_casefold(base: Path, parts: list[str]) -> Path:
    """Join ``parts`` to ``base``, matching each component case-insensitively (media are upper case)."""
    cur = base
    for part in parts:
        exact = cur / part
        if exact.exists() or not cur.is_dir():
            cur = exact
            continue
        matches = sorted(c for c in os.listdir(cur) if c.casefold() == part.casefold())
        cur = cur / (matches[0] if matches else part)
    return cur
