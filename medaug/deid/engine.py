"""The de-identification engine: PS3.15 Annex E applied to one dataset.

One walk over the dataset, sequences included, with one dictionary lookup per
element (tag -> action letter, precomputed per options and SOP class). Elements
that are kept are never decoded: their raw bytes go to the writer untouched,
which is what keeps de-identification close to the cost of a plain read + write.

Actions (PS3.15 Table E.1-1): ``D`` dummy, ``Z`` empty, ``X`` remove, ``K`` keep,
``C`` clean, ``U`` keyed UID. Internal letters: ``k`` keep (attribute not in the
table), ``S`` walk a sequence, ``T`` free text kept unless inside cleaned
structured content, ``P`` keyed patient pseudonym.
"""

from __future__ import annotations

import datetime as _dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pydicom.datadict import DicomDictionary, dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID_dictionary

from medaug.deid import burned_in
from medaug.deid.descriptions import is_synthesized, reviewed, synthesize
from medaug.deid.keys import Key
from medaug.deid.marking import mark
from medaug.deid.options import OPTION_CODES, DeidOptions
from medaug.deid.pseudonyms import Pseudonymizer, patient_identity, pseudonymizer
from medaug.deid.references import (
    REFERENCED_INSTANCES,
    REFERENCED_SOP_INSTANCE,
    prune_instance_summary,
)
from medaug.deid.table import load_table, lookups

PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020
_SOP_CLASS = 0x00080016
_SOP_INSTANCE = 0x00080018
_REFERENCED_CLASS = 0x00081150

#: Valid dummy values per VR for action D (validators accept them).
DUMMIES: dict[str, Any] = {
    "AE": "ANONYMOUS",
    "AS": "000Y",
    "CS": "ANONYMIZED",
    "DA": "19000101",
    "DS": "0",
    "DT": "19000101000000",
    "IS": "0",
    "LO": "ANONYMIZED",
    "LT": "ANONYMIZED",
    "PN": "ANONYMOUS",
    "SH": "ANONYMIZED",
    "ST": "ANONYMIZED",
    "TM": "000000",
    "UC": "ANONYMIZED",
    "UT": "ANONYMIZED",
    "UR": "",
    "FL": 0.0,
    "FD": 0.0,
    "SL": 0,
    "SS": 0,
    "UL": 0,
    "US": 0,
    "SV": 0,
    "UV": 0,
}
_TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "PN"})
_DATE_VRS = frozenset({"DA", "DT"})
# UI attributes that name classes, syntaxes, coding schemes and creators: public
# facts, never instance identifiers, so never replaced.
_WELL_KNOWN_UI_KEYWORDS = frozenset(
    {
        "CodingSchemeUID",
        "ContextGroupExtensionCreatorUID",
        "ContextUID",
        "MappingResourceUID",
        "PrivateInformationCreatorUID",
        "CreatorVersionUID",
        "SegmentationTemplateUID",
    }
)
# Free text of Segmentations that Table E.1-1 does not list, given the actions the table gives
# their RT Structure Set counterparts (ROI Name, ROI Description): a segment's name is typed by a
# person and can hold another's name. Type 1 and 1C elements get a dummy, so the object stays valid.
_SEGMENT_TEXT_ACTIONS = {
    0x00620005: "D",  # Segment Label (Type 1)
    0x00620006: "X",  # Segment Description
    0x00620009: "D",  # Segment Algorithm Name (Type 1C)
    0x00620020: "X",  # Tracking ID
}
# File meta attributes naming the sending and receiving systems.
_META_REMOVE = (0x00020016, 0x00020017, 0x00020018, 0x00020026, 0x00020027, 0x00020028, 0x00020100, 0x00020102)

