"""``medaug inspect``: a summary without one identifying value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medaug.cli import EXIT_QUARANTINED, main
from medaug.ingest.inspect import EXIT_OK
from tests.conftest import external
from tests.ingest_helpers import make_dataset, save, write_stack


def _assert_no_planted(text: str, manifest: dict[str, Any]) -> None:
    lowered = text.lower()
    leaked = [p for p in manifest["planted"] if str(p["value"]).strip() and str(p["value"]).lower() in lowered]
    assert leaked == []


def test_inspect_text_on_the_archive_leaks_nothing(archive: Path, manifest: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["inspect", str(archive)])
    out, err = capsys.readouterr()
    assert code == EXIT_QUARANTINED
    assert f"{len(manifest['series'])} series" in out
    assert f"{len(manifest['labels'])} label object(s)" in out
    for bad in {b["reason"] for b in manifest["bad"]}:
        assert f"  {bad}: " in out
    assert str(archive) not in out + err
    _assert_no_planted(out + err, manifest)


def test_inspect_json_on_the_archive_counts_and_leaks_nothing(archive: Path, manifest: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["inspect", str(archive), "--json"])
    out, err = capsys.readouterr()
    assert code == EXIT_QUARANTINED
    report = json.loads(out)
    every = manifest["series"]
    assert report["series_count"] == len(every)
    assert [s["number"] for s in report["series"]] == list(range(1, len(every) + 1))
    # Every file is a series' file, a label object, a quarantined file or a DICOMDIR.
    assert report["label_objects"] == len(manifest["labels"])
    assert report["files"] == (sum(s["files"] for s in report["series"]) + report["label_objects"]
                               + report["quarantined"]["count"] + report["directories"])
    expected: dict[str, int] = {}
    for b in manifest["bad"]:
        expected[b["reason"]] = expected.get(b["reason"], 0) + 1
    assert {k: v["count"] for k, v in report["quarantined"]["by_reason"].items()} == expected
    modalities: dict[str, int] = {}
    for s in every:
        modalities[s["modality"]] = modalities.get(s["modality"], 0) + 1
    assert report["series_by_modality"] == modalities
    _assert_no_planted(out + err, manifest)


def test_inspect_looks_at_every_image_for_text_by_default(archive: Path, manifest: dict[str, Any],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    external("tesseract")
    main(["inspect", str(archive), "--json"])
    report = json.loads(capsys.readouterr().out)
    # The bundled archive carries no burned-in text; every series was looked at.
    assert report["text_counted"]
    assert [s["frames_with_text"] for s in report["series"]] == [0] * len(manifest["series"])


def test_inspect_no_text_says_the_count_was_not_made(archive: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(archive), "--no-text", "--json"]) == EXIT_QUARANTINED
    report = json.loads(capsys.readouterr().out)
    assert not report["text_counted"] and not [s for s in report["series"] if "frames_with_text" in s]
    assert main(["inspect", str(archive), "--no-text"]) == EXIT_QUARANTINED
    assert "burned-in text: not counted" in capsys.readouterr().out


def test_inspect_clean_archive_exits_zero_and_labels_orientation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_stack(tmp_path / "ax", [(0, 0, z) for z in (0.0, 1.0, 2.0)])
    save(make_dataset(np.zeros((4, 4), np.int16), ipp=(0, 0, 0), iop=(0, 1, 0, 0, 0, -1), series_uid="1.2.3.4.5"), tmp_path / "sag.dcm")
    code = main(["inspect", str(tmp_path), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == EXIT_OK
    assert sorted(s["orientation"] for s in report["series"]) == ["axial", "sagittal"]
    assert report["quarantined"] == {"count": 0, "by_reason": {}}
    out = json.dumps(report)
    for planted in ("Fakename", "FAKEID", "19990102", "1.2.3.4.5", "1.2.826.0.1.3680043.10.1.1", str(tmp_path)):
        assert planted not in out


def test_inspect_rejects_a_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(tmp_path / "nope")]) == 2
    assert "nope" not in capsys.readouterr().err
