"""Keep the Common Instance Reference module true after de-identification.

The module (PS3.3 C.12.2) lists, by series and study, the instances an object
references elsewhere in itself. Its sequences are not in Table E.1-1, so the
Basic Profile keeps them (their UIDs replaced), while the references they
summarise may be emptied or removed (Source Image Sequence is X/Z/U*, for
example). A list of instances that the object no longer references breaks the
module's condition (dciodvfy: "ReferencedSeriesSequence present but Instance
does not reference Instances"), so such entries are dropped, and a sequence
left empty is removed.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

#: Referenced Series Sequence, Studies Containing Other Referenced Instances Sequence.
_REFERENCED_SERIES = 0x00081115
_OTHER_STUDIES = 0x00081200
_SUMMARIES = (_REFERENCED_SERIES, _OTHER_STUDIES)
#: Referenced Instance Sequence: one item per instance listed.
REFERENCED_INSTANCES = 0x0008114A
#: Referenced SOP Instance UID, wherever a reference is made.
REFERENCED_SOP_INSTANCE = 0x00081155


def prune_instance_summary(dataset: Dataset) -> int:
    """Drop Common Instance Reference entries for instances `dataset` no longer references.

    Parameters
    ----------
    dataset : Dataset
        A de-identified object; changed in place.

    Returns
    -------
    int
        Number of instance entries dropped.
    """
    if not any(tag in dataset for tag in _SUMMARIES):
        return 0
    referenced = _referenced(elem for elem in dataset if elem.tag not in _SUMMARIES)
    dropped = 0
    for tag in _SUMMARIES:
        if tag in dataset:
            dropped += _prune(dataset, tag, referenced)
    return dropped


def _referenced(elements: Iterable[DataElement]) -> set[str]:
    """Every Referenced SOP Instance UID at any depth of `elements`."""
    found: set[str] = set()
    for elem in elements:
        if elem.tag == REFERENCED_SOP_INSTANCE and elem.value:
            found.add(str(elem.value))
        elif elem.VR == "SQ" and elem.value:
            for item in elem.value:
                found |= _referenced(item)
    return found


def _prune(dataset: Dataset, tag: int, referenced: set[str]) -> int:
    """Prune the sequence `tag` of `dataset` (series items, or study items holding series)."""
    dropped = 0
    kept_items = []
    for item in dataset[tag].value:
        if tag == _REFERENCED_SERIES:
            instances = item.get(REFERENCED_INSTANCES)
            entries = list(instances.value) if instances is not None else []
            keep = [i for i in entries if str(i.get("ReferencedSOPInstanceUID", "")) in referenced]
            dropped += len(entries) - len(keep)
            if keep:
                item[REFERENCED_INSTANCES].value = keep
                kept_items.append(item)
        else:
            if _REFERENCED_SERIES in item:
                dropped += _prune(item, _REFERENCED_SERIES, referenced)
            if _REFERENCED_SERIES in item:
                kept_items.append(item)
    if kept_items:
        dataset[tag].value = kept_items
    else:
        del dataset[tag]
    return dropped
