"""Write the files of one series as :func:`pydicom.dcmwrite` does, encoding what they share once.

Every slice of every variant of a series carries mostly the same header; only a
few elements (instance UID and number, position, rescale, pixels) change from
file to file. :class:`TemplateWriter` keeps, per encoding (VR mode, byte order
and Specific Character Set), the bytes pydicom encoded for each element of the
file before, together with a *key*: a snapshot of everything that encoding
depended on (VR, length mode, the value as the writer reads it, and for
sequence items their own encoding state). A file is written in ascending tag
order, as :func:`pydicom.filewriter.write_dataset` writes it: an element whose
key equals the kept one is copied from the kept bytes, any other is encoded by
pydicom's own :func:`~pydicom.filewriter.write_data_element`. An element seen to
change between consecutive files is not compared again: it is encoded for
every file (the template is split into the runs between such elements). The
result is byte-identical to ``dcmwrite(fp, ds, enforce_file_format=True)``.

Nothing here encodes a value itself; a key only decides whether bytes pydicom
produced before can stand for the element now. A key is built only for value
types whose encoding is fully determined by what the key holds; any other value
(and any ambiguous VR, buffered value or deferred raw element) gets a key equal
to nothing, so it is encoded every time. Datasets the template does not cover
(a file meta read from a file, no or a private or deflated transfer syntax, a
preamble of the wrong length, command or file meta elements in the data set)
are written by ``dcmwrite`` itself.
"""

from __future__ import annotations

import copy
import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal, Protocol

from pydicom import dcmwrite
from pydicom.charset import default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset, validate_file_meta
from pydicom.filebase import DicomBytesIO, DicomIO
from pydicom.filewriter import correct_ambiguous_vr, write_data_element
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, tag_in_exception
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian
from pydicom.valuerep import AMBIGUOUS_VR, DA, DT, IS, TM, DSdecimal, DSfloat, PersonName

#: Which writer encodes output files: the template writer, or pydicom's own (the reference).
WriterKind = Literal["template", "dcmwrite"]

_PIXEL_DATA = 0x7FE00010
_GROUP_LENGTH = 0x00020000
#: Larger encoded elements are not kept: bulk values are rarely shared and would hold memory.
_MAX_KEPT = 64 * 1024
#: Value types that are immutable and encoded from their value alone.
_PLAIN = frozenset({str, UID, bytes, int, BaseTag})
_DOUBLE = struct.Struct("<d")


class FileWriter(Protocol):
    """Writes one DICOM file: what :func:`medaug.write.series.write_series` calls for each output."""

    def write(self, fp: BinaryIO, ds: Dataset) -> None:
        """Encode ``ds`` (with its ``file_meta``) as a DICOM file into ``fp``."""


class DcmwriteWriter:
    """pydicom's ``dcmwrite`` with the file format enforced: the reference :class:`TemplateWriter` equals."""

    def write(self, fp: BinaryIO, ds: Dataset) -> None:
        """Write ``ds`` to ``fp`` with :func:`pydicom.dcmwrite`."""
        dcmwrite(fp, ds, enforce_file_format=True)


def file_writer(kind: WriterKind = "template") -> FileWriter:
    """A new writer for one series' files.

    Examples
    --------
    >>> type(file_writer()).__name__
    'TemplateWriter'
    """
    if kind == "template":
        return TemplateWriter()
    if kind == "dcmwrite":
        return DcmwriteWriter()
    raise ValueError(f"unknown file writer kind {kind!r}")


@dataclass
class _Template:
    """The kept elements of one encoding: tag -> (key, encoded bytes), and what was seen to vary."""

    kept: dict[int, tuple[object, bytes]] = field(default_factory=dict)
    varying: set[int] = field(default_factory=set)
    missed: dict[int, int] = field(default_factory=dict)  # tag -> number of the last file it missed in
    files: int = 0


