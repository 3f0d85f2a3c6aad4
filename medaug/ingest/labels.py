"""Label objects (DICOM SEG and RT Structure Set) read onto their image series' grid.

Segment labels, descriptions and ROI names are free text that may carry
identifiers: they are kept here as data and de-identified later, never logged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from medaug.errors import InputError
from medaug.geometry import Geometry
from medaug.ingest import reasons
from medaug.ingest.files import FileId, confirm_unchanged
from medaug.ingest.headers import check_start, opened_dataset

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"

#: Fraction of the slice spacing within which a frame or contour plane matches a slice.
PLANE_TOLERANCE = 0.25


@dataclass(frozen=True)
class LabelFile:
    """A label object of the archive, as the walk found it.

    ``file_id`` is its identity at the walk (:func:`medaug.ingest.files.open_file`):
    every later read opens that file or none.
    """

    path: Path
    file_id: FileId | None = None


@dataclass(frozen=True)
class Segment:
    """One segment (SEG) or ROI (RTSTRUCT).

    ``label`` and ``description`` are free text (identifier risk).
    """

    number: int
    label: str
    description: str
    algorithm_type: str
    fractional: bool = False


@dataclass(frozen=True)
class LabelObject:
    """What a label object says about itself and what it references."""

    kind: str  # 'SEG' or 'RTSTRUCT'
    referenced_series_uid: str
    referenced_instance_uids: tuple[str, ...]
    frame_of_reference_uid: str
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class LabelVolume:
    """Per-segment maps on an image grid.

    ``data`` is ``(nseg, k, j, i)``: uint8 0/1 when every segment is binary,
    float32 in [0, 1] otherwise (``fractional`` says which segment is which).
    """

    data: NDArray[Any]
    segments: tuple[Segment, ...]

    @property
    def fractional(self) -> tuple[bool, ...]:
        """Per segment: True when its values are fractional."""
        return tuple(s.fractional for s in self.segments)


def _text(ds: Any, keyword: str) -> str:
    value = getattr(ds, keyword, "")
    return "" if value is None else str(value)


_T = TypeVar("_T")

#: Elements larger than this are left unread by :func:`read_label_header` (Pixel Data).
_HEADER_DEFER_BYTES = 4096


def _with_dataset(path: Path | str, expected: FileId | None, defer_size: int | None, use: Callable[[Dataset], _T]) -> _T:
    """``use`` the parsed label object, read through the archive's guarded open.

    Everything ``use`` touches is read through the descriptor that was checked
    against the walk's identity; the path is checked again afterwards. A missing
    or malformed attribute is ``bad-header`` (the label object is refused, not its series).
    """
    path = Path(path)
    size, _ = check_start(path, expected)
    with opened_dataset(path, size=size, defer_size=defer_size, expected=expected) as (ds, truncated, _):
        if truncated:
            raise InputError(reasons.TRUNCATED, "the file ends before its header or Pixel Data does")
        try:
            result = use(ds)
        except InputError:
            raise
        except (AttributeError, KeyError, IndexError, TypeError, ValueError, NotImplementedError) as exc:
            # pydicom raises these for absent or damaged elements; only the class is kept (a value could leak)
            raise InputError(reasons.BAD_HEADER, f"malformed label attribute ({type(exc).__name__})") from None
    confirm_unchanged(path, expected)
    return result


def read_label_header(path: Path | str, *, expected: FileId | None = None) -> LabelObject:
    """Read a SEG or RTSTRUCT's references and segments (no pixel data decoded).

    ``expected`` is the file's identity at the walk (:class:`LabelFile`).

    Raises
    ------
    InputError
        ``bad-header`` for another SOP class, ``label-unreferenced`` when it
        references no series or instance; the guarded open's codes
        (:func:`medaug.ingest.files.open_file`, ``changed-during-run``...).
    """
    return _with_dataset(path, expected, _HEADER_DEFER_BYTES, _header_of)


def _header_of(ds: Dataset) -> LabelObject:
    sop = str(getattr(ds, "SOPClassUID", ""))
    if sop == SEG_SOP_CLASS:
        return _seg_header(ds)
    if sop == RTSTRUCT_SOP_CLASS:
        return _rt_header(ds)
    raise InputError(reasons.BAD_HEADER, "SOP Class UID (0008,0016) is neither SEG nor RT Structure Set")


def _seg_header(ds: Any) -> LabelObject:
    fractional = _text(ds, "SegmentationType").upper() == "FRACTIONAL"
    segments = tuple(
        Segment(
            number=int(item.SegmentNumber),
            label=_text(item, "SegmentLabel"),
            description=_text(item, "SegmentDescription"),
            algorithm_type=_text(item, "SegmentAlgorithmType"),
            fractional=fractional,
        )
        for item in getattr(ds, "SegmentSequence", [])
    )
    series_uid = ""
    instances: list[str] = []
    for ref in getattr(ds, "ReferencedSeriesSequence", []):
        series_uid = series_uid or _text(ref, "SeriesInstanceUID")
        instances += [_text(i, "ReferencedSOPInstanceUID") for i in getattr(ref, "ReferencedInstanceSequence", [])]
    if not instances:
        for frame in getattr(ds, "PerFrameFunctionalGroupsSequence", []):
            for der in getattr(frame, "DerivationImageSequence", []):
                for src in getattr(der, "SourceImageSequence", []):
                    instances.append(_text(src, "ReferencedSOPInstanceUID"))
    if not series_uid or not instances:
        raise InputError(reasons.LABEL_UNREFERENCED, "Referenced Series Sequence (0008,1115) names no series or instance")
    return LabelObject(
        kind="SEG",
        referenced_series_uid=series_uid,
        referenced_instance_uids=tuple(dict.fromkeys(instances)),
        frame_of_reference_uid=_text(ds, "FrameOfReferenceUID"),
        segments=segments,
    )


def _rt_header(ds: Any) -> LabelObject:
    series_uid, instances, frame = "", [], ""
    for fr in getattr(ds, "ReferencedFrameOfReferenceSequence", []):
        frame = frame or _text(fr, "FrameOfReferenceUID")
        for study in getattr(fr, "RTReferencedStudySequence", []):
            for series in getattr(study, "RTReferencedSeriesSequence", []):
                series_uid = series_uid or _text(series, "SeriesInstanceUID")
                instances += [_text(c, "ReferencedSOPInstanceUID") for c in getattr(series, "ContourImageSequence", [])]
    if not series_uid:
        raise InputError(
            reasons.LABEL_UNREFERENCED, "Referenced Frame of Reference Sequence (3006,0010) names no image series"
        )
    segments = tuple(
        Segment(
            number=int(roi.ROINumber),
            label=_text(roi, "ROIName"),
            description=_text(roi, "ROIDescription"),
            algorithm_type=_text(roi, "ROIGenerationAlgorithm"),
        )
        for roi in getattr(ds, "StructureSetROISequence", [])
    )
    return LabelObject(
        kind="RTSTRUCT",
        referenced_series_uid=series_uid,
        referenced_instance_uids=tuple(dict.fromkeys(instances)),
        frame_of_reference_uid=frame,
        segments=segments,
    )


@dataclass(frozen=True)
class _Planes:
    """Where the slices of the referenced series really are.

    ``positions`` is ``(k, 3)`` Image Position (Patient) per slice for an unevenly spaced
    series (:attr:`medaug.ingest.image.SeriesImage.positions`), ``None`` on the grid.
    """

    geometry: Geometry
    positions: NDArray[np.float64] | None

    def slice_of(self, position: NDArray[np.float64], what: str) -> int:
        """The slice index whose plane holds ``position`` (within the tolerance)."""
        g = self.geometry
        normal = g.normal
        step = float(np.dot(g.direction_matrix[:, 0] * g.spacing[0], normal))
        if self.positions is None:
            offset = float(np.dot(position - np.asarray(g.origin), normal))
            k = offset / step if step else 0.0
            kr = int(round(k))
            off = abs(k - kr)
        else:
            along = (self.positions - position) @ normal
            kr = int(np.argmin(np.abs(along)))
            off = abs(float(along[kr]) / step) if step else 0.0
        if off > PLANE_TOLERANCE or not 0 <= kr < g.shape[0]:
            raise InputError(reasons.LABEL_NOT_ON_GRID, f"{what} lies on no slice plane of the referenced series")
        return kr

    def to_index(self, points: NDArray[np.float64], k: int) -> NDArray[np.float64]:
        """Continuous ``(k, j, i)`` of patient points on slice ``k``'s plane (as if it lay on the grid)."""
        points = np.asarray(points, dtype=np.float64)
        if self.positions is not None:
            points = points - (self.positions[k] - self.geometry.slice_position(k))
        return patient_to_index(points, self.geometry)


