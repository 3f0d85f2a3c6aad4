"""Modality values to stored pixel values: rescale inverted, rounded, clipped."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from medaug.errors import WriteError


def storage_dtype(bits_allocated: int, pixel_representation: int) -> np.dtype:
    """Little-endian numpy type of native Pixel Data with these Bits Allocated and sign.

    Examples
    --------
    >>> storage_dtype(16, 1).str
    '<i2'
    """
    if bits_allocated == 1:
        return np.dtype("u1")  # one byte per value in memory; packed eight to a byte on output
    if bits_allocated not in (8, 16, 32):
        raise WriteError(f"(0028,0100) Bits Allocated {bits_allocated} is not supported")
    kind = "i" if pixel_representation else "u"
    return np.dtype(f"<{kind}{bits_allocated // 8}")


def to_stored(
    values: NDArray[np.generic],
    *,
    slope: float = 1.0,
    intercept: float = 0.0,
    stored_range: tuple[int, int],
    dtype: np.dtype,
) -> tuple[NDArray[np.generic], int]:
    """Stored values ``round((value - intercept) / slope)`` clipped into ``stored_range``.

    Works on whatever is passed (one slice at a time keeps the float64
    temporary small).

    Parameters
    ----------
    values : ndarray
        Modality values (or stored values with slope 1, intercept 0 for colour).
    slope, intercept : float
        Rescale Slope and Intercept that will be written with these values.
    stored_range : tuple of int
        Smallest and largest value Bits Stored and Pixel Representation allow.
    dtype : numpy dtype
        Type of the returned array (see :func:`storage_dtype`).

    Returns
    -------
    stored : ndarray
        Same shape as ``values``, of type ``dtype``.
    clipped : int
        How many values lay outside ``stored_range`` before clipping.

    Raises
    ------
    WriteError
        If a value is NaN or the slope is zero.

    Examples
    --------
    >>> s, n = to_stored(np.array([-1024.0, 0.4, 5000.0]), intercept=-1024.0,
    ...                  stored_range=(0, 4095), dtype=np.dtype("<u2"))
    >>> s.tolist(), n
    ([0, 1024, 4095], 1)
    """
    if slope == 0 or not np.isfinite(slope) or not np.isfinite(intercept):
        raise WriteError("(0028,1053) Rescale Slope must be finite and non-zero")
    lo, hi = stored_range
    info = np.iinfo(dtype)
    if lo < info.min or hi > info.max or lo > hi:
        raise WriteError("stored range does not fit Bits Allocated and Pixel Representation")
    wide: NDArray[np.int64] | NDArray[np.float64]
    if np.issubdtype(values.dtype, np.integer) and slope == 1 and intercept == 0:
        wide = values.astype(np.int64)
    else:
        real = np.asarray(values, dtype=np.float64)
        if intercept != 0:
            real = real - intercept
        if slope != 1:
            real = real / slope
        if np.isnan(real).any():
            raise WriteError("pixel values contain NaN")
        wide = np.rint(real)
    clipped = int(np.count_nonzero(wide < lo) + np.count_nonzero(wide > hi))
    return np.clip(wide, lo, hi).astype(dtype), clipped
