"""The template writer gives the bytes of pydicom's ``dcmwrite``, file for file.

Three angles: every fixture series written by medaug's writer (original and
derived variants, every transfer syntax the writer produces) through both
writers; every fixture object as pydicom reads it (raw elements, preambles,
file meta of its own), in several encodings; and random series of random
data sets, where the elements that change from file to file are drawn too.
The run-level comparison (every output of a ``medaug run``) is in
``tests/test_run_e2e.py``.
"""

from __future__ import annotations

import copy
import io
import struct
import tracemalloc
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)
from pydicom.valuerep import DSfloat, PersonName

from medaug.write.derivation import DEIDENTIFYING_EQUIPMENT, PROCESSING_EQUIPMENT, add_contributing_equipment
from medaug.write.series import write_series
from medaug.write.template import DcmwriteWriter, FileWriter, TemplateWriter, file_writer
from tests.write_helpers import UID_PREFIX, build_ct, fixture_series, load_one, load_ref

NATIVE = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian)


def _same_files(a: list[Path], b: list[Path]) -> None:
    assert [p.name for p in a] == [p.name for p in b]
    for x, y in zip(a, b):
        assert x.read_bytes() == y.read_bytes(), f"{x.name} differs"


def _mark(ds: Dataset, _k: int) -> None:
    add_contributing_equipment(ds, DEIDENTIFYING_EQUIPMENT)
    add_contributing_equipment(ds, PROCESSING_EQUIPMENT)


def _write_variants(image: Any, outdir: Path, writer: FileWriter, transfer_syntax: str) -> list[Path]:
    """The original and two variants of one series, all through ``writer`` (as a run does)."""
    n = 1 if image.multiframe else image.geometry.shape[0]
    paths: list[Path] = []
    for v, data in enumerate((image.data, image.data[::-1], np.ascontiguousarray(image.data[:, ::-1]))):
        result = write_series(
            replace(image, data=data),
            outdir / str(v),
            series_uid=f"{UID_PREFIX}7.{v}",
            sop_instance_uids=[f"{UID_PREFIX}8.{v}.{k}" for k in range(n)],
            frame_of_reference_uid=f"{UID_PREFIX}9.{v}" if v else None,
            derived=bool(v),
            derivation_description=f"variant {v}" if v else None,
            transfer_syntax=transfer_syntax,
            extra=_mark,
            durable=False,
            writer=writer,
        )
        paths.extend(result.paths)
    return paths


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless, JPEG2000Lossless])
def test_every_fixture_series_and_variant_is_written_as_dcmwrite_writes_it(
    archive: Path, manifest: dict[str, Any], syntax: str, tmp_path: Path
) -> None:
    series = fixture_series(archive, manifest)
    assert len(series) == len(manifest["series"])
    for name, ref in series:
        image = load_ref(ref)
        before = copy.deepcopy(image.headers)
        ours = _write_variants(image, tmp_path / name / "template", TemplateWriter(), syntax)
        theirs = _write_variants(image, tmp_path / name / "dcmwrite", DcmwriteWriter(), syntax)
        _same_files(ours, theirs)
        # The output datasets share sequence items with these headers: neither writer changed them.
        assert image.headers == before, name


def _fixture_objects(archive: Path) -> dict[Path, list[Path]]:
    """Every file of the archive pydicom reads as DICOM, by folder."""
    folders: dict[Path, list[Path]] = {}
    for path in sorted(p for p in archive.rglob("*") if p.is_file() and p.name != "DICOMDIR"):
        try:
            pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError):
            continue
        folders.setdefault(path.parent, []).append(path)
    return folders


def _encode(writer: FileWriter, ds: Dataset) -> bytes | str:
    """The file's bytes, or the name of the exception the writer raised."""
    buffer = io.BytesIO()
    try:
        writer.write(buffer, ds)
    except Exception as exc:  # pydicom's encoders raise several types
        return type(exc).__name__
    return buffer.getvalue()


