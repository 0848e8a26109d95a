"""Fused kernels of error-bounded uniform quantization: one pass over the data, no temporaries.

``quantize_into`` computes each code, rebuilds the value exactly as ``dequantize_into`` will and
keeps the code only if the rebuilt value is within the bound in that very arithmetic. Elements that
miss (NaN, infinities, codes outside the code type, values half-way between two reconstruction
points that the final rounding pushes over the bound) are revisited by ``repair``, which tries the
neighbouring code, and whatever still misses is an outlier: code 0, its index and raw bits kept by
``gather_outliers``.

Arithmetic (the contract both sides share): ``x̂ = T(centre + code * step)`` evaluated in float64
and rounded once to the data type T; the check is ``|float64(x) - float64(x̂)| <= eb`` in float64.

The hot loops are plain per-chunk functions over contiguous slices, driven by a ``prange`` over
chunks: that shape is what LLVM vectorizes (a loop nested directly in the ``prange`` body is not).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

CHUNK = 1 << 16
# Adding and subtracting 1.5 * 2**52 rounds a float64 |t| < 2**51 to the nearest integer, ties to
# even, in two vectorizable instructions (IEEE 754 round-to-nearest).
_ROUND = 6755399441055744.0


def _rebuild(proto, value):
    """``value`` (float64) rounded once to the type of ``proto``: the dequantizer's final rounding."""


@overload(_rebuild, inline="always")
def _rebuild_impl(proto, value):
    if proto == types.float32:
        return lambda proto, value: np.float64(np.float32(value))
    return lambda proto, value: value


@njit(inline="always", cache=True)
def _nearest(x_i, centre, inv, step, eb, lo, hi):
    """The nearest code (clamped to [lo, hi]) and whether it rebuilds within ``eb``."""
    v = np.float64(x_i)
    t = (v - centre) * inv
    t = t if t > lo else lo  # also maps NaN to lo; the check below then fails
    t = t if t < hi else hi
    q = (t + _ROUND) - _ROUND
    d = v - _rebuild(x_i, centre + q * step)
    return q, (d <= eb) & (d >= -eb), t


@njit(inline="always", cache=True)
def _code(x_i, centre, inv, step, eb, lo, hi):
    """Like ``_nearest``, then the neighbour on the other side of ``t`` if the nearest misses."""
    q, ok, t = _nearest(x_i, centre, inv, step, eb, lo, hi)
    if ok:
        return q, True
    q2 = q + (1.0 if t > q else -1.0)
    if q2 < lo or q2 > hi:
        return 0.0, False
    d = np.float64(x_i) - _rebuild(x_i, centre + q2 * step)
    if (d <= eb) & (d >= -eb):
        return q2, True
    return 0.0, False


@njit(cache=True)
def _key_range(bits, exp_mask, sign_shift, mag_mask, key_max, key_min):
    """Min and max order keys of the finite elements of a float array viewed as signed integers.

    The key ``i ^ ((i >> sign_shift) & mag_mask)`` orders IEEE floats like their values; integer
    min/max reductions vectorize where float ones with NaN semantics do not.
    """
    lo = key_max
    hi = key_min
    n = 0
    for i in range(bits.size):
        v = bits[i]
        finite = (v & exp_mask) != exp_mask
        key = v ^ ((v >> sign_shift) & mag_mask)
        lo = min(lo, key if finite else key_max)
        hi = max(hi, key if finite else key_min)
        n += finite
    return lo, hi, n


@njit(parallel=True, cache=True, nogil=True)
def key_range(bits, exp_mask, sign_shift, mag_mask, key_max, key_min):
    nc = (bits.size + CHUNK - 1) // CHUNK
    los = np.full(max(nc, 1), key_max)
    his = np.full(max(nc, 1), key_min)
    counts = np.zeros(max(nc, 1), np.int64)
    for c in prange(nc):
        s = c * CHUNK
        los[c], his[c], counts[c] = _key_range(bits[s:s + CHUNK], exp_mask, sign_shift, mag_mask, key_max, key_min)
    return los.min(), his.max(), counts.sum()


_KEYS = {
    4: (np.int32, 0x7F800000, 31, 0x7FFFFFFF),
    8: (np.int64, 0x7FF0000000000000, 63, 0x7FFFFFFFFFFFFFFF),
}


