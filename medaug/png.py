"""A tiny PNG codec (zlib + struct): 8-bit grayscale or RGB out, 8-bit non-interlaced in.

The report and the preview only need to *write* plain 8-bit images; reading
back is for tests and for checking a browser screenshot, so the decoder
handles what encoders commonly emit at 8 bits per sample (grayscale, RGB,
grey + alpha, RGBA; every filter type), not palettes or interlacing.

Examples
--------
>>> import numpy as np
>>> img = np.arange(12, dtype=np.uint8).reshape(3, 4)
>>> bool((decode_png(encode_png(img)) == img).all())
True
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from medaug.atomic import write_atomic

SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: PNG colour type -> samples per pixel (8-bit only).
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def encode_png(pixels: NDArray[np.uint8]) -> bytes:
    """PNG bytes of an ``(h, w)`` grayscale or ``(h, w, 3)`` RGB uint8 image.

    Raises
    ------
    ValueError
        Another dtype or shape, or an empty image.
    """
    arr = np.asarray(pixels)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3) or arr.size == 0:
        raise ValueError("encode_png takes a non-empty (h, w) or (h, w, 3) uint8 array")
    h, w = arr.shape[:2]
    colour = 2 if arr.ndim == 3 else 0
    # Filter type 0 on every row: simple and deterministic; zlib does the work.
    rows = np.concatenate([np.zeros((h, 1), dtype=np.uint8), arr.reshape(h, -1)], axis=1)
    header = struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + _chunk(b"IEND", b"")


def write_png(path: Path, pixels: NDArray[np.uint8]) -> None:
    """Write :func:`encode_png` output to ``path`` atomically."""
    data = encode_png(pixels)
    write_atomic(Path(path), lambda f: f.write(data))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(raw: bytes, h: int, stride: int, bpp: int) -> NDArray[np.uint8]:
    out = np.zeros((h, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int64)
    pos = 0
    for y in range(h):
        kind = raw[pos]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=pos + 1).astype(np.int64)
        pos += stride + 1
        if kind == 0:
            cur = line
        elif kind == 1:
            # Sub: a running sum of each channel along the row.
            cur = np.cumsum(line.reshape(-1, bpp), axis=0).reshape(-1) & 0xFF
        elif kind == 2:
            cur = (line + prev) & 0xFF
        elif kind in (3, 4):
            # Sub, Average and Paeth depend on the pixel to the left: byte by byte.
            cur = line.copy()
            for x in range(stride):
                left = int(cur[x - bpp]) if x >= bpp else 0
                up = int(prev[x])
                if kind == 3:
                    pred = (left + up) // 2
                else:
                    pred = _paeth(left, up, int(prev[x - bpp]) if x >= bpp else 0)
                cur[x] = (cur[x] + pred) & 0xFF
        else:
            raise ValueError(f"PNG row {y} has an unknown filter type {kind}")
        out[y] = cur
        prev = cur
    return out


def decode_png(data: bytes) -> NDArray[np.uint8]:
    """Pixels of an 8-bit, non-interlaced PNG: ``(h, w)`` or ``(h, w, channels)``.

    Raises
    ------
    ValueError
        Not a PNG, or a bit depth, colour type or interlacing this decoder does not handle.
    """
    if not data.startswith(SIGNATURE):
        raise ValueError("not a PNG file")
    pos = len(SIGNATURE)
    idat = bytearray()
    width = height = channels = 0
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        payload = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", payload)
            if depth != 8 or colour not in _CHANNELS or interlace:
                raise ValueError("only 8-bit, non-interlaced grey/RGB(A) PNG files are decoded")
            channels = _CHANNELS[colour]
        elif kind == b"IDAT":
            idat += payload
        elif kind == b"IEND":
            break
    if not channels:
        raise ValueError("PNG without a header")
    pixels = _unfilter(zlib.decompress(bytes(idat)), height, width * channels, channels)
    return pixels.reshape(height, width) if channels == 1 else pixels.reshape(height, width, channels)


def read_png(path: Path) -> NDArray[np.uint8]:
    """Decode the PNG file at ``path`` (see :func:`decode_png`)."""
    return decode_png(Path(path).read_bytes())


__all__ = ["decode_png", "encode_png", "read_png", "write_png"]
