"""Write warped label maps as DICOM SEG (highdicom) or RT Structure Set (pydicom).

Both reference the written variant's own image instances and Frame of
Reference; UIDs and the content date/time come from the caller, so the output
bytes are deterministic.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ExplicitVRLittleEndian

from medaug.atomic import write_atomic
from medaug.augment.variant import VariantParams
from medaug.dataset.layout import label_name
from medaug.geometry import Geometry
from medaug.ingest.image import SeriesImage
from medaug.ingest.labels import RTSTRUCT_SOP_CLASS, LabelFile, LabelVolume, Segment


#: Maximum Fractional Value of a FRACTIONAL SEG written: a fraction is stored in 1/255 steps.
FRACTIONAL_STEPS = 255


def _write(ds: Dataset, path: Path) -> Path:
    def write(fh: BinaryIO) -> None:
        ds.save_as(fh, enforce_file_format=True)

    write_atomic(path, write)
    return path


def write_seg(
    volume: LabelVolume,
    path: Path,
    *,
    source_datasets: Sequence[Dataset],
    segments: Sequence[Segment],
    series_uid: str,
    sop_uid: str,
    series_number: int,
    content_datetime: datetime.datetime,
    manufacturer: str = "medaug",
) -> Path:
    """Write a DICOM Segmentation of ``volume`` referencing ``source_datasets``.

    BINARY, or FRACTIONAL (PROBABILITY, 8 bits: Maximum Fractional Value 255) when the
    segments are fractional, as a fractional source's are.

    Parameters
    ----------
    volume : LabelVolume
        ``(nseg, k, j, i)`` maps on the variant's grid: 0/1, or fractions in [0, 1].
    path : Path
        Output file (written atomically).
    source_datasets : sequence of Dataset
        The written variant's image datasets in slice (``k``) order, or its one
        multi-frame object (each slice goes in the frame at its position).
    segments : sequence of Segment
        Already de-identified segment metadata, one per map.
    series_uid, sop_uid : str
        The caller's keyed deterministic UIDs.
    series_number : int
        Series Number of the SEG.
    content_datetime : datetime
        Content Date/Time (no clock is read).
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    descriptions = []
    for seg in segments:
        algo = seg.algorithm_type.upper() if seg.algorithm_type.upper() in ("AUTOMATIC", "SEMIAUTOMATIC", "MANUAL") else "MANUAL"
        kwargs: dict[str, Any] = {}
        if algo != "MANUAL":
            kwargs["algorithm_identification"] = hd.AlgorithmIdentificationSequence(
                name="medaug", version="1", family=codes.cid7162.ArtificialIntelligence
            )
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=seg.number,
                segment_label=seg.label or f"segment {seg.number}",
                segmented_property_category=codes.SCT.Tissue,
                segmented_property_type=codes.SCT.Tissue,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues[algo],
                **kwargs,
            )
        )
    # highdicom wants (frames, rows, columns, segments) with segments numbered 1..n in order
    encoding: dict[str, Any]
    if any(volume.fractional):
        pixels = np.moveaxis(np.clip(volume.data.astype(np.float32), 0.0, 1.0), 0, -1)
        encoding = {
            "segmentation_type": hd.seg.SegmentationTypeValues.FRACTIONAL,
            "fractional_type": hd.seg.SegmentationFractionalTypeValues.PROBABILITY,
            "max_fractional_value": FRACTIONAL_STEPS,
        }
    else:
        pixels = np.moveaxis(volume.data.astype(bool), 0, -1)
        encoding = {"segmentation_type": hd.seg.SegmentationTypeValues.BINARY}
    if len(source_datasets) == 1 and "PerFrameFunctionalGroupsSequence" in source_datasets[0]:
        # highdicom pairs array row n with the source's frame n + 1: put each slice in its frame.
        pixels = pixels[_slice_of_frame(source_datasets[0])]
    seg_ds = hd.seg.Segmentation(
        source_images=list(source_datasets),
        pixel_array=pixels,
        **encoding,
        segment_descriptions=descriptions,
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer=manufacturer,
        manufacturer_model_name="medaug",
        software_versions="medaug",
        device_serial_number="0",
        content_date=content_datetime.date(),
        content_time=content_datetime.time(),
        omit_empty_frames=False,
    )
    fix_clock_and_random(seg_ds, content_datetime=content_datetime, sop_uid=sop_uid)
    return _write(seg_ds, path)


