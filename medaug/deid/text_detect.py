"""Burned-in text: find it in the pixels of every frame, then blank it.

Two stages. :func:`triage` is fast: thin bright and dark strokes (white and
black top-hat) that stand out of their local ground, kept when they are
glyph-sized and line up in rows on one baseline; large text is searched the
same way on the frame halved (again and again for large frames). :func:`confirm` runs Tesseract OCR on the
flagged rows only and keeps a row when OCR reads words of the row's glyph
height in it. :func:`detect` chains the two; :func:`redact` fills the boxes found.

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
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

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

#: Polarities of a row: strokes brighter than their ground, darker (or-ed: both, as outlined text).
BRIGHT, DARK = 1, 2

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


class Candidate(NamedTuple):
    """A row the first stage flagged: its box, polarity (:data:`BRIGHT` | :data:`DARK`) and glyph height."""

    box: Box
    polarity: int
    height: int


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


def _running(a: NDArray[np.uint8], k: int, axis: int, op: np.ufunc) -> NDArray[np.uint8]:
    """Min or max (``op``) over windows of ``k`` along ``axis``, in 'valid' mode (``k - 1`` shorter).

    Doubling windows: about log2(k) whole-array ``op`` calls on uint8, no float temporaries.
    """
    n = a.shape[axis]

    def part(start: int, stop: int) -> NDArray[np.uint8]:
        return a[start:stop] if axis == 0 else a[:, start:stop]

    span = 1
    while 2 * span <= k:
        n -= span
        a = op(part(0, n), part(span, n + span))
        span *= 2
    if span < k:
        n -= k - span
        a = op(part(0, n), part(k - span, n + k - span))
    return a


def _square(a: NDArray[np.uint8], k: int, op: np.ufunc) -> NDArray[np.uint8]:
    """``op`` over ``k`` x ``k`` squares, 'valid' mode (flat square structuring element, separable)."""
    return _running(_running(a, k, 0, op), k, 1, op)


def tophats(image: NDArray[np.uint8], *, stroke: int) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """White and black top-hat of ``image`` with a ``stroke`` x ``stroke`` square, edges replicated.

    Bright strokes thinner than ``stroke`` are what the white top-hat keeps
    (the image minus its opening), dark ones what the black top-hat keeps (the
    closing minus the image).
    """
    image = np.asarray(image, dtype=np.uint8)
    # Each 'valid' pass loses stroke - 1 pixels; two passes (erode then dilate, or the reverse) eat the pad.
    padded = np.pad(image, stroke - 1, mode="edge")
    opened = _square(_square(padded, stroke, np.minimum), stroke, np.maximum)
    closed = _square(_square(padded, stroke, np.maximum), stroke, np.minimum)
    return image - opened, closed - image  # opening <= image <= closing: no wrap-around


def _noise_floor(response: NDArray[np.uint8], *, tile: int, factor: float, floor: float) -> NDArray[np.uint8]:
    """A threshold per pixel: ``factor`` times the median response of its tile, at least ``floor``.

    Text covers less than half of any tile, so a tile's median is its ground:
    near zero on a flat background, high in speckle or noisy anatomy.
    """
    rows, cols = response.shape
    ty, tx = max(1, rows // tile), max(1, cols // tile)
    step = max(1, tile // 8)  # 64 pixels of a tile are enough for its median
    blocks = response[: ty * tile, : tx * tile].reshape(ty, tile, tx, tile)[:, ::step, :, ::step]
    values = blocks.transpose(0, 2, 1, 3).reshape(ty, tx, -1)
    middle = values.shape[-1] // 2
    med = np.partition(values, middle, axis=-1)[..., middle]  # the (upper) median, kept in uint8
    # A stroke's ground is the noisier of its own and the neighbouring tiles: a row at the rim of
    # a speckled sector is judged against the speckle, not against the black beside it.
    med = ndimage.maximum_filter(med, size=3, mode="nearest")
    level = np.clip(np.maximum(factor * med, floor), 0, 255).astype(np.uint8)
    # Rows and columns past the last whole tile belong to it.
    ry = np.full(ty, tile, dtype=np.int64)
    ry[-1] += rows - ty * tile
    rx = np.full(tx, tile, dtype=np.int64)
    rx[-1] += cols - tx * tile
    return np.repeat(np.repeat(level, ry, axis=0), rx, axis=1)


def _labelled_pixels(mask: NDArray[np.bool_]) -> tuple[NDArray[np.intp], NDArray[np.intp], int]:
    """Connected components (4-connected) of ``mask``: its pixels' flat indices, each one's label, the count.

    Stroke masks are sparse (a few pixels in a hundred), so the components are
    found among the set pixels alone, as a graph of their right and lower
    neighbours; a dense mask is labelled in one raster pass instead.
    """
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return idx, idx, 0
    if idx.size > mask.size // 16:
        labels, count = ndimage.label(mask)
        return idx, labels.ravel()[idx].astype(np.intp) - 1, int(count)
    cols = mask.shape[1]
    right = np.flatnonzero((np.diff(idx) == 1) & ((idx[:-1] + 1) % cols != 0))
    below = np.searchsorted(idx, idx + cols)
    has_below = np.flatnonzero(below < idx.size)
    has_below = has_below[idx[below[has_below]] == idx[has_below] + cols]
    a = np.concatenate([right, has_below])
    b = np.concatenate([right + 1, below[has_below]])
    graph = coo_matrix((np.ones(a.size, dtype=np.int8), (a, b)), shape=(idx.size, idx.size))
    count, label = connected_components(graph, directed=False)
    return idx, label.astype(np.intp), int(count)


#: Width of one glyph of merged small text with its spacing, in glyph heights (the glyph count divides by it).
GLYPH_WIDTH = 0.85


def _components(mask: NDArray[np.bool_], *, min_height: int, max_height: int) -> NDArray[np.int64]:
    """Glyph-like connected components of ``mask`` as rows ``(x, y, w, h, glyphs)``."""
    idx, label, count = _labelled_pixels(mask)
    if count == 0:
        return np.zeros((0, 5), dtype=np.int64)
    ys, xs = np.divmod(idx, mask.shape[1])
    order = np.argsort(label, kind="stable")
    starts = np.flatnonzero(np.r_[True, label[order][1:] != label[order][:-1]])
    x0, x1 = np.minimum.reduceat(xs[order], starts), np.maximum.reduceat(xs[order], starts) + 1
    y0, y1 = np.minimum.reduceat(ys[order], starts), np.maximum.reduceat(ys[order], starts) + 1
    area = np.diff(np.r_[starts, idx.size])
    w, h = (x1 - x0).astype(np.int64), (y1 - y0).astype(np.int64)
    fill = area / np.maximum(w * h, 1)
    # Touching glyphs of a small font merge into one component: count its glyphs by width, a
    # glyph for every whole GLYPH_WIDTH heights. Whole ones only: a blob a little wider than tall
    # (a vertebra, a piece of body wall on a small warped CT frame) is one glyph, not two.
    glyphs = np.maximum(1, np.floor(w / np.maximum(GLYPH_WIDTH * h, 1.0))).astype(np.int64)
    keep = (
        (h >= min_height)
        & (h <= max_height)
        & (w <= 8 * h)
        & (area >= 6)
        & (fill >= 0.12)
        & ((fill <= 0.85) | (w <= 0.5 * h))  # solid blocks are not glyphs, thin bars (l, 1, I) may be
    )
    return np.stack([x0, y0, w, h, glyphs], axis=1).astype(np.int64)[keep]


def _groups(n: int, pairs_a: NDArray[np.intp], pairs_b: NDArray[np.intp]) -> NDArray[np.intp]:
    """Connected groups of ``n`` items joined by pairs (union-find): each item's group number."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in zip(pairs_a.tolist(), pairs_b.tolist()):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([root(i) for i in range(n)], dtype=np.intp)
    return np.unique(roots, return_inverse=True)[1]


