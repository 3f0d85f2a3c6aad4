"""Transforms: identity, replay, geometry, CT values, labels, determinism."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from typing import Literal

import numba
import numpy as np
import pytest

from medaug.augment import elastic, intensity, rotation
from medaug.augment.bspline import free_mask, grid_shape
from medaug.augment.elastic import ElasticParams
from medaug.augment.intensity import IntensityParams
from medaug.augment.resample import resample_nearest
from medaug.augment.rotation import RotationParams
from medaug.augment.spec import AugmentSpec, ElasticSpec, IntensitySpec, RotationSpec
from medaug.augment.variant import (
    VariantParams,
    apply_variant,
    mapping_for,
    sample_variant,
    validate_spec,
    variant_rng,
    warp_labels,
)
from medaug.errors import TransformError
from medaug.geometry import Geometry
from tests.conftest import REPO

CT_RANGE = (-1024.0, 3071.0)
FULL = AugmentSpec(
    rotation=RotationSpec(max_degrees=5.0, max_tilt_degrees=2.0),
    elastic=ElasticSpec(control_spacing_mm=12.0, max_displacement_mm=4.0),
    intensity=IntensitySpec(max_shift=5.0),
)


def _geometry() -> Geometry:
    return Geometry.axial((12, 40, 36), spacing=(2.5, 0.8, 0.9), origin=(-14.0, -16.0, 3.0))


def _blob(g: Geometry, *, width: float = 8.0) -> np.ndarray:
    """A smooth body (Gaussian, in mm) on a −1000 HU background."""
    pos = g.index_to_patient(np.moveaxis(np.indices(g.shape), 0, -1).astype(np.float64))
    r2 = ((pos - g.centre) ** 2).sum(axis=-1)
    return (-1000.0 + 1040.0 * np.exp(-r2 / (2 * width**2))).astype(np.float32)


def _noise(g: Geometry) -> np.ndarray:
    return np.random.default_rng(3).normal(0.0, 100.0, g.shape).astype(np.float32)


# -- identity -------------------------------------------------------------------------


@pytest.mark.parametrize("interpolation", ["linear", "cubic"])
def test_identity_params_reproduce_input_exactly(interpolation: str) -> None:
    g = _geometry()
    x = _noise(g)
    zero = np.zeros(grid_shape(g, 12.0) + (3,))
    params = VariantParams(
        rotation=RotationParams(0.0, 0.0, 0.0),
        elastic=ElasticParams.from_array(12.0, zero),
        intensity=IntensityParams(),
        interpolation=interpolation,
    )
    for p in (VariantParams(interpolation=interpolation), params):
        result = apply_variant(x, g, p, modality="MR")
        assert result.data.dtype == np.float32
        assert np.array_equal(result.data, x)
        assert result.min_jacobian == result.max_jacobian == 1.0


def test_zero_displacement_is_identity_through_the_kernel() -> None:
    g = _geometry()
    x = _noise(g)
    # Through elastic.apply the zero field is still evaluated voxel by voxel.
    out, jmin, jmax = elastic.apply(
        x, g, ElasticParams.from_array(12.0, np.zeros(grid_shape(g, 12.0) + (3,))), fill=-1000.0
    )
    assert np.array_equal(out, x)
    assert jmin == jmax == 1.0


def test_rotation_there_and_back_matches_input_in_the_interior() -> None:
    g = Geometry.axial((24, 48, 48), spacing=(1.5, 0.7, 0.7))
    x = _blob(g, width=6.0)
    there = rotation.apply(x, g, RotationParams(4.0, 2.0, -1.5), interpolation="cubic", fill=-1000.0)
    assert not np.allclose(there, x, atol=5.0)
    back = rotation.apply(there, g, RotationParams(-4.0, 0.0, 0.0), interpolation="cubic", fill=-1000.0)
    back = rotation.apply(back, g, RotationParams(0.0, 0.0, 1.5), interpolation="cubic", fill=-1000.0)
    back = rotation.apply(back, g, RotationParams(0.0, -2.0, 0.0), interpolation="cubic", fill=-1000.0)
    inner = (slice(6, -6), slice(12, -12), slice(12, -12))
    assert np.abs(back[inner] - x[inner]).max() < 10.0  # HU, on a 1040 HU bump


# -- rotation geometry ------------------------------------------------------------------


def _dot_after(g: Geometry, params: RotationParams, dot: tuple[int, int, int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    x = np.zeros(g.shape, dtype=np.float32)
    x[dot] = 1000.0
    out = rotation.apply(x, g, params, fill=0.0)
    got = tuple(int(v) for v in np.unravel_index(int(np.argmax(out)), g.shape))
    r = rotation.matrix(params, g)
    p = g.centre + r @ (g.index_to_patient(dot) - g.centre)
    a = g.direction_matrix * np.asarray(g.spacing)[None, :]
    expected = tuple(int(v) for v in np.rint(np.linalg.solve(a, p - np.asarray(g.origin))))
    return got, expected


def test_in_plane_rotation_turns_about_the_superior_inferior_axis_with_anisotropic_pixels() -> None:
    g = Geometry.axial((9, 41, 61), spacing=(3.0, 1.0, 0.5))
    # 90° makes the anisotropy visible: 10 rows of 1 mm become 20 columns of 0.5 mm.
    got, expected = _dot_after(g, RotationParams(90.0, 0.0, 0.0), (4, 30, 30))
    assert got == expected
    assert got[0] == 4 and got != (4, 30, 30)
    # Patient S-I axis: the rotated dot keeps its slice.
    assert abs(got[2] - 30) == 20 and got[1] == 20


def test_rotation_is_exact_on_a_gantry_tilted_grid() -> None:
    tilt = np.radians(15.0)
    direction = np.array([[0.0, 0.0, 1.0], [np.sin(tilt), 1.0, 0.0], [np.cos(tilt), 0.0, 0.0]])
    g = Geometry.from_arrays((21, 41, 41), (2.0, 1.0, 1.0), (0.0, 0.0, 0.0), direction)
    assert g.is_sheared
    got, expected = _dot_after(g, RotationParams(90.0, 0.0, 0.0), (10, 30, 20))
    assert got == expected and got != (10, 30, 20)


def test_tilt_moves_content_out_of_plane() -> None:
    g = Geometry.axial((31, 31, 31), spacing=(1.0, 1.0, 1.0))
    got, expected = _dot_after(g, RotationParams(0.0, 30.0, 0.0), (15, 25, 15))
    assert got == expected and got[0] != 15


def test_rotation_of_2d_image_is_in_plane_only() -> None:
    g2 = Geometry.axial((1, 40, 44), spacing=(1.0, 0.6, 0.6))
    p = sample_variant(variant_rng(5, "S", 0), AugmentSpec(rotation=RotationSpec(8.0, 5.0)), g2, modality="DX")
    assert p.rotation is not None and p.rotation.tilt_row_degrees == p.rotation.tilt_column_degrees == 0.0
    assert p.rotation.degrees != 0.0
    img = _noise(g2)
    out2 = apply_variant(img, g2, p, modality="DX").data
    # The same in-plane rotation of a stack of identical slices gives that image on every slice.
    g3 = Geometry.axial((3, 40, 44), spacing=(1.0, 0.6, 0.6))
    out3 = apply_variant(np.repeat(img, 3, axis=0), g3, p, modality="DX").data
    assert out2.shape == g2.shape
    np.testing.assert_allclose(out3[1], out2[0], atol=1e-3)
    with pytest.raises(TransformError, match="in plane"):
        apply_variant(img, g2, VariantParams(rotation=RotationParams(1.0, 1.0, 0.0)), modality="DX")


def test_elastic_on_2d_image_is_in_plane() -> None:
    g2 = Geometry.axial((1, 64, 64), spacing=(1.0, 0.5, 0.5))
    p = elastic.sample(np.random.default_rng(2), ElasticSpec(8.0, 3.0), g2)
    arr = p.array()
    assert arr.shape[0] == 1 and not np.any(arr[..., 0]) and np.any(arr[..., 1:])
    out, jmin, _ = elastic.apply(_noise(g2), g2, p, fill=0.0)
    assert out.shape == g2.shape and jmin > 0


# -- elastic bounds ---------------------------------------------------------------------


def test_spec_at_fold_free_bound_is_refused_naming_key_and_bound() -> None:
    with pytest.raises(TransformError) as err:
        validate_spec(AugmentSpec(elastic=ElasticSpec(control_spacing_mm=40.0, max_displacement_mm=16.0)))
    assert "transforms.elastic.max_displacement_mm" in str(err.value) and "0.4" in str(err.value)
    with pytest.raises(TransformError, match="max_displacement_mm"):
        sample_variant(
            np.random.default_rng(0), AugmentSpec(elastic=ElasticSpec(10.0, 4.5)), _geometry(), modality="CT"
        )
    validate_spec(AugmentSpec(elastic=ElasticSpec(control_spacing_mm=40.0, max_displacement_mm=15.99)))


def test_sampled_displacements_respect_bound_and_locked_border() -> None:
    g = _geometry()
    p = elastic.sample(np.random.default_rng(4), ElasticSpec(10.0, 3.5), g)
    arr = p.array()
    mask = free_mask(g, 10.0)
    assert np.abs(arr).max() <= 3.5 and np.abs(arr).max() > 2.0
    assert not np.any(arr[~mask]) and np.all(arr[mask] != 0.0)
    assert not mask[:2].any() and not mask[-2:].any() and not mask[:, :, :2].any()


def test_params_that_could_fold_or_move_locked_points_are_refused() -> None:
    g = _geometry()
    shape = grid_shape(g, 10.0) + (3,)
    over = np.zeros(shape)
    over[2, 2, 2, 1] = 4.0  # = 0.4 × 10 mm
    with pytest.raises(TransformError, match="below 0.4"):
        apply_variant(_noise(g), g, VariantParams(elastic=ElasticParams.from_array(10.0, over)), modality="CT")
    locked = np.zeros(shape)
    locked[0, 3, 3, 2] = 1.0
    with pytest.raises(TransformError, match="locked"):
        apply_variant(_noise(g), g, VariantParams(elastic=ElasticParams.from_array(10.0, locked)), modality="CT")
    with pytest.raises(TransformError, match="grid shape"):
        apply_variant(
            _noise(g), g, VariantParams(elastic=ElasticParams.from_array(10.0, np.zeros((2, 2, 2, 3)))), modality="CT"
        )


def test_analytic_jacobian_matches_finite_differences_of_the_mapping() -> None:
    g = Geometry.axial((16, 24, 20), spacing=(2.0, 1.0, 1.5))
    p = elastic.sample(np.random.default_rng(9), ElasticSpec(8.0, 3.19), g)
    # Linear interpolation of a linear ramp is exact, so warping index ramps
    # recovers the source coordinate of every output voxel.
    coords = []
    for axis in range(3):
        ramp = np.indices(g.shape)[axis].astype(np.float32)
        out, jmin, jmax = elastic.apply(ramp, g, p, fill=np.nan)
        coords.append(out.astype(np.float64))
    grads = np.stack([np.stack(list(np.gradient(c)), axis=-1) for c in coords], axis=-2)  # (..., a, b)
    det = np.linalg.det(grads)[3:-3, 3:-3, 3:-3]
    assert np.all(np.isfinite(det))
    assert 0 < jmin < 1 < jmax
    assert jmin <= det.min() + 0.02 and det.max() <= jmax + 0.02
    assert det.min() < jmin + 0.25  # the interior reaches close to the extreme


# -- CT values --------------------------------------------------------------------------


def test_ct_air_fill_and_stored_range() -> None:
    g = Geometry.axial((10, 48, 48), spacing=(3.0, 0.8, 0.8))
    x = np.full(g.shape, -1000.0, dtype=np.float32)
    x[:, 18:30, 18:30] = 3071.0  # at the top of the stored range
    spec = AugmentSpec(rotation=RotationSpec(15.0), intensity=IntensitySpec(max_shift=7.0))
    uncovered = []
    for index in range(4):
        p = sample_variant(variant_rng(11, "S9", index), spec, g, modality="CT")
        assert p.intensity is not None and p.rotation is not None
        shift = p.intensity.shift
        result = apply_variant(x, g, p, modality="CT", value_range=CT_RANGE)
        out = result.data
        assert result.fill == -1000.0
        assert out.min() >= CT_RANGE[0] and out.max() <= CT_RANGE[1]
        inside = warp_labels(np.ones(g.shape, dtype=np.uint8), g, p).astype(bool)
        uncovered.append(not inside.all())
        assert np.all(out[~inside] == -1000.0)  # fill, not shifted, never 0
        air = inside.copy()
        air[:, 8:40, 8:40] = False
        assert np.allclose(out[air], -1000.0 + shift, atol=1e-3)
        if shift > 0:
            assert out.max() == CT_RANGE[1]
    assert any(uncovered)  # rotations uncover corners, which get the fill


def test_mr_fill_is_the_border_background_and_scale_stays_in_bounds() -> None:
    g = Geometry.axial((6, 30, 30), spacing=(4.0, 1.0, 1.0))
    x = np.full(g.shape, 15.0, dtype=np.float32)  # the background the image's border shows
    x[:, 2:-2, 2:-2] = 200.0
    x[0, 5, 5] = 1.0  # a darker voxel inside is not the background
    spec = AugmentSpec(rotation=RotationSpec(10.0), intensity=IntensitySpec(max_scale=0.1, max_bias=0.05, bias_order=2))
    p = sample_variant(variant_rng(2, "MR1", 0), spec, g, modality="MR")
    assert p.intensity is not None and p.intensity.max_bias <= 0.05 + 1e-12
    result = apply_variant(x, g, p, modality="MR")
    assert result.fill == 15.0
    inside = warp_labels(np.ones(g.shape, dtype=np.uint8), g, p).astype(bool)
    body = result.data[:, 8:-8, 8:-8]  # far from the body's edge, which a 10 degree turn moves < 4 px
    lo = 200 * (1 - 0.1) * (1 - 0.05)
    assert body.min() >= lo - 1e-3 and body.max() <= 200 * 1.1 * 1.05 + 1e-3
    assert body.std() > 0  # the bias field varies across the volume
    assert np.all(result.data[~inside] == 15.0)


def test_colour_images_warp_each_channel_alike_and_keep_dtype() -> None:
    g = Geometry.axial((1, 32, 40), spacing=(1.0, 0.5, 0.5))
    grey = np.random.default_rng(1).integers(0, 256, g.shape, dtype=np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    spec = AugmentSpec(rotation=RotationSpec(6.0), elastic=ElasticSpec(6.0, 2.0), intensity=IntensitySpec(max_shift=5))
    p = sample_variant(variant_rng(1, "RGB", 0), spec, g, modality="XC")
    out = apply_variant(rgb, g, p, modality="XC").data
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 0], out[..., 2])
    assert not np.array_equal(out, rgb)


# -- labels ------------------------------------------------------------------------------


def test_labels_keep_values_and_align_with_image() -> None:
    g = _geometry()
    labels = np.zeros(g.shape, dtype=np.uint16)
    labels[2:10, 8:30, 6:20] = 3
    labels[4:9, 12:26, 20:31] = 7
    p = sample_variant(variant_rng(3, "L", 1), FULL, g, modality="CT")
    warped = warp_labels(labels, g, p)
    assert warped.dtype == labels.dtype
    assert set(np.unique(warped)) <= {0, 3, 7} and {3, 7} <= set(np.unique(warped))
    # The identical mapping: an image equal to labels × 100 warped by nearest neighbour.
    image_nn = resample_nearest(labels.astype(np.float32) * 100, g, mapping_for(g, p), fill=0.0)
    assert np.array_equal(image_nn, warped.astype(np.float32) * 100)
    # And the interpolated image agrees with the labels almost everywhere.
    image = apply_variant(labels.astype(np.float32) * 100, g, p, modality="SEG", fill=0.0).data
    agree = np.abs(image / 100 - warped) < 0.5
    assert agree.mean() > 0.9


# -- sampling, replay, determinism ---------------------------------------------------------


def test_same_seed_same_params_and_variants_are_independent_of_order() -> None:
    g = _geometry()
    first = [sample_variant(variant_rng(42, "PSN-1", i), FULL, g, modality="CT") for i in range(3)]
    reverse = [sample_variant(variant_rng(42, "PSN-1", i), FULL, g, modality="CT") for i in (2, 1, 0)]
    assert first == reverse[::-1]
    assert first[0] != first[1]
    assert sample_variant(variant_rng(42, "PSN-2", 0), FULL, g, modality="CT") != first[0]
    assert sample_variant(variant_rng(43, "PSN-1", 0), FULL, g, modality="CT") != first[0]
    assert first[0].is_spatial


@pytest.mark.parametrize("interpolation", ["linear", "cubic"])
def test_replaying_logged_params_is_bit_exact(interpolation: Literal["linear", "cubic"]) -> None:
    g = _geometry()
    x = _blob(g)
    spec = AugmentSpec(
        rotation=FULL.rotation, elastic=FULL.elastic, intensity=FULL.intensity, interpolation=interpolation
    )
    p = sample_variant(variant_rng(7, "PSN", 0), spec, g, modality="CT")
    logged = json.dumps(p.to_json(), sort_keys=True)
    replayed = VariantParams.from_json(json.loads(logged))
    assert replayed == p
    a = apply_variant(x, g, p, modality="CT", value_range=CT_RANGE)
    b = apply_variant(x, g, replayed, modality="CT", value_range=CT_RANGE)
    assert np.array_equal(a.data, b.data) and a.min_jacobian == b.min_jacobian
    assert not np.array_equal(a.data, x)


def test_malformed_logged_params_are_refused_by_key_path() -> None:
    with pytest.raises(TransformError, match=r"params\.rotation\.degrees"):
        VariantParams.from_json({"rotation": {"degrees": "five"}})
    with pytest.raises(TransformError, match=r"params\.elastic\.displacement_mm"):
        VariantParams.from_json({"elastic": {"control_spacing_mm": 10.0, "displacement_mm": [1, 2]}})
    with pytest.raises(TransformError, match=r"params\.interpolation"):
        VariantParams.from_json({"interpolation": "quintic"})


def _thread_count_outputs() -> str:
    """The thread count numba uses here and a digest of full variants' exact bytes (one line)."""
    g = Geometry.axial((16, 40, 40), spacing=(2.0, 0.9, 0.9))
    x = _blob(g)
    digest = hashlib.sha256()
    for interpolation in ("linear", "cubic"):
        spec = AugmentSpec(rotation=FULL.rotation, elastic=FULL.elastic, interpolation=interpolation)
        p = sample_variant(variant_rng(1, "T", 0), spec, g, modality="CT")
        r = apply_variant(x, g, p, modality="CT")
        digest.update(np.ascontiguousarray(r.data).tobytes())
        digest.update(np.array([r.min_jacobian, r.max_jacobian], dtype=np.float64).tobytes())
    return f"{numba.get_num_threads()} {digest.hexdigest()}"


