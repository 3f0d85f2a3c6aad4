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

Every output image is also looked at for burned-in text (the detector ``run`` uses, on every
frame; ``--no-pixels`` skips it). Where the dataset is searched: every element value at every depth of every
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
from medaug.deid.identifiers import Identifiers, collect_element, distinctive_token, elements, text_values

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
    kept_by_option : bool
        True when the element holding it is one the recorded policy's options keep on
        purpose (Retain Device Identity, Retain Institution Identity, ...): expected, not a leak.
    """

    file: int | None
    where: str
    kind: str
    kept_by_option: bool = False

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {"file": self.file, "where": self.where, "kind": self.kind, "kept_by_option": self.kept_by_option}


@dataclass
class ScanResult:
    """Outcome of :func:`scan_dataset`."""

    hits: list[Hit] = field(default_factory=list)
    identifiers: dict[str, int] = field(default_factory=dict)
    archive_files: int = 0
    output_files: int = 0
    #: Whether every output image's pixels were searched for burned-in text (False: ``--no-pixels``).
    pixels_checked: bool = False

    @property
    def clean(self) -> bool:
        """True when no identifying value was found, except in attributes an option keeps on purpose."""
        return not [h for h in self.hits if not h.kept_by_option]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (what ``--json`` prints)."""
        return {
            "clean": self.clean,
            "archive_files": self.archive_files,
            "output_files": self.output_files,
            "pixels_checked": self.pixels_checked,
            "identifiers": self.identifiers,
            "hits": [h.to_json() for h in self.hits],
        }


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
            if not _looks_dicom(path):
                continue  # a JPEG or JSON sidecar: its path is collected, its bytes not parsed
            ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - any unreadable file: its path is still collected
            continue
        try:
            for elem in elements(ds):
                collect_element(elem, ids, annex_e)
        except Exception:  # noqa: BLE001 - a damaged tail: keep what was read
            continue
    return ids, count


def scan_dataset(outdir: Path, archive: Path, *, pixels: bool = True) -> ScanResult:
    """Search every output file and audit file of ``outdir`` for the archive's identifying values.

    Parameters
    ----------
    outdir : Path
        The dataset folder.
    archive : Path
        The source archive.
    pixels : bool
        Also look for burned-in text in every frame of every output image (the
        default; False skips it on a dataset too large for it, and the result
        says the pixels were not checked).

    Returns
    -------
    ScanResult
        Hits by output file number and tag; never a value.

    Raises
    ------
    UsageError
        When either folder is missing, or ``pixels`` is on and Tesseract is not installed.
    """
    from medaug.errors import UsageError
    from medaug.ingest.discover import sniff

    outdir, archive = Path(outdir), Path(archive)
    if not outdir.is_dir():
        raise UsageError("the dataset folder does not exist")
    if not archive.is_dir():
        raise UsageError("the archive is not a folder")
    if pixels:
        from medaug.deid.text_detect import OCR_PACKAGES, ocr_available

        if not ocr_available():
            # Without OCR every row of text-like strokes would count as text: a report of leaks
            # that may be none. A clean report without the pixel check would say too much.
            raise UsageError(
                f"the pixels cannot be checked for burned-in text without Tesseract OCR (Debian packages "
                f"{OCR_PACKAGES}); pass --no-pixels to search the headers only (the report then says so)"
            )
    ids, n_archive = collect_identifiers(archive)
    result = ScanResult(identifiers=ids.counts(), archive_files=n_archive, pixels_checked=pixels)
    compiled = ids.pattern()
    own = set(layout.record_files())
    outputs = sorted(p for p in outdir.rglob("*") if p.is_file() and p.relative_to(outdir).as_posix() not in own)
    result.output_files = len(outputs)
    kept = _kept_by_options(outdir) if compiled is not None else frozenset()
    for number, path in enumerate(outputs, start=1):
        # Each file is read and parsed once, for its header and (when asked) its pixels.
        raw = path.read_bytes()
        dicom = sniff(raw[:132]) is not None
        ds = _parse(raw) if dicom else None  # a JPEG or JSON sidecar: its bytes are searched whole
        finding = None
        if pixels and dicom:
            finding = PIXELS_UNREADABLE if ds is None else _pixel_finding(ds)
        if finding is not None:
            # Burned-in text, whoever made the dataset: every frame of every output image.
            result.hits.append(Hit(number, "pixel data", finding))
        if compiled is not None:
            text_pattern, raw_pattern, _ = compiled
            rel = path.relative_to(outdir).as_posix()
            result.hits.extend(_scan_file(number, rel, raw, ds, ids, text_pattern, raw_pattern, kept))
    if compiled is None:
        return result
    text_pattern = compiled[0]
    for rel in layout.record_files():
        path = outdir / rel
        if not path.is_file():
            continue
        text = path.read_bytes().decode("latin-1")
        for n, line in enumerate(text.split("\n"), start=1):
            for m in text_pattern.finditer(line):
                result.hits.append(Hit(None, f"{rel} line {n}", ids.kind_of(m.group(0))))
    return result


def _parse(raw: bytes) -> Dataset | None:
    """The DICOM file's dataset (pixels not decoded yet), or None when it does not parse."""
    from io import BytesIO

    try:
        ds = pydicom.dcmread(BytesIO(raw), force=True)
        ds.get("PixelData")  # a damaged file fails here, not half-way through the walk
    except Exception:  # noqa: BLE001 - damaged: the raw bytes are searched whole, the pixels were not looked at
        return None
    return ds


