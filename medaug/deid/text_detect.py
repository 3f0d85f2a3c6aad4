"""Burned-in text: find it in the pixels of every frame, then blank it.

Two stages. :func:`triage` is fast and generous: thin bright and dark strokes
(morphological white and black top-hat), kept when they are glyph-sized and
line up in rows like text. :func:`confirm` runs Tesseract OCR on the flagged
regions only and keeps a region when OCR reads at least two letters or digits
with reasonable confidence. :func:`detect` chains the two; :func:`redact` fills
the boxes found.

What OCR reads is never logged, stored, returned or put in an exception: it
may be a patient's name. Only boxes leave this module.

Examples
--------
>>> import numpy as np
>>> frame = np.zeros((64, 64), dtype=np.int16)
>>> triage(displayed(frame, modality="MR", photometric="MONOCHROME2"))
[]
>>> int(redact(np.ones((4, 4), dtype=np.uint8), [(1, 1, 1, 1)], margin=0, fill=0).sum())
15
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from medaug.deid.burned_in import blank
from medaug.display import CT_WINDOW, display_window, full_range_window, luminance, to_uint8
from medaug.errors import MedaugError

#: A region of a frame: column, row, width, height, in pixels.
Box = tuple[int, int, int, int]

#: Photometric interpretations :func:`displayed` understands (an allow list).
PHOTOMETRICS = frozenset({"MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "PALETTE COLOR"})

#: Debian packages that provide the OCR engine and its English model.
OCR_PACKAGES = "tesseract-ocr tesseract-ocr-eng"


class OcrUnavailableError(MedaugError):
    """Tesseract (or its English model) is not installed."""

    default_message = f"burned-in text check needs Tesseract OCR: install the Debian packages {OCR_PACKAGES}"


class OcrFailedError(MedaugError):
    """Tesseract ran but failed (the message gives its exit status only)."""

    default_message = "Tesseract OCR failed"


@dataclass(frozen=True)
class Detection:
    """What :func:`detect` found on one frame.

    Attributes
    ----------
    boxes : tuple of Box
        Confirmed text regions ``(x, y, w, h)``.
    triaged : int
        How many regions the first stage flagged.
    ocr_ran : bool
        Whether OCR was run (only when the first stage flagged something).
    """

    boxes: tuple[Box, ...]
    triaged: int
    ocr_ran: bool


# --------------------------------------------------------------------------- display


def displayed(
    frame: NDArray[np.generic],
    *,
    modality: str,
    photometric: str,
    window: tuple[float, float] | None = None,
) -> NDArray[np.uint8]:
    """The frame as a viewer shows it, in 8-bit grey levels.

    Parameters
    ----------
    frame : ndarray
        One frame: ``(rows, cols)`` in modality values (HU for CT) or
        ``(rows, cols, 3)`` colour.
    modality : str
        DICOM Modality; CT gets :data:`~medaug.display.CT_WINDOW`, others
        their 1st–99th percentile (:func:`~medaug.display.display_window`).
    photometric : str
        Photometric Interpretation, one of :data:`PHOTOMETRICS`; MONOCHROME1
        is inverted, colour is reduced to luminance.
    window : (float, float), optional
        A window to use instead of the modality's.

    Returns
    -------
    ndarray of uint8, 2D

    Raises
    ------
    ValueError
        When the photometric interpretation is not in :data:`PHOTOMETRICS` or
        the frame's shape does not fit it.
    """
    kind = photometric.strip().upper()
    if kind not in PHOTOMETRICS:
        raise ValueError("photometric interpretation is not one displayed() knows")
    values = np.asarray(frame)
    if kind in ("RGB", "YBR_FULL"):
        if values.ndim != 3 or values.shape[-1] != 3:
            raise ValueError("a colour frame must be (rows, cols, 3)")
        # YBR_FULL's first sample is already luminance.
        grey = luminance(values) if kind == "RGB" else np.asarray(values[..., 0], dtype=np.float64)
        lo, hi = window if window is not None else (0.0, 255.0)
        return to_uint8(grey, (lo, hi))
    if values.ndim != 2:
        raise ValueError("a grey frame must be 2D")
    lo, hi = window if window is not None else display_window(values, modality=modality)
    return to_uint8(values, (hi, lo) if kind == "MONOCHROME1" else (lo, hi))


#: Pixels at exactly the largest value that make a CT frame worth searching in its full range.
_PLATEAU_PIXELS = 12


def _views(frame: NDArray[np.generic], *, modality: str, photometric: str) -> list[NDArray[np.uint8]]:
    """The displays :func:`detect` searches: CT also with its full range (text at the top value)."""
    first = displayed(frame, modality=modality, photometric=photometric)
    if modality.strip().upper() != "CT" or np.asarray(frame).ndim != 2:
        return [first]
    wide = full_range_window(frame)
    if wide[0] >= CT_WINDOW[0] and wide[1] <= CT_WINDOW[1]:
        return [first]
    # Text burned into CT is drawn at one value (the top of the range) over many pixels; noisy
    # anatomy reaches its maximum in a few. Without such a plateau the full range shows only bone.
    top = np.nanmax(frame)
    if int(np.count_nonzero(np.asarray(frame) == top)) < _PLATEAU_PIXELS:
        return [first]
    return [first, displayed(frame, modality=modality, photometric=photometric, window=wide)]


# --------------------------------------------------------------------------- stage 1


def _components(mask: NDArray[np.bool_], *, min_height: int, max_height: int) -> NDArray[np.int64]:
    """Glyph-like connected components of ``mask`` as rows ``(x, y, w, h, glyphs)``."""
    labels, count = ndimage.label(mask)
    if count == 0:
        return np.zeros((0, 5), dtype=np.int64)
    slices = ndimage.find_objects(labels)
    bounds = np.array([(s[1].start, s[0].start, s[1].stop, s[0].stop) for s in slices], dtype=np.int64)
    area = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    x0, y0, x1, y1 = bounds.T
    w, h = x1 - x0, y1 - y0
    fill = area / np.maximum(w * h, 1)
    # Touching glyphs of a small font merge into one component: count its glyphs by width.
    glyphs = np.maximum(1, np.rint(w / np.maximum(0.7 * h, 1.0))).astype(np.int64)
    keep = (
        (h >= min_height)
        & (h <= max_height)
        & (w >= 1)
        & (w <= 8 * h)
        & (area >= 6)
        & (fill >= 0.12)
        & ((fill <= 0.85) | (w <= 0.5 * h))  # solid blocks are not glyphs, thin bars (l, 1, I) may be
    )
    return np.stack([x0, y0, w, h, glyphs], axis=1)[keep]


def _rows(comps: NDArray[np.int64], *, min_glyphs: int, gap: float) -> list[Box]:
    """Group components into text rows: similar heights, aligned vertically, small gaps."""
    n = len(comps)
    if n == 0:
        return []
    x, y, w, h, g = (comps[:, i].astype(np.float64) for i in range(5))
    top, bottom, left, right = y, y + h, x, x + w
    hmax = np.maximum(h[:, None], h[None, :])
    hmin = np.minimum(h[:, None], h[None, :])
    overlap = np.minimum(bottom[:, None], bottom[None, :]) - np.maximum(top[:, None], top[None, :])
    hgap = np.maximum(left[:, None], left[None, :]) - np.minimum(right[:, None], right[None, :])
    near = (hmax <= 2.2 * hmin) & (overlap >= 0.5 * hmin) & (hgap <= gap * hmax)
    np.fill_diagonal(near, False)
    ii, jj = np.nonzero(near)
    graph = coo_matrix((np.ones(len(ii)), (ii, jj)), shape=(n, n))
    ngroups, group = connected_components(graph, directed=False)
    glyphs = np.bincount(group, weights=g, minlength=ngroups)
    members = np.bincount(group, minlength=ngroups)
    boxes: list[Box] = []
    for k in np.flatnonzero((glyphs >= min_glyphs) & (members >= 2)):
        sel = group == k
        bx0, by0 = int(left[sel].min()), int(top[sel].min())
        if bottom[sel].max() - by0 > 1.8 * h[sel].max():
            continue  # chained across lines or through speckle: not one row of text
        boxes.append((bx0, by0, int(right[sel].max()) - bx0, int(bottom[sel].max()) - by0))
    return boxes


def triage(
    display_u8: NDArray[np.uint8],
    *,
    stroke: int = 7,
    min_contrast: float = 24.0,
    noise_factor: float = 6.0,
    min_height: int = 5,
    max_height: int = 36,
    min_glyphs: int = 3,
    gap: float = 1.2,
) -> list[Box]:
    """First stage: regions that look like rows of text.

    Parameters
    ----------
    display_u8 : ndarray of uint8, 2D
        The frame as displayed (:func:`displayed`).
    stroke : int
        Side of the square structuring element of the top-hats: strokes
        thinner than this survive, anatomy wider than it does not.
    min_contrast : float
        Smallest top-hat response (grey levels) that counts as a stroke.
    noise_factor : float
        The threshold is at least this many robust standard deviations
        (1.4826 × MAD) of the top-hat response, so speckle is ignored.
    min_height, max_height : int
        Glyph heights, in pixels, considered.
    min_glyphs : int
        Glyphs a row needs to be text.
    gap : float
        Largest gap between glyphs of a row, in glyph heights.

    Returns
    -------
    list of Box
        ``(x, y, w, h)`` of each text-like row; bright and dark text both.
    """
    image = np.asarray(display_u8)
    if image.ndim != 2:
        raise ValueError("triage needs a 2D displayed frame")
    boxes: list[Box] = []
    size = (stroke, stroke)
    # The top-hats are separable min/max filters on a flat square: a few passes over the frame.
    for response in (ndimage.white_tophat(image, size=size), ndimage.black_tophat(image, size=size)):
        sample = response[::4, ::4]
        med = float(np.median(sample))
        mad = float(np.median(np.abs(sample - med)))
        threshold = max(min_contrast, med + noise_factor * 1.4826 * mad)
        comps = _components(response > threshold, min_height=min_height, max_height=max_height)
        boxes.extend(_rows(comps, min_glyphs=min_glyphs, gap=gap))
    return _merge(boxes)


def _merge(boxes: Sequence[Box]) -> list[Box]:
    """Union of overlapping boxes (bright and dark rows of one label, two displays)."""
    merged = [tuple(b) for b in boxes]
    changed = True
    while changed:
        changed = False
        out: list[tuple[int, ...]] = []
        for b in merged:
            for i, o in enumerate(out):
                if b[0] < o[0] + o[2] and o[0] < b[0] + b[2] and b[1] < o[1] + o[3] and o[1] < b[1] + b[3]:
                    x0, y0 = min(b[0], o[0]), min(b[1], o[1])
                    x1, y1 = max(b[0] + b[2], o[0] + o[2]), max(b[1] + b[3], o[1] + o[3])
                    out[i] = (x0, y0, x1 - x0, y1 - y0)
                    changed = True
                    break
            else:
                out.append(b)
        merged = out
    return sorted((int(b[0]), int(b[1]), int(b[2]), int(b[3])) for b in merged)


# --------------------------------------------------------------------------- stage 2
# The `tesseract` program is called directly with subprocess rather than through pytesseract:
# pytesseract writes each image to a temporary file and logs on failure, and we need neither. The
# image goes in on stdin as PGM (no temporary file holds pixels), the TSV result comes back on
# stdout and is parsed here, then dropped. One call per frame reads every flagged region at once.


@functools.lru_cache(maxsize=1)
def ocr_available() -> bool:
    """Whether the ``tesseract`` program with its English model is installed."""
    exe = shutil.which("tesseract")
    if exe is None:
        return False
    try:
        proc = subprocess.run([exe, "--list-langs"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and "eng" in (proc.stdout + proc.stderr).split()


def _require_ocr() -> str:
    exe = shutil.which("tesseract")
    if exe is None or not ocr_available():
        raise OcrUnavailableError()
    return exe


def _pgm(image: NDArray[np.uint8]) -> bytes:
    rows, cols = image.shape
    return b"P5\n%d %d\n255\n" % (cols, rows) + np.ascontiguousarray(image, dtype=np.uint8).tobytes()


def _ocr_words(image: NDArray[np.uint8], *, psm: int) -> list[tuple[int, int, float, int]]:
    """Tesseract's words on ``image`` as ``(top, height, confidence, alphanumeric count)``.

    The words themselves are counted, not kept.
    """
    exe = _require_ocr()
    env = dict(os.environ, OMP_THREAD_LIMIT="1")  # one core per call: the machine is shared
    proc = subprocess.run(
        [exe, "stdin", "stdout", "-l", "eng", "--psm", str(psm), "tsv"],
        input=_pgm(image),
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise OcrFailedError(f"Tesseract OCR failed with exit status {proc.returncode}")
    words: list[tuple[int, int, float, int]] = []
    for line in proc.stdout.decode("utf-8", "replace").splitlines()[1:]:
        cells = line.split("\t")
        if len(cells) < 12 or cells[0] != "5":
            continue
        alnum = sum(ch.isascii() and ch.isalnum() for ch in cells[11])
        words.append((int(cells[7]), int(cells[9]), float(cells[10]), alnum))
    return words


def ocr_tokens(display_u8: NDArray[np.uint8], *, psm: int = 11) -> list[str]:
    """Every word Tesseract reads on a displayed frame.

    For checks only (a test verifying that redaction left nothing readable):
    the pipeline never calls it, and its result must not be logged or stored.
    """
    exe = _require_ocr()
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    proc = subprocess.run(
        [exe, "stdin", "stdout", "-l", "eng", "--psm", str(psm)],
        input=_pgm(np.asarray(display_u8, dtype=np.uint8)),
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise OcrFailedError(f"Tesseract OCR failed with exit status {proc.returncode}")
    return proc.stdout.decode("utf-8", "replace").split()


def _strip(crop: NDArray[np.uint8], *, scale: int) -> NDArray[np.uint8]:
    """Strokes of a crop (a top-hat response) as dark text on white, stretched and enlarged ``scale`` times."""
    hi = float(np.percentile(crop, 99.5))
    stretched = to_uint8(crop, (hi if hi > 0 else 1.0, 0.0))  # reversed window: strokes dark
    if scale == 1:
        return stretched
    return np.asarray(np.clip(ndimage.zoom(stretched.astype(np.float32), scale, order=1), 0, 255), dtype=np.uint8)


def _sheet(strips: Sequence[NDArray[np.uint8]], *, pad: int) -> tuple[NDArray[np.uint8], list[tuple[int, int]]]:
    """Strips stacked top to bottom on white; the row span of each."""
    width = max(s.shape[1] for s in strips) + 2 * pad
    parts: list[NDArray[np.uint8]] = []
    spans: list[tuple[int, int]] = []
    top = 0
    for strip in strips:
        block = np.full((strip.shape[0] + 2 * pad, width), 255, dtype=np.uint8)
        block[pad : pad + strip.shape[0], pad : pad + strip.shape[1]] = strip
        parts.append(block)
        spans.append((top, top + block.shape[0]))
        top += block.shape[0]
    return np.concatenate(parts, axis=0), spans


def confirm(
    display_u8: NDArray[np.uint8],
    boxes: Sequence[Box],
    *,
    margin: int = 4,
    text_height: int = 36,
    min_confidence: float = 50.0,
    min_chars: int = 2,
    stroke: int = 7,
) -> list[Box]:
    """Second stage: the boxes in which OCR reads text.

    Each box is cropped with ``margin``, stretched to full contrast, enlarged
    so its text is about ``text_height`` pixels tall, and read in both
    polarities (Tesseract prefers dark text on a light ground): one Tesseract
    call per polarity reads every box of the frame, stacked on one sheet.

    Parameters
    ----------
    display_u8 : ndarray of uint8, 2D
        The frame as displayed.
    boxes : sequence of Box
        Regions from :func:`triage`.
    margin : int
        Pixels added around each box before reading.
    text_height : int
        Height, in pixels, small text is enlarged to (whole multiples, at most 6).
    min_confidence : float
        Tesseract word confidence (0–100) a word needs to count.
    min_chars : int
        Letters or digits a box needs, over its confident words.

    Returns
    -------
    list of Box
        The confirmed boxes, unchanged. What OCR read is not returned.

    Raises
    ------
    OcrUnavailableError
        When Tesseract is not installed.
    OcrFailedError
        When Tesseract exits with an error.
    """
    image = np.asarray(display_u8, dtype=np.uint8)
    rows, cols = image.shape
    strips: list[NDArray[np.uint8]] = []
    owners: list[int] = []
    for index, (x, y, w, h) in enumerate(boxes):
        side = max(margin, h)  # a row the first stage split still reads whole
        crop = image[max(0, y - margin) : min(rows, y + h + margin), max(0, x - side) : min(cols, x + w + side)]
        if crop.size == 0:
            continue
        scale = int(np.clip(round(text_height / max(h, 1)), 1, 6))
        # Both polarities, each with its background removed: bright strokes, then dark ones.
        for response in (ndimage.white_tophat(crop, size=(stroke, stroke)), ndimage.black_tophat(crop, size=(stroke, stroke))):
            strips.append(_strip(response, scale=scale))
            owners.append(index)
    if not strips:
        return []
    chars = np.zeros(len(boxes), dtype=np.int64)
    sheet, spans = _sheet(strips, pad=16)
    for word_top, word_height, confidence, alnum in _ocr_words(sheet, psm=11):
        if confidence < min_confidence or alnum < 2:
            continue  # single characters are what speckle and edges read as
        centre = word_top + word_height / 2.0
        for (start, stop), index in zip(spans, owners):
            if start <= centre < stop:
                chars[index] += alnum
                break
    return [(int(b[0]), int(b[1]), int(b[2]), int(b[3])) for b, n in zip(boxes, chars) if n >= min_chars]


# --------------------------------------------------------------------------- both


def detect(frame: NDArray[np.generic], *, modality: str, photometric: str) -> Detection:
    """Burned-in text on one frame: :func:`triage` on its display(s), :func:`confirm` on what it flags.

    CT is searched in its clinical window and in its full range, where text
    drawn at the largest value stands apart from bone.

    Raises
    ------
    OcrUnavailableError
        When something was flagged and Tesseract is not installed.
    """
    confirmed: list[Box] = []
    triaged = 0
    for view in _views(frame, modality=modality, photometric=photometric):
        flagged = triage(view)
        triaged += len(flagged)
        if flagged:
            confirmed.extend(confirm(view, flagged))
    return Detection(boxes=tuple(_merge(confirmed)), triaged=triaged, ocr_ran=triaged > 0)


# --------------------------------------------------------------------------- redaction


def redact(
    frame_stored_values: NDArray[np.generic],
    boxes: Sequence[Box],
    *,
    margin: int,
    fill: float | Sequence[float],
) -> NDArray[np.generic]:
    """A copy of the frame with every box, grown by ``margin`` and clipped to the frame, set to ``fill``.

    Parameters
    ----------
    frame_stored_values : ndarray
        ``(rows, cols)`` or ``(rows, cols, 3)`` stored values.
    boxes : sequence of Box
        ``(x, y, w, h)`` regions.
    margin : int
        Pixels added on every side of each box.
    fill : float or sequence of float
        The value (or one value per colour sample) written.

    Returns
    -------
    ndarray
        A new array of the same shape and dtype.
    """
    if margin < 0:
        raise ValueError("margin must be zero or more")
    frame = np.asarray(frame_stored_values)
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[-1] != 3):
        raise ValueError("redact needs a (rows, cols) or (rows, cols, 3) frame")
    return blank(frame, grown(boxes, margin=margin, shape=frame.shape[:2]), fill=fill, colour=frame.ndim == 3)


def grown(boxes: Sequence[Box], *, margin: int, shape: tuple[int, ...]) -> list[Box]:
    """Boxes grown by ``margin`` on every side and clipped to a ``(rows, cols)`` frame (empty ones dropped)."""
    rows, cols = int(shape[0]), int(shape[1])
    out: list[Box] = []
    for x, y, w, h in boxes:
        x0, y0 = max(0, int(x) - margin), max(0, int(y) - margin)
        x1, y1 = min(cols, int(x) + int(w) + margin), min(rows, int(y) + int(h) + margin)
        if x1 > x0 and y1 > y0:
            out.append((x0, y0, x1 - x0, y1 - y0))
    return out


def frames_with_text(frames: NDArray[np.generic], *, modality: str, photometric: str) -> int:
    """How many frames of ``(k, rows, cols[, 3])`` carry text (a count: nothing read is kept)."""
    count = 0
    for k in range(frames.shape[0]):
        try:
            found = detect(frames[k], modality=modality, photometric=photometric).boxes
        except OcrUnavailableError:
            found = tuple(triage(displayed(frames[k], modality=modality, photometric=photometric)))
        count += bool(found)
    return count
