"""Write a :class:`~medaug.ingest.image.SeriesImage` back to DICOM in the source's own IOD.

Each output object starts as a copy of its template header (the source slice's,
or the single header of a multi-frame object) and is updated where the image
says so: identifiers the caller gives, geometry, rescale, pixel description and
Pixel Data. Everything else in the header is kept as it is, so a CT Image stays
a CT Image, an MR stays an MR and an Enhanced CT stays one multi-frame object.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.pixels.utils import pack_bits
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.coding import Code
from pydicom.uid import (
    UID,
    EnhancedCTImageStorage,
    EnhancedMRColorImageStorage,
    EnhancedMRImageStorage,
    EnhancedPETImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    LegacyConvertedEnhancedCTImageStorage,
    LegacyConvertedEnhancedMRImageStorage,
    LegacyConvertedEnhancedPETImageStorage,
    RLELossless,
)
from pydicom.valuerep import DSfloat

from medaug.errors import WriteError
from medaug.ingest.image import SeriesImage
from medaug.atomic import storage_failure, write_bytes_atomic
from medaug.write.derivation import set_derivation
from medaug.write.pixels import storage_dtype, to_stored
from medaug.write.template import FileWriter, TemplateWriter, nothing_to_correct
from medaug.write.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

#: Transfer syntaxes the writer produces (native, or losslessly compressed by pydicom itself).
#: Compressed transfer syntaxes the writer encodes, with the pydicom encoding plugin used.
#: JPEG 2000 Lossless needs the ``codecs`` extra (pylibjpeg-openjpeg).
_ENCODERS = {RLELossless: "pydicom", JPEG2000Lossless: "pylibjpeg"}
#: Smallest rows and columns JPEG 2000 can encode here; smaller images stay uncompressed.
J2K_MIN_SIZE = 32
SUPPORTED_TRANSFER_SYNTAXES = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless, JPEG2000Lossless)

# Elements that describe the source's pixel bytes or a reduced copy of them:
# wrong (or a leak of source content) once the pixels are rewritten.
_STALE = (
    "SmallestPixelValueInSeries",
    "LargestPixelValueInSeries",
    "IconImageSequence",
    "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths",
    "FloatPixelData",
    "DoubleFloatPixelData",
    "PixelData",
    "PixelDataProviderURL",
    "DataSetTrailingPadding",
)

_STALE_TAGS = tuple(BaseTag(cast(int, tag_for_keyword(keyword))) for keyword in _STALE)

#: Enhanced MR and Enhanced MR Color.
_ENHANCED_MR = frozenset({EnhancedMRImageStorage, EnhancedMRColorImageStorage})
#: Enhanced CT, MR, MR Color and PET and their Legacy Converted forms: their Image Type follows
#: PS3.3 C.8.16.1 (value 2 PRIMARY only), with or without functional groups in the source.
_CT_MR_DESCRIPTION_CLASSES = _ENHANCED_MR | {
    EnhancedCTImageStorage, EnhancedPETImageStorage, LegacyConvertedEnhancedCTImageStorage,
    LegacyConvertedEnhancedMRImageStorage, LegacyConvertedEnhancedPETImageStorage,
}
#: Enhanced MR attributes required while Image Type value 1 is ORIGINAL or MIXED and not
#: allowed otherwise: the MR Pulse Sequence module (PS3.3 C.8.13.4) and Bulk Motion
#: Synchronization module. A derived Enhanced MR drops them.
_MR_ORIGINAL_ONLY = (
    "MRAcquisitionType", "PulseSequenceName", "EchoPulseSequence", "MultipleSpinEcho",
    "MultiPlanarExcitation", "PhaseContrast", "TimeOfFlightContrast", "SteadyStatePulseSequence",
    "EchoPlanarPulseSequence", "SaturationRecovery", "SpectrallySelectedSuppression",
    "OversamplingPhase", "GeometryOfKSpaceTraversal", "SegmentedKSpaceTraversal",
    "RectilinearPhaseEncodeReordering", "VelocityEncodingAcquisitionSequence",
    "NumberOfKSpaceTrajectories", "CoverageOfKSpace", "ArterialSpinLabelingContrast",
    "BulkMotionCompensationTechnique", "BulkMotionSignalSource",
)

_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class WriteResult:
    """What :func:`write_series` wrote.

    Parameters
    ----------
    paths : list of Path
        The files, in slice order (one for a multi-frame object).
    clipped : int
        How many values fell outside the stored range and were clipped.
    sha256 : list of str
        Each file's SHA-256, of the bytes as they were written (no second read).
    """

    paths: list[Path]
    clipped: int
    sha256: list[str]


def write_series(
    image: SeriesImage,
    outdir: Path,
    *,
    series_uid: str,
    sop_instance_uids: Sequence[str],
    frame_of_reference_uid: str | None = None,
    file_names: Sequence[str] | None = None,
    derived: bool = False,
    derivation_codes: Sequence[Code] = (),
    derivation_description: str | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
    extra: Callable[[Dataset, int], None] | None = None,
    durable: bool = True,
    writer: FileWriter | None = None,
) -> WriteResult:
    """Write ``image`` as a DICOM series in ``outdir``, one file per slice (or one multi-frame file).

    Parameters
    ----------
    image : SeriesImage
        Pixels (modality units, or stored values for colour), geometry and the
        template headers.
    outdir : Path
        Directory to write into (created if missing).
    series_uid : str
        Series Instance UID of every output object.
    sop_instance_uids : sequence of str
        One SOP Instance UID per output file.
    frame_of_reference_uid : str, optional
        Frame of Reference UID to write (a new one for a spatially transformed
        variant) in objects that have one; the template's is kept when omitted.
    file_names : sequence of str, optional
        One plain file name per output file; ``1.dcm``, ``2.dcm``, ... by default.
    derived : bool
        Mark the objects DERIVED\\SECONDARY and record how they were derived.
    derivation_codes : sequence of Code
        CID 7203 codes for Derivation Code Sequence (see :mod:`medaug.write.derivation`);
        used only when ``derived``.
    derivation_description : str, optional
        Free text for Derivation Description, written only when ``derived``;
        it must not contain input values.
    transfer_syntax : str
        One of :data:`SUPPORTED_TRANSFER_SYNTAXES`; Explicit VR Little Endian by default.
    extra : callable, optional
        ``extra(dataset, k)`` is called on each output dataset just before it is
        written (``k`` = file index), to add or change attributes. Sequence items
        of the template header are shared by the output datasets (copied only
        where encoding would change them): replace a sequence, never change
        its items in place.
    durable : bool
        Fsync each file as it is written. A caller writing many series may pass
        False and call :func:`medaug.atomic.flush_to_disk` once before it
        records them as written.
    writer : FileWriter, optional
        Encodes each file (:mod:`medaug.write.template`). Pass one
        :class:`~medaug.write.template.TemplateWriter` to every call for the same
        series (its variants too), so what their headers share is encoded once; a
        new one is used when omitted. The bytes are those of ``pydicom.dcmwrite``
        either way.

    Returns
    -------
    WriteResult
        The paths written and the number of clipped values.

    Raises
    ------
    WriteError
        If the image and its headers disagree, an argument is invalid or a file
        cannot be written. No partial file is left behind.
    """
    ts = UID(transfer_syntax)
    if ts not in SUPPORTED_TRANSFER_SYNTAXES:
        raise WriteError("(0002,0010) transfer syntax is not one the writer supports")
    n_slices = image.geometry.shape[0]
    if tuple(image.data.shape[:3]) != tuple(image.geometry.shape):
        raise WriteError("pixel array shape differs from the geometry's shape")
    if len(image.rescale) != n_slices:
        raise WriteError("rescale has not one row per slice")
    n_files = 1 if image.multiframe else n_slices
    if len(sop_instance_uids) != n_files:
        raise WriteError(f"expected {n_files} SOP Instance UIDs, got {len(sop_instance_uids)}")
    names = list(file_names) if file_names is not None else [f"{k + 1}.dcm" for k in range(n_files)]
    if len(names) != n_files:
        raise WriteError(f"expected {n_files} file names, got {len(names)}")
    for number, name in enumerate(names):
        if not _FILE_NAME.match(name):
            raise WriteError(f"file name number {number + 1} is not a plain file name")
    if len(image.headers) not in {1, n_files}:
        raise WriteError(f"expected {n_files} template headers, got {len(image.headers)}")
    outdir.mkdir(parents=True, exist_ok=True)

    encoder = writer if writer is not None else TemplateWriter()
    builder = _SeriesWriter(
        image,
        series_uid=series_uid,
        frame_of_reference_uid=frame_of_reference_uid,
        derived=derived,
        derivation_codes=derivation_codes,
        derivation_description=derivation_description,
    )
    paths: list[Path] = []
    digests: list[str] = []
    clipped = 0
    for f in range(n_files):
        if image.multiframe:
            ds, n = builder.multiframe(sop_instance_uids[0])
        else:
            ds, n = builder.slice(f, sop_instance_uids[f])
        clipped += n
        if extra is not None:
            extra(ds, f)
        path = outdir / names[f]
        digests.append(_save(ds, path, ts, durable=durable, writer=encoder))
        paths.append(path)
    return WriteResult(paths=paths, clipped=clipped, sha256=digests)


class _SeriesWriter:
    """Builds the output datasets of one series (state shared by its slices)."""

    def __init__(
        self,
        image: SeriesImage,
        *,
        series_uid: str,
        frame_of_reference_uid: str | None,
        derived: bool,
        derivation_codes: Sequence[Code],
        derivation_description: str | None,
    ) -> None:
        self.image = image
        self.geometry = image.geometry
        self.series_uid = series_uid
        self.frame_of_reference_uid = frame_of_reference_uid
        self.derived = derived
        self.derivation_codes = tuple(derivation_codes)
        self.derivation_description = derivation_description
        header = image.headers[0]
        lo, hi = image.stored_range
        default_bits = 8 if image.is_colour or (lo >= -128 and hi <= 255) else 16
        bits = int(header.get("BitsAllocated") or default_bits)
        signed = int(header.get("PixelRepresentation", 1 if lo < 0 else 0) or 0)
        self.dtype = storage_dtype(bits, signed)
        # The same in every slice: formatted as Decimal Strings once.
        self.orientation = _ds_values(self._orientation())
        self.pixel_spacing = _ds_values(self.geometry.spacing[1:])
        self.plane_spacing = _ds(self._plane_spacing())
        self.normal = self.geometry.normal

    # -- whole objects -------------------------------------------------------------

    def slice(self, k: int, sop_uid: str) -> tuple[Dataset, int]:
        """The output dataset of slice ``k`` of a single-frame series."""
        image = self.image
        ds = _fresh_copy(image.headers[k if len(image.headers) > 1 else 0], share_items=True)
        self._common(ds, sop_uid)
        ds.InstanceNumber = k + 1
        if "NumberOfFrames" in ds:
            ds.NumberOfFrames = 1
        if "ImagePositionPatient" in ds or "ImageOrientationPatient" in ds:
            position = self.image.slice_position(k)
            ds.ImagePositionPatient = _ds_values(position)
            ds.ImageOrientationPatient = self.orientation
            ds.SliceLocation = _ds(float(position @ self.normal))
        if "PixelSpacing" in ds or "ImagePositionPatient" in ds:
            ds.PixelSpacing = self.pixel_spacing
        if "SpacingBetweenSlices" in ds:
            ds.SpacingBetweenSlices = self.plane_spacing
        if image.is_colour:
            stored, clipped = self._colour(image.data[k : k + 1])
        else:
            slope, intercept = self._set_rescale(ds, k)
            stored, clipped = self._mono_slice(k, slope, intercept)
            _set_extremes(ds, stored)
        _set_pixel_data(ds, stored)
        return ds, clipped

    def multiframe(self, sop_uid: str) -> tuple[Dataset, int]:
        """The output dataset of a multi-frame object holding all slices."""
        image = self.image
        ds = _fresh_copy(image.headers[0])
        self._common(ds, sop_uid)
        ds.InstanceNumber = 1
        n = self.geometry.shape[0]
        ds.NumberOfFrames = n
        enhanced = "PerFrameFunctionalGroupsSequence" in ds
        if enhanced:
            self._functional_groups(ds)
        elif "ImagePositionPatient" in ds:
            ds.ImagePositionPatient = _ds_values(self.geometry.slice_position(0))
            ds.ImageOrientationPatient = _ds_values(self._orientation())
        if not enhanced and "PixelSpacing" in ds:
            ds.PixelSpacing = _ds_values(self.geometry.spacing[1:])
        if image.is_colour:
            stored, clipped = self._colour(image.data)
            _set_pixel_data(ds, stored)
            return ds, clipped
        if enhanced:
            rescales = [self._written_rescale(k) for k in range(n)]
        else:
            # Legacy multi-frame objects have one rescale for all frames.
            if not np.all(image.rescale == image.rescale[0]):
                raise WriteError("per-frame rescale differs in an object without functional groups")
            rescales = [self._set_rescale(ds, 0)] * n
        frames = np.empty(self.geometry.shape, dtype=self.dtype)
        clipped = 0
        for k in range(n):
            frames[k], c = self._mono_slice(k, *rescales[k])
            clipped += c
        _set_extremes(ds, frames)
        _set_pixel_data(ds, frames)
        return ds, clipped

    # -- attribute groups ----------------------------------------------------------

    def _common(self, ds: Dataset, sop_uid: str) -> None:
        """Identifiers, image size and derivation, shared by every output object."""
        image = self.image
        ds.SOPInstanceUID = sop_uid
        ds.SeriesInstanceUID = self.series_uid
        # Only objects already in a frame of reference get one: adding it to, say, a
        # projection radiograph would add a Frame of Reference module it lacks.
        if self.frame_of_reference_uid is not None and "FrameOfReferenceUID" in ds:
            ds.FrameOfReferenceUID = self.frame_of_reference_uid
        _, rows, columns = self.geometry.shape
        ds.Rows = rows
        ds.Columns = columns
        if image.is_colour:
            samples = int(image.data.shape[3])
            ds.SamplesPerPixel = samples
            ds.PlanarConfiguration = int(ds.get("PlanarConfiguration", 0) or 0)
            # Colour pixels arrive as RGB (pydicom converts YCbCr on decoding) and are
            # written uncompressed, where RGB is the only colour model we can vouch for.
            ds.PhotometricInterpretation = "RGB" if samples == 3 else image.photometric
        else:
            ds.SamplesPerPixel = 1
            if "PlanarConfiguration" in ds:
                del ds.PlanarConfiguration
            ds.PhotometricInterpretation = image.photometric
        for tag in _STALE_TAGS:  # by tag: a keyword is looked up in the dictionary on every test
            if tag in ds:
                del ds[tag]
        if self.derived:
            # Enhanced IODs enumerate value 2 as PRIMARY only (PS3.3 C.8.16.1): there
            # DERIVED goes in value 1 and value 2 stays.
            sop_class = str(ds.get("SOPClassUID", ""))
            enhanced = "PerFrameFunctionalGroupsSequence" in ds or sop_class in _CT_MR_DESCRIPTION_CLASSES
            ds.ImageType = _derived_type(ds.get("ImageType"), keep_second=enhanced)
            for keyword in _MR_ORIGINAL_ONLY if sop_class in _ENHANCED_MR else ():
                if keyword in ds:
                    delattr(ds, keyword)
            for item in _frame_type_items(ds):
                item.FrameType = _derived_type(item.get("FrameType"), keep_second=True)
            set_derivation(ds, self.derivation_codes, description=self.derivation_description)

    def _functional_groups(self, ds: Dataset) -> None:
        """Update the plane, spacing and rescale macros of an enhanced multi-frame object."""
        n = self.geometry.shape[0]
        per_frame = list(ds.PerFrameFunctionalGroupsSequence)
        if len(per_frame) != n:
            raise WriteError(
                f"(5200,9230) Per-frame Functional Groups has {len(per_frame)} items for {n} frames"
            )
        if "SharedFunctionalGroupsSequence" not in ds or not ds.SharedFunctionalGroupsSequence:
            ds.SharedFunctionalGroupsSequence = DicomSequence([Dataset()])
        shared = ds.SharedFunctionalGroupsSequence[0]
        orientation = _ds_values(self._orientation())
        for item in _macro_items(shared, per_frame, "PlaneOrientationSequence"):
            item.ImageOrientationPatient = orientation
        for item in _macro_items(shared, per_frame, "PixelMeasuresSequence"):
            item.PixelSpacing = _ds_values(self.geometry.spacing[1:])
            if "SpacingBetweenSlices" in item:
                item.SpacingBetweenSlices = _ds(self._plane_spacing())
        if "PlanePositionSequence" in shared:
            del shared.PlanePositionSequence
        for k, frame in enumerate(per_frame):
            position = Dataset()
            position.ImagePositionPatient = _ds_values(self.image.slice_position(k))  # an uneven frame stays put
            frame.PlanePositionSequence = DicomSequence([position])
        if not self.image.is_colour:
            self._functional_rescale(ds, shared, per_frame)

    def _functional_rescale(self, ds: Dataset, shared: Dataset, per_frame: list[Dataset]) -> None:
        """Write Pixel Value Transformation shared when uniform, else per frame."""
        rescale = self.image.rescale
        keyword = "PixelValueTransformationSequence"
        template = next(
            (g[keyword][0] for g in [shared, *per_frame] if keyword in g and g[keyword].value),
            None,
        )
        if template is None:
            if np.all(rescale == (1.0, 0.0)):
                return
            template = Dataset()
            template.RescaleType = "HU" if self.image.modality == "CT" else "US"
        uniform = bool(np.all(rescale == rescale[0]))
        if keyword in shared and not uniform:
            del shared[keyword]
        if uniform and not any(keyword in g for g in per_frame):
            groups = [(shared, 0)]
        else:
            groups = [(g, k) for k, g in enumerate(per_frame)]
        for group, k in groups:
            item = copy.deepcopy(template)
            slope, intercept = self._written_rescale(k)
            item.RescaleSlope = _ds(slope)
            item.RescaleIntercept = _ds(intercept)
            group[keyword] = DataElement(_tag(keyword), "SQ", DicomSequence([item]))
        # Top-level rescale is not part of enhanced IODs; the macro is authoritative.
        for kw in ("RescaleSlope", "RescaleIntercept"):
            if kw in ds:
                delattr(ds, kw)

    def _set_rescale(self, ds: Dataset, k: int) -> tuple[float, float]:
        """Write slice ``k``'s rescale at top level when needed; return the values written."""
        slope, intercept = self._written_rescale(k)
        if "RescaleSlope" in ds or "RescaleIntercept" in ds or (slope, intercept) != (1.0, 0.0):
            ds.RescaleSlope = _ds(slope)
            ds.RescaleIntercept = _ds(intercept)
        return slope, intercept

    def _written_rescale(self, k: int) -> tuple[float, float]:
        """Slope and intercept of slice ``k`` as they read back from their DS strings."""
        slope, intercept = (float(v) for v in self.image.rescale[k])
        return float(_ds(slope)), float(_ds(intercept))

    # -- pixels --------------------------------------------------------------------

    def _mono_slice(self, k: int, slope: float, intercept: float) -> tuple[NDArray[np.generic], int]:
        # One slice at a time keeps the float64 temporary to one image's size.
        return to_stored(
            self.image.data[k],
            slope=slope,
            intercept=intercept,
            stored_range=self.image.stored_range,
            dtype=self.dtype,
        )

    def _colour(self, data: NDArray[np.generic]) -> tuple[NDArray[np.generic], int]:
        stored = np.empty(data.shape, dtype=self.dtype)
        clipped = 0
        for k in range(data.shape[0]):
            stored[k], c = to_stored(data[k], stored_range=self.image.stored_range, dtype=stored.dtype)
            clipped += c
        return stored, clipped

    # -- geometry ------------------------------------------------------------------

    def _orientation(self) -> NDArray[np.float64]:
        return np.concatenate([self.geometry.row_cosine, self.geometry.column_cosine])

    def _plane_spacing(self) -> float:
        """Distance between adjacent image planes (less than the slice step under gantry tilt)."""
        g = self.geometry
        return float(abs(g.direction_matrix[:, 0] @ g.normal) * g.spacing[0])