class TemplateWriter:
    """Writes the files of one series byte-identical to ``dcmwrite``, encoding shared elements once.

    Use one writer per series (all its variants): what it keeps is that
    series' header. Each call encodes one file. The dataset is changed only
    as ``dcmwrite`` changes it (ambiguous VRs resolved, raw elements
    converted, Pixel Data's length mode set), and no more than that.

    Examples
    --------
    >>> import io
    >>> from pydicom.dataset import Dataset, FileMetaDataset
    >>> from pydicom.uid import ExplicitVRLittleEndian
    >>> def slice_(n):
    ...     ds = Dataset()
    ...     ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", f"1.2.3.{n}"
    ...     ds.Modality, ds.InstanceNumber = "CT", n
    ...     ds.file_meta = FileMetaDataset()
    ...     ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ...     return ds
    >>> writer, same = TemplateWriter(), []
    >>> for n in (1, 2, 3):
    ...     ours, theirs = io.BytesIO(), io.BytesIO()
    ...     writer.write(ours, slice_(n))  # from the second file on, SOPClassUID and Modality are copied
    ...     dcmwrite(theirs, slice_(n), enforce_file_format=True)
    ...     same.append(ours.getvalue() == theirs.getvalue())
    >>> same
    [True, True, True]
    """

    def __init__(self) -> None:
        self._templates: dict[tuple[bool, bool, object], _Template] = {}
        self._meta = _Template()
        self._group_lengths: dict[int, bytes] = {}

    def write(self, fp: BinaryIO, ds: Dataset) -> None:
        """Write ``ds`` to ``fp`` exactly as ``dcmwrite(fp, ds, enforce_file_format=True)`` would.

        Parameters
        ----------
        fp : binary file
            Where the file goes (from its start: the preamble comes first).
        ds : Dataset
            The data set, with its ``file_meta`` (Transfer Syntax UID set).

        Raises
        ------
        Exception
            Whatever ``dcmwrite`` raises for this dataset (pydicom's encoders raise several types).
        """
        meta = _meta_copy(ds)
        if meta is None:
            dcmwrite(fp, ds, enforce_file_format=True)
            return
        tsyntax = UID(meta.TransferSyntaxUID)
        # What dcmwrite does to its copy of the file meta under enforce_file_format.
        meta_class, ds_class = meta.get("MediaStorageSOPClassUID", None), ds.get("SOPClassUID", None)
        if meta_class is None or (ds_class and ds_class != meta_class):
            meta.MediaStorageSOPClassUID = ds_class
        meta_instance, ds_instance = meta.get("MediaStorageSOPInstanceUID", None), ds.get("SOPInstanceUID", None)
        if meta_instance is None or (ds_instance and ds_instance != meta_instance):
            meta.MediaStorageSOPInstanceUID = ds_instance
        validate_file_meta(meta, enforce_standard=True)
        # PS3.5 A.4: encapsulated pixel data has undefined length, native a defined one.
        if "PixelData" in ds:
            ds["PixelData"].is_undefined_length = tsyntax.is_compressed
        preamble = getattr(ds, "preamble", None) or b"\x00" * 128

        out = fp if isinstance(fp, DicomIO) else DicomIO(fp)
        out.write(preamble)
        out.write(b"DICM")
        out.write(self._meta_bytes(meta))
        out.is_implicit_VR, out.is_little_endian = tsyntax.is_implicit_VR, tsyntax.is_little_endian
        self._write_elements(out, ds, meta=False)

    def _meta_bytes(self, meta: FileMetaDataset) -> bytes:
        """The File Meta Information group as ``write_file_meta_info`` encodes it."""
        buffer = _buffer(implicit=False, little=True)
        self._write_elements(buffer, meta, meta=True)
        rest = buffer.getvalue()
        # The group length counts the bytes after its own element (write_file_meta_info).
        length = len(rest)
        head = self._group_lengths.get(length)
        if head is None:
            head = _encoded(DataElement(_GROUP_LENGTH, "UL", length), implicit=False, little=True,
                            charset=default_encoding)
            self._group_lengths[length] = head
        return head + rest

    def _write_elements(self, fp: DicomIO, ds: Dataset, *, meta: bool) -> None:
        """Write the elements of ``ds`` as ``write_dataset`` does, reusing kept bytes where the key matches."""
        implicit, little = fp.is_implicit_VR, fp.is_little_endian
        # write_dataset's own rule: a data set not read in this encoding and character set
        # has its ambiguous VRs corrected and its raw elements converted before encoding.
        convert = (implicit, little) != ds.original_encoding or ds.original_character_set != ds._character_set
        if convert and not nothing_to_correct(ds):
            ds = correct_ambiguous_vr(ds, little)
        charset = ds.get("SpecificCharacterSet", default_encoding)
        if meta:
            template = self._meta
        else:
            template = self._templates.setdefault((implicit, little, _charset_key(charset)), _Template())
        template.files += 1
        number = template.files
        kept, varying, missed = template.kept, template.varying, template.missed
        elements = dict(ds.items())
        run: list[bytes] = []  # kept bytes not yet written: one write per run between per-file elements
        # Sorted as plain numbers: BaseTag's own comparison runs in Python and was the slowest step.
        for base_tag in sorted(elements, key=int):
            elem = elements[base_tag]
            tag = int(base_tag)  # plain int keys: BaseTag's __eq__ runs in Python on every lookup
            if (tag & 0xFFFF == 0 and tag >> 16 > 6) or (meta and tag == _GROUP_LENGTH):
                continue  # retired group lengths are not written; the meta's is written last
            if isinstance(elem, RawDataElement) and (convert or elem.value is None):
                elem = ds[tag]  # converted as write_dataset's __getitem__ (or get_item's deferred read) would
            if tag not in varying:
                key = _element_key(elem)
                entry = kept.get(tag)
                if entry is not None and entry[0] == key:
                    run.append(entry[1])
                    continue
                previous = missed.get(tag)
                missed[tag] = number
                if previous != number - 1 and tag != _PIXEL_DATA:
                    encoded = _encoded(elem, implicit=implicit, little=little, charset=charset)
                    if len(encoded) <= _MAX_KEPT:
                        kept[tag] = (key, encoded)
                    run.append(encoded)
                    continue
                # Changed in consecutive files: a per-file element, encoded from now on.
                varying.add(tag)
                kept.pop(tag, None)
            if run:
                fp.write(b"".join(run))
                run.clear()
            with tag_in_exception(base_tag):
                write_data_element(fp, elem, charset)
        if run:
            fp.write(b"".join(run))


