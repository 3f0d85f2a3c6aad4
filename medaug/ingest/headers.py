"""Read one file's header without its pixels into a small :class:`InstanceRecord`.

The header pass reads only the attributes grouping and geometry need
(``specific_tags``) and skips Pixel Data (``defer_size``: its offset and length
are kept, its bytes are not read), so a scan of 100,000 files holds 100,000
small records and never a full dataset or a pixel buffer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import io
import logging
import math
import os
import secrets
import sys
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder
from pydicom.tag import BaseTag, Tag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from medaug.errors import InputError
from medaug.ingest import inflate, limits, reasons
from medaug.ingest.discover import DICOMDIR_SOP_CLASS, sniff
from medaug.ingest.files import FileId, open_file

# pydicom logs damaged elements with their values quoted ("Invalid value for VR UI: '...'") and
# decoder failures with tracebacks, besides its warnings; a value can be a patient's name and
# none may reach a log, so its logger is silenced for every process that reads archives.
logging.getLogger("pydicom").setLevel(logging.CRITICAL + 1)

#: Segmentation (and its label-map form) and RT Structure Set: label objects, not images.
LABEL_SOP_CLASSES = frozenset({
    "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation Storage
    "1.2.840.10008.5.1.4.1.1.66.7",  # Label Map Segmentation Storage
    "1.2.840.10008.5.1.4.1.1.481.3",  # RT Structure Set Storage
})

PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel Data, Float, Double Float Pixel Data

#: Attributes the header pass keeps (everything else is skipped unparsed).
HEADER_TAGS: list[BaseTag] = [Tag(t) for t in (
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "PatientID",
    "PatientName", "Modality", "RescaleSlope", "RescaleIntercept", "Rows", "Columns", "NumberOfFrames", "SamplesPerPixel", "BitsAllocated",
    "BitsStored", "PixelRepresentation", "PhotometricInterpretation", "PlanarConfiguration",
    "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "ImagerPixelSpacing",
    "SliceThickness", "SpacingBetweenSlices", "EchoNumbers", "TemporalPositionIdentifier",
    "DiffusionBValue", "DiffusionGradientOrientation", "BodyPartExamined", "AnatomicRegionSequence", "ImageType",
    "SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence",
    "DirectoryRecordSequence", *PIXEL_TAGS,
)]

Vec = tuple[float, ...]


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    """What the header pass keeps of one DICOM instance (no pixels, no full header).

    About 1.3 kB each (measured with tracemalloc; strings a series shares are interned), so
    a scan of 100,000 files holds roughly 130 MB of records.

    ``frame_positions`` is set for multi-frame objects that give a position per
    frame (Plane Position Sequence); ``ipp``/``iop`` are the top-level (or
    shared functional group) Image Position and Orientation (Patient).
    ``identity`` is :func:`identity_digest` of the header under the scan's
    ``identity_salt``: the pixel pass recomputes it to notice a file replaced
    in between (the values digested are not kept for this purpose).
    """

    path: Path
    sop_uid: str
    sop_class: str
    study_uid: str
    series_uid: str
    patient_id: str
    modality: str
    transfer_syntax: str
    rows: int
    columns: int
    frames: int
    samples: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric: str
    ipp: Vec | None
    iop: Vec | None
    pixel_spacing: Vec | None
    slice_thickness: float | None
    spacing_between_slices: float | None
    echo: str
    temporal: str
    diffusion: str
    frame_positions: tuple[Vec, ...] | None
    enhanced: bool
    identity_salt: bytes = b""
    identity: bytes = b""
    #: Device and inode of the file at the walk: every later open must find that file.
    file_id: FileId | None = None
    #: Body Part Examined and Image Type: what a policy's scope selects on (coded values, no names).
    body_part: str = ""
    image_type: tuple[str, ...] = ()
    #: Anatomic Region Sequence's first code (value and upper-case meaning), when present.
    anatomic_region: tuple[str, str] = ("", "")

    @property
    def is_directory(self) -> bool:
        """True for a DICOMDIR (an index of the media, not an image)."""
        return self.sop_class == DICOMDIR_SOP_CLASS

    @property
    def geometry_key(self) -> tuple[Any, ...]:
        """Attributes every slice of one stack must share."""
        iop = tuple(round(v, 4) for v in self.iop) if self.iop else None
        return (self.rows, self.columns, self.samples, self.bits_allocated, self.photometric, iop)


class _WatchedFile(io.BufferedIOBase):
    """A buffered reader that notices short reads and seeks past the end, i.e. truncation.

    Deliberately not an :class:`io.BufferedReader` and nameless: pydicom reopens a
    ``BufferedReader``'s file *by name* to read a deferred value, but reads any other
    stream's deferred values through the stream itself, so they pass the same
    identity check as the header did (:mod:`medaug.ingest.files`).
    """

    def __init__(self, raw: io.RawIOBase, size: int) -> None:
        super().__init__()
        self._inner = io.BufferedReader(raw)
        self.size = size
        self.short = False

    def readable(self) -> bool:  # noqa: D102 - io protocol
        return True

    def seekable(self) -> bool:  # noqa: D102 - io protocol
        return True

    def read(self, n: int | None = -1) -> bytes:  # noqa: D102 - same as the base class
        data = self._inner.read(n)
        if n is not None and n > 8 and len(data) < n:
            self.short = True
        elif n is not None and 0 < len(data) < n:
            self.short = True
        return data

    def seek(self, offset: int, whence: int = 0) -> int:  # noqa: D102 - same as the base class
        pos = self._inner.seek(offset, whence)
        if pos > self.size:
            self.short = True
        return pos

    def tell(self) -> int:  # noqa: D102 - same as the base class
        return self._inner.tell()

    def close(self) -> None:  # noqa: D102 - same as the base class
        self._inner.close()
        super().close()


def check_start(path: Path, expected: FileId | None = None) -> tuple[int, bool]:
    """Size of the file and whether it has the 128-byte preamble.

    ``expected`` is the file's identity at the walk (see :func:`~medaug.ingest.files.open_file`).

    Raises
    ------
    InputError
        ``unreadable``, ``empty``, ``not-dicom``, or :func:`~medaug.ingest.files.open_file`'s codes.
    """
    with open_file(path, expected) as fh:
        try:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                raise InputError(reasons.EMPTY, "zero bytes")
            head = fh.read(132)
        except OSError as exc:
            raise InputError(reasons.UNREADABLE, f"{type(exc).__name__} while opening") from None
    preamble = sniff(head)
    if preamble is None:
        raise InputError(reasons.NOT_DICOM, "no DICM prefix and no plausible first element")
    return size, preamble


@contextmanager
def opened_dataset(
    path: Path,
    *,
    size: int,
    defer_size: int | None,
    specific_tags: list[BaseTag] | None = None,
    expected: FileId | None = None,
) -> Iterator[tuple[Dataset, bool, int]]:
    """Parse a file with pydicom (warnings silenced): the dataset, whether it was cut short, and its size.

    Deferred values (``defer_size``) are read through the file as it was opened, only
    inside the ``with`` block: afterwards the dataset holds no file, so a deferred value
    never touched there cannot be read at all (never by reopening the path).

    A Deflated Explicit VR Little Endian file is counted first, one chunk at a
    time, and refused over :data:`~medaug.ingest.limits.MAX_INFLATED_BYTES`;
    then it is read through :class:`~medaug.ingest.inflate.InflatedFile`, never
    inflated whole. The size returned is that of the stream pydicom read (the
    inflated size for a deflated file), for truncation checks. A deferred
    element of a deflated file is read back by inflating it again from the
    start: pass ``defer_size=None`` when values will be needed.

    Raises
    ------
    InputError
        ``unreadable`` on I/O errors, ``truncated`` or ``not-dicom`` when parsing
        fails, ``too-large`` for a deflated dataset over the cap, ``bad-header``
        when sequences nest too deeply to parse.
    """
    try:
        layout = inflate.deflated_layout(path, expected)
        raw: io.RawIOBase
        if layout is None:
            raw = open_file(path, expected)
        else:
            meta, body = layout
            try:
                inflated = inflate.inflated_size(path, body, cap=limits.MAX_INFLATED_BYTES, expected=expected)
            except inflate.InflateLimit:
                raise InputError(
                    reasons.TOO_LARGE, f"the deflated dataset inflates beyond {limits.MAX_INFLATED_BYTES} bytes"
                ) from None
            except zlib.error:
                raise InputError(reasons.NOT_DICOM, "the deflated dataset could not be inflated") from None
            size = len(meta) + inflated
            raw = inflate.InflatedFile(path, meta, body, cap=limits.MAX_INFLATED_BYTES, expected=expected)
    except OSError as exc:
        raise InputError(reasons.UNREADABLE, f"{type(exc).__name__} while opening") from None
    with _WatchedFile(raw, size) as fp:
        try:
            with warnings.catch_warnings():
                # pydicom warnings may quote element values; none may reach a log.
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(fp, force=True, defer_size=defer_size, specific_tags=specific_tags)
                if layout is not None:
                    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
        except RecursionError:
            raise InputError(reasons.BAD_HEADER, NESTED_TOO_DEEPLY) from None
        except inflate.InflateLimit:
            raise InputError(reasons.TOO_LARGE, f"the deflated dataset inflates beyond {limits.MAX_INFLATED_BYTES} bytes") from None
        except OSError as exc:
            raise InputError(reasons.UNREADABLE, f"{type(exc).__name__} while reading") from None
        except EOFError:
            raise InputError(reasons.TRUNCATED, "the header ends early") from None
        except Exception as exc:  # pydicom raises many types on damaged bytes
            if fp.short:
                raise InputError(reasons.TRUNCATED, "the header ends early") from None
            raise InputError(reasons.NOT_DICOM, f"header could not be parsed ({type(exc).__name__})") from None
        try:
            yield ds, fp.short, size
        finally:
            # Closed with the block: no later read may go through the file, nor reopen its path.
            if isinstance(ds, pydicom.FileDataset):
                ds.buffer = None
                ds.filename = None


#: Detail of a ``bad-header`` refusal for sequences nested past Python's recursion limit.
NESTED_TOO_DEEPLY = "sequences nested too deeply"


def identity_digest(ds: Dataset, salt: bytes) -> bytes:
    """Salted digest of what identifies an object: SOP Instance, Series, Study UID, Patient ID and Name.

    The header pass stores only this digest (salted per scan, so digests of two
    scans cannot be compared); the pixel pass recomputes it from the full
    header to notice a file replaced in between.

    Examples
    --------
    >>> ds = Dataset()
    >>> ds.PatientID = "X"
    >>> identity_digest(ds, b"salt") == identity_digest(ds, b"salt") != identity_digest(ds, b"pepper")
    True
    """
    h = hmac.new(salt, digestmod=hashlib.sha256)
    for keyword in IDENTITY_KEYWORDS:
        h.update(str(ds.get(keyword, "") or "").strip("\x00 ").encode("utf-8", "surrogateescape"))
        h.update(b"\x00")
    return h.digest()


#: Attributes :func:`identity_digest` covers.
IDENTITY_KEYWORDS = ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "PatientID", "PatientName")


def transfer_syntax_of(ds: Dataset) -> str:
    """The transfer syntax UID the dataset was read with (from File Meta, else from its encoding)."""
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts:
        return str(ts)
    implicit, little = getattr(ds, "original_encoding", (True, True))
    if implicit:
        return str(ImplicitVRLittleEndian)
    return str(ExplicitVRLittleEndian if little else ExplicitVRBigEndian)


#: The UIDs that place an object (series, study) and say what it is; without one, it can
#: neither be grouped reliably nor written back as valid DICOM.
_REQUIRED_UIDS = (
    ("SOPClassUID", "(0008,0016)"),
    ("SOPInstanceUID", "(0008,0018)"),
    ("StudyInstanceUID", "(0020,000D)"),
    ("SeriesInstanceUID", "(0020,000E)"),
)


def read_record(path: Path, *, salt: bytes | None = None, expected: FileId | None = None) -> InstanceRecord:
    """Read the header of one file into an :class:`InstanceRecord`.

    Parameters
    ----------
    path : Path
        The file.
    salt : bytes, optional
        Salt of the identity digest (one per scan); a random one when omitted.
    expected : (int, int), optional
        The file's identity at the walk (:attr:`~medaug.ingest.discover.Entry.file_id`):
        the header pass reads that file or none, and records it for the pixel pass.

    Raises
    ------
    InputError
        With a code from :mod:`medaug.ingest.reasons` when the file cannot be used.
    """
    size, preamble = check_start(path, expected)
    with opened_dataset(path, size=size, defer_size=4096, specific_tags=HEADER_TAGS, expected=expected) as (
        ds, truncated, size,
    ), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            rec = _record_from(ds, path, size=size, truncated=truncated, preamble=preamble)
            if rec.is_directory:
                return rec
            salt = secrets.token_bytes(16) if salt is None else salt
            return dataclasses.replace(rec, identity_salt=salt, identity=identity_digest(ds, salt), file_id=expected)
        except InputError:
            raise
        except RecursionError:
            raise InputError(reasons.BAD_HEADER, NESTED_TOO_DEEPLY) from None
        except Exception as exc:  # damaged bytes make pydicom raise many types (NotImplementedError for an unknown VR...)
            raise InputError(reasons.BAD_HEADER, f"malformed attribute ({type(exc).__name__})") from None


def _record_from(ds: Dataset, path: Path, *, size: int, truncated: bool, preamble: bool) -> InstanceRecord:
    """Check a header and condense it; raises InputError with a reason code."""
    sop_class = str(ds.get("SOPClassUID", "") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", "") or "")
    if sop_class == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
        sop_class = DICOMDIR_SOP_CLASS
        return _directory_record(path)
    if len(ds) == 0 or (not preamble and "SOPInstanceUID" not in ds and "Modality" not in ds):
        raise InputError(reasons.TRUNCATED if truncated else reasons.NOT_DICOM, "no usable data elements")
    if sop_class in LABEL_SOP_CLASSES:
        # Labels are not images: they are not grouped, resampled or written as one (yet).
        raise InputError(reasons.LABEL_OBJECT, "a Segmentation or RT Structure Set (0008,0016)")
    pixel_tag = next((t for t in PIXEL_TAGS if t in ds), None)
    if pixel_tag is None:
        if truncated:
            raise InputError(reasons.TRUNCATED, "the file ends before Pixel Data (7FE0,0010)")
        raise InputError(reasons.NO_PIXEL_DATA, "no Pixel Data (7FE0,0010)")
    for keyword, tag in (("Rows", "(0028,0010)"), ("Columns", "(0028,0011)")):
        if ds.get(keyword) in (None, "", 0):
            raise InputError(reasons.BAD_HEADER, f"{keyword} {tag} missing or zero")
    for keyword, tag in _REQUIRED_UIDS:
        if not str(ds.get(keyword, "") or "").strip("\x00 "):
            raise InputError(reasons.MISSING_UID, f"{keyword} {tag} missing or empty")
    rows, cols = int(ds.Rows), int(ds.Columns)
    frames = int(ds.get("NumberOfFrames") or 1)
    samples = int(ds.get("SamplesPerPixel") or 1)
    bits_allocated = int(ds.get("BitsAllocated") or 0)
    if frames < 1:
        raise InputError(reasons.BAD_HEADER, "Number of Frames (0028,0008) below 1")
    problem = limits.size_problem(rows, cols, frames, samples, bits_allocated)
    if problem is not None:
        raise InputError(reasons.TOO_LARGE if "over" in problem else reasons.BAD_HEADER, problem)
    ts = transfer_syntax_of(ds)
    elem = ds.get_item(pixel_tag, keep_deferred=True)  # a deferred element keeps its length, unread
    if isinstance(elem, RawDataElement):
        length, value_tell = int(elem.length), elem.value_tell
    else:
        length = 0xFFFFFFFF if elem.is_undefined_length else len(elem.value or b"")
        value_tell = None
    if truncated or (length != 0xFFFFFFFF and value_tell is not None and value_tell + length > size):
        raise InputError(reasons.TRUNCATED, "the file ends inside Pixel Data (7FE0,0010)")
    if UID(ts).is_compressed:
        try:
            decoder_ok = get_decoder(UID(ts)).is_available
        except (NotImplementedError, ValueError):
            decoder_ok = False
        if not decoder_ok:
            raise InputError(reasons.UNSUPPORTED_TRANSFER_SYNTAX, "no pixel plugin for the transfer syntax (0002,0010)")
        payload = length if length != 0xFFFFFFFF else (size - value_tell if value_tell is not None else len(elem.value or b""))
        problem = limits.payload_problem(ts, limits.object_bytes(rows, cols, frames, samples, bits_allocated), payload)
        if problem is not None:
            raise InputError(reasons.TOO_LARGE, problem)
    elif pixel_tag == 0x7FE00010:
        expected = limits.object_bytes(rows, cols, frames, samples, bits_allocated)
        if length < expected:
            raise InputError(
                reasons.PIXEL_LENGTH_MISMATCH,
                f"Pixel Data (7FE0,0010) holds {length} bytes, the header implies {expected}",
            )
    enhanced = "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds
    ipp = _vec(fg_attribute(ds, "PlanePositionSequence", "ImagePositionPatient", None), 3, "(0020,0032)")
    iop = _vec(fg_attribute(ds, "PlaneOrientationSequence", "ImageOrientationPatient", None), 6, "(0020,0037)")
    spacing = _vec(fg_attribute(ds, "PixelMeasuresSequence", "PixelSpacing", None), 2, "(0028,0030)")
    if spacing is None:
        spacing = _vec(ds.get("ImagerPixelSpacing"), 2, "(0018,1164)")
    thickness = _num(fg_attribute(ds, "PixelMeasuresSequence", "SliceThickness", None))
    between = _num(fg_attribute(ds, "PixelMeasuresSequence", "SpacingBetweenSlices", None))
    frame_positions: tuple[Vec, ...] | None = None
    if enhanced and frames >= 1 and "PerFrameFunctionalGroupsSequence" in ds:
        per = ds.PerFrameFunctionalGroupsSequence
        if len(per) != frames:
            raise InputError(reasons.BAD_HEADER, "Per-frame Functional Groups (5200,9230) item count differs from Number of Frames")
        positions = [_vec(fg_attribute(ds, "PlanePositionSequence", "ImagePositionPatient", f), 3, "(0020,0032)") for f in range(frames)]
        if all(p is not None for p in positions):
            frame_positions = tuple(p for p in positions if p is not None)
            ipp = frame_positions[0]
            if frames > 1 and len({tuple(round(v, 3) for v in p) for p in frame_positions}) < frames:
                # Frames that repeat a position (several segments, phases in one object) are no stack.
                raise InputError(reasons.INCONSISTENT_SERIES, "Plane Position (0020,0032) repeats between frames")
        orients = {_vec(fg_attribute(ds, "PlaneOrientationSequence", "ImageOrientationPatient", f), 6, "(0020,0037)") for f in range(frames)}
        if len({tuple(round(v, 4) for v in o) if o else None for o in orients}) > 1:
            raise InputError(reasons.INCONSISTENT_SERIES, "Image Orientation (Patient) (0020,0037) differs between frames")
        iop = next(iter(orients)) if orients else iop
    if iop is not None and _degenerate(iop):
        raise InputError(reasons.BAD_HEADER, "Image Orientation (Patient) (0020,0037) is not two unit vectors")
    _check_geometry(ds, spacing, frames=frames, positioned=ipp is not None and iop is not None,
                    frame_positions=frame_positions is not None, between=between)
    check_rescale(ds, None)
    return InstanceRecord(
        path=path,
        sop_uid=str(ds.get("SOPInstanceUID", "") or ""),
        sop_class=sop_class,
        study_uid=sys.intern(str(ds.get("StudyInstanceUID", "") or "")),
        series_uid=sys.intern(str(ds.get("SeriesInstanceUID", "") or "")),
        patient_id=sys.intern(str(ds.get("PatientID", "") or "")),
        modality=sys.intern(str(ds.get("Modality", "") or "OT")),
        transfer_syntax=sys.intern(ts),
        rows=rows,
        columns=cols,
        frames=frames,
        samples=samples,
        bits_allocated=bits_allocated,
        bits_stored=int(ds.get("BitsStored") or bits_allocated),
        pixel_representation=int(ds.get("PixelRepresentation") or 0),
        photometric=str(ds.get("PhotometricInterpretation", "") or ("MONOCHROME2" if samples == 1 else "RGB")),
        ipp=ipp,
        iop=iop,
        pixel_spacing=spacing,
        slice_thickness=thickness,
        spacing_between_slices=between,
        echo=str(ds.get("EchoNumbers", "") or ""),
        temporal=str(ds.get("TemporalPositionIdentifier", "") or ""),
        diffusion=sys.intern(_diffusion(ds)),
        frame_positions=frame_positions,
        enhanced=enhanced,
        body_part=sys.intern(str(ds.get("BodyPartExamined", "") or "").strip().upper()[:16]),
        anatomic_region=_anatomic_region(ds),
        image_type=_image_type(ds),
    )


def _diffusion(ds: Dataset) -> str:
    """The diffusion weighting of a single-frame image ("b|gradient"), "" when it has none.

    A diffusion series repeats every slice position once per b-value and direction: these
    tell its volumes apart. An unreadable value counts as none (the slice then joins the
    stack and a repeated position is refused as usual).
    """
    try:
        b = ds.get("DiffusionBValue")
        gradient = ds.get("DiffusionGradientOrientation")
        b_text = f"{float(b):g}" if b not in (None, "") else ""
        g_text = "\\".join(f"{float(v):.4f}" for v in gradient) if gradient not in (None, "") else ""
    except (TypeError, ValueError):
        return ""
    return f"{b_text}|{g_text}" if b_text or g_text else ""


def _check_geometry(
    ds: Dataset, spacing: Vec | None, *, frames: int, positioned: bool, frame_positions: bool, between: float | None
) -> None:
    """Refuse implausible pixel spacings, and a slice thickness when geometry would use it (``bad-geometry``).

    Slice Thickness gives the slice step only when nothing else does: no Spacing
    Between Slices and no positions to take the step from (a multi-frame object
    without per-frame positions, or an image without position). A stack of
    single-frame images takes its step from the positions, so its thickness is
    ignored whatever its value.
    """
    imager = _vec(ds.get("ImagerPixelSpacing"), 2, "(0018,1164)")
    for value, name in ((spacing, "Pixel Spacing (0028,0030)"), (imager, "Imager Pixel Spacing (0018,1164)")):
        if value is not None and not all(limits.MIN_SPACING_MM <= v <= limits.MAX_SPACING_MM for v in value):
            raise InputError(reasons.BAD_GEOMETRY, f"{name} not between {limits.MIN_SPACING_MM} and {limits.MAX_SPACING_MM} mm")
    uses_thickness = between is None and ((frames > 1 and not frame_positions) or (frames == 1 and not positioned))
    if uses_thickness:
        raw = fg_attribute(ds, "PixelMeasuresSequence", "SliceThickness", None)
        if raw not in (None, ""):
            try:
                thickness = float(raw)
            except (TypeError, ValueError):
                raise InputError(reasons.BAD_GEOMETRY, "Slice Thickness (0018,0050) is not numeric") from None
            if not limits.MIN_SPACING_MM <= thickness <= limits.MAX_SPACING_MM:
                raise InputError(
                    reasons.BAD_GEOMETRY,
                    f"Slice Thickness (0018,0050) not between {limits.MIN_SPACING_MM} and {limits.MAX_SPACING_MM} mm",
                )


def check_rescale(ds: Dataset, frame: int | None) -> tuple[float, float]:
    """Rescale Slope and Intercept of a frame (per-frame, shared, or top level); (1, 0) when absent.

    Raises
    ------
    InputError
        ``bad-header`` when either is not numeric, not finite, the slope zero,
        or beyond :data:`~medaug.ingest.limits.MAX_RESCALE_SLOPE` /
        :data:`~medaug.ingest.limits.MAX_RESCALE_INTERCEPT` in magnitude.
    """
    slope = fg_attribute(ds, "PixelValueTransformationSequence", "RescaleSlope", frame)
    intercept = fg_attribute(ds, "PixelValueTransformationSequence", "RescaleIntercept", frame)
    try:
        s = float(slope) if slope not in (None, "") else 1.0
        b = float(intercept) if intercept not in (None, "") else 0.0
    except (TypeError, ValueError):
        raise InputError(reasons.BAD_HEADER, "Rescale Slope/Intercept (0028,1053)/(0028,1052) not numeric") from None
    if s == 0 or not math.isfinite(s) or not math.isfinite(b):
        raise InputError(reasons.BAD_HEADER, "Rescale Slope (0028,1053) zero or Slope/Intercept not finite")
    if abs(s) > limits.MAX_RESCALE_SLOPE or abs(b) > limits.MAX_RESCALE_INTERCEPT:
        raise InputError(
            reasons.BAD_HEADER,
            f"Rescale Slope (0028,1053) over {limits.MAX_RESCALE_SLOPE:g} or Intercept (0028,1052) over "
            f"{limits.MAX_RESCALE_INTERCEPT:g} in magnitude",
        )
    return (s, b)


def _anatomic_region(ds: Dataset) -> tuple[str, str]:
    """The first Anatomic Region Sequence (0008,2218) item's code value and meaning, upper case."""
    try:
        item = ds.AnatomicRegionSequence[0]
        return (sys.intern(str(item.get("CodeValue", "") or "").strip()[:16]),
                sys.intern(str(item.get("CodeMeaning", "") or "").strip().upper()[:64]))
    except (AttributeError, IndexError, KeyError, TypeError):
        return ("", "")


