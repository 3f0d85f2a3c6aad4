"""Image geometry in patient coordinates (DICOM LPS, millimetres).

A volume is an array indexed ``(k, j, i)`` = (slice, row, column). Its
:class:`Geometry` maps an index to a patient position::

    position = origin + direction @ (spacing * (k, j, i))

so ``direction[:, 2]`` is the row direction cosine of Image Orientation
(Patient) (along columns ``i``), ``direction[:, 1]`` the column direction
cosine (along rows ``j``) and ``direction[:, 0]`` the unit step from one slice
to the next. The slice axis need not be orthogonal to the image plane: a CT
acquired with gantry tilt is sheared, and keeping the shear is what lets a
written series reproduce every Image Position (Patient) exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Geometry:
    """Where a volume's voxels are in the patient.

    Parameters
    ----------
    shape : tuple of int
        ``(slices, rows, columns)``.
    spacing : tuple of float
        Voxel spacing in mm along ``(k, j, i)``; positive.
    origin : tuple of float
        Patient position (LPS, mm) of the centre of voxel ``(0, 0, 0)``.
    direction : tuple of tuple of float
        3×3 matrix, row-major; column ``a`` is the unit vector of array axis ``a``.

    Examples
    --------
    >>> g = Geometry.axial((2, 3, 4), spacing=(2.5, 0.5, 0.5))
    >>> g.index_to_patient((1, 0, 0)).tolist()
    [0.0, 0.0, 2.5]
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[tuple[float, float, float], ...] = field(
        default=((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0))
    )

    @classmethod
    def axial(
        cls,
        shape: tuple[int, int, int],
        *,
        spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
        origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ) -> "Geometry":
        """An axial stack: rows run posterior, columns run left, slices run superior."""
        return cls.from_arrays(
            shape, spacing, origin, np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
        )

    @classmethod
    def from_arrays(
        cls,
        shape: tuple[int, ...],
        spacing: "NDArray[np.floating] | tuple[float, ...]",
        origin: "NDArray[np.floating] | tuple[float, ...]",
        direction: "NDArray[np.floating]",
    ) -> "Geometry":
        """Build from numpy arrays (converted to plain tuples so the object hashes and pickles)."""
        d = np.asarray(direction, dtype=np.float64).reshape(3, 3)
        sp = tuple(float(s) for s in np.asarray(spacing, dtype=np.float64).reshape(3))
        if min(sp) <= 0:
            raise ValueError("spacing must be positive")
        return cls(
            shape=(int(shape[0]), int(shape[1]), int(shape[2])),
            spacing=(sp[0], sp[1], sp[2]),
            origin=tuple(float(v) for v in np.asarray(origin, dtype=np.float64).reshape(3)),  # type: ignore[arg-type]
            direction=tuple((float(r[0]), float(r[1]), float(r[2])) for r in d),
        )

    @property
    def direction_matrix(self) -> FloatArray:
        """The 3×3 direction matrix as an array."""
        return np.array(self.direction, dtype=np.float64)

    @property
    def affine(self) -> FloatArray:
        """4×4 matrix mapping homogeneous ``(k, j, i, 1)`` to LPS millimetres."""
        a = np.eye(4)
        a[:3, :3] = self.direction_matrix * np.asarray(self.spacing)[None, :]
        a[:3, 3] = self.origin
        return a

    @property
    def row_cosine(self) -> FloatArray:
        """First three values of Image Orientation (Patient)."""
        return self.direction_matrix[:, 2]

    @property
    def column_cosine(self) -> FloatArray:
        """Last three values of Image Orientation (Patient)."""
        return self.direction_matrix[:, 1]

    @property
    def normal(self) -> FloatArray:
        """Unit normal of the image plane (row cosine × column cosine)."""
        n = np.cross(self.row_cosine, self.column_cosine)
        return np.asarray(n / np.linalg.norm(n), dtype=np.float64)

    @property
    def is_sheared(self) -> bool:
        """True when the slice axis is not perpendicular to the image plane (gantry tilt)."""
        return bool(abs(abs(float(self.direction_matrix[:, 0] @ self.normal)) - 1.0) > 1e-6)

    def index_to_patient(self, index: "tuple[float, float, float] | NDArray[np.floating]") -> FloatArray:
        """Patient position (mm) of a ``(k, j, i)`` index (or an ``(..., 3)`` array of them)."""
        idx = np.asarray(index, dtype=np.float64)
        return np.asarray(
            idx * np.asarray(self.spacing) @ self.direction_matrix.T + np.asarray(self.origin),
            dtype=np.float64,
        )

    def slice_position(self, k: int) -> FloatArray:
        """Image Position (Patient) of slice ``k``."""
        return self.index_to_patient((float(k), 0.0, 0.0))

    @property
    def centre(self) -> FloatArray:
        """Patient position of the volume's centre."""
        return self.index_to_patient(tuple((n - 1) / 2.0 for n in self.shape))  # type: ignore[arg-type]
