"""Fused resampling kernels (numba): field, mapping and interpolation in one pass.

The kernels work one output row at a time. For a row they evaluate the cubic
B-spline displacement separably (the control grid is contracted along k once
per slice, along j once per row, and along i per voxel, with the four control
values of each interval of the row held in registers), add it to the voxel
index, apply the affine part (rotation about the centre, expressed in index
space) and write the row's source indices and Jacobian determinants into
row-sized buffers; then they interpolate the source at those indices and write
straight into the output. No array larger than a few rows exists, so memory
stays at the output plus a few kilobytes per chunk of slices.

Both loops are branch-free, so LLVM vectorises them: the first with plain
vector loads, the second (the interpolation) with gathers from the source. The
gathers need LLVM to know that the source and the output do not overlap; numba
says so (``noalias``) only for the body of a parallel loop that makes no array
and takes no view of one. Hence the per-chunk scratch arrays made before the
``prange`` loop and indexed by chunk, and the interpolation inlined into the
loop reading and writing element by element: a view taken in that body would
leave the results unchanged but make the interpolation scalar, about 1.5 to 2
times slower. No CPU gathers 16-bit elements, so a 16-bit source (an int16 CT
warped to int16) is read in 32-bit words, two neighbouring taps along x from
one word (:func:`_within_word`); read element by element its interpolation
would stay scalar and take about twice as long as a float32 one.

Determinism: every output voxel is computed by the same sequence of float64
operations whichever thread runs it, and the per-slice Jacobian extremes are
combined in slice order by the caller, so results are bit-identical for any
thread count (``fastmath`` stays off so LLVM may not reorder sums).

Specialisations: the source arrives as a flat C-contiguous array and the
output as a C-contiguous ``(k, j, i, c)`` array (:mod:`medaug.augment.resample`
normalises both), so each kernel compiles once per (source dtype, output
dtype) pair that is used, and the compiled code is cached on disk
(:mod:`medaug.augment.compile`).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir

from medaug.jit import get_num_threads, intrinsic, njit, overload, prange, types

# Index-space arguments shared by both kernels (see resample.Mapping):
#   mat (3, 3), off (3,): source index = mat @ (index + displacement) + off
#   ctrl (mk, mj, mi, 3): control displacements in *voxel* units of each axis
#   qX (n,), wX (n, 4), dwX (n, 4): first tap, weights, d/dindex of weights

#: Elements per word in which the kernels read a 16-bit source; resample makes such sources at least this long.
WORD_ELEMENTS = 2
#: The source element types read through :func:`_within_word`.
_WORD_READ = (types.int16, types.uint16)


@intrinsic
def _within_word(typingctx, flat, first, idx):  # type: ignore[no-untyped-def]
    """``flat[idx]`` of a flat 16-bit ``flat`` (two elements or more), ``idx`` being ``first`` or ``first + 1``.

    AVX2 and AVX-512 gather 32- and 64-bit elements only, so LLVM will not
    vectorise a loop that gathers 16-bit ones, and the whole interpolation of a
    16-bit source would run scalar (about twice as slow as a float32 one). This
    loads the 32-bit word that starts at ``first`` (at ``n - 2`` for the last
    element, so no byte beyond the array is read) and shifts ``flat[idx]`` out of
    it: a 32-bit gather at 2-byte steps, which LLVM vectorises. Two taps read
    with the same ``first`` share one load, as LLVM merges identical loads.
    """
    if not (isinstance(flat, types.Array) and flat.dtype in _WORD_READ):
        return None
    sig = flat.dtype(flat, first, idx)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        array, first_arg, idx_arg = args
        ary = context.make_array(signature.args[0])(context, builder, array)
        i64, i32 = ir.IntType(64), ir.IntType(32)
        head = context.cast(builder, first_arg, signature.args[1], types.uint64)
        at = context.cast(builder, idx_arg, signature.args[2], types.uint64)
        last = builder.sub(builder.extract_value(ary.shape, 0), ir.Constant(i64, WORD_ELEMENTS))
        start = builder.select(builder.icmp_unsigned("<", head, last), head, last)
        pointer = builder.bitcast(builder.gep(ary.data, [start], inbounds=True), i32.as_pointer())
        word = builder.load(pointer, align=2)
        # Little-endian: the element at ``start`` is the low half of the word, the next one the high half.
        shift = builder.trunc(builder.shl(builder.sub(at, start), ir.Constant(i64, 4)), i32)
        return builder.trunc(builder.lshr(word, shift), ir.IntType(16))

    return sig, codegen


def _read(flat: np.ndarray, first: np.uint64, idx: np.uint64) -> float:
    """``flat[idx]``, ``idx`` being ``first`` or ``first + 1``: taps sharing ``first`` share one load.

    Compiled, a 16-bit ``flat`` is read through :func:`_within_word`, any other
    directly; the value is ``flat[idx]`` either way.
    """
    return float(flat[idx])


@overload(_read, inline="always")
def _read_compiled(flat, first, idx):  # type: ignore[no-untyped-def]
    if flat.dtype in _WORD_READ:
        return lambda flat, first, idx: _within_word(flat, first, idx)
    return lambda flat, first, idx: flat[idx]


@njit(cache=True, fastmath=False)
def _contract(x: np.ndarray, first: int, w: np.ndarray, out: np.ndarray) -> None:
    """``out = sum over t of w[t] * x[first + t]``: four B-spline taps along x's first axis.

    ``x`` and ``out`` are C-contiguous; ``out`` has the shape of ``x[0]``.
    """
    n = out.size
    rows = x.reshape((x.shape[0], n))
    flat = out.reshape(n)
    flat[:] = 0.0
    for t in range(4):
        wt = w[t]
        if wt == 0.0:
            continue
        row = rows[first + t]
        for e in range(n):
            flat[e] += wt * row[e]


@njit(cache=True, fastmath=False)
def _segments(qi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of equal first tap along i: ``(first tap of run s, start of run s)``, starts closed by ``ni``."""
    n = qi.shape[0]
    count = 1
    for i in range(1, n):
        if qi[i] != qi[i - 1]:
            count += 1
    first = np.empty(count, dtype=np.int64)
    start = np.empty(count + 1, dtype=np.int64)
    s = 0
    first[0] = qi[0]
    start[0] = 0
    for i in range(1, n):
        if qi[i] != qi[i - 1]:
            s += 1
            first[s] = qi[i]
            start[s] = i
    start[count] = n
    return first, start