def _rows(comps: NDArray[np.int64], *, min_glyphs: int, gap: float) -> list[tuple[Box, int]]:
    """Group components into text rows: similar heights, on one line, small gaps, a shared baseline or top line.

    Returns each row's box and its glyphs' median height.
    """
    n = len(comps)
    if n < 2:
        return []
    x, y, w, h, g = (comps[:, i].astype(np.float32) for i in range(5))
    top, bottom, left, right = y, y + h, x, x + w
    # Neighbours are looked for among the next components from the left only, one offset in that
    # order at a time, until no component's next one is near enough in x to join it.
    order = np.argsort(left, kind="stable")
    none = np.zeros(0, dtype=np.intp)
    ii_parts, jj_parts = [none], [none]
    for k in range(1, n):
        a, b = order[:-k], order[k:]
        reach = left[b] <= right[a] + gap * 2.2 * h[a]  # the widest gap any partner of a allows
        if not reach.any():
            break
        hmax, hmin = np.maximum(h[a], h[b]), np.minimum(h[a], h[b])
        overlap = np.minimum(bottom[a], bottom[b]) - np.maximum(top[a], top[b])
        near = reach & (hmax <= 2.2 * hmin) & (overlap >= 0.5 * hmin) & (left[b] - right[a] <= gap * hmax)
        ii_parts.append(a[near])
        jj_parts.append(b[near])
    group = _groups(n, np.concatenate(ii_parts), np.concatenate(jj_parts))
    ngroups = int(group.max()) + 1
    glyphs = np.bincount(group, weights=g, minlength=ngroups)
    members = np.bincount(group, minlength=ngroups)
    boxes: list[tuple[Box, int]] = []
    for number in np.flatnonzero((glyphs >= min_glyphs) & (members >= 2)):
        sel = np.flatnonzero(group == number)
        # A few members each: plain lists and statistics.median cost less than numpy calls here.
        tops, bottoms, heights = top[sel].tolist(), bottom[sel].tolist(), h[sel].tolist()
        by0, by1 = min(tops), max(bottoms)
        if by1 - by0 > 1.8 * max(heights):
            continue  # chained across lines or through speckle: not one row of text
        # Letters and digits stand on one baseline (or hang from one cap line); blobs scatter.
        height = statistics.median(heights)
        tol = max(1.5, 0.15 * height)
        base, cap = statistics.median(bottoms), statistics.median(tops)
        aligned = max(sum(abs(v - base) <= tol for v in bottoms), sum(abs(v - cap) <= tol for v in tops))
        if aligned < max(2, 0.6 * len(sel)):
            continue
        bx0, bx1 = int(left[sel].min()), int(right[sel].max())
        boxes.append(((bx0, int(by0), bx1 - bx0, int(by1) - int(by0)), round(height)))
    return boxes


