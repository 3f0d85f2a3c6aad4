"""A series' label objects as integer label maps on its own grid, for NIfTI export.

A label object of a dataset (a SEG or RTSTRUCT, ``label-<n>.dcm`` beside a
series' images) is rasterised on the series' grid by
:func:`medaug.ingest.labels.label_maps`, the reader ``medaug run`` carried it
with: a SEG's frames are placed by their positions, an RTSTRUCT's contours are
filled on the slices they lie on.

Values: every label object *number* ``n`` of an export has one
:class:`LabelSet`, the segment numbers its objects define across the dataset,
sorted; segment number ``s`` takes the value of its place in that list (1, 2,
…), so values are consecutive, 0 is background, and a value means the same
segment in every case. Names are rebuilt from the segment number alone
(:func:`medaug.write.labels.segment_label`), never read from the file.

Overlap: an integer map holds one segment per voxel. When segments of one
object overlap, the map gets *layers* — segments are placed, in value order,
into the first layer where none of their voxels is taken — so every voxel of
every segment is kept exactly once, at its segment's value. A map with one
layer is 3-D; with several it is 4-D, the layers along the fourth axis.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from medaug.errors import InputError
from medaug.geometry import Geometry
from medaug.ingest.labels import label_maps
from medaug.write.labels import segment_label

#: Reason code of a label object with fractional segments (medaug writes binary ones only).
FRACTIONAL = "fractional-label"


@dataclass(frozen=True)
class LabelSet:
    """The segment numbers of one label object number across an export, and their values.

    Examples
    --------
    >>> s = label_set([3, 1, 7, 3])
    >>> s.value(7), s.names()
    (3, {'Segment 1': 1, 'Segment 3': 2, 'Segment 7': 3})
    """

    numbers: tuple[int, ...]

    def value(self, number: int) -> int:
        """The map value of segment ``number`` (1 for the lowest number)."""
        return self.numbers.index(number) + 1

    def names(self, numbers: Iterable[int] | None = None) -> dict[str, int]:
        """De-identified segment label -> value, of ``numbers`` (default: all)."""
        chosen = self.numbers if numbers is None else sorted(set(numbers))
        return {segment_label(n): self.value(n) for n in chosen}


def label_set(numbers: Iterable[int]) -> LabelSet:
    """The :class:`LabelSet` of the segment numbers ``numbers`` (repeats allowed)."""
    return LabelSet(tuple(sorted(set(int(n) for n in numbers))))


@dataclass(frozen=True)
class LabelMap:
    """One label object of one series as integer layers.

    Attributes
    ----------
    layers : ndarray
        ``(L, k, j, i)``, unsigned integers, 0 background; ``L >= 1``.
    numbers : tuple of int
        The object's segment numbers.
    """

    layers: NDArray[np.unsignedinteger]
    numbers: tuple[int, ...]


def pack_layers(maps: NDArray[np.generic], values: Sequence[int]) -> NDArray[np.unsignedinteger]:
    """Binary per-segment maps ``(nseg, k, j, i)`` as integer layers ``(L, k, j, i)``.

    Segments go, in ascending ``values`` order, into the first layer where none
    of their voxels is taken; a segment with no voxel is placed in layer 1.

    Examples
    --------
    >>> m = np.array([[[[1, 1, 0]]], [[[0, 1, 1]]], [[[0, 0, 1]]]], dtype=np.uint8)
    >>> pack_layers(m, [1, 2, 3])[:, 0, 0].tolist()
    [[1, 1, 3], [0, 2, 2]]
    """
    dtype = np.uint8 if max(values, default=0) <= np.iinfo(np.uint8).max else np.uint16
    shape = maps.shape[1:]
    layers: list[NDArray[np.unsignedinteger]] = [np.zeros(shape, dtype=dtype)]
    for s in sorted(range(len(values)), key=lambda n: values[n]):
        mask = np.asarray(maps[s]) != 0
        for layer in layers:
            if not layer[mask].any():
                break
        else:
            layer = np.zeros(shape, dtype=dtype)
            layers.append(layer)
        layer[mask] = values[s]
    return np.stack(layers)


def read_label_map(path: Path, geometry: Geometry, instance_uids: tuple[str, ...], labels: LabelSet) -> LabelMap | str:
    """Rasterise the label object at ``path`` on ``geometry`` and pack it into layers.

    Parameters
    ----------
    path : Path
        A SEG or RTSTRUCT of the dataset.
    geometry : Geometry
        The grid of the series it labels.
    instance_uids : tuple of str
        That series' SOP Instance UIDs in slice order (the object must reference them).
    labels : LabelSet
        Values of the object's number across the export (holds every segment number of it).

    Returns
    -------
    LabelMap or str
        The map, or the reason code it cannot be exported: the reader's
        (``label-not-on-grid``, ``label-unreferenced``) or :data:`FRACTIONAL`.
    """
    try:
        volume = label_maps(path, geometry, instance_uids=instance_uids)
    except InputError as exc:
        return exc.reason
    if any(volume.fractional):
        return FRACTIONAL
    numbers = tuple(s.number for s in volume.segments)
    return LabelMap(pack_layers(volume.data, [labels.value(n) for n in numbers]), numbers)


__all__ = ["FRACTIONAL", "LabelMap", "LabelSet", "label_set", "pack_layers", "read_label_map"]
