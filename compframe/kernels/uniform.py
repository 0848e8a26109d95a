"""Fused kernels of error-bounded uniform quantization (one pass over the data, no temporaries).

``quantize_into`` computes each code, rebuilds the value exactly as ``dequantize_into`` will, and
keeps the code only if the rebuilt value is within the bound in that very arithmetic; otherwise it
writes code 0 and counts an outlier, which ``gather_outliers`` then collects (indices and the raw
bits of the original values). NaN and infinite values fail the check and so become outliers too.

Arithmetic (the contract both sides share): ``x̂ = T(centre + code * step)`` evaluated in float64
and rounded once to the data type T; the check is ``|float64(x) - float64(x̂)| <= eb`` in float64.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

CHUNK = 1 << 16


def n_chunks(n: int) -> int:
    return (n + CHUNK - 1) // CHUNK


@njit(parallel=True, cache=True, nogil=True)
def finite_range(x):
    """(min, max, count) over the finite elements of a 1-D array, in float64."""
    nc = (x.size + CHUNK - 1) // CHUNK
    mins = np.full(max(nc, 1), np.inf)
    maxs = np.full(max(nc, 1), -np.inf)
    counts = np.zeros(max(nc, 1), np.int64)
    for c in prange(nc):
        lo = np.inf
        hi = -np.inf
        k = 0
        for i in range(c * CHUNK, min(x.size, (c + 1) * CHUNK)):
            v = np.float64(x[i])
            if v - v == 0.0:  # finite: inf - inf and NaN - NaN are NaN
                lo = min(lo, v)
                hi = max(hi, v)
                k += 1
        mins[c] = lo
        maxs[c] = hi
        counts[c] = k
    return mins.min(), maxs.max(), counts.sum()


@njit(inline="always", cache=True)
def _code(v, centre, inv, step, eb, lo, hi, rebuild):
    """The code of one value and whether its rebuilt value is within ``eb`` (NaN never is).

    The nearest code can miss by the final rounding to T when ``v`` lies half-way between two
    reconstruction points; then the neighbour on the other side is tried.
    """
    t = min(max((v - centre) * inv, lo), hi)
    q = np.rint(t)
    if q != q:
        return 0.0, False
    if abs(v - np.float64(rebuild(centre + q * step))) <= eb:
        return q, True
    q2 = min(max(q + (1.0 if t > q else -1.0), lo), hi)
    if abs(v - np.float64(rebuild(centre + q2 * step))) <= eb:
        return q2, True
    return 0.0, False


@njit(parallel=True, cache=True, nogil=True)
def quantize_into(x, codes, centre, step, eb, lo, hi):
    """Write codes of ``x`` into ``codes``; return outlier counts per chunk (code 0 at outliers)."""
    nc = (x.size + CHUNK - 1) // CHUNK
    counts = np.zeros(nc, np.int64)
    inv = 1.0 / step if step > 0.0 else 0.0
    rebuild = x.dtype.type
    for c in prange(nc):
        bad = 0
        for i in range(c * CHUNK, min(x.size, (c + 1) * CHUNK)):
            q, ok = _code(np.float64(x[i]), centre, inv, step, eb, lo, hi, rebuild)
            codes[i] = q
            bad += not ok
        counts[c] = bad
    return counts


@njit(parallel=True, cache=True, nogil=True)
def gather_outliers(x, centre, step, eb, lo, hi, counts, index, bits):
    """Collect the outliers that ``quantize_into`` counted: their flat indices and raw bits."""
    nc = counts.size
    starts = np.zeros(nc + 1, np.int64)
    for c in range(nc):
        starts[c + 1] = starts[c] + counts[c]
    raw = x.view(bits.dtype)
    inv = 1.0 / step if step > 0.0 else 0.0
    rebuild = x.dtype.type
    for c in prange(nc):
        if counts[c] == 0:
            continue
        k = starts[c]
        for i in range(c * CHUNK, min(x.size, (c + 1) * CHUNK)):
            if not _code(np.float64(x[i]), centre, inv, step, eb, lo, hi, rebuild)[1]:
                index[k] = i
                bits[k] = raw[i]
                k += 1


@njit(parallel=True, cache=True, nogil=True)
def dequantize_into(codes, out, centre, step):
    """``out[i] = T(centre + codes[i] * step)``, the reconstruction ``quantize_into`` checked."""
    nc = (codes.size + CHUNK - 1) // CHUNK
    for c in prange(nc):
        for i in range(c * CHUNK, min(codes.size, (c + 1) * CHUNK)):
            out[i] = centre + np.float64(codes[i]) * step


@njit(parallel=True, cache=True, nogil=True)
def scatter_bits(out_bits, index, bits):
    """Put outliers back: ``out_bits[index[k]] = bits[k]`` (raw bits, so NaN payloads survive)."""
    for k in prange(index.size):
        out_bits[index[k]] = bits[k]
