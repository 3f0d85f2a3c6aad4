"""Burned-in text through ``medaug run``: every frame is looked at, whatever the flag says.

A CT stack whose middle slice carries planted text (and says BurnedInAnnotation NO) is
quarantined as ``burned-in-text`` by default; under ``redact`` no planted string can be
read by Tesseract in any output, v0 or variant, and reruns give the same bytes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
import yaml

from fixtures.burned_text import burned_image, fonts_available
from medaug.cli import main
from medaug.display import CT_WINDOW, to_uint8
from tests.conftest import external
from tests.ingest_helpers import make_dataset, save

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def text_archive(tmp_path: Path) -> tuple[Path, list[str]]:
    if not fonts_available():
        pytest.skip("the DejaVu fonts are not installed (make tools)")
    rng = np.random.default_rng(7)
    image = burned_image("ct", rng=rng, texts=2)
    root = tmp_path / "arc"
    root.mkdir()
    plain = np.asarray(image.pixels).copy()
    for box in (p.box for p in image.planted):
        x, y, w, h = box
        plain[y : y + h, x : x + w] = plain[max(0, y - h) : y, x : x + w].mean()
    for n in range(4):
        pixels = image.pixels if n == 2 else plain
        ds = make_dataset((np.asarray(pixels, dtype=np.int16) + 1024).astype(np.uint16), ipp=(0.0, 0.0, 5.0 * n),
                          instance=n + 1, intercept=-1024.0)
        ds.BodyPartExamined = "CHEST"
        ds.BurnedInAnnotation = "NO"  # the flag is wrong, as it often is
        save(ds, root / f"{n}.dcm")
    return root, [p.text for p in image.planted]


def _policy(tmp_path: Path, action: str) -> Path:
    raw = yaml.safe_load((REPO / "policies" / "ct-chest-conservative.yaml").read_text())
    raw["deid"]["burned_in_text"] = action
    raw["deid"]["options"] = sorted(set(raw["deid"]["options"]) | {"clean_pixel_data"})
    path = tmp_path / f"{action}.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["policy", "approve", str(path), "--by", "A. Steward"]) == 0
    return path


def _ocr(path: Path, tmp: Path) -> str:
    ds = pydicom.dcmread(path)
    values = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    out = []
    for window in (CT_WINDOW, (float(values.min()), float(values.max()))):
        png = tmp / "ocr.pgm"
        img = to_uint8(values, window)
        png.write_bytes(b"P5 %d %d 255\n" % (img.shape[1], img.shape[0]) + img.tobytes())
        proc = subprocess.run([external("tesseract"), str(png), "-", "--psm", "11"], capture_output=True, text=True)
        out.append(proc.stdout)
    return "\n".join(out)


def test_text_in_the_pixels_quarantines_the_series_whatever_the_flag(text_archive: tuple[Path, list[str]],
                                                                    keyfile: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    external("tesseract")
    root, _planted = text_archive
    out = tmp_path / "out"
    assert main(["run", str(_policy(tmp_path, "quarantine")), str(root), str(out), "--key", str(keyfile),
                 "--workers", "1"]) == 3
    assert "burned-in-text" in capsys.readouterr().out
    assert not any((out / "dicom").rglob("*.dcm"))
    assert main(["audit", "verify", str(out)]) == 0


def test_redacted_text_cannot_be_read_in_any_output(text_archive: tuple[Path, list[str]], keyfile: Path,
                                                    tmp_path: Path) -> None:
    external("tesseract")
    root, planted = text_archive
    policy = _policy(tmp_path, "redact")
    outs = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert main(["run", str(policy), str(root), str(out), "--key", str(keyfile), "--workers", "1"]) == 0
        outs.append(out)
    files = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*.dcm"))
    assert files and all((outs[0] / f).read_bytes() == (outs[1] / f).read_bytes() for f in files)  # deterministic
    tokens = {t.upper() for text in planted for t in text.replace("^", " ").split() if len(t) >= 4}
    source_read = _ocr(root / "2.dcm", tmp_path).upper()
    assert [t for t in tokens if t in source_read], "the test is void: OCR cannot read the planted text at all"
    for f in files:
        path = outs[0] / f
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert ds.BurnedInAnnotation == "NO" and ds.PatientIdentityRemoved == "YES"
        read = _ocr(path, tmp_path).upper()
        assert not [t for t in tokens if t in read], f"{f}: a planted string is still readable"
    import json

    log = [json.loads(line) for line in (outs[0] / "audit" / "log.jsonl").read_text().splitlines()]
    redactions = [r for r in log if r["type"] == "redaction"]
    assert [r["slice"] for r in redactions] == [2] and redactions[0]["boxes"]
    redacted = [pydicom.dcmread(outs[0] / f, stop_before_pixels=True) for f in files]
    assert any("113101" in [i.CodeValue for i in d.DeidentificationMethodCodeSequence] for d in redacted)


def test_inspect_counts_and_scan_finds_text_in_pixels(text_archive: tuple[Path, list[str]], keyfile: Path,
                                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    external("tesseract")
    root, planted = text_archive
    capsys.readouterr()
    assert main(["inspect", str(root), "--text", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [s["frames_with_text"] for s in report["series"]] == [1]
    assert not [t for t in planted if t in json.dumps(report)]
    out = tmp_path / "out"
    assert main(["run", str(_policy(tmp_path, "redact")), str(root), str(out), "--key", str(keyfile), "--workers", "1"]) == 0
    capsys.readouterr()
    assert main(["audit", "scan", str(out), "--against", str(root)]) == 0  # the pixels are searched by default
    assert "pixels             : searched" in capsys.readouterr().out
    # A tool that did not redact: one output's pixels replaced by the source slice's.
    target = sorted((out / "dicom").rglob("*-v0/*.dcm"))[2]
    ds = pydicom.dcmread(target)
    ds.PixelData = pydicom.dcmread(root / "2.dcm").PixelData
    ds.save_as(target)
    assert main(["audit", "scan", str(out), "--against", str(root), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    number = sorted(p for p in out.rglob("*") if p.is_file() and "audit" not in p.relative_to(out).parts).index(target) + 1
    assert report["pixels_checked"] and [(h["file"], h["where"]) for h in report["hits"]] == [(number, "pixel data")]
    assert not [t for t in planted if t in json.dumps(report)]
    # Skipping the pixels on a huge dataset: no hit, and the report says the pixels were not looked at.
    assert main(["audit", "scan", str(out), "--against", str(root), "--no-pixels"]) == 0
    assert "pixels NOT checked" in capsys.readouterr().out


def test_scan_without_tesseract_refuses_to_call_the_pixels_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from medaug.deid import text_detect

    (tmp_path / "out").mkdir()
    (tmp_path / "arc").mkdir()
    monkeypatch.setattr(text_detect.shutil, "which", lambda name: None)
    text_detect.ocr_available.cache_clear()
    try:
        # The default searches the pixels: without Tesseract it stops (exit 2) rather than report clean.
        assert main(["audit", "scan", str(tmp_path / "out"), "--against", str(tmp_path / "arc")]) == 2
        err = capsys.readouterr().err
        assert "cannot be checked" in err and "--no-pixels" in err
        assert main(["audit", "scan", str(tmp_path / "out"), "--against", str(tmp_path / "arc"), "--no-pixels"]) == 0
        assert "pixels NOT checked" in capsys.readouterr().out
    finally:
        text_detect.ocr_available.cache_clear()


#: A run key (test only) under which the bundled archive's variants were once flagged as text.
FLAGGED_BEFORE = "f72d8f6a6b7cf96f0e8732fae3d06a1f464057f86ffadc52632dd6705cf94074"


def test_a_normal_run_of_the_bundled_archive_scans_clean_pixels_included(archive: Path, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Every output of the bundled policy's run, v0 and warped variants, searched for text: no finding.

    A fixed key makes the variants, and so the test, the same on every machine. This one's
    variants made the detector flag two outputs (a vertebra and a piece of body wall read as a
    row of glyphs) before merged components counted whole glyph widths only; other keys are
    sampled by ``benchmarks.bench_text --warped`` (a few frames in ten thousand still flag).
    """
    import json

    from medaug.deid.keys import KEY_BYTES, write_secret_file

    external("tesseract")
    key = tmp_path / "fixed.key"
    write_secret_file(key, (FLAGGED_BEFORE + "\n").encode("ascii"))
    assert len(FLAGGED_BEFORE) == 2 * KEY_BYTES
    out = tmp_path / "out"
    policy = REPO / "policies" / "ct-chest-conservative.yaml"
    assert main(["run", str(policy), str(archive), str(out), "--key", str(key), "--workers", "1"]) == 3  # bad files
    assert any((out / "dicom").rglob("*-v1/*.dcm"))  # warped variants were written and are searched
    capsys.readouterr()
    assert main(["audit", "scan", str(out), "--against", str(archive), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pixels_checked"] and report["clean"]
    assert not [h for h in report["hits"] if h["where"] == "pixel data"]


def test_scan_calls_pixels_it_cannot_decode_unchecked_not_clean(text_archive: tuple[Path, list[str]], keyfile: Path,
                                                                 tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from medaug.audit.scan import PIXELS_UNREADABLE

    external("tesseract")
    root, _planted = text_archive
    out = tmp_path / "out"
    assert main(["run", str(_policy(tmp_path, "redact")), str(root), str(out), "--key", str(keyfile), "--workers", "1"]) == 0
    # Another tool's output whose Pixel Data is cut short: nobody can look at it, so it is not clean.
    target = sorted((out / "dicom").rglob("*-v0/*.dcm"))[1]
    ds = pydicom.dcmread(target)
    ds.PixelData = ds.PixelData[:10]
    ds.save_as(target)
    capsys.readouterr()
    assert main(["audit", "scan", str(out), "--against", str(root), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [(h["where"], h["kind"]) for h in report["hits"]] == [("pixel data", PIXELS_UNREADABLE)]
