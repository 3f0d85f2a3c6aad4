"""The interpolation loop of the resampling kernel reads the source with vector gathers (no timings).

Why this test exists
--------------------
:func:`medaug.augment._kernel.warp_values` interpolates with gathers from the
source only because numba declares the parallel loop's arrays free of aliasing
(``noalias``), which it does only while the ``prange`` body makes no array and
takes no view of one (see the module docstring of :mod:`medaug.augment._kernel`).
An edit that takes a view in that body changes no result, so no other test
notices, but the interpolation turns scalar and the kernel 1.5 to 2 times
slower. This test looks at the compiled code instead of timing it.

How
---
The kernels are compiled with ``cache=True`` and numba refuses to inspect code
loaded from its cache, so a subprocess compiles afresh into an empty
``NUMBA_CACHE_DIR`` (the test process's own numba state is untouched) for the
target :mod:`medaug.jit` chooses, calls the
kernel through :func:`medaug.augment.resample.resample` on a tiny float32
volume and a tiny int16 one (two specialisations: float32 to float32, int16 to
int16), and counts in the optimised LLVM IR the gathers of ``float`` elements
(``llvm.masked.gather`` returning ``<N x float>``) of the first and of ``i32``
words of the second. The source is the only float32 array the float32 kernel
reads, and the int16 kernel reads its source in 32-bit words (no CPU gathers
16-bit elements), so such gathers are the interpolation's loads vectorised;
without ``noalias``, or with 16-bit loads, LLVM does not vectorise those loops
and there are none. The IR, rather than the
assembly, is read because the vectoriser's decision shows there whatever the
gather instructions of the target are called.

Whether LLVM emits gathers at all depends on the CPU (AVX2 at least, and with
AVX2 alone only on models whose gathers LLVM deems fast), so the subprocess
first compiles a small loop that needs no ``noalias`` to gather; where that
loop does not gather, the test is skipped rather than failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

_INSPECT = r"""
import json, re
import llvmlite.binding as ll
import numpy as np
from medaug.jit import njit  # first, as medaug does: the kernels are compiled for medaug's target

def float_gathers(ir):
    return len(re.findall(r"call <\d+ x float> @llvm\.masked\.gather\.", ir))

def word_gathers(ir):
    return len(re.findall(r"call <\d+ x i32> @llvm\.masked\.gather\.", ir))

def gathers(ir):
    return len(re.findall(r"call <\d+ x \w+> @llvm\.masked\.gather\.", ir))

features = ll.get_host_cpu_features()
report = {"cpu": ll.get_host_cpu_name(), "avx2": bool(features.get("avx2", False))}

# Calibration: a loop that gathers without any aliasing question (it only loads), so
# it shows whether LLVM uses gathers on this CPU at all.
@njit
def probe(src, idx):
    s = 0
    for i in range(idx.shape[0]):
        s += src[idx[i]]
    return s

probe(np.zeros(4, np.int32), np.zeros(4, np.int64))
report["probe_gathers"] = gathers(probe.inspect_llvm(probe.signatures[0]))

if report["avx2"] and report["probe_gathers"]:
    from medaug.augment import _kernel
    from medaug.augment.resample import build_mapping, resample
    from medaug.geometry import Geometry

    g = Geometry.axial((2, 4, 4))
    for dtype in ("float32", "int16"):
        resample(np.zeros(g.shape, dtype), g, build_mapping(g), fill=0.0, out_dtype=np.dtype(dtype))
    sigs = {str(sig[0].dtype): sig for sig in _kernel.warp_values.signatures}
    report["signatures"] = sorted([str(sig[0]), str(sig[1])] for sig in sigs.values())
    report["cache_misses"] = sum(_kernel.warp_values.stats.cache_misses.values())
    report["float_gathers"] = float_gathers(_kernel.warp_values.inspect_llvm(sigs["float32"]))
    report["word_gathers"] = word_gathers(_kernel.warp_values.inspect_llvm(sigs["int16"]))
print(json.dumps(report))
"""


@pytest.mark.slow
def test_interpolation_gathers_from_the_source(tmp_path: Path) -> None:
    """A fresh compile of float32 ``warp_values`` reads the source with float gathers."""
    # Compile as a default install does: for the host CPU at the default optimisation
    # level, whatever NUMBA_* settings (CPU name, OPT, ...) the caller's shell has.
    env = {key: value for key, value in os.environ.items() if not key.startswith("NUMBA_")}
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba-cache")
    proc = subprocess.run([sys.executable, "-c", _INSPECT], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-1500:]
    report = json.loads(proc.stdout.splitlines()[-1])
    if not report["avx2"]:
        pytest.skip(f"the CPU ({report['cpu']}) has no AVX2 gathers")
    if not report["probe_gathers"]:
        pytest.skip(f"LLVM does not emit gathers for this CPU ({report['cpu']})")
    assert report["signatures"] == [
        ["array(float32, 1d, C)", "array(float32, 4d, C)"], ["array(int16, 1d, C)", "array(int16, 4d, C)"]
    ]
    # Inspection works only on code compiled in this process; say so if that changes.
    assert report["cache_misses"] >= 2, report
    assert report["float_gathers"] > 0, (
        "warp_values no longer gathers from the source: its interpolation is scalar. Has a view "
        "or an array been made inside the prange body? (see medaug.augment._kernel)"
    )
    # The int16 source has no gathers of its own width: it is read in 32-bit words.
    assert report["word_gathers"] > 0, (
        "warp_values no longer reads a 16-bit source in 32-bit words: its interpolation is scalar "
        "(see medaug.augment._kernel._within_word)"
    )