def patient_to_index(points: NDArray[np.float64], geometry: Geometry) -> NDArray[np.float64]:
    """Continuous ``(k, j, i)`` indices of patient points ``(n, 3)``."""
    m = geometry.direction_matrix * np.asarray(geometry.spacing)[None, :]
    return np.asarray(np.linalg.solve(m, (np.asarray(points, dtype=np.float64) - np.asarray(geometry.origin)).T).T)


def label_maps(
    path: Path | str,
    geometry: Geometry,
    *,
    instance_uids: tuple[str, ...] | None = None,
    positions: NDArray[np.float64] | None = None,
    expected: FileId | None = None,
) -> LabelVolume:
    """Rasterise a SEG or RTSTRUCT onto the image grid ``geometry``.

    SEG frames and RTSTRUCT contours are matched to slices by position, whatever
    the image's layout (single-frame files or the frames of one multi-frame object).

    Parameters
    ----------
    path : path
        The label object.
    geometry : Geometry
        The referenced series' grid.
    instance_uids : tuple of str, optional
        SOP Instance UIDs of the series' objects (slices in ``k`` order, or its one
        multi-frame object); when given, a label that references none of them is
        ``label-unreferenced``.
    positions : ndarray, optional
        ``(k, 3)`` real slice positions of an unevenly spaced series
        (:attr:`~medaug.ingest.image.SeriesImage.positions`): frames and contours
        are matched to those planes.
    expected : (int, int), optional
        The file's identity at the walk (:class:`LabelFile`).

    Raises
    ------
    InputError
        ``label-not-on-grid`` for a frame off every slice plane, another
        orientation or pixel grid; ``label-unreferenced`` as above; the guarded
        open's codes.
    """
    planes = _Planes(geometry, None if positions is None else np.asarray(positions, dtype=np.float64))

    def rasterise(ds: Dataset) -> LabelVolume:
        header = _header_of(ds)
        if instance_uids is not None and not set(header.referenced_instance_uids) & set(instance_uids):
            if header.referenced_instance_uids or header.kind == "SEG":
                raise InputError(reasons.LABEL_UNREFERENCED, "no referenced SOP Instance UID is in the series")
        if header.kind == "SEG":
            return _seg_maps(ds, header, planes)
        return _rt_maps(ds, header, planes)

    return _with_dataset(path, expected, None, rasterise)


