"""Fused resampling kernels (numba): field, mapping and interpolation in one pass.

For every output voxel the kernels evaluate the cubic B-spline displacement
(separably, from per-axis tap tables), add it to the voxel index, apply the
affine part (rotation about the centre, expressed in index space) and
interpolate the source there, writing straight into the output. No coordinate
array larger than one row exists, so memory stays at the output array plus a
few kilobytes per thread.

Determinism: every output voxel is computed by the same sequence of float64
operations whichever thread runs it, and the per-slice Jacobian extremes are
combined in slice order by the caller, so results are bit-identical for any
thread count (``fastmath`` stays off so LLVM may not reorder sums).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# Index-space arguments shared by both kernels (see resample.Mapping):
#   mat (3, 3), off (3,): source index = mat @ (index + displacement) + off
#   ctrl (mk, mj, mi, 3): control displacements in *voxel* units of each axis
#   qX (n,), wX (n, 4), dwX (n, 4): first tap, weights, d/dindex of weights


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
def _slice_scratch(
    k: int, elastic: bool, ctrl: np.ndarray, qk: np.ndarray, wk: np.ndarray, dwk: np.ndarray, ni: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A thread's working arrays for one output slice (a few kilobytes).

    ``p``, ``p_dk`` (mj, mi, 3): the control grid contracted along k (the
    displacement and its k derivative), still to be combined along j per row
    and along i per voxel; ``r``, ``r_dk``, ``r_dj`` (mi, 3): room for a row's
    tables; ``zs``, ``ys``, ``xs``: a row's source indices.
    """
    mi = ctrl.shape[2] if elastic else 1
    if elastic:
        p = np.zeros((ctrl.shape[1], mi, 3))
        p_dk = np.zeros((ctrl.shape[1], mi, 3))
        _contract(ctrl, qk[k], wk[k], p)
        _contract(ctrl, qk[k], dwk[k], p_dk)
    else:
        p = np.zeros((1, 1, 3))
        p_dk = p
    return p, p_dk, np.zeros((mi, 3)), np.zeros((mi, 3)), np.zeros((mi, 3)), np.empty(ni), np.empty(ni), np.empty(ni)


@njit(cache=True, fastmath=False)
def _row_coords(
    k: int,
    j: int,
    mat: np.ndarray,
    off: np.ndarray,
    elastic: bool,
    p: np.ndarray,
    p_dk: np.ndarray,
    qj: np.ndarray,
    wj: np.ndarray,
    dwj: np.ndarray,
    qi: np.ndarray,
    wi: np.ndarray,
    dwi: np.ndarray,
    r: np.ndarray,
    r_dk: np.ndarray,
    r_dj: np.ndarray,
    zs: np.ndarray,
    ys: np.ndarray,
    xs: np.ndarray,
) -> tuple[float, float]:
    """Source indices of one output row into ``zs``, ``ys``, ``xs``; returns the row's Jacobian extremes.

    ``p`` ... ``r_dj`` come from :func:`_slice_scratch` (unused without ``elastic``).
    """
    if elastic:
        # The slice's tables contracted along j: this row's displacement and derivatives.
        _contract(p, qj[j], wj[j], r)
        _contract(p_dk, qj[j], wj[j], r_dk)
        _contract(p, qj[j], dwj[j], r_dj)
    n_i = zs.shape[0]
    jmin = math.inf
    jmax = -math.inf
    for i in range(n_i):
        x0 = float(k)
        x1 = float(j)
        x2 = float(i)
        if elastic:
            u0 = 0.0
            u1 = 0.0
            u2 = 0.0
            # g_ab = d(displacement a)/d(index b), b in (k, j, i)
            g00 = 0.0
            g01 = 0.0
            g02 = 0.0
            g10 = 0.0
            g11 = 0.0
            g12 = 0.0
            g20 = 0.0
            g21 = 0.0
            g22 = 0.0
            for t in range(4):
                w = wi[i, t]
                dw = dwi[i, t]
                if w == 0.0 and dw == 0.0:
                    continue
                c = qi[i] + t
                # Written out per component so the twelve sums stay in registers.
                u0 += w * r[c, 0]
                u1 += w * r[c, 1]
                u2 += w * r[c, 2]
                g00 += w * r_dk[c, 0]
                g10 += w * r_dk[c, 1]
                g20 += w * r_dk[c, 2]
                g01 += w * r_dj[c, 0]
                g11 += w * r_dj[c, 1]
                g21 += w * r_dj[c, 2]
                g02 += dw * r[c, 0]
                g12 += dw * r[c, 1]
                g22 += dw * r[c, 2]
            a00 = 1.0 + g00
            a11 = 1.0 + g11
            a22 = 1.0 + g22
            det = (
                a00 * (a11 * a22 - g12 * g21)
                - g01 * (g10 * a22 - g12 * g20)
                + g02 * (g10 * g21 - a11 * g20)
            )
            if det < jmin:
                jmin = det
            if det > jmax:
                jmax = det
            x0 += u0
            x1 += u1
            x2 += u2
        zs[i] = mat[0, 0] * x0 + mat[0, 1] * x1 + mat[0, 2] * x2 + off[0]
        ys[i] = mat[1, 0] * x0 + mat[1, 1] * x1 + mat[1, 2] * x2 + off[1]
        xs[i] = mat[2, 0] * x0 + mat[2, 1] * x1 + mat[2, 2] * x2 + off[2]
    return jmin, jmax


