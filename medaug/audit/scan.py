"""``medaug audit scan``: search a dataset for every identifying value of its source archive.

What is collected from the archive (every file, every element at every depth,
file meta included; pixel data is not read):

- person names (VR PN, any tag): the whole name and each component;
- dates (VR DA, and the date part of DT, any tag);
- UIDs (VR UI, any tag) except class UIDs (keyword ending ``ClassUID``),
  transfer syntaxes, and well-known UIDs of the standard (``1.2.840.10008.*``
  and pydicom's UID dictionary), which identify no one;
- text (VR LO, SH, LT, ST, UT, UC, AE) of the PS3.15 Annex E attributes
  (``medaug/deid/data/annex_e_table.json``): the whole value and its tokens;
- every string value of a private element (private creators excepted: they
  name a vendor), and bytes of private OB/UN elements read as text;
- the folder names of every file's path relative to the archive, and the file's name
  without its extension.

The distinctiveness rules (so short or common values do not raise false
alarms; "CT", "1", "YES", "HEAD", "2024" never count):

- a whole value counts if it has at least 4 characters, is not a single word
  of letters only (that is vocabulary: "Mixed"), and, if purely digits, has at
  least 6 of them (record and phone numbers; dates are kept whole, 8 digits);
- a token inside a value, and a path component, counts if it has at least 4
  characters and mixes letters with at least 2 digits ("A7Q2"; "ct_j2k" names
  a codec, not a person) or holds at least 6 digits
  ("555-0101"): words of free text are vocabulary;
- a part of a person name (a PN value, or a ``A^B`` chunk inside text) counts
  if it has at least 4 characters and is not a common word
  (:data:`COMMON_WORDS`, plus every word of the DICOM data dictionary's
  attribute names, such as "Patient" or "Series").

Times, ages, sexes and coded values (VR TM, AS, CS) are not collected: they are
short and shared by many people, and on their own they identify no one.

Where the dataset is searched: every element value at every depth of every
output file (private elements and file meta included; text decoded, binary
read as Latin-1), the file's raw bytes outside Pixel Data, every file's path
inside the dataset, the audit log, the manifest and the signature file.
Matching ignores case; a value matches only where it is not glued to further
letters or digits on either side (so "1.2.3.1" does not match "1.2.3.10").

Hits name the output file's *number* (1-based, in sorted path order) and the
tag path, or the audit file and line, and the kind of value, never the value.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from medaug.dataset import layout

#: Text VRs whose value (and tokens) is collected from the Annex E attributes.
TEXT_VRS = frozenset({"LO", "SH", "LT", "ST", "UT", "UC", "AE"})

#: Letter-only words too common to count as identifying, besides the data dictionary's words.
COMMON_WORDS = frozenset(
    """
    about above after again against also anon anonymous anterior axial before being below between body brain
    call called chest contrast coronal dept department description done dose each exam examination female
    follow from general have head helical history hospital image images left lower lung male mentions name
    none normal notes other over pelvis phantom please posterior prior protocol radiology recon reconstruction
    request requested right road routine sagittal scan scout seen series show spine standard street study
    such test than that their them then there these they this thorax unknown upper very were what when where
    which while with without yes abdomen abdo knee hand foot wrist ankle shoulder neck spine lumbar cervical
    thoracic cardiac heart liver kidney renal clinic centre center medical imaging unit ward room lane avenue
    surgery physician doctor nurse technologist operator reader referring performing
    """.split()
)

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]|[A-Za-z0-9]")
_DATE_PART = re.compile(r"[0-9]{8}")


@dataclass(frozen=True)
class Hit:
    """One identifying value found in the dataset.

    Attributes
    ----------
    file : int or None
        Number of the output file (1-based, sorted by path), None for audit files.
    where : str
        Tag path (``(0009,1004)[0]/(0009,1010)``), ``file name``, ``raw bytes``, or
        ``<audit file> line <n>``.
    kind : str
        What kind of source value was found (name, date, uid, text, private, path, id).
    """

    file: int | None
    where: str
    kind: str

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {"file": self.file, "where": self.where, "kind": self.kind}


@dataclass
class ScanResult:
    """Outcome of :func:`scan_dataset`."""

    hits: list[Hit] = field(default_factory=list)
    identifiers: dict[str, int] = field(default_factory=dict)
    archive_files: int = 0
    output_files: int = 0

    @property
    def clean(self) -> bool:
        """True when no identifying value was found."""
        return not self.hits

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (what ``--json`` prints)."""
        return {
            "clean": self.clean,
            "archive_files": self.archive_files,
            "output_files": self.output_files,
            "identifiers": self.identifiers,
            "hits": [h.to_json() for h in self.hits],
        }


