"""`medaug policy preview`: the contact sheet of a fixture CT series, and the PNG codec under it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from medaug.png import decode_png, encode_png, read_png
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


def _panels(img: np.ndarray, rows: int, columns: int) -> list[list[np.ndarray]]:
    return [[img[r * PANEL : (r + 1) * PANEL, c * PANEL : (c + 1) * PANEL] for c in range(columns)] for r in range(rows)]


def test_preview_has_the_documented_grid(ct_series: Path, key: Path, tmp_path: Path) -> None:
    out = tmp_path / "preview.png"
    assert main(["policy", "preview", str(POLICY), str(ct_series), "--key", str(key), "-o", str(out), "--variants", "2"]) == 0
    img = read_png(out)
    assert img.shape == (3 * PANEL, 5 * PANEL, 3)
    p = _panels(img, 3, 5)
    for c in range(3):
        assert p[0][c].std() > 10  # the source planes hold an image
        for r in (1, 2):
            assert np.abs(p[r][c].astype(int) - p[0][c].astype(int)).mean() > 0.1  # variants differ from the source
    assert not p[0][3][1:-1, 1:-1].any() and not p[0][4][1:-1, 1:-1].any()  # source row: no maps
    for r in (1, 2):
        assert p[r][3][1:-1, 1:-1].max() > 50  # displacement: the policy has elastic and rotation
        assert p[r][4][1:-1, 1:-1].max() > 50  # difference


def test_preview_replays_the_run_parameters(ct_series: Path, key: Path, tmp_path: Path) -> None:
    """Same key and policy as a run: the same keyed series UID, so the same variant generator."""
    policy = load_policy(POLICY)
    a = write_preview(policy, ct_series, load_key(key), tmp_path / "a.png", variants=2, panel=64)
    b = write_preview(policy, ct_series, load_key(key), tmp_path / "b.png", variants=2, panel=64)
    assert (a.rows, a.columns, a.panel) == (3, 5, 64)
    assert a.params == b.params and (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert a.params[0] != a.params[1]
    assert a.window == (-1000.0, 400.0)
    assert 0 < a.max_displacement_mm


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


def test_png_round_trip_grey_and_rgb() -> None:
    rng = np.random.default_rng(0)
    for shape in ((5, 7), (4, 6, 3)):
        img = rng.integers(0, 256, shape).astype(np.uint8)
        assert np.array_equal(decode_png(encode_png(img)), img)
    with pytest.raises(ValueError):
        encode_png(np.zeros((2, 2), dtype=np.uint16))
    with pytest.raises(ValueError):
        decode_png(b"not a png")
