"""Small rotations about the patient axes given by the image orientation.

The in-plane angle turns the content about the image normal (row cosine ×
column cosine: the superior–inferior axis of an axial CT); the two tilts turn
it about the row direction and the column direction. Angles are in degrees,
right-handed about each axis in patient (LPS) coordinates, and the rotation is
about the volume centre. Composition order is fixed: tilt about the row
direction, then about the column direction, then in plane
(``R = R_normal · R_column · R_row``). 2D images (one slice) rotate in plane
only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medaug.augment.spec import RotationSpec
from medaug.errors import TransformError
from medaug.geometry import Geometry

_DECIMALS = 4


@dataclass(frozen=True)
class RotationParams:
    """Realised rotation, in degrees.

    Parameters
    ----------
    degrees : float
        In-plane angle about the image normal.
    tilt_row_degrees : float
        Angle about the row direction (Image Orientation's first vector).
    tilt_column_degrees : float
        Angle about the column direction (Image Orientation's second vector).
    """

    degrees: float = 0.0
    tilt_row_degrees: float = 0.0
    tilt_column_degrees: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (floats)."""
        return {
            "degrees": self.degrees,
            "tilt_row_degrees": self.tilt_row_degrees,
            "tilt_column_degrees": self.tilt_column_degrees,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], *, path: str = "rotation") -> "RotationParams":
        """Rebuild from :meth:`to_json` output.

        Raises
        ------
        TransformError
            Naming the key path of a missing, unknown or non-numeric entry.
        """
        keys = ("degrees", "tilt_row_degrees", "tilt_column_degrees")
        unknown = set(data) - set(keys)
        if unknown:
            raise TransformError(f"{path} has an unknown key")
        values = []
        for key in keys:
            value = data.get(key, 0.0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise TransformError(f"{path}.{key} must be a finite number")
            values.append(float(value))
        return cls(*values)

    @property
    def is_identity(self) -> bool:
        """True when every angle is zero."""
        return self.degrees == 0.0 and self.tilt_row_degrees == 0.0 and self.tilt_column_degrees == 0.0


def validate_spec(spec: RotationSpec, *, path: str = "transforms.rotation") -> None:
    """Refuse negative or non-finite bounds, naming the key."""
    for key in ("max_degrees", "max_tilt_degrees"):
        value = getattr(spec, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise TransformError(f"{path}.{key} must be a non-negative number")
        if value >= 90:
            raise TransformError(f"{path}.{key} must be below 90 degrees")


def _draw(rng: np.random.Generator, bound: float) -> float:
    value = round(float(rng.uniform(-bound, bound)), _DECIMALS)
    # Rounding must never step over the bound.
    return float(min(max(value, -bound), bound)) + 0.0


def sample(rng: np.random.Generator, spec: RotationSpec, geometry: Geometry) -> RotationParams:
    """Draw angles uniformly within the spec's bounds.

    Always draws three numbers (so the stream layout does not depend on the
    geometry); tilts are zero for a 2D image.

    Examples
    --------
    >>> from medaug.geometry import Geometry
    >>> p = sample(np.random.default_rng(0), RotationSpec(5.0, 2.0), Geometry.axial((4, 8, 8)))
    >>> abs(p.degrees) <= 5.0 and abs(p.tilt_row_degrees) <= 2.0
    True
    """
    validate_spec(spec)
    degrees = _draw(rng, spec.max_degrees)
    tilt_row = _draw(rng, spec.max_tilt_degrees)
    tilt_col = _draw(rng, spec.max_tilt_degrees)
    if geometry.shape[0] == 1:
        tilt_row = tilt_col = 0.0
    return RotationParams(degrees, tilt_row, tilt_col)


def violations(params: RotationParams, spec: RotationSpec | None, *, eps: float = 1e-9) -> list[str]:
    """Every way realised angles leave the spec's bounds (messages name the parameter and the bound).

    ``eps`` is the slack for values read back from a log (shortest round-trip floats).

    Examples
    --------
    >>> violations(RotationParams(6.0), RotationSpec(5.0))
    ['params.rotation.degrees exceeds rotation.max_degrees (5)']
    """
    if params.is_identity:
        return []
    if spec is None:
        return ["params.rotation is applied but the policy allows no rotation"]
    out = []
    if abs(params.degrees) > spec.max_degrees + eps:
        out.append(f"params.rotation.degrees exceeds rotation.max_degrees ({spec.max_degrees:g})")
    for name in ("tilt_row_degrees", "tilt_column_degrees"):
        if abs(getattr(params, name)) > spec.max_tilt_degrees + eps:
            out.append(f"params.rotation.{name} exceeds rotation.max_tilt_degrees ({spec.max_tilt_degrees:g})")
    return out


def check(params: RotationParams, geometry: Geometry, *, path: str = "rotation") -> None:
    """Refuse parameters this geometry cannot take (tilts of a 2D image)."""
    if geometry.shape[0] == 1 and (params.tilt_row_degrees != 0.0 or params.tilt_column_degrees != 0.0):
        raise TransformError(f"{path}: a 2D image rotates in plane only (tilts must be 0)")


def _about(axis: NDArray[np.float64], degrees: float) -> NDArray[np.float64]:
    """Right-handed rotation by ``degrees`` about the unit vector ``axis`` (Rodrigues)."""
    if degrees == 0.0:
        return np.eye(3)
    a = axis / np.linalg.norm(axis)
    theta = math.radians(degrees)
    cross = np.array([[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]])
    return np.asarray(
        math.cos(theta) * np.eye(3) + math.sin(theta) * cross + (1.0 - math.cos(theta)) * np.outer(a, a),
        dtype=np.float64,
    )


def matrix(params: RotationParams, geometry: Geometry) -> NDArray[np.float64]:
    """The 3×3 patient-space rotation of the content (exactly I for zero angles)."""
    check(params, geometry)
    return (
        _about(geometry.normal, params.degrees)
        @ _about(geometry.column_cosine, params.tilt_column_degrees)
        @ _about(geometry.row_cosine, params.tilt_row_degrees)
    )


def apply(
    data: NDArray[np.generic],
    geometry: Geometry,
    params: RotationParams,
    *,
    interpolation: str = "linear",
    fill: float,
) -> NDArray[np.float32]:
    """Rotate ``data`` about the volume centre (one interpolation, same grid).

    Parameters
    ----------
    data : ndarray
        ``(k, j, i)`` or ``(k, j, i, c)`` values.
    geometry : Geometry
        The volume's grid.
    params : RotationParams
        From :func:`sample` or a log.
    interpolation : {'linear', 'cubic'}
        Interpolation order.
    fill : float
        Value outside the source.
    """
    from medaug.augment.resample import build_mapping, resample

    mapping = build_mapping(geometry, rotation=matrix(params, geometry))
    out, _, _ = resample(data, geometry, mapping, order=interpolation, fill=fill)
    return out