@njit(cache=True, fastmath=False)
def _slice_tables(
    k: int, elastic: bool, ctrl: np.ndarray, qk: np.ndarray, wk: np.ndarray, dwk: np.ndarray, tabs: np.ndarray,
    thread: int,
) -> None:
    """The control grid contracted along k for slice ``k`` into ``tabs[thread]`` (2, mj, mi, 3).

    ``tabs[thread, 0]`` is the displacement, ``tabs[thread, 1]`` its k derivative.
    """
    if elastic:
        _contract(ctrl, qk[k], wk[k], tabs[thread, 0])
        _contract(ctrl, qk[k], dwk[k], tabs[thread, 1])


@njit(cache=True, fastmath=False, inline="always")
def _taps4(tab: np.ndarray, c: int, a: int) -> tuple[float, float, float, float]:
    """Component ``a`` of the four control values from ``c`` on (loaded once per interval)."""
    return tab[c, a], tab[c + 1, a], tab[c + 2, a], tab[c + 3, a]


@njit(cache=True, fastmath=False, inline="always")
def _dot4(w0: float, w1: float, w2: float, w3: float, c: tuple[float, float, float, float]) -> float:
    """``w0 c0 + w1 c1 + w2 c2 + w3 c3``, summed in that order."""
    return w0 * c[0] + w1 * c[1] + w2 * c[2] + w3 * c[3]


@njit(cache=True, fastmath=False, inline="always")
def _source_index(
    x0: float,
    x1: float,
    x2: float,
    w: tuple[float, float, float, float],
    cu0: tuple[float, float, float, float],
    cu1: tuple[float, float, float, float],
    cu2: tuple[float, float, float, float],
    m: tuple[float, float, float, float, float, float, float, float, float],
    o: tuple[float, float, float],
) -> tuple[float, float, float]:
    """``mat @ (x + u) + off`` for the voxel at index ``x``, ``u`` from weights ``w`` and the interval's control values."""
    y0 = x0 + _dot4(w[0], w[1], w[2], w[3], cu0)
    y1 = x1 + _dot4(w[0], w[1], w[2], w[3], cu1)
    y2 = x2 + _dot4(w[0], w[1], w[2], w[3], cu2)
    return (
        m[0] * y0 + m[1] * y1 + m[2] * y2 + o[0],
        m[3] * y0 + m[4] * y1 + m[5] * y2 + o[1],
        m[6] * y0 + m[7] * y1 + m[8] * y2 + o[2],
    )


