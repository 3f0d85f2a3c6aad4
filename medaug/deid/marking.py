"""Marking an object as de-identified the DICOM way (PS3.15 E.1.1, PS3.3 C.12.1)."""

from __future__ import annotations

from collections.abc import Sequence

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence

from medaug import __version__

#: Appended to DeidentificationMethod (LO, at most 64 characters).
METHOD_TEXT = f"medaug {__version__} PS3.15 Annex E Basic Profile"[:64]


def mark(
    dataset: Dataset,
    codes: Sequence[tuple[str, str]],
    *,
    pixels_clean: bool,
    longitudinal: str,
) -> None:
    """Set the de-identification attributes of `dataset` in place.

    Parameters
    ----------
    dataset : Dataset
        The de-identified object.
    codes : sequence of (code value, code meaning)
        CID 7050 codes (scheme DCM) of the profile and of every applied option.
    pixels_clean : bool
        Whether the pixels count as free of identifying content; only then is
        PatientIdentityRemoved YES.
    longitudinal : str
        LongitudinalTemporalInformationModified: ``UNMODIFIED``, ``MODIFIED`` or ``REMOVED``.
    """
    dataset.PatientIdentityRemoved = "YES" if pixels_clean else "NO"
    previous = dataset.get("DeidentificationMethod")
    methods: list[str] = []
    if isinstance(previous, MultiValue):
        methods = [str(v) for v in previous]
    elif previous:
        methods = [str(previous)]
    if METHOD_TEXT not in methods:
        methods.append(METHOD_TEXT)
    dataset.DeidentificationMethod = methods if len(methods) > 1 else methods[0]

    items = list(dataset.get("DeidentificationMethodCodeSequence", DicomSequence()))
    present = {(str(i.get("CodeValue", "")), str(i.get("CodingSchemeDesignator", ""))) for i in items}
    for value, meaning in codes:
        if (value, "DCM") in present:
            continue
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        items.append(item)
    dataset.DeidentificationMethodCodeSequence = DicomSequence(items)
    dataset.LongitudinalTemporalInformationModified = longitudinal
