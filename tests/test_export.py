"""``medaug export``: NIfTI volumes in nnU-Net v2, MONAI and plain layouts, and their verification.

The geometry and values of every exported CT and MR volume are compared with an
independent reader: dcm2niix converts the same output series folder, and both
volumes, reoriented to the closest canonical (RAS+) axis order, must put every
voxel centre at the same world position (within 0.01 mm) and hold equal values.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from medaug.audit.verify import verify_dataset
from medaug.cli import main
from medaug.dataset import layout
from medaug.export.manifest import MANIFEST_NAME, ExportManifest
from tests.conftest import external
from tests.dataset_helpers import assert_nothing_planted

nib = pytest.importorskip("nibabel")

REPO = Path(__file__).resolve().parents[1]
POLICY = REPO / "policies" / "ct-chest-conservative.yaml"
MR_POLICY = REPO / "policies" / "mr-brain.yaml"
FORMATS = ("nnunet", "monai", "nifti")


@pytest.fixture(scope="module")
def dataset(archive: Path, keyfile: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export-run") / "out"
    code = main(["run", str(POLICY), str(archive), str(out), "--key", str(keyfile), "--workers", "1"])
    assert code in (0, 3)
    assert verify_dataset(out).ok
    return out


@pytest.fixture(scope="module")
def exports(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exports")
    done = {}
    for fmt in FORMATS:
        target = root / fmt
        # The images only (--label 0): the fixture's label objects have overlapping segments, which
        # nnU-Net cannot take (tests/test_export_labels.py covers the labelled layouts).
        extra = ["--dataset-id", "7", "--name", "chest", "--label", "0"] if fmt == "nnunet" else []
        assert main(["export", str(dataset), "--format", fmt, "-o", str(target), *extra]) == 0
        done[fmt] = target
    return done


@pytest.fixture(scope="module")
def mr_export(archive: Path, keyfile: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A dataset of the MR policy and its plain export: MR volumes compared with dcm2niix as well."""
    root = tmp_path_factory.mktemp("export-mr")
    code = main(["run", str(MR_POLICY), str(archive), str(root / "out"), "--key", str(keyfile), "--workers", "1"])
    assert code in (0, 3)
    assert main(["export", str(root / "out"), "--format", "nifti", "-o", str(root / "nifti")]) == 0
    return root / "out", root / "nifti"


def _manifest(exportdir: Path) -> ExportManifest:
    return ExportManifest.from_json(json.loads((exportdir / MANIFEST_NAME).read_text()))


def _volumes(exportdir: Path) -> list[tuple[Path, str]]:
    """Every exported image volume (label maps left out) and the dataset series folder it came from."""
    return [(exportdir / f.path, f.series) for f in _manifest(exportdir).files if f.series is not None and f.label is None]


def _series_folders(dataset: Path) -> set[str]:
    return {layout.series_folder_of(p.relative_to(dataset).as_posix())
            for p in (dataset / layout.LAYOUT.images).rglob("*") if p.is_file()}


def test_every_series_is_exported_or_skipped_with_a_reason(dataset: Path, exports: dict[str, Path]) -> None:
    folders = _series_folders(dataset)
    assert folders
    head = json.loads(layout.manifest_path(dataset).read_text())["log"]["head"]
    for fmt, exportdir in exports.items():
        m = _manifest(exportdir)
        exported = {s for _, s in _volumes(exportdir)}
        skipped = {s.series for s in m.skipped}
        assert exported, fmt
        assert exported | skipped == folders and not exported & skipped, fmt
        reasons = {s.reason for s in m.skipped}
        assert reasons <= {"gantry-tilt", "uneven-spacing", "colour", "not-one-volume"}
        # the fixture archive holds a gantry-tilted CT and CT stacks with missing or irregular slices
        assert {"gantry-tilt", "uneven-spacing"} <= reasons, fmt
        assert m.layout == fmt and m.source.log_head == head
    assert verify_dataset(dataset).ok, "exporting changed the dataset"


def test_variants_are_exported(exports: dict[str, Path]) -> None:
    names = [p.name for p, _ in _volumes(exports["nifti"])]
    assert any("_v0." in n for n in names) and any("_v1." in n for n in names)


