"""Behaviour of :func:`medaug.write.write_series` beyond the plain round trip."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
    generate_uid,
)

from medaug.errors import WriteError
from medaug.geometry import Geometry
from medaug.ingest.image import SeriesImage
from medaug.write import write_series
from medaug.atomic import write_atomic, write_bytes_atomic
from medaug.write.derivation import (
    DEIDENTIFYING_EQUIPMENT,
    PIXEL_ADDITION,
    SPATIAL_RESAMPLING,
    add_contributing_equipment,
)
from medaug.write.pixels import to_stored
from medaug.write.series import J2K_MIN_SIZE
from medaug.write.uids import IMPLEMENTATION_CLASS_UID
from tests.write_helpers import (
    UID_PREFIX,
    build_ct,
    build_enhanced_ct,
    build_mr,
    build_us,
    load_one,
)


def _uids(n: int) -> tuple[str, list[str]]:
    return generate_uid(UID_PREFIX), [generate_uid(UID_PREFIX) for _ in range(n)]


@pytest.fixture
def ct(tmp_path_factory: pytest.TempPathFactory) -> SeriesImage:
    # Sources live outside tmp_path, so a test's tmp_path holds only what it writes.
    return load_one(build_ct(tmp_path_factory.mktemp("ct") / "src", np.random.default_rng(3)).directory)


def test_values_outside_the_stored_range_are_clipped_and_counted(ct: SeriesImage, tmp_path: Path) -> None:
    lo, hi = ct.modality_range  # 12 bits stored, intercept -1024: [-3072, 1023] HU
    ct.data[0, 0, :3] = [lo - 500.0, hi + 0.6, hi + 2.0]
    ct.data[1, 1, 1] = lo - 0.4  # rounds back into range: not clipped
    series_uid, sops = _uids(4)
    result = write_series(ct, tmp_path / "out", series_uid=series_uid, sop_instance_uids=sops)
    assert result.clipped == 3
    again = load_one(tmp_path / "out")
    assert again.data[0, 0, :3].tolist() == [lo, hi, hi]
    assert again.data[1, 1, 1] == lo


def test_stored_values_use_the_rescale_as_written(tmp_path: Path) -> None:
    # A slope with more digits than a Decimal String holds: values must be computed
    # with the slope that reads back, or every value would drift by a fraction.
    slope, intercept = 1.0 / 3.0, -1024.123456789012345
    stored = np.arange(-60, 60, dtype=np.float64).reshape(1, 10, 12)
    image = SeriesImage(
        data=(stored * slope + intercept).astype(np.float32),
        geometry=Geometry.axial((1, 10, 12), spacing=(1.0, 0.5, 0.5)),
        headers=(_ct_header(),),
        modality="CT",
        multiframe=False,
        rescale=np.array([[slope, intercept]]),
        stored_range=(-2048, 2047),
        photometric="MONOCHROME2",
    )
    series_uid, sops = _uids(1)
    result = write_series(image, tmp_path, series_uid=series_uid, sop_instance_uids=sops)
    ds = pydicom.dcmread(result.paths[0])
    assert len(str(ds["RescaleSlope"].value)) <= 16
    np.testing.assert_array_equal(ds.pixel_array, stored[0].astype(np.int16))
    assert result.clipped == 0


def _ct_header() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.Modality = "CT"
    ds.ImagePositionPatient = [0, 0, 0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 1
    ds.RescaleSlope = 1
    ds.RescaleIntercept = 0
    return ds


def test_derived_objects_say_how_they_were_made(ct: SeriesImage, tmp_path: Path) -> None:
    series_uid, sops = _uids(4)
    for_uid = generate_uid(UID_PREFIX)

    def extra(ds: Dataset, k: int) -> None:
        add_contributing_equipment(ds, DEIDENTIFYING_EQUIPMENT)
        ds.SeriesDescription = f"variant file {k + 1}"

    result = write_series(
        ct, tmp_path, series_uid=series_uid, sop_instance_uids=sops, frame_of_reference_uid=for_uid,
        derived=True, derivation_codes=(SPATIAL_RESAMPLING, PIXEL_ADDITION),
        derivation_description="rotation and intensity shift", extra=extra,
    )
    for k, path in enumerate(result.paths):
        ds = pydicom.dcmread(path)
        assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
        assert [(c.CodeValue, c.CodingSchemeDesignator) for c in ds.DerivationCodeSequence] == [
            ("113085", "DCM"), ("113042", "DCM"),
        ]
        assert ds.DerivationDescription == "rotation and intensity shift"
        assert ds.FrameOfReferenceUID == for_uid
        equipment = ds.ContributingEquipmentSequence[-1]
        assert equipment.PurposeOfReferenceCodeSequence[0].CodeValue == "109104"
        assert equipment.Manufacturer == "medaug"
        assert ds.SeriesDescription == f"variant file {k + 1}"


def test_not_derived_keeps_image_type_and_frame_of_reference(ct: SeriesImage, tmp_path: Path) -> None:
    series_uid, sops = _uids(4)
    result = write_series(ct, tmp_path, series_uid=series_uid, sop_instance_uids=sops)
    ds = pydicom.dcmread(result.paths[0])
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert ds.FrameOfReferenceUID == ct.headers[0].FrameOfReferenceUID
    assert "DerivationCodeSequence" not in ds


def test_enhanced_object_stays_one_file_with_frame_positions(tmp_path: Path) -> None:
    image = load_one(build_enhanced_ct(tmp_path / "src", np.random.default_rng(2)).directory)
    g = image.geometry
    moved = Geometry.from_arrays(g.shape, g.spacing, np.asarray(g.origin) + [1.5, -2.0, 3.25], g.direction_matrix)
    image.geometry = moved
    # Different rescale per frame must move Pixel Value Transformation into the per-frame groups.
    image.rescale = image.rescale.copy()
    image.rescale[:, 1] = -1000.0 - np.arange(g.shape[0])
    image.data = np.asarray(image.data, dtype=np.float32) - np.arange(g.shape[0], dtype=np.float32)[:, None, None]
    series_uid, sops = _uids(1)
    result = write_series(image, tmp_path / "out", series_uid=series_uid, sop_instance_uids=sops, derived=True)
    assert len(result.paths) == 1
    ds = pydicom.dcmread(result.paths[0])
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2.1"
    assert ds.NumberOfFrames == g.shape[0]
    # Enhanced IODs allow only PRIMARY as value 2.
    assert list(ds.ImageType)[:2] == ["DERIVED", "PRIMARY"]
    assert list(ds.SharedFunctionalGroupsSequence[0].CTImageFrameTypeSequence[0].FrameType)[:2] == ["DERIVED", "PRIMARY"]
    assert "PixelValueTransformationSequence" not in ds.SharedFunctionalGroupsSequence[0]
    for k, frame in enumerate(ds.PerFrameFunctionalGroupsSequence):
        ipp = np.array(frame.PlanePositionSequence[0].ImagePositionPatient, dtype=float)
        np.testing.assert_allclose(ipp, moved.slice_position(k), atol=1e-4)
        assert float(frame.PixelValueTransformationSequence[0].RescaleIntercept) == -1000.0 - k
    again = load_one(tmp_path / "out")
    np.testing.assert_allclose(again.geometry.affine, moved.affine, atol=1e-4)
    np.testing.assert_array_equal(again.data, image.data)


def test_smallest_and_largest_pixel_values_follow_the_new_pixels(tmp_path: Path) -> None:
    image = load_one(build_mr(tmp_path / "src", np.random.default_rng(4)).directory)
    image.data[:] = np.clip(image.data, 100, 200)
    series_uid, sops = _uids(3)
    result = write_series(image, tmp_path / "out", series_uid=series_uid, sop_instance_uids=sops)
    for path in result.paths:
        ds = pydicom.dcmread(path)
        assert (ds.SmallestImagePixelValue, ds.LargestImagePixelValue) == (ds.pixel_array.min(), ds.pixel_array.max())
        assert 100 <= ds.SmallestImagePixelValue < ds.LargestImagePixelValue <= 200
        assert ds["SmallestImagePixelValue"].VR == "US"
        assert ds.SpecificCharacterSet == "ISO_IR 192"
        assert ds.PatientName == "Fäke^Plänted"  # text survives in the source's character set


def test_colour_by_plane_and_rle_round_trip(tmp_path: Path) -> None:
    image = load_one(build_us(tmp_path / "src", np.random.default_rng(6)).directory)
    header = image.headers[0]
    header.PlanarConfiguration = 1
    series_uid, sops = _uids(1)
    result = write_series(image, tmp_path / "plane", series_uid=series_uid, sop_instance_uids=sops)
    ds = pydicom.dcmread(result.paths[0])
    assert ds.PlanarConfiguration == 1
    np.testing.assert_array_equal(ds.pixel_array, image.data[0])
    result = write_series(image, tmp_path / "rle", series_uid=series_uid, sop_instance_uids=sops, transfer_syntax=RLELossless)
    ds = pydicom.dcmread(result.paths[0])
    assert ds.file_meta.TransferSyntaxUID == RLELossless
    np.testing.assert_array_equal(ds.pixel_array, image.data[0])


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless], ids=["rle", "jpeg2000"])
@pytest.mark.parametrize("kind", ["ct", "mr", "us"])
def test_lossless_compression_keeps_stored_values(kind: str, syntax: str, tmp_path: Path) -> None:
    builder = {"ct": build_ct, "mr": build_mr, "us": build_us}[kind]
    image = load_one(builder(tmp_path / "src", np.random.default_rng(8)).directory)
    series_uid, sops = _uids(image.geometry.shape[0])
    result = write_series(image, tmp_path / "out", series_uid=series_uid, sop_instance_uids=sops, transfer_syntax=syntax)
    small = min(image.geometry.shape[1:]) < J2K_MIN_SIZE and syntax == JPEG2000Lossless
    expected = ExplicitVRLittleEndian if small else syntax
    assert all(pydicom.dcmread(p).file_meta.TransferSyntaxUID == expected for p in result.paths)
    # The digests the writer gives are of the bytes on disk (the run records them unread).
    assert result.sha256 == [hashlib.sha256(p.read_bytes()).hexdigest() for p in result.paths]
    again = load_one(tmp_path / "out")
    np.testing.assert_array_equal(again.data, image.data)
    np.testing.assert_allclose(again.geometry.affine, image.geometry.affine, atol=1e-4, rtol=0)


def test_implicit_vr_is_written_when_asked(ct: SeriesImage, tmp_path: Path) -> None:
    series_uid, sops = _uids(4)
    result = write_series(ct, tmp_path, series_uid=series_uid, sop_instance_uids=sops, transfer_syntax=ImplicitVRLittleEndian)
    ds = pydicom.dcmread(result.paths[0])
    assert ds.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    np.testing.assert_array_equal(load_one(tmp_path).data, ct.data)


def test_nothing_of_the_source_file_wrapper_is_copied(tmp_path: Path) -> None:
    source = build_ct(tmp_path / "src", np.random.default_rng(8))
    for path in source.files:
        ds = pydicom.dcmread(path)
        ds.preamble = b"PLANTEDPREAMBLE".ljust(128, b"\0")
        ds.file_meta.SourceApplicationEntityTitle = "PLANTEDAE"
        ds.file_meta.ImplementationVersionName = "PLANTEDIMPL"
        ds.save_as(path, enforce_file_format=True)
    image = load_one(source.directory)
    series_uid, sops = _uids(4)
    result = write_series(image, tmp_path / "out", series_uid=series_uid, sop_instance_uids=sops)
    for path in result.paths:
        raw = path.read_bytes()
        assert raw[:128] == b"\0" * 128
        assert b"PLANTED" not in raw
        assert pydicom.dcmread(path).file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sop_instance_uids": ["1.2.3"]}, "SOP Instance UIDs"),
        ({"file_names": ["../1.dcm", "2.dcm", "3.dcm", "4.dcm"]}, "file name number 1"),
        ({"transfer_syntax": JPEGBaseline8Bit}, "transfer syntax"),
    ],
)
def test_bad_arguments_are_refused_before_writing(
    ct: SeriesImage, tmp_path: Path, change: dict[str, object], message: str
) -> None:
    series_uid, sops = _uids(4)
    kwargs: dict[str, object] = {"series_uid": series_uid, "sop_instance_uids": sops, **change}
    with pytest.raises(WriteError, match=message):
        write_series(ct, tmp_path / "out", **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


def test_a_failure_leaves_no_partial_file(ct: SeriesImage, tmp_path: Path) -> None:
    def extra(ds: Dataset, k: int) -> None:
        if k == 2:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds.Rows = "not a number"  # fails only while encoding the file

    series_uid, sops = _uids(4)
    with pytest.raises(WriteError, match="cannot encode output file 3.dcm"):
        write_series(ct, tmp_path, series_uid=series_uid, sop_instance_uids=sops, extra=extra)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.dcm", "2.dcm"]
    for p in tmp_path.iterdir():
        pydicom.dcmread(p)


def test_nan_values_are_refused(ct: SeriesImage, tmp_path: Path) -> None:
    ct.data[0, 0, 0] = np.nan
    series_uid, sops = _uids(4)
    with pytest.raises(WriteError, match="NaN"):
        write_series(ct, tmp_path, series_uid=series_uid, sop_instance_uids=sops)
    assert list(tmp_path.iterdir()) == []


def test_write_atomic_replaces_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    write_atomic(target, lambda f: None if f.write(b"old") else None)

    def fail(f: object) -> None:
        f.write(b"partial")  # type: ignore[attr-defined]
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_atomic(target, fail)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
    write_atomic(target, lambda f: None if f.write(b"new") else None)
    assert target.read_bytes() == b"new"


def test_to_stored_rounds_to_nearest_and_counts_both_ends() -> None:
    values = np.array([-0.6, -0.4, 0.4, 0.6, 254.6, 255.4, 300.0, -1.0])
    stored, clipped = to_stored(values, stored_range=(0, 255), dtype=np.dtype("u1"))
    assert stored.tolist() == [0, 0, 0, 1, 255, 255, 255, 0]
    assert clipped == 3  # -0.6 → -1, 300 and -1 (255.4 rounds to 255, in range)


_STORAGE = [(np.dtype("u1"), (0, 255)), (np.dtype("<i2"), (-2048, 2047)), (np.dtype("<u2"), (0, 4095)),
            (np.dtype("<i4"), (-(2**31), 2**31 - 1))]


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.floats(-1e6, 1e6) | st.integers(-5000, 5000).map(lambda n: n / 2), min_size=1, max_size=64),
    slope=st.sampled_from([1.0, 0.5, 2.5, 0.3, -1.0]),
    intercept=st.sampled_from([0.0, -1024.0, 10.5]),
    storage=st.sampled_from(_STORAGE),
    float32=st.booleans(),
)
def test_to_stored_is_the_rounded_inverse_rescale_clipped(
    values: list[float], slope: float, intercept: float, storage: tuple[np.dtype, tuple[int, int]], float32: bool
) -> None:
    # The definition, in float64 with numpy: halves round to even, values outside the range clip.
    array = np.array(values, dtype=np.float32 if float32 else np.float64)
    dtype, (lo, hi) = storage
    exact = np.rint((array.astype(np.float64) - intercept) / slope)
    stored, clipped = to_stored(array, slope=slope, intercept=intercept, stored_range=(lo, hi), dtype=dtype)
    assert stored.dtype == dtype and stored.shape == array.shape
    assert stored.tolist() == np.clip(exact, lo, hi).astype(np.int64).tolist()
    assert clipped == int(np.count_nonzero((exact < lo) | (exact > hi)))


def test_to_stored_takes_integers_and_refuses_nan() -> None:
    stored, clipped = to_stored(np.array([[-3, 70000], [5, 9]], dtype=">i4"), stored_range=(0, 65535),
                                dtype=np.dtype("<u2"))
    assert stored.tolist() == [[0, 65535], [5, 9]] and clipped == 2
    with pytest.raises(WriteError, match="NaN"):
        to_stored(np.array([1.0, np.nan]), stored_range=(0, 255), dtype=np.dtype("u1"))


def test_a_changed_geometry_is_what_is_written(ct: SeriesImage, tmp_path: Path) -> None:
    g = ct.geometry
    angle = np.deg2rad(7.0)
    rot = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    new = Geometry.from_arrays(g.shape, (3.0, 0.9, 0.8), np.asarray(g.origin) + 4.0, rot @ g.direction_matrix)
    image = dataclasses.replace(ct, geometry=new)
    series_uid, sops = _uids(4)
    write_series(image, tmp_path, series_uid=series_uid, sop_instance_uids=sops)
    again = load_one(tmp_path)
    np.testing.assert_allclose(again.geometry.affine, new.affine, atol=1e-4, rtol=0)


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, RLELossless], ids=["native", "rle"])
def test_the_same_input_gives_byte_identical_files(ct: SeriesImage, syntax: str, tmp_path: Path) -> None:
    series_uid, sops = _uids(4)
    first = write_series(ct, tmp_path / "a", series_uid=series_uid, sop_instance_uids=sops, derived=True,
                         transfer_syntax=syntax)
    second = write_series(ct, tmp_path / "b", series_uid=series_uid, sop_instance_uids=sops, derived=True,
                          transfer_syntax=syntax)
    assert [p.read_bytes() for p in first.paths] == [p.read_bytes() for p in second.paths]
    # Compressing keeps the SOP Instance UIDs given (pydicom's default would draw new ones).
    assert [pydicom.dcmread(p).SOPInstanceUID for p in first.paths] == sops


def test_jpeg2000_lossless_keeps_stored_values_of_full_size_images(archive: Path, tmp_path: Path) -> None:
    from medaug.ingest.archive import scan_archive
    from medaug.ingest.volume import load_series

    refs = [r for r in scan_archive(archive).series if min(r.geometry.shape[1:]) >= J2K_MIN_SIZE]
    assert {r.modality for r in refs} >= {"CT", "MR", "US"}
    one_each = {r.modality: r for r in reversed(refs)}  # the first series of each modality
    for n, ref in enumerate(one_each[m] for m in ("CT", "MR", "US")):
        image = load_series(ref).image
        count = 1 if image.multiframe else image.geometry.shape[0]
        series_uid, sops = _uids(count)
        out = tmp_path / str(n)
        result = write_series(image, out, series_uid=series_uid, sop_instance_uids=sops, transfer_syntax=JPEG2000Lossless)
        assert all(pydicom.dcmread(p).file_meta.TransferSyntaxUID == JPEG2000Lossless for p in result.paths)
        np.testing.assert_array_equal(load_one(out).data, image.data)


def test_write_bytes_atomic_completes_short_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A device may take fewer bytes than offered: the rest is written, parts in order."""
    real = os.writev

    def short(fd: int, buffers: list[memoryview]) -> int:
        return real(fd, [bytes(b"".join(buffers)[:1000])])  # at most 1000 bytes a call, across parts

    monkeypatch.setattr(os, "writev", short)
    parts = [bytes(range(256)) * 9, b"", b"x" * 3000, b"end"]
    write_bytes_atomic(tmp_path / "f.bin", parts, durable=True)
    assert (tmp_path / "f.bin").read_bytes() == b"".join(parts)
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