@njit(cache=True, fastmath=False)
def _row_coords(
    k: int,
    j: int,
    mat: np.ndarray,
    off: np.ndarray,
    elastic: bool,
    tabs: np.ndarray,
    qj: np.ndarray,
    wj: np.ndarray,
    dwj: np.ndarray,
    seg_first: np.ndarray,
    seg_start: np.ndarray,
    wi_t: np.ndarray,
    dwi_t: np.ndarray,
    rows: np.ndarray,
    coords: np.ndarray,
    thread: int,
    jacobian: bool,
) -> tuple[float, float]:
    """Source indices of one output row into ``coords[thread, 0:3]``; returns the row's Jacobian extremes.

    With ``elastic``, the displacement ``u`` and its derivatives are evaluated
    per voxel from the four control values of the voxel's interval along i
    (``tabs[thread]`` from :func:`_slice_tables`, contracted along j into
    ``rows[thread]`` here), and with ``jacobian`` ``coords[thread, 3]`` receives
    ``det(I + du/dindex)`` (else the extremes are given as 1).
    """
    zs, ys, xs, det = coords[thread, 0], coords[thread, 1], coords[thread, 2], coords[thread, 3]
    p, p_dk = tabs[thread, 0], tabs[thread, 1]
    n_i = zs.shape[0]
    m00, m01, m02 = mat[0, 0], mat[0, 1], mat[0, 2]
    m10, m11, m12 = mat[1, 0], mat[1, 1], mat[1, 2]
    m20, m21, m22 = mat[2, 0], mat[2, 1], mat[2, 2]
    o0, o1, o2 = off[0], off[1], off[2]
    x0 = float(k)
    x1 = float(j)
    if not elastic:
        for i in range(n_i):
            x2 = float(i)
            zs[i] = m00 * x0 + m01 * x1 + m02 * x2 + o0
            ys[i] = m10 * x0 + m11 * x1 + m12 * x2 + o1
            xs[i] = m20 * x0 + m21 * x1 + m22 * x2 + o2
        return 1.0, 1.0
    # The slice's tables contracted along j: this row's control values along i.
    r, r_dk, r_dj = rows[thread, 0], rows[thread, 1], rows[thread, 2]
    _contract(p, qj[j], wj[j], r)
    if jacobian:
        _contract(p_dk, qj[j], wj[j], r_dk)
        _contract(p, qj[j], dwj[j], r_dj)
    m = (m00, m01, m02, m10, m11, m12, m20, m21, m22)
    o = (o0, o1, o2)
    for s in range(seg_first.shape[0]):
        c = seg_first[s]
        # The interval's control values stay in registers across its voxels.
        cu0, cu1, cu2 = _taps4(r, c, 0), _taps4(r, c, 1), _taps4(r, c, 2)
        # Unsigned loop bounds: numba then skips its negative-index wrap-around, which
        # would otherwise turn these loops' vector loads into gathers.
        start, stop = np.uint64(seg_start[s]), np.uint64(seg_start[s + 1])
        if not jacobian:
            for i in range(start, stop):
                w = (wi_t[0, i], wi_t[1, i], wi_t[2, i], wi_t[3, i])
                zs[i], ys[i], xs[i] = _source_index(x0, x1, float(i), w, cu0, cu1, cu2, m, o)
            continue
        ck0, ck1, ck2 = _taps4(r_dk, c, 0), _taps4(r_dk, c, 1), _taps4(r_dk, c, 2)
        cj0, cj1, cj2 = _taps4(r_dj, c, 0), _taps4(r_dj, c, 1), _taps4(r_dj, c, 2)
        # One loop for the determinant and the indices: the weights are loaded once.
        for i in range(start, stop):
            w0, w1, w2, w3 = wi_t[0, i], wi_t[1, i], wi_t[2, i], wi_t[3, i]
            d0, d1, d2, d3 = dwi_t[0, i], dwi_t[1, i], dwi_t[2, i], dwi_t[3, i]
            # g_ab = d(displacement a)/d(index b), b in (k, j, i)
            g00 = _dot4(w0, w1, w2, w3, ck0)
            g10 = _dot4(w0, w1, w2, w3, ck1)
            g20 = _dot4(w0, w1, w2, w3, ck2)
            g01 = _dot4(w0, w1, w2, w3, cj0)
            g11 = _dot4(w0, w1, w2, w3, cj1)
            g21 = _dot4(w0, w1, w2, w3, cj2)
            g02 = _dot4(d0, d1, d2, d3, cu0)
            g12 = _dot4(d0, d1, d2, d3, cu1)
            g22 = _dot4(d0, d1, d2, d3, cu2)
            a00 = 1.0 + g00
            a11 = 1.0 + g11
            a22 = 1.0 + g22
            det[i] = (
                a00 * (a11 * a22 - g12 * g21)
                - g01 * (g10 * a22 - g12 * g20)
                + g02 * (g10 * g21 - a11 * g20)
            )
            zs[i], ys[i], xs[i] = _source_index(x0, x1, float(i), (w0, w1, w2, w3), cu0, cu1, cu2, m, o)
    if not jacobian:
        return 1.0, 1.0
    return _extremes(det)


