"""Kernels of the ``interp`` quantizer: multilevel interpolation prediction on the reconstructed values.

The field, viewed as ``(P, R, W)``, is predicted level by level from the coarsest stride
``s = 2^(L-1)`` down to 1 (SZ3's interpolation decomposition, Zhao et al., ICDE 2021). Within a
level the three axes are taken in turn (0, then 1, then 2); along axis ``a`` the targets are the
points at odd multiples of ``s`` along ``a``, at multiples of ``s`` along the axes already taken in
this level and of ``2s`` along the others. Each target is predicted from the reconstructed points at
``±s`` and ``±3s`` along ``a`` (and ``-5s`` past the last point; all of them known by then) and its code is the prediction error in
steps of ``2 eb_l``; the point ``(0, 0, 0)`` comes first, predicted as the field's centre.

Predictions (``b``, ``c`` at ``-s``, ``+s``; ``a``, ``d`` at ``-3s``, ``+3s``; ``e`` at ``-5s``),
each the Lagrange polynomial through its points written as a mean plus a correction, so that a
constant field is predicted exactly in float64:

- cubic, interior: ``m + (m - (a + d)/2)/8`` with ``m = (b + c)/2``, i.e. ``(-a + 9b + 9c - d)/16``;
- cubic near the start or end: the quadratics through ``(b, c, d)`` or ``(a, b, c)``;
- linear: ``(b + c)/2``;
- past the last point (no ``c``): the quadratic through ``(e, a, b)`` (cubic), else the line through
  ``(a, b)``, else ``b`` (SZ3's edge rules).

A prediction that is not finite (overflowing neighbours) is replaced by the field's centre. The
reconstruction is ``x̂ = T(pred + code·step)`` in float64, rounded once to the data type T, and the
code is ``kernels.uniform``'s ``_code`` with the prediction as its centre: the nearest step, else its
neighbour, kept only if ``|x - x̂| <= eb_l`` in that arithmetic and within the code type. A value
with no code gets code 0 (``x̂ = T(pred)``); whether ``x̂`` holds the field's bound is checked once
more at the end (``count_misses``, in the blocks the sweep marked as holding such a point), and the
values that miss are the outliers whose raw bits the quantizer keeps. Encoder and decoder run the
same ``sweep``, so they see the same ``x̂`` bit for bit.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit, prange

from .lorenzo import _starts
from .uniform import CHUNK, _code, _nearest

AXES = (0, 1, 2)
"""The order of the axes within a level (SZ3's default direction: the slowest axis first)."""
MARK = 1024
"""Values per block that ``sweep`` marks where a point has no code within its bound (``marks``), and
that ``count_misses`` and ``gather_misses`` check as one vector loop."""


@njit(inline="always", cache=True)
def _predict(xh, f, off, i, s, n, cubic):
    """Prediction of ``xh[f]``, coordinate ``i`` along an axis of ``n`` points; ``off`` = ``s`` in flat units."""
    b = np.float64(xh[f - off])
    if i + s < n:
        c = np.float64(xh[f + off])
        m = (b + c) * 0.5
        if not cubic:
            return m
        left, right = i >= 3 * s, i + 3 * s < n
        if left and right:
            return m + (m - (np.float64(xh[f - 3 * off]) + np.float64(xh[f + 3 * off])) * 0.5) * 0.125
        if right:  # quadratic through -s, +s, +3s: (3b + 6c - d) / 8
            return m - (b - 2.0 * c + np.float64(xh[f + 3 * off])) * 0.125
        if left:  # quadratic through -3s, -s, +s: (-a + 6b + 3c) / 8
            return m - (np.float64(xh[f - 3 * off]) - 2.0 * b + c) * 0.125
        return m
    if i < 3 * s:
        return b
    a = np.float64(xh[f - 3 * off])
    if cubic and i >= 5 * s:  # quadratic through -5s, -3s, -s: (3e - 10a + 15b) / 8
        return b + (b - a) * 0.5 + (np.float64(xh[f - 5 * off]) - 2.0 * a + b) * 0.375
    return b + (b - a) * 0.5  # the line through -3s, -s


@njit(inline="always", cache=True)
def _point(x, xh, codes, out, f, k, pred, centre, inv, step, eb, lo, hi, encode, marks):
    """Encode (code of ``x[f]`` into ``out[k]``) or decode (``codes[k]``, which may be read-only) one
    point predicted as ``pred``; ``xh[f]`` = x̂. Encoding marks the block of a point no code holds
    (``marks[f // MARK]``, see ``sweep``)."""
    pred = pred if pred - pred == 0.0 else centre
    if encode:
        q, ok = _code(x[f], pred, inv, step, eb, lo, hi)  # 0 where no code holds the bound
        out[k] = q
        if not ok:
            marks[f // MARK] = True
    else:
        q = np.float64(codes[k])
    xh[f] = pred + q * step


@njit(inline="always", cache=True)
def _inner_formula(v, t, o, cubic):
    """The interior prediction of the target ``v[t]`` (``o`` = ``s`` in flat units; every index
    unsigned, so numba adds no negative-index handling): ``_predict``'s interior case, the same
    operations in the same order."""
    b = np.float64(v[t - o])
    m = (b + np.float64(v[t + o])) * 0.5
    if not cubic:
        return m
    o3 = np.uint64(3) * o
    return m + (m - (np.float64(v[t - o3]) + np.float64(v[t + o3])) * 0.5) * 0.125


@njit(inline="always", cache=True)
def _run(x, xh, codes, out, f, nj, off, dw, k, dk, cubic, centre, inv, step, eb, lo, hi, encode, pairs, marks):
    """The targets ``f + j·dw`` (``j < nj``), all interior (every neighbour the method reads is in the
    field), codes at ``k + j·dk``: ``_point(_predict(...))`` point by point in effect (the same
    operations, so the same bits), written as a loop LLVM vectorizes (the targets of a pass depend only
    on earlier passes, so its points are independent). The encoder's loop keeps the nearest code; the
    few whose nearest code misses ``eb`` are settled after it by ``_code``, point by point, and those
    no code holds mark their block (``marks``, see ``sweep``).

    ``pairs`` (the last axis at stride 1: literal ``off = 1``, ``dw = 2``, half of a field's points):
    the predictions are taken in a loop of their own, and the second loop stores each target together
    with the unchanged point before it, which LLVM writes as contiguous vectors instead of a scatter
    (the 2048 x 2048 pass decodes in 3.4 ms instead of 8)."""
    m = 3 * off if cubic else off
    v = xh[f - m:]  # the target j is v[t], t = m + j·dw
    xs, cs = x[f:], codes[k:] if not encode else codes[:0]
    os = out[k:] if encode else out[:0]
    mu, ou = np.uint64(m), np.uint64(off)
    misses = 0
    preds = np.empty(nj if pairs else 0)
    if pairs:
        for j in range(nj):
            pred = _inner_formula(v, np.uint64(j * dw) + mu, ou, cubic)
            preds[j] = pred if pred - pred == 0.0 else centre
    for j in range(nj):
        t = np.uint64(j * dw) + mu
        if pairs:
            pred = preds[j]
            v[t - np.uint64(1)] = v[t - np.uint64(1)]
        else:
            pred = _inner_formula(v, t, ou, cubic)
            pred = pred if pred - pred == 0.0 else centre
        if encode:
            q, ok, _ = _nearest(xs[np.uint64(j * dw)], pred, inv, step, eb, lo, hi)
            os[np.uint64(j * dk)] = q
            misses += not ok
        else:
            q = np.float64(cs[np.uint64(j * dk)])
        v[t] = pred + q * step
    if misses:
        for j in range(nj):
            t = np.uint64(j * dw) + mu
            if not _holds(xs[j * dw], v[t], eb):
                pred = _inner_formula(v, t, ou, cubic)
                pred = pred if pred - pred == 0.0 else centre
                q, ok = _code(xs[j * dw], pred, inv, step, eb, lo, hi)
                os[j * dk] = q
                v[t] = pred + q * step
                if not ok:
                    marks[(f + j * dw) // MARK] = True


@njit(inline="always", cache=True)
def _interior(i0, di, nj, s, n, cubic):
    """``[a, b)``: the ``j`` whose coordinate ``i0 + j·di`` is interior (``_predict``'s first branch
    with both neighbours at ``±3s`` for cubic, at ``±s`` for linear); the coordinates ascend."""
    reach = 3 * s if cubic else s
    a = 0 if i0 >= reach else min(nj, (reach - i0 + di - 1) // di)
    b = 0 if i0 + reach >= n else min(nj, (n - reach - i0 + di - 1) // di)
    return a, max(a, b)


@njit(parallel=True, cache=True, nogil=True)
def _step(x, xh, codes, out, R, W, axis, s, p0, dp, npl, r0, dr, nrw, w0, dw, nw, off, n, cubic, k0, ranked,
          centre, inv, step, eb, lo, hi, encode, marks):
    """One level's pass along ``axis`` (``s``, ``off``, ``n``: its stride, in flat units, and length):
    the targets ``(p0 + a·dp, r0 + b·dr, w0 + c·dw)``, rows ``(a, b)`` in parallel. Codes are at the
    targets' flat indices, or (``ranked``) at ``k0`` + their rank in this pass. Each row's interior
    runs through ``_run`` (with literal strides for the last axis at ``s = 1``), its edge points
    through ``_predict``/``_point``."""
    for item in prange(npl * nrw):
        p = p0 + (item // nrw) * dp
        r = r0 + (item % nrw) * dr
        base = (p * R + r) * W
        k = k0 + item * nw
        if axis == 2:
            a, b = _interior(w0, dw, nw, s, n, cubic)
        else:  # the coordinate along the axis is the row's: all of the row is interior or none
            a, b = _interior(p if axis == 0 else r, 1, 1, s, n, cubic)
            a, b = (0, nw) if b > a else (0, 0)
        if b > a:
            f = base + w0 + a * dw
            kj = k + a if ranked else f
            if ranked and s == 1 and axis == 2:
                _run(x, xh, codes, out, f, b - a, 1, 2, kj, 1, cubic, centre, inv, step, eb, lo, hi, encode, True,
                     marks)
            else:
                _run(x, xh, codes, out, f, b - a, off, dw, kj, 1 if ranked else dw, cubic, centre, inv, step, eb,
                     lo, hi, encode, False, marks)
        for j in range(nw - (b - a)):  # the edge points: j < a, then j >= b
            j = j if j < a else j + (b - a)
            w = w0 + j * dw
            f = base + w
            i = w if axis == 2 else (p if axis == 0 else r)
            _point(x, xh, codes, out, f, k + j if ranked else f, _predict(xh, f, off, i, s, n, cubic), centre, inv,
                   step, eb, lo, hi, encode, marks)


@njit(cache=True)
def _first(x, xh, codes, out, centre, inv, step, eb, lo, hi, encode, marks):
    """The point ``(0, 0, 0)``, predicted as the centre; its code is the first either way."""
    _point(x, xh, codes, out, 0, 0, centre, centre, inv, step, eb, lo, hi, encode, marks)


def levels(view: tuple[int, int, int]) -> int:
    """Number of levels ``L``: the coarsest stride ``2^(L-1)`` is below the longest axis."""
    return max((math.ceil(math.log2(n)) for n in view if n > 1), default=0)


def level_bound(eb: float, level: int, alpha: float, beta: float) -> float:
    """The bound of a level: ``eb / min(alpha^(level-1), beta)`` (QoZ's level-wise bounds, Liu et al.,
    SC 2022, as in SZ3): coarse points, which the finer levels are predicted from, are kept closer."""
    return eb / min(alpha ** (level - 1), beta)


def _grid(eb: float) -> tuple[float, float]:
    """``(step, inv)`` of a bound: steps of ``2 eb`` (0 if that overflows: one code, 0, for every value)."""
    step = 2.0 * eb if math.isfinite(2.0 * eb) else 0.0
    return step, (1.0 / step if step > 0.0 else 0.0)


def passes(view: tuple[int, int, int]) -> tuple:
    """The passes of a sweep in order: ``(level, s, axis, start, align, counts)``, the targets being
    ``start[a] + j·align[a]`` for ``j < counts[a]`` along each axis ``a`` (after the point ``(0, 0, 0)``)."""
    return _passes(tuple(int(n) for n in view))


@functools.lru_cache(maxsize=64)
def _passes(view):
    out = []
    for level in range(levels(view), 0, -1):
        s = 1 << (level - 1)
        align = [2 * s] * 3
        for axis in AXES:
            if view[axis] > s:
                start = [0, 0, 0]
                start[axis] = s
                out.append((level, s, axis, tuple(start), tuple(align),
                            tuple(len(range(*t)) for t in zip(start, view, align))))
            align[axis] = s
    return tuple(out)


@njit(cache=True)
def pass_bits(codes, edges, counts):
    """The bits of ``codes`` (int8/int16) coded with a table fitted to each pass, the pass being the
    run ``[edges[i], edges[i + 1])``: the sum over passes of ``n log2 n - sum c log2 c`` (the order-0
    entropy of each run times its length, what ``tune`` prices). ``counts``: int64 scratch of
    ``2^(8 * itemsize)`` zeros, left zero."""
    shift = counts.size // 2
    total = 0.0
    for i in range(edges.size - 1):
        a, b = edges[i], edges[i + 1]
        if b <= a:
            continue
        lo, hi = counts.size, 0
        for k in range(a, b):
            v = np.int64(codes[k]) + shift
            counts[v] += 1
            lo, hi = min(lo, v), max(hi, v)
        n = np.float64(b - a)
        bits = n * np.log2(n)
        for v in range(lo, hi + 1):
            c = counts[v]
            if c:
                bits -= c * np.log2(np.float64(c))
                counts[v] = 0
        total += bits
    return total


def sweep(x, xh, codes, view, centre, eb, cubic, alpha, beta, lo, hi, encode, ranked=False, marks=None):
    """Run every level on the flat arrays: ``encode`` writes ``codes`` (from ``x``) and ``xh``;
    decoding (``x`` unused, pass ``xh``) writes ``xh`` from ``codes``. ``xh`` is x̂ either way.
    ``ranked``: the codes in the order the points are predicted (level by level, SZ3's order).
    ``marks`` (encoding; bool, ``ceil(size / MARK)`` False values, or None): set for each block of
    ``MARK`` values that holds a point no code holds within its level's bound. Every other point's
    x̂ holds that bound, which is never looser than ``eb``, so only the marked blocks can hold
    outliers (``count_misses``, ``gather_misses``)."""
    out = codes if encode else np.empty(0, codes.dtype)  # decoding writes no code: codes may be read-only
    if marks is None or not encode:
        marks = np.zeros(-(-x.size // MARK) if encode else 0, np.bool_)
    P, R, W = view
    if P * R * W == 0:
        return
    e = level_bound(eb, max(levels(view), 1), alpha, beta)  # the first point is of the coarsest level
    step, inv = _grid(e)
    _first(x, xh, codes, out, centre, inv, step, e, lo, hi, encode, marks)
    k0 = 1
    for level, s, axis, start, align, counts in passes(view):
        e = level_bound(eb, level, alpha, beta)
        step, inv = _grid(e)
        _step(x, xh, codes, out, R, W, axis, s, start[0], align[0], counts[0], start[1], align[1], counts[1],
              start[2], align[2], counts[2], s * (R * W, W, 1)[axis], view[axis], cubic, k0, ranked, centre, inv,
              step, e, lo, hi, encode, marks)
        k0 += counts[0] * counts[1] * counts[2]


@njit(inline="always", cache=True)
def _holds(x_i, xh_i, eb):
    """``|x - x̂| <= eb`` in float64 (false for NaN and ±inf ``x``)."""
    d = np.float64(x_i) - np.float64(xh_i)
    return (d <= eb) & (d >= -eb)


@njit(cache=True)
def _misses(x, xh, eb):
    n = 0
    for i in range(x.size):
        n += not _holds(x[i], xh[i], eb)
    return n


@njit(parallel=True, cache=True, nogil=True)
def count_misses(x, xh, eb, marks):
    """Per chunk of ``CHUNK``: how many ``xh`` miss ``|x - x̂| <= eb`` (NaN and ±inf ``x`` always miss),
    among the blocks of ``MARK`` values that ``marks`` sets (``sweep``'s; all True: every value)."""
    nc = (x.size + CHUNK - 1) // CHUNK
    counts = np.zeros(nc, np.int64)
    for c in prange(nc):
        for b in range(c * CHUNK, min(x.size, (c + 1) * CHUNK), MARK):
            if marks[b // MARK]:
                counts[c] += _misses(x[b:b + MARK], xh[b:b + MARK], eb)
    return counts


@njit(parallel=True, cache=True, nogil=True)
def gather_misses(x, xh, eb, counts, index, bits, marks):
    """The misses ``count_misses`` counted (with the same ``marks``): flat indices (ascending) and the
    raw bits of ``x``."""
    starts = _starts(counts)
    raw = x.view(bits.dtype)
    for c in prange(counts.size):
        if counts[c] == 0:
            continue
        k, last = starts[c], starts[c] + counts[c]
        end = min(x.size, (c + 1) * CHUNK)
        for b in range(c * CHUNK, end, MARK):  # a block's misses counted in one vector loop, then
            e = min(b + MARK, end)             # found, where it has any: a few hundred misses over
            if not marks[b // MARK] or _misses(x[b:e], xh[b:e], eb) == 0:  # the chunks cost no
                continue                                                    # branchy pass over the field
            for i in range(b, e):
                if not _holds(x[i], xh[i], eb):
                    index[k] = i
                    bits[k] = raw[i]
                    k += 1
            if k == last:
                break
