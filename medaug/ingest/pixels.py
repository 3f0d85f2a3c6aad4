"""Decode one file's pixels through pydicom and its plugins, with size guards first."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.uid import UID

from medaug.errors import InputError
from medaug.ingest import limits, reasons
from medaug.ingest.headers import (
    PIXEL_TAGS,
    _fg,
    check_start,
    open_dataset,
    transfer_syntax_of,
)

#: Elements larger than this are read only when touched (Pixel Data after the size check).
DEFER_BYTES = 1 << 20


@dataclass
class DecodedFile:
    """One file's header (Pixel Data removed) and its frames.

    ``frames`` is ``(n, rows, columns)`` or ``(n, rows, columns, samples)`` of
    stored values; ``rescale`` is ``(n, 2)`` slope and intercept per frame.
    """

    header: Dataset
    frames: NDArray[np.generic]
    rescale: NDArray[np.float64]
    photometric: str


def decode_file(path: Path) -> DecodedFile:
    """Read one file fully and decode its pixels.

    Raises
    ------
    InputError
        ``unreadable``, ``truncated``, ``too-large``, ``no-pixel-data``,
        ``unsupported-transfer-syntax``, ``pixel-length-mismatch`` or
        ``pixel-decode-failed``.
    """
    size, _ = check_start(path)
    ds, truncated = open_dataset(path, size=size, defer_size=DEFER_BYTES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if truncated:
            raise InputError(reasons.TRUNCATED, "the file ends before its header or Pixel Data does")
        try:
            return _decode(ds)
        except InputError:
            raise
        except OSError as exc:
            raise InputError(reasons.UNREADABLE, f"{type(exc).__name__} while reading") from None
        except Exception as exc:  # damaged bytes make pydicom raise many types (NotImplementedError for an unknown VR...)
            raise InputError(reasons.BAD_HEADER, f"malformed attribute ({type(exc).__name__})") from None


def _decode(ds: Dataset) -> DecodedFile:
    """Size-check, decode and strip the pixels of a dataset read with deferred Pixel Data."""
    if 0x7FE00010 not in ds:
        raise InputError(reasons.NO_PIXEL_DATA, "no Pixel Data (7FE0,0010)")
    rows, cols = int(ds.Rows), int(ds.Columns)
    nframes = int(ds.get("NumberOfFrames") or 1)
    samples = int(ds.get("SamplesPerPixel") or 1)
    bits = int(ds.BitsAllocated)
    problem = limits.size_problem(rows, cols, nframes, samples, bits)
    if problem is not None:
        raise InputError(reasons.TOO_LARGE, problem)
    ts = transfer_syntax_of(ds)
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = UID(ts)  # files without File Meta: pydicom needs it to decode
    compressed = UID(ts).is_compressed
    try:
        arr = ds.pixel_array
    except (NotImplementedError, RuntimeError) as exc:
        if compressed and "plugin" in str(exc).lower() or isinstance(exc, NotImplementedError):
            raise InputError(reasons.UNSUPPORTED_TRANSFER_SYNTAX, "no pixel plugin decodes the transfer syntax (0002,0010)") from None
        raise InputError(reasons.PIXEL_DECODE_FAILED, f"decoder failed ({type(exc).__name__})") from None
    except (ValueError, EOFError, OSError, IndexError, TypeError, AttributeError, KeyError) as exc:
        if not compressed:
            raise InputError(reasons.PIXEL_LENGTH_MISMATCH, "Pixel Data (7FE0,0010) shorter than the header implies") from None
        raise InputError(reasons.PIXEL_DECODE_FAILED, f"decoder failed ({type(exc).__name__})") from None
    except BaseException as exc:
        # A codec written in Rust (pylibjpeg-rle) reports a bug on damaged data as
        # pyo3's PanicException, a BaseException: it must quarantine the file, not end the run.
        if _is_codec_panic(exc):
            raise InputError(reasons.PIXEL_DECODE_FAILED, "decoder failed (PanicException)") from None
        raise
    expected = (nframes, rows, cols) + ((samples,) if samples > 1 else ())
    if arr.size != int(np.prod(expected)):
        raise InputError(reasons.PIXEL_LENGTH_MISMATCH, "decoded size differs from Rows, Columns, Frames and Samples")
    frames = arr.reshape(expected)
    photometric = str(ds.get("PhotometricInterpretation", "") or ("MONOCHROME2" if samples == 1 else "RGB"))
    if samples == 3 and photometric.startswith("YBR"):
        # pydicom converts YBR colour to RGB while decoding; the header follows the data.
        photometric = "RGB"
        ds.PhotometricInterpretation = "RGB"
    for tag in PIXEL_TAGS:
        if tag in ds:
            del ds[tag]
    for _ in ds:  # load any other deferred element now, so the header no longer needs the file
        pass
    if samples == 1:
        rescale = np.array([_rescale(ds, f if "PerFrameFunctionalGroupsSequence" in ds else None) for f in range(nframes)])
    else:
        rescale = np.tile([1.0, 0.0], (nframes, 1))
    return DecodedFile(header=ds, frames=frames, rescale=rescale.astype(np.float64), photometric=photometric)


def _is_codec_panic(exc: BaseException) -> bool:
    """Whether ``exc`` is a panic of a compiled codec (pyo3 names its class PanicException)."""
    return type(exc).__name__ == "PanicException"


def _rescale(ds: Dataset, frame: int | None) -> tuple[float, float]:
    """Rescale Slope and Intercept of a frame (per-frame, shared, or top level); (1, 0) when absent."""
    slope = _fg(ds, "PixelValueTransformationSequence", "RescaleSlope", frame)
    intercept = _fg(ds, "PixelValueTransformationSequence", "RescaleIntercept", frame)
    try:
        s = float(slope) if slope not in (None, "") else 1.0
        b = float(intercept) if intercept not in (None, "") else 0.0
    except (TypeError, ValueError):
        raise InputError(reasons.BAD_HEADER, "Rescale Slope/Intercept (0028,1053)/(0028,1052) not numeric") from None
    if s == 0 or not np.isfinite(s) or not np.isfinite(b):
        raise InputError(reasons.BAD_HEADER, "Rescale Slope (0028,1053) zero or not finite")
    return (s, b)


def stored_range(bits_stored: int, pixel_representation: int) -> tuple[int, int]:
    """Smallest and largest stored value allowed by Bits Stored and Pixel Representation.

    Examples
    --------
    >>> stored_range(12, 1)
    (-2048, 2047)
    >>> stored_range(8, 0)
    (0, 255)
    """
    if pixel_representation:
        return (-(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1)
    return (0, (1 << bits_stored) - 1)