@njit(cache=True, fastmath=False)
def _extremes(v: np.ndarray) -> tuple[float, float]:
    """Smallest and largest of ``v`` (inf, -inf when empty).

    Four running pairs taken in a fixed order: four independent chains instead of
    one, so the loop is not held up by the latency of each comparison. Min and max
    are exact, so the grouping changes no value (only which of two equal zeros of
    opposite sign is kept, and a zero determinant is a fold, refused either way).
    """
    lo0 = lo1 = lo2 = lo3 = math.inf
    hi0 = hi1 = hi2 = hi3 = -math.inf
    n = v.shape[0]
    quads = n - n % 4
    for i in range(0, quads, 4):
        lo0, hi0 = min(lo0, v[i]), max(hi0, v[i])
        lo1, hi1 = min(lo1, v[i + 1]), max(hi1, v[i + 1])
        lo2, hi2 = min(lo2, v[i + 2]), max(hi2, v[i + 2])
        lo3, hi3 = min(lo3, v[i + 3]), max(hi3, v[i + 3])
    for i in range(quads, n):
        lo0, hi0 = min(lo0, v[i]), max(hi0, v[i])
    return min(min(lo0, lo1), min(lo2, lo3)), max(max(hi0, hi1), max(hi2, hi3))


@njit(cache=True, fastmath=False, inline="always")
def _inside(z: float, y: float, x: float, nk: int, nj: int, ni: int) -> bool:
    # A voxel covers ±half a voxel around its centre. Non-short-circuit ``&`` keeps the
    # test branch-free, so the loops that use it vectorise.
    return (-0.5 <= z) & (z <= nk - 0.5) & (-0.5 <= y) & (y <= nj - 0.5) & (-0.5 <= x) & (x <= ni - 0.5)


@njit(cache=True, fastmath=False, inline="always")
def _clamp(v: float, hi: int) -> float:
    """``v`` clamped into ``[0, hi]``; a NaN becomes 0 so no index derived from it can leave the array."""
    c = v if v >= 0.0 else 0.0
    return c if c <= hi else float(hi)


@njit(cache=True, fastmath=False, inline="always")
def _lin_taps(c: float, n: int, stride: int) -> tuple[np.uint64, np.uint64, float]:
    """Offset of the lower tap, step to the upper tap (0 or ``stride``) and fraction, for ``c`` in [0, n - 1].

    Offsets are unsigned: numba then indexes without its negative-index wrap-around.
    """
    lo = min(int(c), max(n - 2, 0))  # c >= 0: truncation is the floor
    # The upper tap is lo + 1 whenever the axis has two voxels (lo <= n - 2), else lo itself.
    step = stride if n > 1 else 0
    return np.uint64(lo * stride), np.uint64(step), c - lo


@njit(cache=True, fastmath=False, inline="always")
def _cubic_weights(t: float) -> tuple[float, float, float, float]:
    """Catmull-Rom (cubic convolution, a = -0.5) weights; exactly (0, 1, 0, 0) at t = 0."""
    t2 = t * t
    t3 = t2 * t
    return (
        0.5 * (-t3 + 2.0 * t2 - t),
        0.5 * (3.0 * t3 - 5.0 * t2 + 2.0),
        0.5 * (-3.0 * t3 + 4.0 * t2 + t),
        0.5 * (t3 - t2),
    )


