"""``medaug export`` of a labelled dataset: label maps beside the volumes, in every layout.

The dataset is ``medaug run`` over fixtures/labels.py's labelled CT (an RTSTRUCT,
label object 1, whose ROIs overlap; a SEG, label object 2, whose segments do
not) and an unlabelled CT, both with planted identifiers. Each exported SEG map
is compared, voxel for voxel, with the dataset's SEG read independently by
highdicom: every NIfTI voxel centre is taken through the NIfTI affine to
patient space and through highdicom's own volume affine to a SEG voxel.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from fixtures.labels import PLANTED_DESCRIPTIONS, PLANTED_LABELS, Labelled, write_labelled_ct, write_unlabelled_ct
from medaug.cli import main
from medaug.export.labels import label_set, pack_layers
from medaug.export.manifest import MANIFEST_NAME, ExportedFile, ExportManifest
from tests.dataset_helpers import assert_nothing_planted, tree

nib = pytest.importorskip("nibabel")

REPO = Path(__file__).resolve().parents[1]
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
RTSTRUCT, SEG = 1, 2  # label object numbers: the archive's files in byte order (ct_rtstruct < ct_seg)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Labelled]:
    """(archive, dataset, what the labelled series holds)."""
    root = tmp_path_factory.mktemp("labelled-export")
    arc = root / "arc"
    truth = write_labelled_ct(arc / "labelled", disjoint=True)
    write_unlabelled_ct(arc / "unlabelled")
    key = root / "k.key"
    assert main(["keygen", str(key)]) == 0
    policy = root / "p.yaml"
    policy.write_text((REPO / "policies" / "ct-chest-conservative.yaml").read_text())
    assert main(["policy", "approve", str(policy), "--by", "A. Steward"]) == 0
    out = root / "out"
    assert main(["run", str(policy), str(arc), str(out), "--key", str(key), "--workers", "1"]) == 0
    return arc, out, truth


@pytest.fixture(scope="module")
def exports(labelled: tuple[Path, Path, Labelled], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    _, out, _ = labelled
    root = tmp_path_factory.mktemp("label-exports")
    runs = {
        "nifti": ["--format", "nifti"],
        "monai": ["--format", "monai", "--label", str(SEG)],
        "nnunet": ["--format", "nnunet", "--label", str(SEG), "--dataset-id", "12", "--name", "labelled"],
        "nnunet-rt": ["--format", "nnunet", "--label", str(RTSTRUCT)],
    }
    for name, args in runs.items():
        assert main(["export", str(out), *args, "-o", str(root / name)]) == 0, name
    return {name: root / name for name in runs}


def _manifest(exportdir: Path) -> ExportManifest:
    return ExportManifest.from_json(json.loads((exportdir / MANIFEST_NAME).read_text()))


def _labels(exportdir: Path) -> list[ExportedFile]:
    return [f for f in _manifest(exportdir).files if f.label is not None]


def _image_of(exportdir: Path, label: ExportedFile) -> Path:
    return next(exportdir / f.path for f in _manifest(exportdir).files if f.series == label.series and f.label is None)


def _masks(img: Any, values: dict[str, int]) -> dict[int, np.ndarray]:
    """Segment number -> its (i, j, k) mask, gathered over the map's layers."""
    data = np.asarray(img.dataobj)
    if data.ndim == 3:
        data = data[..., None]
    return {int(name.split()[-1]): (data == v).any(axis=3) for name, v in values.items()}


