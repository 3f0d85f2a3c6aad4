"""Labels of series that are not a regular stack of single-frame files.

A multi-frame object (an Enhanced CT whose frames are stored top to bottom): its SEG's frames
and RTSTRUCT's contours are matched to the frames by position, and the labels written for each
variant reference the variant's one multi-frame object and its frame numbers. An unevenly spaced
stack: its variants are never resampled (intensity only), so its labels are carried unchanged,
on the slices' real planes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from fixtures.labels import (
    WHEN,
    Labelled,
    LabelledMultiframe,
    write_labelled_enhanced_ct,
    write_labelled_uneven_ct,
)
from medaug.augment.labels import warp_label_volume
from medaug.augment.variant import SPATIAL_SKIPPED_IRREGULAR, VariantParams
from medaug.dataset import layout
from medaug.errors import InputError
from medaug.geometry import Geometry
from medaug.ingest import load_series, reasons, scan_archive
from medaug.ingest.image import SeriesImage
from medaug.ingest.labels import label_maps
from medaug.write.labels import write_rtstruct, write_seg
from tests.conftest import dciodvfy_kinds, external
from tests.dataset_helpers import run_unscoped


def _image(archive: Path) -> SeriesImage:
    (ref,) = scan_archive(archive).series
    return load_series(ref).image


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def _label_outputs(out: Path, records: list[dict[str, Any]]) -> dict[tuple[int, str], Path]:
    """``(variant, modality) -> file`` of every label output recorded."""
    found = {}
    for r in records:
        if r["type"] == "output" and layout.label_number(r["path"]) is not None:
            path = out / r["path"]
            found[(int(r["variant"]), str(pydicom.dcmread(path, stop_before_pixels=True).Modality))] = path
    return found


def _images_of(label: Path) -> list[pydicom.Dataset]:
    """The image objects written beside a label file (its series' folder)."""
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(label.parent.iterdir())
            if p.is_file() and layout.label_number(p.name) is None]


def _params(records: list[dict[str, Any]]) -> dict[int, VariantParams | None]:
    out: dict[int, VariantParams | None] = {}
    for r in records:
        if r["type"] == "derive":
            out[int(r.get("variant", 0))] = VariantParams.from_json(r["params"]) if r.get("params") else None
    return out


def _frame_positions(ds: pydicom.Dataset) -> list[np.ndarray]:
    return [np.array([float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient])
            for f in ds.PerFrameFunctionalGroupsSequence]


def _assert_no_new_dciodvfy_error(out: Path, records: list[dict[str, Any]], *, seg: Path, rtstruct: Path) -> None:
    """Every label output has no kind of dciodvfy error its source object lacks."""
    external("dciodvfy")
    for (_, modality), path in _label_outputs(out, records).items():
        assert not dciodvfy_kinds(path) - dciodvfy_kinds(seg if modality == "SEG" else rtstruct), path.name


def _assert_contours_on_their_frames(rt: pydicom.Dataset, image: pydicom.Dataset) -> None:
    """Every contour references a frame of ``image`` that exists, and lies in that frame's plane."""
    positions = _frame_positions(image)
    normal = np.cross(*np.asarray([float(v) for v in image.SharedFunctionalGroupsSequence[0]
                                   .PlaneOrientationSequence[0].ImageOrientationPatient]).reshape(2, 3))
    for roi in rt.ROIContourSequence:
        for contour in roi.ContourSequence:
            (ref,) = contour.ContourImageSequence
            number = int(ref.ReferencedFrameNumber)
            assert ref.ReferencedSOPInstanceUID == image.SOPInstanceUID and 1 <= number <= int(image.NumberOfFrames)
            points = np.asarray([float(x) for x in contour.ContourData]).reshape(-1, 3)
            assert np.allclose(points @ normal, positions[number - 1] @ normal, atol=1e-3)


# -- multi-frame ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def enhanced(tmp_path_factory: pytest.TempPathFactory) -> LabelledMultiframe:
    return write_labelled_enhanced_ct(tmp_path_factory.mktemp("enhanced"))