@njit(cache=True, fastmath=False, inline="always")
def _cubic_taps(v: float, n: int, stride: int) -> tuple[np.uint64, np.uint64, np.uint64, np.uint64]:
    """Offsets (``stride`` × edge-clamped index, unsigned) of the four cubic taps around ``v`` in [0, n - 1].

    One multiplication: clamping commutes with scaling by ``stride`` > 0, so the
    neighbours' offsets are the centre's plus or minus ``stride``, clamped.
    """
    o = int(v) * stride  # v >= 0: truncation is the floor
    top = (n - 1) * stride
    return (
        np.uint64(max(o - stride, 0)),
        np.uint64(o),
        np.uint64(min(o + stride, top)),
        np.uint64(min(o + stride + stride, top)),
    )


@njit(cache=True, fastmath=False, inline="always")
def _trilinear(
    flat: np.ndarray, b: np.uint64, dz: np.uint64, dy: np.uint64, dx: np.uint64, fz: float, fy: float, fx: float,
    paired: bool,
) -> float:
    """Trilinear value from the lower corner at offset ``b`` and the steps to the upper taps.

    With ``paired`` (``dx`` is 0 or 1: one channel), each pair of taps along x is
    read from one word (:func:`_read`).
    """
    gx = 1.0 - fx
    gy = 1.0 - fy
    r00, r01, r10, r11 = b, b + dy, b + dz, b + dz + dy
    c00 = _read(flat, r00, r00) * gx + _read(flat, r00 if paired else r00 + dx, r00 + dx) * fx
    c01 = _read(flat, r01, r01) * gx + _read(flat, r01 if paired else r01 + dx, r01 + dx) * fx
    c10 = _read(flat, r10, r10) * gx + _read(flat, r10 if paired else r10 + dx, r10 + dx) * fx
    c11 = _read(flat, r11, r11) * gx + _read(flat, r11 if paired else r11 + dx, r11 + dx) * fx
    c0 = c00 * gy + c01 * fy
    c1 = c10 * gy + c11 * fy
    return c0 * (1.0 - fz) + c1 * fz


@njit(cache=True, fastmath=False)
def _line(
    flat: np.ndarray, b: np.uint64,
    x0: np.uint64, x1: np.uint64, x2: np.uint64, x3: np.uint64,
    wx0: float, wx1: float, wx2: float, wx3: float, paired: bool,
) -> float:
    """Four taps along x from offset ``b``, summed in tap order.

    With ``paired`` (one channel: the second tap is the first or the next
    element, and so is the fourth of the third), each pair is read from one word
    (:func:`_read`).
    """
    t0, t1, t2, t3 = b + x0, b + x1, b + x2, b + x3
    return (
        0.0 + wx0 * _read(flat, t0, t0) + wx1 * _read(flat, t0 if paired else t1, t1)
        + wx2 * _read(flat, t2, t2) + wx3 * _read(flat, t2 if paired else t3, t3)
    )


@njit(cache=True, fastmath=False, inline="always")
def _tricubic(
    flat: np.ndarray,
    z0: np.uint64, z1: np.uint64, z2: np.uint64, z3: np.uint64,
    y0: np.uint64, y1: np.uint64, y2: np.uint64, y3: np.uint64,
    x0: np.uint64, x1: np.uint64, x2: np.uint64, x3: np.uint64,
    wz0: float, wz1: float, wz2: float, wz3: float,
    wy0: float, wy1: float, wy2: float, wy3: float,
    wx0: float, wx1: float, wx2: float, wx3: float,
    paired: bool,
) -> float:
    """Catmull-Rom value from tap offsets and weights: sums along x, then y, then z, each from 0 in tap order.

    Written out rather than looped over z: a loop left in the body keeps LLVM from
    vectorising the voxel loop around it, and LLVM stops unrolling it once 16-bit
    reads make the body larger. :func:`_plane` is inlined by numba, :func:`_line`
    left to LLVM: inlining all sixteen lines in numba more than doubles the
    kernels' compile time.
    """
    y = (y0, y1, y2, y3)
    x = (x0, x1, x2, x3)
    wy = (wy0, wy1, wy2, wy3)
    wx = (wx0, wx1, wx2, wx3)
    return (
        0.0
        + wz0 * _plane(flat, z0, y, x, wy, wx, paired)
        + wz1 * _plane(flat, z1, y, x, wy, wx, paired)
        + wz2 * _plane(flat, z2, y, x, wy, wx, paired)
        + wz3 * _plane(flat, z3, y, x, wy, wx, paired)
    )