def _seg_on_nifti_grid(seg_path: Path, img: Any) -> dict[int, np.ndarray]:
    """highdicom's reading of a SEG, sampled at the NIfTI's voxel centres through both affines."""
    import highdicom as hd

    volume = hd.seg.segread(seg_path).get_volume(combine_segments=False)
    shape = img.shape[:3]
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).reshape(-1, 3)
    world_lps = nib.affines.apply_affine(RAS_TO_LPS @ img.affine, ijk)
    index = nib.affines.apply_affine(np.linalg.inv(volume.affine), world_lps)
    rounded = np.rint(index).astype(int)
    np.testing.assert_allclose(index, rounded, atol=1e-4, err_msg="a NIfTI voxel centre is off the SEG's grid")
    assert ((rounded >= 0) & (rounded < np.array(volume.array.shape[:3]))).all(), "a NIfTI voxel lies outside the SEG"
    sampled = volume.array[rounded[:, 0], rounded[:, 1], rounded[:, 2], :]
    numbers = [int(item.SegmentNumber) for item in pydicom.dcmread(seg_path, stop_before_pixels=True).SegmentSequence]
    return {n: sampled[:, s].reshape(shape).astype(bool) for s, n in enumerate(numbers)}


@pytest.mark.parametrize("fmt", ["nifti", "monai", "nnunet"])
def test_each_exported_seg_map_equals_the_seg_written_for_its_variant(
    fmt: str, labelled: tuple[Path, Path, Labelled], exports: dict[str, Path]
) -> None:
    _, out, _ = labelled
    exportdir = exports[fmt]
    variants = set()
    for entry in _labels(exportdir):
        if entry.label is None or entry.label.kind != "SEG":
            continue
        assert entry.series is not None
        img = nib.load(exportdir / entry.path)
        image = nib.load(_image_of(exportdir, entry))
        np.testing.assert_array_equal(img.affine, image.affine)  # the same affine, bit for bit
        assert img.shape[:3] == image.shape
        assert int(img.header["qform_code"]) == int(img.header["sform_code"]) == 1
        assert np.issubdtype(img.get_data_dtype(), np.unsignedinteger)
        assert int(img.header["intent_code"]) == 1002  # NIFTI_INTENT_LABEL
        ours = _masks(img, dict(entry.label.values))
        theirs = _seg_on_nifti_grid(out / entry.series / f"label-{entry.label.object}.dcm", img)
        assert set(ours) == set(theirs) == {1, 2}
        for number in theirs:
            assert theirs[number].any()
            np.testing.assert_array_equal(ours[number], theirs[number], err_msg=f"{entry.path} segment {number}")
        values = np.unique(np.asarray(img.dataobj))
        assert set(values.tolist()) <= {0, *entry.label.values.values()}
        variants.add(entry.series.rsplit("-v", 1)[1])
    assert variants == {"0", "1", "2"}


def test_rtstruct_maps_keep_overlapping_rois_as_layers(labelled: tuple[Path, Path, Labelled], exports: dict[str, Path]) -> None:
    _, _, truth = labelled
    entries = [e for e in _labels(exports["nifti"]) if e.label is not None and e.label.kind == "RTSTRUCT"]
    assert len(entries) == 3
    for entry in entries:
        assert entry.label is not None and entry.label.object == RTSTRUCT
        img = nib.load(exports["nifti"] / entry.path)
        np.testing.assert_array_equal(img.affine, nib.load(_image_of(exports["nifti"], entry)).affine)
        assert img.ndim == 4 and img.shape[3] == entry.label.layers == 2  # the ROIs overlap: two layers
        data = np.asarray(img.dataobj)
        masks = _masks(img, dict(entry.label.values))
        assert (masks[1] & masks[2]).any()  # overlap kept, not painted over
        assert sum(int(m.sum()) for m in masks.values()) == int((data > 0).sum())  # every voxel of a ROI once
        if entry.series is not None and entry.series.endswith("-v0"):
            for number, mask in masks.items():
                expected = truth.rt_maps[number - 1].transpose(2, 1, 0).astype(bool)  # (k, j, i) -> (i, j, k)
                dice = 2 * (mask & expected).sum() / (mask.sum() + expected.sum())
                assert dice >= 0.98, f"ROI {number}: Dice {dice:.3f}"


