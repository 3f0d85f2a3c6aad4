"""Each action code, each option, and every place identifiers hide, on tiny datasets."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.valuerep import VR

from medaug.deid.engine import DUMMIES, deidentify, shift_date
from medaug.deid.keys import Key
from medaug.deid.options import OPTION_CODES, BurnedInRule, DeidOptions, SafePrivate
from medaug.deid.pseudonyms import DATE_OFFSET_MAX_DAYS, DATE_OFFSET_MIN_DAYS
from medaug.deid.table import load_table, lookups
from medaug.errors import DeidentificationError, UsageError
from tests.deid_synthetic import CT, item, make_ct, roundtrip, to_bytes

KEY = Key(bytes(range(32)))
OTHER = Key(bytes(range(1, 33)))
BASIC = DeidOptions()


def deid(ds: Dataset, options: DeidOptions = BASIC, key: Key = KEY) -> Dataset:
    out, _ = deidentify(roundtrip(ds), options, key)
    return roundtrip(out)


# -- the table ----------------------------------------------------------------
def test_table_is_stamped_and_complete() -> None:
    table = load_table()
    assert "2024b" in table.edition and "2026c" in table.edition
    assert len(table.rows) == 652
    assert table.rows[0x00100010][0] == "Z"
    assert table.rows[0x00400556][0] == "X"  # one of the 2026c additions


def test_generator_reproduces_checked_in_table(tmp_path: Path) -> None:
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    reference = repo.parent / "shared" / "reference"
    if not reference.is_dir():
        if os.environ.get("CI"):
            pytest.fail("../shared/reference is missing in CI")
        pytest.skip("reference data not present")
    out = tmp_path / "table.json"
    done = subprocess.run(
        [sys.executable, str(repo / "scripts" / "generate_deid_table.py"), str(reference), "-o", str(out)],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    assert out.read_text() == (repo / "medaug" / "deid" / "data" / "annex_e_table.json").read_text()


# -- single action codes ------------------------------------------------------
def test_action_x_removes() -> None:
    out = deid(make_ct(InstitutionName="St Elsewhere", PatientAddress="1 Main St"))
    assert "InstitutionName" not in out and "PatientAddress" not in out


def test_action_z_empties() -> None:
    out = deid(make_ct())
    assert out["AccessionNumber"].value in ("", None)
    assert out["StudyDate"].value in ("", None)


def test_action_d_gives_valid_dummy() -> None:
    # Content Date is Type 1 in the Enhanced CT IOD, so its Z/D resolves to D.
    out = deid(make_ct(SOPClassUID="1.2.840.10008.5.1.4.1.1.2.1"))
    assert out.ContentDate == DUMMIES["DA"]
    # Performing Physician's Name is X; Person Observer Name (in table as D) gets the dummy.
    item = Dataset()
    item.PersonName = "Smith^John"
    out = deid(make_ct(ContentSequence=Sequence([item])), DeidOptions(clean_structured_content=True))
    assert out.ContentSequence[0].PersonName == DUMMIES["PN"]


def test_action_k_keeps_with_option() -> None:
    out = deid(make_ct(), DeidOptions(retain_patient_characteristics=True))
    assert out.PatientSex == "F" and out.PatientAge == "054Y"
    out = deid(make_ct())
    assert "PatientAge" not in out and out.PatientSex == ""


def test_action_u_is_keyed_and_consistent() -> None:
    ref = Dataset()
    ref.ReferencedSOPClassUID = CT
    ref.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.99.1.1"
    src = make_ct(ReferencedSOPSequence=Sequence([ref]))
    a, b, c = deid(src), deid(src), deid(src, key=OTHER)
    assert a.SOPInstanceUID.startswith("2.25.") and len(a.SOPInstanceUID) <= 64
    assert a.SOPInstanceUID == b.SOPInstanceUID
    assert a.SOPInstanceUID != c.SOPInstanceUID
    assert a.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == a.SOPInstanceUID
    assert a.ReferencedSOPSequence[0].ReferencedSOPClassUID == CT
    assert a.SOPClassUID == CT
    assert a.file_meta.MediaStorageSOPInstanceUID == a.SOPInstanceUID
    assert a.file_meta.TransferSyntaxUID == src.file_meta.TransferSyntaxUID


def test_well_known_uids_untouched() -> None:
    code = Dataset()
    code.CodeValue = "T-D3000"
    code.CodingSchemeDesignator = "SRT"
    code.CodeMeaning = "Chest"
    code.CodingSchemeUID = "2.16.840.1.113883.6.96"
    out = deid(make_ct(AnatomicRegionSequence=Sequence([code])))
    assert out.AnatomicRegionSequence[0].CodingSchemeUID == "2.16.840.1.113883.6.96"


def test_action_c_rebuilds_descriptions_from_coded_values_and_empties_other_text() -> None:
    source = make_ct(StudyDescription="CHEST for J. Smith 555 0199 ordered by Dr. Miller",
                     ImageComments="Ordered by Dr. Quillfeather", Occupation="Lighthouse crew",
                     BodyPartExamined="CHEST", SliceThickness="1.0", ConvolutionKernel="B70f",
                     ContrastBolusAgent="Omnipaque per Dr Miller")
    out = deid(source, DeidOptions(clean_descriptors=True))
    assert out.StudyDescription.startswith("CT CHEST") and out.StudyDescription.endswith("1 mm B70f +C")
    for keyword in ("ImageComments", "Occupation"):
        assert keyword not in out or out[keyword].value in (None, "")
    text = str(out)
    for word in ("Smith", "0199", "Miller", "Quillfeather", "Lighthouse", "Omnipaque"):
        assert word not in text
    # Same input, same text.
    assert deid(source, DeidOptions(clean_descriptors=True)).StudyDescription == out.StudyDescription
    assert "StudyDescription" not in deid(make_ct())


@pytest.mark.parametrize(
    ("type_", "code", "expected"),
    [
        ("1", "Z/D", "D"), ("2", "Z/D", "Z"), ("3", "X/Z", "X"), ("2", "X/Z", "Z"),
        ("3", "X/D", "X"), ("1", "X/D", "D"), ("3", "X/Z/D", "X"), ("2", "X/Z/D", "Z"),
        ("1", "X/Z/D", "D"), ("3", "X/Z/U*", "X"), ("2", "X/Z/U*", "Z"), ("1", "X/Z/U*", "U"),
        (None, "Z/D", "D"), (None, "X/Z", "Z"), (None, "X/D", "D"), (None, "X/Z/D", "D"), (None, "X/Z/U*", "U"),
    ],
)
def test_compound_resolution(type_: str | None, code: str, expected: str) -> None:
    from medaug.deid.table import _COMPOUND

    assert _COMPOUND[code][type_] == expected


def test_compound_codes_follow_the_iod() -> None:
    # Contrast/Bolus Agent (0018,0010) is Z/D; Type 2 in the CT IOD (Contrast/Bolus module).
    ct_top, _ = lookups(BASIC, CT)
    assert ct_top[0x00180010] == "Z"
    assert ct_top[0x00080022] == "X"  # Acquisition Date X/Z, Type 3 in CT
    unknown_top, _ = lookups(BASIC, "1.2.826.0.1.3680043.99.77")
    assert unknown_top[0x00180010] == "D" and unknown_top[0x00080022] == "Z"
    out = deid(make_ct(ContrastBolusAgent="Iodine by Dr Who", AcquisitionDate="20240301"))
    assert out.ContrastBolusAgent == "" and "AcquisitionDate" not in out
    out = deid(make_ct(SOPClassUID="1.2.826.0.1.3680043.99.77", ContrastBolusAgent="Iodine"))
    assert out.ContrastBolusAgent == DUMMIES["LO"]


# -- attributes outside the table --------------------------------------------
def test_unknown_public_and_pn_outside_table_removed() -> None:
    ds = make_ct()
    ds.add_new(0x00111234 - 0x00010000, "LO", "secret text")  # (0010,1234): not in the dictionary
    ds.EvaluatorName = "Evaluator^Eve"  # PN outside the table
    out = deid(ds)
    assert 0x00101234 not in out and "EvaluatorName" not in out


# -- options ------------------------------------------------------------------
def test_all_options_selectable_by_name() -> None:
    names = [n for n in OPTION_CODES if n not in ("retain_long_full_dates",)]
    options = DeidOptions.from_names(names)
    assert set(options.names) == set(names)
    with pytest.raises(UsageError, match="unknown de-identification option"):
        DeidOptions.from_names(["retain_everything"])
    with pytest.raises(UsageError, match="exclude each other"):
        DeidOptions.from_names(["retain_long_full_dates", "retain_long_modified_dates"])
    with pytest.raises(UsageError, match="clean_pixel_data"):
        DeidOptions(burned_in_rules=(BurnedInRule("A", "B", 4, 4, ((0, 0, 1, 1),)),))


# Clean Pixel Data is recorded only when a rule blanked pixels (see test_burned_in_rule_blanks).
@pytest.mark.parametrize("name", sorted(set(OPTION_CODES) - {"clean_pixel_data"}))
def test_each_option_is_recorded(name: str) -> None:
    out = deid(make_ct(), DeidOptions.from_names([name]))
    codes = [i.CodeValue for i in out.DeidentificationMethodCodeSequence]
    assert codes == ["113100", OPTION_CODES[name][0]]
    assert all(i.CodingSchemeDesignator == "DCM" for i in out.DeidentificationMethodCodeSequence)


def test_retain_full_dates() -> None:
    out = deid(make_ct(), DeidOptions(retain_long_full_dates=True))
    assert out.StudyDate == "20240301" and out.LongitudinalTemporalInformationModified == "UNMODIFIED"


def test_retain_modified_dates_shift_consistently_per_patient() -> None:
    opts = DeidOptions(retain_long_modified_dates=True)
    a = deid(make_ct(StudyDate="20240301", AcquisitionDateTime="20240301101500.25"), opts)
    b = deid(make_ct(StudyDate="20240305", StudyInstanceUID="1.2.826.0.1.3680043.99.9"), opts)
    other = deid(make_ct(PatientID="OTHER1", StudyDate="20240301"), opts)
    import datetime as dt

    def day(s: str) -> dt.date:
        return dt.date(int(s[:4]), int(s[4:6]), int(s[6:8]))

    shift = (day(a.StudyDate) - dt.date(2024, 3, 1)).days
    assert DATE_OFFSET_MIN_DAYS <= shift <= DATE_OFFSET_MAX_DAYS
    assert (day(b.StudyDate) - dt.date(2024, 3, 5)).days == shift
    assert a.AcquisitionDateTime.startswith(a.StudyDate) and a.AcquisitionDateTime.endswith("101500.25")
    assert a.StudyTime == "101500"
    assert other.StudyDate != a.StudyDate
    assert a.LongitudinalTemporalInformationModified == "MODIFIED"
    assert a.PatientBirthDate == ""  # Z in the table, no option column


def test_elements_stored_as_un_are_handled_by_their_dictionary_vr() -> None:
    """A writer that did not know an element stores it as UN; its meaning is still the dictionary's.

    Under Retain Modified Dates a UN-encoded Study Date is shifted like any date (not dropped,
    which would break the Type 2 attribute), and a UN-encoded UID is replaced by its keyed pseudonym.
    """
    opts = DeidOptions(retain_long_modified_dates=True)
    date, uid = b"20240301", b"1.2.826.0.1.3680043.99.1.777"
    plain = deid(make_ct(StudyDate=date.decode(), ReferencedSOPInstanceUID=uid.decode()), opts)
    # pydicom writes the dictionary VR, so the UN encoding (long form) is made by hand.
    data = to_bytes(make_ct(StudyDate=date.decode(), ReferencedSOPInstanceUID=uid.decode()))
    for tag, vr, value in ((b"\x08\x00\x20\x00", b"DA", date), (b"\x08\x00\x55\x11", b"UI", uid)):
        short = tag + vr + len(value).to_bytes(2, "little") + value
        assert data.count(short) == 1
        data = data.replace(short, tag + b"UN\x00\x00" + len(value).to_bytes(4, "little") + value)
    source = pydicom.dcmread(io.BytesIO(data))
    assert source.get_item(0x00080020).VR == "UN"
    out, _ = deidentify(source, opts, KEY)
    out = roundtrip(out)
    assert out.StudyDate == plain.StudyDate
    assert out.ReferencedSOPInstanceUID == plain.ReferencedSOPInstanceUID != uid.decode()
    assert uid not in to_bytes(out)


def test_shift_date_precision_and_garbage() -> None:
    assert shift_date("2024", 1, "DT") == "2024"
    assert shift_date("20231231", 1, "DA") == "20240101"
    assert shift_date("2024030", 1, "DA") == DUMMIES["DA"]
    assert shift_date("20240301\\20240302", -1, "DA") == "20240229\\20240301"


def test_retain_device_and_institution_identity() -> None:
    out = deid(make_ct(), DeidOptions(retain_device_identity=True, retain_institution_identity=True))
    assert out.DeviceSerialNumber == "SN4711" and out.InstitutionName == "St Elsewhere Hospital"
    out = deid(make_ct())
    assert "DeviceSerialNumber" not in out and "StationName" not in out


def test_retain_uids() -> None:
    out = deid(make_ct(), DeidOptions(retain_uids=True))
    assert out.SOPInstanceUID == "1.2.826.0.1.3680043.99.1.1"
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID


def test_private_removed_unless_safe_listed() -> None:
    ds = make_ct()
    block = ds.private_block(0x0029, "ACME SAFE", create=True)
    block.add_new(0x01, "DS", "1.5")
    block.add_new(0x02, "LO", "Doe^Jane again")
    item = Dataset()
    item.PatientName = "Nested^Doe"
    block.add_new(0x03, "SQ", Sequence([item]))
    other = ds.private_block(0x0031, "ACME OTHER", create=True)
    other.add_new(0x01, "LO", "private secret")
    assert not [e for e in deid(ds) if e.tag.is_private]
    opts = DeidOptions(retain_safe_private=True, safe_private=(SafePrivate("ACME SAFE", 0x01), SafePrivate("ACME SAFE", 0x03)))
    out, report = deidentify(roundtrip(ds), opts, KEY)
    out = roundtrip(out)
    kept = {e.tag for e in out if e.tag.is_private}
    assert kept == {0x00290010, 0x00291001, 0x00291003}
    assert str(out[0x00291003].value[0].PatientName).startswith("ANON^")
    assert report.private_kept == 2 and report.private_removed == 3


def _segmentation(sources: list[str]) -> Dataset:
    """A Segmentation header whose frames derive from `sources`, summarised in Referenced Series Sequence."""
    def ref(uid: str) -> Dataset:
        return item(ReferencedSOPClassUID=CT, ReferencedSOPInstanceUID=uid)

    frames = [
        item(DerivationImageSequence=Sequence([item(SourceImageSequence=Sequence([ref(uid)]))]))
        for uid in sources
    ]
    series = item(SeriesInstanceUID="1.2.826.0.1.3680043.99.7", ReferencedInstanceSequence=Sequence(
        [ref(uid) for uid in sources]))
    return make_ct(SOPClassUID="1.2.840.10008.5.1.4.1.1.66.4", PerFrameFunctionalGroupsSequence=Sequence(frames),
                   ReferencedSeriesSequence=Sequence([series]))


def test_dummy_reference_sequence_keeps_valid_items() -> None:
    """D on a Type 1 reference sequence (Referenced Performed Procedure Step in Enhanced MR) keeps
    one item per reference with only the class and a keyed UID; other D sequences are emptied."""
    enhanced_mr = "1.2.840.10008.5.1.4.1.1.4.1"
    step = item(ReferencedSOPClassUID="1.2.840.10008.3.1.2.3.3", ReferencedSOPInstanceUID="1.2.826.0.1.3680043.99.5",
                InstanceCreationDate="20240301", InstanceCreatorUID="1.2.826.0.1.3680043.99.6")
    step.add_new(0x20050010, "LO", "VENDOR")
    step.add_new(0x20051001, "LO", "Dr Planted Private")
    person = item(CodeValue="EMP12345", CodingSchemeDesignator="LOCAL", CodeMeaning="Jane Doe")
    source = make_ct(SOPClassUID=enhanced_mr, ReferencedPerformedProcedureStepSequence=Sequence([step]),
                     PersonIdentificationCodeSequence=Sequence([person]))
    out = deid(source)
    kept = out.ReferencedPerformedProcedureStepSequence
    assert len(kept) == 1
    assert sorted(e.keyword for e in kept[0]) == ["ReferencedSOPClassUID", "ReferencedSOPInstanceUID"]
    assert kept[0].ReferencedSOPClassUID == "1.2.840.10008.3.1.2.3.3"
    assert kept[0].ReferencedSOPInstanceUID.startswith("2.25.")
    assert len(out.PersonIdentificationCodeSequence) == 0
    data = to_bytes(out)
    for planted in (b"1.2.826.0.1.3680043.99", b"EMP12345", b"Jane Doe", b"Dr Planted", b"20240301"):
        assert planted not in data


def test_instance_summary_follows_the_references_kept() -> None:
    """Source Image Sequence is emptied (Type 2 in a Segmentation): the Common Instance Reference
    module no longer lists those instances, as PS3.3 C.12.2 requires; with Retain UIDs both stay."""
    sources = ["1.2.826.0.1.3680043.99.8.1", "1.2.826.0.1.3680043.99.8.2"]
    out, report = deidentify(roundtrip(_segmentation(sources)), BASIC, KEY)
    out = roundtrip(out)
    assert all(len(f.DerivationImageSequence[0].SourceImageSequence) == 0 for f in out.PerFrameFunctionalGroupsSequence)
    assert "ReferencedSeriesSequence" not in out
    assert report.actions["removed"][0x0008114A] == 2

    kept = deid(_segmentation(sources), DeidOptions(retain_uids=True))
    listed = [i.ReferencedSOPInstanceUID for i in kept.ReferencedSeriesSequence[0].ReferencedInstanceSequence]
    assert listed == sources


def test_instance_summary_keeps_what_is_still_referenced() -> None:
    """Only the entries nothing else references are dropped; a study left empty goes with them."""
    from medaug.deid.references import prune_instance_summary

    def listed(*uids: str) -> Dataset:
        return item(ReferencedInstanceSequence=Sequence([item(ReferencedSOPInstanceUID=u) for u in uids]))

    ds = item()
    ds.ReferencedImageSequence = Sequence([item(ReferencedSOPInstanceUID="2.25.1")])
    ds.ReferencedSeriesSequence = Sequence([listed("2.25.1", "2.25.2"), listed("2.25.3")])
    ds.StudiesContainingOtherReferencedInstancesSequence = Sequence(
        [item(ReferencedSeriesSequence=Sequence([listed("2.25.4")]))]
    )
    assert prune_instance_summary(ds) == 3
    assert len(ds.ReferencedSeriesSequence) == 1
    assert [i.ReferencedSOPInstanceUID for i in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence] == ["2.25.1"]
    assert "StudiesContainingOtherReferencedInstancesSequence" not in ds


def test_sequences_at_depth() -> None:
    inner = Dataset()
    inner.PatientName = "Deep^Doe"
    inner.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.99.1.1"
    inner.InstitutionName = "Deep Hospital"
    mid = Dataset()
    mid.ReferencedSeriesSequence = Sequence([inner])
    top = Dataset()
    top.ReferencedSOPSequence = Sequence([mid])
    out = deid(make_ct(ReferencedSOPSequence=Sequence([top])))
    deep = out.ReferencedSOPSequence[0].ReferencedSOPSequence[0].ReferencedSeriesSequence[0]
    assert deep.ReferencedSOPInstanceUID == out.SOPInstanceUID
    data = to_bytes(out)
    for planted in (b"Deep^Doe", b"Deep Hospital", b"1.2.826.0.1.3680043.99"):
        assert planted not in data


def test_overlays_and_curves_removed() -> None:
    ds = make_ct()
    ds.add_new(0x60000010, "US", 4)
    ds.add_new(0x60000011, "US", 4)
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60003000, "OW", b"\x01\x00")
    ds.add_new(0x60004000, "LT", "overlay comment Doe")
    ds.add_new(0x50000005, "US", 2)
    out, report = deidentify(roundtrip(ds), DeidOptions(clean_graphics=True), KEY)
    assert not [e for e in out if e.tag.group in (0x5000, 0x6000)]
    assert report.groups_removed == 6


def test_overlay_in_pixel_bits_quarantined() -> None:
    ds = make_ct()
    ds.add_new(0x60000010, "US", 4)
    with pytest.raises(DeidentificationError) as err:
        deidentify(ds, BASIC, KEY)
    assert err.value.reason == "overlay-in-pixel-data"


def test_file_meta_ae_titles_removed() -> None:
    out = deid(make_ct(StationAETitle="STATION_AE"))
    assert "SourceApplicationEntityTitle" not in out.file_meta
    assert b"HOSPITAL_AE" not in to_bytes(out)


@pytest.mark.parametrize(
    ("charset", "name"),
    [
        ("ISO_IR 192", "Ωμέγα^Jörg"),
        ("\\ISO 2022 IR 87", "Yamada^Tarou=山田^太郎"),
        ("ISO_IR 100", "Müller^Jörg"),
        ("ISO 2022 IR 100", "Müller^Jörg"),
    ],
)
def test_character_sets(charset: str, name: str) -> None:
    from pydicom.charset import convert_encodings, encode_string

    ds = make_ct(PatientName=name, InstitutionName=name, StudyDescription=name, OperatorsName=name)
    ds.SpecificCharacterSet = charset.split("\\") if "\\" in charset else charset
    encoded = encode_string(name, convert_encodings(ds.SpecificCharacterSet))
    assert encoded in to_bytes(ds)
    out = deid(ds)
    data = to_bytes(out)
    assert encoded not in data
    for part in name.replace("=", "^").split("^"):
        assert encode_string(part, convert_encodings(ds.SpecificCharacterSet)) not in data
    assert out.SpecificCharacterSet == ds.SpecificCharacterSet
    assert str(out.PatientName).startswith("ANON^")


# -- burned-in annotation -----------------------------------------------------
def test_burned_in_yes_quarantined() -> None:
    with pytest.raises(DeidentificationError) as err:
        deidentify(make_ct(BurnedInAnnotation="YES"), BASIC, KEY)
    assert err.value.reason == "burned-in-annotation"
    assert "ACME" not in str(err.value)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.6.1", "Modality": "US"}, "burned-in-unknown"),
        ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7", "Modality": "OT", "BurnedInAnnotation": "NO"}, "burned-in-unknown"),
        ({"ImageType": ["DERIVED", "SECONDARY", "SCREEN SAVE"]}, "burned-in-unknown"),
    ],
)
def test_high_risk_kinds_quarantined(changes: dict[str, object], reason: str) -> None:
    with pytest.raises(DeidentificationError) as err:
        deidentify(make_ct(**changes), BASIC, KEY)
    assert err.value.reason == reason


def test_encapsulated_document_quarantined() -> None:
    ds = make_ct(SOPClassUID="1.2.840.10008.5.1.4.1.1.104.1")
    del ds.PixelData
    ds.EncapsulatedDocument = b"%PDF-1.4 Doe^Jane"
    with pytest.raises(DeidentificationError) as err:
        deidentify(ds, BASIC, KEY)
    assert err.value.reason == "encapsulated-document"


def test_burned_in_rule_blanks() -> None:
    pixels = np.arange(1, 17, dtype=np.uint16).reshape(4, 4)
    ds = make_ct(SOPClassUID="1.2.840.10008.5.1.4.1.1.6.1", Modality="US", BurnedInAnnotation="YES",
                 PixelData=pixels.tobytes())
    rule = BurnedInRule("ACME", "Scanner 9000", 4, 4, ((1, 0, 2, 1),))
    out, report = deidentify(roundtrip(ds), DeidOptions(clean_pixel_data=True, burned_in_rules=(rule,)), KEY)
    out = roundtrip(out)
    arr = out.pixel_array
    assert arr[0, 1] == 0 and arr[0, 2] == 0 and arr[0, 0] == 1 and arr[1, 1] == 6
    assert out.BurnedInAnnotation == "NO" and report.pixels == "blanked"
    assert "113101" in [i.CodeValue for i in out.DeidentificationMethodCodeSequence]
    assert out.PatientIdentityRemoved == "YES"
    other = BurnedInRule("ACME", "Other", 4, 4, ((0, 0, 1, 1),))
    with pytest.raises(DeidentificationError):
        deidentify(roundtrip(ds), DeidOptions(clean_pixel_data=True, burned_in_rules=(other,)), KEY)


def test_pixels_untouched_without_rule() -> None:
    src = make_ct()
    out = deid(src)
    assert out.PixelData == src.PixelData


# -- marking and report ---------------------------------------------------------
def test_marking() -> None:
    out = deid(make_ct(DeidentificationMethod="earlier tool"))
    assert out.PatientIdentityRemoved == "YES"
    assert list(out.DeidentificationMethod)[0] == "earlier tool" and len(out.DeidentificationMethod) == 2
    assert out.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert out.LongitudinalTemporalInformationModified == "REMOVED"


def test_report_has_tags_and_counts_only() -> None:
    _, report = deidentify(make_ct(), BASIC, KEY)
    text = repr(report.as_dict())
    for value in ("Doe", "MRN123456", "20240301", "1.2.826.0.1.3680043.99", "ACC998877"):
        assert value not in text
    assert report.actions["replaced"][0x00080018] == 1
    assert report.actions["removed"][0x00080080] == 1
    assert report.count("emptied") >= 3


def test_patient_pseudonyms_keyed() -> None:
    a, b = deid(make_ct()), deid(make_ct(), key=OTHER)
    assert a.PatientID != "MRN123456" and a.PatientID != b.PatientID
    assert a.PatientID == deid(make_ct(StudyInstanceUID="1.2.3.99")).PatientID
    assert VR(a["PatientID"].VR) == VR.LO and len(a.PatientID) <= 64


def test_pixels_cleaned_by_caller() -> None:
    header = make_ct(BurnedInAnnotation="YES")
    del header.PixelData  # the pipeline keeps pixels apart and blanks them itself
    out, report = deidentify(header, DeidOptions(clean_pixel_data=True, burned_in_rules=(
        BurnedInRule("ACME", "Scanner 9000", 4, 4, ((0, 0, 1, 1),)),)), KEY, pixels_cleaned=True)
    assert out.BurnedInAnnotation == "NO" and report.pixels == "blanked" and "113101" in report.codes
