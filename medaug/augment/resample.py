"""One resampling pass: compose the spatial transforms, interpolate once.

A variant's spatial part is a coordinate mapping from each *output* voxel to a
continuous *source* index, built in patient millimetres and expressed in index
space so the kernel only does arithmetic::

    y   = spacing * index                       (mm along the volume's axes)
    y'  = y + u(y)                              (B-spline displacement, mm)
    p'  = origin + direction @ y'               (patient position, LPS mm)
    src = centre + Rᵀ (p' - centre)             (content rotated by R)
    source index = spacing⁻¹ direction⁻¹ (src - origin)

which collapses to ``source index = M (index + u / spacing) + b`` with
``M = S⁻¹ D⁻¹ Rᵀ D S``. ``M - I`` and ``b`` are computed from ``Rᵀ - I`` so a
zero rotation gives exactly ``M = I`` and ``b = 0`` (identity parameters
reproduce the input bit for bit). Because the rotation is applied in patient
coordinates through the direction and spacing, anisotropic and sheared
(gantry-tilt) grids are handled exactly.

The Jacobian determinant of the mapping is ``det(M) · det(I + ∂u/∂y)`` and
``det(M) = det(R) = 1``; the kernel evaluates ``det(I + ∂u/∂y)`` analytically
from the B-spline derivative at **every output voxel**.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medaug.augment import _kernel
from medaug.augment.bspline import basis_tables, grid_for
from medaug.errors import TransformError
from medaug.geometry import Geometry

#: Interpolation orders understood by :func:`resample`.
ORDERS = {"nearest": 0, "linear": 1, "cubic": 3}


@dataclass(frozen=True)
class Mapping:
    """Output index → source index, as the kernel consumes it.

    Attributes
    ----------
    matrix, offset : ndarray
        ``source = matrix @ (index + displacement) + offset``.
    control : ndarray or None
        ``(mk, mj, mi, 3)`` control displacements in voxels of each axis, or
        None without elastic deformation.
    tables : tuple of ndarray
        Per-axis B-spline taps ``(qk, wk, dwk, qj, wj, dwj, qi, wi, dwi)``.
    """

    matrix: NDArray[np.float64]
    offset: NDArray[np.float64]
    control: NDArray[np.float64] | None
    tables: tuple[NDArray[np.generic], ...]


def build_mapping(
    geometry: Geometry,
    *,
    rotation: NDArray[np.float64] | None = None,
    displacement_mm: NDArray[np.float64] | None = None,
    control_spacing_mm: float | None = None,
) -> Mapping:
    """Compose a rotation and a B-spline displacement into one mapping.

    Parameters
    ----------
    geometry : Geometry
        The grid of both source and output.
    rotation : ndarray, optional
        3×3 rotation of the content in patient coordinates, about the volume centre.
    displacement_mm : ndarray, optional
        ``(mk, mj, mi, 3)`` control displacements in mm along ``(k, j, i)``.
    control_spacing_mm : float, optional
        Control grid spacing; required with ``displacement_mm``.
    """
    spacing = np.asarray(geometry.spacing, dtype=np.float64)
    mat = np.eye(3)
    off = np.zeros(3)
    if rotation is not None:
        d = geometry.direction_matrix * spacing[None, :]  # D S
        delta = np.linalg.solve(d, (np.asarray(rotation, dtype=np.float64).T - np.eye(3)) @ d)
        centre = (np.asarray(geometry.shape, dtype=np.float64) - 1.0) / 2.0
        off = -(delta @ centre)
        mat = np.eye(3) + delta
        # A singleton axis (2D image) must map onto itself exactly, whatever
        # rounding the in-plane rotation leaves in the matrix.
        for a, n in enumerate(geometry.shape):
            if n == 1:
                mat[a, :] = 0.0
                mat[:, a] = 0.0
                mat[a, a] = 1.0
                off[a] = 0.0
    control: NDArray[np.float64] | None = None
    tables: list[NDArray[np.generic]] = []
    if displacement_mm is not None:
        if control_spacing_mm is None:
            raise TransformError("elastic.control_spacing_mm is required with a displacement")
        grids = grid_for(geometry, control_spacing_mm)
        control = np.ascontiguousarray(np.asarray(displacement_mm, dtype=np.float64) / spacing)
        for n, vox, grid in zip(geometry.shape, geometry.spacing, grids):
            tables.extend(basis_tables(n, vox, control_spacing_mm, grid))
    else:
        for n in geometry.shape:
            tables.extend(
                (np.zeros(n, dtype=np.int64), np.zeros((n, 4)), np.zeros((n, 4)))
            )
    return Mapping(matrix=mat, offset=off, control=control, tables=tuple(tables))


def _as_channels(data: NDArray[np.generic], geometry: Geometry) -> tuple[NDArray[np.generic], tuple[int, ...]]:
    """The source as the kernels read it (flat, C order) and its ``(k, j, i, c)`` shape.

    One layout means one compiled kernel per dtype pair; a C-contiguous input
    (the usual case) is not copied.
    """
    if tuple(data.shape[:3]) != tuple(geometry.shape) or data.ndim not in (3, 4):
        raise TransformError("the volume's shape does not match its geometry")
    shape = tuple(data.shape) if data.ndim == 4 else tuple(data.shape) + (1,)
    flat = np.ascontiguousarray(data).reshape(-1)
    if flat.dtype in (np.int16, np.uint16) and flat.size < _kernel.WORD_ELEMENTS:
        # The kernels read a 16-bit source a word at a time (_kernel._within_word); a
        # one-voxel one has no word. float32 holds every 16-bit value exactly.
        flat = flat.astype(np.float32)
    return flat, shape


def _powers(n: int, order: int) -> NDArray[np.float64]:
    """``(n, order + 1)`` powers of the normalised position (-1 … 1) along one axis."""
    x = np.zeros(n) if n == 1 else np.linspace(-1.0, 1.0, n)
    return np.asarray(x[:, None] ** np.arange(order + 1)[None, :], dtype=np.float64)


def resample(
    data: NDArray[np.generic],
    geometry: Geometry,
    mapping: Mapping,
    *,
    order: str = "linear",
    fill: float,
    value_range: tuple[float, float] | None = None,
    gain: float = 1.0,
    shift: float = 0.0,
    bias_coefficients: NDArray[np.float64] | None = None,
    bias_exponents: NDArray[np.int64] | None = None,
    intensity: bool = False,
    out_dtype: "np.dtype[Any] | type | None" = None,
    out: NDArray[Any] | None = None,
) -> tuple[NDArray[Any], float, float]:
    """Warp ``data`` through ``mapping`` in one interpolation pass.

    Parameters
    ----------
    data : ndarray
        ``(k, j, i)`` or ``(k, j, i, c)`` values of any real dtype (not copied).
    geometry : Geometry
        Grid of the source and of the output.
    mapping : Mapping
        From :func:`build_mapping`.
    order : {'linear', 'cubic'}
        Trilinear, or Catmull-Rom cubic convolution (interpolating, no prefilter).
    fill : float
        Value of output voxels whose source lies outside the volume.
    value_range : tuple of float, optional
        Every output value is clipped into it.
    gain, shift, bias_coefficients, bias_exponents, intensity
        With ``intensity``, inside values become
        ``v * gain * (1 + Σ c_t x_k^a y_j^b z_i^c) + shift`` (normalised position).
    out_dtype : dtype, optional
        float32 by default; an integer type makes the kernel round (half up) and
        clip into that type's range as it writes, so no float copy is made.
    out : ndarray, optional
        Where to write: a C-contiguous, writeable array of ``data``'s shape and of
        ``out_dtype``, apart from ``data``. Every value is overwritten. A caller warping
        one volume again and again (a series' variants) passes the last output it is done
        with. A new array of a volume's size is mapped afresh, and the operating system
        zeroes each of its pages when it is first written: on a 512² CT that was a fifth of
        the warp's time (measured), which memory the process already holds does not cost.

    Returns
    -------
    out : ndarray
        Same shape as ``data``, of ``out_dtype`` (a view of ``out`` when given).
    min_jacobian, max_jacobian : float
        Extremes of the mapping's Jacobian determinant over all output voxels
        (1.0 without elastic deformation).
    """
    if order not in ("linear", "cubic"):
        raise TransformError("interpolation must be 'linear' or 'cubic'")
    src, shape = _as_channels(data, geometry)
    dtype = np.dtype(np.float32 if out_dtype is None else out_dtype)
    target = np.empty(shape, dtype=dtype) if out is None else _target(out, data, shape, dtype)
    nk, nj, ni = geometry.shape
    lo, hi = (-np.inf, np.inf) if value_range is None else (float(value_range[0]), float(value_range[1]))
    rounding = bool(np.issubdtype(dtype, np.integer))
    if rounding:
        info = np.iinfo(dtype)
        lo, hi = max(lo, float(info.min)), min(hi, float(info.max))
    coef = np.zeros(0) if bias_coefficients is None else np.asarray(bias_coefficients, dtype=np.float64)
    exps = (
        np.zeros((0, 3), dtype=np.int64)
        if bias_exponents is None
        else np.ascontiguousarray(bias_exponents, dtype=np.int64).reshape(-1, 3)
    )
    top = int(exps.max()) if exps.size else 0
    jmin = np.empty(nk)
    jmax = np.empty(nk)
    elastic = mapping.control is not None
    control = mapping.control if mapping.control is not None else np.zeros((1, 1, 1, 3))
    kernel: Any = _kernel.warp_values  # numba's Dispatcher stub does not know the signature
    kernel(
        src,
        target,
        mapping.matrix,
        mapping.offset,
        elastic,
        control,
        *mapping.tables,
        ORDERS[order],
        float(fill),
        bool(intensity),
        float(gain),
        float(shift),
        coef,
        exps,
        _powers(nk, top),
        _powers(nj, top),
        _powers(ni, top),
        lo,
        hi,
        rounding,
        jmin,
        jmax,
        _kernel.chunk_count(nk),
    )
    # Combined in slice order on one thread: the same answer for any thread count.
    if elastic:
        min_j, max_j = float(jmin.min()), float(jmax.max())
    else:
        min_j = max_j = 1.0
    return target.reshape(data.shape), min_j, max_j


def _target(out: NDArray[Any], data: NDArray[Any], shape: tuple[int, ...], dtype: np.dtype[Any]) -> NDArray[Any]:
    """``out`` as the kernel writes it, ``(k, j, i, c)``; refused when it cannot hold the output."""
    if out.shape != data.shape or out.dtype != dtype:
        raise TransformError("the output array's shape or type differs from the output's")
    if not (out.flags.c_contiguous and out.flags.writeable):
        raise TransformError("the output array is not a writeable C-contiguous array")
    if np.may_share_memory(out, data):
        raise TransformError("the output array overlaps the source")
    return out.reshape(shape)  # a view: C-contiguous


def resample_nearest(
    data: NDArray[Any], geometry: Geometry, mapping: Mapping, *, fill: float | int = 0
) -> NDArray[Any]:
    """Warp ``data`` through ``mapping`` by nearest neighbour, keeping its dtype."""
    src, shape = _as_channels(data, geometry)
    out = np.empty(shape, dtype=src.dtype)
    control = mapping.control if mapping.control is not None else np.zeros((1, 1, 1, 3))
    kernel: Any = _kernel.warp_nearest
    kernel(
        src,
        out,
        mapping.matrix,
        mapping.offset,
        mapping.control is not None,
        control,
        *mapping.tables,
        np.array([fill], dtype=src.dtype),
        _kernel.chunk_count(shape[0]),
    )
    return out.reshape(data.shape)


__all__ = ["ORDERS", "Mapping", "build_mapping", "resample", "resample_nearest"]