def finite_range(x: np.ndarray) -> tuple[float, float, int]:
    """(min, max, count) of the finite elements of a contiguous 1-D float32/float64 array."""
    itype, exp_mask, shift, mag = _KEYS[x.dtype.itemsize]
    info = np.iinfo(itype)
    lo, hi, n = key_range(x.view(itype), itype(exp_mask), itype(shift), itype(mag), itype(info.max), itype(info.min))
    if n == 0:
        return 0.0, 0.0, 0
    keys = np.array([lo, hi], dtype=itype)
    values = (keys ^ ((keys >> shift) & itype(mag))).view(x.dtype)
    return float(values[0]), float(values[1]), int(n)


@njit(cache=True)
def _quantize_chunk(x, codes, centre, inv, step, eb, lo, hi):
    misses = 0
    for i in range(x.size):
        q, ok, _ = _nearest(x[i], centre, inv, step, eb, lo, hi)
        codes[i] = q if ok else 0.0
        misses += not ok
    return misses


@njit(parallel=True, cache=True, nogil=True)
def quantize_into(x, codes, centre, step, eb, lo, hi):
    """Write the nearest codes of ``x`` into ``codes``; return per-chunk counts of misses (code 0)."""
    nc = (x.size + CHUNK - 1) // CHUNK
    counts = np.zeros(nc, np.int64)
    inv = 1.0 / step if step > 0.0 else 0.0
    for c in prange(nc):
        s = c * CHUNK
        counts[c] = _quantize_chunk(x[s:s + CHUNK], codes[s:s + CHUNK], centre, inv, step, eb, lo, hi)
    return counts


@njit(parallel=True, cache=True, nogil=True)
def repair(x, codes, centre, step, eb, lo, hi, counts):
    """Revisit the chunks with misses: keep the neighbouring code where it holds; count outliers."""
    inv = 1.0 / step if step > 0.0 else 0.0
    out = np.zeros_like(counts)
    for c in prange(counts.size):
        if counts[c] == 0:
            continue
        bad = 0
        for i in range(c * CHUNK, min(x.size, (c + 1) * CHUNK)):
            if codes[i] != 0:  # a miss was stored as code 0; every other code already holds
                continue
            q, ok = _code(x[i], centre, inv, step, eb, lo, hi)
            codes[i] = q
            bad += not ok
        out[c] = bad
    return out


@njit(parallel=True, cache=True, nogil=True)
def gather_outliers(x, codes, centre, step, eb, lo, hi, counts, index, bits):
    """Collect the outliers ``repair`` counted: their flat indices and raw bits."""
    nc = counts.size
    starts = np.zeros(nc + 1, np.int64)
    for c in range(nc):
        starts[c + 1] = starts[c] + counts[c]
    raw = x.view(bits.dtype)
    inv = 1.0 / step if step > 0.0 else 0.0
    for c in prange(nc):
        if counts[c] == 0:
            continue
        k = starts[c]
        for i in range(c * CHUNK, min(x.size, (c + 1) * CHUNK)):
            if codes[i] == 0 and not _code(x[i], centre, inv, step, eb, lo, hi)[1]:  # outliers have code 0
                index[k] = i
                bits[k] = raw[i]
                k += 1


@njit(cache=True)
def _dequantize_chunk(codes, out, centre, step):
    for i in range(codes.size):
        out[i] = centre + np.float64(codes[i]) * step


@njit(parallel=True, cache=True, nogil=True)
def dequantize_into(codes, out, centre, step):
    """``out[i] = T(centre + codes[i] * step)``, the reconstruction ``quantize_into`` checked."""
    nc = (codes.size + CHUNK - 1) // CHUNK
    for c in prange(nc):
        s = c * CHUNK
        _dequantize_chunk(codes[s:s + CHUNK], out[s:s + CHUNK], centre, step)


@njit(parallel=True, cache=True, nogil=True)
def scatter_bits(out_bits, index, bits):
    """Put outliers back: ``out_bits[index[k]] = bits[k]`` (raw bits, so NaN payloads survive)."""
    for k in prange(index.size):
        out_bits[index[k]] = bits[k]