@dataclass
class DeidReport:
    """What de-identification did to one object: tag numbers and counts, never values.

    Attributes
    ----------
    actions : dict
        ``removed``, ``emptied``, ``dummied``, ``replaced``, ``cleaned``,
        ``shifted``, ``kept`` -> {tag number: count}. ``kept`` lists attributes
        of Table E.1-1 kept by an option; attributes outside the table that are
        kept are not listed.
    private_removed : int
        Private elements removed (creators included).
    private_kept : int
        Safe-listed private elements kept.
    groups_removed : int
        Overlay and curve elements (groups 50xx/60xx) removed.
    pixels : str
        ``untouched`` or ``blanked`` (a burned-in rule was applied).
    codes : tuple of str
        CID 7050 code values recorded in DeidentificationMethodCodeSequence.
    table_edition : str
        The edition of the action table used.
    """

    actions: dict[str, dict[int, int]] = field(default_factory=dict)
    private_removed: int = 0
    private_kept: int = 0
    groups_removed: int = 0
    pixels: str = "untouched"
    codes: tuple[str, ...] = ()
    table_edition: str = ""

    def count(self, word: str) -> int:
        """Total number of elements that got action `word`."""
        return sum(self.actions.get(word, {}).values())

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (tags as ``"GGGGEEEE"``) for the audit log."""
        return {
            "actions": {w: {f"{t:08X}": n for t, n in sorted(d.items())} for w, d in sorted(self.actions.items())},
            "private_removed": self.private_removed,
            "private_kept": self.private_kept,
            "groups_removed": self.groups_removed,
            "pixels": self.pixels,
            "codes": list(self.codes),
            "table_edition": self.table_edition,
        }


@lru_cache(maxsize=1)
def _dictionary_defaults() -> tuple[dict[int, str], frozenset[int]]:
    """Action of every dictionary attribute outside the table, and the SQ tags.

    PN and AE outside the table are removed; free text stays unless inside
    cleaned structured content; UIDs are replaced unless they name a class, a
    syntax or a coding scheme; dates are handled by :func:`_plan`.
    """
    rows = load_table().rows
    defaults: dict[int, str] = {}
    sequences = set()
    for tag, (vr, _vm, _name, _retired, keyword) in DicomDictionary.items():
        if vr == "SQ":
            sequences.add(tag)
        if tag in rows or tag >> 16 == 0x0002:
            continue
        if tag in _SEGMENT_TEXT_ACTIONS:
            defaults[tag] = _SEGMENT_TEXT_ACTIONS[tag]
        elif vr == "SQ":
            defaults[tag] = "S"
        elif vr == "UI":
            well_known = (
                "SOPClass" in keyword or "TransferSyntax" in keyword or keyword == "ImplementationClassUID"
            ) or keyword in _WELL_KNOWN_UI_KEYWORDS
            defaults[tag] = "k" if well_known else "U"
        elif vr in ("PN", "AE"):
            defaults[tag] = "X"
        elif vr in _DATE_VRS:
            defaults[tag] = "date"
        elif vr in _TEXT_VRS:
            defaults[tag] = "T"
        else:
            defaults[tag] = "k"
    return defaults, frozenset(sequences)


@lru_cache(maxsize=256)
def _plan_cached(options: DeidOptions, sop_class: str) -> tuple[dict[int, str], dict[int, str]]:
    top, nested = lookups(options, sop_class)
    defaults, sequences = _dictionary_defaults()
    if options.retain_long_full_dates:
        date_action = "K"
    elif options.retain_long_modified_dates:
        date_action = "C"
    else:
        date_action = "X"
    plans = []
    for table_part in (top, nested):
        plan = {t: (date_action if a == "date" else a) for t, a in defaults.items()}
        if options.retain_uids:
            plan = {t: ("k" if a == "U" else a) for t, a in plan.items()}
        for tag, action in table_part.items():
            # Retained or replaced sequences are still walked: their items hold
            # attributes with rules of their own.
            if tag in sequences and action in ("K", "U"):
                action = "S"
            plan[tag] = action
        plan[PATIENT_NAME] = "P" if plan.get(PATIENT_NAME) != "K" else "K"
        plan[PATIENT_ID] = "P" if plan.get(PATIENT_ID) != "K" else "K"
        plans.append(plan)
    return plans[0], plans[1]


def _plan(options: DeidOptions, sop_class: str) -> tuple[dict[int, str], dict[int, str]]:
    return _plan_cached(options, sop_class)


def _raw_text(elem: DataElement | RawDataElement) -> str:
    """The value of an ASCII element (UI, DA, DT) without decoding the whole dataset."""
    value = elem.value
    if isinstance(value, bytes | bytearray):
        return value.decode("ascii", "replace").rstrip("\x00 ")
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return "\\".join(str(v) for v in value)
    return str(value).rstrip("\x00 ")


def _vr_of(elem: DataElement | RawDataElement, tag: int) -> str:
    vr = elem.VR
    # Implicit VR gives none; a writer that did not know the element gives UN. Either way
    # the dictionary's VR says what the value is (a date stored as UN is still a date).
    if vr is None or vr == "UN":
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            vr = "UN"
    return str(vr).split(" or ")[0]


def shift_date(value: str, days: int, vr: str) -> str:
    """Shift DA or DT value(s) by whole days, keeping each value's precision.

    Values that do not parse are replaced by the dummy date (never kept).

    Examples
    --------
    >>> shift_date("20240301", -1, "DA")
    '20240229'
    >>> shift_date("20240301120000.5+0100", 1, "DT")
    '20240302120000.5+0100'
    """
    out: list[str] = []
    for part in value.split("\\"):
        part = part.strip()
        if not part:
            out.append(part)
            continue
        if vr == "DA" and "-" in part:  # a date range (query syntax)
            out.append("-".join(shift_date(p, days, vr) if p else p for p in part.split("-")))
            continue
        head = part[:8]
        precision = len(head)
        if not head.isdigit() or precision not in (4, 6, 8):
            out.append(DUMMIES[vr])
            continue
        padded = head + "0101"[precision - 4 :] if precision < 8 else head
        try:
            moved = _dt.date(int(padded[:4]), int(padded[4:6]), int(padded[6:8])) + _dt.timedelta(days=days)
        except ValueError:
            out.append(DUMMIES[vr])
            continue
        out.append(moved.strftime("%Y%m%d")[:precision] + part[8:])
    return "\\".join(out)


class _Walker:
    """State of one object's de-identification (patient pseudonyms, offset, report)."""

    def __init__(self, dataset: Dataset, options: DeidOptions, pseudo: Pseudonymizer, sop_class: str) -> None:
        self.options = options
        self.pseudo = pseudo
        self.top, self.nested = _plan(options, sop_class)
        pid = dataset.get_item(PATIENT_ID)
        pname = dataset.get_item(PATIENT_NAME)
        self.identity = patient_identity(
            _raw_text(pid) if pid is not None else "", _raw_text(pname) if pname is not None else ""
        )
        self._offset: int | None = None
        self._description: str | None = None
        self.source = dataset
        self.safe = {(s.creator, s.element_byte) for s in options.safe_private} if options.retain_safe_private else set()
        self.counts: dict[str, Counter[int]] = defaultdict(Counter)
        self.private_removed = 0
        self.private_kept = 0
        self.groups_removed = 0

    @property
    def offset(self) -> int:
        if self._offset is None:
            self._offset = self.pseudo.date_offset(self.identity)
        return self._offset

    # -- the walk -------------------------------------------------------------
    def walk(self, dataset: Dataset, plan: dict[int, str], clean_text: bool) -> None:
        counts = self.counts
        for tag in list(dataset.keys()):
            group = tag >> 16
            if group & 1:
                self._private(dataset, tag, clean_text)
                continue
            if not tag & 0xFFFF or group & 0xFF00 in (0x5000, 0x6000):
                # Group lengths go stale; curves and overlays (bitmaps that can
                # hold text) are removed whole, so no orphaned overlay module remains.
                del dataset[tag]
                if tag & 0xFFFF:
                    self.groups_removed += 1
                continue
            action = plan.get(tag)
            if action == "k":
                continue
            if action is None:
                # Public but unknown to the dictionary and the table: its meaning,
                # hence its risk, is unknown.
                del dataset[tag]
                counts["removed"][tag] += 1
                continue
            if action == "X":
                del dataset[tag]
                counts["removed"][tag] += 1
            elif action == "S":
                self._sequence(dataset, tag, clean_text)
            elif action == "T":
                if clean_text:
                    self._clean(dataset, tag, "C")
            elif action == "K":
                counts["kept"][tag] += 1
            else:
                self._change(dataset, tag, action, clean_text)

    def _sequence(self, dataset: Dataset, tag: int, clean_text: bool) -> None:
        value = dataset[tag].value
        if isinstance(value, DicomSequence):
            for item in value:
                self.walk(item, self.nested, clean_text)

    def _set(self, dataset: Dataset, tag: int, vr: str, value: Any) -> None:
        dataset[tag] = DataElement(tag, vr, value)

    def _change(self, dataset: Dataset, tag: int, action: str, clean_text: bool) -> None:
        elem = dataset.get_item(tag)
        vr = _vr_of(elem, tag)
        counts = self.counts
        if vr == "SQ":
            if action in ("C", "U"):
                self._sequence(dataset, tag, clean_text or action == "C")
                counts["cleaned" if action == "C" else "kept"][tag] += 1
            elif action == "Z":
                self._set(dataset, tag, "SQ", DicomSequence())
                counts["emptied"][tag] += 1
            else:
                # D on a sequence: its items cannot be trusted. References to instances
                # (Referenced Performed Procedure Step, Type 1 in some IODs) keep one item
                # each with the class and a keyed instance UID, so the sequence stays
                # valid; any other sequence is emptied, the only dummy valid for any items.
                references = DicomSequence(
                    self._reference(item) for item in dataset[tag].value if REFERENCED_SOP_INSTANCE in item
                )
                self._set(dataset, tag, "SQ", references)
                counts["dummied" if references else "emptied"][tag] += 1
            return
        if action == "Z":
            self._set(dataset, tag, vr, None)
            counts["emptied"][tag] += 1
        elif action == "U" or (action in ("D", "C") and vr == "UI"):
            self._uid(dataset, elem, tag)
        elif action == "P":
            value = self.pseudo.patient_name(self.identity) if tag == PATIENT_NAME else self.pseudo.patient_id(self.identity)
            self._set(dataset, tag, vr, value)
            counts["replaced"][tag] += 1
        elif action == "D":
            self._set(dataset, tag, vr, DUMMIES.get(vr))
            counts["dummied"][tag] += 1
        elif action == "C":
            self._clean(dataset, tag, action, vr=vr, elem=elem)

    def _reference(self, item: Dataset) -> Dataset:
        """A reference item with only the referenced class and the keyed instance UID."""
        reference = Dataset()
        for tag in (_REFERENCED_CLASS, REFERENCED_SOP_INSTANCE):
            elem = item.get_item(tag)
            if elem is not None:
                reference[tag] = DataElement(tag, "UI", _raw_text(elem))
        self._uid(reference, reference[REFERENCED_SOP_INSTANCE], REFERENCED_SOP_INSTANCE)
        return reference

    def _uid(self, dataset: Dataset, elem: DataElement | RawDataElement, tag: int) -> None:
        text = _raw_text(elem)
        if not text:
            return
        mapped = []
        for uid in text.split("\\"):
            uid = uid.strip("\x00 ")
            mapped.append(uid if uid in UID_dictionary or uid.startswith("1.2.840.10008.") else self.pseudo.uid(uid))
        self._set(dataset, tag, "UI", mapped if len(mapped) > 1 else mapped[0])
        self.counts["replaced"][tag] += 1

    def _clean(
        self, dataset: Dataset, tag: int, action: str, *, vr: str | None = None,
        elem: DataElement | RawDataElement | None = None,
    ) -> None:
        if elem is None:
            elem = dataset.get_item(tag)
        if vr is None:
            vr = _vr_of(elem, tag)
        if vr in _DATE_VRS:
            if self.options.retain_long_modified_dates:
                self._set(dataset, tag, vr, shift_date(_raw_text(elem), self.offset, vr))
                self.counts["shifted"][tag] += 1
            else:
                self._set(dataset, tag, vr, DUMMIES[vr])
                self.counts["dummied"][tag] += 1
        elif vr in _TEXT_VRS:
            # Known to be safe means rebuilt from coded values (descriptions) or nothing:
            # free text cannot be cleaned of names the header does not repeat.
            if dataset[tag].value in (None, ""):
                return
            if is_synthesized(keyword_for_tag(tag)):
                value = dataset[tag].value
                if self.options.reviewed_phrases and isinstance(value, str) and reviewed(value):
                    self.counts["kept"][tag] += 1
                    return
                if self._description is None:
                    self._description = synthesize(self.source)
                self._set(dataset, tag, vr, self._description or None)
                self.counts["cleaned"][tag] += 1
            else:
                self._set(dataset, tag, vr, None)
                self.counts["emptied"][tag] += 1
        elif vr == "TM":
            # Whole-day shifts leave the time of day as it was.
            self.counts["kept"][tag] += 1
        elif vr in ("AE", "UR", "OB", "OW", "UN"):
            del dataset[tag]
            self.counts["removed"][tag] += 1
        else:
            self.counts["kept"][tag] += 1

    # -- private elements -----------------------------------------------------
    def _private(self, dataset: Dataset, tag: int, clean_text: bool) -> None:
        if not self.safe:
            del dataset[tag]
            self.private_removed += 1
            return
        element = tag & 0xFFFF
        if 0x0010 <= element <= 0x00FF:
            return  # creators are settled once their block is known (see _creators)
        keep = False
        if element >= 0x1000:
            creator = dataset.get_item(((tag >> 16) << 16) | (element >> 8))
            if creator is not None:
                keep = (_raw_text(creator).strip(), element & 0xFF) in self.safe
        if not keep:
            del dataset[tag]
            self.private_removed += 1
            return
        self.private_kept += 1
        elem = dataset[tag]
        if elem.VR == "SQ" and isinstance(elem.value, DicomSequence):
            for item in elem.value:
                self.walk(item, self.nested, clean_text)

    def creators(self, dataset: Dataset) -> None:
        """Drop private creators whose block kept nothing (after the walk)."""
        if not self.safe:
            return
        used = {((t >> 16), (t & 0xFFFF) >> 8) for t in dataset.keys() if t >> 16 & 1 and t & 0xFFFF >= 0x1000}
        for tag in list(dataset.keys()):
            if tag >> 16 & 1 and 0x0010 <= tag & 0xFFFF <= 0x00FF and ((tag >> 16), tag & 0xFF) not in used:
                del dataset[tag]
                self.private_removed += 1
        for tag in dataset.keys():
            elem = dataset.get_item(tag)
            if isinstance(elem, DataElement) and elem.VR == "SQ":
                for item in elem.value:
                    self.creators(item)


