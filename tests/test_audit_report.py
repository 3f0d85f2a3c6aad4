"""`medaug audit report`: a self-contained HTML page of a real run, rendered in headless Chromium and read by OCR."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medaug.audit.chain import read_lines
from medaug.audit.report import PLOT_SIZE, Series, plot_png
from medaug.cli import EXIT_QUARANTINED, main
from tests.conftest import external

REPO = Path(__file__).resolve().parents[1]
POLICY = REPO / "policies" / "ct-chest-conservative.yaml"


@pytest.fixture(scope="module")
def run_dir(archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    assert main(["keygen", str(root / "key")]) == 0
    out = root / "out"
    code = main(["run", str(POLICY), str(archive), str(out), "--key", str(root / "key"), "--workers", "1"])
    assert code == EXIT_QUARANTINED
    return out


@pytest.fixture(scope="module")
def report(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("html") / "report.html"
    assert main(["audit", "report", str(run_dir), "-o", str(out)]) == 0
    return out


def _cell(page: str, label: str) -> str:
    match = re.search(rf"<td>{re.escape(label)}</td><td>([^<]*)</td>", page)
    assert match, label
    return match.group(1)


def test_report_holds_counts_policy_and_verification(run_dir: Path, report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    counts = manifest["counts"]
    assert _cell(page, "input files") == str(counts["inputs"])
    assert _cell(page, "files written") == str(counts["files_written"])
    assert _cell(page, "files quarantined") == str(sum(counts["quarantined"].values()))
    assert _cell(page, "content SHA-256") == manifest["policy"]["sha256"]
    assert _cell(page, "approval binds this content") == "yes"
    assert 'class="pass">PASS<' in page
    records = [json.loads(line) for line in read_lines(run_dir / "audit" / "log.jsonl")]
    ct_series = sum(1 for r in records if r["type"] == "series" and r["modality"] == "CT")
    assert f"<tr><td>CT</td><td>{ct_series}</td>" in page
    for reason, n in counts["quarantined"].items():
        assert f"<tr><td>{reason}</td><td>{n}</td><td>{n}</td></tr>" in page


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _ocr(png: Path) -> str:
    tesseract = external("tesseract")
    return subprocess.run([tesseract, str(png), "-"], capture_output=True, text=True, check=True, timeout=120).stdout


def test_report_is_self_contained_with_plots_and_thumbnails(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and "url(" not in page and "<script" not in page
    assert all(src.startswith("data:image/png;base64,") for src in re.findall(r'src="([^"]*)"', page))
    plots = re.findall(r'<img class="plot" alt="([^"]*)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    titles = [alt for alt, _ in plots]
    assert len(plots) == 6
    for title in ("Rotation angle", "Tilt angles", "largest control-point displacement", "Jacobian", "Intensity shift"):
        assert any(title in t for t in titles), title
    assert "Rotation angle (in plane) [degrees]" in titles
    for _, data in plots:
        img = _png(base64.b64decode(data))
        assert img.shape == (PLOT_SIZE[1], PLOT_SIZE[0], 3)
    # Every realised angle lies within the ±5° bound: no red cross, so the legend has no "beyond bound".
    rotation = _png(base64.b64decode(plots[0][1]))
    assert "beyond" not in _ocr_bytes(rotation)
    thumbs = re.findall(r'<figure><img alt="middle slice" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert 1 <= len(thumbs) <= 8
    assert _png(base64.b64decode(thumbs[0])).std() > 10  # an image, not a flat square


def _ocr_bytes(img: np.ndarray) -> str:
    tesseract = external("tesseract")
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return subprocess.run([tesseract, "-", "-"], input=buf.getvalue(), capture_output=True, check=True, timeout=120).stdout.decode()


def test_report_shows_a_failed_verification(run_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(run_dir, tmp_path / "out"))
    log = copy / "audit" / "log.jsonl"
    lines = read_lines(log)
    del lines[3]
    log.write_text("\n".join(lines) + "\n", encoding="ascii")
    out = tmp_path / "r.html"
    assert main(["audit", "report", str(copy), "-o", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert 'class="fail">FAIL<' in page
    assert "<tr><td>chain</td><td>fail</td></tr>" in page


def test_plot_marks_values_beyond_bounds_and_labels_its_axes(tmp_path: Path) -> None:
    png = plot_png("Rotation", [Series("degrees", [1.0, 7.0, -9.0, 2.0], "#1f77b4")],
                   bounds=[(5.0, "+max"), (-5.0, "-max")], unit="degrees")
    img = _png(png)
    assert img.shape == (PLOT_SIZE[1], PLOT_SIZE[0], 3)
    red = (img[..., 0] > 150) & (img[..., 1] < 90) & (img[..., 2] < 90)
    assert red.sum() > 100  # bound lines and the two crosses
    assert png == plot_png("Rotation", [Series("degrees", [1.0, 7.0, -9.0, 2.0], "#1f77b4")],
                           bounds=[(5.0, "+max"), (-5.0, "-max")], unit="degrees")  # deterministic bytes
    (tmp_path / "p.png").write_bytes(png)
    words = _ocr(tmp_path / "p.png")
    for word in ("Rotation", "variant", "degrees", "beyond", "max"):
        assert word in words, word
    (tmp_path / "e.png").write_bytes(plot_png("Empty", [Series("a", [], "#000")]))
    assert "no values" in _ocr(tmp_path / "e.png")


def test_report_renders_in_chromium(report: Path, tmp_path: Path) -> None:
    chromium = external("chromium")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={shot}", "--window-size=1400,3000", report.as_uri()],
        check=True, capture_output=True, timeout=180,
    )
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (3000, 1400)
    ink = np.any(pixels < 200, axis=-1)
    assert 0.02 < ink.mean() < 0.6  # text, tables and plots, neither blank nor a solid block
    # The PASS badge's green and the plots' red bound lines are both on the page.
    green = (pixels[..., 1] > 100) & (pixels[..., 0] < 80) & (pixels[..., 2] < 80)
    assert green.sum() > 200
    # What the auditor reads: section titles and the plots' axis labels and units.
    words = _ocr(shot)
    for word in ("Verification", "Realised parameters", "variant", "degrees", "mm", "Jacobian"):
        assert word in words, word


def _colour(img: np.ndarray, hex_colour: str, tol: int = 40) -> np.ndarray:
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return np.all(np.abs(img.astype(int) - rgb) <= tol, axis=-1)


def test_outlines_are_drawn_on_the_segment_boundary() -> None:
    from medaug.figures import SEGMENT_COLOURS, outlined_slices_png

    image = np.zeros((40, 40), dtype=np.uint8)
    image[10:30, 14:26] = 200
    masks = np.zeros((2, 40, 40), dtype=bool)
    masks[0, 10:30, 14:26] = True  # segment 1 is the grey block; segment 2 is empty
    png = outlined_slices_png([("variant 1", image, masks)])
    assert png == outlined_slices_png([("variant 1", image, masks)])  # deterministic bytes
    img = _png(png)[: int(0.85 * _png(png).shape[0])]  # above the legend (which shows both colours)
    outline = _colour(img, SEGMENT_COLOURS[0])
    block = np.all(np.abs(img.astype(int) - 200) <= 2, axis=-1)
    assert outline.sum() > 100 and block.sum() > 1000
    (r0, r1), (c0, c1) = [(int(v.min()), int(v.max())) for v in np.nonzero(outline)]
    near = np.zeros_like(block)  # the title's anti-aliased text has greys too
    near[max(0, r0 - 10):r1 + 10, max(0, c0 - 10):c1 + 10] = True
    (b0, b1), (d0, d1) = [(int(v.min()), int(v.max())) for v in np.nonzero(block & near)]
    # The outline runs along the block's edge (a line 1.5 points wide), on every side.
    assert max(abs(r0 - b0), abs(r1 - b1), abs(c0 - d0), abs(c1 - d1)) <= 4
    assert not _colour(img, SEGMENT_COLOURS[1]).any()  # an empty segment has no outline


def test_report_shows_a_variant_slice_with_its_label_outline(run_dir: Path, report: Path) -> None:
    from medaug.figures import SEGMENT_COLOURS

    page = report.read_text(encoding="utf-8")
    assert "<h2>Labels on their variants</h2>" in page
    figures = re.findall(r'<figure class="outline"><img alt="label outline" src="data:image/png;base64,([A-Za-z0-9+/=]+)">'
                         r"<figcaption>([^<]*)<code>(label-\d+\.dcm)</code>", page)
    assert 1 <= len(figures) <= 2
    for data, caption, name in figures:
        img = _png(base64.b64decode(data))
        assert caption.startswith("CT · slice")
        # Two panels (the original and the variant), each with both segments' outlines.
        for colour in SEGMENT_COLOURS[:2]:
            _, cols = np.nonzero(_colour(img, colour))
            assert (cols < img.shape[1] // 2).any() and (cols > img.shape[1] // 2).any(), (name, colour)
    assert "segment 1" in _ocr_bytes(_png(base64.b64decode(figures[0][0])))
