"""Decode one file's pixels through pydicom and its plugins, with size guards first."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder
from pydicom.uid import UID

from medaug.errors import InputError
from medaug.ingest.files import FileId, confirm_unchanged
from medaug.ingest import limits, reasons
from medaug.ingest import inflate
from medaug.ingest.headers import (
    NESTED_TOO_DEEPLY,
    PIXEL_TAGS,
    check_rescale,
    check_start,
    identity_digest,
    opened_dataset,
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


def decode_file(
    path: Path, *, identity: tuple[bytes, bytes] | None = None, expected: FileId | None = None
) -> DecodedFile:
    """Read one file fully and decode its pixels.

    Parameters
    ----------
    path : Path
        The file.
    identity : (bytes, bytes), optional
        ``(salt, digest)`` recorded by the header pass
        (:attr:`~medaug.ingest.headers.InstanceRecord.identity`): the file is
        refused ``changed-during-run`` when its header no longer gives that digest.
    expected : (int, int), optional
        The file's identity at the walk (:attr:`~medaug.ingest.headers.InstanceRecord.file_id`):
        another file at the path is refused before it is read.

    Raises
    ------
    InputError
        ``unreadable``, ``truncated``, ``too-large``, ``no-pixel-data``,
        ``unsupported-transfer-syntax``, ``pixel-length-mismatch``,
        ``pixel-decode-failed``, ``bad-header`` or ``changed-during-run``.
    """
    size, _ = check_start(path, expected)
    # A deflated file's deferred values would be read back by inflating it again: read them now
    # (its inflated size is capped before anything is read).
    deflated = inflate.deflated_layout(path, expected) is not None
    # Pixel Data is read while the file opened (and checked) for the header is still open,
    # through that same descriptor (see opened_dataset).
    with opened_dataset(path, size=size, defer_size=None if deflated else DEFER_BYTES, expected=expected) as (
        ds, truncated, _,
    ), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if truncated:
            raise InputError(reasons.TRUNCATED, "the file ends before its header or Pixel Data does")
        try:
            if identity is not None and identity_digest(ds, identity[0]) != identity[1]:
                raise InputError(
                    reasons.CHANGED_DURING_RUN,
                    "SOP Instance, Series, Study UID, Patient ID or Name differs from the header pass",
                )
            decoded = _decode(ds)
        except InputError:
            raise
        except RecursionError:
            raise InputError(reasons.BAD_HEADER, NESTED_TOO_DEEPLY) from None
        except OSError as exc:
            raise InputError(reasons.UNREADABLE, f"{type(exc).__name__} while reading") from None
        except Exception as exc:  # damaged bytes make pydicom raise many types (NotImplementedError for an unknown VR...)
            raise InputError(reasons.BAD_HEADER, f"malformed attribute ({type(exc).__name__})") from None
    # What was read is the file the walk found; if its path now leads elsewhere, the archive
    # changed under the run.
    confirm_unchanged(path, expected)
    return decoded


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
    claimed = limits.object_bytes(rows, cols, nframes, samples, bits)
    if UID(ts).is_compressed:
        elem = ds.get_item(0x7FE00010, keep_deferred=True)
        length = getattr(elem, "length", None)  # a deferred (raw) element knows its length unread
        payload = int(length) if length not in (None, 0xFFFFFFFF) else _value_length(elem)
        problem = limits.payload_problem(ts, claimed, payload) if payload is not None else None
        if problem is not None:
            raise InputError(reasons.TOO_LARGE, problem)
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = UID(ts)  # files without File Meta: pydicom needs it to decode
    compressed = UID(ts).is_compressed
    try:
        arr = ds.pixel_array
    except (NotImplementedError, RuntimeError) as exc:
        if isinstance(exc, NotImplementedError) or (compressed and not _decoder_available(ts)):
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
    if arr.size > int(np.prod(expected)):
        # A codec gave more than the header claims: refused rather than trusted.
        raise InputError(reasons.TOO_LARGE, "decoded pixels exceed Rows, Columns, Frames and Samples")
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
        rescale = np.array([check_rescale(ds, f if "PerFrameFunctionalGroupsSequence" in ds else None) for f in range(nframes)])
    else:
        rescale = np.tile([1.0, 0.0], (nframes, 1))
    return DecodedFile(header=ds, frames=frames, rescale=rescale.astype(np.float64), photometric=photometric)


def _is_codec_panic(exc: BaseException) -> bool:
    """Whether ``exc`` is a panic of a compiled codec (pyo3 names its class PanicException)."""
    return type(exc).__name__ == "PanicException"


def _decoder_available(ts: str) -> bool:
    """Whether an installed plugin can decode the transfer syntax."""
    try:
        return bool(get_decoder(UID(ts)).is_available)
    except (NotImplementedError, ValueError):
        return False


def _value_length(elem: object) -> int | None:
    """Bytes of an undefined-length element's value once read; ``None`` when not read."""
    value = getattr(elem, "value", None)
    return len(value) if isinstance(value, (bytes, bytearray)) else None


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