def deidentify(
    dataset: Dataset, options: DeidOptions, key: Key, *, pixels_cleaned: bool | None = None
) -> tuple[Dataset, DeidReport]:
    """De-identify `dataset` in place with the Basic Profile and the selected options.

    Parameters
    ----------
    dataset : Dataset
        The object, as read by ``pydicom.dcmread`` (file meta included when present).
        It is modified in place and returned.
    options : DeidOptions
        Profile options, safe private list and burned-in rules.
    key : Key
        The secret key of the keyed pseudonyms.
    pixels_cleaned : bool, optional
        None (default): assess the dataset's own pixels with
        :func:`medaug.deid.burned_in.assess` and apply a matching rule. True or
        False: the caller holds the pixels apart (a header without PixelData),
        has already called ``assess`` and blanked the rule's regions (True) or
        found nothing to clean (False).

    Returns
    -------
    dataset : Dataset
        The same object, de-identified and marked.
    report : DeidReport
        Tag numbers and counts per action; never a value.

    Raises
    ------
    DeidentificationError
        When the object cannot be de-identified safely (e.g. ``burned-in-annotation``,
        ``burned-in-unknown``, ``encapsulated-document``); the caller quarantines it.

    Examples
    --------
    >>> from pydicom.dataset import Dataset
    >>> ds = Dataset()
    >>> ds.PatientName = "Doe^Jane"
    >>> ds.SOPInstanceUID = "1.2.3.4"
    >>> out, report = deidentify(ds, DeidOptions(), Key(bytes(32)))
    >>> str(out.PatientName).startswith("ANON^"), out.SOPInstanceUID.startswith("2.25.")
    (True, True)
    """
    sop_item = dataset.get_item(_SOP_CLASS)
    sop_class = _raw_text(sop_item) if sop_item is not None else ""
    if pixels_cleaned is None:
        rule = burned_in.assess(dataset, options)
        if rule is not None:
            burned_in.blank_regions(dataset, rule)
        blanked = rule is not None
    else:
        blanked = pixels_cleaned
        if blanked:
            dataset.BurnedInAnnotation = "NO"

    walker = _Walker(dataset, options, pseudonymizer(key), sop_class)
    walker.walk(dataset, walker.top, False)
    walker.creators(dataset)
    pruned = prune_instance_summary(dataset)
    if pruned:
        walker.counts["removed"][REFERENCED_INSTANCES] += pruned

    if getattr(dataset, "preamble", None):
        # The 128-byte preamble is free for applications (often a TIFF header) and may hold anything.
        dataset.preamble = b"\x00" * 128
    meta = getattr(dataset, "file_meta", None)
    if meta is not None:
        for tag in _META_REMOVE:
            if tag in meta:
                del meta[tag]
        instance = dataset.get_item(_SOP_INSTANCE)
        if instance is not None and "MediaStorageSOPInstanceUID" in meta:
            meta.MediaStorageSOPInstanceUID = _raw_text(instance)

    applied = [name for name in options.names if name != "clean_pixel_data" or blanked]
    codes = [("113100", "Basic Application Confidentiality Profile")] + [OPTION_CODES[n] for n in applied]
    if options.retain_long_full_dates:
        longitudinal = "UNMODIFIED"
    elif options.retain_long_modified_dates:
        longitudinal = "MODIFIED"
    else:
        longitudinal = "REMOVED"
    mark(dataset, codes, pixels_clean=True, longitudinal=longitudinal)

    report = DeidReport(
        actions={word: dict(c) for word, c in walker.counts.items()},
        private_removed=walker.private_removed,
        private_kept=walker.private_kept,
        groups_removed=walker.groups_removed,
        pixels="blanked" if blanked else "untouched",
        codes=tuple(code for code, _ in codes),
        table_edition=load_table().edition,
    )
    return dataset, report


__all__ = ["DUMMIES", "DeidReport", "deidentify", "shift_date"]