def _slice_of_frame(ds: Dataset) -> NDArray[np.intp]:
    """Slice index ``k`` (frames sorted along the normal, as ingest sorts them) of each frame of ``ds``."""
    from medaug.ingest.grouping import frame_order

    shared = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else Dataset()
    per_frame = ds.PerFrameFunctionalGroupsSequence
    orientation = (per_frame[0].get("PlaneOrientationSequence") or shared.PlaneOrientationSequence)[0]
    positions = [[float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient] for f in per_frame]
    order = frame_order(positions, [float(v) for v in orientation.ImageOrientationPatient])
    k_of = np.empty(len(order), dtype=np.intp)
    k_of[order] = np.arange(len(order))
    return k_of


def fix_clock_and_random(ds: Dataset, *, content_datetime: datetime.datetime, sop_uid: str) -> None:
    """highdicom 0.28 stamps the clock (Instance Creation Date/Time, Contribution DateTime) and a
    random Dimension Organization UID whatever is passed: overwrite them so the bytes are fixed."""
    from pydicom.uid import generate_uid

    ds.InstanceCreationDate = content_datetime.strftime("%Y%m%d")
    ds.InstanceCreationTime = content_datetime.strftime("%H%M%S")
    for item in ds.get("ContributingEquipmentSequence", []):
        if "ContributionDateTime" in item:
            item.ContributionDateTime = content_datetime.strftime("%Y%m%d%H%M%S")
    dim_uid = generate_uid(entropy_srcs=[sop_uid, "dimension-organization"])
    for item in ds.get("DimensionOrganizationSequence", []):
        item.DimensionOrganizationUID = dim_uid
    for item in ds.get("DimensionIndexSequence", []):
        if "DimensionOrganizationUID" in item:
            item.DimensionOrganizationUID = dim_uid


def mask_contours(
    mask: np.ndarray, geometry: Geometry, *, positions: NDArray[np.float64] | None = None
) -> list[tuple[int, np.ndarray]]:
    """Closed contours ``(k, points (n, 3) in patient mm)`` of a binary ``(k, j, i)`` mask.

    Holes come out as separate contours (the reader's XOR rule restores them).
    ``positions`` (``(k, 3)``, an unevenly spaced series' real slice positions)
    puts each slice's contours on its own plane instead of the grid's.
    """
    from skimage.measure import find_contours

    out: list[tuple[int, np.ndarray]] = []
    for k in range(mask.shape[0]):
        plane = np.pad(mask[k].astype(np.float32), 1)
        shift = 0.0 if positions is None else np.asarray(positions[k]) - geometry.slice_position(k)
        for c in find_contours(plane, 0.5):
            if len(c) < 4:
                continue
            jj, ii = c[:-1, 0] - 1.0, c[:-1, 1] - 1.0  # drop the repeated closing point
            idx = np.stack([np.full_like(jj, k), jj, ii], axis=1)
            out.append((k, geometry.index_to_patient(idx) + shift))
    return out


def _image_reference(src: Dataset, frame: int | None = None) -> Dataset:
    """An Image SOP Instance Reference (to one frame of a multi-frame object when ``frame`` is given)."""
    item = Dataset()
    item.ReferencedSOPClassUID = src.SOPClassUID
    item.ReferencedSOPInstanceUID = src.SOPInstanceUID
    if frame is not None:
        item.ReferencedFrameNumber = frame
    return item


