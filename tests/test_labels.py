"""Labels core: SEG / RTSTRUCT read onto the image grid, warped with the image, written back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from fixtures.labels import STRUCTURE_HU, WHEN, Labelled, write_labelled_ct, write_labelled_mr
from medaug.augment.labels import warp_label_volume
from medaug.augment.spec import AugmentSpec, ElasticSpec, RotationSpec
from medaug.augment.variant import VariantParams, apply_variant, sample_variant, variant_rng
from medaug.dataset import layout
from medaug.errors import InputError
from medaug.geometry import Geometry
from medaug.ingest import reasons
from medaug.ingest.labels import label_maps, read_label_header
from medaug.write.labels import write_rtstruct, write_seg
from tests.conftest import dciodvfy_kinds, external

SPEC = AugmentSpec(rotation=RotationSpec(8.0), elastic=ElasticSpec(control_spacing_mm=8.0, max_displacement_mm=2.0))


@pytest.fixture(scope="module", params=["ct", "mr"])
def labelled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Labelled:
    root = tmp_path_factory.mktemp(request.param)
    return write_labelled_ct(root) if request.param == "ct" else write_labelled_mr(root)


def _sources(lab: Labelled) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p) for p in lab.image_paths]


def _seg(lab: Labelled, volume: object, path: Path) -> Path:
    return write_seg(
        volume,  # type: ignore[arg-type]
        path,
        source_datasets=_sources(lab),
        segments=lab.segments,
        series_uid="1.2.826.0.1.3680043.10.1161.9.1",
        sop_uid="1.2.826.0.1.3680043.10.1161.9.2",
        series_number=200,
        content_datetime=WHEN,
    )


def test_header(labelled: Labelled) -> None:
    h = read_label_header(labelled.seg_path)
    assert h.kind == "SEG" and h.referenced_series_uid == labelled.series_uid
    assert set(h.referenced_instance_uids) == set(labelled.instance_uids)
    assert [s.label for s in h.segments] == [s.label for s in labelled.segments]
    r = read_label_header(labelled.rtstruct_path)
    assert r.kind == "RTSTRUCT" and r.frame_of_reference_uid == labelled.frame_uid


def test_seg_zero_transform_round_trip(labelled: Labelled, tmp_path: Path) -> None:
    vol = label_maps(labelled.seg_path, labelled.geometry, instance_uids=labelled.instance_uids)
    assert np.array_equal(vol.data, labelled.seg_maps)
    same = warp_label_volume(vol, labelled.geometry, VariantParams())
    assert same is vol
    out = _seg(labelled, same, tmp_path / "seg.dcm")
    back = label_maps(out, labelled.geometry)
    assert np.array_equal(back.data, labelled.seg_maps)
    assert out.read_bytes() == _seg(labelled, same, tmp_path / "seg2.dcm").read_bytes()


def test_rtstruct_dice(labelled: Labelled, tmp_path: Path) -> None:
    vol = label_maps(labelled.rtstruct_path, labelled.geometry)
    assert np.array_equal(vol.data, labelled.rt_maps)  # the ring keeps its hole
    out = write_rtstruct(
        vol, tmp_path / "rt.dcm", geometry=labelled.geometry, source_datasets=_sources(labelled),
        segments=labelled.rois, series_uid="1.2.3.4", sop_uid="1.2.3.5", series_number=3, content_datetime=WHEN,
    )
    back = label_maps(out, labelled.geometry).data
    for s in range(2):
        a, b = back[s].astype(bool), labelled.rt_maps[s].astype(bool)
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) >= 0.98


def test_variant_seg_equals_warp_and_intensity(labelled: Labelled, tmp_path: Path) -> None:
    g = labelled.geometry
    p = sample_variant(variant_rng(3, "labels", 2), SPEC, g, modality="CT")
    vol = label_maps(labelled.seg_path, g)
    warped = warp_label_volume(vol, g, p)
    assert not np.array_equal(warped.data, vol.data)  # index 2: the first draw that moves a voxel of this 16 mm volume
    back = label_maps(_seg(labelled, warped, tmp_path / "v.dcm"), g)
    assert np.array_equal(back.data, warped.data)
    image = apply_variant(labelled.image.astype(np.float32), g, p, modality="CT").data
    inside = warped.data[0].astype(bool)
    # interior voxels (eroded) of the warped structure keep its intensity
    from scipy.ndimage import binary_erosion

    core = binary_erosion(inside)
    assert core.any() and np.allclose(image[core], STRUCTURE_HU, atol=1.0)
    soft = warp_label_volume(vol, g, p, mode="onehot-linear")
    assert soft.data.dtype == np.uint8 and abs(int(soft.data.sum()) - int(warped.data.sum())) < 0.1 * warped.data.sum()


def test_dciodvfy(labelled: Labelled, tmp_path: Path) -> None:
    external("dciodvfy")
    vol = label_maps(labelled.seg_path, labelled.geometry)
    seg = _seg(labelled, vol, tmp_path / "seg.dcm")
    assert dciodvfy_kinds(seg) <= dciodvfy_kinds(labelled.seg_path)
    rt = write_rtstruct(
        label_maps(labelled.rtstruct_path, labelled.geometry), tmp_path / "rt.dcm", geometry=labelled.geometry,
        source_datasets=_sources(labelled), segments=labelled.rois, series_uid="1.2.3.4", sop_uid="1.2.3.5",
        series_number=3, content_datetime=WHEN,
    )
    assert dciodvfy_kinds(rt) == set()


def test_reason_codes(labelled: Labelled) -> None:
    with pytest.raises(InputError) as e:
        label_maps(labelled.seg_path, labelled.geometry, instance_uids=("1.2.3",))
    assert e.value.reason == reasons.LABEL_UNREFERENCED
    g = labelled.geometry
    half = g.spacing[0] / 2  # half a slice: off every plane
    shifted = Geometry(shape=g.shape, spacing=g.spacing, origin=(g.origin[0], g.origin[1], g.origin[2] + half), direction=g.direction)
    with pytest.raises(InputError) as e:
        label_maps(labelled.seg_path, shifted)
    assert e.value.reason == reasons.LABEL_NOT_ON_GRID
    with pytest.raises(InputError) as e:
        label_maps(labelled.rtstruct_path, shifted)
    assert e.value.reason == reasons.LABEL_NOT_ON_GRID
    assert reasons.LABEL_NOT_ON_GRID in reasons.FILE_REASONS and reasons.LABEL_UNREFERENCED in reasons.FILE_REASONS


def test_malformed_label_object_is_bad_header(labelled: Labelled, tmp_path: Path) -> None:
    ds = pydicom.dcmread(labelled.seg_path)
    del ds.PerFrameFunctionalGroupsSequence  # no frame can be placed
    ds.save_as(tmp_path / "seg.dcm")
    with pytest.raises(InputError) as e:
        label_maps(tmp_path / "seg.dcm", labelled.geometry)
    assert e.value.reason == reasons.BAD_HEADER


def test_fractional_warp_linear_clipped(labelled: Labelled) -> None:
    from medaug.ingest.labels import LabelVolume, Segment

    g = labelled.geometry
    seg = Segment(number=1, label="x", description="", algorithm_type="AUTOMATIC", fractional=True)
    data = np.clip(labelled.seg_maps[:1].astype(np.float32) * 0.8 + 0.1, 0.0, 1.0)
    vol = LabelVolume(data=data, segments=(seg,))
    assert warp_label_volume(vol, g, VariantParams()) is vol
    p = sample_variant(variant_rng(3, "labels", 2), SPEC, g, modality="CT")
    out = warp_label_volume(vol, g, p).data
    assert out.dtype == np.float32 and out.min() >= 0.0 and out.max() <= 1.0
    assert len(np.unique(out)) > 3  # linear, not nearest


def test_labels_are_carried_into_every_written_series(tmp_path: Path) -> None:
    """A SEG and an RTSTRUCT beside their CT series: each is written beside the de-identified original
    and every variant, warped by the variant's mapping, valid, and accounted for; the dataset verifies."""
    from medaug.audit.verify import verify_dataset
    from medaug.ingest.labels import label_maps
    from tests.dataset_helpers import run_unscoped

    labelled = write_labelled_ct(tmp_path / "arc")
    out, records = run_unscoped("ct-chest-conservative", tmp_path / "arc", tmp_path)
    assert sorted(r["kind"] for r in records if r["type"] == "label") == ["RTSTRUCT", "SEG"]
    files = sum(1 for p in (tmp_path / "arc").rglob("*") if p.is_file())
    assert records[-1]["counts"]["inputs"] == files
    assert verify_dataset(out).ok
    label_files = sorted((out / "dicom").rglob("label-*.dcm"))
    variants = 1 + len([r for r in records if r["type"] == "derive" and r.get("variant", 0) > 0])
    assert len(label_files) == 2 * variants
    for path in label_files:
        assert "KORVALD" not in path.read_bytes().decode("latin-1").upper()  # planted in the source's labels
    # The de-identified original's SEG is the source map, voxel for voxel, on the written grid.
    v0 = next(p for p in label_files if "-v0/" in p.as_posix() and pydicom.dcmread(p).Modality == "SEG")
    assert np.array_equal(label_maps(v0, labelled.geometry).data, labelled.seg_maps)
    # The SEG's record holds each written series' per-segment voxel counts over the source's, in
    # variant order: the written files' own counts.
    (seg_record,) = [r for r in records if r["type"] == "label" and r["kind"] == "SEG"]
    seg_files = {r["variant"]: out / r["path"] for r in records if r["type"] == "output"
                 and layout.label_number(r["path"]) is not None and pydicom.dcmread(out / r["path"]).Modality == "SEG"}
    assert sorted(seg_files) == list(range(variants)) and len(seg_record["ratios"]) == variants
    source_counts = labelled.seg_maps.reshape(2, -1).sum(axis=1)
    for v, row in enumerate(seg_record["ratios"]):
        counts = label_maps(seg_files[v], labelled.geometry).data.reshape(2, -1).sum(axis=1)
        assert row == pytest.approx(list(counts / source_counts), rel=1e-12), v
    # The labelled volume spans more than one 40 mm control interval on every axis, so the bundled
    # policy's elastic grid has free points there: with a rotation, some variant changes a segment's
    # voxel count whatever the run key (fixtures/labels.py SHAPE).
    assert seg_record["ratios"][0] == [1.0, 1.0] and any(r != [1.0, 1.0] for r in seg_record["ratios"][1:])
    for path in label_files:
        assert not dciodvfy_kinds(path) - dciodvfy_kinds(labelled.seg_path if pydicom.dcmread(path).Modality == "SEG"
                                                          else labelled.rtstruct_path)


