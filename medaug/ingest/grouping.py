"""Group instance records into series and order slices by position along the normal.

Slice order comes only from geometry: each Image Position (Patient) projected on
the slice normal (row cosine × column cosine). File names and Instance Number
are never consulted. The step between slices gives the geometry's slice axis,
sheared when the gantry was tilted so every position is reproduced exactly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from medaug.geometry import Geometry
from medaug.ingest import reasons
from medaug.ingest.headers import InstanceRecord

Kind = Literal["2D", "stack", "multi-frame"]

#: Default direction when a 2D image has no orientation: rows along +x, columns along +y.
DEFAULT_DIRECTION = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
#: Relative tolerance on slice steps before they count as irregular.
STEP_TOLERANCE = 0.01
#: Smallest slice-axis tilt from the normal (degrees) reported as gantry tilt.
TILT_DEGREES = 0.1


@dataclass(frozen=True)
class Quarantined:
    """A file that cannot be used, with its reason code.

    ``detail`` names tags and sizes, never values; ``number`` is the file's
    1-based position in the archive's sorted walk (0 when unknown).
    """

    path: Path
    reason: str
    detail: str
    number: int = 0


@dataclass(frozen=True)
class SeriesRef:
    """One volume to build: a stack of single-frame images, one multi-frame object or one 2D image.

    Holds light per-instance records only, in slice order. Identifying
    attributes (``study_uid``, ``series_uid``, ``patient_id``) are for internal
    use (pseudonyms, grouping) and are never printed.
    """

    records: tuple[InstanceRecord, ...]
    kind: Kind
    geometry: Geometry
    problems: tuple[str, ...] = ()

    @property
    def files(self) -> list[Path]:
        """Paths of the files in slice order."""
        return [r.path for r in self.records]

    @property
    def modality(self) -> str:
        """The Modality attribute."""
        return self.records[0].modality

    @property
    def study_uid(self) -> str:
        """Study Instance UID (internal use only)."""
        return self.records[0].study_uid

    @property
    def series_uid(self) -> str:
        """Series Instance UID (internal use only)."""
        return self.records[0].series_uid

    @property
    def patient_id(self) -> str:
        """Patient ID (internal use only)."""
        return self.records[0].patient_id


@dataclass
class GroupResult:
    """Series built from records plus the records refused while grouping."""

    series: list[SeriesRef] = field(default_factory=list)
    quarantined: list[tuple[InstanceRecord, str, str]] = field(default_factory=list)


def group_key(rec: InstanceRecord) -> tuple[str, ...]:
    """The volume a record belongs to, as a sortable key.

    Single-frame images with position and orientation that share study, series,
    echo, temporal position and diffusion weighting form one stack; a multi-frame
    object or an image without position is a volume of its own.
    """
    base = (rec.study_uid, rec.series_uid, rec.echo, rec.temporal, rec.diffusion)
    if rec.frames > 1 or rec.enhanced:
        return (*base, "multi-frame", rec.sop_uid)
    if rec.ipp is None or rec.iop is None:
        return (*base, "2D", rec.sop_uid)
    return (*base, "stack", "")


def build_volume(members: Sequence[InstanceRecord], out: GroupResult) -> SeriesRef:
    """The volume made of the records of one :func:`group_key` (in any order).

    In a stack the largest subset with the same size, orientation and sample
    layout is kept and the others are refused as ``inconsistent-series``, as are
    duplicates of a slice position (refusals go to ``out.quarantined``).
    """
    first = members[0]
    kind = group_key(first)[-2]
    if kind != "stack":
        return _single(first, "multi-frame" if kind == "multi-frame" else "2D")
    kept = _consistent_subset(list(members), out)
    ordered = _order_by_position(kept, out)
    if len(ordered) == 1:
        return _single(ordered[0], "2D")
    geometry, problems = stack_geometry(
        [r.ipp for r in ordered if r.ipp is not None], ordered[0].iop, pixel_spacing_of(ordered[0]),
        shape=(len(ordered), ordered[0].rows, ordered[0].columns),
    )
    return SeriesRef(tuple(ordered), "stack", geometry, problems)


def group_records(records: Iterable[InstanceRecord]) -> GroupResult:
    """Group records held in memory into :class:`SeriesRef` volumes, in :func:`group_key` order.

    Two files with one SOP Instance UID (a copy, or one object in two transfer
    syntaxes) would make outputs with one UID: the first is used and the others
    are refused as ``duplicate-instance``. :func:`medaug.ingest.scan_archive`
    does the same through an on-disk store, for archives of any size.
    """
    out = GroupResult()
    volumes: dict[tuple[str, ...], list[InstanceRecord]] = defaultdict(list)
    seen: set[str] = set()
    for rec in records:
        if rec.sop_uid in seen:
            out.quarantined.append((rec, reasons.DUPLICATE_INSTANCE, DUPLICATE_DETAIL))
            continue
        seen.add(rec.sop_uid)
        volumes[group_key(rec)].append(rec)
    out.series = [build_volume(volumes[key], out) for key in sorted(volumes)]
    return out


#: Detail of a ``duplicate-instance`` refusal.
DUPLICATE_DETAIL = "(0008,0018) SOP Instance UID seen before"


def _consistent_subset(members: list[InstanceRecord], out: GroupResult) -> list[InstanceRecord]:
    """Keep the largest group sharing one geometry key; refuse the rest."""
    by_key: dict[tuple[object, ...], list[InstanceRecord]] = defaultdict(list)
    for rec in members:
        by_key[rec.geometry_key].append(rec)
    # Largest group wins; ties go to the group with the smallest instance UID, for determinism.
    best = min(by_key.values(), key=lambda g: (-len(g), min(r.sop_uid for r in g)))
    for group in by_key.values():
        if group is not best:
            for rec in group:
                out.quarantined.append((rec, reasons.INCONSISTENT_SERIES, _difference(rec, best[0])))
    return best


def _difference(rec: InstanceRecord, ref: InstanceRecord) -> str:
    """Name the attributes (by tag) in which a record differs from the kept stack."""
    names = []
    if (rec.rows, rec.columns) != (ref.rows, ref.columns):
        names.append("Rows/Columns (0028,0010)/(0028,0011)")
    if rec.samples != ref.samples or rec.photometric != ref.photometric:
        names.append("Samples per Pixel/Photometric Interpretation (0028,0002)/(0028,0004)")
    if rec.bits_allocated != ref.bits_allocated:
        names.append("Bits Allocated (0028,0100)")
    if rec.geometry_key[-1] != ref.geometry_key[-1]:
        names.append("Image Orientation (Patient) (0020,0037)")
    return "differs from the rest of its series in " + ", ".join(names or ["geometry"])


def _order_by_position(members: list[InstanceRecord], out: GroupResult) -> list[InstanceRecord]:
    """Sort by projection on the normal; refuse a second instance at the same position."""
    iop = members[0].iop
    assert iop is not None
    normal = slice_normal(iop)
    keyed = sorted(members, key=lambda r: (float(np.dot(np.asarray(r.ipp), normal)), r.sop_uid))
    kept: list[InstanceRecord] = []
    for rec in keyed:
        if kept and np.linalg.norm(np.asarray(rec.ipp) - np.asarray(kept[-1].ipp)) < 1e-3:
            out.quarantined.append((rec, reasons.INCONSISTENT_SERIES, "duplicate Image Position (Patient) (0020,0032)"))
            continue
        kept.append(rec)
    return kept


def slice_normal(iop: Sequence[float]) -> np.ndarray:
    """Unit normal (row cosine × column cosine) of an Image Orientation (Patient)."""
    row = np.asarray(iop[:3], dtype=np.float64)
    col = np.asarray(iop[3:6], dtype=np.float64)
    n = np.cross(row / np.linalg.norm(row), col / np.linalg.norm(col))
    return np.asarray(n / np.linalg.norm(n), dtype=np.float64)


def in_plane_direction(iop: Sequence[float] | None) -> np.ndarray:
    """3×3 direction with columns (normal, column cosine, row cosine), orthonormalised."""
    if iop is None:
        return DEFAULT_DIRECTION.copy()
    row = np.asarray(iop[:3], dtype=np.float64)
    row /= np.linalg.norm(row)
    col = np.asarray(iop[3:6], dtype=np.float64)
    col /= np.linalg.norm(col)
    d = np.empty((3, 3))
    d[:, 2] = row
    d[:, 1] = col
    d[:, 0] = slice_normal(iop)
    return d


def pixel_spacing_of(rec: InstanceRecord) -> tuple[float, float]:
    """(row spacing, column spacing) in mm of a record; 1.0 where the header has none."""
    if rec.pixel_spacing and min(rec.pixel_spacing) > 0:
        return (rec.pixel_spacing[0], rec.pixel_spacing[1])
    return (1.0, 1.0)


def _fallback_slice_spacing(rec: InstanceRecord) -> float:
    """Spacing Between Slices, else Slice Thickness, else 1 mm."""
    return rec.spacing_between_slices or rec.slice_thickness or 1.0


def _single(rec: InstanceRecord, kind: Kind) -> SeriesRef:
    """A volume made of one object (one 2D image or one multi-frame object)."""
    shape = (rec.frames, rec.rows, rec.columns)
    if rec.frame_positions is not None and rec.iop is not None and rec.frames > 1:
        order = frame_order(rec.frame_positions, rec.iop)
        positions = [rec.frame_positions[f] for f in order]
        geometry, problems = stack_geometry(positions, rec.iop, pixel_spacing_of(rec), shape=shape,
                                            fallback=_fallback_slice_spacing(rec))
        return SeriesRef((rec,), kind, geometry, problems)
    direction = in_plane_direction(rec.iop)
    origin = rec.ipp if rec.ipp is not None else (0.0, 0.0, 0.0)
    spacing = (_fallback_slice_spacing(rec), *pixel_spacing_of(rec))
    return SeriesRef((rec,), kind, Geometry.from_arrays(shape, spacing, origin, direction), ())


def frame_order(positions: Sequence[Sequence[float]], iop: Sequence[float]) -> list[int]:
    """Frame indices sorted by position along the normal (stable for equal positions)."""
    normal = slice_normal(iop)
    proj = [float(np.dot(np.asarray(p), normal)) for p in positions]
    return sorted(range(len(positions)), key=lambda f: (proj[f], f))


def stack_geometry(
    positions: Sequence[Sequence[float]],
    iop: Sequence[float] | None,
    pixel_spacing: tuple[float, float],
    *,
    shape: tuple[int, int, int],
    fallback: float = 1.0,
) -> tuple[Geometry, tuple[str, ...]]:
    """Geometry and problem codes of slices already sorted along the normal.

    The slice axis is the step from one slice to the next: the mean step
    (first to last) when steps are regular, so every position is reproduced;
    otherwise the component-wise median step.
    """
    direction = in_plane_direction(iop)
    normal = direction[:, 0]
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    problems: list[str] = []
    if len(pos) < 2:
        spacing = (fallback, *pixel_spacing)
        return Geometry.from_arrays(shape, spacing, pos[0] if len(pos) else (0, 0, 0), direction), ()
    steps = np.diff(pos, axis=0)
    along = steps @ normal
    typical = float(np.median(along))
    if typical <= 0:
        typical = float(np.max(along)) or 1.0
    deviation = np.abs(along - typical) > max(STEP_TOLERANCE * typical, 1e-3)
    if deviation.any():
        # With a gap the smallest step is the true one, and every step a whole multiple of it.
        smallest = float(np.min(along))
        ratios = along / smallest if smallest > 0 else along * np.inf
        whole = np.isfinite(ratios).all() and bool(np.all(np.abs(ratios - np.round(ratios)) < 0.05))
        if whole:
            problems.append(reasons.MISSING_SLICES)
            unit = np.round(ratios) == 1
            step = np.median(steps[unit], axis=0)
        else:
            problems.append(reasons.IRREGULAR_SPACING)
            step = np.median(steps, axis=0)
    else:
        step = (pos[-1] - pos[0]) / (len(pos) - 1)
    length = float(np.linalg.norm(step))
    axis = step / length
    tilt = float(np.degrees(np.arccos(min(1.0, abs(float(axis @ normal))))))
    if tilt > TILT_DEGREES:
        problems.append(reasons.GANTRY_TILT)
    direction[:, 0] = axis
    geometry = Geometry.from_arrays(shape, (length, *pixel_spacing), pos[0], direction)
    return geometry, tuple(problems)
