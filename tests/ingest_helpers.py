"""Build small synthetic DICOM files in tests (fake identifiers only)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from fixtures import factory

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
STUDY = "1.2.826.0.1.3680043.10.1.1"
SERIES = "1.2.826.0.1.3680043.10.1.1.1"


def make_dataset(
    pixels: NDArray[Any],
    *,
    ipp: Sequence[float] | None = (0.0, 0.0, 0.0),
    iop: Sequence[float] | None = AXIAL,
    spacing: Sequence[float] = (0.5, 0.5),
    modality: str = "CT",
    series_uid: str = SERIES,
    instance: int = 1,
    slope: float = 1.0,
    intercept: float = -1024.0,
    bits_stored: int | None = None,
    photometric: str | None = None,
    sop_class: str = CTImageStorage,
    transfer_syntax: str = ExplicitVRLittleEndian,
) -> Dataset:
    """A minimal image dataset holding ``pixels`` (rows, cols) or (rows, cols, 3) uncompressed."""
    ds = factory.image_dataset(sop_class, generate_uid(), transfer_syntax=transfer_syntax)
    ds.StudyInstanceUID = STUDY
    ds.SeriesInstanceUID = series_uid
    ds.PatientName = "Fakename^Plantedvalue"
    ds.PatientID = "FAKEID-12345"
    ds.StudyDate = "19990102"
    ds.Modality = modality
    ds.InstanceNumber = instance
    if ipp is not None:
        ds.ImagePositionPatient = [f"{v:.6f}" for v in ipp]
    if iop is not None:
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in iop]
    ds.PixelSpacing = [str(v) for v in spacing]
    if pixels.ndim != 3:
        ds.RescaleSlope = str(slope)
        ds.RescaleIntercept = str(intercept)
    factory.set_pixels(ds, pixels, bits_stored=bits_stored, photometric=photometric)
    return ds


save = factory.save


def write_stack(
    folder: Path,
    positions: Sequence[Sequence[float]],
    *,
    iop: Sequence[float] = AXIAL,
    rows: int = 4,
    cols: int = 5,
    names: Sequence[str] | None = None,
    instance_numbers: Sequence[int] | None = None,
    series_uid: str = SERIES,
) -> list[NDArray[np.int16]]:
    """Write one slice per position; slice ``n`` holds the value ``100 * n + pixel index``."""
    arrays = []
    for n, pos in enumerate(positions):
        arr = (np.arange(rows * cols, dtype=np.int16).reshape(rows, cols) + 100 * n).astype(np.int16)
        arrays.append(arr)
        ds = make_dataset(
            arr, ipp=pos, iop=iop, series_uid=series_uid,
            instance=instance_numbers[n] if instance_numbers else n + 1,
        )
        name = names[n] if names else f"slice{n:03d}.dcm"
        save(ds, folder / name)
    return arrays