def test_every_fixture_object_as_read_is_written_as_dcmwrite_writes_it(archive: Path) -> None:
    """Read objects keep raw elements, a preamble and encodings of their own: each path of the writer."""
    folders = _fixture_objects(archive)
    assert sum(len(files) for files in folders.values()) >= 100
    written = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # damaged fixture headers make pydicom warn
        for files in folders.values():
            for syntax in (None, *NATIVE):
                template = TemplateWriter()
                for path in files:
                    ours, theirs = pydicom.dcmread(path), pydicom.dcmread(path)
                    for ds in (ours, theirs):
                        meta = FileMetaDataset()
                        meta.TransferSyntaxUID = syntax or ds.file_meta.get("TransferSyntaxUID", ImplicitVRLittleEndian)
                        ds.file_meta = meta
                    expected = _encode(DcmwriteWriter(), theirs)
                    assert _encode(template, ours) == expected, f"{path.name} in {syntax}"
                    written += isinstance(expected, bytes)
    assert written >= 400


# -- random series of random data sets ------------------------------------------------------------

# Small pools of values, several of them equal as numbers or text but encoded differently
# ("1" and "1.00", 0.0 and -0.0, a str and a PersonName, defined and undefined lengths):
# consecutive files then often repeat a value, or differ from it only in how it is encoded.
_UIDS = st.sampled_from(["1.2.826.0.1.3", "1.2.826.0.1.4", "1.2.826.0.1.3.5"])
_TEXT = st.sampled_from(["", "Abc", "Abc ", "é日本", "A^B", "é"])
_DS = st.sampled_from([
    "1", "1.0", "1.00", " 1", "-0.0", "0", "2.5", lambda: DSfloat(1.0, auto_format=True),
    lambda: DSfloat("1.0"), lambda: DSfloat(-0.0, auto_format=True),
])
_OTHER_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000001))[0]  # a NaN of other bits
_FLOATS = st.sampled_from([0.0, -0.0, float("nan"), _OTHER_NAN, 1e300])
_CHARSETS = st.sampled_from([None, "ISO_IR 100", "ISO_IR 192", ["ISO 2022 IR 6", "ISO 2022 IR 100"]])
_VALUES: dict[str, Any] = {
    "SpecificCharacterSet": _CHARSETS,
    "SeriesInstanceUID": _UIDS,
    "Modality": st.sampled_from(["CT", "MR", ""]),
    "PatientName": st.one_of(_TEXT, _TEXT.map(lambda t: lambda: PersonName(t))),
    "StudyDescription": _TEXT,
    "StudyDate": st.sampled_from(["20240102", "", "19991231"]),
    "InstanceNumber": st.sampled_from([1, 2, "1", "01", " 2"]),
    "SliceThickness": _DS,
    "ImagePositionPatient": st.lists(_DS, min_size=3, max_size=3),
    "PixelSpacing": st.lists(_DS, min_size=1, max_size=2),
    "ImageType": st.lists(st.sampled_from(["DERIVED", "PRIMARY", "AXIAL"]), min_size=1, max_size=3),
    "Rows": st.sampled_from([1, 2, 512]),
    "PixelRepresentation": st.sampled_from([0, 1]),
    "SmallestImagePixelValue": st.sampled_from([0, 1, 200]),
    "DiffusionBValue": _FLOATS,
    "DiffusionGradientOrientation": st.lists(_FLOATS, min_size=3, max_size=3),
    "FrameIncrementPointer": st.sampled_from([0x00181063, 0x00181065]),
    "ReferencedImageSequence": st.integers(0, 2),
    "SourceImageSequence": st.integers(1, 1),
    "EncapsulatedDocument": st.sampled_from([b"", b"ab", b"abcd"]),
}
_KEYWORDS = list(_VALUES)


def _fresh(value: Any) -> Any:
    """A drawn value; constructors in the pools give a new object each time."""
    if callable(value):
        return value()
    return [_fresh(v) for v in value] if isinstance(value, list) else value


