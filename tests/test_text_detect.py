"""Burned-in text detection (medaug.deid.text_detect) on frames with planted, made-up text."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

import medaug.deid.text_detect as td
from fixtures.burned_text import BurnedImage, Planted, fonts_available, text_free_images, text_images
from medaug.deid.text_detect import BRIGHT, Candidate, Detection, OcrUnavailableError, detect, displayed, redact, triage
from tests.conftest import external

SEED = 20261201

pytestmark = pytest.mark.skipif(not fonts_available(), reason="fonts-dejavu-core not installed")


def _hit(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _frames(images: list[BurnedImage]) -> list[tuple[BurnedImage, int, Any, list[Planted]]]:
    return [
        (image, f, frame, [p for p in image.planted if p.frame == f])
        for image in images
        for f, frame in enumerate(image.frames())
    ]


@pytest.fixture(scope="module")
def planted() -> list[tuple[BurnedImage, int, Any, list[Planted]]]:
    return _frames(text_images(SEED, per_kind=3))


@pytest.fixture(scope="module")
def text_free() -> list[BurnedImage]:
    return text_free_images(SEED, count=100)


@pytest.fixture(scope="module")
def detections(planted: list[tuple[BurnedImage, int, Any, list[Planted]]]) -> list[Detection]:
    external("tesseract")
    return [detect(frame, modality=im.modality, photometric=im.photometric) for im, _, frame, _ in planted]


@pytest.fixture(scope="module")
def free_detections(text_free: list[BurnedImage]) -> list[Detection]:
    external("tesseract")
    return [detect(im.pixels, modality=im.modality, photometric=im.photometric) for im in text_free]


# --------------------------------------------------------------------------- display


def test_displayed_inverts_monochrome1_and_reduces_colour() -> None:
    ramp = np.arange(16, dtype=np.uint16).reshape(4, 4)
    mono2 = displayed(ramp, modality="CR", photometric="MONOCHROME2", window=(0.0, 15.0))
    mono1 = displayed(ramp, modality="CR", photometric="MONOCHROME1", window=(0.0, 15.0))
    assert np.array_equal(mono1.astype(int), 255 - mono2.astype(int))
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[..., 1] = 255
    assert displayed(rgb, modality="US", photometric="RGB")[0, 0] == round(0.587 * 255)
    ct = displayed(np.array([[-1000, 400]], dtype=np.int16), modality="CT", photometric="MONOCHROME2")
    assert ct.tolist() == [[0, 255]]
    with pytest.raises(ValueError, match="photometric"):
        displayed(ramp, modality="MR", photometric="NOT-A-KIND")


def test_planted_strings_are_deterministic_and_distinct() -> None:
    a, b = text_images(SEED, per_kind=1), text_images(SEED, per_kind=1)
    assert all(np.array_equal(x.pixels, y.pixels) and x.planted == y.planted for x, y in zip(a, b))
    texts = [p.text for im in text_images(SEED, per_kind=3) for p in im.planted]
    assert len(texts) >= 30


# --------------------------------------------------------------------------- stage 1 (no OCR)


def test_triage_flags_every_planted_string(planted: list[tuple[BurnedImage, int, Any, list[Planted]]]) -> None:
    missed = []
    for im, f, frame, strings in planted:
        boxes = [r.box for view in td._views(frame, modality=im.modality, photometric=im.photometric) for r in triage(view)]
        missed += [(im.kind, f, p.box) for p in strings if not any(_hit(b, p.box) for b in boxes)]
    assert missed == []


def test_triage_is_quiet_on_text_free_frames(text_free: list[BurnedImage]) -> None:
    # Speckle, anatomy edges and the sector's rim are not rows of glyphs: OCR is rarely asked.
    flagged = [im.kind for im in text_free
               if any(triage(v) for v in td._views(im.pixels, modality=im.modality, photometric=im.photometric))]
    assert len(flagged) <= 0.01 * len(text_free)


def test_tophats_equal_scipy_grey_morphology_of_the_edge_padded_frame() -> None:
    from scipy import ndimage

    image = np.random.default_rng(SEED).integers(0, 256, size=(37, 53), dtype=np.uint8)
    for stroke in (3, 7, 10):
        white, black = td.tophats(image, stroke=stroke)
        r = stroke - 1
        padded = np.pad(image, r, mode="edge")
        inner = (slice(r, -r), slice(r, -r))
        assert np.array_equal(white, ndimage.white_tophat(padded, size=(stroke, stroke))[inner])
        assert np.array_equal(black, ndimage.black_tophat(padded, size=(stroke, stroke))[inner])


def test_components_of_sparse_and_dense_masks_are_scipy_labels() -> None:
    from scipy import ndimage

    rng = np.random.default_rng(SEED)
    for density in (0.005, 0.03, 0.2, 0.6):  # below and above the switch to raster labelling
        mask = rng.random((61, 83)) < density
        idx, label, count = td._labelled_pixels(mask)
        reference, ref_count = ndimage.label(mask)
        assert count == ref_count and np.array_equal(idx, np.flatnonzero(mask))
        pairs = set(zip(label.tolist(), reference.ravel()[idx].tolist()))
        assert len(pairs) == count  # one reference label per label and the reverse: the same partition


def test_large_text_is_found_at_a_coarser_level() -> None:
    from PIL import Image, ImageDraw, ImageFont

    from fixtures.burned_text import FONT_DIR

    canvas = Image.new("L", (1024, 1024), 20)
    font = ImageFont.truetype(str(FONT_DIR / "DejaVuSans-Bold.ttf"), 64)
    ImageDraw.Draw(canvas).text((40, 40), "QXZ 4711", fill=230, font=font)
    frame = np.asarray(canvas)
    assert triage(frame, min_side=10**6) == []  # glyphs taller than max_height at full size
    rows = triage(frame)
    whole = [r for r in rows if r.height > 24 and r.box[2] > 300]  # the line, found at half size
    assert whole and whole[0].polarity & BRIGHT
    external("tesseract")
    assert any(_hit(b, whole[0].box) for b in td.confirm(frame, rows))


def test_triage_is_quiet_on_blank_frames() -> None:
    flat = np.full((512, 512), 90, dtype=np.uint8)
    assert triage(flat) == []


# --------------------------------------------------------------------------- both stages

def _recall(planted: list[tuple[BurnedImage, int, Any, list[Planted]]], detections: list[Detection]) -> float:
    total = found = 0
    for (_, _, _, strings), d in zip(planted, detections):
        for p in strings:
            total += 1
            found += any(_hit(b, p.box) for b in d.boxes)
    return found / total


def test_every_planted_string_is_detected(planted: list[tuple[BurnedImage, int, Any, list[Planted]]], detections: list[Detection]) -> None:
    assert _recall(planted, detections) == 1.0


def test_grey_text_free_frames_are_rarely_flagged(text_free: list[BurnedImage], free_detections: list[Detection]) -> None:
    grey = [d for im, d in zip(text_free, free_detections) if im.kind != "us"]
    assert sum(bool(d.boxes) for d in grey) <= 0.01 * len(grey) + 1e-9


def test_text_free_frames_at_most_one_percent_flagged(free_detections: list[Detection]) -> None:
    assert sum(bool(d.boxes) for d in free_detections) <= 0.01 * len(free_detections)


def _tokens(text: str) -> set[str]:
    return {t.upper() for t in re.split(r"[^0-9A-Za-z]+", text) if len(t) >= 4}


def test_redacted_text_is_unreadable(planted: list[tuple[BurnedImage, int, Any, list[Planted]]], detections: list[Detection]) -> None:
    checked = 0
    for (im, _, frame, strings), d in zip(planted, detections):
        found = [p for p in strings if any(_hit(b, p.box) for b in d.boxes)]
        if not found:
            continue
        fill = np.asarray(frame).reshape(-1, 3).min(axis=0) if np.asarray(frame).ndim == 3 else np.asarray(frame).min()
        clean = redact(frame, d.boxes, margin=3, fill=fill.tolist())
        read = {t.upper() for t in td.ocr_tokens(displayed(clean, modality=im.modality, photometric=im.photometric))}
        joined = " ".join(read)
        for p in found:
            assert not any(t in joined for t in _tokens(p.text)), f"a redacted string of a {im.kind} frame is still readable"
            checked += 1
    assert checked >= 20


def test_detection_returns_no_text(planted: list[tuple[BurnedImage, int, Any, list[Planted]]], detections: list[Detection]) -> None:
    for (_, _, _, strings), d in zip(planted, detections):
        shown = repr(d) + str(d.boxes)
        assert not any(t in shown.upper() for p in strings for t in _tokens(p.text))
        assert all(isinstance(v, int) for b in d.boxes for v in b)
        assert isinstance(d.triaged, int) and isinstance(d.ocr_ran, bool)
        assert set(vars(d)) == {"boxes", "triaged", "ocr_ran"}


def test_missing_tesseract_names_the_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(td.shutil, "which", lambda name: None)
    td.ocr_available.cache_clear()
    try:
        assert not td.ocr_available()
        with pytest.raises(OcrUnavailableError, match="tesseract-ocr tesseract-ocr-eng"):
            td.confirm(np.zeros((32, 32), dtype=np.uint8), [Candidate((2, 2, 20, 10), BRIGHT, 10)])
    finally:
        td.ocr_available.cache_clear()


# --------------------------------------------------------------------------- redaction


def test_redact_fills_grown_clipped_boxes_and_is_deterministic() -> None:
    mono = np.arange(100, dtype=np.int16).reshape(10, 10)
    out = redact(mono, [(8, 8, 5, 5), (2, 2, 1, 1)], margin=1, fill=-5)
    assert out is not mono and out.dtype == mono.dtype and mono[9, 9] == 99
    assert (out[7:, 7:] == -5).all() and (out[1:4, 1:4] == -5).all()
    assert int((out == -5).sum()) == 9 + 9
    assert np.array_equal(out, redact(mono, [(8, 8, 5, 5), (2, 2, 1, 1)], margin=1, fill=-5))
    rgb = np.full((6, 6, 3), 200, dtype=np.uint8)
    out_rgb = redact(rgb, [(0, 0, 2, 2)], margin=0, fill=(1, 2, 3))
    assert out_rgb[0, 0].tolist() == [1, 2, 3] and out_rgb[3, 3].tolist() == [200, 200, 200]
