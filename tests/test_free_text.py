"""Free text leaves only when known to be safe, and every series is gated on its own sources.

Planted values that no other attribute repeats (a third person, an MRN-like number, a phone
number, an address, dates in three written forms, a made-up word) are in the fixture
archive's Clean Descriptors attributes and request items; none may reach an output. A
value planted where the Annex E table does not look is caught by the release gate.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import pydicom
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from medaug.cli import main
from medaug.deid.descriptions import synthesize
from medaug.deid.engine import deidentify
from medaug.deid.gate import check_outputs, read_header, source_identifiers
from medaug.deid.keys import Key
from medaug.deid.options import DeidOptions
from medaug.errors import DeidentificationError
from tests.conftest import external
from tests.deid_synthetic import make_ct, to_bytes

REPO = Path(__file__).resolve().parents[1]
KEY = Key(bytes(range(32)))
UNREPEATED = ("Quillfeather", "Zorbulate", "Ophelant", "Tansy Lane", "4041772", "Vintner")


def _outputs_text(out: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file())


@pytest.mark.parametrize(
    ("policy_name", "clean_descriptors"),
    [("ct-chest-conservative", True), ("ct-chest-conservative", False), ("mr-brain", True), ("radiography", True)],
)
def test_unrepeated_planted_text_reaches_no_output(archive: Path, keyfile: Path, tmp_path: Path, policy_name: str,
                                                   clean_descriptors: bool) -> None:
    raw = yaml.safe_load((REPO / "policies" / f"{policy_name}.yaml").read_text())
    if not clean_descriptors:
        raw["deid"]["options"] = [o for o in raw["deid"]["options"] if o != "clean_descriptors"]
    raw["variants_per_series"] = 1
    policy = tmp_path / "p.yaml"
    policy.write_text(yaml.safe_dump(raw))
    assert main(["policy", "approve", str(policy), "--by", "A. Steward"]) == 0
    out = tmp_path / "out"
    assert main(["run", str(policy), str(archive), str(out), "--key", str(keyfile), "--workers", "2"]) == 3
    data = _outputs_text(out).lower()
    for value in UNREPEATED:
        assert value.lower().encode() not in data, "a planted value reached the dataset"
    assert b"residual-identifier" not in (out / "audit" / "log.jsonl").read_bytes()


def test_scan_marks_what_an_option_keeps_on_purpose(archive: Path, keyfile: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import json

    external("tesseract")  # audit scan searches the pixels by default
    raw = yaml.safe_load((REPO / "policies" / "ct-chest-conservative.yaml").read_text())
    raw["deid"]["options"] += ["retain_device_identity", "retain_institution_identity"]
    raw["variants_per_series"] = 0
    policy = tmp_path / "p.yaml"
    policy.write_text(yaml.safe_dump(raw))
    assert main(["policy", "approve", str(policy), "--by", "A. Steward"]) == 0
    out = tmp_path / "out"
    assert main(["run", str(policy), str(archive), str(out), "--key", str(keyfile), "--workers", "2"]) == 3
    capsys.readouterr()
    # The pixels are searched by default: every v0 frame of the archive, text-free, is no finding.
    assert main(["audit", "scan", str(out), "--against", str(archive), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["pixels_checked"] and not [h for h in result["hits"] if h["where"] == "pixel data"]
    assert result["clean"] and result["hits"] and all(h["kept_by_option"] for h in result["hits"])


def test_text_where_the_table_does_not_look_is_caught_by_the_gate(archive: Path, keyfile: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "arc"
    shutil.copytree(next(archive.rglob("ct_nometa")), root / "s")
    for path in (root / "s").iterdir():
        ds = pydicom.dcmread(path, force=True)
        ds.ContentDescription = "Recon for Mr Haldorsen 555 0123"  # (0070,0081): not in Table E.1-1
        ds.save_as(path)
    out = tmp_path / "out"
    assert main(["run", str(REPO / "policies" / "ct-chest-conservative.yaml"), str(root), str(out),
                 "--key", str(keyfile), "--workers", "1"]) == 3
    text = capsys.readouterr().out
    assert "residual-identifier:ContentDescription" in text and "Haldorsen" not in text
    assert not any((out / "dicom").rglob("*.dcm"))
    assert b"Haldorsen" not in _outputs_text(out)
    assert main(["audit", "verify", str(out)]) == 0


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"Modality": "CT", "BodyPartExamined": "CHEST", "SliceThickness": "1.0", "ConvolutionKernel": "B70f",
          "ContrastBolusAgent": "X", "ImageOrientationPatient": [1, 0, 0, 0, 1, 0]}, "CT CHEST AX 1 mm B70f +C"),
        ({"Modality": "MR", "BodyPartExamined": "HEAD", "MRAcquisitionType": "3D", "ScanningSequence": "GR",
          "ImageOrientationPatient": [0, 1, 0, 0, 0, -1]}, "MR HEAD SAG 3D GR"),
        ({"Modality": "CR", "BodyPartExamined": "CHEST"}, "CR CHEST"),
        ({"Modality": "CT", "BodyPartExamined": "SMITH", "ConvolutionKernel": "Dr Miller"}, "CT"),
    ],
)
def test_synthesized_descriptions(values: dict[str, Any], expected: str) -> None:
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    assert synthesize(ds) == expected == synthesize(ds)


_TEXT_ATTRIBUTES = ("StudyDescription", "SeriesDescription", "ImageComments", "AdditionalPatientHistory",
                    "ContentDescription", "ProtocolName", "PatientComments", "DetectorDescription")
_OPTIONS = ("clean_descriptors", "retain_long_modified_dates", "retain_patient_characteristics",
            "retain_device_identity", "clean_structured_content")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    word=st.text(alphabet=st.characters(whitelist_categories=("Lu", "Ll")), min_size=5, max_size=10),
    digits=st.integers(min_value=100000, max_value=9999999),
    attribute=st.sampled_from(_TEXT_ATTRIBUTES),
    nested=st.booleans(),
    options=st.sets(st.sampled_from(_OPTIONS)),
)
def test_random_planted_text_never_survives(tmp_path: Path, word: str, digits: int, attribute: str,
                                            nested: bool, options: set[str]) -> None:
    """Whatever the options, a planted value is removed, or the gate stops the series."""
    planted = f"{word} {digits}"
    ds = make_ct()
    ds.SpecificCharacterSet = "ISO_IR 192"
    target: Dataset = ds
    if nested:
        item = Dataset()
        ds.ReferencedImageSequence = DicomSequence([item])
        target = item
    setattr(target, attribute, planted)
    source = pydicom.dcmread(io.BytesIO(to_bytes(ds)), force=True)
    opts = DeidOptions.from_names(sorted(options))
    clean, _ = deidentify(pydicom.dcmread(io.BytesIO(to_bytes(ds)), force=True), opts, KEY)
    out = tmp_path / "o"
    out.mkdir(exist_ok=True)
    path = out / "1.dcm"
    path.write_bytes(to_bytes(clean))
    value = planted
    try:
        check_outputs([path], out, source_identifiers([source], opts))
    except DeidentificationError:
        return  # the gate stopped it
    assert value.encode("utf-8") not in path.read_bytes()


def test_the_phrase_list_is_what_its_script_generates(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    shipped = (REPO / "medaug" / "deid" / "data" / "reviewed_phrases.json").read_text()
    data = json.loads(shipped)
    assert data["deny_list_words"] > 100 and "CHEST" in data["regions"]
    proc = subprocess.run([sys.executable, "-c", "import json, sys; sys.path[:0] = ['scripts', '.']; "
                           "import generate_phrase_list as g; found, denied = g.units(); "
                           "print(json.dumps({**found, 'deny_list_words': denied}))"],
                          cwd=REPO, capture_output=True, text=True, check=True)
    regenerated = json.loads(proc.stdout)
    assert regenerated == {k: data[k] for k in regenerated}


def test_reviewed_phrases_keep_a_whole_known_phrase_and_nothing_else() -> None:
    options = DeidOptions.from_names(["clean_descriptors"], reviewed_phrases=True)
    kept = deidentify(make_ct(SeriesDescription="AX T2 FLAIR 5mm"), options, KEY)[0]
    assert kept.SeriesDescription == "AX T2 FLAIR 5mm"
    rebuilt = deidentify(make_ct(SeriesDescription="T1 for Dr Boyd"), options, KEY)[0]
    assert "Boyd" not in rebuilt.SeriesDescription and rebuilt.SeriesDescription.startswith("CT")
    without = deidentify(make_ct(SeriesDescription="AX T2 FLAIR 5mm"), DeidOptions(clean_descriptors=True), KEY)[0]
    assert without.SeriesDescription != "AX T2 FLAIR 5mm"


def test_the_gate_searches_past_a_value_that_spells_the_pixel_data_tag(tmp_path: Path) -> None:
    # An early OB value holding the bytes of the Pixel Data tag (and a VR and length after them)
    # must not end the searched header: a source value left in a later attribute is still found.
    ds = make_ct()
    ds.PatientID = "QX7731902"
    source = pydicom.dcmread(io.BytesIO(to_bytes(ds)), force=True)
    clean, _ = deidentify(pydicom.dcmread(io.BytesIO(to_bytes(ds)), force=True), DeidOptions(), KEY)
    out = tmp_path / "o"
    out.mkdir()
    path = out / "1.dcm"
    path.write_bytes(to_bytes(clean))
    check_outputs([path], out, source_identifiers([source], DeidOptions()))  # clean as written
    clean.add_new(0x00091011, "OB", b"\xe0\x7f\x10\x00OB\x00\x00\x04\x00\x00\x00")
    clean.StudyComments = "seen by QX7731902"
    path.write_bytes(to_bytes(clean))
    with pytest.raises(DeidentificationError):
        check_outputs([path], out, source_identifiers([source], DeidOptions()))


_TAG = b"\xe0\x7f\x10\x00"
_PIECES = st.one_of(
    st.binary(max_size=24),
    st.just(_TAG),
    st.tuples(st.sampled_from([b"OB\0\0", b"OW\0\0", b""]), st.integers(0, 96)).map(
        lambda p: _TAG + p[0] + p[1].to_bytes(4, "little")),
    st.just(_TAG + b"OB\0\0\xff\xff\xff\xff"),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(_PIECES, max_size=12), prefix=st.integers(1, 200))
def test_the_header_read_in_part_is_the_header_of_the_whole_file(tmp_path: Path, pieces: list[bytes],
                                                                  prefix: int) -> None:
    # Read a prefix first and the rest only when needed: the same bytes as placing Pixel Data
    # in the whole file, wherever the prefix ends (inside a tag, its VR or its length).
    data = b"".join(pieces)
    path = tmp_path / "f.dcm"
    path.write_bytes(data)
    assert read_header(path, prefix=prefix) == read_header(path, prefix=len(data) + 1)
    assert read_header(path, prefix=len(data) + 1) == _whole_file_header(data)


def _whole_file_header(data: bytes) -> bytes:
    """The rule, on the whole file: the first tag whose length is undefined or reaches the end."""
    for start in (i for i in range(len(data)) if data.startswith(_TAG, i)):
        explicit = data[start + 4:start + 6] in (b"OB", b"OW") and data[start + 6:start + 8] == b"\0\0"
        length = data[start + (8 if explicit else 4):start + (12 if explicit else 8)]
        if len(length) == 4:
            n = int.from_bytes(length, "little")
            if n == 0xFFFFFFFF or start + (12 if explicit else 8) + n == len(data):
                return data[:start]
    return data


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"], ids=["implicit", "explicit"])
def test_pixel_bytes_that_spell_a_source_value_are_not_searched(tmp_path: Path, syntax: str) -> None:
    # The gate searches the header only: pixels whose bytes happen to spell a value are no leak,
    # in either VR encoding (the Pixel Data element is placed by its structure in both).
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import UID

    ds = make_ct()
    ds.PatientID = "QX7731902"
    source = pydicom.dcmread(io.BytesIO(to_bytes(ds)), force=True)
    clean, _ = deidentify(pydicom.dcmread(io.BytesIO(to_bytes(ds)), force=True), DeidOptions(), KEY)
    pixels = bytearray(len(clean.PixelData))
    pixels[8:17] = b"QX7731902"
    clean.PixelData = bytes(pixels)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = clean.SOPClassUID, clean.SOPInstanceUID
    meta.TransferSyntaxUID = UID(syntax)
    clean.file_meta = meta
    out = tmp_path / "o"
    out.mkdir()
    path = out / "1.dcm"
    clean.save_as(path, enforce_file_format=True)
    assert b"QX7731902" in path.read_bytes()
    check_outputs([path], out, source_identifiers([source], DeidOptions()))
