"""Synthetic source series for the writer's tests, and readers to check what was written.

The sources are small series of each kind the writer must keep in its own IOD,
built with pydicom and carrying fake identifying values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid

from fixtures import factory
from medaug.geometry import Geometry
from medaug.ingest import SeriesRef
from medaug.ingest.image import SeriesImage
from tests.deid_synthetic import item

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2.1"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
DX_IMAGE = "1.2.840.10008.5.1.4.1.1.1.1"
US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"

# The same prefix for every test UID keeps them recognisable in a dump.
UID_PREFIX = "1.2.826.0.1.3680043.10.1234."


# -- synthetic sources -----------------------------------------------------------------


@dataclass
class Source:
    """A synthetic series on disk and what it was built from."""

    directory: Path
    files: list[Path]
    stored: NDArray[Any]  # stored values in slice order: (k, j, i) or (k, j, i, 3)
    geometry: Geometry
    rescale: tuple[float, float] = (1.0, 0.0)
    extras: dict[str, Any] = field(default_factory=dict)


def _base(sop_class: str, modality: str, *, series_uid: str, study_uid: str, for_uid: str | None) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.StudyDate = "20240102"
    ds.StudyTime = "101500"
    ds.SeriesDate = "20240102"
    ds.ContentDate = "20240102"
    ds.ContentTime = "101600"
    ds.AccessionNumber = "ACC0001"
    ds.Modality = modality
    ds.Manufacturer = "Synthetic"
    ds.ReferringPhysicianName = "Referrer^Fake"
    ds.PatientName = "Planted^Fake"
    ds.PatientID = "FAKE-ID-0001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = 3
    if for_uid is not None:
        ds.FrameOfReferenceUID = for_uid
        ds.PositionReferenceIndicator = ""
    ds.PatientOrientation = ""
    return ds


def _save(ds: Dataset, path: Path, pixels: NDArray[Any]) -> None:
    ds.Rows, ds.Columns = int(pixels.shape[-3 if ds.SamplesPerPixel > 1 else -2]), int(
        pixels.shape[-2 if ds.SamplesPerPixel > 1 else -1]
    )
    raw = np.ascontiguousarray(pixels).astype(pixels.dtype.newbyteorder("<")).tobytes()
    ds.PixelData = raw + (b"\0" if len(raw) % 2 else b"")
    ds["PixelData"].VR = "OB" if ds.BitsAllocated == 8 else "OW"
    ds.file_meta = factory.file_meta(ds.SOPClassUID, ds.SOPInstanceUID)
    factory.save(ds, path)


def _stored_values(
    rng: np.random.Generator, shape: tuple[int, ...], lo: int, hi: int, dtype: np.dtype
) -> NDArray[Any]:
    values = rng.integers(lo, hi, size=shape, endpoint=True)
    # Make sure both ends of the stored range occur, so clipping bugs show.
    flat = values.reshape(-1)
    flat[0], flat[-1] = lo, hi
    return values.astype(dtype)


def build_stack(
    directory: Path,
    *,
    kind: str,
    geometry: Geometry,
    dtype: np.dtype,
    bits_stored: int,
    rescale: tuple[float, float],
    rng: np.random.Generator,
    file_order: list[int] | None = None,
    photometric: str = "MONOCHROME2",
) -> Source:
    """A single-frame series (CT or MR) with one file per slice, files named in ``file_order``."""
    n = geometry.shape[0]
    signed = dtype.kind == "i"
    lo, hi = ((-(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1) if signed else (0, (1 << bits_stored) - 1))
    stored = _stored_values(rng, geometry.shape, lo, hi, dtype)
    series_uid, study_uid, for_uid = (generate_uid(UID_PREFIX) for _ in range(3))
    order = file_order if file_order is not None else list(range(n))
    files: list[Path] = []
    for k in range(n):
        sop_class = CT_IMAGE if kind == "CT" else MR_IMAGE
        ds = _base(sop_class, kind, series_uid=series_uid, study_uid=study_uid, for_uid=for_uid)
        ds.SOPInstanceUID = generate_uid(UID_PREFIX)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL" if kind == "CT" else "OTHER"]
        # InstanceNumber deliberately disagrees with the position order.
        ds.InstanceNumber = n - k
        ds.ImagePositionPatient = [float(v) for v in geometry.slice_position(k)]
        ds.ImageOrientationPatient = [float(v) for v in np.concatenate([geometry.row_cosine, geometry.column_cosine])]
        ds.PixelSpacing = [geometry.spacing[1], geometry.spacing[2]]
        ds.SliceThickness = geometry.spacing[0]
        ds.SliceLocation = float(geometry.slice_position(k) @ geometry.normal)
        factory.pixel_module(ds, bits_allocated=dtype.itemsize * 8, bits_stored=bits_stored, signed=signed, photometric=photometric)
        if kind == "CT":
            ds.RescaleIntercept = rescale[1]
            ds.RescaleSlope = rescale[0]
            ds.RescaleType = "HU"
            ds.KVP = 120
            ds.AcquisitionNumber = 1
        else:
            ds.SpecificCharacterSet = "ISO_IR 192"
            ds.PatientName = "Fäke^Plänted"
            ds.ScanningSequence = "SE"
            ds.SequenceVariant = "NONE"
            ds.ScanOptions = ""
            ds.MRAcquisitionType = "2D"
            ds.RepetitionTime = 500.0
            ds.EchoTime = 15.0
            ds.EchoTrainLength = 1
            ds.SpacingBetweenSlices = geometry.spacing[0]
            ds.SmallestImagePixelValue = int(stored[k].min())
            ds.LargestImagePixelValue = int(stored[k].max())
            ds["SmallestImagePixelValue"].VR = "SS" if signed else "US"
            ds["LargestImagePixelValue"].VR = "SS" if signed else "US"
            if rescale != (1.0, 0.0):
                ds.RescaleIntercept = rescale[1]
                ds.RescaleSlope = rescale[0]
        path = directory / f"IM{order[k]:04d}"
        _save(ds, path, stored[k])
        files.append(path)
    return Source(directory, files, stored, geometry, rescale)


def build_ct(directory: Path, rng: np.random.Generator) -> Source:
    """CT axial stack, int16, intercept -1024, files named in shuffled order."""
    geometry = Geometry.from_arrays(
        (4, 8, 6), (2.5, 0.7, 0.6), (-20.0, -30.5, 100.25), np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0]], float)
    )
    return build_stack(
        directory, kind="CT", geometry=geometry, dtype=np.dtype("<i2"), bits_stored=12,
        rescale=(1.0, -1024.0), rng=rng, file_order=[2, 0, 3, 1],
    )


def build_mr(directory: Path, rng: np.random.Generator) -> Source:
    """MR sagittal stack, uint16 with 12 bits stored, anisotropic spacing."""
    # Sagittal: rows run anterior→posterior (+y), columns run superior→inferior (-z).
    direction = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    geometry = Geometry.from_arrays((3, 6, 8), (3.3, 0.9, 0.45), (-10.0, -60.0, 80.0), direction)
    return build_stack(
        directory, kind="MR", geometry=geometry, dtype=np.dtype("<u2"), bits_stored=12,
        rescale=(1.0, 0.0), rng=rng,
    )


def build_dx(directory: Path, rng: np.random.Generator) -> Source:
    """A 2D radiograph, MONOCHROME1, 14 bits stored."""
    stored = _stored_values(rng, (1, 10, 7), 0, (1 << 14) - 1, np.dtype("<u2"))
    ds = _base(DX_IMAGE, "DX", series_uid=generate_uid(UID_PREFIX), study_uid=generate_uid(UID_PREFIX), for_uid=None)
    ds.SOPInstanceUID = generate_uid(UID_PREFIX)
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.InstanceNumber = 1
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.DetectorType = "SCINTILLATOR"
    ds.ImagerPixelSpacing = [0.15, 0.15]
    ds.PixelSpacing = [0.15, 0.15]
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.PixelIntensityRelationship = "LIN"
    ds.PixelIntensityRelationshipSign = 1
    ds.BurnedInAnnotation = "NO"
    ds.ViewPosition = "PA"
    ds.LossyImageCompression = "00"
    ds.PatientOrientation = ["L", "F"]
    ds.WindowCenter = 8000
    ds.WindowWidth = 16000
    ds.AnatomicRegionSequence = DicomSequence()
    factory.pixel_module(ds, bits_allocated=16, bits_stored=14, signed=False, photometric="MONOCHROME1")
    path = directory / "dx.dcm"
    _save(ds, path, stored[0])
    geometry = Geometry.from_arrays((1, 10, 7), (1.0, 0.15, 0.15), (0, 0, 0), np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0]], float))
    return Source(directory, [path], stored, geometry)


def build_us(directory: Path, rng: np.random.Generator) -> Source:
    """An RGB ultrasound image with burned-in annotation."""
    stored = _stored_values(rng, (1, 6, 9, 3), 0, 255, np.dtype("u1"))
    ds = _base(US_IMAGE, "US", series_uid=generate_uid(UID_PREFIX), study_uid=generate_uid(UID_PREFIX), for_uid=None)
    ds.SOPInstanceUID = generate_uid(UID_PREFIX)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "ABDOMINAL", "0001"]
    ds.InstanceNumber = 1
    ds.BurnedInAnnotation = "YES"
    factory.pixel_module(ds, bits_allocated=8, bits_stored=8, signed=False, photometric="RGB")
    path = directory / "us.dcm"
    _save(ds, path, stored[0])
    geometry = Geometry.from_arrays((1, 6, 9), (1.0, 1.0, 1.0), (0, 0, 0), np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0]], float))
    return Source(directory, [path], stored, geometry)


def build_enhanced_ct(directory: Path, rng: np.random.Generator) -> Source:
    """One Enhanced CT object: 5 oblique frames, positions per frame, rescale shared."""
    angle = np.deg2rad(20.0)
    row = np.array([np.cos(angle), np.sin(angle), 0.0])
    col = np.array([-np.sin(angle), np.cos(angle), 0.0])
    direction = np.stack([np.cross(row, col), col, row], axis=1)
    geometry = Geometry.from_arrays((5, 6, 7), (1.25, 0.8, 0.8), (5.0, -7.0, 33.0), direction)
    stored = _stored_values(rng, geometry.shape, -2048, 2047, np.dtype("<i2"))
    ds = _base(ENHANCED_CT_IMAGE, "CT", series_uid=generate_uid(UID_PREFIX), study_uid=generate_uid(UID_PREFIX), for_uid=generate_uid(UID_PREFIX))
    ds.SOPInstanceUID = generate_uid(UID_PREFIX)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.InstanceNumber = 1
    ds.ContentQualification = "PRODUCT"
    ds.AcquisitionDateTime = "20240102101500"
    ds.AcquisitionDuration = 1.0
    ds.AcquisitionNumber = 1
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"
    ds.ImageComments = "planted free text"
    ds.ManufacturerModelName = "Model"
    ds.DeviceSerialNumber = "SN-FAKE"
    ds.SoftwareVersions = "1"
    ds.NumberOfFrames = geometry.shape[0]
    factory.pixel_module(ds, bits_allocated=16, bits_stored=12, signed=True, photometric="MONOCHROME2")
    dim_uid = generate_uid(UID_PREFIX)
    ds.DimensionOrganizationSequence = DicomSequence([item(DimensionOrganizationUID=dim_uid)])
    ds.DimensionIndexSequence = DicomSequence([
        item(DimensionOrganizationUID=dim_uid, DimensionIndexPointer=0x00209057, FunctionalGroupPointer=0x00209111),
    ])
    ds.SharedFunctionalGroupsSequence = DicomSequence([item(
        PixelMeasuresSequence=DicomSequence([item(PixelSpacing=[0.8, 0.8], SliceThickness=1.25, SpacingBetweenSlices=1.25)]),
        PlaneOrientationSequence=DicomSequence([item(ImageOrientationPatient=[float(v) for v in np.concatenate([row, col])])]),
        PixelValueTransformationSequence=DicomSequence([item(RescaleIntercept=-1000, RescaleSlope=1, RescaleType="HU")]),
        CTImageFrameTypeSequence=DicomSequence([item(FrameType=["ORIGINAL", "PRIMARY", "AXIAL", "NONE"], PixelPresentation="MONOCHROME", VolumetricProperties="VOLUME", VolumeBasedCalculationTechnique="NONE")]),
    )])
    # Frames stored in reverse position order: the reader must sort them.
    file_order = list(reversed(range(geometry.shape[0])))
    ds.PerFrameFunctionalGroupsSequence = DicomSequence([
        item(
            FrameContentSequence=DicomSequence([item(InStackPositionNumber=k + 1, StackID="1", DimensionIndexValues=[k + 1])]),
            PlanePositionSequence=DicomSequence([item(ImagePositionPatient=[float(v) for v in geometry.slice_position(k)])]),
        )
        for k in file_order
    ])
    path = directory / "enhanced.dcm"
    _save(ds, path, stored[file_order])
    return Source(directory, [path], stored, geometry, (1.0, -1000.0))


# -- reading back ----------------------------------------------------------------------


def load_one(directory: Path) -> SeriesImage:
    """The single series under ``directory``, read by medaug's ingest."""
    from medaug.ingest import load_series, scan_archive

    scan = scan_archive(directory)
    assert len(scan.series) == 1, f"expected one series, found {len(scan.series)}"
    assert not scan.quarantined, [q.reason for q in scan.quarantined]
    loaded = load_series(scan.series[0])
    assert not loaded.quarantined, [q.reason for q in loaded.quarantined]
    return loaded.image