def test_results_do_not_depend_on_thread_count() -> None:
    # Each count in its own process: numba fixes its pool size at start-up, and it starts more
    # threads than there are cores, so this compares 1 with 4 threads even on a one-CPU runner.
    runs = {}
    for threads in (1, 4):
        env = {**os.environ, "NUMBA_NUM_THREADS": str(threads)}
        code = "from tests.test_augment import _thread_count_outputs; print(_thread_count_outputs())"
        proc = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, proc.stderr[-800:]
        used, digest = proc.stdout.split()
        runs[int(used)] = digest
    assert sorted(runs) == [1, 4], "the runs did not use different thread counts"
    assert runs[1] == runs[4]


def test_intensity_apply_alone_shifts_and_clips() -> None:
    g = Geometry.axial((2, 4, 4))
    x = np.array([-1024.0, 0.0, 3070.0, 3071.0], dtype=np.float32).repeat(8).reshape(g.shape)
    out = intensity.apply(x, g, IntensityParams(shift=5.0), value_range=CT_RANGE)
    assert sorted(np.unique(out).tolist()) == [-1019.0, 5.0, 3071.0]


def test_bad_specs_are_refused_by_key() -> None:
    with pytest.raises(TransformError, match=r"transforms\.rotation\.max_degrees"):
        validate_spec(AugmentSpec(rotation=RotationSpec(max_degrees=-1.0)))
    with pytest.raises(TransformError, match=r"transforms\.intensity\.bias_order"):
        validate_spec(AugmentSpec(intensity=IntensitySpec(max_bias=0.1, bias_order=9)))
    with pytest.raises(TransformError, match=r"transforms\.elastic\.control_spacing_mm"):
        validate_spec(AugmentSpec(elastic=ElasticSpec(control_spacing_mm=0.0, max_displacement_mm=0.0)))