def _dcm2niix(series: Path, outdir: Path) -> list[Path]:
    tool = external("dcm2niix")
    outdir.mkdir(parents=True)
    # The series' images only: its label objects (label-<n>.dcm) are other series to dcm2niix.
    images = outdir.parent / (outdir.name + "-images")
    images.mkdir()
    for path in sorted(series.iterdir()):
        if layout.label_number(path.name) is None:
            (images / path.name).symlink_to(path)
    proc = subprocess.run([tool, "-z", "n", "-b", "n", "-f", "%s", "-o", str(outdir), str(images)],
                          capture_output=True, text=True, errors="replace", check=False)
    assert proc.returncode == 0, f"dcm2niix exit status {proc.returncode}"
    return sorted(outdir.glob("*.nii"))


def _centres(img: Any) -> tuple[np.ndarray, np.ndarray]:
    """World (RAS) positions of the corner voxels' centres, and the data, in canonical axis order."""
    canon = nib.as_closest_canonical(img)
    shape = canon.shape[:3]
    corners = np.array([[i, j, k] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1) for k in (0, shape[2] - 1)],
                       dtype=np.float64)
    world = nib.affines.apply_affine(canon.affine, corners)
    return world, canon.get_fdata()


def _assert_same_values(ours: np.ndarray, theirs: np.ndarray, header: Any, number: int) -> None:
    """Voxel values are equal, allowing dcm2niix's known wrap of negative signed values with Bits Stored < 16.

    dcm2niix before v1.0.20230411 masks signed 12-bit data to its low 12 bits, so a
    negative stored value comes out 2**BitsStored too high (rordenlab/dcm2niix#688,
    fixed in PR #687). medaug sign-extends as PS3.5 8.1.1 says. Only voxels whose
    stored value is negative may differ, and only by exactly that amount.
    """
    bits = int(header.get("BitsStored", 16))
    signed = int(header.get("PixelRepresentation", 0)) == 1
    slope = float(header.get("RescaleSlope", 1.0))
    intercept = float(header.get("RescaleIntercept", 0.0))
    differ = ours != theirs
    if signed and bits < 16 and differ.any():
        negative = (ours - intercept) / slope < 0
        assert not (differ & ~negative).any(), f"exported volume {number}: values differ at non-negative stored values"
        np.testing.assert_array_equal(theirs[differ], ours[differ] + slope * 2**bits,
                                      err_msg=f"exported volume {number}: not dcm2niix's 12-bit wrap")
        return
    np.testing.assert_array_equal(ours, theirs, err_msg=f"exported volume {number}")