@njit(cache=True, fastmath=False, inline="always")
def _plane(
    flat: np.ndarray,
    za: np.uint64,
    y: tuple[np.uint64, np.uint64, np.uint64, np.uint64],
    x: tuple[np.uint64, np.uint64, np.uint64, np.uint64],
    wy: tuple[float, float, float, float],
    wx: tuple[float, float, float, float],
    paired: bool,
) -> float:
    """The four x-lines of the plane at offset ``za``, weighted along y and summed from 0 in tap order."""
    return (
        0.0
        + wy[0] * _line(flat, za + y[0], x[0], x[1], x[2], x[3], wx[0], wx[1], wx[2], wx[3], paired)
        + wy[1] * _line(flat, za + y[1], x[0], x[1], x[2], x[3], wx[0], wx[1], wx[2], wx[3], paired)
        + wy[2] * _line(flat, za + y[2], x[0], x[1], x[2], x[3], wx[0], wx[1], wx[2], wx[3], paired)
        + wy[3] * _line(flat, za + y[3], x[0], x[1], x[2], x[3], wx[0], wx[1], wx[2], wx[3], paired)
    )


@njit(inline="always", cache=True)
def _store(v: float, lo: float, hi: float, rounding: bool) -> float:
    v = min(max(v, lo), hi)
    return math.floor(v + 0.5) if rounding else v


@njit(cache=True, fastmath=False)
def _row_factors(
    k: int,
    j: int,
    gain: float,
    bias_coef: np.ndarray,
    bias_exp: np.ndarray,
    powk: np.ndarray,
    powj: np.ndarray,
    powi: np.ndarray,
    facs: np.ndarray,
    thread: int,
) -> None:
    """``gain * (1 + bias)`` of every voxel of a row into ``facs[thread]``."""
    fac = facs[thread]
    nb = bias_coef.shape[0]
    for i in range(fac.shape[0]):
        b = 0.0
        for t in range(nb):
            b += bias_coef[t] * powk[k, bias_exp[t, 0]] * powj[j, bias_exp[t, 1]] * powi[i, bias_exp[t, 2]]
        fac[i] = gain * (1.0 + b)


@njit(cache=True, fastmath=False, inline="always")
def _linear_at(
    flat: np.ndarray, sk: int, sj: int, si: int, nc: int, ch: np.uint64, z: float, y: float, x: float
) -> float:
    """Trilinear value of channel ``ch`` at index ``(z, y, x)``; taps beyond an edge take the edge's value.

    Branch-free, so a loop over voxels vectorises (with gathers where the CPU has them).
    Away from the edges the clamps change nothing: the taps and fractions are those
    of the plain formula.
    """
    oz, dz, fz = _lin_taps(_clamp(z, sk - 1), sk, sj * si * nc)
    oy, dy, fy = _lin_taps(_clamp(y, sj - 1), sj, si * nc)
    ox, dx, fx = _lin_taps(_clamp(x, si - 1), si, nc)
    return _trilinear(flat, oz + oy + ox + ch, dz, dy, dx, fz, fy, fx, nc == 1)


@njit(cache=True, fastmath=False, inline="always")
def _cubic_at(
    flat: np.ndarray, sk: int, sj: int, si: int, nc: int, ch: np.uint64, z: float, y: float, x: float
) -> float:
    """Catmull-Rom value of channel ``ch`` at index ``(z, y, x)``; taps beyond an edge take the edge's value.

    Branch-free like :func:`_linear_at`.
    """
    zc = _clamp(z, sk - 1)
    yc = _clamp(y, sj - 1)
    xc = _clamp(x, si - 1)
    wz0, wz1, wz2, wz3 = _cubic_weights(zc - int(zc))
    wy0, wy1, wy2, wy3 = _cubic_weights(yc - int(yc))
    wx0, wx1, wx2, wx3 = _cubic_weights(xc - int(xc))
    z0, z1, z2, z3 = _cubic_taps(zc, sk, sj * si * nc)
    y0, y1, y2, y3 = _cubic_taps(yc, sj, si * nc)
    x0, x1, x2, x3 = _cubic_taps(xc, si, nc)
    return _tricubic(
        flat, z0 + ch, z1 + ch, z2 + ch, z3 + ch, y0, y1, y2, y3, x0, x1, x2, x3,
        wz0, wz1, wz2, wz3, wy0, wy1, wy2, wy3, wx0, wx1, wx2, wx3, nc == 1,
    )


@njit(cache=True, fastmath=False, inline="always")
def _finish(
    v: float, inside: bool, intensity: bool, fac: float, shift: float, filled: float, lo: float, hi: float,
    rounding: bool,
) -> float:
    """The stored value of a voxel: intensity change, clip and rounding inside, ``filled`` outside."""
    if intensity:
        v = v * fac + shift
    return _store(v, lo, hi, rounding) if inside else filled


