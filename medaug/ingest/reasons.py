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
``bad-header``           Rows, Columns or a geometry attribute missing or malformed,
                         Rescale Slope/Intercept absurd, sequences nested too deeply
``bad-geometry``         Pixel Spacing or a Slice Thickness used for geometry implausible
``changed-during-run``   the file's identity differs between header and pixel pass
``not-a-regular-file``   a FIFO, socket or device file in the archive (never opened)
``broken-link``          a symbolic link whose target does not exist
``link-loop``            a symbolic link that loops, or leads to a folder enclosing it
``duplicate-folder``     a link to a folder already walked through another link
``outside-archive``      a symbolic link leading outside the archive (never followed)
``unreadable-folder``    a folder that cannot be listed (the folder is the entry)
``missing-uid``          SOP Class, SOP Instance, Study or Series Instance UID missing
``label-object``         a SEG or RTSTRUCT (read with the series it references, not as an image)
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
BAD_GEOMETRY = "bad-geometry"
CHANGED_DURING_RUN = "changed-during-run"
NOT_A_REGULAR_FILE = "not-a-regular-file"
BROKEN_LINK = "broken-link"
LINK_LOOP = "link-loop"
DUPLICATE_FOLDER = "duplicate-folder"
OUTSIDE_ARCHIVE = "outside-archive"
UNREADABLE_FOLDER = "unreadable-folder"
LABEL_OBJECT = "label-object"
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
    UNSUPPORTED_TRANSFER_SYNTAX: (
        "no installed pixel plugin decodes this transfer syntax (medaug installs pylibjpeg-libjpeg for JPEG and "
        "JPEG-LS, pylibjpeg-openjpeg for JPEG 2000, pylibjpeg-rle and pyjpegls; reinstall medaug if one is missing, "
        "or convert the files to an uncompressed transfer syntax)"
    ),
    PIXEL_LENGTH_MISMATCH: "native Pixel Data is shorter than Rows x Columns x Frames x Samples x BitsAllocated implies",
    PIXEL_DECODE_FAILED: "compressed Pixel Data could not be decoded",
    TOO_LARGE: "the header claims, or the data inflates or decodes to, sizes beyond the limits (medaug.ingest.limits)",
    NO_PIXEL_DATA: "the object has no Pixel Data (not an image)",
    BAD_HEADER: "Rows, Columns, a geometry or rescale attribute is missing, malformed or absurd, or sequences nest too deeply",
    MISSING_UID: "SOP Class, SOP Instance, Study or Series Instance UID is missing: the object can be neither grouped nor written validly",
    INCONSISTENT_SERIES: "the file does not fit the rest of its series (size, orientation, layout or duplicate position)",
    DUPLICATE_INSTANCE: "another file of the archive (the first in path order) holds the same SOP Instance UID",
    BAD_GEOMETRY: "Pixel Spacing, Imager Pixel Spacing or a Slice Thickness used for geometry is not between 0.001 and 1000 mm",
    CHANGED_DURING_RUN: "the file changed during the run: its path leads to another file than the walk found, or its identity (SOP Instance, Series, Study UID, Patient ID or Name) changed between the header and the pixel pass",
    NOT_A_REGULAR_FILE: "a FIFO, socket or device file: not opened",
    BROKEN_LINK: "a symbolic link whose target does not exist",
    LINK_LOOP: "a symbolic link that loops or leads to a folder enclosing it",
    DUPLICATE_FOLDER: "a symbolic link to a folder already walked through another link (its files are counted there)",
    OUTSIDE_ARCHIVE: "a symbolic link leading outside the archive: never followed",
    UNREADABLE_FOLDER: "a folder that cannot be listed (its contents are unknown)",
    LABEL_OBJECT: "a Segmentation or RT Structure Set: a label object, read with the image series it references",
    LABEL_NOT_ON_GRID: "a SEG frame or RTSTRUCT contour lies on no slice plane of the referenced series (its real "
                       "planes, for an unevenly spaced one), or its rows, columns or orientation differ",
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
