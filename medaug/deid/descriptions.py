"""Descriptions rebuilt from coded values: what Clean Descriptors keeps instead of free text.

PS3.15 E.3.5 asks for descriptors replaced "with values of similar meaning known not to
contain identifying information". A study, series or protocol description is
*synthesized* from attributes the profile keeps and that cannot hold a name:

===================  ===================================================================
part                 from
===================  ===================================================================
modality             Modality (0008,0060), when it is a plain code (``CT``, ``MR``)
body part            Body Part Examined (0018,0015), only when it is the meaning of a
                     CID 4 Anatomic Region concept (pydicom's code dictionary), written
                     as that meaning in upper case (``CHEST``, ``LUMBAR SPINE``)
plane                Image Orientation (Patient): ``AX``, ``COR``, ``SAG`` or ``OBL``
MR sequence          MR Acquisition Type (``2D``/``3D``) and Scanning Sequence codes
                     (``SE``, ``GR``, ``IR``, ``EP``, ``RM``)
thickness            Slice Thickness, as ``<n> mm``
kernel               Convolution Kernel, only when it matches a kernel pattern
                     (``B70f``, ``FC13``, ``STANDARD``…)
contrast             ``+C`` when a contrast agent is recorded (never the agent's text)
===================  ===================================================================

Examples: ``CT CHEST AX 1 mm B70f +C``, ``MR HEAD SAG 3D GR``, ``CR CHEST``. The same
header always gives the same text. Every other free-text value under the option
is emptied (the element stays, with no value).
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any

from pydicom.dataset import Dataset

#: Attributes (keywords) whose value is rebuilt from coded values under Clean Descriptors.
SYNTHESIZED = frozenset(
    {
        "StudyDescription",
        "SeriesDescription",
        "ProtocolName",
        "PerformedProcedureStepDescription",
        "RequestedProcedureDescription",
        "ScheduledProcedureStepDescription",
        "AcquisitionProtocolDescription",
        "AcquisitionProtocolName",
    }
)

_KERNEL = re.compile(r"^(?:[A-Z]{1,3}[0-9]{1,3}[a-z]?|STANDARD|SOFT|BONE|LUNG|DETAIL|SHARP|SMOOTH|BONEPLUS|EDGE)$")
#: Modality codes written into synthesized descriptions (PS3.3 C.7.3.1.1.1 defined terms).
MODALITIES = frozenset(
    "CT MR CR DX MG US NM PT XA RF IO PX OT SC SM XC ES OP OCT IVUS BMD DOC SEG RTSTRUCT RTIMAGE".split()
)
_SCANNING = ("SE", "GR", "IR", "EP", "RM")


@lru_cache(maxsize=1)
def _anatomic_regions() -> dict[str, str]:
    """Upper-case CID 4 meanings, keyed by the meaning with and without spaces."""
    from pydicom.sr.codedict import codes

    regions: dict[str, str] = {}
    cid4 = codes.cid4
    for keyword in cid4.dir():
        meaning = str(getattr(cid4, keyword).meaning).upper()
        if not re.fullmatch(r"[A-Z ,-]+", meaning):
            continue
        regions[meaning] = meaning
        regions[meaning.replace(" ", "")] = meaning
    regions.update(DEFINED_TERMS)
    return regions


#: Body Part Examined defined terms (PS3.16 Annex L) whose CID 4 meaning is spelt otherwise,
#: or that the bundled code dictionary lacks.
DEFINED_TERMS = {
    "CHEST": "CHEST",
    "CSPINE": "CERVICAL SPINE",
    "TSPINE": "THORACIC SPINE",
    "LSPINE": "LUMBAR SPINE",
    "SSPINE": "SACRUM",
    "HEADNECK": "HEAD AND NECK",
    "CHESTABDOMEN": "CHEST AND ABDOMEN",
    "CHESTABDPELVIS": "CHEST, ABDOMEN AND PELVIS",
    "ABDOMENPELVIS": "ABDOMEN AND PELVIS",
    "WHOLEBODY": "ENTIRE BODY",
    "EXTREMITY": "EXTREMITY",
}


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if not isinstance(value, str) and hasattr(value, "__iter__"):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _plane(ds: Dataset) -> str:
    iop = ds.get("ImageOrientationPatient")
    try:
        r = [float(v) for v in iop][:3]
        c = [float(v) for v in iop][3:6]
    except (TypeError, ValueError):
        return ""
    if len(r) != 3 or len(c) != 3:
        return ""
    n = [r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]]
    axis = max(range(3), key=lambda a: abs(n[a]))
    norm = math.sqrt(sum(v * v for v in n)) or 1.0
    if abs(n[axis]) / norm < math.cos(math.radians(10)):
        return "OBL"
    return ("SAG", "COR", "AX")[axis]


def _thickness(ds: Dataset) -> str:
    try:
        value = float(ds.get("SliceThickness"))
    except (TypeError, ValueError):
        return ""
    if not 0 < value < 1000 or not math.isfinite(value):
        return ""
    return f"{round(value, 2):g} mm"


def _contrast(ds: Dataset) -> bool:
    return bool(_text(ds, "ContrastBolusAgent") or ds.get("ContrastBolusAgentSequence"))


def synthesize(ds: Dataset) -> str:
    """The description of an object rebuilt from its coded values (module docstring).

    Examples
    --------
    >>> ds = Dataset()
    >>> ds.Modality = "CT"; ds.BodyPartExamined = "CHEST"; ds.SliceThickness = "1.0"
    >>> ds.ConvolutionKernel = "B70f"; ds.ContrastBolusAgent = "Dr Miller's contrast"
    >>> ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    >>> synthesize(ds)
    'CT CHEST AX 1 mm B70f +C'
    """
    parts: list[str] = []
    modality = _text(ds, "Modality").upper()
    if modality in MODALITIES:
        parts.append(modality)
    body = _anatomic_regions().get(_text(ds, "BodyPartExamined").upper())
    if body:
        parts.append(body)
    plane = _plane(ds)
    if plane:
        parts.append(plane)
    if modality == "MR":
        acquisition = _text(ds, "MRAcquisitionType").upper()
        if acquisition in ("2D", "3D"):
            parts.append(acquisition)
        scanning = [v for v in _text(ds, "ScanningSequence").upper().split("\\") if v in _SCANNING]
        parts.extend(scanning)
    thickness = _thickness(ds)
    if thickness:
        parts.append(thickness)
    kernels = [k for k in _text(ds, "ConvolutionKernel").split("\\") if _KERNEL.fullmatch(k.strip())]
    if kernels:
        parts.append(kernels[0].strip())
    if _contrast(ds):
        parts.append("+C")
    return " ".join(parts)[:64]


_NUMBER_TOKENS = re.compile(r"^(?:[0-9]{1,2}(?:\.[0-9])?MM|B[0-9]{2,4}|[0-9]{1,2}(?:\.[0-9])?)$")


@lru_cache(maxsize=1)
def _reviewed_grammar() -> re.Pattern[str]:
    """The generated phrase grammar (``medaug/deid/data/reviewed_phrases.json``) as one pattern."""
    import json
    from importlib import resources

    text = resources.files("medaug.deid").joinpath("data/reviewed_phrases.json").read_text(encoding="utf-8")
    data = json.loads(text)

    def alt(units: list[str]) -> str:
        return "(?:" + "|".join(re.escape(u) for u in sorted(units, key=len, reverse=True)) + ")"

    region, plane, seq, modality = (alt(data[k]) for k in ("regions", "planes", "sequences", "modalities"))
    return re.compile(
        rf"(?:{modality} )?(?:(?:{region} )?(?:{plane} )?{seq}(?: {seq})?(?: {plane})?|{region}(?: {plane})?)"
    )


def normalise(text: str) -> str:
    """A description as the phrase list holds it: upper case, separators as single spaces."""
    return " ".join(re.split(r"[\s_\-/]+", str(text).upper())).strip()


def reviewed(text: str) -> bool:
    """Whether a description may be kept verbatim: its whole normalised phrase is a reviewed phrase.

    Numbers pass only in known patterns (a thickness ``5MM``, a b-value ``B1000``, a short
    number): they are set aside and the rest of the phrase must be on the list.

    Examples
    --------
    >>> reviewed("AX T2 FLAIR"), reviewed("T1 MPRAGE SAG 1.0mm"), reviewed("T1 for Dr Boyd"), reviewed("CHEST")
    (True, True, False, True)
    """
    words = normalise(text).split()
    kept = [w for w in words if not _NUMBER_TOKENS.fullmatch(w)]
    return bool(kept) and _reviewed_grammar().fullmatch(" ".join(kept)) is not None


def is_synthesized(keyword: str) -> bool:
    """Whether Clean Descriptors rebuilds ``keyword`` rather than emptying it."""
    return keyword in SYNTHESIZED


def vocabulary(text: Any) -> bool:
    """Whether ``text`` could be a synthesized description (so the release gate need not search it)."""
    words = str(text).upper().split()
    regions = {w for meaning in _anatomic_regions().values() for w in meaning.split()}
    known = regions | {"AX", "COR", "SAG", "OBL", "2D", "3D", "MM", "+C", *_SCANNING}
    for w in words:
        # Numbers only as a synthesized thickness has them (short): a record number is not vocabulary.
        if w in known or w in MODALITIES or re.fullmatch(r"[0-9]{1,3}(\.[0-9]{1,2})?", w):
            continue
        return False
    return bool(words)
