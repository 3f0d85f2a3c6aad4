"""Find candidate DICOM files under a folder: a sorted recursive walk plus DICOMDIR.

Every regular file under the root is a candidate, whatever its name (DICOM
files often have no extension); every other entry is accounted for with a
reason code (:func:`walk_entries`). A DICOMDIR is read only to notice files it
references that are missing; its own records are not images.
"""

from __future__ import annotations

import errno
import os
import stat
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom

from medaug.ingest import reasons
from medaug.ingest.files import FileId, file_id

#: Media Storage Directory Storage (a DICOMDIR).
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of the archive's walk: a file to read, or an entry refused with a reason code.

    ``path`` is where the entry is in the archive (a link's own path, not its
    target); ``reason`` is ``None`` for a regular file to read, and then
    ``file_id`` is the device and inode found (a link's target's), which every
    later open checks (:func:`medaug.ingest.files.open_file`).
    """

    path: Path
    reason: str | None = None
    detail: str = ""
    file_id: FileId | None = None


def walk_files(root: Path) -> Iterator[Path]:
    """Every file under ``root`` to read, in the order of :func:`walk_entries` (refused entries left out)."""
    for entry in walk_entries(root):
        if entry.reason is None:
            yield entry.path


def walk_entries(root: Path) -> Iterator[Entry]:
    """Every entry under ``root``, each accounted once: files to read and entries refused.

    The order is that of the full paths' bytes (``LC_ALL=C sort``): each
    folder's entries sort by their name's bytes with ``/`` appended to folders
    (and to links followed to folders), which is exactly the order of the full
    paths. Depth first with an explicit stack, one
    listing per level, so memory grows with the depth times the largest
    folder, never with the archive, and deep trees cannot exhaust the
    recursion limit.

    Symbolic links are followed only when their target resolves inside
    ``root`` (checked on the resolved path before anything is opened). Other
    entries are refused: FIFOs, sockets and devices ``not-a-regular-file``,
    dangling links ``broken-link``, looping links and links to an enclosing
    folder ``link-loop``, a second link to a folder already followed
    ``duplicate-folder`` (so links cannot multiply the walk), links leading out
    ``outside-archive``, and a folder that cannot be listed
    ``unreadable-folder`` (the folder itself is the entry). Folders themselves
    are not entries.
    """
    root = Path(root)
    real_root = os.path.realpath(root)
    try:
        top = os.stat(root)
    except OSError:
        yield Entry(root, reasons.UNREADABLE_FOLDER, "the folder cannot be listed")
        return
    listing = _listing(root, real_root)
    if listing is None:
        yield Entry(root, reasons.UNREADABLE_FOLDER, "the folder cannot be listed")
        return
    followed: set[tuple[int, int]] = set()
    stack: list[tuple[Iterator[_Listed], tuple[int, int]]] = [(iter(listing), (top.st_dev, top.st_ino))]
    while stack:
        item = next(stack[-1][0], None)
        if item is None:
            stack.pop()
            continue
        if item.entry is not None:
            yield item.entry
            continue
        ancestors = {ident for _, ident in stack}
        if item.identity in ancestors:
            yield Entry(item.path, reasons.LINK_LOOP, "a link to a folder enclosing it")
            continue
        if item.link:
            if item.identity in followed:
                yield Entry(item.path, reasons.DUPLICATE_FOLDER, "a link to a folder already followed")
                continue
            followed.add(item.identity)
        sub = _listing(item.path, real_root)
        if sub is None:
            yield Entry(item.path, reasons.UNREADABLE_FOLDER, "the folder cannot be listed")
            continue
        stack.append((iter(sub), item.identity))


@dataclass(frozen=True, slots=True)
class _Listed:
    """A listed entry: a folder to descend into (``entry`` None) or an accounted entry."""

    path: Path
    entry: Entry | None
    identity: tuple[int, int] = (0, 0)
    link: bool = False


def _listing(folder: Path, real_root: str) -> list[_Listed] | None:
    """The sorted entries of one folder, classified; ``None`` when it cannot be listed."""
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except OSError:
        return None
    keyed: list[tuple[bytes, _Listed]] = []
    for entry in entries:
        path = Path(entry.path)
        listed = _classify(entry, path, real_root)
        folder_like = listed.entry is None
        keyed.append((os.fsencode(entry.name) + (b"/" if folder_like else b""), listed))
    del entries
    keyed.sort(key=lambda pair: pair[0])
    return [listed for _, listed in keyed]


def _classify(entry: os.DirEntry[str], path: Path, real_root: str) -> _Listed:
    """What one directory entry is, following a link only when it resolves inside the archive."""
    link = False
    try:
        if entry.is_symlink():
            link = True
            target = os.path.realpath(path)
            if target != real_root and not target.startswith(real_root.rstrip(os.sep) + os.sep):
                return _Listed(path, Entry(path, reasons.OUTSIDE_ARCHIVE, "a link leading outside the archive"))
            try:
                st = os.stat(path)
            except FileNotFoundError:
                return _Listed(path, Entry(path, reasons.BROKEN_LINK, "the link's target does not exist"))
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    return _Listed(path, Entry(path, reasons.LINK_LOOP, "the link loops"))
                if exc.errno == errno.ENOTDIR:
                    return _Listed(path, Entry(path, reasons.BROKEN_LINK, "the link's target does not exist"))
                raise
        else:
            st = entry.stat(follow_symlinks=False)
    except OSError as exc:
        return _Listed(path, Entry(path, reasons.UNREADABLE, f"{type(exc).__name__} while listing"))
    if stat.S_ISDIR(st.st_mode):
        return _Listed(path, None, (st.st_dev, st.st_ino), link)
    if stat.S_ISREG(st.st_mode):
        return _Listed(path, Entry(path, file_id=file_id(st)))
    return _Listed(path, Entry(path, reasons.NOT_A_REGULAR_FILE, "a FIFO, socket or device file"))


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
