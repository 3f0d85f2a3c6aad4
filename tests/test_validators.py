"""Independent tools accept what the writer produces.

* dciodvfy (dicom3tools) reports no error on a written file that its source
  did not already have.
* dcm2niix converts a written series to a volume with the source's affine.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from pydicom.uid import generate_uid

from medaug.ingest.image import SeriesImage
from medaug.write import write_series
from medaug.write.derivation import SPATIAL_RESAMPLING
from tests.conftest import external
from tests.write_helpers import BUILDERS, UID_PREFIX, fixture_series, load_one, load_ref

pytestmark = pytest.mark.external


def dciodvfy_errors(path: Path) -> set[str]:
    """The distinct ``Error`` lines dciodvfy prints for one file."""
    tool = external("dciodvfy")
    proc = subprocess.run([tool, str(path)], capture_output=True, text=True, errors="replace", check=False)
    return {line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("Error")}


def write(image: SeriesImage, outdir: Path, *, derived: bool = False) -> list[Path]:
    """Write ``image`` with fresh UIDs; return the files."""
    n = 1 if image.multiframe else image.geometry.shape[0]
    result = write_series(
        image,
        outdir,
        series_uid=generate_uid(UID_PREFIX),
        sop_instance_uids=[generate_uid(UID_PREFIX) for _ in range(n)],
        frame_of_reference_uid=generate_uid(UID_PREFIX) if derived else None,
        derived=derived,
        derivation_codes=(SPATIAL_RESAMPLING,) if derived else (),
        derivation_description="synthetic test variant" if derived else None,
    )
    return result.paths


def assert_no_new_errors(sources: list[Path], written: list[Path]) -> None:
    """Every dciodvfy error of a written file was already reported for a source file."""
    before: set[str] = set()
    for path in sources:
        before |= dciodvfy_errors(path)
    for number, path in enumerate(written, start=1):
        new = dciodvfy_errors(path) - before
        assert not new, f"written file {number} has new dciodvfy errors: {sorted(new)}"


@pytest.mark.parametrize("derived", [False, True], ids=["copy", "derived"])
@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_dciodvfy_finds_no_new_error(kind: str, derived: bool, tmp_path: Path) -> None:
    source = BUILDERS[kind](tmp_path / "src", np.random.default_rng(11))
    written = write(load_one(source.directory), tmp_path / "out", derived=derived)
    assert_no_new_errors(source.files, written)


def test_dciodvfy_on_every_fixture_series(archive: Path, manifest: dict[str, Any], tmp_path: Path) -> None:
    for name, ref in fixture_series(archive, manifest):
        image = load_ref(ref)
        for derived in (False, True):
            written = write(image, tmp_path / f"{name}-{derived}", derived=derived)
            assert_no_new_errors(ref.files, written)


# -- dcm2niix ----------------------------------------------------------------------------


def nifti_affine(path: Path) -> tuple[tuple[int, ...], NDArray[np.float64]]:
    """Dimensions and sform affine (srow_x, srow_y, srow_z) of a NIfTI-1 file.

    A reader of the few fixed header fields needed here (NIfTI-1: dim at byte
    40, sform_code at 254, srow_* at 280), so nibabel is not a dependency.
    """
    header = path.read_bytes()[:348]
    endian = "<" if struct.unpack("<i", header[:4])[0] == 348 else ">"
    dim = struct.unpack(endian + "8h", header[40:56])
    sform_code = struct.unpack(endian + "h", header[254:256])[0]
    assert sform_code > 0, "dcm2niix wrote no sform"
    rows = struct.unpack(endian + "12f", header[280:328])
    affine = np.eye(4)
    affine[:3, :] = np.array(rows, dtype=np.float64).reshape(3, 4)
    return tuple(dim[1 : 1 + dim[0]]), affine


def dcm2niix(directory: Path, outdir: Path, *, must_convert: bool = True) -> list[Path]:
    """Convert every series under ``directory``; return the NIfTI files written."""
    tool = external("dcm2niix")
    outdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [tool, "-z", "n", "-b", "y", "-f", "%s", "-o", str(outdir), str(directory)],
        capture_output=True, text=True, errors="replace", check=False,
    )
    if must_convert:
        assert proc.returncode == 0, f"dcm2niix exit status {proc.returncode}"
    return sorted(outdir.glob("*.nii"))


def assert_same_nifti_geometry(source_dir: Path, written_dir: Path, tmp: Path) -> None:
    """dcm2niix makes volumes of the same size and affine from both directories.

    Several NIfTI files may come out of one series (dcm2niix adds a
    tilt-corrected copy of a gantry-tilted CT); they are paired by name.
    """
    before = dcm2niix(source_dir, tmp / "nii-src")
    after = dcm2niix(written_dir, tmp / "nii-out")
    assert before, "dcm2niix made nothing of the source"
    assert [p.name for p in after] == [p.name for p in before]
    for b, a in zip(before, after):
        dims_before, affine_before = nifti_affine(b)
        dims_after, affine_after = nifti_affine(a)
        assert dims_after == dims_before, b.name
        # float32 in the header: 1e-4 mm is within its precision for positions up to ~1 m.
        np.testing.assert_allclose(affine_after, affine_before, atol=1e-4, rtol=0, err_msg=b.name)


@pytest.mark.parametrize("derived", [False, True], ids=["copy", "derived"])
@pytest.mark.parametrize("kind", ["ct", "mr", "enhanced-ct"])
def test_dcm2niix_gives_the_source_affine(kind: str, derived: bool, tmp_path: Path) -> None:
    source = BUILDERS[kind](tmp_path / "src", np.random.default_rng(5))
    write(load_one(source.directory), tmp_path / "out", derived=derived)
    assert_same_nifti_geometry(source.directory, tmp_path / "out", tmp_path)


def test_dcm2niix_affine_check_detects_a_shift(tmp_path: Path) -> None:
    """The comparison can fail: a series moved by 0.01 mm is caught."""
    from medaug.geometry import Geometry

    source = BUILDERS["ct"](tmp_path / "src", np.random.default_rng(5))
    image = load_one(source.directory)
    g = image.geometry
    image.geometry = Geometry.from_arrays(g.shape, g.spacing, np.asarray(g.origin) + [0.01, 0.0, 0.0], g.direction_matrix)
    write(image, tmp_path / "out")
    with pytest.raises(AssertionError):
        assert_same_nifti_geometry(source.directory, tmp_path / "out", tmp_path)


def test_dcm2niix_on_every_fixture_volume(archive: Path, manifest: dict[str, Any], tmp_path: Path) -> None:
    checked = 0
    for name, ref in fixture_series(archive, manifest):
        image = load_ref(ref)
        if image.geometry.shape[0] < 2 or set(image.problems) & {"missing-slices", "irregular-spacing"}:
            continue  # 2D images have no volume affine; dcm2niix resamples or splits uneven stacks
        links = tmp_path / name / "src"
        links.mkdir(parents=True)
        for number, path in enumerate(ref.files, start=1):
            (links / f"{number}.dcm").symlink_to(path)
        if not dcm2niix(links, tmp_path / name / "probe", must_convert=False):
            continue  # dcm2niix cannot read this source (no preamble and no file meta)
        write(image, tmp_path / name / "out")
        assert_same_nifti_geometry(links, tmp_path / name / "out", tmp_path / name)
        checked += 1
    assert checked >= 3