def _orientation(ds: Dataset) -> NDArray[np.float64] | None:
    """Image Orientation (Patient) at top level, in the shared or in the first per-frame group."""
    if "ImageOrientationPatient" in ds:
        return np.array(ds.ImageOrientationPatient, dtype=float)
    for keyword in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        groups = ds.get(keyword) or []
        if groups and "PlaneOrientationSequence" in groups[0]:
            return np.array(groups[0].PlaneOrientationSequence[0].ImageOrientationPatient, dtype=float)
    return None


def stored_by_position(files: list[Path], *, force: bool = False) -> tuple[NDArray[Any], NDArray[np.float64]]:
    """Stored values and positions read by pydicom alone, frames sorted along the normal.

    ``force`` reads files without a preamble and file meta (some sources);
    written files are read without it, so they must be conformant files.
    """
    frames: list[NDArray[Any]] = []
    positions: list[NDArray[np.float64]] = []
    normal = np.array([0.0, 0.0, 1.0])
    for path in files:
        ds = pydicom.dcmread(path, force=force)
        if force and "TransferSyntaxUID" not in ds.file_meta:
            ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
        arr = ds.pixel_array
        iop = _orientation(ds)
        if iop is not None:
            normal = np.cross(iop[:3], iop[3:])
        if "PerFrameFunctionalGroupsSequence" in ds:
            for f, frame in enumerate(ds.PerFrameFunctionalGroupsSequence):
                frames.append(arr[f])
                positions.append(np.array(frame.PlanePositionSequence[0].ImagePositionPatient, dtype=float))
        else:
            frames.append(arr)
            positions.append(np.array(ds.get("ImagePositionPatient", [0.0, 0.0, 0.0]), dtype=float))
    order = np.argsort([p @ normal for p in positions], kind="stable")
    return np.stack([frames[i] for i in order]), np.stack([positions[i] for i in order])