def test_integer_output_is_the_rounded_float_output() -> None:
    """An int16 output (no float copy) holds the float result rounded and clipped."""
    rng = np.random.default_rng(3)
    data = rng.integers(-1024, 2000, size=(6, 20, 24)).astype(np.int16)
    geometry = Geometry.axial(data.shape, spacing=(2.0, 0.8, 0.8))
    spec = AugmentSpec(rotation=RotationSpec(5, 2), elastic=ElasticSpec(8.0, 2.0), intensity=IntensitySpec(max_shift=5))
    params = sample_variant(np.random.default_rng(9), spec, geometry, modality="CT")
    as_float = apply_variant(data, geometry, params, modality="CT").data
    as_int = apply_variant(data, geometry, params, modality="CT", out_dtype=np.int16)
    assert as_int.data.dtype == np.int16
    np.testing.assert_array_equal(as_int.data, np.floor(as_float.astype(np.float64) + 0.5).astype(np.int16))


@pytest.mark.parametrize(("interpolation", "out_dtype"), [("linear", None), ("cubic", None), ("cubic", np.int16)])
def test_a_variant_written_into_an_old_output_is_the_variant_written_afresh(
    interpolation: Literal["linear", "cubic"], out_dtype: type | None,
) -> None:
    """Every value of a reused output is overwritten: what it held (NaN, extremes) leaves no trace."""
    g = _geometry()
    x = _blob(g) + _noise(g)
    spec = AugmentSpec(rotation=FULL.rotation, elastic=FULL.elastic, intensity=FULL.intensity,
                       interpolation=interpolation)
    p = sample_variant(variant_rng(11, "PSN", 0), spec, g, modality="CT")
    fresh = apply_variant(x, g, p, modality="CT", value_range=CT_RANGE, out_dtype=out_dtype)
    old = np.empty_like(fresh.data)
    old[...] = np.iinfo(np.int16).max if out_dtype else np.nan
    old.reshape(-1)[::7] = np.iinfo(np.int16).min if out_dtype else -np.inf
    again = apply_variant(x, g, p, modality="CT", value_range=CT_RANGE, out_dtype=out_dtype, out=old)
    assert np.shares_memory(again.data, old)
    assert again.data.tobytes() == fresh.data.tobytes()
    assert (again.min_jacobian, again.max_jacobian) == (fresh.min_jacobian, fresh.max_jacobian)