def _item(draw: Any, depth: int) -> Dataset:
    """A sequence item from few contents (so that equal items are common) with random length flags."""
    item = Dataset()
    if draw(st.integers(0, 3)) == 0:
        item.SpecificCharacterSet = _fresh(draw(_CHARSETS))
    item.ReferencedSOPInstanceUID = draw(st.sampled_from(["1.2.3", "1.2.4"]))
    if draw(st.booleans()):
        item.CodeMeaning = "é"
    if depth and draw(st.booleans()):
        item.ReferencedFrameNumber = draw(st.sampled_from([1, "1", "01"]))
        item.PurposeOfReferenceCodeSequence = Sequence([_item(draw, depth - 1)])
    item.is_undefined_length_sequence_item = draw(st.booleans())
    return item


def _element(draw: Any, keyword: str) -> DataElement:
    """A random value for one of the elements the property draws from."""
    value = _fresh(draw(_VALUES[keyword]))
    sequence = keyword.endswith("Sequence")
    if sequence:
        value = Sequence([_item(draw, 1) for _ in range(value)])
    elem = DataElement(keyword, pydicom.datadict.dictionary_VR(keyword), value)
    if sequence:
        elem.is_undefined_length = draw(st.booleans())
    return elem


@st.composite
def _series(draw: Any) -> list[tuple[Dataset, UID]]:
    """Files built from one random base: in each, every element is kept, drawn anew or dropped."""
    base = Dataset()
    base.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    for keyword in _KEYWORDS:
        if draw(st.booleans()):
            base.add(_element(draw, keyword))
    if draw(st.booleans()):
        base.add_new(0x00090010, "LO", "ACME 1.0")  # a private block, and an element in it
        vr = draw(st.sampled_from(["LO", "UN", "OB"]))
        base.add_new(0x00091001, vr, "ab" if vr == "LO" else draw(st.binary(max_size=6)))
    if draw(st.booleans()):
        base.add_new(0x00080000, "UL", 0)  # a retired group length: never written
    files = []
    meta = draw(_META)
    syntax = draw(st.sampled_from(NATIVE))
    for _ in range(draw(st.integers(2, 6))):
        ds = Dataset()
        for elem in base:
            # Shared objects (as variants of one source slice have) or copies (as separate slices have).
            ds.add(copy.copy(elem) if draw(st.booleans()) else copy.deepcopy(elem))
        ds.SOPInstanceUID = draw(_UIDS)
        if draw(st.integers(0, 3)) == 0:
            ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"  # which the file meta's class then follows
        for keyword in _KEYWORDS:
            change = draw(st.sampled_from(["keep", "keep", "keep", "draw", "draw", "drop", "lengths"]))
            if change == "draw":
                ds.add(_element(draw, keyword))
            elif change == "drop" and keyword in ds:
                del ds[keyword]
            elif change == "lengths" and keyword.endswith("Sequence") and keyword in ds:
                # The same items, with other defined / undefined lengths.
                elem = copy.deepcopy(ds[keyword])
                elem.is_undefined_length = draw(st.booleans())
                for item in elem.value:
                    item.is_undefined_length_sequence_item = draw(st.booleans())
                ds[keyword] = elem
        if draw(st.integers(0, 2)) == 0:
            syntax = draw(st.sampled_from([*NATIVE, RLELossless]))
        frame = draw(st.binary(min_size=2, max_size=16).map(lambda b: b + b"\x00" * (len(b) % 2)))
        if syntax == RLELossless:
            ds.PixelData = encapsulate([frame])
        elif draw(st.booleans()):
            ds.add_new(0x7FE00010, "OW", frame)
        if draw(st.integers(0, 3)) == 0:
            meta = draw(_META)  # mostly one file meta recipe for the series, as a writer has
        elif draw(st.integers(0, 3)) == 0:
            meta = {**meta, "instance": draw(_INSTANCE)}  # the same but for the instance UID
        ds.file_meta = _file_meta(meta, ds, syntax)
        if draw(st.integers(0, 5)) == 0:
            del ds.SOPInstanceUID  # the file meta's instance UID then stays as it is
        if draw(st.booleans()):
            ds.preamble = b"\x01" * 128
        files.append((ds, syntax))
    return files


