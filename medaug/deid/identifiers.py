"""The identifying values of a set of DICOM headers: one collector for ``audit scan`` and the release gate.

What is collected (every element at every depth, file meta included; pixel data
is not read), and the distinctiveness rules that keep short or common values
from raising false alarms, are described in :mod:`medaug.audit.scan`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

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

#: Text attributes outside the Annex E table that describe equipment, codes or medaug itself:
#: reviewed as holding no personal information, so the release gate does not search for them.
SAFE_TEXT = frozenset(
    {
        "Manufacturer", "ManufacturerModelName", "SoftwareVersions", "ConvolutionKernel", "CodeMeaning",
        "CodingSchemeDesignator", "CodingSchemeVersion", "CodeValue", "LongCodeValue", "URNCodeValue",
        "DeidentificationMethod", "DerivationDescription", "ImplementationVersionName", "RescaleType",
        "PixelPresentation", "VolumetricProperties", "VolumeBasedCalculationTechnique", "ContentQualification",
        "LossyImageCompressionMethod", "SpecificCharacterSet", "TransferSyntaxUID", "FrameLaterality",
        "PositionReferenceIndicator", "PatientPosition", "ViewPosition", "ImageLaterality", "Laterality",
        "PresentationIntentType", "RescaleUnits", "MeasurementUnitsCodeSequence", "PixelSpacingCalibrationType",
        "ReceiveCoilName", "TransmitCoilName", "SequenceName", "PulseSequenceName", "CoilString",
        "FilterType", "FilterMaterial", "GeneratorPower", "ExposureControlMode", "GridFocalDistance",
        "CollimatorShape", "DetectorType", "DetectorConfiguration", "ScanOptions", "TableType",
        "WindowCenterWidthExplanation", "PlateType", "PhosphorType", "AcquisitionContextDescription",
        "ReconstructionMethod", "ImplementationClassUID", "SecondaryCaptureDeviceManufacturer",
        "SecondaryCaptureDeviceManufacturerModelName", "SecondaryCaptureDeviceSoftwareVersions",
    }
)

#: Value representations of coded values, numbers and times: kept as they are, never free text.
CODED_VRS = frozenset({"CS", "AS", "DS", "IS", "TM", "US", "SS", "UL", "SL", "FL", "FD", "AT", "UV", "SV"})


#: Coded VRs whose values are numbers, times or ages: what medaug computes (positions, counts,
#: pixel extremes), never text copied from another attribute.
NUMERIC_VRS = CODED_VRS - {"CS"}


def kept_by_design(elem: DataElement) -> bool:
    """Whether an output element is one that holds no personal text by design.

    The attribute half of the rule the release gate and ``audit scan`` judge a match by
    (:meth:`Identifiers.expected` adds the value half): reviewed equipment and code text
    (:data:`SAFE_TEXT`: "BENCH" as a Manufacturer is a vendor, whatever a patient is
    called) and coded values, numbers and times (:data:`CODED_VRS`).

    Examples
    --------
    >>> from pydicom.dataelem import DataElement
    >>> kept_by_design(DataElement(0x00080070, "LO", "BENCH")), kept_by_design(DataElement(0x00100010, "PN", "BENCH"))
    (True, False)
    """
    return elem.keyword in SAFE_TEXT or elem.VR in CODED_VRS


#: Values medaug itself writes (action D dummies): found in a source that was de-identified before.
_OWN_CONSTANTS = frozenset({"ANONYMIZED", "ANONYMOUS", "19000101", "19000101000000", "000000"})
_TIMEZONE = re.compile(r"[+-][0-9]{4}")

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]|[A-Za-z0-9]")
_DATE_PART = re.compile(r"[0-9]{8}")


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
        # What the sources held in the attributes kept by design (keyword -> lower-cased
        # values): a match found in one of them is expected only when the source held it there.
        self.held: dict[str, set[str]] = {}

    def hold(self, elem: DataElement) -> None:
        """Note the text a source holds in an attribute kept by design (:func:`kept_by_design`)."""
        if elem.VR in NUMERIC_VRS or not elem.keyword or not kept_by_design(elem):
            return
        held = self.held.setdefault(elem.keyword, set())
        held.update(text.lower() for text in text_values(elem))

    def expected(self, elem: DataElement, found: str) -> bool:
        """Whether ``found``, a match of :meth:`pattern` in output element ``elem``, is there by design.

        A number, time or age is (:data:`NUMERIC_VRS`: medaug computes them). Reviewed
        equipment and code text and code strings are only when a source held the match in
        the same attribute: a tool that copies a patient's name into Manufacturer leaks it,
        while a vendor's name that is also a patient's is a coincidence.

        Examples
        --------
        >>> ids = Identifiers()
        >>> ids.hold(DataElement(0x00080070, "LO", "Benchquire Medical"))
        >>> maker = DataElement(0x00080070, "LO", "BENCHQUIRE MEDICAL")
        >>> model = DataElement(0x00081090, "LO", "BENCHQUIRE")
        >>> ids.expected(maker, "BENCHQUIRE"), ids.expected(model, "BENCHQUIRE")
        (True, False)
        """
        if not kept_by_design(elem):
            return False
        if elem.VR in NUMERIC_VRS:
            return True
        needle = found.lower()
        return any(needle in text for text in self.held.get(elem.keyword, ()))

    def add(self, value: str, kind: str, *, whole: bool = True, tokens: bool = True) -> None:
        """Add a value (when distinctive), its distinctive tokens and the parts of names in it."""
        value = value.strip().strip("\x00").strip()
        if value.upper() in _OWN_CONSTANTS or _TIMEZONE.fullmatch(value):
            return  # medaug's own dummies, and a UTC offset, identify no one
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
        try:
            text, raw = _compiled(_alternation(ordered))
        except (RecursionError, re.error, OverflowError):  # a tree too deep for the compiler
            text, raw = _compiled("|".join(re.escape(v) for v in ordered))
        return text, raw, ordered

    def kind_of(self, found: str) -> str:
        """The kind of a matched value."""
        return self.values.get(found.lower(), "text")


def _alternation(values: Sequence[str]) -> str:
    """A regular expression matching any of ``values`` (longest first), as a prefix tree.

    It matches what ``"|".join(longest first)`` matches, and at each position the
    longest value too (each optional tail is greedy); but a series' values share long
    prefixes (its instance UIDs), and a tree tries each prefix once per position
    instead of once per value, which was most of the release gate's time. A tree too
    deep to build or compile falls back to the plain alternation (:meth:`Identifiers.pattern`).
    """
    tree: dict[str, Any] = {}
    for value in values:
        node = tree
        for ch in value:
            node = node.setdefault(ch, {})
        node[""] = {}
    return _branches(tree)


def _compiled(body: str) -> tuple[re.Pattern[str], re.Pattern[bytes]]:
    """The text and bytes patterns of an alternation ``body``, whole values only (no letter or digit beside)."""
    text = re.compile(rf"(?<![A-Za-z0-9])(?:{body})(?![A-Za-z0-9])", re.IGNORECASE)
    raw = re.compile(rb"(?<![A-Za-z0-9])(?:" + body.encode("utf-8") + rb")(?![A-Za-z0-9])", re.IGNORECASE)
    return text, raw


def _branches(node: dict[str, Any]) -> str:
    """The expression of one node of the tree (a run of single children is one literal)."""
    literal = []
    while len(node) == 1 and "" not in node:
        ch, node = next(iter(node.items()))
        literal.append(re.escape(ch))
    alternatives = [re.escape(ch) + _branches(child) for ch, child in sorted(node.items()) if ch]
    head = "".join(literal)
    if not alternatives:
        return head
    body = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
    if "" in node:  # a value ends here and longer ones go on: the rest is optional (greedy)
        body = "(?:" + body + ")?"
    return head + body


def elements(ds: Dataset) -> Iterator[DataElement]:
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        yield from meta.iterall()
    yield from ds.iterall()


def text_values(elem: DataElement) -> list[str]:
    value = elem.value
    if value is None:
        return []
    if isinstance(value, (bytes, bytearray)):
        return [bytes(value).decode("latin-1")]
    if isinstance(value, (MultiValue, list, tuple)):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def collect_element(
    elem: DataElement, ids: Identifiers, annex_e: frozenset[int], *, other_text: bool = False
) -> None:
    """Add the identifying values of one element (the rules above).

    ``other_text``: also collect text values of attributes the Annex E table does not
    name (the release gate does: a value the table misses must still not leave),
    except the reviewed :data:`SAFE_TEXT` attributes and coded items' meanings.
    """
    vr = elem.VR
    if vr == "SQ" or elem.tag == 0x7FE00010:
        return
    ids.hold(elem)
    if elem.tag.is_private:
        if elem.tag.is_private_creator:
            return
        if vr in ("OB", "UN", "OW") or isinstance(elem.value, (bytes, bytearray)):
            for text in text_values(elem):
                for piece in re.split(r"[\x00-\x1f\\]+", text):
                    ids.add(piece, "private")
            return
        for text in text_values(elem):
            ids.add(text, "private")
        return
    if vr == "PN":
        for text in text_values(elem):
            ids.add_name(text)
    elif vr == "DA":
        for text in text_values(elem):
            ids.add(text, "date", tokens=False)
    elif vr == "DT":
        for text in text_values(elem):
            ids.add(text, "date", tokens=False)
            m = _DATE_PART.match(text.strip())
            if m:
                ids.add(m.group(0), "date", tokens=False)
    elif vr == "UI":
        for text in text_values(elem):
            uid = text.strip().strip("\x00")
            if uid and not _is_well_known_uid(uid, elem.keyword or ""):
                ids.add(uid, "uid", tokens=False)
    elif vr in TEXT_VRS and (int(elem.tag) in annex_e or (other_text and elem.keyword not in SAFE_TEXT)):
        kind = "id" if vr in ("SH", "LO", "AE") else "text"
        for text in text_values(elem):
            ids.add(text, kind)


