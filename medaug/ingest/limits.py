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
