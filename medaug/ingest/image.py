"""The in-memory form of one series: pixels in modality units, geometry, headers.

This is the contract between :mod:`medaug.ingest` (which builds it),
:mod:`medaug.deid` (which cleans its headers), :mod:`medaug.augment` (which
transforms its pixels) and :mod:`medaug.write` (which writes it back).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from medaug.geometry import Geometry
from medaug.ingest import reasons


@dataclass
class SeriesImage:
    """One series, ready to transform and write.

    Parameters
    ----------
    data : ndarray
        ``(k, j, i)`` float32 values in modality units (Rescale Slope and
        Intercept applied: HU for CT) for monochrome images, or
        ``(k, j, i, samples)`` stored values for colour images (no rescale).
        A single 2D image has ``k == 1``.
    geometry : Geometry
        Where the voxels are; ``geometry.shape == data.shape[:3]``.
    headers : tuple of Dataset
        One header per source file, without Pixel Data, in slice order. A
        multi-frame object has a single header covering all its frames.
    modality : str
        The Modality attribute (``"CT"``, ``"MR"``, ``"DX"``, ...).
    multiframe : bool
        True when the series is one multi-frame object.
    rescale : ndarray
        ``(k, 2)`` float64 Rescale Slope and Intercept of each slice
        (``(1, 0)`` where the source has none).
    stored_range : tuple of int
        Smallest and largest stored value that Bits Stored and Pixel
        Representation allow.
    photometric : str
        Photometric Interpretation of the source (kept on output).
    problems : tuple of str
        Reason codes of conditions worth reporting that did not stop the
        series (``irregular-spacing``, ``missing-slices``, ``gantry-tilt``).
    positions : ndarray, optional
        ``(k, 3)`` Image Position (Patient) of each slice, set only when the
        stack is not evenly spaced (missing slices, irregular spacing): the
        geometry then describes the typical step and these keep every slice
        where it really was, so no output moves anatomy.
    redactions : tuple
        ``(slice k, boxes)`` for every slice whose burned-in text de-identification redacted:
        boxes ``(x, y, width, height)`` in pixels, as blanked (empty when nothing was).
    """

    data: NDArray[np.generic]
    geometry: Geometry
    headers: tuple[Dataset, ...]
    modality: str
    multiframe: bool
    rescale: NDArray[np.float64]
    stored_range: tuple[int, int]
    photometric: str
    problems: tuple[str, ...] = field(default=())
    positions: NDArray[np.float64] | None = None
    redactions: tuple[tuple[int, tuple[tuple[int, int, int, int], ...]], ...] = ()

    def slice_position(self, k: int) -> NDArray[np.float64]:
        """Image Position (Patient) of slice ``k``: the real one when the stack is uneven."""
        if self.positions is not None:
            return np.asarray(self.positions[k], dtype=np.float64)
        return self.geometry.slice_position(k)

    @property
    def regular_grid(self) -> bool:
        """True when the voxels lie on the geometry's grid (no missing slices, no uneven steps).

        Spatial transforms assume a regular grid; an uneven stack keeps its geometry exactly.
        """
        return not {reasons.MISSING_SLICES, reasons.IRREGULAR_SPACING} & set(self.problems)

    @property
    def is_colour(self) -> bool:
        """True for images with more than one sample per pixel."""
        return self.data.ndim == 4

    @property
    def modality_range(self) -> tuple[float, float]:
        """Smallest and largest modality value every slice can store."""
        lo, hi = self.stored_range
        ends = np.stack([lo * self.rescale[:, 0] + self.rescale[:, 1], hi * self.rescale[:, 0] + self.rescale[:, 1]])
        return float(ends.min(axis=0).max()), float(ends.max(axis=0).min())