@njit(cache=True, fastmath=False, inline="always")
def _interp_row(
    flat: np.ndarray,
    cubic: bool,
    sk: int,
    sj: int,
    si: int,
    nc: int,
    coords: np.ndarray,
    thread: int,
    out: np.ndarray,
    k: int,
    j: int,
    intensity: bool,
    facs: np.ndarray,
    shift: float,
    filled: float,
    lo: float,
    hi: float,
    rounding: bool,
) -> None:
    """Trilinear or Catmull-Rom values of output row ``out[k, j]`` (``ni * nc``) at the source indices in ``coords[thread]``.

    Channel ``ch`` of voxel ``(k, j, i)`` is ``flat[((k * sj + j) * si + i) * nc + ch]``.
    Every voxel is interpolated (an outside one at its clamped position, then
    replaced by ``filled``): no branch in the loops, which vectorise. This is
    inlined into the parallel loop of :func:`warp_values` and reads and writes
    arrays element by element, never through a view: numba then declares the
    loop body's arrays free of aliasing, and only so can LLVM gather from
    ``flat`` while it stores to ``out``.
    """
    n = coords.shape[2]
    if nc == 1 and cubic:
        # One loop per case so that each is free of branches.
        for i in range(n):
            z, y, x = coords[thread, 0, i], coords[thread, 1, i], coords[thread, 2, i]
            v = _cubic_at(flat, sk, sj, si, 1, np.uint64(0), z, y, x)
            out[k, j, i] = _finish(
                v, _inside(z, y, x, sk, sj, si), intensity, facs[thread, i], shift, filled, lo, hi, rounding
            )
    elif nc == 1:
        for i in range(n):
            z, y, x = coords[thread, 0, i], coords[thread, 1, i], coords[thread, 2, i]
            v = _linear_at(flat, sk, sj, si, 1, np.uint64(0), z, y, x)
            out[k, j, i] = _finish(
                v, _inside(z, y, x, sk, sj, si), intensity, facs[thread, i], shift, filled, lo, hi, rounding
            )
    else:
        for i in range(n):
            z, y, x = coords[thread, 0, i], coords[thread, 1, i], coords[thread, 2, i]
            inside = _inside(z, y, x, sk, sj, si)
            for ch in range(np.uint64(nc)):
                if cubic:
                    v = _cubic_at(flat, sk, sj, si, nc, np.uint64(ch), z, y, x)
                else:
                    v = _linear_at(flat, sk, sj, si, nc, np.uint64(ch), z, y, x)
                out[k, j, i * nc + ch] = _finish(
                    v, inside, intensity, facs[thread, i], shift, filled, lo, hi, rounding
                )


def chunk_count(n_slices: int) -> int:
    """How many runs of slices the parallel loops split a volume into: one per numba thread.

    Results do not depend on it (every slice is computed alone), only the
    scratch memory does: a few kilobytes per chunk.
    """
    return max(1, min(n_slices, get_num_threads()))