@njit(cache=True, fastmath=False, inline="always")
def _inside(z: float, y: float, x: float, nk: int, nj: int, ni: int) -> bool:
    # A voxel covers ±half a voxel around its centre.
    return -0.5 <= z <= nk - 0.5 and -0.5 <= y <= nj - 0.5 and -0.5 <= x <= ni - 0.5


@njit(cache=True, fastmath=False, inline="always")
def _clamp(v: float, hi: int) -> float:
    if v < 0.0:
        return 0.0
    if v > hi:
        return float(hi)
    return v


@njit(cache=True, fastmath=False, inline="always")
def _lin_taps(v: float, n: int) -> tuple[int, int, float]:
    """Lower tap, upper tap and fraction for linear interpolation (edge-clamped)."""
    c = _clamp(v, n - 1)
    lo = int(math.floor(c))
    if lo > n - 2:
        lo = max(n - 2, 0)
    hi = min(lo + 1, n - 1)
    return lo, hi, c - lo


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


@njit(inline="always", cache=True)
def _store(v: float, lo: float, hi: float, rounding: bool) -> float:
    v = min(max(v, lo), hi)
    return math.floor(v + 0.5) if rounding else v


@njit(parallel=True, cache=True, fastmath=False)
def warp_values(
    src: np.ndarray,
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
) -> None:
    """Resample ``src`` (k, j, i, c) into ``out`` by linear or cubic interpolation.

    Inside values get ``v * gain * (1 + bias) + shift`` when ``intensity``;
    outside voxels get ``fill``; everything is clipped to ``[lo, hi]`` and, with
    ``rounding`` (an integer ``out``), rounded half up. Per-slice Jacobian
    extremes go to ``jmin``/``jmax``.
    """
    nk, nj, ni, nc = out.shape
    sk, sj, si = src.shape[0], src.shape[1], src.shape[2]
    nb = bias_coef.shape[0]
    for k in prange(nk):
        p, p_dk, r, r_dk, r_dj, zs, ys, xs = _slice_scratch(k, elastic, ctrl, qk, wk, dwk, ni)
        smin = math.inf
        smax = -math.inf
        for j in range(nj):
            rmin, rmax = _row_coords(k, j, mat, off, elastic, p, p_dk, qj, wj, dwj, qi, wi, dwi, r, r_dk, r_dj, zs, ys, xs)
            smin = min(smin, rmin)
            smax = max(smax, rmax)
            for i in range(ni):
                z = zs[i]
                y = ys[i]
                x = xs[i]
                factor = gain
                if intensity and nb > 0:
                    b = 0.0
                    for t in range(nb):
                        b += (
                            bias_coef[t]
                            * powk[k, bias_exp[t, 0]]
                            * powj[j, bias_exp[t, 1]]
                            * powi[i, bias_exp[t, 2]]
                        )
                    factor = gain * (1.0 + b)
                inside = _inside(z, y, x, sk, sj, si)
                if order == 1 and inside:
                    z0, z1, fz = _lin_taps(z, sk)
                    y0, y1, fy = _lin_taps(y, sj)
                    x0, x1, fx = _lin_taps(x, si)
                    for ch in range(nc):
                        c00 = src[z0, y0, x0, ch] * (1.0 - fx) + src[z0, y0, x1, ch] * fx
                        c01 = src[z0, y1, x0, ch] * (1.0 - fx) + src[z0, y1, x1, ch] * fx
                        c10 = src[z1, y0, x0, ch] * (1.0 - fx) + src[z1, y0, x1, ch] * fx
                        c11 = src[z1, y1, x0, ch] * (1.0 - fx) + src[z1, y1, x1, ch] * fx
                        c0 = c00 * (1.0 - fy) + c01 * fy
                        c1 = c10 * (1.0 - fy) + c11 * fy
                        v = c0 * (1.0 - fz) + c1 * fz
                        if intensity:
                            v = v * factor + shift
                        out[k, j, i, ch] = _store(v, lo, hi, rounding)
                elif inside:
                    zc = _clamp(z, sk - 1)
                    yc = _clamp(y, sj - 1)
                    xc = _clamp(x, si - 1)
                    zf = int(math.floor(zc))
                    yf = int(math.floor(yc))
                    xf = int(math.floor(xc))
                    wz = _cubic_weights(zc - zf)
                    wy = _cubic_weights(yc - yf)
                    wx = _cubic_weights(xc - xf)
                    for ch in range(nc):
                        v = 0.0
                        for a in range(4):
                            za = min(max(zf - 1 + a, 0), sk - 1)
                            plane = 0.0
                            for bb in range(4):
                                yb = min(max(yf - 1 + bb, 0), sj - 1)
                                line = 0.0
                                for cc in range(4):
                                    xc_ = min(max(xf - 1 + cc, 0), si - 1)
                                    line += wx[cc] * src[za, yb, xc_, ch]
                                plane += wy[bb] * line
                            v += wz[a] * plane
                        if intensity:
                            v = v * factor + shift
                        out[k, j, i, ch] = _store(v, lo, hi, rounding)
                else:
                    for ch in range(nc):
                        out[k, j, i, ch] = _store(fill, lo, hi, rounding)
        jmin[k] = smin
        jmax[k] = smax