def test_nnunet_dataset_json_rules(exports: dict[str, Path]) -> None:
    root = exports["nnunet"] / "Dataset012_labelled"
    meta = json.loads((root / "dataset.json").read_text())
    images = sorted(p.name for p in (root / "imagesTr").iterdir())
    labels = sorted(p.name for p in (root / "labelsTr").iterdir())
    assert images and meta["numTraining"] == len(images) == len(labels)
    assert [n.replace("_0000.nii.gz", ".nii.gz") for n in images] == labels  # every image has its label
    assert meta["labels"] == {"background": 0, "Segment 1": 1, "Segment 2": 2}
    assert sorted(meta["labels"].values()) == list(range(len(meta["labels"])))  # consecutive from 0
    assert meta["channel_names"] == {"0": "CT"} and meta["file_ending"] == ".nii.gz"
    for name in labels:
        img = nib.load(root / "labelsTr" / name)
        assert img.ndim == 3
        assert set(np.unique(np.asarray(img.dataobj)).tolist()) <= set(meta["labels"].values())
        np.testing.assert_array_equal(img.affine, nib.load(root / "imagesTr" / name.replace(".nii", "_0000.nii")).affine)
    # the unlabelled series (original and two variants) are left out, each with its reason
    skipped = _manifest(exports["nnunet"]).skipped
    assert [s.reason for s in skipped] == ["no-label"] * 3 and all(s.label is None for s in skipped)


def test_nnunet_takes_no_case_whose_segments_overlap(exports: dict[str, Path]) -> None:
    m = _manifest(exports["nnunet-rt"])
    assert sorted(s.reason for s in m.skipped) == ["no-label"] * 3 + ["overlapping-segments"] * 3
    root = exports["nnunet-rt"] / "Dataset001_medaug"
    assert not (root / "imagesTr").exists() and not (root / "labelsTr").exists()
    assert json.loads((root / "dataset.json").read_text())["numTraining"] == 0


def test_monai_datalist_has_a_label_per_training_item(exports: dict[str, Path]) -> None:
    root = exports["monai"]
    listing = root / "datalist.json"
    data = json.loads(listing.read_text())
    assert set(data) == {"training", "unlabelled"}
    assert len(data["training"]) == len(data["unlabelled"]) == 3
    for item in data["training"]:
        assert set(item) == {"image", "label"}
        assert (root / item["image"]).is_file() and (root / item["label"]).is_file()
        np.testing.assert_array_equal(nib.load(root / item["image"]).affine, nib.load(root / item["label"]).affine)
    assert all(set(item) == {"image"} and (root / item["image"]).is_file() for item in data["unlabelled"])
    try:
        from monai.data import load_decathlon_datalist
    except ImportError:  # MONAI (with PyTorch) is not in the test environment: the schema is checked above
        return
    loaded = load_decathlon_datalist(str(listing), is_segmentation=True, data_list_key="training", base_dir=str(root))
    assert all(Path(entry["label"]).is_file() for entry in loaded)


def test_plain_export_lists_every_label_object(labelled: tuple[Path, Path, Labelled], exports: dict[str, Path]) -> None:
    _, out, _ = labelled
    entries = _labels(exports["nifti"])
    on_disk = sorted(p.relative_to(out).as_posix() for p in (out / "dicom").rglob("label-*.dcm"))
    listed = sorted(f"{e.series}/label-{e.label.object}.dcm" for e in entries if e.label is not None)
    assert listed == on_disk and len(listed) == 6
    assert {e.label.kind for e in entries if e.label is not None} == {"SEG", "RTSTRUCT"}
    assert not _manifest(exports["nifti"]).skipped


