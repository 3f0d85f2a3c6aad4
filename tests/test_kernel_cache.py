"""The resampling kernels' specialisations and the cache the install step fills (no timings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medaug.augment.compile import NEAREST_TYPES, VALUE_TYPES
from tests.conftest import REPO

# Everything the stages hand the kernels: monochrome images (linear and cubic, with every
# transform), colour images, and label maps warped nearest, one-hot and fractional.
_STAGE_CALLS = """
import json, sys
import numpy as np
from medaug.augment import _kernel
from medaug.augment.compile import specialisations
from medaug.augment.elastic import ElasticParams
from medaug.augment.intensity import IntensityParams
from medaug.augment.labels import warp_label_volume
from medaug.augment.rotation import RotationParams
from medaug.augment.variant import VariantParams, apply_variant, warp_labels
from medaug.augment.bspline import free_mask, grid_shape
from medaug.geometry import Geometry
from medaug.ingest.labels import LabelVolume, Segment

g = Geometry.axial((6, 20, 18), spacing=(2.0, 1.0, 1.0))
control = np.zeros(grid_shape(g, 8.0) + (3,))
control[free_mask(g, 8.0)] = 0.5
for order in ("linear", "cubic"):
    p = VariantParams(rotation=RotationParams(3.0), elastic=ElasticParams.from_array(8.0, control),
                      intensity=IntensityParams(shift=2.0, bias_terms=((1, 0, 0),), bias_coefficients=(0.01,)),
                      interpolation=order)
    apply_variant(np.ones(g.shape, np.float32), g, p, modality="CT", value_range=(-1024.0, 3071.0))
    apply_variant(np.ones(g.shape + (3,), np.uint8), g, VariantParams(rotation=RotationParams(3.0), interpolation=order),
                  modality="US")
warp_labels(np.ones(g.shape, np.uint8), g, p)
# A volume holding a fractional segment is float32 throughout, its binary segments too.
for mode, data, fractional in (("nearest", np.ones((1,) + g.shape, np.uint8), False),
                               ("onehot-linear", np.ones((1,) + g.shape, np.uint8), False),
                               ("nearest", np.ones((1,) + g.shape, np.float32), True),
                               ("nearest", np.ones((1,) + g.shape, np.float32), False)):
    segment = Segment(number=1, label="", description="", algorithm_type="MANUAL", fractional=fractional)
    warp_label_volume(LabelVolume(data=data, segments=(segment,)), g, p, mode=mode)
stats = {name: {"hits": sum(getattr(_kernel, name).stats.cache_hits.values()),
                "misses": sum(getattr(_kernel, name).stats.cache_misses.values())}
         for name in ("warp_values", "warp_nearest")}
print(json.dumps({"specialisations": specialisations(), "stats": stats}))
"""


def _run(code: str, cache: Path | None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if cache is not None:
        env["NUMBA_CACHE_DIR"] = str(cache)
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def _expected() -> dict[str, list[tuple[str, str]]]:
    return {
        "warp_values": sorted((s, d) for s, d, _ in VALUE_TYPES),
        "warp_nearest": sorted((d, d) for d in NEAREST_TYPES),
    }


def test_the_stages_use_only_the_listed_specialisations() -> None:
    """A fresh process running every kind of stage call compiles no pair the install step leaves out."""
    proc = _run(_STAGE_CALLS, None)
    assert proc.returncode == 0, proc.stderr[-1500:]
    found = json.loads(proc.stdout.splitlines()[-1])["specialisations"]
    assert {name: sorted(tuple(p) for p in pairs) for name, pairs in found.items()} == _expected()


@pytest.mark.slow
def test_the_install_step_fills_the_cache_a_run_needs(tmp_path: Path) -> None:
    """After ``python -m medaug.augment.compile``, a new process loads every kernel it calls and compiles none."""
    cache = tmp_path / "numba-cache"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    step = subprocess.run([sys.executable, "-m", "medaug.augment.compile"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert step.returncode == 0, step.stderr[-1500:]
    assert {p.name.split("-")[0] for p in cache.rglob("*.nbi")} >= {"_kernel.warp_values", "_kernel.warp_nearest"}
    proc = _run(_STAGE_CALLS, cache)
    assert proc.returncode == 0, proc.stderr[-1500:]
    stats = json.loads(proc.stdout.splitlines()[-1])["stats"]
    for name in ("warp_values", "warp_nearest"):
        assert stats[name]["misses"] == 0, name
        assert stats[name]["hits"] == len(_expected()[name]), name