_INSTANCE = st.sampled_from(["absent", "same", "same", "same", "other", "empty"])
_META = st.fixed_dictionaries({
    "instance": _INSTANCE,
    "class": st.sampled_from(["absent", "same", "other"]),
    "version": st.sampled_from([None, b"\x00\x01", b""]),
    "implementation": st.sampled_from([None, "1.2.826.0.1.3680043.10.543", "1.2.3"]),
    "name": st.sampled_from([None, "MEDAUG_1", "OTHER", ""]),
})


def _file_meta(choice: dict[str, Any], ds: Dataset, syntax: UID) -> FileMetaDataset:
    """A file meta as a writer builds one (instance UID that of the data set) or not quite."""
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = syntax
    instances: dict[str, str] = {"same": ds.SOPInstanceUID, "other": "1.2.826.0.1.9", "empty": ""}
    if choice["instance"] != "absent":
        meta.MediaStorageSOPInstanceUID = UID(instances[choice["instance"]])
    if choice["class"] != "absent":
        meta.MediaStorageSOPClassUID = UID(ds.SOPClassUID if choice["class"] == "same" else "1.2.840.10008.5.1.4.1.1.4")
    if choice["version"] is not None:
        meta.FileMetaInformationVersion = choice["version"]
    if choice["implementation"] is not None:
        meta.ImplementationClassUID = choice["implementation"]
    if choice["name"] is not None:
        meta.ImplementationVersionName = choice["name"]
    return meta


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_series())
def test_random_series_are_written_as_dcmwrite_writes_them(files: list[tuple[Dataset, UID]]) -> None:
    template = TemplateWriter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about some drawn values (e.g. long DS strings)
        for number, (ds, _) in enumerate(files):
            expected = _encode(DcmwriteWriter(), copy.deepcopy(ds))
            assert _encode(template, copy.deepcopy(ds)) == expected, f"file {number}"