# -- helpers -------------------------------------------------------------------------


def _tag(keyword: str) -> int:
    """Tag number of a dictionary keyword."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise WriteError(f"unknown keyword {keyword}")
    return int(tag)


def _fresh_copy(header: Dataset, *, share_items: bool = False) -> Dataset:
    """A plain Dataset with copies of the header's data set elements.

    Only elements are copied: no file meta, preamble or file name of the source.
    Each element is a new object (setting a value changes the element in place)
    and a multi-valued one gets its own list. With ``share_items`` a sequence
    gets a list of its own holding the header's items themselves, where nothing
    would change them while encoding (no ambiguous VR or raw element in them);
    the caller then replaces a sequence it changes rather than changing its items.
    """
    elements: dict[BaseTag, DataElement | RawDataElement] = {}
    sequences: list[DataElement] = []
    for tag, elem in header.items():
        if tag.group == 0x0002 or tag.element == 0x0000:
            continue  # file meta and group lengths are rebuilt on writing
        if isinstance(elem, RawDataElement):
            elem = header[tag]  # converted, as iterating the header would (which looks up every element)
        if elem.VR == "SQ":
            if share_items and all(nothing_to_correct(item, read_raw=False) for item in elem.value):
                # A deep copy of each slice's sequences cost more than encoding the slice.
                fresh = _element_copy(elem)
                fresh._value = DicomSequence(elem.value)
            else:
                fresh = copy.deepcopy(elem)  # items are datasets the writer may change in place
            sequences.append(fresh)
            continue
        fresh = _element_copy(elem)
        value = elem.value
        if isinstance(value, MultiValue):
            # Its own list of the same (immutable) values: a deep copy of three DS values took
            # longer than encoding them.
            fresh._value = copy.copy(value)
            fresh._value._list = list(value)
        elements[tag] = fresh
    out = Dataset(elements)  # taken as the element dictionary: the elements are checked already
    for fresh in sequences:
        out.add(fresh)  # through __setitem__, which gives sequence items the parent's pixel representation
    return out


def _element_copy(elem: DataElement) -> DataElement:
    """A new element with the same attributes (as ``copy.copy``, without its generic protocol)."""
    fresh = DataElement.__new__(DataElement)
    fresh.__dict__.update(elem.__dict__)
    return fresh


def _ds(value: float) -> DSfloat:
    """A Decimal String of at most 16 characters holding ``value`` as closely as possible."""
    # + 0.0 turns -0.0 into 0.0, so equal geometries give identical bytes.
    return DSfloat(float(value) + 0.0, auto_format=True)


def _ds_values(values: "NDArray[np.floating] | Sequence[float]") -> list[DSfloat]:
    return [_ds(float(v)) for v in np.asarray(values, dtype=np.float64).ravel()]


def _derived_type(old: object, *, keep_second: bool = False) -> list[str]:
    """ImageType / FrameType with value 1 DERIVED and value 2 SECONDARY (or kept), others kept."""
    if old is None:
        values: list[str] = []
    elif isinstance(old, str):
        values = [old]
    else:
        values = [str(v) for v in old]  # type: ignore[attr-defined]
    second = values[1] if keep_second and len(values) > 1 else "SECONDARY"
    return ["DERIVED", second, *values[2:]]


def _frame_type_items(ds: Dataset) -> list[Dataset]:
    """Items of every ``...FrameTypeSequence`` in the functional groups (they carry FrameType)."""
    items: list[Dataset] = []
    groups: list[Dataset] = []
    for keyword in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        groups.extend(ds.get(keyword) or [])
    for group in groups:
        for elem in group:
            if elem.VR == "SQ" and elem.keyword.endswith("FrameTypeSequence"):
                items.extend(item for item in elem.value if "FrameType" in item)
    return items


def _macro_items(shared: Dataset, per_frame: list[Dataset], keyword: str) -> list[Dataset]:
    """The items of a functional group macro wherever the template keeps it (shared first).

    A macro absent everywhere is added to the shared group.
    """
    if keyword in shared and shared[keyword].value:
        return [shared[keyword].value[0]]
    found = [g[keyword].value[0] for g in per_frame if keyword in g and g[keyword].value]
    if found:
        return found
    item = Dataset()
    shared[keyword] = DataElement(_tag(keyword), "SQ", DicomSequence([item]))
    return [item]


def _set_extremes(ds: Dataset, stored: NDArray[np.generic]) -> None:
    """Update Smallest/Largest Image Pixel Value when the template has them (16-bit VRs only)."""
    for keyword, value in (
        ("SmallestImagePixelValue", stored.min()),
        ("LargestImagePixelValue", stored.max()),
    ):
        if keyword not in ds:
            continue
        if stored.dtype.itemsize > 2:
            delattr(ds, keyword)  # US/SS cannot hold a 32-bit value
            continue
        vr = "SS" if np.issubdtype(stored.dtype, np.signedinteger) else "US"
        ds[keyword] = DataElement(_tag(keyword), vr, int(value))


def _set_pixel_data(ds: Dataset, stored: NDArray[np.generic]) -> None:
    """Native Pixel Data (little endian, frames then rows then columns then samples).

    Bit-packed sources (Bits Allocated 1: segmentations, overlays) stay bit-packed.
    """
    if int(ds.get("BitsAllocated", 0) or 0) == 1:
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 0, 0
        ds[0x7FE00010] = DataElement(0x7FE00010, "OB", pack_bits(np.asarray(stored, dtype=np.uint8) & 1))
        return
    bits = stored.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.PixelRepresentation = 1 if np.issubdtype(stored.dtype, np.signedinteger) else 0
    if "BitsStored" not in ds or int(ds.BitsStored) > bits:
        ds.BitsStored = bits
    ds.HighBit = int(ds.BitsStored) - 1
    if stored.ndim >= 3 and stored.shape[-1] in (3, 4) and ds.get("SamplesPerPixel", 1) > 1:
        if int(ds.get("PlanarConfiguration", 0) or 0) == 1:
            # colour-by-plane: each frame is all R, then all G, then all B
            stored = np.moveaxis(stored, -1, -3)
    raw = np.ascontiguousarray(stored, dtype=stored.dtype.newbyteorder("<")).tobytes()
    if len(raw) % 2:
        raw += b"\x00"  # values have even length (PS3.5 7.1)
    ds[0x7FE00010] = DataElement(0x7FE00010, "OB" if bits == 8 else "OW", raw)


def _save(ds: Dataset, path: Path, transfer_syntax: UID, *, durable: bool, writer: FileWriter) -> str:
    """Give ``ds`` a medaug file meta and write it atomically to ``path``; the SHA-256 of what was written."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds.file_meta = meta
    if transfer_syntax == JPEG2000Lossless and min(int(ds.Rows), int(ds.Columns)) < J2K_MIN_SIZE:
        # openjpeg's encoder uses six wavelet resolutions, which images this small cannot
        # hold; they are written uncompressed instead (lossless either way).
        transfer_syntax = ExplicitVRLittleEndian
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if transfer_syntax in _ENCODERS:
        try:
            # Pass the decoded array: compressing straight from native bytes reads
            # colour-by-plane data as colour-by-pixel (pydicom 3.0). pydicom gives the
            # object a new random SOP Instance UID unless told not to: the keyed one stays.
            ds.compress(transfer_syntax, ds.pixel_array, encoding_plugin=_ENCODERS[transfer_syntax],
                        generate_instance_uid=False)
        except Exception as exc:  # pydicom's encoders raise several types
            raise WriteError(f"{transfer_syntax.name} encoding failed ({type(exc).__name__})") from None
    else:
        meta.TransferSyntaxUID = UID(transfer_syntax)

    try:
        # The whole file in memory first: one write of it, and no file at all if it cannot be encoded.
        parts = writer.encode(ds)
    except Exception as exc:  # pydicom's encoders raise several types
        # The encoder's message may quote an element value: report only its type.
        raise WriteError(f"cannot encode output file {path.name} ({type(exc).__name__})") from None
    try:
        write_bytes_atomic(path, parts, durable=durable)
    except OSError as exc:
        if storage_failure(exc) is not None:
            raise  # the run must stop and be resumed, not quarantine the series
        raise WriteError(f"cannot write output file {path.name} ({exc.strerror})") from None
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


__all__ = ["SUPPORTED_TRANSFER_SYNTAXES", "WriteResult", "write_series"]