def _meta_copy(ds: Dataset) -> FileMetaDataset | None:
    """A copy of ``ds.file_meta`` to complete and encode, or None where ``dcmwrite`` must write ``ds``.

    ``dcmwrite`` deep-copies the file meta; a copy of each element does as well
    here, because their values (UIDs, bytes) are immutable and only replaced.
    """
    source = getattr(ds, "file_meta", None)
    if source is None or source.original_encoding != (None, None):
        return None  # a meta read from a file may hold raw elements written as read
    if len(ds) and min(ds.keys(), key=int) >> 16 <= 2 and any(t >> 16 in (0, 2) for t in ds.keys()):
        return None  # command or file meta elements: dcmwrite refuses them; let it say so
    preamble = getattr(ds, "preamble", None)
    if preamble and len(preamble) != 128:
        return None
    tsyntax = source.get("TransferSyntaxUID", None)
    if tsyntax is None or tsyntax.is_private or not tsyntax.is_transfer_syntax:
        return None
    if tsyntax == DeflatedExplicitVRLittleEndian:
        return None  # the whole data set is compressed after encoding
    meta = FileMetaDataset()
    for elem in source.elements():
        if elem.is_raw or (elem.tag == _GROUP_LENGTH and elem.VR != "UL"):
            return None
        meta.add(copy.copy(elem))
    return meta


def nothing_to_correct(ds: Dataset, *, read_raw: bool = True) -> bool:
    """Whether ``correct_ambiguous_vr(ds)`` would change nothing (it is then not run).

    It reads deferred raw elements, converts raw sequences and resolves
    ambiguous VRs, at every level; a data set with none of these is left as is.
    With ``read_raw`` False any raw element counts as a change: encoding in
    another encoding converts them (in place), so only a data set without any
    is left untouched by every writer.
    """
    for elem in ds.values():
        vr = elem.VR
        if vr in AMBIGUOUS_VR:
            return False
        if isinstance(elem, RawDataElement):
            if not read_raw or elem.value is None or vr == "SQ":
                return False
        elif vr == "SQ" and not all(nothing_to_correct(item, read_raw=read_raw) for item in elem.value):
            return False
    return True