def write_rtstruct(
    volume: LabelVolume,
    path: Path,
    *,
    geometry: Geometry,
    source_datasets: Sequence[Dataset],
    segments: Sequence[Segment],
    series_uid: str,
    sop_uid: str,
    series_number: int,
    content_datetime: datetime.datetime,
    positions: NDArray[np.float64] | None = None,
) -> Path:
    """Write an RT Structure Set of ``volume``'s masks referencing ``source_datasets``.

    Parameters are as :func:`write_seg`, plus ``geometry`` (the variant's grid) and
    ``positions`` (as :func:`mask_contours`). ``source_datasets`` is one dataset per
    slice, or a single multi-frame object: each contour then references the frame at
    its slice's position.
    """
    frame_of_slice = None
    if len(source_datasets) == 1 and "PerFrameFunctionalGroupsSequence" in source_datasets[0]:
        frame_of_slice = np.argsort(_slice_of_frame(source_datasets[0])) + 1  # 1-based frame number of slice k
    first = source_datasets[0]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(RTSTRUCT_SOP_CLASS)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = RTSTRUCT_SOP_CLASS
    ds.SOPInstanceUID = sop_uid
    ds.Modality = "RTSTRUCT"
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
               "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName"):
        setattr(ds, kw, getattr(first, kw, ""))
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.InstanceNumber = 1
    ds.Manufacturer = "medaug"
    ds.OperatorsName = ""
    date, time = content_datetime.strftime("%Y%m%d"), content_datetime.strftime("%H%M%S")
    ds.StructureSetLabel = "medaug"
    ds.StructureSetDate, ds.StructureSetTime = date, time
    ds.SeriesDate, ds.SeriesTime = date, time
    frame_uid = str(first.FrameOfReferenceUID)
    # dciodvfy's RT Structure Set IOD includes the Frame of Reference module (PS3.3 2024+)
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = getattr(first, "PositionReferenceIndicator", "")
    # A reference to a multi-frame object with no frame number applies to all its frames.
    contour_images = [_image_reference(src) for src in source_datasets]
    rs = Dataset()
    rs.SeriesInstanceUID = first.SeriesInstanceUID
    rs.ContourImageSequence = DicomSequence(contour_images)
    st = Dataset()
    st.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management (retired, as PS3.3 asks)
    st.ReferencedSOPInstanceUID = first.StudyInstanceUID
    st.RTReferencedSeriesSequence = DicomSequence([rs])
    fr = Dataset()
    fr.FrameOfReferenceUID = frame_uid
    fr.RTReferencedStudySequence = DicomSequence([st])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([fr])
    rois, contours, observations = [], [], []
    for s, seg in enumerate(segments):
        roi = Dataset()
        roi.ROINumber = seg.number
        roi.ReferencedFrameOfReferenceUID = frame_uid
        roi.ROIName = seg.label
        roi.ROIGenerationAlgorithm = seg.algorithm_type if seg.algorithm_type in ("AUTOMATIC", "SEMIAUTOMATIC", "MANUAL") else "MANUAL"
        rois.append(roi)
        rc = Dataset()
        rc.ReferencedROINumber = seg.number
        rc.ROIDisplayColor = [255, 0, 0]
        items = []
        for k, pts in mask_contours(volume.data[s], geometry, positions=positions):
            c = Dataset()
            if frame_of_slice is None:
                ref = _image_reference(source_datasets[k])
            else:
                ref = _image_reference(source_datasets[0], int(frame_of_slice[k]))
            c.ContourImageSequence = DicomSequence([ref])
            c.ContourGeometricType = "CLOSED_PLANAR"
            c.NumberOfContourPoints = len(pts)
            c.ContourData = [float(f"{v:.4f}") for v in pts.reshape(-1)]
            items.append(c)
        rc.ContourSequence = DicomSequence(items)
        contours.append(rc)
        ob = Dataset()
        ob.ObservationNumber = seg.number
        ob.ReferencedROINumber = seg.number
        ob.RTROIInterpretedType = "ORGAN"
        ob.ROIInterpreter = ""
        observations.append(ob)
    ds.StructureSetROISequence = DicomSequence(rois)
    ds.ROIContourSequence = DicomSequence(contours)
    ds.RTROIObservationsSequence = DicomSequence(observations)
    ds.ApprovalStatus = "UNAPPROVED"
    return _write(ds, path)