@pytest.fixture(scope="module")
def enhanced_run(enhanced: LabelledMultiframe, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    root = tmp_path_factory.mktemp("enhanced-run")
    return run_unscoped("ct-chest-conservative", enhanced.image_path.parents[3], root)


def test_multiframe_labels_are_read_by_frame_position(enhanced: LabelledMultiframe) -> None:
    image = _image(enhanced.image_path.parents[3])
    assert image.multiframe and image.geometry == enhanced.geometry
    for path, truth in ((enhanced.seg_path, enhanced.seg_maps), (enhanced.rtstruct_path, enhanced.rt_maps)):
        vol = label_maps(path, image.geometry, instance_uids=(enhanced.instance_uid,))
        assert np.array_equal(vol.data, truth), path.name
    # The source's frames are stored k descending, so a reader that took frame order for slice
    # order would flip the volume, and a writer doing so would reference the wrong frames.
    assert enhanced.frame_of_slice[0] == enhanced.geometry.shape[0]
    _assert_contours_on_their_frames(pydicom.dcmread(enhanced.rtstruct_path), pydicom.dcmread(enhanced.image_path))


def test_multiframe_seg_zero_transform_references_the_frames(enhanced: LabelledMultiframe, tmp_path: Path) -> None:
    g = enhanced.geometry
    source = pydicom.dcmread(enhanced.image_path, stop_before_pixels=True)
    vol = label_maps(enhanced.seg_path, g)
    assert warp_label_volume(vol, g, VariantParams()) is vol
    out = write_seg(vol, tmp_path / "seg.dcm", source_datasets=[source], segments=vol.segments,
                    series_uid="1.2.826.0.1.3680043.10.1161.9.11", sop_uid="1.2.826.0.1.3680043.10.1161.9.12",
                    series_number=200, content_datetime=WHEN)
    assert np.array_equal(label_maps(out, g, instance_uids=(enhanced.instance_uid,)).data, enhanced.seg_maps)
    # Each SEG frame derives from the source frame at its own position.
    seg = pydicom.dcmread(out)
    positions = _frame_positions(source)
    for frame in seg.PerFrameFunctionalGroupsSequence:
        (src,) = frame.DerivationImageSequence[0].SourceImageSequence
        assert src.ReferencedSOPInstanceUID == enhanced.instance_uid
        number = int(src.ReferencedFrameNumber)
        assert 1 <= number <= int(source.NumberOfFrames)
        here = np.array([float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient])
        assert np.allclose(here, positions[number - 1], atol=1e-3)


def test_multiframe_labels_follow_every_variant(enhanced: LabelledMultiframe,
                                                enhanced_run: tuple[Path, list[dict[str, Any]]]) -> None:
    out, records = enhanced_run
    assert not [r for r in records if r["type"] == "quarantine"]
    assert sorted(r["kind"] for r in records if r["type"] == "label") == ["RTSTRUCT", "SEG"]
    files = _label_outputs(out, records)
    params = _params(records)
    assert sorted(files) == sorted((v, m) for v in params for m in ("RTSTRUCT", "SEG"))
    assert any(p is not None and p.is_spatial for p in params.values())
    g = enhanced.geometry
    source = label_maps(enhanced.seg_path, g)
    for (v, modality), path in files.items():
        (image,) = _images_of(path)  # the variant's one multi-frame object
        frames = int(image.NumberOfFrames)
        positions = _frame_positions(image)
        ds = pydicom.dcmread(path)
        if modality == "SEG":
            # the variant's SEG is the source map through the variant's own mapping, voxel for voxel
            p = params[v]
            expected = source if p is None else warp_label_volume(source, g, p)
            assert np.array_equal(label_maps(path, g, instance_uids=(str(image.SOPInstanceUID),)).data, expected.data), v
            refs = {str(i.ReferencedSOPInstanceUID) for s in ds.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence}
            assert refs == {str(image.SOPInstanceUID)}
            assert ds.FrameOfReferenceUID == image.FrameOfReferenceUID
            for frame in ds.PerFrameFunctionalGroupsSequence:
                (src,) = frame.DerivationImageSequence[0].SourceImageSequence
                number = int(src.ReferencedFrameNumber)
                assert src.ReferencedSOPInstanceUID == image.SOPInstanceUID and 1 <= number <= frames
                here = np.array([float(x) for x in frame.PlanePositionSequence[0].ImagePositionPatient])
                assert np.allclose(here, positions[number - 1], atol=1e-3)
        else:
            assert ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID == image.FrameOfReferenceUID
            _assert_contours_on_their_frames(ds, image)


def test_multiframe_label_outputs_have_no_new_dciodvfy_error(
    enhanced: LabelledMultiframe, enhanced_run: tuple[Path, list[dict[str, Any]]]
) -> None:
    _assert_no_new_dciodvfy_error(*enhanced_run, seg=enhanced.seg_path, rtstruct=enhanced.rtstruct_path)


# -- unevenly spaced --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def uneven(tmp_path_factory: pytest.TempPathFactory) -> Labelled:
    return write_labelled_uneven_ct(tmp_path_factory.mktemp("uneven") / "arc")


@pytest.fixture(scope="module")
def uneven_run(uneven: Labelled, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    root = tmp_path_factory.mktemp("uneven-run")
    return run_unscoped("ct-chest-conservative", uneven.image_paths[0].parent, root)


def test_uneven_labels_are_read_on_the_real_planes(uneven: Labelled) -> None:
    image = _image(uneven.image_paths[0].parent)
    assert not image.regular_grid and image.positions is not None and uneven.positions is not None
    assert np.allclose(image.positions, uneven.positions)
    for path, truth in ((uneven.seg_path, uneven.seg_maps), (uneven.rtstruct_path, uneven.rt_maps)):
        vol = label_maps(path, image.geometry, instance_uids=uneven.instance_uids, positions=image.positions)
        assert np.array_equal(vol.data, truth), path.name
        # on the typical step's grid, the moved slices' frames and contours lie on no plane
        with pytest.raises(InputError) as err:
            label_maps(path, image.geometry)
        assert err.value.reason == reasons.LABEL_NOT_ON_GRID


def test_uneven_rtstruct_contours_stay_on_their_planes(uneven: Labelled, tmp_path: Path) -> None:
    image = _image(uneven.image_paths[0].parent)
    vol = label_maps(uneven.rtstruct_path, image.geometry, positions=image.positions)
    sources = [pydicom.dcmread(p, stop_before_pixels=True) for p in uneven.image_paths]
    out = write_rtstruct(vol, tmp_path / "rt.dcm", geometry=image.geometry, positions=image.positions,
                         source_datasets=sources, segments=uneven.rois, series_uid="1.2.3.4", sop_uid="1.2.3.5",
                         series_number=3, content_datetime=WHEN)
    back = label_maps(out, image.geometry, positions=image.positions).data
    assert all(_dice(back[s], uneven.rt_maps[s]) >= 0.98 for s in range(2))


def test_uneven_labels_are_carried_unresampled(uneven: Labelled, uneven_run: tuple[Path, list[dict[str, Any]]]) -> None:
    out, records = uneven_run
    assert not [r for r in records if r["type"] == "quarantine"]
    params = _params(records)
    assert len(params) > 1 and all(p is None or not p.is_spatial for p in params.values())
    assert all(SPATIAL_SKIPPED_IRREGULAR in r["not_applied"] for r in records if r["type"] == "derive" and r.get("variant"))
    (seg_record,) = [r for r in records if r["type"] == "label" and r["kind"] == "SEG"]
    assert all(row == [1.0, 1.0] for row in seg_record["ratios"])
    files = _label_outputs(out, records)
    assert sorted(files) == sorted((v, m) for v in params for m in ("RTSTRUCT", "SEG"))
    assert uneven.positions is not None
    for (v, modality), path in files.items():
        images = _images_of(path)
        written = np.array([[float(x) for x in d.ImagePositionPatient] for d in images])
        order = np.argsort(written @ uneven.geometry.normal)
        positions = written[order]
        assert np.allclose(positions, uneven.positions, atol=1e-3), v  # the written slices stayed put
        grid = Geometry.from_arrays(uneven.geometry.shape, uneven.geometry.spacing, positions[0],
                                    uneven.geometry.direction_matrix)
        uids = tuple(str(images[i].SOPInstanceUID) for i in order)
        back = label_maps(path, grid, instance_uids=uids, positions=positions).data
        if modality == "SEG":
            assert np.array_equal(back, uneven.seg_maps), v
        else:
            assert all(_dice(back[s], uneven.rt_maps[s]) >= 0.98 for s in range(2)), v
            ds = pydicom.dcmread(path)
            refs = {str(c.ContourImageSequence[0].ReferencedSOPInstanceUID)
                    for roi in ds.ROIContourSequence for c in roi.ContourSequence}
            assert refs <= set(uids)


def test_uneven_label_outputs_have_no_new_dciodvfy_error(
    uneven: Labelled, uneven_run: tuple[Path, list[dict[str, Any]]]
) -> None:
    _assert_no_new_dciodvfy_error(*uneven_run, seg=uneven.seg_path, rtstruct=uneven.rtstruct_path)
