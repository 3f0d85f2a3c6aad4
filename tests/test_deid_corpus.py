"""Real-world corpora: pydicom's bundled test files and the synthetic fixture archive."""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from medaug.deid.engine import deidentify
from medaug.deid.keys import Key
from medaug.deid.options import DeidOptions
from medaug.deid.table import load_table
from medaug.errors import DeidentificationError
from tests.conftest import dciodvfy_kinds

KEY = Key(bytes(range(32)))
OTHER = Key(bytes(range(100, 132)))
_IDENTIFYING = ("PatientName", "PatientID", "AccessionNumber", "InstitutionName", "ReferringPhysicianName",
                "OperatorsName", "PerformingPhysicianName", "StationName", "PatientBirthName", "OtherPatientIDs")


def _identifying(ds: Dataset) -> tuple[set[bytes], set[bytes]]:
    """Identifying text values and instance UIDs of a dataset, at any depth."""
    rows = load_table().rows
    texts: set[bytes] = set()
    uids: set[bytes] = set()

    def visit(item: Dataset) -> None:
        for elem in item:
            if elem.VR == "SQ":
                for child in elem.value:
                    visit(child)
            elif elem.VR == "UI" and elem.tag in rows and rows[elem.tag][0] != "K" and elem.value:
                for uid in str(elem.value).split("\\"):
                    if not uid.startswith("1.2.840.10008.") and len(uid) > 8:
                        uids.add(uid.encode("ascii"))
            elif elem.keyword in _IDENTIFYING and elem.value:
                for part in re.split(r"[\^=\\ ]+", str(elem.value)):
                    if len(part) >= 5 and not part.isdigit():
                        texts.add(part.encode("latin-1", "ignore"))

    visit(ds)
    # Words that also name the equipment maker or model are kept by the profile on purpose.
    kept = " ".join(str(ds.get(k, "")) for k in ("Manufacturer", "ManufacturerModelName")).encode("latin-1", "ignore")
    # The implementation class UID names software, not a patient (instance creator UIDs repeat it).
    software = str(getattr(ds, "file_meta", {}).get("ImplementationClassUID", "")).encode("ascii")
    return {t for t in texts if t not in kept}, uids - {software}


def _pydicom_files() -> list[str]:
    # The bundled folder only: get_testdata_files() may try to download more.
    import pydicom.data

    folder = Path(pydicom.data.__file__).parent / "test_files"
    return sorted(str(p) for p in folder.rglob("*") if p.is_file() and p.suffix not in (".py", ".txt", ".json", ".pyc"))


@pytest.mark.slow
def test_pydicom_bundled_files_never_crash_or_leak() -> None:
    files = _pydicom_files()
    assert len(files) > 50
    done = quarantined = 0
    for number, path in enumerate(files):
        try:
            with warnings.catch_warnings(action="ignore"):
                ds = pydicom.dcmread(path)
                texts, uids = _identifying(ds)
        except (InvalidDicomError, Exception) as exc:  # unreadable input is ingest's business
            if isinstance(exc, (InvalidDicomError, ValueError, KeyError, AttributeError, TypeError, OSError, NotImplementedError)):
                continue
            raise
        try:
            with warnings.catch_warnings(action="ignore"):
                out, _ = deidentify(ds, DeidOptions(), KEY)
        except DeidentificationError as exc:
            assert exc.reason, f"file {number} quarantined without a reason"
            quarantined += 1
            continue
        with warnings.catch_warnings(action="ignore"):
            buf = io.BytesIO()
            pydicom.dcmwrite(buf, out)  # as the input was: some bundled files lack file meta
            data = buf.getvalue()
        for value in texts | uids:
            assert value not in data, f"file {number}: an identifying value survived"
        done += 1
    assert done > 30 and quarantined >= 1


# -- the synthetic fixture archive --------------------------------------------
def _archive_files(archive: Path) -> list[Path]:
    # DICOMDIR is a directory record that ingest reads, never an object run de-identifies.
    return sorted(p for p in archive.rglob("*") if p.is_file() and p.suffix != ".json" and p.name != "DICOMDIR")


def _deid_archive(archive: Path, out_dir: Path, key: Key) -> dict[Path, Path]:
    written: dict[Path, Path] = {}
    for number, path in enumerate(_archive_files(archive)):
        try:
            ds = pydicom.dcmread(path)
        except Exception:
            continue  # deliberately broken fixture files are ingest's business
        try:
            out, _ = deidentify(ds, DeidOptions(), key)
        except DeidentificationError:
            continue
        target = out_dir / f"{number}.dcm"
        out.save_as(target, enforce_file_format=True)
        written[path] = target
    return written


@pytest.fixture(scope="module")
def deid_archive(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    pytest.importorskip("fixtures.generate")
    archive: Path = request.getfixturevalue("archive")
    manifest: dict[str, Any] = request.getfixturevalue("manifest")
    runs = {}
    for name, key in (("a", KEY), ("b", KEY), ("c", OTHER)):
        out = tmp_path_factory.mktemp(f"deid-{name}")
        runs[name] = _deid_archive(archive, out, key)
    return archive, manifest, runs


@pytest.mark.slow
def test_archive_no_planted_value(deid_archive: Any) -> None:
    _, manifest, runs = deid_archive
    assert runs["a"], "nothing was de-identified"
    planted = [p["value"] for p in manifest["planted"] if p["kind"] != "path" and "DICOMDIR" not in p["where"]]
    for target in runs["a"].values():
        data = target.read_bytes()
        for value in planted:
            assert str(value).encode("utf-8") not in data, f"planted {value!r} survived"


def _uids(path: Path) -> set[str]:
    ds = pydicom.dcmread(path)
    keywords = ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID")
    return {str(ds[k].value) for k in keywords if k in ds and ds[k].value}


@pytest.mark.slow
def test_archive_same_key_same_uids_other_key_disjoint(deid_archive: Any) -> None:
    _, _, runs = deid_archive
    a = set().union(*(_uids(p) for p in runs["a"].values()))
    b = set().union(*(_uids(p) for p in runs["b"].values()))
    c = set().union(*(_uids(p) for p in runs["c"].values()))
    assert a == b
    assert not a & c


@pytest.mark.slow
@pytest.mark.external
def test_archive_dciodvfy_no_new_errors(deid_archive: Any) -> None:
    _, _, runs = deid_archive
    for source, target in list(runs["a"].items())[:40]:
        new = dciodvfy_kinds(target) - dciodvfy_kinds(source)
        assert not new, f"dciodvfy errors introduced: {sorted(new)}"
