"""16-bit sources: the kernel's word reads (``_kernel._within_word``) give exactly the stored values.

The interpolation reads a 16-bit source 32 bits at a time and shifts the wanted
element out (see :mod:`medaug.augment._kernel`), clamping the word's start at
the end of the array. Any slip there (the wrong half, a sign lost, a word read
from the wrong place at an edge) changes the warped values, so each case warps
the same values twice, once as stored and once as a float32 copy (exact for
every 16-bit value, and read element by element), and requires equal results.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from medaug.augment import rotation
from medaug.augment.resample import build_mapping, resample
from medaug.augment.rotation import RotationParams
from medaug.geometry import Geometry

ANGLE = st.floats(-30.0, 30.0, allow_nan=False)


@settings(max_examples=80, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 7)),
    channels=st.sampled_from([1, 1, 2, 3]),
    dtype=st.sampled_from(["int16", "uint16"]),
    order=st.sampled_from(["linear", "cubic"]),
    angles=st.one_of(st.just((0.0, 0.0, 0.0)), st.tuples(ANGLE, ANGLE, ANGLE)),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_16_bit_source_warps_as_its_float32_copy(
    shape: tuple[int, int, int], channels: int, dtype: str, order: str,
    angles: tuple[float, float, float], seed: int,
) -> None:
    g = Geometry.axial(shape, spacing=(2.0, 0.8, 1.1))
    info = np.iinfo(dtype)
    full = shape if channels == 1 else shape + (channels,)
    data = np.random.default_rng(seed).integers(info.min, info.max, size=full, endpoint=True).astype(dtype)
    # The extremes at both ends of the array, where the reads are clamped and a lost sign shows most.
    flat = data.reshape(-1)
    flat[0], flat[-1] = info.min, info.max
    if shape[0] == 1:
        angles = (angles[0], 0.0, 0.0)  # a single slice turns in plane only
    params = RotationParams(*angles)
    mapping = build_mapping(g, rotation=None if params.is_identity else rotation.matrix(params, g))
    got, _, _ = resample(data, g, mapping, order=order, fill=-7.0)
    want, _, _ = resample(data.astype(np.float32), g, mapping, order=order, fill=-7.0)
    np.testing.assert_array_equal(got, want)


def test_identity_returns_every_16_bit_value() -> None:
    """Every int16 and uint16 value, the last element included, comes back from an identity warp."""
    g = Geometry.axial((2, 128, 256))
    for dtype in ("int16", "uint16"):
        info = np.iinfo(dtype)
        data = np.arange(info.min, info.max + 1, dtype=np.int64).astype(dtype).reshape(g.shape)
        for order in ("linear", "cubic"):
            # float32 output (exact for 16-bit values): the specialisation the property test compiles.
            out, _, _ = resample(data, g, build_mapping(g), order=order, fill=0.0)
            np.testing.assert_array_equal(out, data.astype(np.float32))
