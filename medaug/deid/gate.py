"""The release gate: a series' outputs are searched for its own sources' identifying values.

Before ``medaug run`` records a series, every output file (its header bytes,
decoded as text, and its path) is searched for every identifying value the
series' *source* headers hold (:mod:`medaug.deid.identifiers`): person-name
components, IDs, dates, non-standard UIDs, institution and address values,
private values, and the text of every attribute the Annex E table names or
does not name (reviewed equipment and code attributes aside). A hit
quarantines the whole series (:data:`RESIDUAL_IDENTIFIER`, with the attribute's
keyword, never the value).

Values a policy option keeps on purpose are excluded by attribute (an option's
``K`` in the action table: device identity, institution identity, patient
characteristics, UIDs, full dates), never by value; and a value that is only
the vocabulary of a synthesized description (``CT CHEST``) is not searched for.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset

from medaug.deid import descriptions
from medaug.deid.identifiers import Identifiers, collect_element, elements
from medaug.deid.options import DeidOptions
from medaug.deid.table import load_table, lookups
from medaug.errors import DeidentificationError

#: Reason code of a series whose outputs hold an identifying value of its sources.
RESIDUAL_IDENTIFIER = "residual-identifier"

_PIXEL_TAG = b"\xe0\x7f\x10\x00"
#: Bytes of an output read first for its header: every header medaug writes fits, Pixel Data aside.
_PREFIX = 64 * 1024


def source_identifiers(headers: Iterable[Dataset], options: DeidOptions) -> Identifiers:
    """Every identifying value of a series' source headers that its outputs must not hold."""
    annex_e = frozenset(load_table().rows)
    ids = Identifiers()
    for header in headers:
        kept = _kept(options, str(header.get("SOPClassUID", "")))
        for elem in elements(header):
            tag = int(elem.tag)
            if tag in kept or (options.retain_uids and elem.VR == "UI"):
                continue
            if options.retain_long_full_dates and elem.VR in ("DA", "DT", "TM"):
                continue
            if options.retain_safe_private and elem.tag.is_private:
                continue  # safe-listed private values are kept on purpose (the others are removed)
            collect_element(elem, ids, annex_e, other_text=True)
    for value in [v for v in ids.values if descriptions.vocabulary(v)]:
        del ids.values[value]
    return ids


def _kept(options: DeidOptions, sop_class: str) -> frozenset[int]:
    top, nested = lookups(options, sop_class)
    return frozenset(t for t, a in {**nested, **top}.items() if a == "K")


def check_outputs(paths: Sequence[Path], outdir: Path, ids: Identifiers, *, options: DeidOptions | None = None) -> None:
    """Search every output (path and header) for ``ids``.

    A match that is there by design is not a leak: a number, a match in a reviewed equipment
    or code attribute that a source held in that same attribute
    (:meth:`~medaug.deid.identifiers.Identifiers.expected`), or one in an attribute an option
    keeps. Bytes are searched first (cheap); only a file with a match is parsed, to place it.

    Raises
    ------
    DeidentificationError
        ``residual-identifier:<Keyword>`` (or ``:FileName``, ``:Private``, ``:RawBytes``) at the first hit.
    """
    compiled = ids.pattern()
    if compiled is None:
        return
    text, raw, _ = compiled
    for path in paths:
        if text.search(path.relative_to(outdir).as_posix()):
            raise DeidentificationError(f"{RESIDUAL_IDENTIFIER}:FileName", "an output path holds a source value")
        header = read_header(path)
        # Bytes (any 8-bit character set), then text both ways (case folding beyond ASCII);
        # ASCII reads the same both ways.
        if raw.search(header) or text.search(header.decode("latin-1")) or (
            not header.isascii() and text.search(header.decode("utf-8", "replace"))
        ):
            where = _where(path, text, ids, options)
            if where is not None:
                raise DeidentificationError(f"{RESIDUAL_IDENTIFIER}:{where}", "an output holds a source value")


def read_header(path: Path, *, prefix: int = _PREFIX) -> bytes:
    """Everything in the file at ``path`` before its Pixel Data element (the whole file when it cannot be placed).

    The element is found by its structure, not by the first occurrence of its tag: four bytes
    of a value earlier in the header can spell the tag, and the header after them must still
    be searched. Pixel Data is the file's last element: its length (after OB or OW and two
    reserved bytes in explicit VR, straight after the tag in implicit VR) is undefined or
    reaches the end of the file. The first ``prefix`` bytes are read first, which hold the
    whole header of almost every file; the rest only when the element is not placed in them.
    """
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(prefix)
        if len(head) < size:
            found = _header(head, size)
            if found is not None:
                return found
            head += f.read()
    whole = _header(head, len(head))
    return head if whole is None else whole


def _header(data: bytes, size: int) -> bytes | None:
    """``data`` (the first bytes of a file of ``size`` bytes) before its Pixel Data element.

    None when the element is not placed in ``data`` (a candidate whose length lies beyond it is
    passed over, and no later one can fit: the tag's bytes cannot overlap a VR or length before
    it); with ``data`` the whole file, the whole file is then its header.
    """
    start = data.find(_PIXEL_TAG)
    while start >= 0:
        explicit = data[start + 4:start + 6] in (b"OB", b"OW") and data[start + 6:start + 8] == b"\0\0"
        at = start + (8 if explicit else 4)
        length = data[at:at + 4]
        if len(length) == 4:
            n = int.from_bytes(length, "little")
            if n == 0xFFFFFFFF or at + 4 + n == size:
                return data[:start]
        start = data.find(_PIXEL_TAG, start + 1)
    return None if len(data) < size else data


def _where(path: Path, pattern: re.Pattern[str], ids: Identifiers, options: DeidOptions | None) -> str | None:
    """The keyword of the first element holding a hit that is not there by design (None: no leak)."""
    import pydicom

    from medaug.deid.identifiers import text_values

    ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    kept = _kept(options, str(ds.get("SOPClassUID", ""))) if options is not None else frozenset()
    placed = False
    for elem in elements(ds):
        if elem.VR == "SQ":
            continue
        found = [m.group(0) for t in text_values(elem) for m in pattern.finditer(t)]
        if not found:
            continue
        placed = True
        # File meta is medaug's own writer's (its instance UID is the body's new one).
        if int(elem.tag) in kept or elem.tag.group == 0x0002 or all(ids.expected(elem, f) for f in found):
            continue
        if elem.tag.is_private:
            return "Private"
        return keyword_for_tag(elem.tag) or "Unknown"
    return None if placed else "RawBytes"