def test_deid_engine_leaves_no_segment_text(labelled: Labelled) -> None:
    """PS3.15's table does not list Segment Label or Description; the engine treats them as the
    table treats ROI Name and Description, so a SEG de-identified on its own keeps no name."""
    from medaug.deid.engine import deidentify
    from medaug.deid.keys import Key
    from medaug.deid.options import DeidOptions

    out, _ = deidentify(pydicom.dcmread(labelled.seg_path), DeidOptions(), Key(b"k" * 32))
    assert [item.SegmentLabel for item in out.SegmentSequence] == ["ANONYMIZED", "ANONYMIZED"]
    assert not any("SegmentDescription" in item for item in out.SegmentSequence)


@pytest.mark.parametrize("variant", range(6))
def test_segment_volume_change_stays_within_the_jacobian_bounds(variant: int) -> None:
    """Output voxel x takes the label at its source point φ(x), so a segment's volume changes by
    1 / (mean of det ∂φ/∂x over where it lands): between 1/max_jacobian and 1/min_jacobian of the
    variant. Fractional segments (linear) meet the local prediction within 1 %; binary ones
    (nearest neighbour) within 5 %, what counting a 12 mm ball's boundary voxels allows."""
    from medaug.augment.labels import voxel_ratios
    from medaug.ingest.labels import LabelVolume, Segment

    n = 40
    g = Geometry.axial((n, n, n), spacing=(2.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0))
    k, j, i = np.mgrid[:n, :n, :n].astype(np.float32)
    r = np.sqrt(((k - 19.5) * 2.0) ** 2 + (j - 19.5) ** 2 + (i - 19.5) ** 2)  # mm from the centre
    binary = LabelVolume((r <= 12.0).astype(np.uint8)[None], (Segment(1, "", "", "MANUAL"),))
    smooth = np.clip((14.0 - r) / 4.0, 0.0, 1.0).astype(np.float32)[None]
    fractional = LabelVolume(smooth, (Segment(1, "", "", "MANUAL", fractional=True),))
    spec = AugmentSpec(rotation=RotationSpec(10.0, 5.0), elastic=ElasticSpec(control_spacing_mm=10.0, max_displacement_mm=3.9))
    p = sample_variant(variant_rng(5, "jacobian", variant), spec, g, modality="MR")
    # φ itself, from the image path: linear interpolation of each index is exact (a linear function).
    phi = [apply_variant(c, g, p, modality="MR", fill=0.0) for c in (k, j, i)]
    jmin, jmax = phi[0].min_jacobian, phi[0].max_jacobian
    assert jmax - jmin > 0.3  # deformed enough for the bound to say something
    gradient = np.stack([np.stack(np.gradient(c.data.astype(np.float64)), axis=-1) for c in phi], axis=-2)
    det = np.linalg.det(gradient)  # det ∂φ/∂x at every output voxel

    warped_b = warp_label_volume(binary, g, p)
    (ratio_b,) = voxel_ratios(binary, warped_b)
    inside = warped_b.data[0].astype(bool)
    assert (1.0 / jmax) * 0.95 <= ratio_b <= (1.0 / jmin) * 1.05
    assert ratio_b == pytest.approx(1.0 / det[inside].mean(), rel=0.05)

    warped_f = warp_label_volume(fractional, g, p)
    (ratio_f,) = voxel_ratios(fractional, warped_f)
    weights = warped_f.data[0].astype(np.float64)
    assert (1.0 / jmax) * 0.99 <= ratio_f <= (1.0 / jmin) * 1.01
    assert ratio_f == pytest.approx(weights.sum() / (weights * det).sum(), rel=0.01)


