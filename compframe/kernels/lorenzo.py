"""Kernels of the ``lorenzo`` quantizer: dual quantization, then Lorenzo residuals of the grid.

Dual quantization (cuSZ, Tian et al., PACT 2020): every value is first put on the grid
``q = round((x - c) / (2 eb))`` (an int32, ``|q| <= 2^31 - 1``) whose points ``T(c + q·2eb)`` are
the reconstructed values, and only then predicted. The Lorenzo predictor (Ibarria et al.,
Eurographics 2003; SZ, Tao et al., IPDPS 2017) predicts a point from its already-reconstructed
neighbours: ``q[i-1]`` in 1-D, ``a + b - c`` in 2-D, the seven-neighbour formula in 3-D. On the grid the
residual is an exact integer, ``Δ_j Δ_r Δ_p q`` (backward differences along the three axes of a
``(P, R, W)`` view, zero outside the field), so decoding is a prefix sum along each axis and both
directions run in parallel. Integer sums are exact modulo 2^32; since every true ``q`` fits an
int32, wrapping intermediate sums give the exact ``q`` back.

Arithmetic of the reconstruction (the contract ``grid_into`` checks and ``kernels.uniform.dequantize_into`` applies):
``x̂ = T(c + q·step)`` evaluated in float64 and rounded once to the data type T; a value is on the
grid only if ``|float64(x) - float64(x̂)| <= eb`` in float64. A value that misses with the nearest
grid point and with its neighbour (NaN, ±inf, beyond the grid, rounding cases) is a raw outlier:
its grid point is the nearest one (the centre for non-finite values), and its bits are kept.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .uniform import _dequantize_chunk as _rebuild_chunk  # one reconstruction for int8/int16 and lorenzo
from .uniform import _rebuild

CHUNK = 1 << 16
"""Values per parallel work item of the element-wise passes, and per segment of a long row."""
BLOCK = 1024
"""Columns per parallel work item of the prefix sums across rows and planes."""
GRID = float(2**31 - 1)
"""The largest ``|q|``: grid points are int32."""
MISS = np.int32(-2**31)
"""What ``grid_into`` leaves where a raw outlier is (no grid point is -2^31); ``gather_raw`` replaces it."""
_ROUND = 6755399441055744.0  # (t + 1.5·2^52) - 1.5·2^52 rounds |t| < 2^51 to the nearest integer, ties to even


@njit(inline="always", cache=True)
def _nearest(x_i, centre, inv, step, eb):
    """The nearest grid point (non-finite ``t`` goes to 0, the centre), whether it holds, and ``t``."""
    v = np.float64(x_i)
    t = (v - centre) * inv
    t = t if t - t == 0.0 else 0.0
    t = t if t > -GRID else -GRID
    t = t if t < GRID else GRID
    q = (t + _ROUND) - _ROUND
    d = v - _rebuild(x_i, centre + q * step)
    return q, (d <= eb) & (d >= -eb), t


@njit(inline="always", cache=True)
def _grid(x_i, centre, inv, step, eb):
    """Like ``_nearest``, then the neighbour on the other side of ``t`` if the nearest misses."""
    q, ok, t = _nearest(x_i, centre, inv, step, eb)
    if ok:
        return q, True
    q2 = q + (1.0 if t > q else -1.0)
    if -GRID <= q2 <= GRID:
        d = np.float64(x_i) - _rebuild(x_i, centre + q2 * step)
        if (d <= eb) & (d >= -eb):
            return q2, True
    return q, False


@njit(cache=True)
def _next_miss(q, i):
    """The first index from ``i`` on where ``q`` holds ``MISS`` (``q.size`` if none): a plain scan,
    which stays fast where a loop with the repair inside does not."""
    while i < q.size and q[i] != MISS:
        i += 1
    return i


@njit(cache=True)
def _grid_chunk(x, q, centre, inv, step, eb):
    misses = 0
    for i in range(x.size):
        g, ok, _ = _nearest(x[i], centre, inv, step, eb)
        q[i] = np.int32(g) if ok else MISS
        misses += not ok
    if misses == 0:
        return 0
    raw = 0
    i = _next_miss(q, 0)
    while i < q.size:
        g, ok = _grid(x[i], centre, inv, step, eb)
        if ok:
            q[i] = np.int32(g)
        raw += not ok
        i = _next_miss(q, i + 1)
    return raw


@njit(parallel=True, cache=True, nogil=True)
def grid_into(x, q, centre, step, eb):
    """Write the grid points of ``x`` (1-D) into ``q`` (int32), ``MISS`` at raw outliers; return
    per-chunk counts of raw outliers."""
    nc = (x.size + CHUNK - 1) // CHUNK
    counts = np.zeros(nc, np.int64)
    inv = 1.0 / step if step > 0.0 else 0.0
    for c in prange(nc):
        s = c * CHUNK
        counts[c] = _grid_chunk(x[s:s + CHUNK], q[s:s + CHUNK], centre, inv, step, eb)
    return counts


@njit(cache=True)
def _starts(counts):
    """Exclusive prefix sum: where each work item's entries start in a gathered list."""
    starts = np.zeros(counts.size + 1, np.int64)
    for c in range(counts.size):
        starts[c + 1] = starts[c] + counts[c]
    return starts