def test_values_changed_in_place_are_not_taken_from_the_template() -> None:
    """The kept bytes stand for a snapshot of the value, not for the object it was read from."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", "1.2.3.1"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    item = Dataset()
    item.CodeValue = "113076"
    ds.DerivationCodeSequence = Sequence([item])
    ds.PatientName = PersonName("Before^Name")
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    template = TemplateWriter()
    changes = [
        lambda: None,
        lambda: ds.ImageType.append("AXIAL"),
        lambda: setattr(item, "CodeValue", "113072"),
        lambda: item.add_new(0x00080104, "LO", "Multiplanar reformatting"),
        lambda: setattr(ds, "PatientName", "After^Name"),
        lambda: ds.DerivationCodeSequence.append(Dataset()),
        lambda: setattr(ds, "SpecificCharacterSet", "ISO_IR 192"),
    ]
    for number, change in enumerate(changes):
        change()
        expected = _encode(DcmwriteWriter(), copy.deepcopy(ds))
        assert _encode(template, ds) == expected, f"change {number}"


def test_what_the_template_cannot_vouch_for_goes_to_dcmwrite_with_its_errors() -> None:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", "1.2.3.1"
    assert _encode(TemplateWriter(), ds) == _encode(DcmwriteWriter(), ds)  # no file meta at all
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.preamble = b"short"
    assert _encode(TemplateWriter(), ds) == _encode(DcmwriteWriter(), ds) == "ValueError"
    del ds.preamble
    ds.add_new(0x00020010, "UI", ImplicitVRLittleEndian)  # file meta in the data set
    assert _encode(TemplateWriter(), ds) == _encode(DcmwriteWriter(), ds) == "ValueError"
    del ds[0x00020010]
    with pytest.warns(UserWarning, match="cannot be assigned"):
        ds.add(DataElement(0x00280010, "US", "not a number"))  # a value its VR cannot encode
    ours, theirs = _encode(TemplateWriter(), ds), _encode(DcmwriteWriter(), ds)
    assert ours == theirs and isinstance(ours, str)


def test_file_writer_kinds() -> None:
    assert isinstance(file_writer("template"), TemplateWriter)
    assert isinstance(file_writer("dcmwrite"), DcmwriteWriter)
    with pytest.raises(ValueError, match="unknown file writer"):
        file_writer("fast")  # type: ignore[arg-type]


def test_sequences_that_encoding_would_change_are_not_shared_with_the_headers(tmp_path: Path) -> None:
    """Items holding a raw element or an ambiguous VR are converted in place by encoding: copied first."""
    image = load_one(build_ct(tmp_path / "src", np.random.default_rng(5)).directory)
    as_read = RawDataElement(Tag(0x00081150), "UI", 8, b"1.2.3.4\x00", 0, False, True)
    for header in image.headers:
        raw, ambiguous, plain = Dataset(), Dataset(), Dataset()
        # As read from an explicit VR file: converted when the item is written implicit.
        raw[0x00081150] = as_read
        ambiguous.add_new(0x00281101, "US or SS", [256, 0, 16])  # resolved from Pixel Representation
        plain.ReferencedSOPInstanceUID = "1.2.3.5"
        header.ReferencedImageSequence = Sequence([raw, plain])
        header.add_new(0x00283010, "SQ", Sequence([ambiguous]))  # VOI LUT Sequence
        header.SourceImageSequence = Sequence([plain])
    before = copy.deepcopy(image.headers)
    for syntax in (ImplicitVRLittleEndian, ExplicitVRLittleEndian):
        for header in image.headers:  # raw again (the comparison of the previous round read it)
            header.ReferencedImageSequence[0][0x00081150] = as_read
        ours = _write_variants(image, tmp_path / syntax.name / "template", TemplateWriter(), syntax)
        theirs = _write_variants(image, tmp_path / syntax.name / "dcmwrite", DcmwriteWriter(), syntax)
        _same_files(ours, theirs)
        # Asked without reading the element: equality below reads (converts) raw elements as it compares.
        assert all(isinstance(h.ReferencedImageSequence[0].get_item(0x00081150), RawDataElement) for h in image.headers)
        assert image.headers == before, syntax.name


def test_slices_larger_than_a_kept_part_are_written_as_dcmwrite_writes_them(tmp_path: Path) -> None:
    """Pixel Data of 128 KiB: kept by Parts as written, the file written by one writev of several parts."""
    from medaug.geometry import Geometry
    from tests.write_helpers import build_stack

    geometry = Geometry.from_arrays((3, 256, 256), (2.0, 0.5, 0.5), (-64.0, -64.0, 10.0), np.eye(3))
    source = build_stack(tmp_path / "src", kind="MR", geometry=geometry, dtype=np.dtype("<u2"), bits_stored=16,
                         rescale=(1.0, 0.0), rng=np.random.default_rng(2))
    image = load_one(source.directory)
    assert len(TemplateWriter().encode(_first_output(image, tmp_path / "probe"))) > 1  # the header, then Pixel Data
    for syntax in (ExplicitVRLittleEndian, RLELossless):
        ours = _write_variants(image, tmp_path / syntax.name / "template", TemplateWriter(), syntax)
        theirs = _write_variants(image, tmp_path / syntax.name / "dcmwrite", DcmwriteWriter(), syntax)
        _same_files(ours, theirs)


def _first_output(image: Any, outdir: Path) -> Dataset:
    """The first dataset write_series gives its writer."""
    kept: list[Dataset] = []

    class Keep(DcmwriteWriter):
        def encode(self, ds: Dataset) -> list[bytes]:
            kept.append(ds)
            return super().encode(ds)

    write_series(image, outdir, series_uid=f"{UID_PREFIX}7", sop_instance_uids=[f"{UID_PREFIX}8.{k}" for k in range(3)],
                 durable=False, writer=Keep())
    return kept[0]


def test_a_long_value_that_differs_in_every_file_is_kept_a_bounded_number_of_times() -> None:
    """Only the first few long encodings of a tag are kept: a writer's memory does not grow with the files."""
    writer = TemplateWriter()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number in range(300):
            ds = Dataset()
            ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", "1.2.3.1"  # short values: kept
            ds.TextValue = f"{number:06d}" * 4000  # 24,000 characters, in no other file
            ds.file_meta = FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            assert _encode(writer, ds) == _encode(DcmwriteWriter(), ds)
        del ds
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 1_000_000  # all 300 encodings would hold 7.2 MB
