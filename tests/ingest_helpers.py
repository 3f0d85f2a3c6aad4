"""Build small synthetic DICOM files in tests (fake identifiers only)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid

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
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    sop = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.file_meta.TransferSyntaxUID = UID(transfer_syntax)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = STUDY
    ds.SeriesInstanceUID = series_uid
    ds.PatientName = "Fakename^Plantedvalue"
    ds.PatientID = "FAKEID-12345"
    ds.StudyDate = "19990102"
    ds.Modality = modality
    ds.InstanceNumber = instance
    colour = pixels.ndim == 3
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = photometric or ("RGB" if colour else "MONOCHROME2")
    if colour:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    if ipp is not None:
        ds.ImagePositionPatient = [f"{v:.6f}" for v in ipp]
    if iop is not None:
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in iop]
    ds.PixelSpacing = [str(v) for v in spacing]
    if not colour:
        ds.RescaleSlope = str(slope)
        ds.RescaleIntercept = str(intercept)
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    return ds


def save(ds: Dataset, path: Path) -> Path:
    """Write ``ds`` as a DICOM file (with preamble)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


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