def _half(image: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The image at half the resolution (means of 2 x 2 blocks)."""
    rows, cols = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
    a = image[:rows, :cols].astype(np.uint16)
    total = a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]
    return ((total + 2) >> 2).astype(np.uint8)


def triage(
    display_u8: NDArray[np.uint8],
    *,
    stroke: int = 7,
    min_contrast: float = 16.0,
    noise_factor: float = 4.0,
    tile: int = 32,
    min_height: int = 5,
    max_height: int = 24,
    min_glyphs: int = 3,
    gap: float = 1.2,
    min_side: int = 256,
) -> list[Candidate]:
    """First stage: regions that look like rows of text, bright or dark.

    Thin strokes are what the white and black top-hats (:func:`tophats`) keep;
    a stroke counts where its response stands ``noise_factor`` times above the
    median response of its ``tile`` and the tiles around it (so speckle and
    noisy anatomy need more than a flat ground) and at least ``min_contrast``
    grey levels. Strokes
    join into components, components of glyph size and shape into rows with
    one baseline or top line. Large text is found the same way on the frame
    halved, and halved again, while its short side has ``min_side`` pixels.

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
        How many times its tile's median response a stroke needs.
    tile : int
        Side of the tiles the ground is measured in, in pixels.
    min_height, max_height : int
        Glyph heights, in pixels of each level, considered.
    min_glyphs : int
        Glyphs a row needs to be text.
    gap : float
        Largest gap between glyphs of a row, in glyph heights.
    min_side : int
        Smallest short side of a halved frame that is still searched.

    Returns
    -------
    list of Candidate
        Each text-like row's box ``(x, y, w, h)`` in frame pixels and polarity.

    Examples
    --------
    >>> triage(np.full((64, 64), 90, dtype=np.uint8))
    []
    """
    image = np.asarray(display_u8)
    if image.ndim != 2:
        raise ValueError("triage needs a 2D displayed frame")
    found: list[Candidate] = []
    scale = 1
    while True:
        for polarity, response in zip((BRIGHT, DARK), tophats(image, stroke=stroke)):
            side = min(tile, *response.shape)
            limit = _noise_floor(response, tile=side, factor=noise_factor, floor=min_contrast)
            mask = response > limit
            if not mask.any():
                continue  # the cheap exit of most text-free frames: nothing stands out of its ground
            comps = _components(mask, min_height=min_height, max_height=max_height)
            for (x, y, w, h), height in _rows(comps, min_glyphs=min_glyphs, gap=gap):
                found.append(Candidate((x * scale, y * scale, w * scale, h * scale), polarity, height * scale))
        # Large glyphs are found at a coarser level: the same search on the frame at half size.
        if min(image.shape) // 2 < min_side:
            break
        image = _half(image)
        scale *= 2
    return _join(found)


def _join(found: Sequence[Candidate], *, gap: float = 2.0) -> list[Candidate]:
    """Rows of one line joined: found in both polarities, at two levels or split at a wide gap.

    Two rows join when they overlap vertically by half the shorter one, their
    glyph heights differ by less than twice and the gap between them is at most
    ``gap`` glyph heights. Rows of different lines stay apart, even where their
    boxes overlap, so each is read at its own scale.
    """
    rows = sorted(found)
    changed = True
    while changed:
        changed = False
        out: list[Candidate] = []
        for c in rows:
            (x, y, w, h), pol, gh = c
            for i, o in enumerate(out):
                (ox, oy, ow, oh), opol, ogh = o
                overlap = min(y + h, oy + oh) - max(y, oy)
                spacing = max(x, ox) - min(x + w, ox + ow)
                if overlap >= 0.5 * min(h, oh) and max(gh, ogh) < 2 * min(gh, ogh) and spacing <= gap * max(gh, ogh):
                    x0, y0 = min(x, ox), min(y, oy)
                    x1, y1 = max(x + w, ox + ow), max(y + h, oy + oh)
                    out[i] = Candidate((x0, y0, x1 - x0, y1 - y0), pol | opol, max(gh, ogh))
                    changed = True
                    break
            else:
                out.append(c)
        rows = out
    return sorted(rows)


def _union(boxes: Sequence[Box]) -> list[Box]:
    """Union of overlapping boxes (what two displays or two lines found in one place)."""
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


class _Word(NamedTuple):
    """One word of Tesseract's TSV output; ``text`` lives only as long as the decision that reads it."""

    left: int
    top: int
    width: int
    height: int
    confidence: float
    text: str


def _tesseract(image: NDArray[np.uint8], *, psm: int) -> list[_Word]:
    """Every word Tesseract reads on ``image`` (one call, one core)."""
    exe = _require_ocr()
    env = dict(os.environ, OMP_THREAD_LIMIT="1")  # one core per call: the machine is shared
    proc = subprocess.run(
        [exe, "stdin", "stdout", "-l", "eng", "--psm", str(psm), "tsv"],
        input=_pgm(np.asarray(image, dtype=np.uint8)),
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise OcrFailedError(f"Tesseract OCR failed with exit status {proc.returncode}")
    words: list[_Word] = []
    for line in proc.stdout.decode("utf-8", "replace").splitlines()[1:]:
        cells = line.split("\t")
        if len(cells) < 12 or cells[0] != "5" or not cells[11].strip():
            continue
        left, top, width, height = (int(c) for c in cells[6:10])
        words.append(_Word(left, top, width, height, float(cells[10]), cells[11].strip()))
    return words


def ocr_tokens(display_u8: NDArray[np.uint8], *, psm: int = 11) -> list[str]:
    """Every word Tesseract reads on a displayed frame.

    For checks only (a test verifying that redaction left nothing readable):
    the pipeline never calls it, and its result must not be logged or stored.
    """
    return [word.text for word in _tesseract(display_u8, psm=psm)]


def _strip(response: NDArray[np.uint8], *, scale: float, min_contrast: float = 16.0) -> NDArray[np.uint8]:
    """A crop's top-hat response as black strokes on white, resized ``scale`` times, for Tesseract.

    The strokes' own typical response is the black level, so a faint row next
    to a bright edge is as dark as the edge.
    """
    ground = float(np.median(response))
    strokes = response[response > max(min_contrast, 3.0 * ground)]
    hi = float(np.median(strokes)) if strokes.size else float(response.max())
    stretched = to_uint8(response, (hi if hi > 0 else 1.0, 0.0))  # reversed window: strokes dark
    if scale != 1.0:
        stretched = np.asarray(np.clip(ndimage.zoom(stretched.astype(np.float32), scale, order=1), 0, 255), dtype=np.uint8)
    return stretched




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


def _alnum(text: str) -> int:
    return sum(ch.isascii() and ch.isalnum() for ch in text)


def confirm(
    display_u8: NDArray[np.uint8],
    rows: Sequence[Candidate],
    *,
    margin: int = 4,
    text_height: int = 32,
    min_confidence: float = 0.0,
    min_chars: int = 4,
    stroke: int = 7,
) -> list[Box]:
    """Second stage: the rows in which OCR reads text.

    Each row is cropped with ``margin`` (and a glyph's width at either end),
    its strokes of the row's polarity kept (a top-hat), stretched so they are
    black on white and resized so its glyphs are ``text_height`` pixels tall;
    one Tesseract call reads every row of the frame, stacked on one sheet. A
    row is text when its words of about that height (each of two letters or
    digits at least) hold ``min_chars`` letters and digits.

    Parameters
    ----------
    display_u8 : ndarray of uint8, 2D
        The frame as displayed.
    rows : sequence of Candidate
        Rows from :func:`triage`.
    margin : int
        Pixels added around each row before reading.
    text_height : int
        Height, in pixels, each row's text is resized to.
    min_confidence : float
        Tesseract word confidence (0–100) a word needs to count.
    min_chars : int
        Letters or digits a row needs, over its words of text height.
    stroke : int
        Smallest side of the top-hat's square (grown with the row's height).

    Returns
    -------
    list of Box
        Each confirmed row's box, grown to hold the words OCR found in it.
        What OCR read is not returned.

    Raises
    ------
    OcrUnavailableError
        When Tesseract is not installed.
    OcrFailedError
        When Tesseract exits with an error.
    """
    image = np.asarray(display_u8, dtype=np.uint8)
    n_rows, n_cols = image.shape
    strips: list[NDArray[np.uint8]] = []
    placed: list[tuple[int, int, int, float]] = []  # per strip: its row, the crop's x and y, the scale
    for index, ((x, y, w, h), polarity, glyph) in enumerate(rows):
        glyph = max(glyph, 1)
        pad_y = max(margin, glyph // 3)
        pad_x = max(margin, glyph)  # a row the first stage cut short still reads whole
        x0, y0 = max(0, x - pad_x), max(0, y - pad_y)
        crop = image[y0 : min(n_rows, y + h + pad_y), x0 : min(n_cols, x + w + pad_x)]
        if crop.size == 0:
            continue
        size = max(stroke, (glyph // 6) * 2 + 1)  # strokes of large text are wide too
        scale = float(np.clip(text_height / glyph, 0.25, 6.0))
        for bit, response in zip((BRIGHT, DARK), tophats(crop, stroke=size)):
            if polarity & bit:
                strips.append(_strip(response, scale=scale))
                placed.append((index, x0, y0, scale))
    if not strips:
        return []
    pad = 32  # white between strips: Tesseract takes each for a block of its own
    sheet, spans = _sheet(strips, pad=pad)
    per_strip: list[list[_Word]] = [[] for _ in strips]
    for word in _tesseract(sheet, psm=11):
        centre = word.top + word.height / 2.0
        for s, (start, stop) in enumerate(spans):
            if start <= centre < stop:
                per_strip[s].append(word)
                break
    chars = np.zeros(len(rows), dtype=np.int64)
    extents: list[list[Box]] = [[row.box] for row in rows]
    for s, words in enumerate(per_strip):
        counted = _text_words(words, text_height=text_height, min_confidence=min_confidence)
        index, x0, y0, scale = placed[s]
        chars[index] = max(chars[index], sum(_alnum(word.text) for word in counted))
        # What OCR read past the row's ends (a first letter the first stage lost) is blanked too.
        extents[index] += [
            (
                x0 + int((word.left - pad) / scale),
                y0 + int((word.top - spans[s][0] - pad) / scale),
                int(np.ceil(word.width / scale)) + 1,
                int(np.ceil(word.height / scale)) + 1,
            )
            for word in counted
        ]
    return [_hull(extents[i], shape=image.shape) for i, n in enumerate(chars) if n >= min_chars]


def _hull(boxes: Sequence[Box], *, shape: tuple[int, ...]) -> Box:
    """The smallest box holding ``boxes``, clipped to a ``(rows, cols)`` frame."""
    x0 = max(0, min(b[0] for b in boxes))
    y0 = max(0, min(b[1] for b in boxes))
    x1 = min(int(shape[1]), max(b[0] + b[2] for b in boxes))
    y1 = min(int(shape[0]), max(b[1] + b[3] for b in boxes))
    return (int(x0), int(y0), int(x1 - x0), int(y1 - y0))


def _text_words(words: Sequence[_Word], *, text_height: int, min_confidence: float) -> list[_Word]:
    """The words that read as text of the height their strip was made for.

    Single characters, and words much taller or shorter than the glyphs, are
    what Tesseract makes of speckle and edges. Its confidence says little here:
    identifiers and names are not in its dictionary, so it stays low for them.
    """
    return [
        word
        for word in words
        if _alnum(word.text) >= 2 and word.confidence >= min_confidence and 0.5 * text_height <= word.height <= 2.0 * text_height
    ]


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
    return Detection(boxes=tuple(_union(confirmed)), triaged=triaged, ocr_ran=triaged > 0)


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


def text_boxes(frame: NDArray[np.generic], *, modality: str, photometric: str) -> tuple[Box, ...]:
    """The text boxes of one frame (:func:`detect`); without Tesseract, every row the first stage flags.

    Without OCR a flagged row cannot be cleared, so it counts as text.
    """
    try:
        return detect(frame, modality=modality, photometric=photometric).boxes
    except OcrUnavailableError:
        views = _views(frame, modality=modality, photometric=photometric)
        return tuple(_union([row.box for view in views for row in triage(view)]))


def frames_with_text(frames: NDArray[np.generic], *, modality: str, photometric: str) -> int:
    """How many frames of ``(k, rows, cols[, 3])`` carry text (a count: nothing read is kept)."""
    return sum(bool(text_boxes(frames[k], modality=modality, photometric=photometric)) for k in range(frames.shape[0]))