@pytest.mark.external
@pytest.mark.parametrize("policy", ["ct", "mr"])
def test_ct_and_mr_volumes_match_dcm2niix(
    policy: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if policy == "ct":
        dataset, exportdir = request.getfixturevalue("dataset"), request.getfixturevalue("exports")["nifti"]
    else:
        dataset, exportdir = request.getfixturevalue("mr_export")
    compared = 0
    modalities = set()
    for number, (volume, series) in enumerate(_volumes(exportdir)):
        folder = dataset / series
        first = sorted(folder.glob("*.dcm"))[0]
        modality = str(pydicom.dcmread(first, stop_before_pixels=True).Modality)
        if modality not in ("CT", "MR"):
            continue
        modalities.add(modality)
        theirs = _dcm2niix(folder, tmp_path / f"n{number}")
        assert len(theirs) == 1, f"dcm2niix made {len(theirs)} volumes of exported volume {number}"
        ours_img, their_img = nib.load(volume), nib.load(theirs[0])
        assert int(ours_img.header["qform_code"]) == 1 and int(ours_img.header["sform_code"]) == 1
        np.testing.assert_allclose(ours_img.get_qform(), ours_img.get_sform(), atol=0, rtol=0)
        ours_world, ours_data = _centres(ours_img)
        their_world, their_data = _centres(their_img)
        assert ours_data.shape == their_data.shape, f"exported volume {number}"
        np.testing.assert_allclose(ours_world, their_world, atol=0.01, rtol=0, err_msg=f"exported volume {number}")
        _assert_same_values(ours_data, their_data, pydicom.dcmread(first, stop_before_pixels=True), number)
        compared += 1
    assert compared and modalities == {policy.upper()}


def test_ct_is_int16_and_header_text_is_empty(exports: dict[str, Path]) -> None:
    for volume, _ in _volumes(exports["nifti"]):
        header = nib.load(volume).header
        for name in ("descrip", "aux_file", "intent_name", "db_name"):
            assert bytes(header[name].item()).strip(b"\0") == b"", name
    dtypes = {nib.load(v).get_data_dtype() for v, _ in _volumes(exports["nifti"])}
    assert np.dtype(np.int16) in dtypes


def test_nnunet_rules(exports: dict[str, Path]) -> None:
    root = exports["nnunet"] / "Dataset007_chest"
    meta = json.loads((root / "dataset.json").read_text())
    images = sorted((root / "imagesTr").iterdir())
    assert images and all(p.name.endswith("_0000.nii.gz") for p in images)
    assert meta["numTraining"] == len(images)
    assert meta["file_ending"] == ".nii.gz"
    assert sorted(meta["labels"].values()) == list(range(len(meta["labels"]))) and meta["labels"]["background"] == 0
    assert sorted(meta["channel_names"]) == [str(n) for n in range(len(meta["channel_names"]))]
    assert set(meta["channel_names"].values()) <= {"CT", "MR"}
    assert not (root / "labelsTr").exists()
    assert sorted(p.name for p in root.iterdir()) == ["dataset.json", "imagesTr"]


def test_monai_datalist(exports: dict[str, Path]) -> None:
    """The datalist follows the Decathlon schema ``monai.data.load_decathlon_datalist`` reads.

    MONAI itself is checked when it is installed (it pulls in PyTorch, so the test
    environment does not have it): ``{"training": [{"image": <path relative to the
    datalist's folder>}, ...]}``.
    """
    root = exports["monai"]
    listing = root / "datalist.json"
    data = json.loads(listing.read_text())
    # Series with the label object (tests/test_export_labels.py checks those) train on it; the rest
    # are listed apart, so that no training item lacks a label.
    assert set(data) <= {"training", "unlabelled"} and data["training"]
    for item in data["training"] + data.get("unlabelled", []):
        assert set(item) in ({"image"}, {"image", "label"})
        for path in item.values():
            assert not Path(path).is_absolute() and (root / path).is_file()
    assert len(data["training"]) + len(data.get("unlabelled", [])) == len(_volumes(root))
    try:
        from monai.data import load_decathlon_datalist
    except ImportError:
        return
    loaded = load_decathlon_datalist(str(listing), is_segmentation=False, data_list_key="training", base_dir=str(root))
    assert all(Path(entry["image"]).is_file() for entry in loaded)


def test_no_planted_identifier_in_any_exported_file(exports: dict[str, Path], manifest: dict[str, Any]) -> None:
    planted = {str(p["value"]) for p in manifest["planted"] if p["kind"] != "path" and "DICOMDIR" not in p["where"]}
    for exportdir in exports.values():
        assert_nothing_planted(exportdir, planted)


def test_verify_export_passes_and_catches_a_changed_byte(
    dataset: Path, exports: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for exportdir in exports.values():
        assert main(["audit", "verify", str(exportdir), "--against", str(dataset)]) == 0
    copy = tmp_path / "copy"
    shutil.copytree(exports["nnunet"], copy)
    volume = sorted(copy.rglob("*.nii.gz"))[0]
    raw = bytearray(volume.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    volume.write_bytes(bytes(raw))
    capsys.readouterr()
    assert main(["audit", "verify", str(copy), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["checks"]["files"] == "fail"
    assert report["problems"][0]["path"] == volume.relative_to(copy).as_posix()


def test_verify_export_catches_an_unlisted_file_and_another_dataset(exports: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(exports["nifti"], copy)
    (copy / "images" / "extra.nii.gz").write_bytes(b"x")
    assert main(["audit", "verify", str(copy)]) == 1
    (copy / "images" / "extra.nii.gz").unlink()
    assert main(["audit", "verify", str(copy)]) == 0
    other = tmp_path / "other"
    (other / "audit").mkdir(parents=True)
    (other / layout.LAYOUT.log).write_text('{"seq":1}\n')
    assert main(["audit", "verify", str(copy), "--against", str(other)]) == 1


def test_export_refuses_a_non_empty_folder_and_an_unverified_dataset(dataset: Path, tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "a").write_text("x")
    assert main(["export", str(dataset), "--format", "nifti", "-o", str(busy)]) == 2
    broken = tmp_path / "broken"
    shutil.copytree(dataset, broken)
    target = sorted((broken / layout.LAYOUT.images).rglob("*.dcm"))[0]
    target.write_bytes(target.read_bytes() + b"\0")
    assert main(["export", str(broken), "--format", "nifti", "-o", str(tmp_path / "new")]) == 2
    assert not (tmp_path / "new").exists()
    assert main(["export", str(dataset), "--format", "nnunet", "--dataset-id", "0", "-o", str(tmp_path / "n")]) == 2


def test_export_without_nibabel_names_the_extra(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "nibabel", None)
    assert main(["export", str(dataset), "--format", "nifti", "-o", str(tmp_path / "x")]) == 2
    assert "pip install 'medaug[nifti]'" in capsys.readouterr().err


# -- one volume, from synthetic series built in code ---------------------------------------


@pytest.mark.external
@pytest.mark.parametrize("kind", ["ct", "mr", "enhanced-ct"])
def test_one_volume_matches_dcm2niix(kind: str, tmp_path: Path) -> None:
    """MR (12 bits stored, sagittal, anisotropic) and oblique Enhanced CT as well as CT."""
    from medaug.export.nifti import nifti_bytes
    from tests.write_helpers import BUILDERS, load_one

    source = BUILDERS[kind](tmp_path / "src", np.random.default_rng(3))
    image = load_one(source.directory)
    ours_path = tmp_path / "ours.nii.gz"
    ours_path.write_bytes(nifti_bytes(image))
    theirs = _dcm2niix(source.directory, tmp_path / "nii")
    assert len(theirs) == 1
    ours_world, ours_data = _centres(nib.load(ours_path))
    their_world, their_data = _centres(nib.load(theirs[0]))
    assert ours_data.shape == their_data.shape
    np.testing.assert_allclose(ours_world, their_world, atol=0.01, rtol=0)
    first = source.files[0]
    _assert_same_values(ours_data, their_data, pydicom.dcmread(first, stop_before_pixels=True), 0)


def test_a_radiograph_is_a_one_slice_volume_and_colour_is_skipped(tmp_path: Path) -> None:
    from medaug.export.nifti import nifti_bytes, skip_reason
    from tests.write_helpers import BUILDERS, load_one

    dx = load_one(BUILDERS["dx"](tmp_path / "dx", np.random.default_rng(1)).directory)
    path = tmp_path / "dx.nii.gz"
    path.write_bytes(nifti_bytes(dx))
    img = nib.load(path)
    k, j, i = dx.geometry.shape
    assert k == 1 and img.shape == (i, j, 1)
    np.testing.assert_array_equal(np.asarray(img.dataobj)[:, :, 0], np.asarray(dx.data)[0].T.astype(np.float32))
    us = load_one(BUILDERS["us"](tmp_path / "us", np.random.default_rng(1)).directory)
    assert skip_reason(us) == "colour"


def test_tilted_and_uneven_series_are_skipped_and_output_is_deterministic(tmp_path: Path) -> None:
    import dataclasses

    from medaug.export.nifti import nifti_bytes, skip_reason
    from medaug.geometry import Geometry
    from tests.write_helpers import BUILDERS, load_one

    ct = load_one(BUILDERS["ct"](tmp_path / "ct", np.random.default_rng(2)).directory)
    assert skip_reason(ct) is None
    assert nifti_bytes(ct) == nifti_bytes(ct)
    assert nib.Nifti1Image.from_bytes(gzip.decompress(nifti_bytes(ct))).get_data_dtype() == np.int16
    g = ct.geometry
    tilt = np.radians(10.0)
    sheared = g.direction_matrix.copy()
    sheared[:, 0] = [0.0, np.sin(tilt), np.cos(tilt)]  # slices step along a tilted axis
    tilted = dataclasses.replace(ct, geometry=Geometry.from_arrays(g.shape, g.spacing, g.origin, sheared))
    assert skip_reason(tilted) == "gantry-tilt"
    uneven = dataclasses.replace(ct, positions=np.zeros((g.shape[0], 3)), problems=("missing-slices",))
    assert skip_reason(uneven) == "uneven-spacing"
    with pytest.raises(ValueError):
        nifti_bytes(uneven)
    fractional = dataclasses.replace(ct, data=np.asarray(ct.data, dtype=np.float32) + np.float32(0.5))
    assert nib.Nifti1Image.from_bytes(gzip.decompress(nifti_bytes(fractional))).get_data_dtype() == np.float32


def test_audit_scan_searches_nifti_files_inflated(tmp_path: Path, archive: Path, manifest: dict[str, Any]) -> None:
    """A planted value hidden in a gzip-compressed NIfTI header is found by audit scan."""

    planted = next(p["value"] for p in manifest["planted"] if p["kind"] == "name" and len(p["value"]) > 6)
    folder = tmp_path / "export"
    folder.mkdir()
    header = bytearray(348)
    header[148 : 148 + len(planted)] = planted.encode()  # the descrip field
    (folder / "case_0000.nii.gz").write_bytes(gzip.compress(bytes(header), mtime=0))
    from medaug.audit.scan import scan_dataset

    result = scan_dataset(folder, archive, pixels=False)
    assert not result.clean and result.hits[0].file == 1
