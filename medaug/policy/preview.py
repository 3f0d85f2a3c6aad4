"""``medaug policy preview``: a contact sheet of what a policy does to one series.

For approvers: the de-identified source and N variants made exactly as
``medaug run`` would make them (same de-identification, same keyed series UID,
so the same per-variant generator and parameters), drawn as a grid of equally
sized square panels. No text from any header is drawn; the PNG holds pixels
only.

Layout (``rows × columns`` panels of ``panel × panel`` px):

- row 0: the de-identified source; columns 0–2 are the mid slices in the
  three planes (3D) or the image itself (2D, one column); the remaining
  columns are empty (black).
- row ``v`` (1 … N): variant ``v``; the same planes, then the displacement
  magnitude map (mm) and the absolute difference map ``|variant − source|``
  of the mid slice.

A 3D series has 5 columns: slice plane (mid ``k``), the plane through the
middle row (``j``), the plane through the middle column (``i``),
displacement, difference; for an axial CT these are axial, coronal and
sagittal. In the two reformatted planes the slice axis runs upwards. Every
plane keeps its physical aspect ratio (letterboxed in black). A 2D image has
3 columns: image, displacement, difference.

Values: CT is windowed to [-1000, 400] HU (lung and soft tissue both
readable); other modalities to the 1st–99th percentile of the source, the
same window for every variant. Displacement and difference maps use a
black-red-yellow-white ramp from 0 to the largest value over all variants
(so rows are comparable), recorded in :class:`PreviewLayout`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from medaug.png import write_png
from medaug.augment.resample import Mapping
from medaug.augment.variant import VariantParams, apply_variant, mapping_for, variant_params
from medaug.deid.keys import Key
from medaug.deid.series import deidentify_series
from medaug.display import display_window, to_uint8
from medaug.errors import UsageError
from medaug.geometry import Geometry
from medaug.ingest import load_series, scan_archive
from medaug.ingest.image import SeriesImage
from medaug.policy.model import Policy

#: Default panel size in pixels.
PANEL = 192

#: Grey of the 1-pixel frame drawn inside every panel, so adjacent panels stay apart.
_FRAME = 70


@dataclass(frozen=True)
class PreviewLayout:
    """What :func:`write_preview` drew.

    Attributes
    ----------
    rows, columns : int
        Grid size in panels (the PNG is ``rows × panel`` by ``columns × panel`` pixels).
    panel : int
        Side of a square panel in pixels.
    window : tuple of float
        Display window of the image panels (value drawn black, value drawn
        white), in modality units; reversed for MONOCHROME1.
    max_displacement_mm : float
        Displacement (mm) drawn at full intensity.
    max_difference : float
        Absolute difference (modality units) drawn at full intensity.
    params : list of VariantParams
        The parameters of each variant row.
    """

    rows: int
    columns: int
    panel: int
    window: tuple[float, float]
    max_displacement_mm: float
    max_difference: float
    params: list[VariantParams] = field(default_factory=list)


def heat(values: NDArray[np.generic], top: float) -> NDArray[np.uint8]:
    """``(h, w, 3)`` black-red-yellow-white ramp of ``values / top`` (0 → black)."""
    t = np.clip(np.asarray(values, dtype=np.float64) / max(top, 1e-12), 0.0, 1.0)
    rgb = np.stack([np.clip(3 * t, 0, 1), np.clip(3 * t - 1, 0, 1), np.clip(3 * t - 2, 0, 1)], axis=-1)
    return np.asarray(np.rint(rgb * 255), dtype=np.uint8)


def displacement_mm(geometry: Geometry, mapping: Mapping, *, k: int) -> NDArray[np.float64]:
    """``(rows, columns)`` distance in mm from each output voxel of slice ``k`` to where it samples the source.

    The mapping is evaluated exactly as the resampling kernel does
    (``source = M (index + u) + b`` with ``u`` the B-spline displacement in
    voxels), so rotation and elastic deformation are both included.
    """
    nk, nj, ni = geometry.shape
    qk, wk, _, qj, wj, _, qi, wi, _ = mapping.tables
    jj, ii = np.meshgrid(np.arange(nj, dtype=np.float64), np.arange(ni, dtype=np.float64), indexing="ij")
    index = np.stack([np.full_like(jj, float(k)), jj, ii], axis=-1)
    if mapping.control is not None:
        control = mapping.control

        def basis(q: NDArray[np.generic], w: NDArray[np.generic], count: int) -> NDArray[np.float64]:
            dense = np.zeros((len(q), count))
            for t in range(4):
                cols = np.asarray(q, dtype=np.int64) + t
                ok = cols < count  # a singleton axis has one point and weight only on tap 0
                dense[np.arange(len(q))[ok], cols[ok]] += np.asarray(w, dtype=np.float64)[ok, t]
            return dense

        bk = basis(qk, wk, control.shape[0])[k]
        bj = basis(qj, wj, control.shape[1])
        bi = basis(qi, wi, control.shape[2])
        index = index + np.einsum("a,jb,ic,abcd->jid", bk, bj, bi, control)
    source = index @ mapping.matrix.T + mapping.offset
    step = geometry.direction_matrix * np.asarray(geometry.spacing)[None, :]
    moved = (source - np.stack([np.full_like(jj, float(k)), jj, ii], axis=-1)) @ step.T
    return np.asarray(np.linalg.norm(moved, axis=-1), dtype=np.float64)


def _fit(
    plane: NDArray[np.uint8], spacing: tuple[float, float], panel: int
) -> tuple[NDArray[np.uint8], NDArray[np.bool_]]:
    """Nearest-neighbour resample of a 2D plane into a ``panel²`` square, keeping its physical aspect."""
    h_mm, w_mm = plane.shape[0] * spacing[0], plane.shape[1] * spacing[1]
    scale = (panel - 2) / max(h_mm, w_mm)  # px per mm, inside the 1-px frame
    h_px, w_px = max(1, round(h_mm * scale)), max(1, round(w_mm * scale))
    top, left = (panel - h_px) // 2, (panel - w_px) // 2
    rows = np.minimum(((np.arange(h_px) + 0.5) / scale / spacing[0]).astype(np.int64), plane.shape[0] - 1)
    cols = np.minimum(((np.arange(w_px) + 0.5) / scale / spacing[1]).astype(np.int64), plane.shape[1] - 1)
    out = np.zeros((panel, panel) + plane.shape[2:], dtype=np.uint8)
    mask = np.zeros((panel, panel), dtype=bool)
    out[top : top + h_px, left : left + w_px] = plane[rows[:, None], cols[None, :]]
    mask[top : top + h_px, left : left + w_px] = True
    return out, mask


def _planes(data: NDArray[np.generic], geometry: Geometry) -> list[tuple[NDArray[np.generic], tuple[float, float]]]:
    """Mid planes with their pixel spacing: the slice plane, then (3D) the row and column planes."""
    nk, nj, ni = geometry.shape
    sk, sj, si = geometry.spacing
    planes = [(data[nk // 2], (sj, si))]
    if nk > 1:
        # Flip the slice axis so it runs upwards (superior up for an axial stack).
        planes.append((data[::-1, nj // 2], (sk, si)))
        planes.append((data[::-1, :, ni // 2], (sk, sj)))
    return planes


def _grey(data: NDArray[np.generic]) -> NDArray[np.float64]:
    """Monochrome values; colour samples become their mean (a luminance stand-in)."""
    arr = np.asarray(data, dtype=np.float64)
    return arr.mean(axis=-1) if arr.ndim == 4 else arr


def _panel(img: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The tile as RGB with a 1-pixel grey frame."""
    rgb = img if img.ndim == 3 else np.repeat(img[..., None], 3, axis=-1)
    framed = rgb.copy()
    framed[[0, -1], :] = _FRAME
    framed[:, [0, -1]] = _FRAME
    return framed


