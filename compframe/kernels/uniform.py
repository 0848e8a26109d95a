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

``quantize_fast_into`` is the float32 path: the code is found in float32 arithmetic (16 lanes), and
an element is accepted without rebuilding it when its distance from the nearest integer is at most
``theta``, a threshold below 1/2 by a margin that covers every rounding of both computations (see
``fast_params``); the few others are settled in the arithmetic above (a vectorized recheck of their
block, then ``_code``). The codes are the ones ``quantize_into`` + ``repair`` give, element for
element. (A margin growing with ``|q|``, tighter near the centre, ran slower at ``rel:1e-2`` and no
faster at ``rel:1e-4``.)
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

CHUNK = 1 << 16
BLOCK = 64  # per-lane accumulators and the fast path's settling granularity (64 ran faster than 32 here)
# Adding and subtracting 1.5 * 2**52 rounds a float64 |t| < 2**51 to the nearest integer, ties to
# even, in two vectorizable instructions (IEEE 754 round-to-nearest).
_ROUND = 6755399441055744.0
_ROUND32 = np.float32(12582912.0)  # 1.5 * 2**23: the same for a float32 |t| < 2**22
_U32 = 2.0**-24  # unit roundoff of float32
_U64 = 2.0**-53  # unit roundoff of float64
_TINY = 2.0**-149  # float32's smallest subnormal: bounds an underflowing rounding's absolute error
_F32_TINY = float(np.finfo(np.float32).tiny)
_F32_MAX = float(np.finfo(np.float32).max)  # a little below the float32 overflow threshold: conservative


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


@njit(cache=True)
def _plain_range(x):
    """Min and max of ``x`` in per-lane accumulators (a vectorized loop), and whether no NaN was seen."""
    lows = np.full(BLOCK, x.dtype.type(np.inf))
    highs = np.full(BLOCK, x.dtype.type(-np.inf))
    clean = True
    full = x.size - x.size % BLOCK
    for s in range(0, full, BLOCK):
        for j in range(BLOCK):
            v = x[s + j]
            lows[j] = v if v < lows[j] else lows[j]
            highs[j] = v if v > highs[j] else highs[j]
            clean &= v == v
    for i in range(full, x.size):
        v = x[i]
        lows[0] = v if v < lows[0] else lows[0]
        highs[0] = v if v > highs[0] else highs[0]
        clean &= v == v
    return lows.min(), highs.max(), clean


@njit(parallel=True, cache=True, nogil=True)
def plain_range(x):
    """``(min, max, no NaN)`` of a contiguous 1-D float array (±inf count as values)."""
    nc = (x.size + CHUNK - 1) // CHUNK
    los = np.full(max(nc, 1), x.dtype.type(np.inf))
    his = np.full(max(nc, 1), x.dtype.type(-np.inf))
    clean = np.ones(max(nc, 1), np.bool_)
    for c in prange(nc):
        s = c * CHUNK
        los[c], his[c], clean[c] = _plain_range(x[s:s + CHUNK])
    return los.min(), his.max(), clean.all()


def finite_range(x: np.ndarray) -> tuple[float, float, int]:
    """(min, max, count) of the finite elements of a contiguous 1-D float32/float64 array.

    One vectorized min/max pass; a field holding NaN or ±inf takes a second, order-key pass that
    leaves them out and counts the rest."""
    if x.size:
        lo, hi, clean = _plain_range(x) if x.size <= CHUNK else plain_range(x)  # one chunk: no parallel start-up
        if clean and np.isfinite(lo) and np.isfinite(hi):
            return float(lo), float(hi), int(x.size)
    itype, exp_mask, shift, mag = _KEYS[x.dtype.itemsize]
    info = np.iinfo(itype)
    lo, hi, n = key_range(x.view(itype), itype(exp_mask), itype(shift), itype(mag), itype(info.max), itype(info.min))
    if n == 0:
        return 0.0, 0.0, 0
    return (*_key_values(lo, hi, x.dtype), int(n))


def _key_values(lo, hi, dtype) -> tuple[float, float]:
    """The float values of two order keys (the key map is its own inverse)."""
    itype, _, shift, mag = _KEYS[np.dtype(dtype).itemsize]
    keys = np.array([lo, hi], dtype=itype)
    values = (keys ^ ((keys >> shift) & itype(mag))).view(dtype)
    return float(values[0]), float(values[1])


