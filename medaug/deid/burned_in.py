"""Burned-in annotation: decide whether pixels can be trusted, blank known regions.

An image passes untouched when nothing suggests text in its pixels. It is
quarantined when BurnedInAnnotation is YES, or when it is of a kind whose flag
cannot be trusted (ultrasound, secondary and screen captures, photographs and
video, scanned documents, encapsulated documents) — unless a
:class:`~medaug.deid.options.BurnedInRule` for its manufacturer, model and size
blanks the regions known to hold text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from medaug.deid.options import BurnedInRule, DeidOptions
from medaug.errors import DeidentificationError
from medaug.ingest.pixels import stored_range

#: A rectangle ``(x, y, width, height)`` in pixels (x = column, y = row of the top-left corner).
Region = tuple[int, int, int, int]

_PIXEL_TAGS = (Tag(0x7FE00010), Tag(0x7FE00008), Tag(0x7FE00009))
_ENCAPSULATED_DOCUMENT = Tag(0x00420011)

#: SOP classes whose pixels often carry text whatever the flag says.
HIGH_RISK_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.6.1",  # US Image
        "1.2.840.10008.5.1.4.1.1.3.1",  # US Multi-frame Image
        "1.2.840.10008.5.1.4.1.1.6.2",  # Enhanced US Volume
        "1.2.840.10008.5.1.4.1.1.6.3",  # Photoacoustic Image
        "1.2.840.10008.5.1.4.1.1.6",  # US Image (retired)
        "1.2.840.10008.5.1.4.1.1.3",  # US Multi-frame Image (retired)
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture
        "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit SC
        "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
        "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
        "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
    }
)
#: SOP class prefixes of visible-light photographs, video and slide images.
HIGH_RISK_PREFIXES = ("1.2.840.10008.5.1.4.1.1.77.1",)
#: Modalities of screen captures, documents and photographs.
HIGH_RISK_MODALITIES = frozenset({"US", "IVUS", "OT", "XC", "DOC", "ES", "GM", "SM"})


def has_pixels(dataset: Dataset) -> bool:
    """Whether the object holds pixel data of any kind."""
    return any(tag in dataset for tag in _PIXEL_TAGS)


def _text(dataset: Dataset, keyword: str) -> str:
    value = dataset.get(keyword)
    return "" if value is None else str(value).strip().upper()


def is_high_risk(dataset: Dataset) -> bool:
    """Whether the object is of a kind where the BurnedInAnnotation flag cannot be trusted."""
    sop_class = str(dataset.get("SOPClassUID", "")).strip()
    if sop_class in HIGH_RISK_SOP_CLASSES or sop_class.startswith(HIGH_RISK_PREFIXES):
        return True
    if _text(dataset, "Modality") in HIGH_RISK_MODALITIES:
        return True
    image_type = dataset.get("ImageType")
    return image_type is not None and any("SCREEN" in str(v).upper() for v in image_type)


def matching_rule(dataset: Dataset, options: DeidOptions) -> BurnedInRule | None:
    """The first burned-in rule for the object's manufacturer, model and size, if any."""
    if not options.burned_in_rules:
        return None
    manufacturer = str(dataset.get("Manufacturer", "")).strip()
    model = str(dataset.get("ManufacturerModelName", "")).strip()
    rows, columns = dataset.get("Rows"), dataset.get("Columns")
    for rule in options.burned_in_rules:
        if (rule.manufacturer, rule.model, rule.rows, rule.columns) == (manufacturer, model, rows, columns):
            return rule
    return None


def overlay_in_pixel_data(dataset: Dataset) -> int | None:
    """Group of an overlay stored in unused bits of PixelData (legacy), if any."""
    for group in range(0x6000, 0x6020, 2):
        if Tag(group, 0x0010) in dataset and Tag(group, 0x3000) not in dataset:
            return group
    return None


def assess(dataset: Dataset, options: DeidOptions) -> BurnedInRule | None:
    """Decide what to do with the object's pixels.

    Returns
    -------
    BurnedInRule or None
        The rule to apply, or None when the pixels may pass as they are.

    Raises
    ------
    DeidentificationError
        ``encapsulated-document``, ``burned-in-annotation``, ``burned-in-unknown``,
        ``recognizable-visual-features`` or ``overlay-in-pixel-data`` when the object
        cannot be cleaned by a rule.
    """
    if _ENCAPSULATED_DOCUMENT in dataset:
        raise DeidentificationError("encapsulated-document", "tag (0042,0011) holds a document medaug cannot clean")
    if not has_pixels(dataset):
        return None
    sop_class = str(dataset.get("SOPClassUID", "")).strip()
    if options.clean_recognizable_visual_features and sop_class.startswith(HIGH_RISK_PREFIXES):
        raise DeidentificationError("recognizable-visual-features", "visible-light photograph or video")
    group = overlay_in_pixel_data(dataset)
    if group is not None:
        raise DeidentificationError("overlay-in-pixel-data", f"overlay group {group:04X} is stored in PixelData bits")
    flag = _text(dataset, "BurnedInAnnotation")
    if flag == "YES":
        reason, detail = "burned-in-annotation", "BurnedInAnnotation (0028,0301) is YES"
    elif is_high_risk(dataset):
        reason, detail = "burned-in-unknown", "image kind often carries burned-in text"
    else:
        return None
    rule = matching_rule(dataset, options)
    if rule is None:
        raise DeidentificationError(reason, detail + " and no burned-in rule matches")
    return rule


def blank(
    pixels: NDArray[Any], regions: Iterable[Region], *, fill: float | Sequence[float], colour: bool = False
) -> NDArray[Any]:
    """A copy of ``pixels`` with every region of every frame set to ``fill``.

    The one blanking of medaug. ``pixels`` is ``(..., rows, columns)``, or
    ``(..., rows, columns, samples)`` with ``colour``; regions are
    ``(x, y, width, height)`` in pixels (x = column). Callers fill with the
    lowest value the image can store (the first of
    :func:`medaug.ingest.pixels.stored_range`, or its modality value): black on a MONOCHROME2 or RGB display.

    Examples
    --------
    >>> blank(np.ones((2, 3), dtype=np.int16), [(1, 0, 2, 1)], fill=0).tolist()
    [[1, 0, 0], [1, 1, 1]]
    """
    out = np.array(pixels, copy=True)
    for x, y, w, h in regions:
        if colour:
            out[..., y : y + h, x : x + w, :] = fill
        else:
            out[..., y : y + h, x : x + w] = fill
    return out


def blank_regions(dataset: Dataset, rule: BurnedInRule) -> None:
    """Blank the rule's regions on every frame of a dataset's own pixels; they end up native.

    Raises
    ------
    DeidentificationError
        ``pixel-decode-failed`` when the pixel data cannot be decoded.
    """
    try:
        if dataset.file_meta.TransferSyntaxUID.is_compressed:
            dataset.decompress()
        pixels = np.asarray(dataset.pixel_array)
    except Exception as exc:  # any codec failure means the pixels cannot be cleaned
        raise DeidentificationError("pixel-decode-failed", f"cannot decode PixelData ({type(exc).__name__})") from None
    colour = int(dataset.get("SamplesPerPixel", 1)) > 1
    bits = int(dataset.get("BitsStored") or dataset.get("BitsAllocated") or 8)
    fill, _ = stored_range(bits, int(dataset.get("PixelRepresentation", 0) or 0))
    blanked = blank(pixels, rule.regions, fill=fill, colour=colour)
    dataset.PixelData = blanked.tobytes()
    if colour:
        dataset.PlanarConfiguration = 0
    dataset.BurnedInAnnotation = "NO"
