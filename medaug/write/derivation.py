"""Coded provenance written into derived objects: derivation and contributing equipment.

Code choices (DICOM PS3.16; meanings as pydicom's code dictionary carries them):

* CID 7203 "Image Derivation" has no code for "augmentation". A rotation or an
  elastic deformation resamples the source grid through a spatial mapping:
  ``(113085, DCM, "Spatial resampling")``. "Deformed for Registration"
  (125027) would claim a registration that never happened, and "Multiplanar
  reformatting" (113072) a new plane orientation, which is not what we do.
* An intensity shift adds a constant: ``(113042, DCM, "Pixel by pixel addition")``;
  an intensity scale multiplies: ``(113053, DCM, "Pixel by pixel multiplication")``.
* CID 7005 "Contributing Equipment Purposes of Reference": medaug contributes as
  ``(109104, DCM, "De-identifying Equipment")`` when it removed identifiers and
  as ``(109102, DCM, "Processing Equipment")`` when it derived the pixels.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.coding import Code

import medaug
from medaug.augment.variant import VariantParams

SPATIAL_RESAMPLING = Code("113085", "DCM", "Spatial resampling")
PIXEL_ADDITION = Code("113042", "DCM", "Pixel by pixel addition")
PIXEL_MULTIPLICATION = Code("113053", "DCM", "Pixel by pixel multiplication")

DEIDENTIFYING_EQUIPMENT = Code("109104", "DCM", "De-identifying Equipment")
PROCESSING_EQUIPMENT = Code("109102", "DCM", "Processing Equipment")

#: Manufacturer (0008,0070) written in medaug's Contributing Equipment items.
MANUFACTURER = "medaug"


def derivation_codes(params: VariantParams) -> list[Code]:
    """The CID 7203 codes of what a variant did: resampled, added to, multiplied.

    Examples
    --------
    >>> from medaug.augment.intensity import IntensityParams
    >>> [c.value for c in derivation_codes(VariantParams(intensity=IntensityParams(shift=2.0)))]
    ['113042']
    """
    codes: list[Code] = []
    if params.is_spatial:
        codes.append(SPATIAL_RESAMPLING)
    it = params.intensity
    if it is not None:
        if it.shift:
            codes.append(PIXEL_ADDITION)
        if it.scale or any(it.bias_coefficients):
            codes.append(PIXEL_MULTIPLICATION)
    return codes


def code_item(code: Code) -> Dataset:
    """A code sequence item (Code Value, Coding Scheme Designator, Code Meaning).

    Examples
    --------
    >>> code_item(SPATIAL_RESAMPLING).CodeValue
    '113085'
    """
    item = Dataset()
    item.CodeValue = code.value
    item.CodingSchemeDesignator = code.scheme_designator
    if code.scheme_version:
        item.CodingSchemeVersion = code.scheme_version
    item.CodeMeaning = code.meaning
    return item


@functools.lru_cache(maxsize=64)
def _shared_code_item(code: Code) -> Dataset:
    """One item per code for every output: a series writes the same items into each of its files."""
    return code_item(code)


def set_derivation(ds: Dataset, codes: Sequence[Code], *, description: str | None = None) -> None:
    """Write Derivation Code Sequence (and Derivation Description when given).

    Its items are shared by every dataset given the same code (replace the
    sequence to change it, never an item in place).
    """
    if codes:
        ds.DerivationCodeSequence = DicomSequence([_shared_code_item(c) for c in codes])
    if description:
        # ST holds at most 1024 characters.
        ds.DerivationDescription = description[:1024]


def add_contributing_equipment(ds: Dataset, purpose: Code) -> None:
    """Append an item naming medaug and its version to Contributing Equipment Sequence.

    No Contribution DateTime is written: outputs must be byte-identical across
    runs of the same inputs, key and seed. The item is shared by every dataset
    given the same purpose (replace the sequence to change it, never an item
    in place): building it for every file of every variant cost more than
    encoding it.

    Examples
    --------
    >>> ds = Dataset()
    >>> add_contributing_equipment(ds, DEIDENTIFYING_EQUIPMENT)
    >>> ds.ContributingEquipmentSequence[0].Manufacturer
    'medaug'
    """
    seq = list(ds.get("ContributingEquipmentSequence") or [])
    seq.append(_equipment_item(purpose))
    ds.ContributingEquipmentSequence = DicomSequence(seq)


@functools.lru_cache(maxsize=16)
def _equipment_item(purpose: Code) -> Dataset:
    item = Dataset()
    item.PurposeOfReferenceCodeSequence = DicomSequence([code_item(purpose)])
    item.Manufacturer = MANUFACTURER
    item.ManufacturerModelName = "medaug"
    item.SoftwareVersions = medaug.__version__
    return item
