"""Write the files of one series as :func:`pydicom.dcmwrite` does, encoding what they share once.

Every slice of every variant of a series carries mostly the same header; only a
few elements (instance UID and number, position, rescale, pixels) change from
file to file. :class:`TemplateWriter` keeps, per encoding (VR mode, byte order
and Specific Character Set), the bytes pydicom encoded for each element it
wrote, under a *key*: a snapshot of everything that encoding depended on (VR,
length mode, the value as the writer reads it, and for sequence items their
own encoding state). A file is written in ascending tag order, as
:func:`pydicom.filewriter.write_dataset` writes it: an element whose key is
kept is copied from the kept bytes, any other is encoded by pydicom's own
:func:`~pydicom.filewriter.write_data_element`. A tag keeps several keys (a
bounded number of short encodings), so a per-slice value such as a position,
met again in the next variant of the series, is not encoded again; Pixel Data
and other bulk values are encoded every time and not kept. The File Meta
Information group, the same in every file but for its instance UID, is kept as
the bytes around that element. The file is assembled in memory (:class:`Parts`,
without copying Pixel Data) for one write. The result is byte-identical to
``dcmwrite(fp, ds, enforce_file_format=True)``.

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
import io
import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal, Protocol, cast

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
_MEDIA_INSTANCE = 0x00020003
#: File metas kept as a plan (a series has one): bounds what keys that never recur would hold.
_MAX_META_PLANS = 8
#: Larger encoded elements are not kept: bulk values are rarely shared and would hold memory.
_MAX_KEPT = 64 * 1024
#: Encodings kept per tag beyond the first (one per slice of a series for a position), and
#: how long each may be: bounds what a writer holds for an element that differs in every file.
_MAX_VALUES = 4096
_MAX_VALUE_BYTES = 256
#: Encodings of a tag kept whatever their length (up to ``_MAX_KEPT``): a sequence that takes a
#: few forms in a series (the original's Contributing Equipment, and the variants' with one item
#: more) is longer than a per-file value but is met in file after file.
_MAX_LONG_VALUES = 8
#: Written values at least this long are kept by :class:`Parts` as they are, not copied.
_LARGE = 64 * 1024
#: Value types that are immutable and encoded from their value alone.
_PLAIN = frozenset({str, UID, bytes, int, BaseTag})
_DOUBLE = struct.Struct("<d")


class FileWriter(Protocol):
    """Encodes one DICOM file: what :func:`medaug.write.series.write_series` calls for each output."""

    def write(self, fp: BinaryIO, ds: Dataset) -> None:
        """Encode ``ds`` (with its ``file_meta``) as a DICOM file into ``fp``."""

    def encode(self, ds: Dataset) -> list[bytes]:
        """The bytes of the file ``write`` writes, in parts (their concatenation is the file)."""


class DcmwriteWriter:
    """pydicom's ``dcmwrite`` with the file format enforced: the reference :class:`TemplateWriter` equals."""

    def write(self, fp: BinaryIO, ds: Dataset) -> None:
        """Write ``ds`` to ``fp`` with :func:`pydicom.dcmwrite`."""
        dcmwrite(fp, ds, enforce_file_format=True)

    def encode(self, ds: Dataset) -> list[bytes]:
        """What :meth:`write` writes, kept in memory as written (see :class:`Parts`)."""
        parts = Parts()
        dcmwrite(parts, ds, enforce_file_format=True)
        return parts.parts()