def _fractional_source(lab: Labelled, path: Path) -> tuple[Path, np.ndarray]:
    """A FRACTIONAL (probability) SEG of ``lab``'s series, made with highdicom: a soft-edged copy of its map."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from medaug.write.labels import fix_clock_and_random

    soft = np.clip(lab.seg_maps.astype(np.float32) * 0.75 + 0.125 * np.roll(lab.seg_maps, 1, axis=3), 0.0, 1.0)
    descriptions = [
        hd.seg.SegmentDescription(segment_number=n + 1, segment_label=f"s{n + 1}", segmented_property_category=codes.SCT.Tissue,
                                  segmented_property_type=codes.SCT.Tissue,
                                  algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                                  algorithm_identification=hd.AlgorithmIdentificationSequence(
                                      name="fixture", version="1", family=codes.cid7162.ArtificialIntelligence))
        for n in range(2)
    ]
    seg = hd.seg.Segmentation(
        source_images=_sources(lab), pixel_array=np.moveaxis(soft, 0, -1),
        segmentation_type=hd.seg.SegmentationTypeValues.FRACTIONAL,
        fractional_type=hd.seg.SegmentationFractionalTypeValues.PROBABILITY, max_fractional_value=255,
        segment_descriptions=descriptions, series_instance_uid="1.2.826.0.1.3680043.10.1161.9.7", series_number=300,
        sop_instance_uid="1.2.826.0.1.3680043.10.1161.9.8", instance_number=1, manufacturer="fixture",
        manufacturer_model_name="fixture", software_versions="0", device_serial_number="0",
        content_date=WHEN.date(), content_time=WHEN.time(), omit_empty_frames=False,
    )
    fix_clock_and_random(seg, content_datetime=WHEN, sop_uid="1.2.826.0.1.3680043.10.1161.9.8")
    seg.save_as(path, enforce_file_format=True)
    return path, soft


def test_fractional_seg_is_read_warped_linearly_and_written_fractional(labelled: Labelled, tmp_path: Path) -> None:
    g = labelled.geometry
    source, soft = _fractional_source(labelled, tmp_path / "frac.dcm")
    vol = label_maps(source, g, instance_uids=labelled.instance_uids)
    assert all(vol.fractional) and vol.data.dtype == np.float32
    assert np.allclose(vol.data, soft, atol=0.5 / 255)  # stored in 1/255 steps
    p = sample_variant(variant_rng(3, "labels", 2), SPEC, g, modality="CT")
    warped = warp_label_volume(vol, g, p)
    out = _seg(labelled, warped, tmp_path / "out.dcm")
    ds = pydicom.dcmread(out)
    assert ds.SegmentationType == "FRACTIONAL" and ds.SegmentationFractionalType == "PROBABILITY"
    back = label_maps(out, g)
    assert all(back.fractional) and np.allclose(back.data, warped.data, atol=0.5 / 255)
    assert len(np.unique(back.data)) > 3  # fractions, not a binary map
    # Under a zero transform the fractions come back as they were stored.
    same = label_maps(_seg(labelled, warp_label_volume(vol, g, VariantParams()), tmp_path / "v0.dcm"), g)
    assert np.array_equal(same.data, vol.data)


def test_fractional_seg_written_has_no_dciodvfy_error_its_source_lacks(labelled: Labelled, tmp_path: Path) -> None:
    external("dciodvfy")
    source, _ = _fractional_source(labelled, tmp_path / "frac.dcm")
    vol = label_maps(source, labelled.geometry)
    out = _seg(labelled, vol, tmp_path / "out.dcm")
    assert dciodvfy_kinds(out) <= dciodvfy_kinds(source)