def test_no_planted_identifier_reaches_the_export(labelled: tuple[Path, Path, Labelled], exports: dict[str, Path]) -> None:
    arc, _, _ = labelled
    planted = {*PLANTED_LABELS, *PLANTED_DESCRIPTIONS, "LABELLED", "QUINTESSA", "LBL001"}
    for part in (*PLANTED_LABELS, *PLANTED_DESCRIPTIONS):
        planted.update(w for w in part.split() if len(w) > 4 and w.isupper())  # KORVALD, HALVORSEN, ESKELUND
    for path in arc.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        planted.update(str(ds[k].value) for k in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID") if k in ds)
        if "FrameOfReferenceUID" in ds:
            planted.add(str(ds.FrameOfReferenceUID))
    planted.add("20200102")  # the study date
    for exportdir in exports.values():
        assert_nothing_planted(exportdir, planted)


def test_verify_covers_label_maps(labelled: tuple[Path, Path, Labelled], exports: dict[str, Path], tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = labelled
    for exportdir in exports.values():
        assert main(["audit", "verify", str(exportdir), "--against", str(out)]) == 0
    copy = tmp_path / "copy"
    shutil.copytree(exports["nifti"], copy)
    label = copy / _labels(copy)[0].path
    raw = bytearray(label.read_bytes())
    raw[-12] ^= 0x01
    label.write_bytes(bytes(raw))
    capsys.readouterr()
    assert main(["audit", "verify", str(copy), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["checks"]["files"] == "fail" and report["problems"][0]["path"] == label.relative_to(copy).as_posix()
    # a manifest whose label map has lost its volume does not verify either
    other = tmp_path / "other"
    shutil.copytree(exports["nifti"], other)
    body = json.loads((other / MANIFEST_NAME).read_text())
    first = next(f for f in body["files"] if f["label"] is not None)
    image = next(f for f in body["files"] if f["label"] is None and f["series"] == first["series"])
    body["files"].remove(image)
    (other / image["path"]).unlink()
    (other / MANIFEST_NAME).write_text(json.dumps(body))
    assert main(["audit", "verify", str(other), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["checks"]["manifest"] == "fail"


def test_label_export_is_deterministic(labelled: tuple[Path, Path, Labelled], exports: dict[str, Path], tmp_path: Path) -> None:
    _, out, _ = labelled
    assert main(["export", str(out), "--format", "nifti", "-o", str(tmp_path / "again")]) == 0
    assert tree(tmp_path / "again") == tree(exports["nifti"])


# -- the layer packing, on arbitrary masks -----------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    masks=st.integers(1, 4).flatmap(
        lambda n: st.lists(st.lists(st.booleans(), min_size=6, max_size=6), min_size=n, max_size=n)
    ),
    numbers=st.lists(st.integers(1, 300), min_size=4, max_size=4, unique=True),
)
def test_layers_keep_every_segment_voxel_once_and_never_overlap(masks: list[list[bool]], numbers: list[int]) -> None:
    maps = np.asarray(masks, dtype=np.uint8).reshape(len(masks), 1, 2, 3)
    labels = label_set(numbers[: len(masks)])
    values = [labels.value(n) for n in numbers[: len(masks)]]
    layers = pack_layers(maps, values)
    assert layers.dtype == np.uint8 and layers.shape[1:] == maps.shape[1:]
    for s, v in enumerate(values):
        placed = layers == v
        np.testing.assert_array_equal(placed.any(axis=0), maps[s].astype(bool))  # each voxel of it, somewhere
        assert sum(1 for layer in placed if layer.any()) <= 1  # all in one layer
    overlapping = (maps.sum(axis=0) > 1).any()
    assert (len(layers) > 1) == bool(overlapping)
    assert sorted(labels.names().values()) == list(range(1, len(set(numbers[: len(masks)])) + 1))


def test_a_label_number_outside_the_range_is_refused(labelled: tuple[Path, Path, Labelled], tmp_path: Path) -> None:
    _, out, _ = labelled
    assert main(["export", str(out), "--format", "monai", "--label", "-1", "-o", str(tmp_path / "m")]) == 2
    assert not (tmp_path / "m").exists()


def test_label_zero_exports_the_images_only(labelled: tuple[Path, Path, Labelled], tmp_path: Path) -> None:
    _, out, _ = labelled
    assert main(["export", str(out), "--format", "nnunet", "--label", "0", "-o", str(tmp_path / "n")]) == 0
    root = next((tmp_path / "n").glob("Dataset*"))
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0} and not (root / "labelsTr").exists()
    assert meta["numTraining"] == len(list((root / "imagesTr").iterdir())) > 0
