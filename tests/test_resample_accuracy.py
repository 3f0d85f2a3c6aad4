"""The fused kernel's interpolation against independent implementations (scipy, a Keys-kernel reference)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from medaug.augment import elastic
from medaug.augment.resample import resample
from medaug.augment.rotation import RotationParams
from medaug.augment.spec import ElasticSpec
from medaug.augment.variant import VariantParams, mapping_for
from medaug.geometry import Geometry


def _case() -> tuple[Geometry, object, np.ndarray]:
    g = Geometry.axial((14, 30, 26), spacing=(2.0, 0.9, 1.1), origin=(5.0, -3.0, 2.0))
    params = VariantParams(
        rotation=RotationParams(6.0, 2.0, -1.5),
        elastic=elastic.sample(np.random.default_rng(4), ElasticSpec(9.0, 3.0), g),
    )
    data = np.random.default_rng(5).normal(0.0, 200.0, g.shape).astype(np.float32)
    return g, mapping_for(g, params), data


def _source_coordinates(g: Geometry, mapping: object) -> np.ndarray:
    """Where each output voxel samples the source: linear warps of index ramps are exact.

    (Up to the float32 rounding of the output: a few 1e-6 of a voxel, hence the tolerances below.)
    """
    ramps = [np.indices(g.shape)[a].astype(np.float32) for a in range(3)]
    return np.stack([resample(r, g, mapping, fill=np.nan)[0] for r in ramps]).astype(np.float64)  # type: ignore[arg-type]


def _keys(s: np.ndarray) -> np.ndarray:
    """The cubic convolution kernel (a = -0.5) as a function of distance."""
    s = np.abs(s)
    return np.where(s <= 1, 1.5 * s**3 - 2.5 * s**2 + 1, np.where(s < 2, -0.5 * s**3 + 2.5 * s**2 - 4 * s + 2, 0.0))


def _catmull_rom(data: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Separable Keys interpolation with edge-clamped taps, voxel by voxel in numpy."""
    out = np.zeros(coords.shape[1:])
    base = [np.floor(np.clip(c, 0, n - 1)).astype(int) for c, n in zip(coords, data.shape)]
    pos = [np.clip(c, 0, n - 1) for c, n in zip(coords, data.shape)]
    for a in range(-1, 3):
        for b in range(-1, 3):
            for c in range(-1, 3):
                idx = [np.clip(base[0] + a, 0, data.shape[0] - 1), np.clip(base[1] + b, 0, data.shape[1] - 1),
                       np.clip(base[2] + c, 0, data.shape[2] - 1)]
                w = _keys(pos[0] - (base[0] + a)) * _keys(pos[1] - (base[1] + b)) * _keys(pos[2] - (base[2] + c))
                out += w * data[idx[0], idx[1], idx[2]]
    return out


def test_linear_matches_scipy_map_coordinates() -> None:
    g, mapping, data = _case()
    coords = _source_coordinates(g, mapping)
    inside = np.all(np.isfinite(coords), axis=0)
    assert inside.mean() > 0.8
    ours = resample(data, g, mapping, order="linear", fill=np.nan)[0]  # type: ignore[arg-type]
    ref = map_coordinates(data.astype(np.float64), np.nan_to_num(coords), order=1, mode="nearest")
    np.testing.assert_allclose(ours[inside], ref[inside], rtol=0, atol=0.02)
    assert np.all(np.isnan(ours[~inside]))


@pytest.mark.parametrize("dtype", [np.float32, np.int16])
def test_cubic_matches_a_keys_kernel_reference(dtype: type) -> None:
    g, mapping, data = _case()
    source = data.astype(dtype)
    coords = _source_coordinates(g, mapping)
    inside = np.all(np.isfinite(coords), axis=0)
    ours = resample(source, g, mapping, order="cubic", fill=np.nan)[0]  # type: ignore[arg-type]
    ref = _catmull_rom(source.astype(np.float64), np.nan_to_num(coords))
    np.testing.assert_allclose(ours[inside], ref[inside], rtol=0, atol=0.05)