class Parts:
    """A write-only file that keeps what is written to it, for one write of the whole file later.

    Small writes (tags, lengths, short values) are gathered into one part; a
    large value (Pixel Data) is kept as the bytes object written, not copied.
    pydicom writes a file front to back (it seeks only in buffers of its own),
    so ``seek`` is refused.

    Examples
    --------
    >>> sink = Parts()
    >>> for data in (b"ab", b"c", bytes(70000), b"d"):
    ...     _ = sink.write(data)
    >>> [len(p) for p in sink.parts()], sink.tell()
    ([3, 70000, 1], 70004)
    """

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._small = bytearray()
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Keep ``data`` (a copy of it unless it is a large bytes object)."""
        n = len(data)
        if n >= _LARGE and isinstance(data, bytes):
            self._gather()
            self._parts.append(data)
        else:
            self._small += data
        self._size += n
        return n

    def tell(self) -> int:
        """Bytes written so far."""
        return self._size

    def seek(self, offset: int, whence: int = 0) -> int:
        """Refused: what is written is final."""
        raise io.UnsupportedOperation("Parts is written front to back")

    def parts(self) -> list[bytes]:
        """What was written, in order."""
        self._gather()
        return self._parts

    def _gather(self) -> None:
        if self._small:
            self._parts.append(bytes(self._small))
            self._small.clear()


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
    """What one encoding keeps: per tag, the bytes pydicom gave for each key seen, and the tags not kept."""

    kept: dict[int, dict[object, bytes]] = field(default_factory=dict)
    direct: set[int] = field(default_factory=lambda: {_PIXEL_DATA})  # always encoded: bulk values


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
        self._meta_plans: dict[object, tuple[bytes, bytes]] = {}
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
            Nothing is written then.
        """
        for part in self.encode(ds):
            fp.write(part)

    def encode(self, ds: Dataset) -> list[bytes]:
        """The bytes :meth:`write` writes, in parts: the header (one part) and large values as they are.

        Raises
        ------
        Exception
            As :meth:`write`.
        """
        sink = Parts()
        out = DicomIO(sink)
        source = _covered_meta(ds)
        if source is None:
            dcmwrite(out, ds, enforce_file_format=True)
            return sink.parts()
        tsyntax = UID(source.TransferSyntaxUID)
        group = self._meta_group(ds, source)
        # PS3.5 A.4: encapsulated pixel data has undefined length, native a defined one.
        if "PixelData" in ds:
            ds["PixelData"].is_undefined_length = tsyntax.is_compressed
        preamble = getattr(ds, "preamble", None) or b"\x00" * 128

        out.write(preamble)
        out.write(b"DICM")
        out.write(group)
        out.is_implicit_VR, out.is_little_endian = tsyntax.is_implicit_VR, tsyntax.is_little_endian
        self._write_elements(out, ds, meta=False)
        return sink.parts()

    def _meta_group(self, ds: Dataset, source: FileMetaDataset) -> bytes:
        """The File Meta Information group ``dcmwrite`` writes for ``ds`` (with file meta ``source``).

        Raises
        ------
        Exception
            What ``validate_file_meta`` raises for it.
        """
        found = _meta_key(ds, source)
        if found is not None:
            key, instance = found
            plan = self._meta_plans.get(key)
            if plan is not None:
                # The same file meta but for its instance UID, as in every file of a series:
                # only that element is encoded (and the group length looked up).
                before, after = plan
                rest = before + _encoded(instance, implicit=False, little=True, charset=default_encoding) + after
                return self._group_length(len(rest)) + rest
        meta = _completed_meta(ds, source)
        buffer = _buffer(implicit=False, little=True)
        self._write_elements(buffer, meta, meta=True)
        rest = buffer.getvalue()
        if found is not None and len(self._meta_plans) < _MAX_META_PLANS:
            self._keep_meta_plan(found[0], meta, rest)
        return self._group_length(len(rest)) + rest

    def _keep_meta_plan(self, key: object, meta: FileMetaDataset, rest: bytes) -> None:
        """Keep the group's elements before and after its instance UID, if they are what was written."""
        encoded = {
            int(tag): _encoded(elem, implicit=False, little=True, charset=default_encoding)
            for tag, elem in meta.items()
            if int(tag) != _GROUP_LENGTH
        }
        instance = encoded.get(_MEDIA_INSTANCE)
        before = b"".join(encoded[t] for t in sorted(encoded) if t < _MEDIA_INSTANCE)
        after = b"".join(encoded[t] for t in sorted(encoded) if t > _MEDIA_INSTANCE)
        if instance is not None and before + instance + after == rest:
            self._meta_plans[key] = (before, after)

    def _group_length(self, length: int) -> bytes:
        """The group length element (it counts the bytes after itself, as write_file_meta_info writes it)."""
        head = self._group_lengths.get(length)
        if head is None:
            head = _encoded(DataElement(_GROUP_LENGTH, "UL", length), implicit=False, little=True,
                            charset=default_encoding)
            self._group_lengths[length] = head
        return head

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
        kept, direct = template.kept, template.direct
        # Sorted as plain numbers (unique, so nothing else is compared): BaseTag's own comparison,
        # hash and equality run in Python, and plain int keys avoid them in every lookup below.
        for tag, base_tag, elem in sorted([(int(t), t, e) for t, e in ds.items()]):
            if (tag & 0xFFFF == 0 and tag >> 16 > 6) or (meta and tag == _GROUP_LENGTH):
                continue  # retired group lengths are not written; the meta's is written last
            if isinstance(elem, RawDataElement) and (convert or elem.value is None):
                elem = ds[tag]  # converted as write_dataset's __getitem__ (or get_item's deferred read) would
            if tag in direct:
                with tag_in_exception(base_tag):
                    write_data_element(fp, elem, charset)
                continue
            key = _element_key(elem)
            known = kept.get(tag)
            encoded = None if known is None else known.get(key)
            if encoded is None:
                encoded = _encoded(elem, implicit=implicit, little=little, charset=charset)
                if len(encoded) > _MAX_KEPT:
                    direct.add(tag)  # a bulk value: neither keyed (hashing it costs its length) nor kept
                    kept.pop(tag, None)
                elif type(key) is _Unique:
                    pass  # equal to no later key: nothing to keep
                elif known is None:
                    kept[tag] = {key: encoded}
                elif len(known) < _MAX_LONG_VALUES or (len(known) < _MAX_VALUES and len(encoded) <= _MAX_VALUE_BYTES):
                    # A per-file value (position, instance number) recurs in every variant of the series.
                    known[key] = encoded
            fp.write(encoded)  # into memory (Parts): the file is written once, when complete