def test_an_output_array_that_cannot_hold_the_variant_is_refused() -> None:
    g = _geometry()
    x = _blob(g)
    p = sample_variant(variant_rng(11, "PSN", 0), FULL, g, modality="CT")
    refused = {
        "shape": np.empty((g.shape[0] - 1, *g.shape[1:]), np.float32),
        "type": np.empty(g.shape, np.float64),
        "not contiguous": np.empty((*g.shape[:2], 2 * g.shape[2]), np.float32)[:, :, ::2],
        "the source itself": x,
    }
    for name, out in refused.items():
        with pytest.raises(TransformError, match="output array"):
            apply_variant(x, g, p, modality="CT", out=out)


def test_a_monochrome1_radiograph_is_filled_with_its_own_dark_border_not_white_wedges() -> None:
    """MONOCHROME1 displays its stored minimum white: the fill is what the border shows (high here)."""
    g = Geometry.axial((1, 40, 40), spacing=(1.0, 0.2, 0.2))
    x = np.full(g.shape, 3800.0, dtype=np.float32)  # unattenuated air: dark on a MONOCHROME1 display
    x[:, 10:30, 10:30] = 900.0  # the body: bright
    spec = AugmentSpec(rotation=RotationSpec(10.0))
    p = sample_variant(variant_rng(5, "CR1", 1), spec, g, modality="CR")
    result = apply_variant(x, g, p, modality="CR")
    assert result.fill == 3800.0
    corners = result.data[0, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert np.all(corners == 3800.0)