def _seg_maps(ds: Any, header: LabelObject, planes: _Planes) -> LabelVolume:
    geometry = planes.geometry
    nk, nj, ni = geometry.shape
    if int(ds.Rows) != nj or int(ds.Columns) != ni:
        raise InputError(reasons.LABEL_NOT_ON_GRID, "Rows (0028,0010) / Columns (0028,0011) differ from the series")
    numbers = [s.number for s in header.segments]
    fractional = any(s.fractional for s in header.segments)
    pixels = ds.pixel_array
    if pixels.ndim == 2:
        pixels = pixels[None]
    out = np.zeros((len(numbers), nk, nj, ni), dtype=np.float32 if fractional else np.uint8)
    scale = float(getattr(ds, "MaximumFractionalValue", 255)) if fractional else 1.0
    shared = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else None
    rowcol = geometry.direction_matrix[:, [2, 1]].T.reshape(6)
    for n, frame in enumerate(ds.PerFrameFunctionalGroupsSequence):
        orient = getattr(frame, "PlaneOrientationSequence", None) or getattr(shared, "PlaneOrientationSequence", None)
        if orient is not None:
            iop = np.array([float(v) for v in orient[0].ImageOrientationPatient])
            if not np.allclose(iop, rowcol, atol=1e-4):
                raise InputError(reasons.LABEL_NOT_ON_GRID, "Image Orientation (Patient) (0020,0037) differs from the series")
        ipp = np.array([float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient])
        k = planes.slice_of(ipp, f"frame {n + 1}")
        idx = planes.to_index(ipp[None], k)[0]
        if abs(idx[1]) > PLANE_TOLERANCE or abs(idx[2]) > PLANE_TOLERANCE:
            raise InputError(reasons.LABEL_NOT_ON_GRID, f"frame {n + 1}'s Image Position (Patient) is not the slice's origin")
        seg_no = int(frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        s = numbers.index(seg_no)
        plane = pixels[n]
        if fractional:
            out[s, k] = np.clip(plane.astype(np.float32) / np.float32(scale), 0.0, 1.0)
        else:
            out[s, k] = (plane != 0).astype(np.uint8)
    return LabelVolume(data=out, segments=header.segments)


def _rt_maps(ds: Any, header: LabelObject, planes: _Planes) -> LabelVolume:
    from skimage.draw import polygon

    nk, nj, ni = planes.geometry.shape
    numbers = [s.number for s in header.segments]
    out = np.zeros((len(numbers), nk, nj, ni), dtype=np.uint8)
    for roi in getattr(ds, "ROIContourSequence", []):
        s = numbers.index(int(roi.ReferencedROINumber))
        for c, contour in enumerate(getattr(roi, "ContourSequence", [])):
            pts = np.asarray([float(v) for v in contour.ContourData], dtype=np.float64).reshape(-1, 3)
            k = planes.slice_of(pts.mean(axis=0), f"contour {c + 1} of ROI {s + 1}")
            idx = planes.to_index(pts, k)
            if np.any(np.abs(idx[:, 0] - k) > PLANE_TOLERANCE):
                raise InputError(reasons.LABEL_NOT_ON_GRID, f"contour {c + 1} of ROI {s + 1} is not planar on a slice")
            rr, cc = polygon(idx[:, 1], idx[:, 2], shape=(nj, ni))
            plane = np.zeros((nj, ni), dtype=bool)
            plane[rr, cc] = True
            out[s, k] ^= plane.astype(np.uint8)  # XOR: a contour inside another is a hole
    return LabelVolume(data=out, segments=header.segments)


__all__ = [
    "LabelFile",
    "LabelObject",
    "LabelVolume",
    "Segment",
    "label_maps",
    "patient_to_index",
    "read_label_header",
]