def _buffer(*, implicit: bool, little: bool) -> DicomBytesIO:
    buffer = DicomBytesIO()
    buffer.is_implicit_VR, buffer.is_little_endian = implicit, little
    return buffer


def _encoded(elem: DataElement | RawDataElement, *, implicit: bool, little: bool, charset: Any) -> bytes:
    """One element as pydicom's ``write_data_element`` encodes it in this encoding."""
    buffer = _buffer(implicit=implicit, little=little)
    with tag_in_exception(elem.tag):
        write_data_element(buffer, elem, charset)
    return buffer.getvalue()


# -- keys: what an element's encoding depends on ------------------------------------------


class _Unique:
    """A key equal to no other: the element is encoded every time."""

    __slots__ = ()


class _Same:
    """A key equal only to one of the same object (held, so its identity cannot be reused)."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.value is self.value

    def __hash__(self) -> int:
        return id(self.value)


def _charset_key(charset: Any) -> object:
    """A Specific Character Set value (one name or several) as a comparable key."""
    if isinstance(charset, str) or charset is None:
        return charset
    return tuple(charset)


def _element_key(elem: DataElement | RawDataElement) -> object:
    """Everything ``write_data_element`` reads of ``elem`` (its tag aside), or a unique key."""
    if isinstance(elem, RawDataElement):
        # Written as read, or converted with the data set's character set (in the item's key).
        if elem.VR is None or elem.VR in AMBIGUOUS_VR or elem.is_buffered or (elem.value is None and elem.length):
            return _Unique()
        return ("raw", elem.VR, elem.length, elem.value, elem.is_implicit_VR, elem.is_little_endian)
    vr = elem.VR
    if vr in AMBIGUOUS_VR:
        return _Unique()  # resolved from other elements when written: not comparable
    # A buffered value (a stream) is no type _value_key knows: its key is unique.
    return (vr, elem.is_undefined_length, _value_key(elem.value))


def _value_key(value: Any) -> object:
    kind = type(value)
    if kind in _PLAIN:
        return (kind, value)
    if value is None:
        return None
    if kind is float:
        return (float, _bits(value))  # -0.0 and 0.0, or two NaNs, are equal as numbers, not as bytes
    if kind is DSfloat or kind is DSdecimal or kind is IS:
        # write_number_string writes the original string when there is one, else str();
        # the number itself is what a binary VR would pack.
        text = value.original_string if hasattr(value, "original_string") else str(value)
        number = int(value) if kind is IS else _bits(float(value)) if kind is DSfloat else str(value)
        return (kind, text, number)
    if kind is MultiValue or kind is list or kind is tuple:
        return (kind, tuple(_value_key(v) for v in value))
    if kind is Sequence:
        return (Sequence, tuple(_dataset_key(item) for item in value))
    if kind is PersonName:
        return _person_name_key(value)
    if kind is DA or kind is DT or kind is TM:
        return _Same(value)  # encoded from the original string or strftime: compared as the same object
    return _Unique()


def _bits(value: float) -> bytes:
    return _DOUBLE.pack(value)


def _person_name_key(value: PersonName) -> object:
    """PersonName.encode: the original bytes when it has them (re-encoded only for other
    encodings, from components decoded from those bytes), else its components."""
    encodings = None if value.encodings is None else tuple(value.encodings)
    if value.original_string is not None:
        return (PersonName, encodings, value.original_string)
    return (PersonName, encodings, None, tuple(value.components))


def _dataset_key(item: Dataset) -> object:
    """A sequence item: its elements as read (no conversion) and what decides how they are written."""
    if not isinstance(item, Dataset):
        return _Unique()
    return (
        getattr(item, "is_undefined_length_sequence_item", False),
        item.original_encoding,
        _charset_key(item.original_character_set),
        _charset_key(item._character_set),
        # In stored order, without converting or reading anything: items built alike match.
        tuple((int(tag), _element_key(elem)) for tag, elem in item.items()),
    )


__all__ = ["DcmwriteWriter", "FileWriter", "TemplateWriter", "WriterKind", "file_writer", "nothing_to_correct"]
