"""The synthetic archive generator: deterministic, honest about what it planted, readable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian

from fixtures.generate import build_archive, main
from tests.conftest import external

FILE_REASONS = {"empty", "not-dicom", "truncated", "too-large", "pixel-length-mismatch", "no-pixel-data",
                "missing-uid"}


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _read(path: Path) -> Dataset:
    ds = pydicom.dcmread(path, force=True)
    if "TransferSyntaxUID" not in ds.file_meta:
        # A file without file meta is Implicit VR Little Endian by the standard's default.
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return ds


def _series(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    found = [s for s in manifest["series"] if s["name"] == name]
    assert len(found) == 1, name
    return found[0]


def _positions(archive: Path, series: dict[str, Any]) -> np.ndarray:
    if series["multiframe"]:
        ds = _read(archive / series["files"][0])
        return np.array(
            [[float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient] for f in ds.PerFrameFunctionalGroupsSequence]
        )
    return np.array([[float(v) for v in _read(archive / f).ImagePositionPatient] for f in series["files"]])


def test_build_is_byte_identical_across_runs(tmp_path: Path, archive: Path) -> None:
    again = tmp_path / "again"
    build_archive(again)
    first, second = _files(archive), _files(again)
    assert sorted(first) == sorted(second)
    different = [name for name in first if first[name] != second[name]]
    assert different == []
    assert archive.with_suffix(".json").read_bytes() == again.with_suffix(".json").read_bytes()


def test_manifest_is_written_beside_the_archive_and_returned(tmp_path: Path) -> None:
    root = tmp_path / "out" / "arch"
    returned = build_archive(root)
    on_disk = json.loads((tmp_path / "out" / "arch.json").read_text(encoding="utf-8"))
    assert on_disk == returned
    assert not any(p.suffix == ".json" for p in root.rglob("*"))


def test_refuses_a_directory_that_already_holds_files(tmp_path: Path) -> None:
    root = tmp_path / "arch"
    root.mkdir()
    (root / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        build_archive(root)
    assert main([str(root)]) == 2


def test_every_planted_value_is_in_the_archive(archive: Path, manifest: dict[str, Any]) -> None:
    blob = b"\n".join(_files(archive).values())
    paths = "\n".join(p.relative_to(archive).as_posix() for p in archive.rglob("*"))
    missing = [
        item["where"]
        for item in manifest["planted"]
        if item["value"].encode("utf-8") not in blob and item["value"] not in paths
    ]
    assert missing == []


def test_planted_register_covers_the_identifying_places(manifest: dict[str, Any]) -> None:
    planted = manifest["planted"]
    kinds = {item["kind"] for item in planted}
    assert {"name", "id", "uid", "date", "text", "path", "private"} <= kinds
    wheres = " ".join(item["where"] for item in planted)
    for place in (
        "PatientName", "OtherPatientIDsSequence", "PatientAddress", "AccessionNumber", "ReferringPhysicianName",
        "OperatorsName", "InstitutionName", "DeviceSerialNumber", "ImageComments", "RequestAttributesSequence",
        "ReferencedStudySequence", "ScheduledPerformingPhysicianName", "OverlayDescription", "OverlayLabel",
        "(0009,xx04)/(0009,xx10)", "directory name", "DICOMDIR",
    ):
        assert place in wheres, place
    assert any(not item["value"].isascii() for item in planted if item["kind"] == "name")


def test_every_uid_in_the_archive_is_planted(archive: Path, manifest: dict[str, Any]) -> None:
    planted = {item["value"] for item in manifest["planted"] if item["kind"] == "uid"}
    exempt_keywords = {"SOPClassUID", "MediaStorageSOPClassUID", "ReferencedSOPClassUID", "TransferSyntaxUID",
                       "ImplementationClassUID", "ReferencedSOPClassUIDInFile", "ReferencedTransferSyntaxUIDInFile"}
    found: set[str] = set()

    def collect(ds: Dataset) -> None:
        for elem in ds.iterall():
            if elem.VR == "UI" and elem.keyword not in exempt_keywords and elem.value:
                found.add(str(elem.value))

    good = [s for series in manifest["series"] for s in series["files"]] + manifest["dicomdir"]
    for rel in good + [label["file"] for label in manifest["labels"]]:
        ds = _read(archive / rel)
        collect(ds.file_meta)
        collect(ds)
    assert found and found <= planted


def test_every_series_file_reads_and_matches_its_shape(archive: Path, manifest: dict[str, Any]) -> None:
    for series in manifest["series"]:
        arrays = [_read(archive / f).pixel_array for f in series["files"]]
        volume = arrays[0] if series["multiframe"] else np.stack(arrays)
        assert list(volume.shape) == series["shape"], series["name"]
        first = _read(archive / series["files"][0])
        assert first.Modality == series["modality"]
        assert first.PhotometricInterpretation == series["photometric"]
        assert first.file_meta.TransferSyntaxUID == series["transfer_syntax"]


def test_files_are_listed_in_slice_order_along_the_normal(archive: Path, manifest: dict[str, Any]) -> None:
    for series in manifest["series"]:
        if series["shape"][0] < 2:
            continue
        direction = np.array(series["direction"])
        normal = np.cross(direction[:, 2], direction[:, 1])
        positions = _positions(archive, series)
        if series["multiframe"]:
            positions = positions[np.argsort(positions @ normal)]
        assert np.all(np.diff(positions @ normal) > 0), series["name"]
        assert np.allclose(positions[0], series["origin"], atol=1e-4), series["name"]
        steps = np.linalg.norm(np.diff(positions, axis=0), axis=1)
        regular = np.allclose(np.diff(positions, axis=0), series["spacing"][0] * direction[:, 0], atol=1e-4)
        flagged = {"missing-slices", "irregular-spacing"} & set(series["problems"])
        assert regular != bool(flagged), series["name"]
        if "missing-slices" in series["problems"]:
            ratios = steps / series["spacing"][0]
            assert np.allclose(ratios, np.round(ratios)) and ratios.max() >= 2, series["name"]


def test_ct_phantom_is_in_hounsfield_units(archive: Path, manifest: dict[str, Any]) -> None:
    series = _series(manifest, "ct_chest")
    ds = _read(archive / series["files"][len(series["files"]) // 2])
    assert ds.BitsStored == 12 and ds.BitsAllocated == 16
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert abs(np.median(hu[:3, :]) + 1000) < 30  # air at the top edge
    histogram = {name: np.mean(np.abs(hu - value) < 25) for name, value in manifest["hu"].items()}
    for tissue in ("air", "lung", "fat", "soft", "cancellous", "cortical"):
        assert histogram[tissue] > 0.002, tissue


def test_special_series_have_their_traits(archive: Path, manifest: dict[str, Any]) -> None:
    tilt = _read(archive / _series(manifest, "ct_tilt")["files"][0])
    assert float(tilt.GantryDetectorTilt) == 15.0
    direction = np.array(_series(manifest, "ct_tilt")["direction"])
    normal = np.cross(direction[:, 2], direction[:, 1])
    assert abs(direction[:, 0] @ normal) < 0.99  # sheared: slices step off the normal

    shuffled = _series(manifest, "ct_shuffled")
    numbers = [int(_read(archive / f).InstanceNumber) for f in shuffled["files"]]
    assert numbers == sorted(numbers, reverse=True)
    assert shuffled["files"] != sorted(shuffled["files"])

    mr = _read(archive / _series(manifest, "mr_sagittal")["files"][0])
    assert mr.SpecificCharacterSet == "ISO_IR 192" and not str(mr.PatientName).isascii()
    assert abs(float(mr.ImageOrientationPatient[0])) < 1e-6  # sagittal: no x in the image plane

    cr = _read(archive / _series(manifest, "cr_chest")["files"][0])
    assert cr.PhotometricInterpretation == "MONOCHROME1" and cr.PixelRepresentation == 0

    us = _read(archive / _series(manifest, "us_rgb")["files"][0])
    assert us.BurnedInAnnotation == "YES" and us.SamplesPerPixel == 3
    top, left, bottom, right = _series(manifest, "us_rgb")["burned_in_box"]
    assert np.any(np.all(us.pixel_array[top:bottom, left:right] == 255, axis=-1))

    enhanced = _read(archive / _series(manifest, "ct_enhanced")["files"][0])
    shared = enhanced.SharedFunctionalGroupsSequence[0]
    assert "PixelValueTransformationSequence" in shared and "PlaneOrientationSequence" in shared
    assert len(enhanced.PerFrameFunctionalGroupsSequence) == int(enhanced.NumberOfFrames)

    raw = (archive / _series(manifest, "ct_nometa")["files"][0]).read_bytes()
    assert raw[128:132] != b"DICM"


def test_dicomdir_indexes_its_files(archive: Path, manifest: dict[str, Any]) -> None:
    (dicomdir,) = manifest["dicomdir"]
    index = pydicom.dcmread(archive / dicomdir)
    base = (archive / dicomdir).parent
    listed = {
        base.joinpath(*record.ReferencedFileID).resolve()
        for record in index.DirectoryRecordSequence
        if record.DirectoryRecordType == "IMAGE"
    }
    disc = _series(manifest, "ct_disc")
    assert {(archive / f).resolve() for f in disc["files"]} == listed
    assert all("." not in Path(f).name for f in disc["files"])


def test_bad_files_exist_with_known_reasons(archive: Path, manifest: dict[str, Any]) -> None:
    reasons = {item["reason"] for item in manifest["bad"]}
    assert reasons == FILE_REASONS
    for item in manifest["bad"]:
        assert (archive / item["file"]).is_file()
    sizes = {item["reason"]: (archive / item["file"]).stat().st_size for item in manifest["bad"]}
    assert sizes["empty"] == 0
    huge = pydicom.dcmread(archive / next(i["file"] for i in manifest["bad"] if i["reason"] == "too-large"))
    assert huge.Rows == 60000 and len(huge.PixelData) < 1024


def test_patients_and_studies(archive: Path, manifest: dict[str, Any]) -> None:
    patients = {p["id"]: p["studies"] for p in manifest["patients"]}
    assert len(patients) >= 3 and max(patients.values()) >= 2
    studies: dict[str, set[str]] = {}
    for series in manifest["series"]:
        ds = _read(archive / series["files"][0])
        studies.setdefault(str(ds.PatientID), set()).add(str(ds.StudyInstanceUID))
    assert {pid: len(uids) for pid, uids in studies.items()} == patients


def test_archive_stays_small(archive: Path) -> None:
    assert sum(p.stat().st_size for p in archive.rglob("*") if p.is_file()) < 6 * 2**20


@pytest.mark.external
def test_good_files_pass_dciodvfy_without_errors(archive: Path, manifest: dict[str, Any]) -> None:
    import subprocess

    tool = external("dciodvfy")
    # The first file of every series in a file-meta'd form, plus the DICOMDIR and the label objects.
    paths = [s["files"][0] for s in manifest["series"] if s["name"] != "ct_nometa"] + manifest["dicomdir"]
    paths += [label["file"] for label in manifest["labels"]]
    errors = {}
    for rel in paths:
        run = subprocess.run([tool, str(archive / rel)], capture_output=True, text=True, check=False)
        found = [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]
        if found:
            errors[rel] = found
    assert errors == {}