def fixture_series(archive: Path, manifest: dict[str, Any]) -> list[tuple[str, SeriesRef]]:
    """Each series the fixture manifest lists, paired with the series ingest built from its files."""
    from medaug.ingest import scan_archive

    scan = scan_archive(archive)
    by_files = {frozenset(p.resolve() for p in ref.files): ref for ref in scan.series}
    pairs: list[tuple[str, SeriesRef]] = []
    for entry in manifest["series"]:
        files = frozenset((archive / f).resolve() for f in entry["files"])
        ref = by_files.get(files)
        assert ref is not None, f"ingest built no series from the files of fixture series {entry['name']}"
        pairs.append((str(entry["name"]), ref))
    return pairs


def load_ref(ref: SeriesRef) -> SeriesImage:
    """Load one series; every one of its files must be usable."""
    from medaug.ingest import load_series

    loaded = load_series(ref)
    assert not loaded.quarantined, [q.reason for q in loaded.quarantined]
    return loaded.image


def along_normal(geometry: Geometry) -> Geometry:
    """The same voxels with slices numbered along the image normal (the order readers use)."""
    d = geometry.direction_matrix
    if d[:, 0] @ geometry.normal >= 0:
        return geometry
    d = d.copy()
    d[:, 0] = -d[:, 0]
    return Geometry.from_arrays(geometry.shape, geometry.spacing, geometry.slice_position(geometry.shape[0] - 1), d)


BUILDERS: dict[str, Callable[[Path, np.random.Generator], Source]] = {
    "ct": build_ct,
    "mr": build_mr,
    "dx": build_dx,
    "us": build_us,
    "enhanced-ct": build_enhanced_ct,
}