def _covered_meta(ds: Dataset) -> FileMetaDataset | None:
    """``ds.file_meta``, or None where ``dcmwrite`` must write ``ds`` (what the template does not cover)."""
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
    for elem in source.elements():
        if elem.is_raw or (elem.tag == _GROUP_LENGTH and elem.VR != "UL"):
            return None
    return source


def _completed_meta(ds: Dataset, source: FileMetaDataset) -> FileMetaDataset:
    """The file meta ``dcmwrite(..., enforce_file_format=True)`` writes for ``ds``.

    ``dcmwrite`` deep-copies the file meta; a copy of each element does as well
    here, because their values (UIDs, bytes) are immutable and only replaced.
    """
    meta = FileMetaDataset()
    for elem in source.elements():
        meta.add(copy.copy(cast(DataElement, elem)))  # none is raw (_covered_meta)
    meta_class, ds_class = meta.get("MediaStorageSOPClassUID", None), ds.get("SOPClassUID", None)
    if meta_class is None or (ds_class and ds_class != meta_class):
        meta.MediaStorageSOPClassUID = ds_class
    meta_instance, ds_instance = meta.get("MediaStorageSOPInstanceUID", None), ds.get("SOPInstanceUID", None)
    if meta_instance is None or (ds_instance and ds_instance != meta_instance):
        meta.MediaStorageSOPInstanceUID = ds_instance
    validate_file_meta(meta, enforce_standard=True)
    return meta


def _meta_key(ds: Dataset, source: FileMetaDataset) -> tuple[object, DataElement] | None:
    """For a file meta whose instance UID is kept as it is, a key of all else its group depends on.

    That is a meta whose Media Storage SOP Instance UID is a non-empty UID
    that ``ds``'s SOP Instance UID does not replace (equal, or none): the
    group is then its other elements (the key holds theirs and the data set's
    SOP Class UID, which may replace Media Storage SOP Class UID) with that
    element among them. Returns the key and that element, or None.
    """
    elements = dict(source.items())
    instance = elements.pop(BaseTag(_MEDIA_INSTANCE), None)
    if not isinstance(instance, DataElement) or instance.VR != "UI" or type(instance.value) not in (str, UID):
        return None
    ds_instance = ds.get("SOPInstanceUID", None)
    if not instance.value or (ds_instance and ds_instance != instance.value):
        return None
    others = tuple((int(tag), _element_key(elem)) for tag, elem in elements.items())
    return (others, _value_key(ds.get("SOPClassUID", None))), instance


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
        # What _character_set is made of, finer than it (the item's own Specific Character Set is
        # among its elements' keys): the property looks the element up, which cost more.
        _charset_key(item._parent_encoding),
        # In stored order, without converting or reading anything: items built alike match.
        tuple((int(tag), _element_key(elem)) for tag, elem in item.items()),
    )


__all__ = ["DcmwriteWriter", "FileWriter", "Parts", "TemplateWriter", "WriterKind", "file_writer", "nothing_to_correct"]
