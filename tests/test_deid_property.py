"""Property: whatever identifying strings are planted wherever, none survives de-identification."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.charset import convert_encodings, encode_string
from pydicom.datadict import DicomDictionary
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medaug.deid.engine import deidentify
from medaug.deid.keys import Key
from medaug.deid.options import DeidOptions
from medaug.deid.table import load_table
from tests.deid_synthetic import make_ct, roundtrip, to_bytes

KEY = Key(bytes(range(32)))
_TEXT = ("LO", "SH", "PN", "ST", "LT", "UT", "UC")
_SHORT = {"SH": 16, "LO": 64, "PN": 64}

# Public attributes of Table E.1-1 holding text that the Basic Profile does not keep.
TABLE_TEXT = sorted(
    (tag, DicomDictionary[tag][0])
    for tag, (basic, _opts) in load_table().rows.items()
    if tag in DicomDictionary and DicomDictionary[tag][0] in _TEXT and basic != "K" and tag >> 16 not in (0x0000, 0x0002)
)
# Public tags unknown to the dictionary and the table.
UNKNOWN_PUBLIC = [t for t in (0x00231234, 0x00457777, 0x10000010 + 0x0300, 0x00770010) if t not in DicomDictionary]
# Sequences outside the table, walked by the engine.
CONTAINERS = [0x00081199, 0x00081115, 0x0008114A, 0x00089124]  # ReferencedSOP, ReferencedSeries, ReferencedInstance, DerivationImage
CHARSETS = {
    "ISO_IR 192": "abcxyzÄÖÜßéΩπж漢字",
    "ISO_IR 100": "abcxyzÄÖÜßéñ",
    "\\ISO 2022 IR 87": "abcxyz山田太郎漢字",
    "ISO_IR 6": "abcdefghxyz",
}

marker = st.integers(min_value=0, max_value=10**9)


@st.composite
def planted_dataset(draw: Any) -> tuple[Dataset, list[str], list[str]]:
    charset = draw(st.sampled_from(sorted(CHARSETS)))
    alphabet = CHARSETS[charset]
    ds = make_ct(PatientName=f"Q{draw(marker)}^Q", PatientID=f"PID{draw(marker)}")
    ds.SpecificCharacterSet = charset.split("\\") if charset.startswith("\\") else charset
    strings: list[str] = [str(ds.PatientName), ds.PatientID]
    uids = [ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID]

    def a_string(vr: str) -> str:
        # A unique ASCII head keeps the value findable; the tail exercises the charset.
        text = f"ZQ{draw(marker):09d}" + draw(st.text(alphabet=alphabet, min_size=0, max_size=4))
        text = text[: _SHORT.get(vr, 64)]
        strings.append(text)
        return text

    def a_uid() -> str:
        uid = f"1.2.826.0.1.3680043.10.{draw(marker)}.{draw(marker)}"
        uids.append(uid)
        return uid

    def fill(item: Dataset, depth: int) -> None:
        for _ in range(draw(st.integers(1, 4))):
            where = draw(st.sampled_from(["table", "unknown", "private", "uid", "nest"]))
            if where == "table":
                tag, vr = draw(st.sampled_from(TABLE_TEXT))
                item.add_new(tag, vr, a_string(vr))
            elif where == "unknown":
                item.add_new(draw(st.sampled_from(UNKNOWN_PUBLIC)), draw(st.sampled_from(["LO", "UT", "PN"])), a_string("LO"))
            elif where == "private":
                group = draw(st.sampled_from([0x0009, 0x0019, 0x0029, 0x7FE1]))
                block = item.private_block(group, f"CREATOR {draw(st.integers(0, 3))}", create=True)
                offset = draw(st.integers(0x10, 0xFF))
                if depth < 3 and draw(st.booleans()):
                    child = Dataset()
                    fill(child, depth + 1)
                    block.add_new(offset, "SQ", Sequence([child]))
                else:
                    block.add_new(offset, draw(st.sampled_from(["LO", "UT", "SH"])), a_string("SH"))
            elif where == "uid":
                item.add_new(draw(st.sampled_from([0x00081155, 0x0020000D, 0x00080018, 0x00880140])), "UI", a_uid())
            elif depth < 3:
                child = Dataset()
                fill(child, depth + 1)
                item.add_new(draw(st.sampled_from(CONTAINERS)), "SQ", Sequence([child]))

    fill(ds, 0)
    return ds, strings, uids


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(planted_dataset())
def test_no_planted_value_survives(case: tuple[Dataset, list[str], list[str]]) -> None:
    ds, strings, uids = case
    encodings = convert_encodings(ds.SpecificCharacterSet)
    before = to_bytes(ds)
    out, _ = deidentify(roundtrip(ds), DeidOptions(), KEY)
    data = to_bytes(out)
    present = [t for t in strings if encode_string(t, encodings) in before]
    assert len(present) >= 2  # the property is not vacuous (later plants may overwrite earlier ones)
    for text in present:
        assert encode_string(text, encodings) not in data
        assert text[:11].encode("ascii") not in data
    for uid in uids:
        assert uid.encode("ascii") not in data