def fast_params(centre: float, step: float, eb: float, reach: float, lo: float, hi: float):
    """The float32 fast path's constants ``(c, inv, theta, qlo, qhi, mark)`` (float32), or None where it
    does not apply (a zero or extreme step, a centre or reciprocal float32 cannot hold).

    ``reach`` is how far from ``centre`` the data is expected to lie (the range's half-width; data
    past it is only slower): codes are accepted in ``[qlo, qhi]``, at most ``ceil(reach/step + 1/2)``
    in magnitude and strictly above ``lo``, whose value marks an unsettled element. With ``t`` the
    float32 code estimate and ``q = rint(t)``, ``|t - q| <= theta`` implies ``|x - x̂| <= eb`` in the
    float64 check. The bound (standard model, |δ| <= u per operation, Higham, *Accuracy and
    Stability of Numerical Algorithms*, §2.2; plus an absolute 2**-149 per float32 underflow):
    ``t = (x - f32(c))·f32(1/step)`` is off from ``(x - c)/step`` by at most
    ``E_t = 3.001u(T + τ) + τ + 2**-149`` with ``T = Q + 1/2`` and ``τ = 1.0001(u|c|/step + 2**-149/step)``;
    the rebuild ``f32(c + q·step)`` is off from ``c + q·step`` by ``E_y <= u|c + q·step| + 2**-149 +
    4·2**-53(|q|·step + |c + q·step|)``, so ``theta = eb/step - 2(E_t + E_y/step) - 2**-50`` (twice the
    margin, for safety) suffices.
    """
    if not (math.isfinite(centre) and math.isfinite(step) and step >= 2.0**-100 and math.isfinite(eb)):
        return None
    inv, c32 = 1.0 / step, centre
    if not (_F32_TINY <= inv <= _F32_MAX and abs(c32) <= _F32_MAX):  # both held by float32, inv normal
        return None
    q_max = hi if not math.isfinite(reach) else min(hi, math.ceil(reach / step + 0.5))
    a = abs(centre) / step
    tau = 1.0001 * (_U32 * a + _TINY / step)
    e_t = 3.001 * _U32 * (q_max + 0.5 + tau) + tau + _TINY
    e_y = 1.001 * _U32 * (a + q_max) + _TINY / step + 4 * _U64 * (2 * q_max + a)
    theta = eb / step - 2 * (e_t + e_y) - 2.0**-50
    if not theta > 0.25:
        return None
    t32 = np.float32(theta)
    if float(t32) > theta:
        t32 = np.nextafter(t32, np.float32(0))
    return np.float32(c32), np.float32(inv), t32, np.float32(max(lo + 1, -q_max)), np.float32(q_max), np.float32(lo)


@njit(inline="always", cache=True)
def _fast_code(x_i, c, inv, theta, qlo, qhi):
    """The float32 code estimate rounded, and whether it is certain (see ``fast_params``)."""
    t = (x_i - c) * inv
    q = (t + _ROUND32) - _ROUND32
    return q, (np.abs(t - q) <= theta) & (q >= qlo) & (q <= qhi)


@njit(inline="always", cache=True)
def _fast_block(x, codes, s, fast, lows, highs, track):
    """Fast codes for the ``BLOCK`` elements from ``s`` (``mark``, the code type's minimum, for an
    unsettled one), folding the values into the per-lane ``lows``/``highs`` with ``track``; returns
    whether any is unsettled."""
    c, inv, theta, qlo, qhi, mark = fast
    settled = True
    for j in range(BLOCK):
        x_i = x[s + j]
        q, ok = _fast_code(x_i, c, inv, theta, qlo, qhi)
        codes[s + j] = q if ok else mark
        settled &= ok
        if track:  # a loop-invariant branch: LLVM keeps the untracked loop as it is
            lows[j] = x_i if x_i < lows[j] else lows[j]  # NaN never compares; ±inf is kept (see _quantize_fast)
            highs[j] = x_i if x_i > highs[j] else highs[j]
    return not settled


