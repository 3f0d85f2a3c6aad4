"""Property tests of the elastic transform: fold-free at the largest allowed displacement."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from medaug.augment import elastic
from medaug.augment.bspline import FOLD_FREE_FRACTION, free_mask
from medaug.augment.elastic import ElasticParams
from medaug.augment.spec import ElasticSpec
from medaug.geometry import Geometry

VOXELS = [(1.0, 1.0, 1.0), (3.0, 0.7, 0.7), (2.5, 0.5, 1.2), (5.0, 0.9, 0.4)]
CONTROL = [4.0, 6.0, 9.0]


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    voxel=st.sampled_from(VOXELS),
    control=st.sampled_from(CONTROL),
    extreme=st.booleans(),
)
def test_min_jacobian_positive_at_the_largest_allowed_displacement(
    seed: int, voxel: tuple[float, float, float], control: float, extreme: bool
) -> None:
    g = Geometry.axial((8, 28, 28), spacing=voxel)
    largest = np.nextafter(FOLD_FREE_FRACTION * control, 0.0)
    rng = np.random.default_rng(seed)
    if extreme:
        # Every free component at ± the bound: the worst case the spec allows.
        mask = free_mask(g, control)
        arr = np.where(mask, rng.choice([-largest, largest], size=mask.shape), 0.0)
        params = ElasticParams.from_array(control, arr)
    else:
        params = elastic.sample(rng, ElasticSpec(control, float(largest)), g)
    x = np.zeros(g.shape, dtype=np.float32)
    _, jmin, jmax = elastic.apply(x, g, params, fill=0.0)
    assert 0.0 < jmin <= jmax
    if extreme and params.array().any():
        assert jmin < 1.0 < jmax  # the field really deforms