def _dictionary_words() -> frozenset[str]:
    from pydicom.datadict import DicomDictionary

    words: set[str] = set()
    for entry in DicomDictionary.values():
        words.update(w.lower() for w in re.findall(r"[A-Za-z]+", entry[2]))
    return frozenset(words)


_STOP: frozenset[str] | None = None


def distinctive(value: str) -> bool:
    """Whether a value or token is distinctive enough to search for (the rule in the module doc).

    Examples
    --------
    >>> [distinctive(v) for v in ("CT", "1", "YES", "HEAD", "1234", "Series", "Faketown", "A7Q2", "5550142")]
    [False, False, False, False, False, False, True, True, True]
    """
    global _STOP
    value = value.strip()
    if len(value) < 4:
        return False
    if value.isdigit():
        return len(value) >= 6
    if value.isalpha():
        if _STOP is None:
            _STOP = COMMON_WORDS | _dictionary_words()
        return value.lower() not in _STOP
    return True


def distinctive_token(token: str) -> bool:
    """Whether a token *inside* a longer value is worth searching for.

    Words of free text, private values and path components are common
    vocabulary ("chest", "Mixed", "follow-up", "ct_j2k") unless they carry
    digits; so a token counts only when it has at least 4 characters and mixes
    letters with at least 2 digits ("A7Q2", "ACC-0001") or holds at least 6 digits
    ("555-0101"). Whole values and the parts of person names follow
    :func:`distinctive` instead.

    Examples
    --------
    >>> [distinctive_token(t) for t in ("Faketown", "follow-up", "A7Q2", "555-0101", "2024", "ct_j2k")]
    [False, False, True, True, False, False]
    """
    if len(token) < 4:
        return False
    digits = sum(c.isdigit() for c in token)
    letters = sum(c.isalpha() for c in token)
    return (digits >= 2 and letters > 0) or digits >= 6


def _is_well_known_uid(uid: str, keyword: str) -> bool:
    from pydicom.uid import UID_dictionary

    return (
        keyword.endswith("ClassUID")
        or "TransferSyntax" in keyword
        or uid.startswith("1.2.840.10008.")
        or uid in UID_dictionary
    )


