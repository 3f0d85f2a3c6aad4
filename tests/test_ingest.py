"""Ingest: discovery, header pass, grouping, slice order and volume building on synthetic DICOM."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    EnhancedCTImageStorage,
    ExplicitVRBigEndian,
    RLELossless,
    generate_uid,
)

from medaug.errors import InputError
from medaug.ingest import load_series, reasons, scan_archive
from medaug.ingest.grouping import stack_geometry
from medaug.ingest.limits import size_problem
from tests.ingest_helpers import AXIAL, make_dataset, save, write_stack


def _only_series(root: Path):  # type: ignore[no-untyped-def]
    scan = scan_archive(root)
    assert len(scan.series) == 1, [q.reason for q in scan.quarantined]
    return scan.series[0]


def test_slices_ordered_by_position_not_name_or_instance_number(tmp_path: Path) -> None:
    zs = [0.0, 2.5, 5.0, 7.5, 10.0]
    # Names sort in the opposite order of position, Instance Numbers are reversed and shuffled.
    order = [3, 0, 4, 1, 2]
    names = ["e.dcm", "d.dcm", "c.dcm", "b.dcm", "a.dcm"]
    positions = [(-10.0, 20.0, zs[i]) for i in order]
    arrays = write_stack(tmp_path, positions, names=names, instance_numbers=[5, 1, 4, 2, 3])
    ref = _only_series(tmp_path)
    assert ref.kind == "stack"
    assert [p.name for p in ref.files] == [names[order.index(i)] for i in range(5)]
    img = load_series(ref).image
    expected = np.stack([arrays[order.index(i)] for i in range(5)]).astype(np.float32) - 1024
    np.testing.assert_array_equal(img.data, expected)
    assert img.data.dtype == np.float32
    assert img.geometry.spacing == pytest.approx((2.5, 0.5, 0.5))
    for k, z in enumerate(zs):
        np.testing.assert_allclose(img.geometry.slice_position(k), (-10.0, 20.0, z), atol=1e-6)
    assert img.problems == ()
    assert len(img.headers) == 5 and all("PixelData" not in h for h in img.headers)
    np.testing.assert_array_equal(img.rescale, np.tile([1.0, -1024.0], (5, 1)))


def test_diffusion_weightings_are_separate_volumes(tmp_path: Path) -> None:
    """A diffusion series repeats every position once per b-value and direction: one volume
    each, nothing refused; without those attributes a repeated position is still refused."""
    weightings = [(0.0, None), (1000.0, (1.0, 0.0, 0.0)), (1000.0, (0.0, 1.0, 0.0))]
    for w, (b, gradient) in enumerate(weightings):
        for z in range(3):
            ds = make_dataset(np.full((4, 5), 10 * w + z, np.int16), ipp=(0.0, 0.0, 2.0 * z), modality="MR")
            ds.DiffusionBValue = b
            if gradient is not None:
                ds.DiffusionGradientOrientation = list(gradient)
            save(ds, tmp_path / "dwi" / f"{w}-{z}.dcm")
    scan = scan_archive(tmp_path / "dwi")
    assert not scan.quarantined
    assert [(ref.kind, len(ref.files)) for ref in scan.series] == [("stack", 3)] * 3
    firsts = sorted(int(load_series(ref).image.data[0, 0, 0]) + 1024 for ref in scan.series)
    assert firsts == [0, 10, 20]

    for z in (0.0, 0.0, 2.0):
        save(make_dataset(np.zeros((4, 5), np.int16), ipp=(0.0, 0.0, z), modality="MR"), tmp_path / "plain" / f"{generate_uid()}.dcm")
    plain = scan_archive(tmp_path / "plain")
    assert [len(ref.files) for ref in plain.series] == [2]
    assert [q.reason for q in plain.quarantined] == [reasons.INCONSISTENT_SERIES]


def test_sagittal_stack_orders_along_its_normal(tmp_path: Path) -> None:
    iop = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # sagittal: normal is (-1, 0, 0)
    xs = [4.0, -2.0, 1.0]
    write_stack(tmp_path, [(x, 0.0, 0.0) for x in xs], iop=iop)
    ref = _only_series(tmp_path)
    g = ref.geometry
    np.testing.assert_allclose(g.direction_matrix[:, 0], (-1.0, 0.0, 0.0), atol=1e-9)
    assert [g.slice_position(k)[0] for k in range(3)] == pytest.approx([4.0, 1.0, -2.0])
    assert g.spacing[0] == pytest.approx(3.0)


def test_gantry_tilt_is_detected_and_every_position_reproduced(tmp_path: Path) -> None:
    positions = [(0.0, 0.8 * k, 2.5 * k) for k in range(6)]
    write_stack(tmp_path, positions)
    ref = _only_series(tmp_path)
    assert reasons.GANTRY_TILT in ref.problems
    assert ref.geometry.is_sheared
    for k, pos in enumerate(positions):
        np.testing.assert_allclose(ref.geometry.slice_position(k), pos, atol=1e-4)


def test_missing_slice_and_irregular_spacing(tmp_path: Path) -> None:
    write_stack(tmp_path / "gap", [(0, 0, z) for z in (0.0, 2.5, 5.0, 10.0, 12.5)])
    ref = _only_series(tmp_path / "gap")
    assert ref.problems == (reasons.MISSING_SLICES,)
    assert ref.geometry.spacing[0] == pytest.approx(2.5)
    write_stack(tmp_path / "odd", [(0, 0, z) for z in (0.0, 2.5, 5.0, 6.0, 8.5)])
    assert _only_series(tmp_path / "odd").problems == (reasons.IRREGULAR_SPACING,)


def test_stack_geometry_of_regular_steps_has_no_problem() -> None:
    g, problems = stack_geometry([(0, 0, 0.0), (0, 0, 1.25)], AXIAL, (0.7, 0.8), shape=(2, 3, 3))
    assert problems == ()
    assert g.spacing == pytest.approx((1.25, 0.7, 0.8))


def test_monochrome1_values_are_kept(tmp_path: Path) -> None:
    arr = np.array([[0, 100], [4000, 4095]], dtype=np.uint16)
    ds = make_dataset(arr, ipp=None, iop=None, modality="DX", photometric="MONOCHROME1", bits_stored=12, intercept=0.0)
    del ds.PixelSpacing
    ds.ImagerPixelSpacing = ["0.15", "0.2"]
    save(ds, tmp_path / "dx.dcm")
    ref = _only_series(tmp_path)
    assert ref.kind == "2D"
    img = load_series(ref).image
    assert img.photometric == "MONOCHROME1"
    np.testing.assert_array_equal(img.data[0], arr.astype(np.float32))
    assert img.geometry.spacing == pytest.approx((1.0, 0.15, 0.2))
    assert img.stored_range == (0, 4095)


def test_signed_12_bit_values_and_range(tmp_path: Path) -> None:
    arr = np.array([[-2048, -1], [0, 2047]], dtype=np.int16)
    save(make_dataset(arr, bits_stored=12, slope=2.0, intercept=10.0), tmp_path / "s.dcm")
    img = load_series(_only_series(tmp_path)).image
    np.testing.assert_array_equal(img.data[0], arr.astype(np.float32) * 2 + 10)
    assert img.stored_range == (-2048, 2047)
    assert img.modality_range == (-4086.0, 4104.0)


@pytest.mark.parametrize("planar", [0, 1])
def test_rgb_both_planar_configurations(tmp_path: Path, planar: int) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (3, 4, 3), dtype=np.uint8)
    ds = make_dataset(rgb, modality="US", ipp=None, iop=None)
    ds.PlanarConfiguration = planar
    ds.PixelData = (rgb.transpose(2, 0, 1) if planar else rgb).tobytes()
    save(ds, tmp_path / "us.dcm")
    img = load_series(_only_series(tmp_path)).image
    assert img.is_colour and img.data.shape == (1, 3, 4, 3)
    np.testing.assert_array_equal(img.data[0], rgb)
    np.testing.assert_array_equal(img.rescale, [[1.0, 0.0]])


def _enhanced(frames_z: list[float], slopes: list[float]) -> Dataset:
    """An Enhanced CT-like object with per-frame positions and rescale, shared orientation and spacing."""
    n = len(frames_z)
    pix = np.stack([np.full((3, 4), 10 * f, dtype=np.uint16) for f in range(n)])
    ds = make_dataset(pix[0], ipp=None, iop=None, sop_class=EnhancedCTImageStorage)
    for kw in ("PixelSpacing", "RescaleSlope", "RescaleIntercept"):
        delattr(ds, kw)
    ds.NumberOfFrames = n
    shared = Dataset()
    orient, measures = Dataset(), Dataset()
    orient.ImageOrientationPatient = list(AXIAL)
    measures.PixelSpacing = [0.6, 0.7]
    measures.SliceThickness = 2.0
    shared.PlaneOrientationSequence = DicomSequence([orient])
    shared.PixelMeasuresSequence = DicomSequence([measures])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    per = []
    for z, slope in zip(frames_z, slopes):
        item, pos, pvt = Dataset(), Dataset(), Dataset()
        pos.ImagePositionPatient = [1.0, 2.0, z]
        pvt.RescaleSlope, pvt.RescaleIntercept, pvt.RescaleType = slope, -1000, "HU"
        item.PlanePositionSequence = DicomSequence([pos])
        item.PixelValueTransformationSequence = DicomSequence([pvt])
        per.append(item)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per)
    ds.PixelData = pix.tobytes()
    return ds


def test_enhanced_multiframe_frames_ordered_with_per_frame_rescale(tmp_path: Path) -> None:
    save(_enhanced([6.0, 0.0, 3.0], [1.0, 2.0, 3.0]), tmp_path / "mf.dcm")
    ref = _only_series(tmp_path)
    assert ref.kind == "multi-frame"
    img = load_series(ref).image
    assert img.multiframe and len(img.headers) == 1
    # Frame f holds 10*f; sorted by z the frames are 1, 2, 0.
    np.testing.assert_array_equal(img.data[:, 0, 0], [10 * 2 - 1000, 20 * 3 - 1000, 0 - 1000])
    np.testing.assert_array_equal(img.rescale[:, 0], [2.0, 3.0, 1.0])
    assert img.geometry.spacing == pytest.approx((3.0, 0.6, 0.7))
    np.testing.assert_allclose(img.geometry.origin, (1.0, 2.0, 0.0))
    zs = [img.headers[0].PerFrameFunctionalGroupsSequence[k].PlanePositionSequence[0].ImagePositionPatient[2] for k in range(3)]
    assert zs == [0.0, 3.0, 6.0]


def test_no_preamble_big_endian_deflated_and_rle_are_read(tmp_path: Path) -> None:
    arr = np.arange(-6, 6, dtype=np.int16).reshape(3, 4)
    save(make_dataset(arr, series_uid=generate_uid()), tmp_path / "pre.dcm")
    data = (tmp_path / "pre.dcm").read_bytes()
    (tmp_path / "nopre.dcm").write_bytes(data[132:])
    (tmp_path / "pre.dcm").unlink()
    be = make_dataset(arr, series_uid=generate_uid(), transfer_syntax=ExplicitVRBigEndian)
    be.PixelData = arr.astype(">i2").tobytes()
    be.save_as(tmp_path / "be.dcm", enforce_file_format=True, little_endian=False, implicit_vr=False)
    save(make_dataset(arr, series_uid=generate_uid(), transfer_syntax=DeflatedExplicitVRLittleEndian), tmp_path / "defl.dcm")
    rle = make_dataset(arr, series_uid=generate_uid())
    rle.compress(RLELossless, encoding_plugin="pydicom")
    save(rle, tmp_path / "rle.dcm")
    scan = scan_archive(tmp_path)
    assert scan.quarantined == []
    assert len(scan.series) == 4
    for ref in scan.series:
        np.testing.assert_array_equal(load_series(ref).image.data[0], arr.astype(np.float32) - 1024)


def _bad_archive(root: Path) -> dict[str, str]:
    """One good stack plus one file per bad-input reason; returns file name -> expected reason."""
    write_stack(root / "good", [(0, 0, z) for z in (0.0, 1.0, 2.0)])
    expected = {}
    (root / "empty.dcm").write_bytes(b"")
    expected["empty.dcm"] = reasons.EMPTY
    (root / "notes.txt").write_text("not an image at all, just text that is long enough to be read" * 4)
    expected["notes.txt"] = reasons.NOT_DICOM
    full = save(make_dataset(np.zeros((64, 64), np.int16), series_uid=generate_uid()), root / "trunc.dcm")
    full.write_bytes(full.read_bytes()[:-3000])
    expected["trunc.dcm"] = reasons.TRUNCATED
    huge = make_dataset(np.zeros((2, 2), np.uint16), series_uid=generate_uid())
    huge.Rows = huge.Columns = 60000
    save(huge, root / "huge.dcm")
    expected["huge.dcm"] = reasons.TOO_LARGE
    short = make_dataset(np.zeros((8, 8), np.uint16), series_uid=generate_uid())
    short.PixelData = b"\0" * 20
    save(short, root / "short.dcm")
    expected["short.dcm"] = reasons.PIXEL_LENGTH_MISMATCH
    nopix = make_dataset(np.zeros((2, 2), np.uint16), series_uid=generate_uid())
    del nopix.PixelData
    save(nopix, root / "nopix.dcm")
    expected["nopix.dcm"] = reasons.NO_PIXEL_DATA
    jxl = make_dataset(np.zeros((2, 2), np.uint16), series_uid=generate_uid(), transfer_syntax="1.2.840.10008.1.2.4.100")
    jxl.PixelData = pydicom.encaps.encapsulate([b"\0\0\1\xb3" + b"\0" * 30])
    save(jxl, root / "jxl.dcm")
    expected["jxl.dcm"] = reasons.UNSUPPORTED_TRANSFER_SYNTAX
    odd = make_dataset(np.zeros((6, 6), np.int16), ipp=(0, 0, 3.0))
    save(odd, root / "good" / "odd.dcm")
    expected["odd.dcm"] = reasons.INCONSISTENT_SERIES
    badiop = make_dataset(np.zeros((2, 2), np.int16), series_uid=generate_uid(), iop=(1, 0, 0, 1, 0, 0))
    save(badiop, root / "badiop.dcm")
    expected["badiop.dcm"] = reasons.BAD_HEADER
    return expected


def test_every_bad_file_gets_its_reason_and_the_rest_is_kept(tmp_path: Path) -> None:
    expected = _bad_archive(tmp_path)
    scan = scan_archive(tmp_path)
    got = {q.path.name: q.reason for q in scan.quarantined}
    assert got == expected
    assert len(scan.series) == 1 and len(scan.series[0].files) == 3
    accounted = {p for s in scan.series for p in s.files} | {q.path for q in scan.quarantined}
    walked = sorted((p for p in tmp_path.rglob("*") if p.is_file()), key=os.fsencode)
    assert accounted == set(walked) and scan.file_count == len(walked)
    assert [q.number for q in scan.quarantined] == sorted(walked.index(q.path) + 1 for q in scan.quarantined)
    for q in scan.quarantined:
        assert q.reason in reasons.FILE_REASONS
        assert "FAKE" not in q.detail and str(tmp_path) not in q.detail


def test_a_slice_that_breaks_after_the_scan_is_quarantined_not_fatal(tmp_path: Path) -> None:
    write_stack(tmp_path, [(0, 0, z) for z in (0.0, 1.0, 2.0, 3.0)])
    ref = _only_series(tmp_path)
    victim = ref.files[2]
    victim.write_bytes(victim.read_bytes()[:200])
    loaded = load_series(ref)
    assert [q.path for q in loaded.quarantined] == [victim]
    assert loaded.image.data.shape[0] == 3 == len(loaded.image.headers)
    assert reasons.MISSING_SLICES in loaded.image.problems
    # The kept slices stay adjacent in the volume; the step is the regular one.
    assert loaded.image.geometry.spacing[0] == pytest.approx(1.0)
    np.testing.assert_array_equal(loaded.image.data[:, 0, 0], np.array([0, 100, 300], np.float32) - 1024)


def test_whole_series_unusable_raises_input_error(tmp_path: Path) -> None:
    save(make_dataset(np.zeros((4, 4), np.int16)), tmp_path / "one.dcm")
    ref = _only_series(tmp_path)
    (tmp_path / "one.dcm").write_bytes(b"garbage" * 10)
    with pytest.raises(InputError) as info:
        load_series(ref)
    assert info.value.reason == reasons.NOT_DICOM


def test_dicomdir_is_recognised_and_missing_references_reported(tmp_path: Path) -> None:
    write_stack(tmp_path / "IMG", [(0, 0, 0.0), (0, 0, 1.0)], names=["im1", "im2"])
    dd = Dataset()
    dd.file_meta = pydicom.dataset.FileMetaDataset()
    dd.file_meta.MediaStorageSOPClassUID = pydicom.uid.UID("1.2.840.10008.1.3.10")
    dd.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    dd.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    records = []
    for ref in (["IMG", "IM1"], ["IMG", "IM2"], ["IMG", "IM9"]):
        rec = Dataset()
        rec.DirectoryRecordType = "IMAGE"
        rec.ReferencedFileID = ref
        records.append(rec)
    dd.DirectoryRecordSequence = DicomSequence(records)
    dd.save_as(tmp_path / "DICOMDIR", enforce_file_format=True)
    scan = scan_archive(tmp_path)
    assert scan.directories == [tmp_path / "DICOMDIR"]
    assert len(scan.series) == 1 and len(scan.series[0].files) == 2
    # IM9 is named by the DICOMDIR but absent: counted, not an input.
    assert scan.quarantined == [] and scan.missing_references == 1


def test_size_limits_refuse_absurd_headers() -> None:
    assert size_problem(512, 512, 1000, 1, 16) is None
    assert size_problem(60000, 60000, 1, 1, 16) is not None
    assert size_problem(16384, 16384, 10, 1, 16) is not None  # 5 GiB
    assert size_problem(512, 512, 10**6, 1, 16) is not None


def test_reason_table_describes_every_code() -> None:
    codes = [v for k, v in vars(reasons).items() if k.isupper() and isinstance(v, str)]
    assert set(codes) == set(reasons.ALL_REASONS)
    assert all(reasons.describe(c) and "\n" not in reasons.describe(c) for c in codes)


def test_large_elements_are_loaded_so_headers_outlive_the_file(tmp_path: Path) -> None:
    arr = np.random.default_rng(0).integers(-1000, 1000, (1024, 1024)).astype(np.int16)  # 2 MiB: deferred
    ds = make_dataset(arr)
    ds.add_new(0x00291010, "OB", b"\x01" * (2 << 20))
    save(ds, tmp_path / "big.dcm")
    img = load_series(_only_series(tmp_path)).image
    (tmp_path / "big.dcm").unlink()
    np.testing.assert_array_equal(img.data[0], arr.astype(np.float32) - 1024)
    assert len(img.headers[0][0x00291010].value) == 2 << 20


def test_a_second_file_with_the_same_instance_uid_is_quarantined(tmp_path: Path) -> None:
    write_stack(tmp_path / "a", [(0, 0, 0), (0, 0, 1), (0, 0, 2)])
    copy = tmp_path / "b" / "copy.dcm"
    copy.parent.mkdir()
    copy.write_bytes((tmp_path / "a" / "slice001.dcm").read_bytes())
    scan = scan_archive(tmp_path)
    assert [len(s.files) for s in scan.series] == [3]
    assert [(q.path, q.reason) for q in scan.quarantined] == [(copy, "duplicate-instance")]
