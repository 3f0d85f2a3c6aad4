"""Labelled figures as PNG bytes: matplotlib on its Agg canvas, no display, no global state.

One owner for how medaug draws a figure (the policy preview's contact sheet, the audit
report's parameter plots, thumbnails and label outlines). Figures are made with
:class:`matplotlib.figure.Figure` and :class:`~matplotlib.backends.backend_agg.FigureCanvasAgg`
directly, so nothing selects a backend for the process or opens a window, and the settings
that shape the output are fixed here rather than taken from a user's ``matplotlibrc``.

The bytes are deterministic: the PNG carries no ``Software`` text and no date, and the
same figure gives the same bytes.

Examples
--------
>>> import numpy as np
>>> data = grey_png(np.arange(12, dtype=np.uint8).reshape(3, 4))
>>> data[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
True
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.typing import RcKeyType
from numpy.typing import NDArray
from PIL import Image

#: Settings every figure is drawn with, whatever the user's matplotlibrc says.
STYLE: dict[RcKeyType, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "image.interpolation": "nearest",
    "svg.hashsalt": "medaug",
    "path.simplify": False,
}

#: Dots per inch of every figure (sizes in inches × DPI = pixels).
DPI = 100


@contextmanager
def style() -> Iterator[None]:
    """Draw inside this context: :data:`STYLE` over matplotlib's defaults, not the user's."""
    with matplotlib.rc_context():
        matplotlib.rcdefaults()  # a user's matplotlibrc must not change what an auditor sees
        with matplotlib.rc_context(rc=STYLE):
            yield


def new_figure(width_px: int, height_px: int) -> Figure:
    """A white figure of ``width_px × height_px`` pixels on an Agg canvas (call inside :func:`style`)."""
    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Figure) -> bytes:
    """PNG bytes of ``fig`` at :data:`DPI`, without metadata (no software name, no date)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def grey_png(pixels: NDArray[np.uint8]) -> bytes:
    """PNG bytes of an ``(h, w)`` grey or ``(h, w, 3)`` RGB uint8 image, pixel for pixel.

    Raises
    ------
    ValueError
        Another dtype or shape, or an empty image.
    """
    arr = np.asarray(pixels)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3) or arr.size == 0:
        raise ValueError("grey_png takes a non-empty (h, w) or (h, w, 3) uint8 array")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG")
    return buf.getvalue()


#: Outline colour of segment n (cycled): distinct on grey, none of them the bound red.
SEGMENT_COLOURS = ("#ffd700", "#00e5ff", "#ff00ff", "#7fff00", "#ff8c00", "#1e90ff")


def outlined_slices_png(
    panels: Sequence[tuple[str, NDArray[np.uint8], NDArray[np.bool_]]], *, aspect: float = 1.0, panel_px: int = 280,
) -> bytes:
    """Grey slices side by side, each with the outline of every segment on it, as PNG bytes.

    Parameters
    ----------
    panels : sequence of (title, slice, masks)
        ``slice`` an ``(h, w)`` uint8 image; ``masks`` ``(nseg, h, w)`` booleans on its grid.
    aspect : float
        Height over width of one pixel (row spacing over column spacing).
    panel_px : int
        Width of one panel in pixels.

    Examples
    --------
    >>> image = np.zeros((8, 8), dtype=np.uint8); mask = np.zeros((1, 8, 8), dtype=bool); mask[0, 2:6, 2:6] = True
    >>> outlined_slices_png([("variant 1", image, mask)])[:4] == b"\x89PNG"
    True
    """
    from matplotlib.lines import Line2D

    segments = max((len(masks) for _, _, masks in panels), default=0)
    with style():
        fig = new_figure(panel_px * max(1, len(panels)), panel_px + 40)
        for n, (title, image, masks) in enumerate(panels):
            ax = fig.add_subplot(1, max(1, len(panels)), n + 1)
            ax.imshow(image, cmap="gray", vmin=0, vmax=255, aspect=aspect)
            for s, mask in enumerate(masks):
                if mask.any():
                    ax.contour(mask.astype(np.float32), levels=[0.5], colors=[SEGMENT_COLOURS[s % len(SEGMENT_COLOURS)]],
                               linewidths=1.5)
            ax.set_title(title)
            ax.set_xticks([])
            ax.set_yticks([])
        handles = [Line2D([0], [0], color=SEGMENT_COLOURS[s % len(SEGMENT_COLOURS)], lw=2) for s in range(segments)]
        if handles:
            fig.legend(handles, [f"segment {s + 1}" for s in range(segments)], loc="lower center", ncol=len(handles),
                       frameon=False)
        fig.subplots_adjust(left=0.02, right=0.98, top=0.9, bottom=0.12, wspace=0.05)
        return figure_png(fig)


__all__ = ["DPI", "SEGMENT_COLOURS", "STYLE", "figure_png", "grey_png", "new_figure", "outlined_slices_png", "style"]
