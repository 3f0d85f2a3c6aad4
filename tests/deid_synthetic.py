"""Builders of small synthetic datasets for the de-identification tests."""

from __future__ import annotations

import io

import pydicom
from pydicom.dataset import Dataset

from fixtures import factory

CT = "1.2.840.10008.5.1.4.1.1.2"


def item(**values: object) -> Dataset:
    """A dataset (a sequence item) with the given keyword values."""
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def make_ct(**values: object) -> Dataset:
    """A tiny CT image (4x4 pixels) with file meta and planted identifying values."""
    ds = factory.image_dataset(CT, "1.2.826.0.1.3680043.99.1.1", source_ae="HOSPITAL_AE")
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.99.2"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.99.3"
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.99.4"
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "MRN123456"
    ds.PatientBirthDate = "19700214"
    ds.PatientSex = "F"
    ds.PatientAge = "054Y"
    ds.StudyDate = "20240301"
    ds.SeriesDate = "20240301"
    ds.ContentDate = "20240301"
    ds.StudyTime = "101500"
    ds.AccessionNumber = "ACC998877"
    ds.InstitutionName = "St Elsewhere Hospital"
    ds.StationName = "CTSTATION7"
    ds.Manufacturer = "ACME"
    ds.ManufacturerModelName = "Scanner 9000"
    ds.DeviceSerialNumber = "SN4711"
    ds.StudyDescription = "CT CHEST Doe"
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    factory.pixel_module(ds, rows=4, cols=4, bits_stored=16, signed=False)
    ds.PixelData = bytes(range(32))
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def to_bytes(ds: Dataset) -> bytes:
    """The dataset written as a DICOM file."""
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def roundtrip(ds: Dataset) -> Dataset:
    """Write and read back, as a real archive file would be."""
    return pydicom.dcmread(io.BytesIO(to_bytes(ds)))