@njit(parallel=True, cache=True, nogil=True)
def gather_raw(x, q, centre, step, eb, counts, index, bits):
    """The raw outliers ``grid_into`` counted: their flat indices (ascending) and raw bits; their
    ``MISS`` in ``q`` becomes the nearest grid point (0 for non-finite values), what they are predicted as."""
    starts = _starts(counts)
    raw = x.view(bits.dtype)
    inv = 1.0 / step if step > 0.0 else 0.0
    for c in prange(counts.size):
        if counts[c] == 0:
            continue
        k = starts[c]
        s = c * CHUNK
        chunk = q[s:s + CHUNK]
        i = _next_miss(chunk, 0)
        while i < chunk.size:
            index[k] = s + i
            bits[k] = raw[s + i]
            k += 1
            chunk[i] = np.int32(_nearest(x[s + i], centre, inv, step, eb)[0])
            i = _next_miss(chunk, i + 1)


@njit(inline="always", cache=True)
def _item(item, R, nseg):
    """Plane, row, row number and segment of a work item (one row segment of ``CHUNK``)."""
    row = np.int64(item) // nseg
    p = row // R
    return p, row - p * R, row, np.int64(item) - row * nseg


@njit(cache=True)
def _difference(cur, up, back, corner, out, lo, hi):
    """``out[i] = g[i + 1] - g[i]`` with ``g = cur - up - back + corner`` (the four rows one longer
    than ``out``); values outside ``[lo, hi]`` become 0 and are counted."""
    wide = 0
    for i in range(out.size):
        d = ((np.int64(cur[i + 1]) - up[i + 1]) - (np.int64(back[i + 1]) - corner[i + 1])) \
            - ((np.int64(cur[i]) - up[i]) - (np.int64(back[i]) - corner[i]))
        ok = (d >= lo) & (d <= hi)
        out[i] = d if ok else 0
        wide += not ok
    return wide


@njit(cache=True)
def _segment(q, zero, p, r, s, e, out, lo, hi):
    """Lorenzo residuals ``Δ_j Δ_r Δ_p q`` (SZ's 1-, 2- and 3-D predictors) of row ``(p, r)``,
    columns ``[s, e)``, into ``out`` (``e - s`` long); rows outside the field read ``zero``."""
    cur = q[p, r]
    up = q[p, r - 1] if r > 0 else zero
    back = q[p - 1, r] if p > 0 else zero
    corner = q[p - 1, r - 1] if p > 0 and r > 0 else zero
    wide = 0
    if s == 0:  # the first column has no left neighbour: g[0] itself
        d = (np.int64(cur[0]) - up[0]) - (np.int64(back[0]) - corner[0])
        ok = (d >= lo) & (d <= hi)
        out[0] = d if ok else 0
        wide += not ok
        s, out = 1, out[1:]
    z = zero[:e - s + 1]
    return wide + _difference(cur[s - 1:e], up[s - 1:e] if r > 0 else z, back[s - 1:e] if p > 0 else z,
                              corner[s - 1:e] if p > 0 and r > 0 else z, out, lo, hi)


@njit(parallel=True, cache=True, nogil=True)
def residuals(q, codes, lo, hi):
    """Lorenzo residuals of the grid ``q`` (P, R, W) into ``codes`` (same shape); residuals outside
    ``[lo, hi]`` are ``wide``: code 0 here, counted per work item (row segment of ``CHUNK``)."""
    P, R, W = q.shape
    nseg = (W + CHUNK - 1) // CHUNK
    zero = np.zeros(min(W, CHUNK) + 1, q.dtype)
    counts = np.zeros(P * R * nseg, np.int64)
    for item in prange(P * R * nseg):
        p, r, row, sg = _item(item, R, nseg)
        s, e = sg * CHUNK, min(W, (sg + 1) * CHUNK)
        counts[item] = _segment(q, zero, p, r, s, e, codes[p, r, s:e], lo, hi)
    return counts