def single_series(series_dir: Path) -> SeriesImage:
    """Load the one series in ``series_dir`` and de-identify nothing yet.

    Raises
    ------
    UsageError
        The folder holds no series or more than one.
    """
    scan = scan_archive(series_dir)
    if len(scan.series) != 1:
        raise UsageError(f"SERIES_DIR must hold exactly one series; it holds {len(scan.series)}")
    return load_series(scan.series[0]).image


def contact_sheet(
    image: SeriesImage, policy: Policy, *, variants: int = 3, panel: int = PANEL
) -> tuple[NDArray[np.uint8], PreviewLayout]:
    """Draw the contact sheet of a de-identified image (layout in the module docstring).

    Parameters
    ----------
    image : SeriesImage
        The de-identified series (its Series Instance UID keys the variants).
    policy : Policy
        Transform bounds, seed and interpolation.
    variants : int
        Variant rows to draw (variant numbers 1 … ``variants``).
    panel : int
        Panel side in pixels.

    Returns
    -------
    pixels : ndarray of uint8, shape (rows × panel, columns × panel, 3)
    layout : PreviewLayout
    """
    geometry = image.geometry
    three_d = geometry.shape[0] > 1
    n_planes = 3 if three_d else 1
    columns = n_planes + 2
    source = _grey(image.data)
    window = display_window(source, modality=image.modality)
    if image.photometric == "MONOCHROME1":
        # Low values display bright in MONOCHROME1: reverse the window.
        window = (window[1], window[0])
    series_uid = str(image.headers[0].SeriesInstanceUID)
    value_range = None if image.is_colour else image.modality_range
    mid = geometry.shape[0] // 2

    rows_out: list[tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]] = []
    params_used: list[VariantParams] = []
    for v in range(1, variants + 1):
        params = variant_params(
            policy.augment, seed=policy.seed, series_key=series_uid, variant=v, geometry=geometry,
            modality=image.modality, regular=image.regular_grid,
        )
        applied = apply_variant(image.data, geometry, params, modality=image.modality, value_range=value_range)
        warped = _grey(applied.data)
        disp = displacement_mm(geometry, mapping_for(geometry, params), k=mid)
        rows_out.append((warped, disp, np.abs(warped[mid] - source[mid])))
        params_used.append(params)
    top_disp = max([float(d.max()) for _, d, _ in rows_out] + [0.0])
    top_diff = max([float(np.percentile(f, 99.5)) for _, _, f in rows_out] + [0.0])
    # Empty maps (no transform of that kind) stay black instead of dividing by zero.
    top_disp_draw = top_disp if top_disp > 0 else 1.0
    top_diff_draw = top_diff if top_diff > 0 else 1.0

    sheet = np.zeros(((variants + 1) * panel, columns * panel, 3), dtype=np.uint8)

    def put(r: int, c: int, tile: NDArray[np.uint8]) -> None:
        sheet[r * panel : (r + 1) * panel, c * panel : (c + 1) * panel] = _panel(tile)

    for c, (plane, spacing) in enumerate(_planes(source, geometry)):
        put(0, c, _fit(to_uint8(plane, window), spacing, panel)[0])
    for c in range(n_planes, columns):
        put(0, c, np.zeros((panel, panel), dtype=np.uint8))
    in_plane = (geometry.spacing[1], geometry.spacing[2])
    for r, (warped, disp, diff) in enumerate(rows_out, start=1):
        for c, (plane, spacing) in enumerate(_planes(warped, geometry)):
            put(r, c, _fit(to_uint8(plane, window), spacing, panel)[0])
        put(r, n_planes, _fit(heat(disp, top_disp_draw), in_plane, panel)[0])
        put(r, n_planes + 1, _fit(heat(diff, top_diff_draw), in_plane, panel)[0])
    layout = PreviewLayout(
        rows=variants + 1,
        columns=columns,
        panel=panel,
        window=window,
        max_displacement_mm=top_disp,
        max_difference=top_diff,
        params=params_used,
    )
    return sheet, layout


