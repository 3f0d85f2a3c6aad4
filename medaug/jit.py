"""numba for medaug's compiled loops: the code they are compiled for, then numba's decorators.

Modules with compiled loops import :func:`njit` (and the rest) from here, never
from numba itself, so that :func:`configure_target` runs before numba makes its
code generator (which it does for the first decorated function of a process,
and never again).

Why: LLVM's tuning for the AVX-512 Intel server CPUs (Skylake to Emerald Rapids)
is ``prefer-256-bit``: its vectoriser keeps to 256-bit registers so that other
code is not slowed by the lower clock that 512-bit instructions can bring. The
resampling kernels are gathers and float64 arithmetic from end to end, and on
such a CPU they run 15 to 35 % faster with 512-bit vectors (docs/benchmarks.md,
"Issue 17, 512-bit vectors"); the results are the same bits either way (no
fastmath: the same operations in the same order, lane by lane). So where the host
has AVX-512, the feature string numba passes to LLVM is the host's with that
preference turned off.

numba keeps compiled code in its cache under the feature string it was compiled
for, so every process that imports medaug (the install's ``medaug.augment.compile``,
``medaug run``, its workers) asks for the same code and finds it there. A user's
own ``NUMBA_CPU_NAME`` or ``NUMBA_CPU_FEATURES`` (say, a generic CPU for a cache
shared between machines) is left as it is. If numba's code generator exists
already when medaug is first imported (another library compiled something first),
nothing can be changed and the kernels are compiled with numba's defaults: they
give the same results, more slowly.
"""

from __future__ import annotations

from numba import config, get_num_threads, njit, prange, types
from numba.core import registry
from numba.core.codegen import get_host_cpu_features
from numba.extending import intrinsic, overload

#: What is added to the host's feature string: LLVM's 256-bit preference, off.
FULL_WIDTH = "-prefer-256-bit"


def target_features(host: str, *, cpu_name: str | None, features: str | None) -> str | None:
    """The feature string to compile for, given the host's and the user's settings (None: leave numba's).

    Parameters
    ----------
    host : str
        The host CPU's LLVM feature string (``+avx2,+avx512f,...``), as numba reads it.
    cpu_name, features : str or None
        numba's ``CPU_NAME`` and ``CPU_FEATURES`` settings (from ``NUMBA_CPU_NAME``
        and ``NUMBA_CPU_FEATURES``); None where the user set nothing.

    Examples
    --------
    >>> target_features("+avx2,+avx512f", cpu_name=None, features=None)
    '+avx2,+avx512f,-prefer-256-bit'
    >>> target_features("+avx2,-avx512f", cpu_name=None, features=None) is None  # no AVX-512
    True
    >>> target_features("+avx2,+avx512f", cpu_name="generic", features="") is None  # the user's choice
    True
    """
    if cpu_name is not None or features is not None:
        return None
    if "+avx512f" not in host.split(","):
        return None
    return f"{host},{FULL_WIDTH}"


def configure_target() -> bool:
    """Compile for the host with 512-bit vectors where it has AVX-512; whether numba's setting changed.

    Does nothing once numba's code generator exists (it reads the setting once).
    """
    if "_toplevel_target_context" in vars(registry.cpu_target):
        return False
    # numba's config module makes its settings at run time (mypy does not see them).
    chosen = target_features(get_host_cpu_features(), cpu_name=getattr(config, "CPU_NAME"),
                             features=getattr(config, "CPU_FEATURES"))
    if chosen is None:
        return False
    setattr(config, "CPU_FEATURES", chosen)
    return True


configure_target()

__all__ = ["FULL_WIDTH", "configure_target", "get_num_threads", "intrinsic", "njit", "overload", "prange",
           "target_features", "types"]
