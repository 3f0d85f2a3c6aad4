"""Warp per-segment label maps by the same mapping as their image."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medaug.augment.resample import resample, resample_nearest
from medaug.augment.variant import VariantParams, mapping_for
from medaug.errors import TransformError
from medaug.geometry import Geometry
from medaug.ingest.labels import LabelVolume


def _is_identity(params: VariantParams) -> bool:
    rot = params.rotation is None or params.rotation.is_identity
    ela = params.elastic is None or params.elastic.is_identity
    return rot and ela


def warp_label_volume(
    volume: LabelVolume, geometry: Geometry, params: VariantParams, *, mode: str = "nearest"
) -> LabelVolume:
    """Warp every segment of ``volume`` by the variant's spatial mapping.

    Parameters
    ----------
    volume : LabelVolume
        ``(nseg, k, j, i)`` maps on ``geometry``.
    geometry : Geometry
        The image grid (source and output).
    params : VariantParams
        The image's variant; :func:`mapping_for` gives the same mapping.
    mode : {'nearest', 'onehot-linear'}
        Binary segments: nearest neighbour, or linear on the two-class one-hot
        (background, segment) then arg-max, each segment on its own so
        overlapping segments stay separate. Fractional segments are always
        linear, clipped to [0, 1].

    Returns
    -------
    LabelVolume
        Same dtype and segments; the input itself for a zero transform.
    """
    if mode not in ("nearest", "onehot-linear"):
        raise TransformError("labels: mode must be 'nearest' or 'onehot-linear'")
    if _is_identity(params):
        return volume
    mapping = mapping_for(geometry, params)
    out = np.empty_like(volume.data)
    for s, seg in enumerate(volume.segments):
        src = volume.data[s]
        if seg.fractional:
            warped, _, _ = resample(src.astype(np.float32), geometry, mapping, fill=0.0, out_dtype=np.float32)
            out[s] = np.clip(warped, 0.0, 1.0)
        elif mode == "nearest":
            out[s] = resample_nearest(src, geometry, mapping, fill=0)
        else:
            onehot = np.stack([1.0 - src, src], axis=-1).astype(np.float32)
            probs, _, _ = resample(onehot, geometry, mapping, fill=0.0, out_dtype=np.float32)
            # outside the field both classes are 0: background wins the tie
            out[s] = (probs[..., 1] > probs[..., 0]).astype(volume.data.dtype)
    data: NDArray[Any] = out
    return replace(volume, data=data)


def voxel_ratios(before: LabelVolume, after: LabelVolume) -> tuple[float, ...]:
    """Per segment: its voxel count in ``after`` over that in ``before`` (fractions summed).

    An empty segment stays empty under any mapping (outside the field is background): its
    ratio is 1.

    Examples
    --------
    >>> from medaug.ingest.labels import Segment
    >>> segs = (Segment(1, "", "", "MANUAL"), Segment(2, "", "", "MANUAL"))
    >>> a = np.zeros((2, 1, 2, 4), dtype=np.uint8); a[0, 0, 0, :] = 1
    >>> b = a.copy(); b[0, 0, 1, :2] = 1
    >>> voxel_ratios(LabelVolume(a, segs), LabelVolume(b, segs))
    (1.5, 1.0)
    """
    ratios = []
    for s in range(len(before.segments)):
        source = float(np.sum(before.data[s], dtype=np.float64))
        warped = float(np.sum(after.data[s], dtype=np.float64))
        ratios.append(warped / source if source > 0 else 1.0)
    return tuple(ratios)


__all__ = ["voxel_ratios", "warp_label_volume"]
