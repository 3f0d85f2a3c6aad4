"""De-identify a whole series: its pixels (burned-in regions) and every header, with one key.

The one place a series is made safe; ``medaug run`` and ``medaug policy preview``
both call :func:`deidentify_series`, so a preview shows exactly what a run writes.
"""

from __future__ import annotations

import copy
from dataclasses import replace

from pydicom.dataset import Dataset

from medaug.deid import burned_in
from medaug.deid.engine import deidentify
from medaug.deid.keys import Key
from medaug.deid.options import DeidOptions
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
    for k, header in enumerate(image.headers):
        rule = burned_in.assess(_with_pixel_marker(header), options)
        if rule is not None:
            frames = slice(None) if image.multiframe else slice(k, k + 1)
            data = data.copy() if data is image.data else data
            data[frames] = burned_in.blank(data[frames], rule.regions, fill=fill, colour=image.is_colour)
        clean, _report = deidentify(copy.deepcopy(header), options, key, pixels_cleaned=rule is not None)
        headers.append(clean)
    return replace(image, headers=tuple(headers), data=data)


def _with_pixel_marker(header: Dataset) -> Dataset:
    """The header as the burned-in check must see it: an image with pixels.

    Ingest strips Pixel Data from headers; the pixels are in the series' array.
    """
    marked = Dataset()
    marked.update(header)
    marked.PixelData = b""
    return marked