def _image_type(ds: Dataset) -> tuple[str, ...]:
    """Image Type values, upper case (empty when absent or unreadable)."""
    value = ds.get("ImageType")
    if value is None or value == "":
        return ()
    values = [value] if isinstance(value, str) else list(value)
    return tuple(sys.intern(str(v).strip().upper()[:16]) for v in values[:8])


def _directory_record(path: Path) -> InstanceRecord:
    """A placeholder record marking a DICOMDIR."""
    return InstanceRecord(
        path=path, sop_uid="", sop_class=DICOMDIR_SOP_CLASS, study_uid="", series_uid="", patient_id="",
        modality="", transfer_syntax="", rows=0, columns=0, frames=0, samples=0, bits_allocated=0,
        bits_stored=0, pixel_representation=0, photometric="", ipp=None, iop=None, pixel_spacing=None,
        slice_thickness=None, spacing_between_slices=None, echo="", temporal="", diffusion="", frame_positions=None,
        enhanced=False,
    )


def fg_attribute(ds: Dataset, group: str, keyword: str, frame: int | None) -> Any:
    """An attribute from the per-frame group of ``frame``, else the shared group, else the top level.

    ``group`` is the functional group sequence's keyword (``PixelMeasuresSequence``),
    ``frame`` a 0-based frame index or ``None`` for the object as a whole.
    """
    if frame is not None and "PerFrameFunctionalGroupsSequence" in ds:
        item = ds.PerFrameFunctionalGroupsSequence[frame]
        if group in item and len(item[group].value) and keyword in item[group][0]:
            return item[group][0].get(keyword)
    if "SharedFunctionalGroupsSequence" in ds and len(ds.SharedFunctionalGroupsSequence):
        item = ds.SharedFunctionalGroupsSequence[0]
        if group in item and len(item[group].value) and keyword in item[group][0]:
            return item[group][0].get(keyword)
    if frame is None and "PerFrameFunctionalGroupsSequence" in ds and len(ds.PerFrameFunctionalGroupsSequence):
        item = ds.PerFrameFunctionalGroupsSequence[0]
        if group in item and len(item[group].value) and keyword in item[group][0]:
            return item[group][0].get(keyword)
    return ds.get(keyword)


def _vec(value: Any, n: int, tag: str) -> Vec | None:
    """``n`` finite floats from a multi-valued DS, ``None`` when absent; BAD_HEADER when malformed."""
    if value is None or value == "":
        return None
    try:
        vals = tuple(float(v) for v in (value if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]))
    except (TypeError, ValueError):
        raise InputError(reasons.BAD_HEADER, f"{tag} is not numeric") from None
    if len(vals) != n or not all(abs(v) < 1e9 for v in vals):
        raise InputError(reasons.BAD_HEADER, f"{tag} does not hold {n} finite numbers")
    return vals


def _num(value: Any) -> float | None:
    """A positive float, or ``None`` when absent or unusable (these are optional hints)."""
    try:
        v = float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return v if v is not None and 0 < v < 1e6 else None


def _degenerate(iop: Vec) -> bool:
    """True when the orientation is not two (nearly) orthogonal unit vectors."""
    r, c = iop[:3], iop[3:]
    nr = sum(v * v for v in r) ** 0.5
    nc = sum(v * v for v in c) ** 0.5
    dot = sum(a * b for a, b in zip(r, c))
    return not (0.9 < nr < 1.1 and 0.9 < nc < 1.1 and abs(dot) < 0.1)
