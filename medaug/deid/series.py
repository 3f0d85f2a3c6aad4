"""De-identify a whole series: its pixels (burned-in regions and text) and every header, with one key.

The one place a series is made safe; ``medaug run`` and ``medaug policy preview``
both call :func:`deidentify_series`, so a preview shows exactly what a run writes.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from numpy.typing import NDArray
from pydicom.dataset import Dataset

from medaug.deid import burned_in, text_detect
from medaug.deid.engine import deidentify
from medaug.deid.keys import Key
from medaug.deid.options import DeidOptions
from medaug.errors import DeidentificationError
from medaug.ingest.image import SeriesImage


def deidentify_series(image: SeriesImage, options: DeidOptions, key: Key) -> SeriesImage:
    """The series de-identified: burned-in regions blanked per the options' rules, headers cleaned.

    Parameters
    ----------
    image : SeriesImage
        The series as ingested (headers without Pixel Data, pixels in ``data``).
    options : DeidOptions
        Profile options, safe private list and burned-in rules.
    key : Key
        The secret key of the keyed pseudonyms.

    Returns
    -------
    SeriesImage
        A new image; the input is not changed.

    Raises
    ------
    DeidentificationError
        When an image cannot be made safe (burned-in annotation without a matching rule, ...).
    """
    data = image.data
    headers: list[Dataset] = []
    # Blanked regions take the lowest storable value, in the units the data is held in.
    fill = image.stored_range[0] if image.is_colour else image.modality_range[0]
    rules = [burned_in.assess(_with_pixel_marker(header), options) for header in image.headers]
    changed = [rule is not None for rule in rules]
    for k, rule in enumerate(rules):
        if rule is not None:
            frames = slice(None) if image.multiframe else slice(k, k + 1)
            data = data.copy() if data is image.data else data
            data[frames] = burned_in.blank(data[frames], rule.regions, fill=fill, colour=image.is_colour)
    # Every frame is looked at, whatever the flag says: text found is quarantined or redacted.
    data, redacted = _burned_in_text(image, data, options, fill=fill)
    for k, _boxes in redacted:
        changed[0 if image.multiframe else k] = True
    for k, header in enumerate(image.headers):
        clean, _report = deidentify(copy.deepcopy(header), options, key, pixels_cleaned=changed[k])
        # Every frame was looked at and holds no text now (what was found was redacted).
        clean.BurnedInAnnotation = "NO"
        headers.append(clean)
    return replace(image, headers=tuple(headers), data=data, redactions=tuple(redacted))


def _burned_in_text(
    image: SeriesImage, data: NDArray[Any], options: DeidOptions, *, fill: float
) -> tuple[NDArray[Any], list[tuple[int, tuple[tuple[int, int, int, int], ...]]]]:
    """Detect text on every frame; quarantine or redact as the options say. Returns ``(frame, boxes blanked)``.

    Raises
    ------
    DeidentificationError
        ``burned-in-text`` (the frame number and box count, never what was read) under ``quarantine``.
    """
    redacted: list[tuple[int, tuple[tuple[int, int, int, int], ...]]] = []
    for k in range(data.shape[0]):
        found = text_detect.text_boxes(data[k], modality=image.modality, photometric=image.photometric)
        if not found:
            continue
        if options.burned_in_text != "redact":
            raise DeidentificationError("burned-in-text", f"frame {k + 1}: {len(found)} text region(s) in the pixels")
        data = data.copy() if data is image.data else data
        data[k] = text_detect.redact(data[k], found, margin=options.text_margin, fill=fill)
        shape = data.shape[1:3]
        redacted.append((k, tuple(text_detect.grown(found, margin=options.text_margin, shape=shape))))
    return data, redacted


def _with_pixel_marker(header: Dataset) -> Dataset:
    """The header as the burned-in check must see it: an image with pixels.

    Ingest strips Pixel Data from headers; the pixels are in the series' array.
    """
    marked = Dataset()
    marked.update(header)
    marked.PixelData = b""
    return marked
