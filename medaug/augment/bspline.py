"""The cubic B-spline control grid of the elastic transform, in millimetres.

The grid lives in the volume's own frame: along each array axis ``a`` (slice,
row, column) positions are measured in millimetres from voxel 0 along the
patient direction of that axis (``geometry.direction[:, a]``). Control points
are ``spacing_mm`` apart on every axis, so the fold-free bound of Rueckert et
al. (MICCAI 2006) applies directly: a displacement below ``0.4 × spacing_mm``
along each axis keeps the Jacobian determinant positive.

Along an axis of physical length ``L = (n - 1) × voxel spacing`` the grid has
``ceil(L / spacing_mm)`` intervals, centred on the volume, plus one control
point outside each end (a cubic B-spline needs four per interval):
``n_intervals + 3`` points. The two outer points at each end lie on or outside
the volume boundary and are *locked* (zero displacement). An axis with a single
voxel (a 2D image's slice axis) has one control point and no displacement
along it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from medaug.geometry import Geometry

#: Displacements must stay strictly below this fraction of the control spacing.
FOLD_FREE_FRACTION = 0.4

#: How many control points at each end of an axis are locked.
LOCKED_LAYERS = 2


@dataclass(frozen=True)
class AxisGrid:
    """Control points along one array axis.

    Parameters
    ----------
    count : int
        Number of control points (1 for a singleton axis).
    offset_mm : float
        Distance from the first control point inside the volume box to voxel 0
        (the grid is centred, so the same margin is left at the far end).
    """

    count: int
    offset_mm: float

    @property
    def singleton(self) -> bool:
        """True when the axis has a single voxel (no deformation along it)."""
        return self.count == 1

    def free(self) -> NDArray[np.bool_]:
        """Which control points along this axis may move."""
        mask = np.ones(self.count, dtype=bool)
        if not self.singleton:
            mask[:LOCKED_LAYERS] = False
            mask[-LOCKED_LAYERS:] = False
        return mask


def axis_grid(n_voxels: int, voxel_mm: float, spacing_mm: float) -> AxisGrid:
    """Lay out control points along one axis of ``n_voxels`` voxels."""
    if n_voxels <= 1:
        return AxisGrid(count=1, offset_mm=0.0)
    length = (n_voxels - 1) * voxel_mm
    # The tiny tolerance keeps an exact multiple (length == 4 × spacing) at 4
    # intervals instead of 5 through rounding of the division.
    intervals = max(1, math.ceil(length / spacing_mm - 1e-9))
    return AxisGrid(count=intervals + 3, offset_mm=(intervals * spacing_mm - length) / 2.0)


def grid_for(geometry: Geometry, spacing_mm: float) -> tuple[AxisGrid, AxisGrid, AxisGrid]:
    """The control grid along ``(k, j, i)`` for a volume."""
    k, j, i = (axis_grid(n, s, spacing_mm) for n, s in zip(geometry.shape, geometry.spacing))
    return k, j, i


def grid_shape(geometry: Geometry, spacing_mm: float) -> tuple[int, int, int]:
    """Number of control points along ``(k, j, i)``."""
    k, j, i = grid_for(geometry, spacing_mm)
    return k.count, j.count, i.count


#: Fewest voxels between control points along any axis the volume extends along. A finer
#: grid describes displacements the image cannot show (below two voxels a wiggle has no
#: sample to move), and its size grows with the cube of the ratio: a grid of 0.001 mm
#: over a CT would be larger than any memory.
MIN_CONTROL_SPACING_VOXELS = 2.0


def resolves(geometry: Geometry, spacing_mm: float) -> bool:
    """Whether a control grid ``spacing_mm`` apart is coarse enough for this volume's voxels.

    Examples
    --------
    >>> g = Geometry.axial((20, 64, 64), spacing=(5.0, 0.7, 0.7))
    >>> resolves(g, 10.0), resolves(g, 8.0)
    (True, False)
    >>> resolves(Geometry.axial((1, 64, 64), spacing=(50.0, 1.0, 1.0)), 8.0)  # one slice: no z grid
    True
    """
    return all(
        n == 1 or spacing_mm >= MIN_CONTROL_SPACING_VOXELS * s for n, s in zip(geometry.shape, geometry.spacing)
    )


def free_mask(geometry: Geometry, spacing_mm: float) -> NDArray[np.bool_]:
    """``(mk, mj, mi, 3)`` mask of the displacement components that may be non-zero.

    Control points on or outside the volume boundary are locked, and no
    component points along a singleton axis (2D images deform in plane).
    """
    axes = grid_for(geometry, spacing_mm)
    free = axes[0].free()[:, None, None] & axes[1].free()[None, :, None] & axes[2].free()[None, None, :]
    mask = np.repeat(free[..., None], 3, axis=3)
    for a, ax in enumerate(axes):
        if ax.singleton:
            mask[..., a] = False
    return mask


def basis_tables(
    n_voxels: int, voxel_mm: float, spacing_mm: float, grid: AxisGrid
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """Per-voxel B-spline taps along one axis.

    Returns
    -------
    first : ndarray of int64, shape (n_voxels,)
        Index of the first of the four control points that weigh on each voxel.
    weights : ndarray of float64, shape (n_voxels, 4)
        Cubic B-spline weights of those four control points.
    dweights : ndarray of float64, shape (n_voxels, 4)
        Derivatives of the weights with respect to the voxel index.
    """
    first = np.zeros(n_voxels, dtype=np.int64)
    weights = np.zeros((n_voxels, 4), dtype=np.float64)
    dweights = np.zeros((n_voxels, 4), dtype=np.float64)
    if grid.singleton:
        weights[:, 0] = 1.0
        return first, weights, dweights
    intervals = grid.count - 3
    g = (np.arange(n_voxels, dtype=np.float64) * voxel_mm + grid.offset_mm) / spacing_mm
    q = np.minimum(np.floor(g).astype(np.int64), intervals - 1)
    t = g - q
    first[:] = q
    weights[:, 0] = (1.0 - t) ** 3 / 6.0
    weights[:, 1] = (3.0 * t**3 - 6.0 * t**2 + 4.0) / 6.0
    weights[:, 2] = (-3.0 * t**3 + 3.0 * t**2 + 3.0 * t + 1.0) / 6.0
    weights[:, 3] = t**3 / 6.0
    # d/d(index) = d/dt × voxel_mm / spacing_mm
    scale = voxel_mm / spacing_mm
    dweights[:, 0] = -0.5 * (1.0 - t) ** 2 * scale
    dweights[:, 1] = (1.5 * t**2 - 2.0 * t) * scale
    dweights[:, 2] = (-1.5 * t**2 + t + 0.5) * scale
    dweights[:, 3] = 0.5 * t**2 * scale
    return first, weights, dweights