def _scan_file(
    number: int, rel: str, raw: bytes, ds: Dataset | None, ids: Identifiers, text_pattern: re.Pattern[str],
    raw_pattern: re.Pattern[bytes], kept: frozenset[int] = frozenset(),
) -> list[Hit]:
    hits: list[Hit] = []
    for m in text_pattern.finditer(rel):
        hits.append(Hit(number, "file name", ids.kind_of(m.group(0))))
    if rel.endswith(".gz"):
        import gzip
        import zlib

        try:
            raw = gzip.decompress(raw)  # NIfTI exports: their header and any text are searched inflated
        except (OSError, EOFError, zlib.error):
            pass
    searched = raw
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
            for text in text_values(elem):
                for m in text_pattern.finditer(text):
                    # The release gate's rule: a number, a match that a source held in the same
                    # reviewed equipment or code attribute, or one in an attribute a policy option
                    # keeps is there by design, not a leak.
                    expected = ids.expected(elem, m.group(0)) or _top_tag(tag_path) in kept
                    hits.append(Hit(number, tag_path, ids.kind_of(m.group(0)), kept_by_option=expected))
                    seen_in_elements = True
        if seen_in_elements:
            return hits
    for raw_match in raw_pattern.finditer(searched):
        hits.append(Hit(number, "raw bytes", ids.kind_of(raw_match.group(0).decode("latin-1"))))
        break  # the element walk could not place it; one raw hit per file says enough
    return hits


#: A scan finding for an image whose pixels could not be looked at (so are not known to be clean).
PIXELS_UNREADABLE = "pixels not decodable: not checked for burned-in text"


def _pixel_finding(ds: Dataset) -> str | None:
    """``burned-in text`` when an output image's frames carry text (the detector of
    ``medaug.deid.text_detect``), :data:`PIXELS_UNREADABLE` when they cannot be decoded, else None."""
    import numpy as np

    from medaug.deid.text_detect import frames_with_text
    from medaug.ingest.headers import LABEL_SOP_CLASSES

    if "PixelData" not in ds or str(ds.get("SOPClassUID", "")) in LABEL_SOP_CLASSES:
        return None  # no image, or a segmentation's frames: masks, not a displayed image
    try:
        frames = np.asarray(ds.pixel_array)
    except Exception:  # noqa: BLE001 - pydicom's decoders raise several types
        return PIXELS_UNREADABLE  # default-deny: pixels nobody could look at are not clean
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if frames.ndim == (3 if samples > 1 else 2):
        frames = frames[None]
    if samples == 1:
        slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
        # float32 holds every 16-bit stored value exactly; the display window needs no more.
        frames = frames.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    found = frames_with_text(frames, modality=str(ds.get("Modality", "")), photometric=photometric)
    return "burned-in text" if found else None


def _top_tag(tag_path: str) -> int:
    """The top-level tag of a tag path such as ``(0008,0080)`` or ``(0040,0275)[0]/(0032,1060)``."""
    try:
        group, element = tag_path[1:10].split(",")
        return (int(group, 16) << 16) | int(element, 16)
    except ValueError:
        return -1


def _kept_by_options(outdir: Path) -> frozenset[int]:
    """Tags the recorded policy's options keep on purpose (action K), for any SOP class; empty if unknown."""
    from medaug.audit.chain import read_lines
    from medaug.dataset import records as rec
    from medaug.deid.table import lookups
    from medaug.errors import PolicyError
    from medaug.policy.load import policy_from_mapping

    try:
        lines = read_lines(layout.log_path(outdir))
    except (OSError, UnicodeDecodeError):
        return frozenset()
    import json

    try:
        start = json.loads(lines[0]) if lines else {}
        policy = policy_from_mapping(start["policy"]["content"]) if rec.is_type(start, rec.RunStart) else None
    except (ValueError, KeyError, TypeError, PolicyError):
        policy = None
    if policy is None:
        return frozenset()
    top, nested = lookups(policy.deid, "")
    return frozenset(t for t, a in {**nested, **top}.items() if a == "K")


def _looks_dicom(path: Path) -> bool:
    """Whether the first bytes look like DICOM (a cheap test before a costly forced parse)."""
    from medaug.ingest.discover import sniff

    try:
        with path.open("rb") as f:
            return sniff(f.read(132)) is not None
    except OSError:
        return False


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
        "pixels             : " + ("searched for burned-in text, every frame" if result.pixels_checked
                                   else "NOT checked for burned-in text (--no-pixels)"),
    ]
    for h in result.hits:
        place = f"output file {h.file}" if h.file is not None else "audit"
        note = " (kept on purpose: reviewed equipment or code text, or a policy option)" if h.kept_by_option else ""
        lines.append(f"HIT: {place} at {h.where}: a source {h.kind} value{note}")
    if not result.clean:
        lines.append(f"LEAK: {len([h for h in result.hits if not h.kept_by_option])} hit(s)")
    elif result.pixels_checked:
        lines.append("clean: no identifying value found")
    else:
        lines.append("clean: no identifying value found in headers, names or audit files; pixels NOT checked")
    return "\n".join(lines) + "\n"
