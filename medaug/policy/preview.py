"""``medaug policy preview``: a labelled contact sheet of what a policy does to one series.

For approvers: the de-identified source and N variants made exactly as
``medaug run`` would make them (same de-identification, same keyed series UID,
so the same per-variant generator and parameters), drawn with matplotlib as a
grid of labelled panels. The only text on the sheet is fixed words and numbers
(plane names, realised parameters, scales); no header value of any series is
drawn, so no identifier can appear.

Layout (``rows × columns`` panels, one row per image):

- row 0, titled "source (de-identified)": the mid slices in the three planes
  (3D) or the image itself (2D, one column); the map columns stay empty.
- row ``v`` (1 … N), titled "variant v: rot 3.2°, tilt 0.5°/-0.3°, elastic max
  2.1 mm, shift 1.5 HU, scale 0.012" (the variant's *realised* parameters; a
  transform the policy does not allow is left out): the same planes, then
  "displacement" (mm, on the mid slice) and "|variant − source|" of the mid
  slice, each with a colour bar in its unit.

A 3D series has 5 columns: the slice plane (mid ``k``), the plane through the
middle row (``j``) and through the middle column (``i``), each titled by its
anatomical name when its normal lies within about 25° of a patient axis
(axial, coronal, sagittal; else "slice plane", "row plane", "column plane"),
then displacement and difference. In the two reformatted planes the slice axis
runs upwards. Every panel's axes are in mm from the plane's first voxel, so
each plane keeps its physical aspect ratio. A 2D image has 3 columns: "image",
displacement, difference.

Values: CT is windowed to [-1000, 400] HU (lung and soft tissue both
readable); other modalities to the 1st–99th percentile of the source, the
same window for every variant. Displacement and difference maps share one
colour scale from 0 to the largest value over all variants (difference: its
99.5th percentile), so rows are comparable; both scales are returned in
:class:`PreviewLayout`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.image import AxesImage
from numpy.typing import NDArray

from medaug.augment.resample import Mapping
from medaug.augment.variant import VariantParams, apply_variant, mapping_for, variant_params
from medaug.deid.keys import Key
from medaug.deid.series import deidentify_series
from medaug.display import display_window
from medaug.atomic import write_atomic
from medaug.errors import UsageError
from medaug.geometry import Geometry
from medaug.ingest import load_series, scan_archive
from medaug.ingest.image import SeriesImage
from medaug.figures import figure_png, new_figure, style
from medaug.policy.model import Policy

#: Default side of an image panel in pixels (the drawn image area; labels and colour bars add to it).
PANEL = 192

#: Smallest panel side: below it the tick labels and titles no longer fit.
MIN_PANEL = 96

#: Pixels added to every panel for its title, ticks and axis label (height) and colour bar (width).
_ROW_EXTRA, _COLUMN_EXTRA = 84, 96

#: Colour map of the displacement and difference panels (0 black, largest value pale yellow).
MAP_COLOURS = "inferno"


@dataclass(frozen=True)
class PreviewLayout:
    """What :func:`write_preview` drew.

    Attributes
    ----------
    rows, columns : int
        Grid size in panels: one row per image (source, then variants), one
        column per plane and map.
    panel : int
        Side in pixels of the area each panel is laid out in (labels and
        colour bars add to it; the sheet is ``width × height`` pixels).
    window : tuple of float
        Display window of the image panels (value drawn black, value drawn
        white), in modality units; reversed for MONOCHROME1.
    max_displacement_mm : float
        Top of the displacement colour bar (mm).
    max_difference : float
        Top of the difference colour bar (modality units).
    params : list of VariantParams
        The parameters of each variant row.
    row_labels, column_labels : list of str
        The titles drawn: one per row, one per column.
    width, height : int
        Size of the PNG in pixels.
    """

    rows: int
    columns: int
    panel: int
    window: tuple[float, float]
    max_displacement_mm: float
    max_difference: float
    params: list[VariantParams] = field(default_factory=list)
    row_labels: list[str] = field(default_factory=list)
    column_labels: list[str] = field(default_factory=list)
    width: int = 0
    height: int = 0


def value_unit(modality: str) -> str:
    """The unit of modality values: HU for CT, else "modality units"."""
    return "HU" if modality.upper() == "CT" else "modality units"


def describe(params: VariantParams, *, unit: str) -> str:
    """The realised parameters of a variant in a few words and numbers (never a header value).

    Examples
    --------
    >>> from medaug.augment.rotation import RotationParams
    >>> describe(VariantParams(rotation=RotationParams(3.21, 0.5, -0.34)), unit="HU")
    'rot 3.2°, tilt 0.5°/-0.3°'
    >>> describe(VariantParams(), unit="HU")
    'no transform'
    """
    words: list[str] = []
    if params.rotation is not None:
        r = params.rotation
        words.append(f"rot {r.degrees:.1f}°")
        words.append(f"tilt {r.tilt_row_degrees:.1f}°/{r.tilt_column_degrees:.1f}°")
    if params.elastic is not None:
        arr = np.asarray(params.elastic.displacement_mm, dtype=np.float64)
        words.append(f"elastic max {float(np.abs(arr).max()) if arr.size else 0.0:.1f} mm")
    if params.intensity is not None:
        i = params.intensity
        words.append(f"shift {i.shift:.1f} {unit}")
        words.append(f"scale {i.scale:.3f}")
        if i.bias_coefficients:
            words.append(f"bias {float(np.abs(i.bias_coefficients).sum()):.3f}")
    return ", ".join(words) or "no transform"


def _plane_name(normal: NDArray[np.float64], fallback: str) -> str:
    """axial / coronal / sagittal when ``normal`` is within ~25° of a patient (LPS) axis."""
    axis = int(np.argmax(np.abs(normal)))
    if abs(float(normal[axis])) / max(float(np.linalg.norm(normal)), 1e-12) < 0.9:
        return fallback
    return ("sagittal", "coronal", "axial")[axis]


def plane_labels(geometry: Geometry) -> list[str]:
    """Titles of the image columns: the slice plane, then (3D) the row and column planes."""
    if geometry.shape[0] == 1:
        # One image (a radiograph has no slice plane to name): called what it is.
        return ["image"]
    d = geometry.direction_matrix
    return [_plane_name(d[:, 0], "slice plane"), _plane_name(d[:, 1], "row plane"), _plane_name(d[:, 2], "column plane")]


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


def _show_image(ax: Axes, plane: NDArray[np.generic], spacing: tuple[float, float], *, upwards: bool, **kw: Any) -> AxesImage:
    """Draw a plane with axes in mm from its first voxel (``upwards``: first row at the bottom)."""
    h_mm, w_mm = plane.shape[0] * spacing[0], plane.shape[1] * spacing[1]
    extent = (0.0, w_mm, 0.0, h_mm) if upwards else (0.0, w_mm, h_mm, 0.0)
    im = ax.imshow(plane, extent=extent, origin="upper", aspect="equal", interpolation="nearest", **kw)
    ax.set_xlabel("mm")
    ax.tick_params(length=2, pad=1)
    ax.locator_params(nbins=4)
    return im


def contact_sheet(
    image: SeriesImage, policy: Policy, *, variants: int = 3, panel: int = PANEL
) -> tuple[bytes, PreviewLayout]:
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
        Side in pixels of the area of one panel.

    Returns
    -------
    png : bytes
        The sheet as PNG (deterministic: no date, no software name).
    layout : PreviewLayout
    """
    geometry = image.geometry
    n_planes = 3 if geometry.shape[0] > 1 else 1
    columns = n_planes + 2
    unit = value_unit(image.modality)
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
    # Empty maps (no transform of that kind) get a unit scale instead of a zero-width one.
    top_disp_draw = top_disp if top_disp > 0 else 1.0
    top_diff_draw = top_diff if top_diff > 0 else 1.0

    row_labels = ["source (de-identified)"] + [
        f"variant {v}: {describe(p, unit=unit)}" for v, p in enumerate(params_used, start=1)
    ]
    column_labels = plane_labels(geometry) + ["displacement", "|variant − source|"]
    width, row_height = columns * (panel + _COLUMN_EXTRA), panel + _ROW_EXTRA
    height = (variants + 1) * row_height
    grey = {"cmap": "gray_r" if window[0] > window[1] else "gray", "vmin": min(window), "vmax": max(window)}
    in_plane = (geometry.spacing[1], geometry.spacing[2])

    with style():
        fig = new_figure(width, height)
        subfigs = fig.subfigures(variants + 1, 1, squeeze=False)[:, 0]
        for r, sub in enumerate(subfigs):
            sub.suptitle(row_labels[r], x=0.005, ha="left", fontsize=10, fontweight="bold")
            axes = sub.subplots(1, columns, squeeze=False)[0]
            sub.subplots_adjust(left=0.04, right=0.97, bottom=0.2, top=0.8, wspace=0.55)
            volume = source if r == 0 else rows_out[r - 1][0]
            for c, (plane, spacing) in enumerate(_planes(volume, geometry)):
                _show_image(axes[c], plane, spacing, upwards=c > 0, **grey)
                axes[c].set_title(column_labels[c])
            if r == 0:
                for ax in axes[n_planes:]:
                    ax.set_axis_off()
                continue
            _, disp, diff = rows_out[r - 1]
            for c, values, top, label in (
                (n_planes, disp, top_disp_draw, "mm"),
                (n_planes + 1, diff, top_diff_draw, unit),
            ):
                im = _show_image(axes[c], values, in_plane, upwards=False, cmap=MAP_COLOURS, vmin=0.0, vmax=top)
                axes[c].set_title(column_labels[c])
                bar = sub.colorbar(im, ax=axes[c], fraction=0.08, pad=0.04)
                bar.set_label(label)
                bar.ax.tick_params(labelsize=7, length=2)
        png = figure_png(fig)
    layout = PreviewLayout(
        rows=variants + 1,
        columns=columns,
        panel=panel,
        window=window,
        max_displacement_mm=top_disp,
        max_difference=top_diff,
        params=params_used,
        row_labels=row_labels,
        column_labels=column_labels,
        width=width,
        height=height,
    )
    return png, layout


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
        Side in pixels of the area of one panel (at least :data:`MIN_PANEL`).

    Returns
    -------
    PreviewLayout

    Raises
    ------
    UsageError
        No single series in the folder, a modality the policy does not cover,
        a negative ``variants`` or a panel below :data:`MIN_PANEL`.
    """
    if variants < 0 or isinstance(variants, bool):
        raise UsageError("variants must be 0 or more")
    if panel < MIN_PANEL:
        raise UsageError(f"panel must be at least {MIN_PANEL} pixels")
    image = single_series(Path(series_dir))
    if not policy.covers(image.modality):
        raise UsageError("the policy does not cover the modality of this series")
    png, layout = contact_sheet(deidentify_series(image, policy.deid, key), policy, variants=variants, panel=panel)
    write_atomic(Path(out), lambda f: f.write(png))
    return layout


__all__ = [
    "PANEL",
    "PreviewLayout",
    "MAP_COLOURS",
    "MIN_PANEL",
    "contact_sheet",
    "describe",
    "displacement_mm",
    "plane_labels",
    "single_series",
    "value_unit",
    "write_preview",
]
