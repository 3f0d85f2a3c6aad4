"""The code numba compiles medaug's loops for (medaug.jit): 512-bit vectors on AVX-512 hosts only, the user's settings kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from medaug.jit import FULL_WIDTH, target_features
from tests.conftest import REPO

# What numba's code generator was made with, after importing the kernels (which decorate
# functions, and so make it) in a fresh process.
_REPORT = """
import json, sys
if "numba-first" in sys.argv:
    from numba import njit

    @njit
    def first(x):
        return x  # decorated before medaug is imported: numba's code generator exists now
from numba.core import registry
from numba.core.codegen import get_host_cpu_features
from medaug.augment import _kernel
from medaug.jit import configure_target
from medaug.write import pixels
features = registry.cpu_target.target_context.codegen().magic_tuple()[2]
print(json.dumps({"host": get_host_cpu_features(), "features": features, "again": configure_target()}))
"""


def _report(*args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("NUMBA_")}
    clean.update(env or {})
    proc = subprocess.run([sys.executable, "-c", _REPORT, *args], cwd=REPO, env=clean,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-1500:]
    # Nothing on stderr: LLVM says there when it does not know a feature it is given.
    assert proc.stderr == ""
    return dict(json.loads(proc.stdout.splitlines()[-1]))


@pytest.mark.parametrize("host", ["+avx2,+avx512f,+fma", "+avx512f", "+sse2,+avx512f,-avx512vl"])
def test_an_avx512_host_gets_full_width_vectors(host: str) -> None:
    assert target_features(host, cpu_name=None, features=None) == f"{host},{FULL_WIDTH}"


@pytest.mark.parametrize("host", ["+avx2,+fma", "+avx2,-avx512f", "+avx512fp16", "", "+neon"])
def test_a_host_without_avx512_is_left_as_numba_sets_it(host: str) -> None:
    # "+avx512fp16" is not "+avx512f": the feature is matched whole, not as a prefix.
    assert target_features(host, cpu_name=None, features=None) is None


@pytest.mark.parametrize(("cpu_name", "features"), [("generic", ""), (None, "+avx2"), ("skylake-avx512", None)])
def test_the_users_numba_cpu_settings_are_kept(cpu_name: str | None, features: str | None) -> None:
    assert target_features("+avx2,+avx512f", cpu_name=cpu_name, features=features) is None


def test_the_kernels_are_compiled_for_the_host_with_the_width_chosen() -> None:
    report = _report()
    host = str(report["host"])
    expected = f"{host},{FULL_WIDTH}" if "+avx512f" in host.split(",") else host
    assert report["features"] == expected
    assert report["again"] is False  # numba reads the setting once: a second call changes nothing


def test_a_users_feature_string_is_what_numba_compiles_for() -> None:
    report = _report(env={"NUMBA_CPU_FEATURES": "+sse2,+avx2"})
    assert report["features"] == "+sse2,+avx2"


def test_numba_started_before_medaug_keeps_its_defaults() -> None:
    report = _report("numba-first")
    assert report["features"] == report["host"]
