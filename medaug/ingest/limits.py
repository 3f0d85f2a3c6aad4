"""Size guards applied to a header before any pixel buffer is allocated.

A header may claim absurd dimensions (a crafted or damaged file: 60000 x 60000
with a payload of a few bytes). Such objects are refused with reason
``too-large`` on the strength of the header alone.
"""

from __future__ import annotations

#: Largest Rows or Columns accepted (the largest digital radiography detectors are ~ 4300).
MAX_DIMENSION = 16384
#: Largest Number of Frames accepted in one object.
MAX_FRAMES = 65536
#: Largest decoded pixel buffer of one object: Rows x Columns x Frames x Samples x BitsAllocated / 8.
MAX_OBJECT_BYTES = 2**31
#: Largest float32 volume assembled for one series (4 GiB).
MAX_SERIES_BYTES = 2**32


def object_bytes(rows: int, columns: int, frames: int, samples: int, bits_allocated: int) -> int:
    """Bytes the decoded pixels of one object occupy (bits rounded up to whole bytes per object)."""
    return (rows * columns * frames * samples * bits_allocated + 7) // 8


def size_problem(rows: int, columns: int, frames: int, samples: int, bits_allocated: int) -> str | None:
    """Why an object's claimed size is refused, or ``None`` when it is acceptable.

    Examples
    --------
    >>> size_problem(512, 512, 1, 1, 16) is None
    True
    >>> size_problem(60000, 60000, 1, 1, 16)
    'Rows (0028,0010) or Columns (0028,0011) over 16384'
    """
    if rows > MAX_DIMENSION or columns > MAX_DIMENSION:
        return f"Rows (0028,0010) or Columns (0028,0011) over {MAX_DIMENSION}"
    if frames > MAX_FRAMES:
        return f"Number of Frames (0028,0008) over {MAX_FRAMES}"
    if samples not in (1, 3, 4):
        return "Samples per Pixel (0028,0002) not 1, 3 or 4"
    if bits_allocated not in (1, 8, 16, 32, 64):
        return "Bits Allocated (0028,0100) not 1, 8, 16, 32 or 64"
    n = object_bytes(rows, columns, frames, samples, bits_allocated)
    if n > MAX_OBJECT_BYTES:
        return f"decoded pixels would take {n} bytes, over {MAX_OBJECT_BYTES}"
    return None


#: Bytes of a header allowed besides the pixels (attributes, sequences, overlays).
HEADER_ALLOWANCE = 64 * 2**20
#: Largest inflated dataset of a Deflated Explicit VR Little Endian file.
MAX_INFLATED_BYTES = MAX_OBJECT_BYTES + HEADER_ALLOWANCE
#: Largest factor by which RLE Lossless can expand its data (a 2-byte run gives 128 bytes).
RLE_MAX_EXPANSION = 64
#: Plausible pixel spacing and slice thickness, in mm.
MIN_SPACING_MM = 1e-3
MAX_SPACING_MM = 1e3
#: Largest absolute Rescale Slope and Rescale Intercept accepted.
MAX_RESCALE_SLOPE = 1e6
MAX_RESCALE_INTERCEPT = 1e7
#: Default budget for one series' working memory (see :func:`series_working_bytes`).
MAX_SERIES_WORKING_BYTES = 3 * 2**32
#: Slices held at once besides the volume and its output (decoded frames, a float64 slice).
WORKING_SLICES = 4


def series_working_bytes(
    shape: tuple[int, int, int],
    samples: int = 1,
    *,
    spacing_mm: tuple[float, float, float] | None = None,
    control_spacing_mm: float | None = None,
) -> int:
    """Estimated bytes one series needs while it is read and augmented.

    The float32 volume, an output of the same size, :data:`WORKING_SLICES`
    float64 slices and, given a control spacing, the elastic control grid
    (three float64 components per control point, one point every
    ``control_spacing_mm`` plus a border of three on each side of each axis).

    Parameters
    ----------
    shape : tuple of int
        ``(slices, rows, columns)``.
    samples : int
        Samples per pixel.
    spacing_mm : tuple of float, optional
        Voxel spacing along ``(slices, rows, columns)``; 1 mm when omitted.
    control_spacing_mm : float, optional
        Elastic control-point spacing; no grid when omitted.

    Examples
    --------
    >>> series_working_bytes((10, 4, 5))
    2240
    >>> series_working_bytes((1, 100, 100), control_spacing_mm=10.0)
    448552
    """
    k, rows, cols = shape
    voxels = k * rows * cols * samples
    total = 2 * 4 * voxels + WORKING_SLICES * 8 * rows * cols * samples
    if control_spacing_mm is not None and control_spacing_mm > 0:
        spacing = spacing_mm or (1.0, 1.0, 1.0)
        points = 1
        for n, s in zip(shape, spacing):
            points *= int(n * s / control_spacing_mm) + 1 + 6
        total += 3 * 8 * points
    return total


def payload_problem(transfer_syntax: str, claimed_bytes: int, payload_bytes: int) -> str | None:
    """Why compressed Pixel Data cannot hold what the header claims, or ``None``.

    Only codecs with a bounded expansion are checked: RLE Lossless expands its
    data at most :data:`RLE_MAX_EXPANSION`-fold, so a claim beyond that is a
    crafted header (refused ``too-large`` before a decoder allocates for it).

    Examples
    --------
    >>> payload_problem("1.2.840.10008.1.2.5", 16384 * 16384 * 2, 1000)
    'decoded pixels would take 536870912 bytes, more than RLE can expand 1000 bytes to'
    >>> payload_problem("1.2.840.10008.1.2.5", 512 * 512 * 2, 100000) is None
    True
    """
    if transfer_syntax == RLE_LOSSLESS and claimed_bytes > RLE_MAX_EXPANSION * payload_bytes:
        return f"decoded pixels would take {claimed_bytes} bytes, more than RLE can expand {payload_bytes} bytes to"
    return None


#: RLE Lossless transfer syntax UID.
RLE_LOSSLESS = "1.2.840.10008.1.2.5"
