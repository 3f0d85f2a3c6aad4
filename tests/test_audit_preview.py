"""`medaug policy preview`: the labelled contact sheet of a fixture CT series, read back with Pillow and tesseract."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medaug.figures import grey_png
from medaug.policy.preview import PANEL, displacement_mm, write_preview
from medaug.augment import elastic
from medaug.augment.elastic import ElasticParams
from medaug.augment.resample import resample
from medaug.augment.rotation import RotationParams
from medaug.augment.spec import ElasticSpec
from medaug.augment.variant import VariantParams, mapping_for
from medaug.cli import main
from medaug.deid.keys import load_key
from medaug.errors import UsageError
from medaug.geometry import Geometry
from medaug.policy.load import load_policy
from tests.conftest import external

REPO = Path(__file__).resolve().parents[1]
POLICY = REPO / "policies" / "ct-chest-conservative.yaml"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("preview-key") / "key"
    assert main(["keygen", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def ct_series(archive: Path) -> Path:
    """The folder of the plain CT chest stack of the fixture archive."""
    found = [p for p in archive.rglob("ct_chest") if p.is_dir()]
    assert len(found) == 1
    return found[0]


def _read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_preview_has_labelled_rows_and_columns(ct_series: Path, key: Path, tmp_path: Path) -> None:
    out = tmp_path / "preview.png"
    assert main(["policy", "preview", str(POLICY), str(ct_series), "--key", str(key), "-o", str(out), "--variants", "2"]) == 0
    layout = write_preview(load_policy(POLICY), ct_series, load_key(key), tmp_path / "again.png", variants=2)
    assert (tmp_path / "again.png").read_bytes() == out.read_bytes()
    img = _read(out)
    assert (layout.rows, layout.columns) == (3, 5)
    assert img.shape == (layout.height, layout.width, 3)
    assert layout.width >= 5 * PANEL and layout.height >= 3 * PANEL
    # The fixture CT is an axial stack: the planes get their anatomical names.
    assert layout.column_labels == ["axial", "coronal", "sagittal", "displacement", "|variant − source|"]
    assert layout.row_labels[0] == "source (de-identified)"
    for v, (label, params) in enumerate(zip(layout.row_labels[1:], layout.params), start=1):
        assert label.startswith(f"variant {v}: rot ")
        assert params.rotation is not None and f"rot {params.rotation.degrees:.1f}°" in label
        assert " HU" in label and "elastic max " in label and " mm" in label
    # Every row holds image: dark and bright pixels in each horizontal band, colour in the variant rows.
    band = layout.height // 3
    for r in range(3):
        rows = img[r * band : (r + 1) * band]
        assert (rows.min(axis=-1) < 40).mean() > 0.02
        colourful = (rows.max(axis=-1).astype(int) - rows.min(axis=-1)) > 80
        assert (colourful.mean() > 0.01) == (r > 0)  # colour maps and bars only for variants


def test_preview_of_a_radiograph_has_one_image_column(archive: Path, key: Path, tmp_path: Path) -> None:
    cr = next(p for p in archive.rglob("cr_chest") if p.is_dir())
    layout = write_preview(load_policy(REPO / "policies" / "radiography.yaml"), cr, load_key(key), tmp_path / "cr.png", variants=1)
    assert (layout.rows, layout.columns) == (2, 3)
    assert layout.column_labels == ["image", "displacement", "|variant − source|"]
    assert layout.row_labels[1].startswith("variant 1: rot ") and "modality units" in layout.row_labels[1]
    assert _read(tmp_path / "cr.png").shape == (layout.height, layout.width, 3)


def test_preview_words_are_readable(ct_series: Path, key: Path, tmp_path: Path) -> None:
    """Tesseract reads the row and column titles and the colour bar units off the PNG."""
    tesseract = external("tesseract")
    out = tmp_path / "preview.png"
    write_preview(load_policy(POLICY), ct_series, load_key(key), out, variants=1)
    words = subprocess.run([tesseract, str(out), "-"], capture_output=True, text=True, check=True, timeout=120).stdout
    for word in ("source", "de-identified", "variant", "displacement", "axial", "coronal", "sagittal", "mm", "HU"):
        assert word in words, word


def test_preview_replays_the_run_parameters(ct_series: Path, key: Path, tmp_path: Path) -> None:
    """Same key and policy as a run: the same keyed series UID, so the same variant generator."""
    policy = load_policy(POLICY)
    a = write_preview(policy, ct_series, load_key(key), tmp_path / "a.png", variants=2, panel=96)
    b = write_preview(policy, ct_series, load_key(key), tmp_path / "b.png", variants=2, panel=96)
    assert (a.rows, a.columns, a.panel) == (3, 5, 96)
    assert a.params == b.params and (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert a.params[0] != a.params[1]
    assert a.window == (-1000.0, 400.0)
    assert 0 < a.max_displacement_mm
    with pytest.raises(UsageError):
        write_preview(policy, ct_series, load_key(key), tmp_path / "c.png", variants=1, panel=32)


def test_preview_refuses_a_folder_without_one_series(archive: Path, key: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    policy, k = load_policy(POLICY), load_key(key)
    with pytest.raises(UsageError):
        write_preview(policy, empty, k, tmp_path / "x.png")
    two = tmp_path / "two"
    for name in ("ct_chest", "ct_tilt"):
        shutil.copytree(next(p for p in archive.rglob(name) if p.is_dir()), two / name)
    with pytest.raises(UsageError):
        write_preview(policy, two, k, tmp_path / "x.png")
    assert main(["policy", "preview", str(POLICY), str(empty), "--key", str(key), "-o", str(tmp_path / "x.png")]) == 2


def test_displacement_map_matches_the_resampling_kernel() -> None:
    """Warping coordinate ramps with linear interpolation gives the source index exactly (inside)."""
    g = Geometry.axial((9, 40, 36), spacing=(3.0, 1.5, 1.2))
    e = elastic.sample(np.random.default_rng(3), ElasticSpec(15.0, 4.0), g)
    params = VariantParams(rotation=RotationParams(4.0, 1.0, -1.5), elastic=e)
    mapping = mapping_for(g, params)
    k = 4
    kk, jj, ii = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in g.shape), indexing="ij")
    source = []
    for ramp in (kk, jj, ii):
        out, _, _ = resample(ramp.astype(np.float32), g, mapping, order="linear", fill=np.nan)
        source.append(out[k].astype(np.float64))
    src = np.stack(source, axis=-1)
    here = np.stack([np.full(g.shape[1:], float(k)), jj[k], ii[k]], axis=-1)
    step = g.direction_matrix * np.asarray(g.spacing)[None, :]
    expected = np.linalg.norm((src - here) @ step.T, axis=-1)
    got = displacement_mm(g, mapping, k=k)
    # Where the kernel clamps at the volume's edge the ramp stops being linear: compare well inside.
    margin = np.all((src > 1.0) & (src < np.asarray(g.shape, dtype=np.float64) - 2.0), axis=-1)
    inside = np.isfinite(expected) & margin
    assert inside.mean() > 0.5
    np.testing.assert_allclose(got[inside], expected[inside], atol=1e-3)
    assert not np.any(displacement_mm(g, mapping_for(g, VariantParams()), k=k))
    assert isinstance(e, ElasticParams) and not e.is_identity


def test_grey_png_keeps_pixels() -> None:
    import io

    rng = np.random.default_rng(0)
    for shape in ((5, 7), (4, 6, 3)):
        img = rng.integers(0, 256, shape).astype(np.uint8)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(grey_png(img)))), img)
    with pytest.raises(ValueError):
        grey_png(np.zeros((2, 2), dtype=np.uint16))
