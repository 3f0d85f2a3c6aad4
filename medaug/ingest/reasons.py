"""Reason codes for input that cannot be used, and for series worth a warning.

A file that cannot be used is *quarantined* with one of the file codes; a series
that is usable but odd carries series codes in ``SeriesImage.problems``. The
codes are stable strings: they appear in ``medaug inspect`` output, in the audit
log and in run summaries, so a script may rely on them.

======================== ==================================================
Code                     Meaning
======================== ==================================================
``not-dicom``            not a DICOM file (no DICM prefix, no plausible start)
``empty``                the file has zero bytes
``truncated``            the file ends before its header or Pixel Data does
``unreadable``           the file could not be opened or read (I/O error)
``unsupported-transfer-syntax`` no installed pixel plugin decodes its encoding
``pixel-length-mismatch`` native Pixel Data shorter than the header implies
``pixel-decode-failed``  compressed Pixel Data did not decode
``too-large``            header claims dimensions over the size limits
``no-pixel-data``        an object without Pixel Data (not an image)
``bad-header``           Rows, Columns or a geometry attribute missing or malformed
``missing-uid``          SOP Class, SOP Instance, Study or Series Instance UID missing
``label-not-on-grid``    a SEG or RTSTRUCT does not fit its image series' grid
``label-unreferenced``   a SEG or RTSTRUCT references no image series or instance
``inconsistent-series``  does not fit the rest of its series (size, orientation,
                         sample layout, a duplicate position)
``irregular-spacing``    series: slice steps differ (warning)
``missing-slices``       series: a gap of a whole number of slice steps (warning)
``gantry-tilt``          series: slice axis not perpendicular to the image plane
                         (warning; the geometry keeps the shear)
======================== ==================================================
"""

from __future__ import annotations

NOT_DICOM = "not-dicom"
EMPTY = "empty"
TRUNCATED = "truncated"
UNREADABLE = "unreadable"
UNSUPPORTED_TRANSFER_SYNTAX = "unsupported-transfer-syntax"
PIXEL_LENGTH_MISMATCH = "pixel-length-mismatch"
PIXEL_DECODE_FAILED = "pixel-decode-failed"
TOO_LARGE = "too-large"
NO_PIXEL_DATA = "no-pixel-data"
BAD_HEADER = "bad-header"
MISSING_UID = "missing-uid"
INCONSISTENT_SERIES = "inconsistent-series"
DUPLICATE_INSTANCE = "duplicate-instance"
LABEL_NOT_ON_GRID = "label-not-on-grid"
LABEL_UNREFERENCED = "label-unreferenced"

IRREGULAR_SPACING = "irregular-spacing"
MISSING_SLICES = "missing-slices"
GANTRY_TILT = "gantry-tilt"

#: File reason codes (the file is quarantined) with a one-line description.
FILE_REASONS: dict[str, str] = {
    NOT_DICOM: "not a DICOM file",
    EMPTY: "the file has zero bytes",
    TRUNCATED: "the file ends before its header or Pixel Data does",
    UNREADABLE: "the file could not be opened or read (I/O error)",
    UNSUPPORTED_TRANSFER_SYNTAX: "no installed pixel plugin decodes this transfer syntax",
    PIXEL_LENGTH_MISMATCH: "native Pixel Data is shorter than Rows x Columns x Frames x Samples x BitsAllocated implies",
    PIXEL_DECODE_FAILED: "compressed Pixel Data could not be decoded",
    TOO_LARGE: "the header claims dimensions beyond the size limits (medaug.ingest.limits)",
    NO_PIXEL_DATA: "the object has no Pixel Data (not an image)",
    BAD_HEADER: "Rows, Columns or a geometry attribute is missing or malformed",
    MISSING_UID: "SOP Class, SOP Instance, Study or Series Instance UID is missing: the object can be neither grouped nor written validly",
    INCONSISTENT_SERIES: "the file does not fit the rest of its series (size, orientation, layout or duplicate position)",
    DUPLICATE_INSTANCE: "another file of the archive (the first in path order) holds the same SOP Instance UID",
    LABEL_NOT_ON_GRID: "a SEG frame or RTSTRUCT contour lies off the referenced series' grid (plane, size or orientation)",
    LABEL_UNREFERENCED: "a SEG or RTSTRUCT references no image series, instance or frame of reference",
}

#: Series problem codes (a warning; the series is still used) with a one-line description.
SERIES_PROBLEMS: dict[str, str] = {
    IRREGULAR_SPACING: "the distance between consecutive slices varies",
    MISSING_SLICES: "a gap between slices is a whole multiple (two or more) of the usual step",
    GANTRY_TILT: "the slice axis is not perpendicular to the image plane (sheared geometry kept)",
}

#: Every code with its description.
ALL_REASONS: dict[str, str] = {**FILE_REASONS, **SERIES_PROBLEMS}


def describe(code: str) -> str:
    """One-line human description of a reason code.

    Examples
    --------
    >>> describe("empty")
    'the file has zero bytes'
    """
    return ALL_REASONS.get(code, "unknown reason")
