"""Compile the resampling kernels before the first run: ``python -m medaug.augment.compile``.

numba compiles a kernel the first time it is called with a given set of
argument types, which takes seconds per kernel; with ``cache=True`` the
machine code is kept on disk and later processes load it in a fraction of a
second. The install step (``make``, after ``pip install``) runs this module so
that the first ``medaug run`` finds every kernel it calls already compiled.

:mod:`medaug.augment.resample` hands the kernels one memory layout only (a
flat C-ordered source, a C-ordered output), so a kernel has one compiled
specialisation per (source dtype, output dtype) pair. The pairs medaug's
stages use are listed here; any other pair still works and is compiled on
its first use.

The code is compiled for the CPU :mod:`medaug.jit` chooses (the host's, with
512-bit vectors where it has AVX-512), and numba files it in the cache under
that choice, which every medaug process makes alike.

Where the cache lives is numba's choice: ``NUMBA_CACHE_DIR`` when set, else
the package's own ``__pycache__`` folders when they are writable, else a
per-user cache folder (``~/.cache/numba``). On an install whose package folder
users cannot write, set ``NUMBA_CACHE_DIR`` to a shared folder and run this
module once with the same setting.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np

from medaug.augment import _kernel
from medaug.augment.resample import build_mapping, resample, resample_nearest
from medaug.geometry import Geometry

#: (source dtype, output dtype, channels) of every linear/cubic call the stages make:
#: monochrome images and fractional or one-hot labels (float32 in modality units or
#: probabilities) and colour images (their stored type).
VALUE_TYPES: tuple[tuple[str, str, int], ...] = (("float32", "float32", 1), ("uint8", "uint8", 3))

#: Dtypes of the nearest-neighbour calls: binary label maps (uint8, or float32 when the
#: same label volume also holds a fractional segment).
NEAREST_TYPES: tuple[str, ...] = ("uint8", "float32")


def specialisations() -> dict[str, list[tuple[str, str]]]:
    """The (source dtype, output dtype) pairs each kernel holds compiled in this process."""
    out: dict[str, list[tuple[str, str]]] = {}
    for name in ("warp_values", "warp_nearest"):
        dispatcher = getattr(_kernel, name)
        out[name] = [(str(sig[0].dtype), str(sig[1].dtype)) for sig in dispatcher.signatures]
    return out


def precompile() -> dict[str, list[tuple[str, str]]]:
    """Compile (or load from the cache) every specialisation the stages use.

    The kernels are called through :func:`~medaug.augment.resample.resample`
    and :func:`~medaug.augment.resample.resample_nearest` on a tiny volume, so
    the argument types are exactly those of real calls.

    Returns
    -------
    dict
        :func:`specialisations` afterwards.
    """
    geometry = Geometry.axial((2, 4, 4))
    mapping = build_mapping(geometry)
    for src, dst, channels in VALUE_TYPES:
        shape = geometry.shape if channels == 1 else geometry.shape + (channels,)
        resample(np.zeros(shape, dtype=src), geometry, mapping, fill=0.0, out_dtype=np.dtype(dst))
    for dtype in NEAREST_TYPES:
        resample_nearest(np.zeros(geometry.shape, dtype=dtype), geometry, mapping)
    return specialisations()


def main(argv: Sequence[str] | None = None) -> int:
    """Compile the kernels into numba's cache and say how long it took."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.parse_args(argv)
    t0 = time.perf_counter()
    compiled = precompile()
    count = sum(len(v) for v in compiled.values())
    print(f"medaug: {count} resampling kernels ready in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
