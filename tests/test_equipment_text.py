"""Reviewed equipment text: the release gate and ``audit scan`` judge a match in it by one rule.

A source value that happens to be a vendor's word ("BENCH" as a patient's name part and in
the source's own Manufacturer) is no leak in the Manufacturer, for both; the same value in a
patient attribute is a leak, for both. So is a source's name put into an equipment or code
attribute where no source held it, as a tool that copies values between attributes would.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from medaug.audit.scan import scan_dataset
from medaug.deid.gate import check_outputs, source_identifiers
from medaug.deid.options import DeidOptions
from medaug.errors import DeidentificationError
from tests.ingest_helpers import make_dataset

#: Not a common word and not a word of the data dictionary's names: distinctive as a name part.
WORD = "BENCHQUIRE"


#: A patient ID no other attribute repeats.
PATIENT_ID = "ZQ7X41K"


def _source(root: Path, *, manufacturer: str = "ACME") -> pydicom.Dataset:
    ds = make_dataset(np.zeros((8, 8), dtype=np.uint16))
    ds.PatientName = f"{WORD}^ZEPHYRINE"
    ds.PatientID = PATIENT_ID
    ds.Manufacturer = manufacturer
    root.mkdir()
    ds.save_as(root / "1.dcm", enforce_file_format=True)
    return ds


def _output(outdir: Path, **values: str) -> Path:
    """An output holding nothing of the source but ``values``."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.Modality, ds.PatientName = "CT", "ANONYMIZED"
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    path = outdir / "dicom" / "a" / "1.dcm"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _gate_passes(header: pydicom.Dataset, path: Path, outdir: Path) -> bool:
    options = DeidOptions()
    try:
        check_outputs([path], outdir, source_identifiers([header], options), options=options)
    except DeidentificationError:
        return False
    return True


def test_a_source_word_as_the_manufacturer_is_no_leak_for_the_gate_nor_for_scan(tmp_path: Path) -> None:
    header = _source(tmp_path / "arc", manufacturer=f"{WORD} Medical")
    path = _output(tmp_path / "out", Manufacturer=f"{WORD} Medical")
    result = scan_dataset(tmp_path / "out", tmp_path / "arc", pixels=False)
    assert [(h.where, h.kind, h.kept_by_option) for h in result.hits] == [("(0008,0070)", "name", True)]
    assert result.clean
    assert _gate_passes(header, path, tmp_path / "out")


def test_the_same_word_in_a_patient_attribute_is_a_leak_for_both(tmp_path: Path) -> None:
    header = _source(tmp_path / "arc", manufacturer=WORD)
    path = _output(tmp_path / "out", Manufacturer=WORD, PatientComments=f"seen by {WORD}")
    result = scan_dataset(tmp_path / "out", tmp_path / "arc", pixels=False)
    assert not result.clean
    assert [h.where for h in result.hits if not h.kept_by_option] == ["(0010,4000)"]
    assert not _gate_passes(header, path, tmp_path / "out")


@pytest.mark.parametrize(
    "keyword, value",
    [
        ("Manufacturer", WORD),  # the source's Manufacturer was ACME
        ("ManufacturerModelName", f"{WORD} 64"),  # held in another reviewed attribute than the source's
        ("BodyPartExamined", PATIENT_ID),  # a code string holding a patient's ID
    ],
)
def test_a_source_value_moved_into_an_attribute_kept_by_design_is_a_leak_for_both(
    tmp_path: Path, keyword: str, value: str
) -> None:
    header = _source(tmp_path / "arc")
    path = _output(tmp_path / "out", **{keyword: value})
    result = scan_dataset(tmp_path / "out", tmp_path / "arc", pixels=False)
    assert not result.clean
    assert [h.where for h in result.hits if not h.kept_by_option] == [_tag(keyword)]
    assert not _gate_passes(header, path, tmp_path / "out")


def test_numbers_stay_kept_by_design(tmp_path: Path) -> None:
    """A number medaug computes may equal a source's digits: no leak (numbers carry no text)."""
    header = _source(tmp_path / "arc")
    header.AccessionNumber = "20250117"
    header.save_as(tmp_path / "arc" / "1.dcm", enforce_file_format=True)
    path = _output(tmp_path / "out", SliceLocation="20250117")
    result = scan_dataset(tmp_path / "out", tmp_path / "arc", pixels=False)
    assert result.clean and result.hits
    assert _gate_passes(header, path, tmp_path / "out")


def _tag(keyword: str) -> str:
    from pydicom.datadict import tag_for_keyword

    number = tag_for_keyword(keyword)
    assert number is not None
    return f"({number >> 16:04X},{number & 0xFFFF:04X})"
