"""One series as one NIfTI-1 volume, and its label maps on the same grid: voxel order and affine from its Geometry.

medaug's :class:`~medaug.geometry.Geometry` indexes voxels ``(k, j, i)`` in DICOM
patient space (LPS, mm). A NIfTI array is indexed ``(i, j, k)`` in RAS, so the
array is transposed and the first two world axes are negated. qform and sform
hold the same affine with code 1 (scanner). Text fields of the header are left
empty: nothing of the source can reach them.

nibabel is an optional dependency (extra ``nifti``), imported only here.
"""

from __future__ import annotations

import gzip
from types import ModuleType

import numpy as np
from numpy.typing import NDArray

from medaug.errors import UsageError
from medaug.geometry import Geometry
from medaug.ingest.image import SeriesImage

#: Reason codes of series that NIfTI cannot hold without resampling.
GANTRY_TILT = "gantry-tilt"
UNEVEN_SPACING = "uneven-spacing"
COLOUR = "colour"
SKIP_REASONS = (GANTRY_TILT, UNEVEN_SPACING, COLOUR)

#: Problems of a series whose slices are not evenly spaced.
_UNEVEN_PROBLEMS = frozenset({"missing-slices", "irregular-spacing"})

#: DICOM LPS to NIfTI RAS: the first two world axes change sign.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

_INT16 = np.iinfo(np.int16)


def load_nibabel() -> ModuleType:
    """The nibabel module.

    Raises
    ------
    UsageError
        When nibabel is not installed (it is the optional extra ``nifti``).
    """
    try:
        import nibabel
    except ImportError:
        raise UsageError("NIfTI export needs nibabel: pip install 'medaug[nifti]'") from None
    return nibabel


def skip_reason(image: SeriesImage) -> str | None:
    """Why ``image`` cannot be written as NIfTI without resampling, or None when it can.

    A sheared grid (gantry tilt) and an unevenly spaced stack have no affine;
    colour images are not exported (training inputs here are monochrome).
    """
    if image.data.ndim != 3:
        return COLOUR
    if image.geometry.is_sheared or GANTRY_TILT in image.problems:
        return GANTRY_TILT
    if image.positions is not None or _UNEVEN_PROBLEMS.intersection(image.problems):
        return UNEVEN_SPACING
    return None


def ras_affine(geometry: Geometry) -> NDArray[np.float64]:
    """The NIfTI (RAS) affine of the ``(i, j, k)`` array of ``geometry``.

    Examples
    --------
    >>> g = Geometry.axial((2, 3, 4), spacing=(2.5, 0.5, 0.75), origin=(10.0, 20.0, 30.0))
    >>> ras_affine(g).tolist()
    [[-0.75, 0.0, 0.0, -10.0], [0.0, -0.5, 0.0, -20.0], [0.0, 0.0, 2.5, 30.0], [0.0, 0.0, 0.0, 1.0]]
    """
    lps = geometry.affine  # columns follow (k, j, i)
    reordered = lps[:, [2, 1, 0, 3]]
    return np.asarray(LPS_TO_RAS @ reordered, dtype=np.float64)


def voxel_array(image: SeriesImage) -> NDArray[np.generic]:
    """The ``(i, j, k)`` voxel array: int16 for CT when every value is a whole HU in range, else float32."""
    data = np.asarray(image.data)
    if image.modality == "CT" and data.size:
        whole = np.array_equal(data, np.round(data))
        if whole and float(data.min()) >= _INT16.min and float(data.max()) <= _INT16.max:
            return np.ascontiguousarray(data.astype(np.int16).transpose(2, 1, 0))
    return np.ascontiguousarray(data.astype(np.float32).transpose(2, 1, 0))


def nifti_bytes(image: SeriesImage) -> bytes:
    """``image`` as a gzip-compressed NIfTI-1 file (deterministic: no time stamp, no file name).

    Parameters
    ----------
    image : SeriesImage
        A monochrome series :func:`skip_reason` accepts.

    Returns
    -------
    bytes
        The content of a ``.nii.gz`` file.

    Raises
    ------
    UsageError
        When nibabel is missing.
    ValueError
        When the series cannot be written (see :func:`skip_reason`).
    """
    reason = skip_reason(image)
    if reason is not None:
        raise ValueError(f"the series cannot be written as NIfTI: {reason}")
    return _encode(voxel_array(image), image.geometry)


def label_nifti_bytes(layers: NDArray[np.unsignedinteger], geometry: Geometry) -> bytes:
    """Integer label layers ``(L, k, j, i)`` on ``geometry`` as a gzip-compressed NIfTI-1 label map.

    The affine is :func:`ras_affine` of ``geometry``, so a map written on an
    image's grid has exactly that image's affine. One layer gives an
    ``(i, j, k)`` volume, several an ``(i, j, k, L)`` one; the intent code is
    ``NIFTI_INTENT_LABEL`` (its name field stays empty).

    Raises
    ------
    UsageError
        When nibabel is missing.
    """
    data = np.asarray(layers).transpose(3, 2, 1, 0)
    if data.shape[3] == 1:
        data = data[..., 0]
    return _encode(np.ascontiguousarray(data), geometry, label=True)


def _encode(data: NDArray[np.generic], geometry: Geometry, *, label: bool = False) -> bytes:
    """``data`` (voxel order ``i, j, k[, L]``) with the affine of ``geometry`` as ``.nii.gz`` bytes (no time stamp)."""
    nib = load_nibabel()
    affine = ras_affine(geometry)
    img = nib.Nifti1Image(data, affine)
    header = img.header
    header.set_qform(affine, code=1)
    header.set_sform(affine, code=1)
    header.set_xyzt_units(xyz="mm")
    header.set_slope_inter(1.0, 0.0)
    if label:
        header.set_intent("label", (), name="")
    for name in ("descrip", "aux_file", "intent_name", "db_name"):
        header[name] = b""
    raw: bytes = img.to_bytes()
    return gzip.compress(raw, compresslevel=6, mtime=0)


__all__ = [
    "COLOUR",
    "GANTRY_TILT",
    "LPS_TO_RAS",
    "SKIP_REASONS",
    "UNEVEN_SPACING",
    "label_nifti_bytes",
    "load_nibabel",
    "nifti_bytes",
    "ras_affine",
    "skip_reason",
    "voxel_array",
]