__all__ = ["mask_contours", "segment_label", "write_rtstruct", "write_seg"]


def segment_label(number: int) -> str:
    """The label a segment or ROI leaves with: built from its number alone (the source's is free text).

    Examples
    --------
    >>> segment_label(3)
    'Segment 3'
    """
    return f"Segment {number}"


#: Content date and time written in every label object: fixed, so reruns give the same bytes.
LABEL_DATETIME = datetime.datetime(2000, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class WrittenSeries:
    """One output image series a label object is carried into.

    Attributes
    ----------
    variant : int
        0 for the de-identified original.
    folder : Path
        Its folder; the label file is written beside its images.
    images : tuple of Path
        Its image files, in slice order.
    params : VariantParams or None
        The variant's parameters (None for the original).
    """

    variant: int
    folder: Path
    images: tuple[Path, ...]
    params: VariantParams | None


@dataclass(frozen=True)
class CarriedLabel:
    """What :func:`carry` wrote for one label object."""

    kind: str
    segments: int
    files: tuple[tuple[Path, str, str, int], ...]  # (path, series UID, SOP Instance UID, variant)
    #: Per written series (as ``files``), per segment: its voxel count there over the source's.
    ratios: tuple[tuple[float, ...], ...]


def carry(
    source: LabelFile,
    number: int,
    *,
    image: SeriesImage,
    source_instance_uids: tuple[str, ...],
    written: Sequence[WrittenSeries],
    uid: Callable[[str], str],
) -> CarriedLabel:
    """Carry one SEG or RTSTRUCT into every written series: warped by the variant's own mapping.

    The label is read onto ``image``'s slices by position: the frames of a multi-frame
    object, the real planes of an unevenly spaced stack. A SEG is written against the
    written series' own objects (highdicom references a multi-frame object's frames by
    number), an RTSTRUCT's contours on its slices' planes.

    Segment and ROI names and descriptions are free text: they leave as ``Segment <n>`` and
    no description (a name is rebuilt from nothing that could hold a person's name).

    Raises
    ------
    InputError
        ``label-not-on-grid`` or ``label-unreferenced`` when the object does not fit its series;
        the guarded open's codes when the file is not the one the walk found.
    """
    from medaug.augment.labels import voxel_ratios, warp_label_volume
    from medaug.ingest.labels import label_maps, read_label_header

    geometry = image.geometry
    header = read_label_header(source.path, expected=source.file_id)
    volume = label_maps(source.path, geometry, instance_uids=source_instance_uids, positions=image.positions,
                        expected=source.file_id)
    segments = tuple(
        dataclasses.replace(s, label=segment_label(s.number), description="") for s in volume.segments
    )
    volume = dataclasses.replace(volume, segments=segments)
    files: list[tuple[Path, str, str, int]] = []
    ratios: list[tuple[float, ...]] = []
    for out in written:
        # An uneven stack's variants are never resampled (their params are not spatial): nor are its labels.
        warped = volume if out.params is None else warp_label_volume(volume, geometry, out.params)
        ratios.append(voxel_ratios(volume, warped))
        datasets = [pydicom.dcmread(p, stop_before_pixels=True) for p in out.images]
        series_uid = uid(f"medaug-label-{out.variant}-{number}:series")
        sop_uid = uid(f"medaug-label-{out.variant}-{number}:instance")
        path = out.folder / label_name(number)
        common: dict[str, Any] = {
            "source_datasets": datasets, "segments": segments, "series_uid": series_uid, "sop_uid": sop_uid,
            "series_number": 9000 + number, "content_datetime": LABEL_DATETIME,
        }
        if header.kind == "SEG":
            write_seg(warped, path, **common)
        else:
            write_rtstruct(warped, path, geometry=geometry, positions=image.positions, **common)
        files.append((path, series_uid, sop_uid, out.variant))
    return CarriedLabel(header.kind, len(segments), tuple(files), tuple(ratios))
