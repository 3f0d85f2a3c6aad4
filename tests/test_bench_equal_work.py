"""The benchmark's equal-work check: medaug's own outputs pass it, each way of skimping fails it,
and the composite peer's outputs pass it (when the peer environment is there).

``make bench`` fails when :func:`benchmarks.equal_work.check_outputs` finds a problem with what
medaug or the composite peer wrote; these tests hold the check itself to account, on a small
archive of the throughput benchmark's own kind (no timings).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest

from benchmarks.bench_throughput import (
    PEER_PYTHON,
    archive_geometry,
    bench_policy,
    composite_job,
    copies_per_source,
    generate_archive,
    medaug_images,
)
from benchmarks.equal_work import check_outputs
from benchmarks.peer_composite import series_folders
from medaug.cli import main
from tests.conftest import REPO, external

# 40 slices of 128 x 128: two control intervals along every axis, the least TorchIO's elastic
# grid takes with locked borders (smaller images also read as burned-in text to the detector).
SERIES, SLICES, SIZE = 2, 40, 128


@dataclass(frozen=True)
class Bench:
    archive: Path
    policy: Path
    sources: list[list[Path]]
    copies: int


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Bench:
    root = tmp_path_factory.mktemp("bench")
    generate_archive(root / "archive", series=SERIES, slices=SLICES, size=SIZE)
    policy = bench_policy(root)
    sources = [sorted(folder.glob("*.dcm")) for folder in series_folders(root / "archive")]
    return Bench(root / "archive", policy, sources, copies_per_source(policy))


@pytest.fixture(scope="module")
def medaug_outputs(bench: Bench, keyfile: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("medaug") / "out"
    assert main(["run", str(bench.policy), str(bench.archive), str(out), "--key", str(keyfile), "--workers", "1"]) == 0
    return medaug_images(out)


def test_medaug_outputs_do_the_whole_job(bench: Bench, medaug_outputs: list[Path]) -> None:
    assert len(medaug_outputs) == bench.copies * SERIES * SLICES
    assert check_outputs(bench.sources, medaug_outputs, copies=bench.copies) == []


@pytest.mark.external
def test_medaug_outputs_show_no_new_dciodvfy_error_kind(bench: Bench, medaug_outputs: list[Path]) -> None:
    assert check_outputs(bench.sources, medaug_outputs, copies=bench.copies, dciodvfy=external("dciodvfy")) == []


# -- each way of doing less than the job is caught -------------------------------------------


def _by_series(files: list[Path]) -> list[list[Path]]:
    """The files of each output series, ordered by slice position."""
    groups: dict[str, list[tuple[float, Path]]] = {}
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        groups.setdefault(str(ds.SeriesInstanceUID), []).append((float(ds.ImagePositionPatient[2]), path))
    return [[p for _, p in sorted(group)] for _, group in sorted(groups.items())]


def _edit(path: Path, change: Callable[[pydicom.Dataset], None]) -> None:
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path)


def _drop_a_series(series: list[list[Path]], sources: list[list[Path]]) -> None:
    for path in series[0]:
        path.unlink()


def _move_a_series(series: list[list[Path]], sources: list[list[Path]]) -> None:
    def shift(ds: pydicom.Dataset) -> None:
        ds.PixelSpacing = [0.8, 0.8]

    for path in series[1]:
        _edit(path, shift)


def _copy_pixels(series: list[list[Path]], sources: list[list[Path]]) -> None:
    for original, copy in zip(series[0], series[1]):
        pixels = pydicom.dcmread(original).PixelData

        def same(ds: pydicom.Dataset, pixels: bytes = pixels) -> None:
            ds.PixelData = pixels

        _edit(copy, same)


def _keep_patient_id(series: list[list[Path]], sources: list[list[Path]]) -> None:
    source_id = str(pydicom.dcmread(sources[0][0], stop_before_pixels=True).PatientID)

    def keep(ds: pydicom.Dataset) -> None:
        ds.PatientID = source_id

    _edit(series[2][3], keep)


def _truncate(series: list[list[Path]], sources: list[list[Path]]) -> None:
    path = series[3][5]
    path.write_bytes(path.read_bytes()[:1000])


SKIMPS = {
    "a series missing": (_drop_a_series, "output series where"),
    "geometry not the source's": (_move_a_series, "geometry of 1 output series"),
    "a variant not transformed": (_copy_pixels, "1 output series repeat the pixels"),
    "a source identifier kept": (_keep_patient_id, "keeps a source value of PatientID"),
    "a broken file": (_truncate, "does not parse"),
}


@pytest.mark.parametrize("skimp", sorted(SKIMPS))
def test_each_shortfall_is_found(skimp: str, bench: Bench, medaug_outputs: list[Path], tmp_path: Path) -> None:
    copied = []
    for number, path in enumerate(medaug_outputs):
        copied.append(tmp_path / f"{number:05d}.dcm")
        shutil.copyfile(path, copied[-1])
    damage, expected = SKIMPS[skimp]
    damage(_by_series(copied), bench.sources)
    problems = check_outputs(bench.sources, [p for p in copied if p.exists()], copies=bench.copies)
    assert any(expected in problem for problem in problems), problems


@pytest.mark.external
def test_a_new_dciodvfy_error_kind_is_found(bench: Bench, medaug_outputs: list[Path], tmp_path: Path) -> None:
    tool = external("dciodvfy")
    copied = []
    for number, path in enumerate(medaug_outputs):
        copied.append(tmp_path / f"{number:05d}.dcm")
        shutil.copyfile(path, copied[-1])

    def no_modality(ds: pydicom.Dataset) -> None:
        del ds.Modality  # Type 1 in the General Series module

    for path in _by_series(copied)[1]:
        _edit(path, no_modality)
    problems = check_outputs(bench.sources, copied, copies=bench.copies, dciodvfy=tool)
    assert any("dciodvfy reports an error kind no source has" in p for p in problems), problems


# -- the composite peer does the same job ------------------------------------------------------


def _peer_ready() -> str | None:
    """Why the composite peer cannot run here, or None when it can."""
    if not PEER_PYTHON.exists():
        return f"{PEER_PYTHON.relative_to(REPO)} missing (make .venv-bench/.composite builds it; CI does not)"
    probe = subprocess.run([str(PEER_PYTHON), "-c", "import dicognito, pydicom, torchio"], capture_output=True, check=False)
    if probe.returncode != 0:
        return "the peer environment lacks dicognito, pydicom or torchio (make .venv-bench/.composite)"
    return None


def test_composite_peer_outputs_do_the_whole_job(bench: Bench, tmp_path: Path) -> None:
    reason = _peer_ready()
    if reason is not None:
        pytest.skip(reason)
    job = tmp_path / "job.json"
    job.write_text(json.dumps(composite_job(bench.policy, archive_geometry(slices=SLICES, size=SIZE), series=SERIES)))
    out = tmp_path / "out"
    proc = subprocess.run([str(PEER_PYTHON), str(REPO / "benchmarks" / "peer_composite.py"), str(job),
                           str(bench.archive), str(out)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == {"series": SERIES, "files_written": bench.copies * SERIES * SLICES}
    outputs = sorted(out.rglob("*.dcm"))
    assert check_outputs(bench.sources, outputs, copies=bench.copies, dciodvfy=shutil.which("dciodvfy")) == []
