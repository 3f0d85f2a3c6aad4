"""What an image looks like on a screen: display windows and 8-bit grey levels.

One owner for turning modality values into what a viewer shows, used by the
policy preview, the audit report's thumbnails and the burned-in text check.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

#: Display window of CT, in HU: air to dense soft tissue / thin bone.
CT_WINDOW = (-1000.0, 400.0)


def display_window(data: NDArray[np.generic], *, modality: str) -> tuple[float, float]:
    """The display window: :data:`CT_WINDOW` for CT, else the 1st–99th percentile."""
    if modality.upper() == "CT":
        return CT_WINDOW
    values = np.asarray(data, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (0.0, 1.0)
    lo, hi = (float(v) for v in np.percentile(values, [1.0, 99.0]))
    if not hi > lo:
        hi = lo + 1.0
    return (lo, hi)


def to_uint8(values: NDArray[np.generic], window: tuple[float, float]) -> NDArray[np.uint8]:
    """Map ``window`` linearly onto 0–255, clipping outside it (a reversed window inverts)."""
    lo, hi = window
    span = hi - lo if hi != lo else 1e-12
    source = np.asarray(values)
    # One float64 buffer worked in place: every frame of a run and of a scan goes through here.
    scaled = np.subtract(source, lo, dtype=np.float64)
    scaled *= 255.0 / span
    np.rint(scaled, out=scaled)
    np.clip(scaled, 0, 255, out=scaled)  # infinities clip to the ends
    if source.dtype.kind not in "biu":
        scaled[np.isnan(scaled)] = 0.0  # what cannot be shown is black
    return scaled.astype(np.uint8)


#: Luminance weights of R, G, B (ITU-R BT.601, the weights of YBR_FULL).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def full_range_window(data: NDArray[np.generic]) -> tuple[float, float]:
    """The window from the smallest to the largest finite value.

    Burned-in text is usually drawn at the largest stored value, which a
    clinical window (:data:`CT_WINDOW`) saturates together with bone; the full
    range keeps it apart.
    """
    values = np.asarray(data)
    if values.size == 0:
        return (0.0, 1.0)
    lo, hi = float(values.min()), float(values.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):  # a NaN or an infinity somewhere: only the finite count
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            return (0.0, 1.0)
        lo, hi = float(finite.min()), float(finite.max())
    return (lo, hi if hi > lo else lo + 1.0)


def luminance(rgb: NDArray[np.generic]) -> NDArray[np.float64]:
    """Grey level of an RGB image ``(..., 3)`` with :data:`LUMA_WEIGHTS`."""
    values = np.asarray(rgb, dtype=np.float64)
    if values.shape[-1] != 3:
        raise ValueError("luminance needs a last axis of 3 samples")
    return np.asarray(values @ np.asarray(LUMA_WEIGHTS), dtype=np.float64)
