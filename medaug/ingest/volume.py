"""Build a :class:`~medaug.ingest.image.SeriesImage` for one series, one file at a time."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from medaug.errors import InputError
from medaug.ingest import limits, reasons
from medaug.ingest.grouping import (
    Quarantined,
    SeriesRef,
    frame_order,
    pixel_spacing_of,
    stack_geometry,
)
from medaug.ingest.headers import InstanceRecord
from medaug.ingest.image import SeriesImage
from medaug.ingest.pixels import DecodedFile, decode_file, stored_range


@dataclass
class LoadedSeries:
    """A series' image plus the files of the series that could not be used.

    Every file of the :class:`SeriesRef` is either behind a slice of
    ``image`` (one header per file) or in ``quarantined``.
    """

    image: SeriesImage
    quarantined: list[Quarantined] = field(default_factory=list)


def load_series(
    ref: SeriesRef,
    *,
    budget: int = limits.MAX_SERIES_WORKING_BYTES,
    control_spacing_mm: float | None = None,
) -> LoadedSeries:
    """Read full headers and pixels of one series and build its image.

    Monochrome data become float32 in modality units (Rescale Slope and
    Intercept of each slice applied); colour data keep stored values. Only
    this series' pixels are held in memory.

    Parameters
    ----------
    ref : SeriesRef
        A series from :func:`medaug.ingest.scan_archive`.
    budget : int
        Bytes the series may need while read and augmented, checked against
        :func:`medaug.ingest.limits.series_working_bytes` before anything is allocated.
    control_spacing_mm : float, optional
        Elastic control spacing the series will be deformed with (its grid counts
        in the estimate).

    Returns
    -------
    LoadedSeries
        The image and the files refused while decoding (one bad file does not
        stop the series; the geometry is recomputed from the slices kept).

    Raises
    ------
    InputError
        When no file of the series can be used (the reason of the first failure),
        or (``too-large``) the assembled volume would exceed ``limits.MAX_SERIES_BYTES``
        or its working memory ``budget``.
    """
    first = ref.records[0]
    k = sum(r.frames for r in ref.records)
    item = 4 if first.samples == 1 else max(1, first.bits_allocated // 8) * first.samples
    if k * first.rows * first.columns * item > limits.MAX_SERIES_BYTES:
        raise InputError(reasons.TOO_LARGE, f"the series volume would exceed {limits.MAX_SERIES_BYTES} bytes")
    working = limits.series_working_bytes(
        (k, first.rows, first.columns), first.samples,
        spacing_mm=ref.geometry.spacing,
        control_spacing_mm=control_spacing_mm,
    )
    if working > budget:
        raise InputError(reasons.TOO_LARGE, f"the series would need about {working} bytes of memory, over {budget}")
    kept: list[tuple[InstanceRecord, DecodedFile]] = []
    quarantined: list[Quarantined] = []
    for rec in ref.records:
        try:
            decoded = decode_file(
                rec.path, identity=(rec.identity_salt, rec.identity) if rec.identity else None, expected=rec.file_id
            )
        except InputError as exc:
            detail = str(exc)[len(exc.reason) + 2:] if str(exc).startswith(exc.reason + ": ") else ""
            quarantined.append(Quarantined(rec.path, exc.reason, detail))
            continue
        shape = decoded.frames.shape
        if shape[:3] != (rec.frames, rec.rows, rec.columns):
            quarantined.append(Quarantined(rec.path, reasons.INCONSISTENT_SERIES, "file changed since the scan (Rows, Columns or Frames)"))
            continue
        kept.append((rec, decoded))
    if not kept:
        raise InputError(quarantined[0].reason, "no file of the series could be used")
    if ref.kind == "multi-frame":
        rec, decoded = kept[0]
        frames = decoded.frames
        rescale = decoded.rescale
        header = decoded.header
        if rec.frame_positions is not None and rec.iop is not None:
            order = frame_order(rec.frame_positions, rec.iop)
            if order != list(range(len(order))):
                frames = frames[order]
                rescale = rescale[order]
                per = header.PerFrameFunctionalGroupsSequence
                header.PerFrameFunctionalGroupsSequence = [per[i] for i in order]
        geometry, problems = ref.geometry, ref.problems
        data = _to_modality(frames, rescale)
        headers: tuple[Dataset, ...] = (header,)
    else:
        data = _assemble([d for _, d in kept])
        rescale = np.concatenate([d.rescale for _, d in kept])
        headers = tuple(d.header for _, d in kept)
        if len(kept) == len(ref.records):
            geometry, problems = ref.geometry, ref.problems
        elif ref.kind == "stack" and len(kept) > 1:
            recs = [r for r, _ in kept]
            geometry, problems = stack_geometry(
                [r.ipp for r in recs if r.ipp is not None], first.iop, pixel_spacing_of(first),
                shape=(len(recs), first.rows, first.columns),
            )
        else:
            from medaug.geometry import Geometry

            g = ref.geometry
            geometry = Geometry.from_arrays((1, first.rows, first.columns), g.spacing, kept[0][0].ipp or g.origin, g.direction_matrix)
            problems = ref.problems
    positions = None
    if {reasons.MISSING_SLICES, reasons.IRREGULAR_SPACING} & set(problems):
        if ref.kind == "stack":
            positions = np.array([r.ipp for r, _ in kept], dtype=np.float64)
        elif ref.kind == "multi-frame" and first.frame_positions is not None and first.iop is not None:
            # The frames of an uneven multi-frame object keep their own positions too (in k order).
            positions = np.array([first.frame_positions[f] for f in frame_order(first.frame_positions, first.iop)],
                                 dtype=np.float64)
    image = SeriesImage(
        data=data,
        geometry=geometry,
        headers=headers,
        modality=first.modality,
        multiframe=ref.kind == "multi-frame",
        rescale=rescale,
        stored_range=stored_range(first.bits_stored, first.pixel_representation),
        photometric=kept[0][1].photometric,
        problems=problems,
        positions=positions,
    )
    return LoadedSeries(image, quarantined)


def _to_modality(frames: NDArray[np.generic], rescale: NDArray[np.float64]) -> NDArray[np.generic]:
    """Float32 modality values for monochrome frames; stored values unchanged for colour."""
    if frames.ndim == 4:
        return frames
    out = frames.astype(np.float64)
    out *= rescale[:, 0][:, None, None]
    out += rescale[:, 1][:, None, None]
    return out.astype(np.float32)


def _assemble(decoded: list[DecodedFile]) -> NDArray[np.generic]:
    """Stack single-frame files into one volume, converting slice by slice (no float64 volume)."""
    first = decoded[0].frames
    colour = first.ndim == 4
    shape = (len(decoded), *first.shape[1:])
    out = np.empty(shape, dtype=first.dtype if colour else np.float32)
    for n, d in enumerate(decoded):
        out[n] = d.frames[0] if colour else _to_modality(d.frames, d.rescale)[0]
    return out