@njit(parallel=True, cache=True, nogil=True)
def gather_wide(q, lo, hi, counts, index, values):
    """The wide residuals ``residuals`` counted: flat indices (ascending) and values modulo 2^32 (int32)."""
    P, R, W = q.shape
    nseg = (W + CHUNK - 1) // CHUNK
    zero = np.zeros(min(W, CHUNK) + 1, q.dtype)
    starts = _starts(counts)
    for item in prange(counts.size):
        if counts[item] == 0:
            continue
        p, r, row, sg = _item(item, R, nseg)
        s, e = sg * CHUNK, min(W, (sg + 1) * CHUNK)
        d = np.empty(e - s, np.int64)
        _segment(q, zero, p, r, s, e, d, np.iinfo(np.int64).min, np.iinfo(np.int64).max)
        k = starts[item]
        for j in range(e - s):
            if d[j] < lo or d[j] > hi:
                index[k] = row * W + s + j
                values[k] = d[j]  # stored into int32: truncated, i.e. modulo 2^32
                k += 1


@njit(cache=True)
def _prefix(codes, t, acc):
    """``t[i] = acc + codes[0] + ... + codes[i]``; returns the last sum."""
    for i in range(codes.size):
        acc += codes[i]
        t[i] = acc
    return acc


@njit(cache=True)
def _prefix_segment(codes, t, base, s, e, wide_index, wide_values):
    """Running sum of ``codes[s:e]`` into ``t``, wide residuals (flat index ``base + j``) substituted."""
    k = np.searchsorted(wide_index, base + s)
    acc = np.int64(0)
    while k < wide_index.size and wide_index[k] < base + e:
        stop = wide_index[k] - base
        acc = _prefix(codes[s:stop], t[s:stop], acc) + wide_values[k]
        t[stop] = acc
        s = stop + 1
        k += 1
    return _prefix(codes[s:e], t[s:e], acc)


@njit(parallel=True, cache=True, nogil=True)
def integrate_rows(codes, wide_index, wide_values, t):
    """``t`` (P, R, W, int32) = prefix sums of the residuals along each row (modulo 2^32).

    ``wide_index`` (int64) must be strictly increasing and below the field's size (the caller checks).
    Long rows are summed in segments of ``CHUNK`` in parallel, then each segment gets its carry.
    """
    P, R, W = codes.shape
    nseg = (W + CHUNK - 1) // CHUNK
    totals = np.zeros(P * R * nseg, np.int64)
    for item in prange(P * R * nseg):
        p, r, row, sg = _item(item, R, nseg)
        totals[item] = _prefix_segment(codes[p, r], t[p, r], row * W, sg * CHUNK, min(W, (sg + 1) * CHUNK),
                                       wide_index, wide_values)
    if nseg > 1:
        for item in prange(P * R * nseg):
            p, r, row, sg = _item(item, R, nseg)
            carry = np.int64(0)
            for k in range(row * nseg, row * nseg + sg):
                carry += totals[k]
            tr = t[p, r]
            for j in range(sg * CHUNK, min(W, (sg + 1) * CHUNK)):
                tr[j] += carry


@njit(cache=True)
def _accumulate(prev, cur, out, centre, step, last):
    """``cur += prev`` (int32, modulo 2^32); if ``last``, also ``out = T(centre + cur·step)``."""
    if last:
        for j in range(cur.size):
            v = cur[j] + prev[j]
            cur[j] = v
            out[j] = centre + np.float64(np.int32(v)) * step
    else:
        for j in range(cur.size):
            cur[j] += prev[j]


@njit(parallel=True, cache=True, nogil=True)
def integrate_columns(t, out, centre, step, last):
    """``t[p, r] += t[p, r - 1]`` for r = 1..R-1 in every plane (the prefix sum along axis 1), in
    blocks of ``BLOCK`` columns; if ``last``, ``out`` (the shape of ``t``) gets the rebuilt values."""
    P, R, W = t.shape
    nb = (W + BLOCK - 1) // BLOCK
    for item in prange(P * nb):
        p = np.int64(item) // nb
        s = (np.int64(item) - p * nb) * BLOCK
        e = min(W, s + BLOCK)
        if last:
            _rebuild_chunk(t[p, 0, s:e], out[p, 0, s:e], centre, step)
        for r in range(1, R):
            _accumulate(t[p, r - 1, s:e], t[p, r, s:e], out[p, r, s:e], centre, step, last)


@njit(parallel=True, cache=True, nogil=True)
def integrate_planes(t, out, centre, step):
    """``t[p] += t[p - 1]`` for p = 1..P-1 (``t`` and ``out`` as (P, R·W)): the prefix sum along
    axis 0, in blocks of ``BLOCK``; ``out`` gets the rebuilt values."""
    P, n = t.shape
    nb = (n + BLOCK - 1) // BLOCK
    for b in prange(nb):
        s = np.int64(b) * BLOCK
        e = min(n, s + BLOCK)
        _rebuild_chunk(t[0, s:e], out[0, s:e], centre, step)
        for p in range(1, P):
            _accumulate(t[p - 1, s:e], t[p, s:e], out[p, s:e], centre, step, True)
