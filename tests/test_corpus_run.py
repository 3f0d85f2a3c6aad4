"""Every DICOM file pydicom ships (its own test files plus the pydicom-data set) through `medaug run`.

Each file must end written or quarantined with a reason code — never a crash,
never an internal error — no identifying value or UID of it may survive in
any output, and dciodvfy finds no kind of error in an output that its sources lacked.
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
from collections import Counter
from pathlib import Path

import pydicom
import pytest
import yaml
from pydicom.datadict import keyword_dict
from pydicom.dataset import Dataset

from medaug.audit.chain import check_chain, read_lines
from medaug.audit.trace import trace_dataset
from medaug.cli import main
from medaug.deid.keys import load_key
from medaug.deid.table import load_table
from medaug.pipeline.task import INTERNAL_ERROR
from tests.conftest import REPO, dciodvfy_kinds

_NAMED = ("PatientName", "PatientID", "AccessionNumber", "InstitutionName", "ReferringPhysicianName",
          "OperatorsName", "PerformingPhysicianName", "StationName", "OtherPatientIDs", "StudyID")

POLICY = """\
id: corpus-deid-only
version: "1"
description: De-identify every object of any modality; no transforms.
modalities: [CT, MR, US, NM, PT, CR, DX, MG, XA, RF, OT, SC, RTIMAGE, RTDOSE, IO, PX, XC, ES, OP, SM, SEG, SR, KO, PR, DOC, RTSTRUCT, RTPLAN]
deid:
  options: []
variants_per_series: 0
include_original: true
seed: 1
"""


def _corpus() -> list[Path]:
    from pydicom.data import get_testdata_files

    # With the pydicom-data package installed (test extra) this is local: no download.
    paths = {Path(p).resolve() for p in get_testdata_files() if not p.endswith((".py", ".txt", ".json"))}
    return sorted(p for p in paths if p.is_file())


def _identifying(ds: Dataset) -> set[bytes]:
    """Distinctive identifying values and instance UIDs of an object, at any depth."""
    rows = load_table().rows
    found: set[bytes] = set()
    for elem in ds.iterall():
        if elem.VR == "UI" and elem.tag in rows and rows[elem.tag][0] != "K" and elem.value:
            for uid in str(elem.value).split("\\"):
                if not uid.startswith("1.2.840.10008.") and len(uid) > 12:
                    found.add(uid.encode("ascii"))
        elif elem.keyword in _NAMED and elem.value:
            for part in re.split(r"[\^=\\ ]+", str(elem.value)):
                if len(part) >= 6 and not part.isdigit():
                    found.add(part.encode("latin-1", "ignore"))
    kept = " ".join(str(ds.get(k, "")) for k in ("Manufacturer", "ManufacturerModelName")).encode("latin-1", "ignore")
    # A word of the DICOM dictionary ("Number" in "exam Number") is not distinctive: outputs
    # legitimately hold it (e.g. in Dimension Index descriptions).
    return {v for v in found if v not in kept and v.lower() not in _DICTIONARY_WORDS}


_DICTIONARY_WORDS = " ".join(keyword_dict).lower().encode("ascii")


def _archive(files: list[Path], folder: Path) -> Path:
    """An archive of `files`, named by number only (hard links where the file system allows:
    symbolic links leading outside an archive are refused as outside-archive)."""
    assert len(files) >= 150, "the pydicom-data corpus is missing (install the test extra)"
    folder.mkdir()
    for number, path in enumerate(files):
        target = folder / f"{number:04d}.dcm"
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
    return folder


def assert_no_new_dciodvfy_errors(out: Path, key: Path, archive: Path) -> None:
    """The independent validator finds no kind of error in an output that its sources lack.

    Sources map to outputs through the audit trail and the key.
    """
    traced = trace_dataset(out, load_key(key), archive)
    assert traced.entries and not traced.unmatched_sources
    for entry in traced.entries:
        before = set().union(*(dciodvfy_kinds(archive / source) for source in entry.sources))
        new = dciodvfy_kinds(out / entry.output) - before
        assert not new, f"{entry.output}: dciodvfy errors its sources lack: {sorted(new)}"


@pytest.mark.slow
@pytest.mark.external
@pytest.mark.parametrize("policy", ["ct-chest-conservative", "mr-brain"])
def test_variants_of_corpus_images_are_valid(policy: str, tmp_path: Path) -> None:
    """Every CT and MR object of the corpus through a bundled policy's transforms: variants included, each
    output is valid wherever its source was (derived Enhanced MR, Segmentation references...). The
    policy's scope is widened to every body part: the corpus' objects rarely say which they show."""
    archive = _archive(_corpus(), tmp_path / "archive")
    key = tmp_path / "k.key"
    assert main(["keygen", str(key)]) == 0
    out = tmp_path / "out"
    widened = tmp_path / f"{policy}.yaml"
    widened.write_text((REPO / "policies" / f"{policy}.yaml").read_text().replace("\nscope:\n", "\nunused_scope:\n"))
    raw = yaml.safe_load(widened.read_text())
    del raw["unused_scope"]
    widened.write_text(yaml.safe_dump(raw))
    assert main(["policy", "approve", str(widened), "--by", "Corpus Test"]) == 0
    with warnings.catch_warnings(action="ignore"):
        status = main(["run", str(widened), str(archive), str(out), "--key", str(key)])
    assert status == 3
    assert any(Path(out / "dicom").rglob("*-v1/*.dcm")), "no variant was written"
    assert_no_new_dciodvfy_errors(out, key, archive)


@pytest.mark.slow
@pytest.mark.external
def test_every_pydicom_file_is_written_or_quarantined_and_nothing_leaks(tmp_path: Path) -> None:
    files = _corpus()
    archive = _archive(files, tmp_path / "archive")
    policy = tmp_path / "corpus.yaml"
    policy.write_text(POLICY)
    assert main(["policy", "approve", str(policy), "--by", "Corpus Test"]) == 0
    key = tmp_path / "k.key"
    assert main(["keygen", str(key)]) == 0
    out = tmp_path / "out"
    with warnings.catch_warnings(action="ignore"):  # pydicom warns about the corpus' own defects
        status = main(["run", str(policy), str(archive), str(out), "--key", str(key), "--workers", "1"])
    assert status == 3

    records, problems = check_chain(read_lines(out / "audit" / "log.jsonl"))
    assert not problems
    kinds = Counter(r["type"] for r in records)
    assert kinds["ingest"] + kinds["quarantine"] + kinds["skip"] + kinds["index"] == len(files)
    reasons = Counter(r["reason"] for r in records if r["type"] == "quarantine")
    assert not [r for r in reasons if r.startswith(INTERNAL_ERROR)], reasons
    # Every frame is looked at for burned-in text: what the detector flags is quarantined by design
    # (a few corpus images, one of them a false positive the detector still makes).
    assert kinds["output"] + reasons["burned-in-text"] >= 30 and reasons["burned-in-text"] <= 6
    from medaug.audit.verify import verify_dataset

    assert verify_dataset(out).ok

    outputs = [p.read_bytes() for p in (out / "dicom").rglob("*.dcm")]
    assert_no_new_dciodvfy_errors(out, key, archive)

    for number, path in enumerate(files):
        try:
            with warnings.catch_warnings(action="ignore"):
                ds = pydicom.dcmread(path, force=True)
                values = _identifying(ds)
        except Exception:  # unreadable: ingest quarantined it, so it has nothing in the outputs
            continue
        for value in values:
            assert not any(value in data for data in outputs), f"corpus file {number}: an identifying value survived"