@njit(cache=True)
def _settle(x, codes, s, e, centre, inv, step, eb, lo, hi):
    """Exact codes for the elements of ``x[s:e]`` left at ``lo``; returns how many are outliers (code 0)."""
    bad = 0
    xs = x[s:e]
    cs = codes[s:e]
    for i in range(xs.size):  # over slices: a loop from s to e ran 10x slower (numba 0.68, LLVM's choice)
        if cs[i] == lo:
            q, ok = _code(xs[i], centre, inv, step, eb, lo, hi)
            cs[i] = q
            bad += not ok
    return bad


@njit(inline="always", cache=True)
def _recheck(x, codes, s, centre, inv, step, eb, lo, hi):
    """The nearest code, checked exactly, for the elements of the block at ``s`` left at ``lo``
    (branch-free, so it vectorizes); returns whether any of them still misses."""
    missed = False
    for j in range(BLOCK):
        q, ok, _ = _nearest(x[s + j], centre, inv, step, eb, lo, hi)
        marked = codes[s + j] == lo
        codes[s + j] = q if marked & ok else codes[s + j]
        missed |= marked & ~ok
    return missed


@njit(cache=True)
def _fast_chunk(x, codes, fast, centre, inv, step, eb, lo, hi, track):
    lows = np.full(BLOCK, np.float32(np.inf))
    highs = np.full(BLOCK, np.float32(-np.inf))
    bad = 0
    full = x.size - x.size % BLOCK
    for s in range(0, full, BLOCK):
        if _fast_block(x, codes, s, fast, lows, highs, track) and _recheck(x, codes, s, centre, inv, step, eb, lo, hi):
            bad += _settle(x, codes, s, s + BLOCK, centre, inv, step, eb, lo, hi)
    codes[full:] = lo  # the last partial block goes to the exact kernel
    bad += _settle(x, codes, full, x.size, centre, inv, step, eb, lo, hi)
    for i in range(full, x.size):
        if track:
            lows[0] = x[i] if x[i] < lows[0] else lows[0]
            highs[0] = x[i] if x[i] > highs[0] else highs[0]
    return bad, lows.min(), highs.max()


@njit(parallel=True, cache=True, nogil=True)
def _quantize_fast(x, codes, fast, centre, step, eb, lo, hi, track):
    nc = (x.size + CHUNK - 1) // CHUNK
    counts = np.zeros(nc, np.int64)
    lows = np.full(max(nc, 1), np.float32(np.inf))
    highs = np.full(max(nc, 1), np.float32(-np.inf))
    inv = 1.0 / step
    for c in prange(nc):
        s = c * CHUNK
        counts[c], lows[c], highs[c] = _fast_chunk(x[s:s + CHUNK], codes[s:s + CHUNK], fast, centre, inv, step,
                                                   eb, lo, hi, track)
    return counts, lows.min(), highs.max()


def quantize_fast_into(x, codes, fast, centre, step, eb, lo, hi, track=False):
    """``quantize_into`` + ``repair`` for float32 ``x`` with ``fast = fast_params(...)``: the same
    codes (outliers at 0), per-chunk outlier counts for ``gather_outliers``, and, with ``track``,
    the ``(min, max)`` of the non-NaN values of ``x`` found in the same pass (±inf included, so it is
    the finite range only when there are no infinities; None if every value is NaN)."""
    if x.size <= CHUNK:  # one chunk: no parallel region to start (about 4 µs)
        bad, low, high = _fast_chunk(x, codes, fast, centre, 1.0 / step, step, eb, lo, hi, track)
        counts = np.array([bad], np.int64)
    else:
        counts, low, high = _quantize_fast(x, codes, fast, centre, step, eb, lo, hi, track)
    if not track or low > high:
        return counts, None
    return counts, (float(low), float(high))


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
        if counts[c]:
            s = c * CHUNK
            _gather_chunk(x[s:s + CHUNK], codes[s:s + CHUNK], raw[s:s + CHUNK], s, centre, inv, step, eb, lo, hi,
                          index, bits, starts[c])


@njit(cache=True)
def _gather_chunk(x, codes, raw, first, centre, inv, step, eb, lo, hi, index, bits, k):
    for i in range(x.size):
        if codes[i] == 0 and not _code(x[i], centre, inv, step, eb, lo, hi)[1]:  # outliers have code 0
            index[k] = first + i
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