def write_preview(
    policy: Policy, series_dir: Path, key: Key, out: Path, *, variants: int = 3, panel: int = PANEL
) -> PreviewLayout:
    """De-identify the one series in ``series_dir``, make its variants and write the contact sheet.

    Parameters
    ----------
    policy : Policy
        The policy to preview (approval not required).
    series_dir : Path
        Folder holding exactly one series.
    key : Key
        The secret key (the variants depend on the keyed series UID, as in a run).
    out : Path
        PNG file to write.
    variants : int
        Number of variant rows.
    panel : int
        Panel side in pixels.

    Returns
    -------
    PreviewLayout

    Raises
    ------
    UsageError
        No single series in the folder, a modality the policy does not cover,
        or a negative ``variants``.
    """
    if variants < 0 or isinstance(variants, bool):
        raise UsageError("variants must be 0 or more")
    if panel < 8:
        raise UsageError("panel must be at least 8 pixels")
    image = single_series(Path(series_dir))
    if not policy.covers(image.modality):
        raise UsageError("the policy does not cover the modality of this series")
    sheet, layout = contact_sheet(deidentify_series(image, policy.deid, key), policy, variants=variants, panel=panel)
    write_png(Path(out), sheet)
    return layout


__all__ = [
    "PANEL",
    "PreviewLayout",
    "contact_sheet",
    "displacement_mm",
    "heat",
    "single_series",
    "write_preview",
]
