"""Ingest of the generated synthetic archive, checked against the generator's manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medaug.ingest import load_series, scan_archive
from medaug.ingest.archive import ArchiveScan


@pytest.fixture(scope="module")
def scan(archive: Path) -> ArchiveScan:
    return scan_archive(archive)


def _rel(archive: Path, paths: list[Path]) -> tuple[str, ...]:
    return tuple(p.relative_to(archive).as_posix() for p in paths)


def test_every_manifest_series_is_found_with_its_geometry(archive: Path, manifest: dict[str, Any], scan: ArchiveScan) -> None:
    found = {_rel(archive, ref.files): ref for ref in scan.series}
    assert len(scan.series) == len(manifest["series"])
    for entry in manifest["series"]:
        ref = found.get(tuple(entry["files"]))
        assert ref is not None, f"series {entry['name']} not found with its files in slice order"
        g = ref.geometry
        assert list(g.shape) == entry["shape"][:3], entry["name"]
        np.testing.assert_allclose(g.spacing, entry["spacing"], atol=1e-4, err_msg=entry["name"])
        np.testing.assert_allclose(g.origin, entry["origin"], atol=1e-4, err_msg=entry["name"])
        np.testing.assert_allclose(g.direction_matrix, entry["direction"], atol=1e-4, err_msg=entry["name"])
        assert sorted(ref.problems) == sorted(entry["problems"]), entry["name"]
        assert (ref.kind == "multi-frame") == entry["multiframe"], entry["name"]


def test_every_bad_file_gets_its_reason(archive: Path, manifest: dict[str, Any], scan: ArchiveScan) -> None:
    got = {q.path.relative_to(archive).as_posix(): q.reason for q in scan.quarantined}
    assert got == {b["file"]: b["reason"] for b in manifest["bad"]}


def test_every_label_object_is_tied_to_its_series(archive: Path, manifest: dict[str, Any], scan: ArchiveScan) -> None:
    uid_of = {_rel(archive, ref.files): ref.series_uid for ref in scan.series}
    series_uid = {e["name"]: uid_of[tuple(e["files"])] for e in manifest["series"]}
    expected: dict[str, list[str]] = {}
    for label in manifest["labels"]:
        expected.setdefault(series_uid[label["series"]], []).append(label["file"])
    assert expected and {uid: sorted(_rel(archive, [f.path for f in files])) for uid, files in scan.labels.items()} == {
        uid: sorted(files) for uid, files in expected.items()
    }


def test_every_file_is_accounted_for(scan: ArchiveScan) -> None:
    used = [p for ref in scan.series for p in ref.files]
    labels = [f.path for files in scan.labels.values() for f in files]
    parts = used + labels + [q.path for q in scan.quarantined] + scan.directories
    walked = [p for p in scan.root.rglob("*") if p.is_file()]
    assert sorted(parts) == sorted(walked) and scan.file_count == len(walked)


def test_every_series_loads_with_manifest_shape_and_photometric(archive: Path, manifest: dict[str, Any], scan: ArchiveScan) -> None:
    by_files = {tuple(e["files"]): e for e in manifest["series"]}
    for ref in scan.series:
        entry = by_files[_rel(archive, ref.files)]
        loaded = load_series(ref)
        img = loaded.image
        assert loaded.quarantined == []
        assert list(img.data.shape) == entry["shape"], entry["name"]
        assert img.photometric == entry["photometric"], entry["name"]
        assert img.geometry == ref.geometry
        assert len(img.headers) == (1 if entry["multiframe"] else len(entry["files"]))
        assert all("PixelData" not in h for h in img.headers)
        if not img.is_colour:
            assert img.data.dtype == np.float32
            lo, hi = img.modality_range
            assert lo <= float(img.data.min()) and float(img.data.max()) <= hi, entry["name"]
        if entry["modality"] == "CT":
            # Air sits near -1000 HU in every CT phantom: rescale was applied.
            assert float(img.data.min()) == pytest.approx(-1000, abs=60), entry["name"]