@njit(cache=True, fastmath=False)
def _scratch(chunks: int, ni: int, ctrl: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-chunk buffers: slice tables (2, mj, mi, 3), control rows (3, mi, 3), a row's indices and determinants (4, ni)."""
    mj, mi = ctrl.shape[1], ctrl.shape[2]
    return np.zeros((chunks, 2, mj, mi, 3)), np.zeros((chunks, 3, mi, 3)), np.empty((chunks, 4, ni))


@njit(parallel=True, cache=True, fastmath=False)
def warp_values(
    flat: np.ndarray,
    out: np.ndarray,
    mat: np.ndarray,
    off: np.ndarray,
    elastic: bool,
    ctrl: np.ndarray,
    qk: np.ndarray,
    wk: np.ndarray,
    dwk: np.ndarray,
    qj: np.ndarray,
    wj: np.ndarray,
    dwj: np.ndarray,
    qi: np.ndarray,
    wi: np.ndarray,
    dwi: np.ndarray,
    order: int,
    fill: float,
    intensity: bool,
    gain: float,
    shift: float,
    bias_coef: np.ndarray,
    bias_exp: np.ndarray,
    powk: np.ndarray,
    powj: np.ndarray,
    powi: np.ndarray,
    lo: float,
    hi: float,
    rounding: bool,
    jmin: np.ndarray,
    jmax: np.ndarray,
    chunks: int,
) -> None:
    """Resample the flat source ``flat`` (k, j, i, c in C order) into ``out`` (k, j, i, c).

    Linear (``order`` 1) or cubic interpolation. Inside values get
    ``v * gain * (1 + bias) + shift`` when ``intensity``; outside voxels get
    ``fill``; everything is clipped to ``[lo, hi]`` and, with ``rounding`` (an
    integer ``out``), rounded half up. Per-slice Jacobian extremes go to
    ``jmin``/``jmax``. The source has the output's shape. The slices are split
    into ``chunks`` runs (:func:`chunk_count`), run in parallel.
    """
    nk, nj, ni, nc = out.shape
    rows_out = out.reshape((nk, nj, ni * nc))
    filled = _store(fill, lo, hi, rounding)
    seg_first, seg_start = _segments(qi)
    wi_t = np.ascontiguousarray(wi.T)
    dwi_t = np.ascontiguousarray(dwi.T)
    # The buffers are made here and indexed by chunk inside the loop: numba declares
    # a parallel loop's arrays free of aliasing only when its body makes no array and
    # takes no view of one (see _interp_row).
    tabs, rows, coords = _scratch(chunks, ni, ctrl)
    facs = np.empty((chunks, ni))
    for c in prange(chunks):
        for k in range(c * nk // chunks, (c + 1) * nk // chunks):
            _slice_tables(k, elastic, ctrl, qk, wk, dwk, tabs, c)
            smin = math.inf
            smax = -math.inf
            for j in range(nj):
                rmin, rmax = _row_coords(
                    k, j, mat, off, elastic, tabs, qj, wj, dwj, seg_first, seg_start, wi_t, dwi_t, rows, coords, c,
                    True,
                )
                smin = min(smin, rmin)
                smax = max(smax, rmax)
                if intensity:
                    _row_factors(k, j, gain, bias_coef, bias_exp, powk, powj, powi, facs, c)
                _interp_row(
                    flat, order == 3, nk, nj, ni, nc, coords, c, rows_out, k, j,
                    intensity, facs, shift, filled, lo, hi, rounding,
                )
            jmin[k] = smin
            jmax[k] = smax


@njit(parallel=True, cache=True, fastmath=False)
def warp_nearest(
    flat: np.ndarray,
    out: np.ndarray,
    mat: np.ndarray,
    off: np.ndarray,
    elastic: bool,
    ctrl: np.ndarray,
    qk: np.ndarray,
    wk: np.ndarray,
    dwk: np.ndarray,
    qj: np.ndarray,
    wj: np.ndarray,
    dwj: np.ndarray,
    qi: np.ndarray,
    wi: np.ndarray,
    dwi: np.ndarray,
    fill: np.ndarray,
    chunks: int,
) -> None:
    """Resample the flat source ``flat`` into ``out`` of the same dtype by nearest neighbour.

    ``fill`` is a one-element array of the output dtype (keeps integer labels exact).
    """
    nk, nj, ni, nc = out.shape
    seg_first, seg_start = _segments(qi)
    wi_t = np.ascontiguousarray(wi.T)
    dwi_t = np.ascontiguousarray(dwi.T)
    tabs, rows, coords = _scratch(chunks, ni, ctrl)
    for c in prange(chunks):
        for k in range(c * nk // chunks, (c + 1) * nk // chunks):
            _slice_tables(k, elastic, ctrl, qk, wk, dwk, tabs, c)
            for j in range(nj):
                # Labels need no Jacobian: the image's warp measures it.
                _row_coords(
                    k, j, mat, off, elastic, tabs, qj, wj, dwj, seg_first, seg_start, wi_t, dwi_t, rows, coords, c,
                    False,
                )
                for i in range(ni):
                    z = coords[c, 0, i]
                    y = coords[c, 1, i]
                    x = coords[c, 2, i]
                    if _inside(z, y, x, nk, nj, ni):
                        zn = min(int(math.floor(_clamp(z, nk - 1) + 0.5)), nk - 1)
                        yn = min(int(math.floor(_clamp(y, nj - 1) + 0.5)), nj - 1)
                        xn = min(int(math.floor(_clamp(x, ni - 1) + 0.5)), ni - 1)
                        b = ((zn * nj + yn) * ni + xn) * nc
                        for ch in range(nc):
                            out[k, j, i, ch] = flat[b + ch]
                    else:
                        for ch in range(nc):
                            out[k, j, i, ch] = fill[0]
