"""Elastic deformation: cubic B-spline free-form deformation in millimetres.

Control points are ``control_spacing_mm`` apart along the volume's slice, row
and column directions (see :mod:`medaug.augment.bspline` for the layout); each
free control point gets a displacement drawn uniformly in
``[-max_displacement_mm, max_displacement_mm]`` along each of those
directions. Points on or outside the volume boundary are locked. Keeping the
displacement below 0.4 × the spacing makes the deformation fold-free
(Rueckert et al., MICCAI 2006); the realised minimum Jacobian determinant is
measured anyway (:func:`medaug.augment.variant.apply_variant`).

The displacement vector ``[d_k, d_j, d_i]`` of a control point is in mm along
``geometry.direction[:, 0]``, ``[:, 1]`` and ``[:, 2]``; in patient (LPS)
coordinates it is ``direction @ [d_k, d_j, d_i]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medaug.augment.bspline import FOLD_FREE_FRACTION, free_mask, grid_shape
from medaug.augment.spec import ElasticSpec
from medaug.errors import TransformError
from medaug.geometry import Geometry

_DECIMALS = 4

Nested = tuple[tuple[tuple[tuple[float, float, float], ...], ...], ...]


@dataclass(frozen=True)
class ElasticParams:
    """Realised control-point displacements.

    Parameters
    ----------
    control_spacing_mm : float
        Spacing of the control grid.
    displacement_mm : tuple
        Nested ``[mk][mj][mi][3]`` displacements in mm along ``(k, j, i)``.
    """

    control_spacing_mm: float
    displacement_mm: Nested

    @classmethod
    def from_array(cls, control_spacing_mm: float, displacement_mm: NDArray[np.floating]) -> "ElasticParams":
        """Build from an ``(mk, mj, mi, 3)`` array."""
        arr = np.asarray(displacement_mm, dtype=np.float64)
        if arr.ndim != 4 or arr.shape[3] != 3:
            raise TransformError("elastic.displacement_mm must have shape (mk, mj, mi, 3)")
        nested = tuple(
            tuple(tuple(tuple(float(v) + 0.0 for v in vec) for vec in row) for row in plane) for plane in arr
        )
        return cls(float(control_spacing_mm), nested)  # type: ignore[arg-type]

    def array(self) -> NDArray[np.float64]:
        """Displacements as an ``(mk, mj, mi, 3)`` float64 array."""
        return np.asarray(self.displacement_mm, dtype=np.float64).reshape(self.grid_shape + (3,))

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        """Control points along ``(k, j, i)``."""
        d = self.displacement_mm
        return len(d), len(d[0]) if d else 0, len(d[0][0]) if d and d[0] else 0

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data: spacing, grid shape and nested displacement lists."""
        return {
            "control_spacing_mm": self.control_spacing_mm,
            "grid_shape": list(self.grid_shape),
            "displacement_mm": [[[list(vec) for vec in row] for row in plane] for plane in self.displacement_mm],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], *, path: str = "elastic") -> "ElasticParams":
        """Rebuild from :meth:`to_json` output.

        Raises
        ------
        TransformError
            Naming the key path of a missing or malformed entry.
        """
        if set(data) - {"control_spacing_mm", "grid_shape", "displacement_mm"}:
            raise TransformError(f"{path} has an unknown key")
        spacing = data.get("control_spacing_mm")
        if isinstance(spacing, bool) or not isinstance(spacing, (int, float)) or not spacing > 0:
            raise TransformError(f"{path}.control_spacing_mm must be a positive number")
        try:
            arr = np.asarray(data["displacement_mm"], dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            raise TransformError(f"{path}.displacement_mm must be a nested list of numbers") from None
        if arr.ndim != 4 or arr.shape[3] != 3 or not np.all(np.isfinite(arr)):
            raise TransformError(f"{path}.displacement_mm must have shape (mk, mj, mi, 3) of finite numbers")
        if "grid_shape" in data and list(data["grid_shape"]) != list(arr.shape[:3]):
            raise TransformError(f"{path}.grid_shape does not match {path}.displacement_mm")
        return cls.from_array(float(spacing), arr)

    @property
    def is_identity(self) -> bool:
        """True when no control point moves."""
        return not np.any(self.array())


def validate_spec(spec: ElasticSpec, *, path: str = "transforms.elastic") -> None:
    """Refuse a spec that could fold tissue or is malformed, naming the key and the bound.

    Raises
    ------
    TransformError
        ``max_displacement_mm`` not below ``0.4 × control_spacing_mm``, a
        non-positive spacing or a negative displacement.

    Examples
    --------
    >>> validate_spec(ElasticSpec(control_spacing_mm=40, max_displacement_mm=16))
    Traceback (most recent call last):
    ...
    medaug.errors.TransformError: transforms.elastic.max_displacement_mm = 16 must be below 0.4 × transforms.elastic.control_spacing_mm = 16 (fold-free bound)
    """
    s, d = spec.control_spacing_mm, spec.max_displacement_mm
    for key, value in (("control_spacing_mm", s), ("max_displacement_mm", d)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise TransformError(f"{path}.{key} must be a finite number")
    if s <= 0:
        raise TransformError(f"{path}.control_spacing_mm must be positive")
    if d < 0:
        raise TransformError(f"{path}.max_displacement_mm must not be negative")
    bound = FOLD_FREE_FRACTION * s
    if d >= bound:
        raise TransformError(
            f"{path}.max_displacement_mm = {d:g} must be below {FOLD_FREE_FRACTION:g} × "
            f"{path}.control_spacing_mm = {bound:g} (fold-free bound)"
        )


def violations(params: ElasticParams, spec: ElasticSpec | None, *, eps: float = 1e-9) -> list[str]:
    """Every way realised displacements leave the spec's bounds (messages name the parameter and the bound).

    Examples
    --------
    >>> p = ElasticParams.from_array(40.0, np.full((1, 1, 1, 3), 5.0))
    >>> violations(p, ElasticSpec(40.0, 4.0))
    ['params.elastic.displacement_mm exceeds elastic.max_displacement_mm (4)']
    """
    if params.is_identity:
        return []
    if spec is None:
        return ["params.elastic is applied but the policy allows no elastic deformation"]
    out = []
    if abs(params.control_spacing_mm - spec.control_spacing_mm) > eps:
        out.append("params.elastic.control_spacing_mm is not the policy's control spacing")
    arr = params.array()
    if arr.size and float(np.abs(arr).max()) > spec.max_displacement_mm + eps:
        out.append(f"params.elastic.displacement_mm exceeds elastic.max_displacement_mm ({spec.max_displacement_mm:g})")
    return out


def check(params: ElasticParams, geometry: Geometry, *, path: str = "elastic") -> None:
    """Refuse displacements that do not fit the geometry or could fold.

    Raises
    ------
    TransformError
        Wrong grid shape for this geometry, a locked control point that moves,
        or a displacement not below 0.4 × the control spacing.
    """
    expected = grid_shape(geometry, params.control_spacing_mm)
    if params.grid_shape != expected:
        raise TransformError(
            f"{path}.displacement_mm has grid shape {list(params.grid_shape)}, "
            f"the geometry needs {list(expected)}"
        )
    arr = params.array()
    if np.any(arr[~free_mask(geometry, params.control_spacing_mm)] != 0.0):
        raise TransformError(f"{path}.displacement_mm moves a locked control point")
    if arr.size and float(np.abs(arr).max()) >= FOLD_FREE_FRACTION * params.control_spacing_mm:
        raise TransformError(
            f"{path}.displacement_mm must stay below {FOLD_FREE_FRACTION:g} × {path}.control_spacing_mm"
        )


def sample(rng: np.random.Generator, spec: ElasticSpec, geometry: Geometry) -> ElasticParams:
    """Draw control-point displacements within the spec's bound.

    One uniform number is drawn per component of every control point (locked
    ones included, then zeroed), in C order, so the draw depends only on the
    grid shape.

    Examples
    --------
    >>> from medaug.geometry import Geometry
    >>> g = Geometry.axial((20, 64, 64), spacing=(2.0, 1.0, 1.0))
    >>> p = sample(np.random.default_rng(0), ElasticSpec(20.0, 5.0), g)
    >>> p.grid_shape, float(np.abs(p.array()).max()) <= 5.0
    ((5, 7, 7), True)
    """
    validate_spec(spec)
    bound = float(spec.max_displacement_mm)
    mask = free_mask(geometry, spec.control_spacing_mm)
    draw = rng.uniform(-bound, bound, size=mask.shape)
    arr = np.clip(np.round(draw, _DECIMALS), -bound, bound)
    arr[~mask] = 0.0
    return ElasticParams.from_array(spec.control_spacing_mm, arr)


def apply(
    data: NDArray[np.generic],
    geometry: Geometry,
    params: ElasticParams,
    *,
    interpolation: str = "linear",
    fill: float,
) -> tuple[NDArray[np.float32], float, float]:
    """Deform ``data`` (one interpolation, same grid).

    Returns
    -------
    out : ndarray of float32
    min_jacobian, max_jacobian : float
        Extremes of the Jacobian determinant over all output voxels.
    """
    from medaug.augment.resample import build_mapping, resample

    check(params, geometry)
    mapping = build_mapping(
        geometry, displacement_mm=params.array(), control_spacing_mm=params.control_spacing_mm
    )
    return resample(data, geometry, mapping, order=interpolation, fill=fill)