@njit(parallel=True, cache=True, fastmath=False)
def warp_nearest(
    src: np.ndarray,
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
) -> None:
    """Resample ``src`` (k, j, i, c) into ``out`` of the same dtype by nearest neighbour.

    ``fill`` is a one-element array of the output dtype (keeps integer labels exact).
    """
    nk, nj, ni, nc = out.shape
    sk, sj, si = src.shape[0], src.shape[1], src.shape[2]
    for k in prange(nk):
        p, p_dk, r, r_dk, r_dj, zs, ys, xs = _slice_scratch(k, elastic, ctrl, qk, wk, dwk, ni)
        for j in range(nj):
            _row_coords(k, j, mat, off, elastic, p, p_dk, qj, wj, dwj, qi, wi, dwi, r, r_dk, r_dj, zs, ys, xs)
            for i in range(ni):
                z = zs[i]
                y = ys[i]
                x = xs[i]
                if _inside(z, y, x, sk, sj, si):
                    zn = min(int(math.floor(_clamp(z, sk - 1) + 0.5)), sk - 1)
                    yn = min(int(math.floor(_clamp(y, sj - 1) + 0.5)), sj - 1)
                    xn = min(int(math.floor(_clamp(x, si - 1) + 0.5)), si - 1)
                    for ch in range(nc):
                        out[k, j, i, ch] = src[zn, yn, xn, ch]
                else:
                    for ch in range(nc):
                        out[k, j, i, ch] = fill[0]