class Identifiers:
    """The identifying values of an archive, by kind (values are kept in memory only)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}  # lower-cased value -> kind

    def add(self, value: str, kind: str, *, whole: bool = True, tokens: bool = True) -> None:
        """Add a value (when distinctive), its distinctive tokens and the parts of names in it."""
        value = value.strip().strip("\x00").strip()
        # A single word on its own is vocabulary ("Mixed", "Fixture"); names get add_name.
        if whole and distinctive(value) and not value.replace("-", "").isalpha():
            self.values.setdefault(value.lower(), kind)
        if not tokens:
            return
        for chunk in re.findall(r"[^\s^=,]*\^[^\s=,]*", value):
            # A DICOM-style person name inside text ("by DOE^JOHN"): its parts are name parts.
            self.add_name(chunk)
        for token in _TOKEN.findall(value):
            if token != value and distinctive_token(token):
                self.values.setdefault(token.lower(), kind)

    def add_name(self, value: str) -> None:
        """Add a person name: the whole name and each component that is not a common word."""
        value = value.strip().strip("\x00").strip()
        if distinctive(value):
            self.values.setdefault(value.lower(), "name")
        for part in re.split(r"[\^=]+", value):
            for token in _TOKEN.findall(part) if part.strip() != part or " " in part else [part]:
                if distinctive(token):
                    self.values.setdefault(token.lower(), "name")

    def counts(self) -> dict[str, int]:
        """How many distinct values of each kind."""
        return dict(sorted(Counter(self.values.values()).items()))

    def pattern(self) -> tuple[re.Pattern[str], re.Pattern[bytes], list[str]] | None:
        """Text and bytes patterns matching any value (longest first), and the kinds by group order."""
        if not self.values:
            return None
        ordered = sorted(self.values, key=lambda v: (-len(v), v))
        body = "|".join(re.escape(v) for v in ordered)
        text = re.compile(rf"(?<![A-Za-z0-9])(?:{body})(?![A-Za-z0-9])", re.IGNORECASE)
        raw = re.compile(
            rb"(?<![A-Za-z0-9])(?:" + body.encode("utf-8") + rb")(?![A-Za-z0-9])", re.IGNORECASE
        )
        return text, raw, ordered

    def kind_of(self, found: str) -> str:
        """The kind of a matched value."""
        return self.values.get(found.lower(), "text")


def collect_identifiers(archive: Path) -> tuple[Identifiers, int]:
    """Every identifying value of the archive's files and paths.

    Returns
    -------
    (Identifiers, int)
        The values and the number of files read.
    """
    from medaug.deid.table import load_table
    from medaug.ingest.discover import walk_files

    annex_e = frozenset(load_table().rows)
    ids = Identifiers()
    count = 0
    for path in walk_files(archive):
        count += 1
        parts = path.relative_to(archive).parts
        # A file's extension is generic (".dcm"); its stem is what could identify.
        for part in (*parts[:-1], Path(parts[-1]).stem):
            if distinctive_token(part):
                ids.add(part, "path")
        try:
            ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - any unreadable file: its path is still collected
            continue
        try:
            for elem in _elements(ds):
                _collect_element(elem, ids, annex_e)
        except Exception:  # noqa: BLE001 - a damaged tail: keep what was read
            continue
    return ids, count


def _elements(ds: Dataset) -> Iterator[DataElement]:
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        yield from meta.iterall()
    yield from ds.iterall()


def _text_values(elem: DataElement) -> list[str]:
    value = elem.value
    if value is None:
        return []
    if isinstance(value, (bytes, bytearray)):
        return [bytes(value).decode("latin-1")]
    if isinstance(value, (MultiValue, list, tuple)):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def _collect_element(elem: DataElement, ids: Identifiers, annex_e: frozenset[int]) -> None:
    vr = elem.VR
    if vr == "SQ" or elem.tag == 0x7FE00010:
        return
    if elem.tag.is_private:
        if elem.tag.is_private_creator:
            return
        if vr in ("OB", "UN", "OW") or isinstance(elem.value, (bytes, bytearray)):
            for text in _text_values(elem):
                for piece in re.split(r"[\x00-\x1f\\]+", text):
                    ids.add(piece, "private")
            return
        for text in _text_values(elem):
            ids.add(text, "private")
        return
    if vr == "PN":
        for text in _text_values(elem):
            ids.add_name(text)
    elif vr == "DA":
        for text in _text_values(elem):
            ids.add(text, "date", tokens=False)
    elif vr == "DT":
        for text in _text_values(elem):
            ids.add(text, "date", tokens=False)
            m = _DATE_PART.match(text.strip())
            if m:
                ids.add(m.group(0), "date", tokens=False)
    elif vr == "UI":
        for text in _text_values(elem):
            uid = text.strip().strip("\x00")
            if uid and not _is_well_known_uid(uid, elem.keyword or ""):
                ids.add(uid, "uid", tokens=False)
    elif vr in TEXT_VRS and int(elem.tag) in annex_e:
        kind = "id" if vr in ("SH", "LO", "AE") else "text"
        for text in _text_values(elem):
            ids.add(text, kind)


def scan_dataset(outdir: Path, archive: Path) -> ScanResult:
    """Search every output file and audit file of ``outdir`` for the archive's identifying values.

    Parameters
    ----------
    outdir : Path
        The dataset folder.
    archive : Path
        The source archive.

    Returns
    -------
    ScanResult
        Hits by output file number and tag; never a value.

    Raises
    ------
    UsageError
        When either folder is missing.
    """
    from medaug.errors import UsageError

    outdir, archive = Path(outdir), Path(archive)
    if not outdir.is_dir():
        raise UsageError("the dataset folder does not exist")
    if not archive.is_dir():
        raise UsageError("the archive is not a folder")
    ids, n_archive = collect_identifiers(archive)
    result = ScanResult(identifiers=ids.counts(), archive_files=n_archive)
    compiled = ids.pattern()
    own = set(layout.record_files())
    outputs = sorted(p for p in outdir.rglob("*") if p.is_file() and p.relative_to(outdir).as_posix() not in own)
    result.output_files = len(outputs)
    if compiled is None:
        return result
    text_pattern, raw_pattern, _ = compiled
    for number, path in enumerate(outputs, start=1):
        result.hits.extend(_scan_file(number, path, outdir, ids, text_pattern, raw_pattern))
    for rel in layout.record_files():
        path = outdir / rel
        if not path.is_file():
            continue
        text = path.read_bytes().decode("latin-1")
        for n, line in enumerate(text.split("\n"), start=1):
            for m in text_pattern.finditer(line):
                result.hits.append(Hit(None, f"{rel} line {n}", ids.kind_of(m.group(0))))
    return result


def _scan_file(
    number: int, path: Path, outdir: Path, ids: Identifiers, text_pattern: re.Pattern[str], raw_pattern: re.Pattern[bytes]
) -> list[Hit]:
    hits: list[Hit] = []
    rel = path.relative_to(outdir).as_posix()
    for m in text_pattern.finditer(rel):
        hits.append(Hit(number, "file name", ids.kind_of(m.group(0))))
    raw = path.read_bytes()
    searched = raw
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception:  # noqa: BLE001 - not DICOM: the raw bytes are searched whole
        ds = None
    if ds is not None:
        seen_in_elements = False
        for tag_path, elem in _walk(ds):
            if elem.tag == 0x7FE00010:
                pixels = elem.value
                if isinstance(pixels, (bytes, bytearray)) and pixels and raw.endswith(bytes(pixels)):
                    # Pixel values are image content, not text; random bytes would match short tokens.
                    searched = raw[: len(raw) - len(pixels)]
                continue
            if elem.VR == "SQ":
                continue
            for text in _text_values(elem):
                for m in text_pattern.finditer(text):
                    hits.append(Hit(number, tag_path, ids.kind_of(m.group(0))))
                    seen_in_elements = True
        if seen_in_elements:
            return hits
    for raw_match in raw_pattern.finditer(searched):
        hits.append(Hit(number, "raw bytes", ids.kind_of(raw_match.group(0).decode("latin-1"))))
        break  # the element walk could not place it; one raw hit per file says enough
    return hits


def _walk(ds: Dataset, prefix: str = "") -> Iterator[tuple[str, DataElement]]:
    """Every element with its tag path (file meta first)."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None and not prefix:
        for elem in meta:
            yield _tag(elem), elem
    for elem in ds:
        here = f"{prefix}{_tag(elem)}"
        yield here, elem
        if elem.VR == "SQ" and elem.value is not None:
            for i, item in enumerate(elem.value):
                yield from _walk(item, f"{here}[{i}]/")


def _tag(elem: DataElement) -> str:
    return f"({elem.tag.group:04X},{elem.tag.element:04X})"


def format_result(result: ScanResult) -> str:
    """The human-readable report of ``audit scan`` (never a value)."""
    lines = [
        f"archive files read : {result.archive_files}",
        "identifying values : " + ", ".join(f"{k} {n}" for k, n in result.identifiers.items()),
        f"output files       : {result.output_files}",
    ]
    for h in result.hits:
        place = f"output file {h.file}" if h.file is not None else "audit"
        lines.append(f"HIT: {place} at {h.where}: a source {h.kind} value")
    lines.append("clean: no identifying value found" if result.clean else f"LEAK: {len(result.hits)} hit(s)")
    return "\n".join(lines) + "\n"
