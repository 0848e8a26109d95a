"""Fused kernels of error-bounded uniform quantization: each element quantized, rebuilt and checked
in one pass; the one-pass default for large fields (``quantize_running``) may code a chunk again.

``quantize_into`` computes each code, rebuilds the value exactly as ``dequantize_into`` will and
keeps the code only if the rebuilt value is within the bound in that very arithmetic. Elements that
miss (NaN, infinities, codes outside the code type, values half-way between two reconstruction
points that the final rounding pushes over the bound) are marked with the code type's minimum and
revisited by ``repair``, which tries the neighbouring code, and whatever still misses is an
outlier. Every codes pass leaves its outliers at the code type's minimum and marks their 64-value
blocks (``block_marks``); ``gather_outliers`` reads only those blocks (every block of a chunk
holding one without marks), keeps each outlier's index and raw bits and gives it code 0, the code
a frame holds for it. Codes with outliers are final only after the gather.

Arithmetic (the contract both sides share): ``x̂ = T(centre + code * step)`` evaluated in float64
and rounded once to the data type T; the check is ``|float64(x) - float64(x̂)| <= eb`` in float64.

The hot loops are plain per-chunk functions over contiguous slices, driven by a ``prange`` over
chunks: that shape is what LLVM vectorizes (a loop nested directly in the ``prange`` body is not).

``quantize_fast_into`` is the float32 path: the code is found in float32 arithmetic (16 lanes), and
an element is accepted without rebuilding it when its distance from the nearest integer is at most
``theta``, a threshold below 1/2 by a margin that covers every rounding of both computations (see
``fast_params``); the few others are settled in the arithmetic above (``_settle_block``: ``_code``
alone for a block's only one, else a vectorized recheck of the block, then ``_code``). The codes are
the ones ``quantize_into`` + ``repair`` give, element for element. (A margin growing with ``|q|``,
tighter near the centre, ran slower at ``rel:1e-2`` and no faster at ``rel:1e-4``.)

``quantize_running`` is the one-pass path of a field whose range is not known: in waves of chunks, those
of a wave in parallel, each with the plan of the range of the waves before it (never looser than the
field's), the fast loop accepting only codes strictly inside that range, so the elements that extend it
are among the few it leaves to the exact check (no min/max in the fast loop); ``requantize_chunks``
redoes chunks with the field's plan, ``dequantize_chunks_into`` rebuilds with each chunk's centre and
step.
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


@njit(inline="always", cache=True)
def _range_lanes(x):
    """Min and max of the non-NaN elements of ``x`` (NaN never compares) in per-lane accumulators (a
    vectorized loop), and how many NaN it holds."""
    lows = np.full(BLOCK, x.dtype.type(np.inf))
    highs = np.full(BLOCK, x.dtype.type(-np.inf))
    nans = np.zeros(BLOCK, np.int64)
    full = x.size - x.size % BLOCK
    for s in range(0, full, BLOCK):
        for j in range(BLOCK):
            v = x[s + j]
            lows[j] = v if v < lows[j] else lows[j]
            highs[j] = v if v > highs[j] else highs[j]
            nans[j] += v != v
    for i in range(full, x.size):
        v = x[i]
        lows[0] = v if v < lows[0] else lows[0]
        highs[0] = v if v > highs[0] else highs[0]
        nans[0] += v != v
    return lows.min(), highs.max(), nans.sum()


@njit(cache=True)
def _plain_range(x):
    """``_range_lanes`` compiled on its own: the range of a field of one chunk (``finite_range``), and the
    ranges the sequential kernels take (the one-pass path's first chunk, ``quantize_stack``'s rows)."""
    return _range_lanes(x)


@njit(parallel=True, cache=True, nogil=True)
def plain_range(x):
    """``(min, max, NaN count)`` of a contiguous 1-D float array (±inf count as values, NaN not). Its loop
    inlines ``_range_lanes``: calling ``_plain_range``, it ran whichever compiled copy of it the process
    had loaded first (numba's cache, see ``_load_fast_chunk``), and with the copy compiled on its own,
    loaded when a small field came first (``finite_range``), the range pass of a 256 MiB field ran at half
    speed (14-16 -> 7.2-8.5 GB/s on one thread, 30 -> 15 on two, a throwaway script; ``bench/bench_uniform.py
    --vs-copy --small-first`` shows it in the two-pass rows; docs/benchmarks.md, fifteenth session)."""
    nc = (x.size + CHUNK - 1) // CHUNK
    los = np.full(max(nc, 1), x.dtype.type(np.inf))
    his = np.full(max(nc, 1), x.dtype.type(-np.inf))
    nans = np.zeros(max(nc, 1), np.int64)
    for c in prange(nc):
        s = c * CHUNK
        los[c], his[c], nans[c] = _range_lanes(x[s:s + CHUNK])
    return los.min(), his.max(), nans.sum()


def finite_range(x: np.ndarray) -> tuple[float, float, int]:
    """(min, max, count) of the finite elements of a contiguous 1-D float32/float64 array.

    One vectorized min/max pass, which leaves NaN out and counts it. That is the answer unless the
    field holds ±inf (the min or max is infinite), or holds NaN and its min or max is zero: then a
    second, order-key pass leaves the non-finite values out and counts the rest (it ranks -0.0 below
    0.0, where the first pass keeps whichever zero came first; a nonzero min or max has one bit
    pattern, so the two passes agree on it, and frames keep their bytes)."""
    if x.size:
        lo, hi, nans = _plain_range(x) if x.size <= CHUNK else plain_range(x)  # one chunk: no parallel start-up
        if np.isfinite(lo) and np.isfinite(hi):
            if nans == 0:
                return float(lo), float(hi), int(x.size)
            if lo != 0 and hi != 0:  # NaN only, no zero at either end (16 Mi float64 values: 4-5 ms less)
                return float(lo), float(hi), int(x.size - nans)
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
    in magnitude, strictly above ``lo``, whose value marks an unsettled element, and rebuilding at
    least a step inside the float32 range (a rebuild rounded to ±inf is no value within the bound). With ``t`` the
    float32 code estimate and ``q = rint(t)``, ``|t - q| <= theta`` implies ``|x - x̂| <= eb`` in the
    float64 check. The bound (standard model, |δ| <= u per operation, Higham, *Accuracy and
    Stability of Numerical Algorithms*, §2.2; plus an absolute 2**-149 per float32 underflow):
    ``t = (x - f32(c))·f32(1/step)`` is off from ``(x - c)/step`` by at most
    ``E_t = 3.001u(T + τ) + τ + 2**-149`` with ``T = Q + 1/2`` and ``τ = 1.0001(u|c|/step + 2**-149/step)``;
    the rebuild ``f32(c + q·step)`` is off from ``c + q·step`` by ``E_y <= u|c + q·step| + 2**-149 +
    4·2**-53(|q|·step + |c + q·step|)``, so ``theta = eb/step - (E_t + E_y/step) - 2**-50`` suffices:
    ``|t - q| <= theta`` gives ``|x - (c + q·step)| <= step·(theta + E_t)``, hence ``|x - x̂| <= eb``, and
    ``|(x - c)/step - q| < 1/2 - E_y/step``, so the float64 estimate rounds to ``q`` too (``E_y`` covers
    its error). (Before issue 13's third session the margin was doubled for safety;
    ``bench/stress_uniform_margin.py``, float32 values in the band where the margin decides, ``q`` up to
    ±32766, finds wrong codes with half this margin and none with it: docs/benchmarks.md.)
    """
    ok, *fast = _fast_params.py_func(centre, step, eb, reach, lo, hi)
    return tuple(fast) if ok else None  # the kernels' own code run by Python: float32 values, no dispatch


@njit(cache=True)
def _fast_params(centre, step, eb, reach, lo, hi):
    """``fast_params`` as ``(applies, c, inv, theta, qlo, qhi, mark)``, callable from the kernels."""
    zero = np.float32(0)
    none = (False, zero, zero, zero, zero, zero, zero)
    if not (math.isfinite(centre) and math.isfinite(step) and step >= 2.0**-100 and math.isfinite(eb)):
        return none
    inv = 1.0 / step
    if not (_F32_TINY <= inv <= _F32_MAX and abs(centre) <= _F32_MAX):  # both held by float32, inv normal
        return none
    q_max = hi if not math.isfinite(reach) else min(hi, np.ceil(reach / step + 0.5))
    a = abs(centre) / step
    tau = 1.0001 * (_U32 * a + _TINY / step)
    e_t = 3.001 * _U32 * (q_max + 0.5 + tau) + tau + _TINY
    e_y = 1.001 * _U32 * (a + q_max) + _TINY / step + 4 * _U64 * (2 * q_max + a)
    theta = eb / step - (e_t + e_y) - 2.0**-50
    if not theta > 0.25:
        return none
    t32 = np.float32(theta)
    if np.float64(t32) > theta:
        t32 = np.nextafter(t32, zero)
    # codes whose rebuild could round past the float32 range (to ±inf) are left to the exact check
    q_top = min(q_max, np.floor((_F32_MAX - centre) / step) - 1.0)
    q_bottom = max(lo + 1, -q_max, np.ceil((-_F32_MAX - centre) / step) + 1.0)
    return True, np.float32(centre), np.float32(inv), t32, np.float32(q_bottom), np.float32(q_top), np.float32(lo)


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
    """Exact codes for the elements of ``x[s:e]`` left at ``lo``; returns how many are outliers (left at
    ``lo`` for ``gather_outliers``, which gives them code 0)."""
    bad = 0
    xs = x[s:e]
    cs = codes[s:e]
    for i in range(xs.size):  # over slices: a loop from s to e ran 10x slower (numba 0.68, LLVM's choice)
        if cs[i] == lo:
            q, ok = _code(xs[i], centre, inv, step, eb, lo, hi)
            cs[i] = q if ok else lo
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


@njit(inline="always", cache=True)
def _marked_span(codes, s, mark):
    """The first and last index ``j < BLOCK`` with ``codes[s + j] == mark`` (branch-free, so it vectorizes)."""
    first = np.int32(BLOCK)
    last = np.int32(-1)
    for j in range(BLOCK):
        m = codes[s + j] == mark
        first = min(first, np.int32(j) if m else np.int32(BLOCK))
        last = max(last, np.int32(j) if m else np.int32(-1))
    return first, last


@njit(inline="always", cache=True)
def _marked_outside(x, codes, s, n, mark, r_lo, r_hi):
    """Whether an element of ``x[s:s + n]`` whose code is ``mark`` lies outside ``[r_lo, r_hi]`` (NaN
    does not; branch-free, so it vectorizes)."""
    out = False
    for j in range(n):
        v = np.float64(x[s + j])
        out |= (codes[s + j] == mark) & ((v < r_lo) | (v > r_hi))
    return out


@njit(cache=True)
def _marked_range(x, codes, s, n, mark, low, high):
    """``low``/``high`` widened by the non-NaN elements of ``x[s:s + n]`` whose code is ``mark``."""
    for j in range(n):
        if codes[s + j] == mark:
            v = np.float64(x[s + j])
            low = v if v < low else low
            high = v if v > high else high
    return low, high


@njit(inline="always", cache=True)
def _marked_nan(xs, cs, mark):
    """How many of the ``BLOCK`` elements are left at ``mark``, and how many of those are NaN
    (branch-free, so it vectorizes)."""
    marked = np.int32(0)
    nan = np.int32(0)
    for j in range(BLOCK):
        m = cs[j] == mark
        marked += m
        nan += m & (xs[j] != xs[j])
    return marked, nan


@njit(cache=True)
def _settle_block(xs, cs, centre, inv, step, eb, lo, hi, low, high):
    """Exact codes for the elements of a block (``xs``, ``cs``: ``BLOCK`` values) left at ``lo``: ``(outliers,
    low, high)``, ``[low, high]`` widened by their non-NaN values. A single one (most blocks here) is
    settled alone; several take the vectorized ``_recheck`` first. (Out of line, over slices: inlined,
    it slowed the fast loop around it.)"""
    first, last = _marked_span(cs, 0, lo)
    if first == last:
        v = np.float64(xs[first])
        q, ok = _code(xs[first], centre, inv, step, eb, lo, hi)
        cs[first] = q if ok else lo
        return np.int64(not ok), v if v < low else low, v if v > high else high
    marked, nan = _marked_nan(xs, cs, lo)
    if marked == nan:  # every one left is NaN: outliers as they are (a field with NaN spread densely)
        return np.int64(nan), low, high
    if _marked_outside(xs, cs, 0, BLOCK, lo, low, high):
        low, high = _marked_range(xs, cs, 0, BLOCK, lo, low, high)
    bad = 0
    if _recheck(xs, cs, 0, centre, inv, step, eb, lo, hi):
        bad = _settle(xs, cs, 0, BLOCK, centre, inv, step, eb, lo, hi)
    return bad, low, high


@njit(cache=True)
def _fast_chunk(x, codes, fast, centre, inv, step, eb, lo, hi, track, marks):
    """Fast codes of one chunk: ``(outliers, min, max)``; ``marks[b]`` set to 1 for each ``BLOCK``-value
    block ``b`` holding an outlier (the others left as they are)."""
    lows = np.full(BLOCK, np.float32(np.inf))
    highs = np.full(BLOCK, np.float32(-np.inf))
    bad = 0
    full = x.size - x.size % BLOCK
    for s in range(0, full, BLOCK):
        if _fast_block(x, codes, s, fast, lows, highs, track):
            n = _settle_block(x[s:s + BLOCK], codes[s:s + BLOCK], centre, inv, step, eb, lo, hi, -np.inf, np.inf)[0]
            bad += _mark(marks, s, n)
    codes[full:] = lo  # the last partial block goes to the exact kernel
    bad += _mark(marks, full, _settle(x, codes, full, x.size, centre, inv, step, eb, lo, hi))
    for i in range(full, x.size):
        if track:
            lows[0] = x[i] if x[i] < lows[0] else lows[0]
            highs[0] = x[i] if x[i] > highs[0] else highs[0]
    return bad, lows.min(), highs.max()


@njit(inline="always", cache=True)
def _mark(marks, s, n):
    """Mark the block holding element ``s`` if ``n`` (its outliers) is nonzero; returns ``n``."""
    if n:
        marks[s // BLOCK] = 1
    return n


@njit(cache=True)
def _edge_chunk(x, codes, fast, centre, inv, step, eb, lo, hi, r_lo, r_hi, marks):
    """``_fast_chunk`` for a ``fast`` that accepts only codes strictly inside ``[r_lo, r_hi]``: the
    outliers, and the range of ``[r_lo, r_hi]`` and the chunk's non-NaN values, found among the
    elements the fast loop left (no tracking in the fast loop)."""
    spare = np.empty(BLOCK, np.float32)
    low, high = r_lo, r_hi
    bad = 0
    full = x.size - x.size % BLOCK
    for s in range(0, full, BLOCK):
        if _fast_block(x, codes, s, fast, spare, spare, False):
            n, low, high = _settle_block(x[s:s + BLOCK], codes[s:s + BLOCK], centre, inv, step, eb, lo, hi, low, high)
            bad += _mark(marks, s, n)
    codes[full:] = lo  # the last partial block goes to the exact kernel
    low, high = _marked_range(x, codes, full, x.size - full, lo, low, high)
    bad += _mark(marks, full, _settle(x, codes, full, x.size, centre, inv, step, eb, lo, hi))
    return bad, low, high


@njit(parallel=True, cache=True, nogil=True)
def _quantize_fast(x, codes, fast, centre, step, eb, lo, hi, track, marks):
    nc = (x.size + CHUNK - 1) // CHUNK
    counts = np.zeros(nc, np.int64)
    lows = np.full(max(nc, 1), np.float32(np.inf))
    highs = np.full(max(nc, 1), np.float32(-np.inf))
    inv = 1.0 / step
    per = CHUNK // BLOCK
    for c in prange(nc):
        s = c * CHUNK
        counts[c], lows[c], highs[c] = _fast_chunk(x[s:s + CHUNK], codes[s:s + CHUNK], fast, centre, inv, step,
                                                   eb, lo, hi, track, marks[c * per:(c + 1) * per])
    return counts, lows.min(), highs.max()


def block_marks(n: int, chunk: int = CHUNK) -> np.ndarray:
    """Zeroed per-block outlier marks of an ``n``-value field quantized ``chunk`` values at a time:
    ``ceil(chunk / BLOCK)`` bytes per chunk, block ``b`` of chunk ``c`` (values from ``c·chunk + b·BLOCK``)
    at ``c·ceil(chunk / BLOCK) + b``. The codes passes set the blocks holding an outlier to 1, so
    ``gather_outliers`` reads only those."""
    return np.zeros(max(1, -(-n // chunk)) * -(-chunk // BLOCK), np.uint8)


_LOADED = set()


def _load_fast_chunk(code_dtype) -> None:
    """Load ``_fast_chunk``'s compiled code for float32 values and ``code_dtype`` codes (once per process)
    before a caller that calls it from a parallel loop (``_quantize_fast``, ``_quantize_stack_parallel``)
    is first called. A caller loaded from numba's cache carries its own copy of the callees it was
    compiled with, and its calls bind to the callee's own code only if that is loaded already (as it is
    when the caller is compiled, not loaded). Here that copy ran the codes pass of a 256 MiB field 1.7x
    slower on two threads (12.5 against 21-22 GB/s) and on one (6.2-6.7 against 10.3-11), on the Intel
    machine of docs/benchmarks.md's fifteenth session (a throwaway script; ``bench/bench_uniform.py --vs-copy``
    shows it in the ``value_range`` rows); in cache the two ran alike. (A workaround for this one callee:
    numba's cache is the mechanism, and ``plain_range`` met the same binding the other way round.)"""
    key = np.dtype(code_dtype).str
    if key in _LOADED:
        return
    zero = np.float32(0)
    _fast_chunk(np.empty(0, np.float32), np.empty(0, code_dtype), (zero,) * 6, 0.0, 1.0, 1.0, 0.5, -1.0, 1.0, False,
                np.empty(0, np.uint8))
    _LOADED.add(key)


def quantize_fast_into(x, codes, fast, centre, step, eb, lo, hi, track=False, marks=None):
    """``quantize_into`` + ``repair`` for float32 ``x`` with ``fast = fast_params(...)``: the same
    codes (outliers at ``lo`` until ``gather_outliers``), per-chunk outlier counts for
    ``gather_outliers``, and, with ``track``, the ``(min, max)`` of the non-NaN values of ``x`` found in
    the same pass (±inf included, so it is the finite range only when there are no infinities; None if
    every value is NaN). ``marks`` (optional, ``block_marks(x.size)``) receives the blocks holding an
    outlier."""
    marks = block_marks(x.size) if marks is None else marks
    if x.size <= CHUNK:  # one chunk: no parallel region to start (about 4 µs)
        bad, low, high = _fast_chunk(x, codes, fast, centre, 1.0 / step, step, eb, lo, hi, track, marks)
        counts = np.array([bad], np.int64)
    else:
        _load_fast_chunk(codes.dtype)
        counts, low, high = _quantize_fast(x, codes, fast, centre, step, eb, lo, hi, track, marks)
    if not track or low > high:
        return counts, None
    return counts, (float(low), float(high))


@njit(cache=True)
def _quantize_chunk(x, codes, centre, inv, step, eb, lo, hi):
    misses = 0
    for i in range(x.size):
        q, ok, _ = _nearest(x[i], centre, inv, step, eb, lo, hi)
        codes[i] = q if ok else lo
        misses += not ok
    return misses


@njit(parallel=True, cache=True, nogil=True)
def quantize_into(x, codes, centre, step, eb, lo, hi):
    """Write the nearest codes of ``x`` into ``codes``; return per-chunk counts of misses, each marked
    with ``lo`` (the code type's minimum, as the float32 path marks an unsettled element) until
    ``repair`` settles it."""
    nc = (x.size + CHUNK - 1) // CHUNK
    counts = np.zeros(nc, np.int64)
    inv = 1.0 / step if step > 0.0 else 0.0
    for c in prange(nc):
        s = c * CHUNK
        counts[c] = _quantize_chunk(x[s:s + CHUNK], codes[s:s + CHUNK], centre, inv, step, eb, lo, hi)
    return counts


@njit(parallel=True, cache=True, nogil=True)
def repair(x, codes, centre, step, eb, lo, hi, counts, marks):
    """Revisit the chunks with misses: keep the neighbouring code where it holds, else leave the
    element at ``lo`` (an outlier, which ``gather_outliers`` gives code 0) and set its block in
    ``marks`` (``block_marks(x.size)``, zeroed), so that the gather reads only those blocks; returns
    the outliers per chunk. Only the elements at ``lo`` are revisited: the misses ``quantize_into``
    marked, and the few whose own code is ``lo``, which ``_code`` gives back unchanged. (Misses and
    outliers were stored as code 0 before, and every code 0 of a chunk with a miss was looked at twice
    more: slow on fields of mostly zeros with NaN or inf spread, docs/benchmarks.md, issue 13, ninth
    session.)"""
    inv = 1.0 / step if step > 0.0 else 0.0
    out = np.zeros_like(counts)
    per = (CHUNK + BLOCK - 1) // BLOCK
    for c in prange(counts.size):
        if counts[c] == 0:
            continue
        xs, cs, ms = x[c * CHUNK:(c + 1) * CHUNK], codes[c * CHUNK:(c + 1) * CHUNK], marks[c * per:(c + 1) * per]
        if counts[c] * BLOCK > cs.size:  # a miss per block or more: most blocks hold one
            out[c] = _repair_dense(xs, cs, centre, inv, step, eb, lo, hi, ms)
        else:
            out[c] = _repair_chunk(xs, cs, centre, inv, step, eb, lo, hi, ms)
    return out


@njit(cache=True)
def _repair_dense(x, codes, centre, inv, step, eb, lo, hi, marks):
    """``_repair_chunk`` for a chunk with a miss per block or more: block by block, one vector count of
    the elements at ``lo`` and of those that are NaN; a block without any is passed, one whose are all
    NaN (an outlier under any plan) is counted and marked as it is, the others scanned as in
    ``_repair_chunk`` (NaN spread over a float64 field, one value in ten: the branch per element
    mispredicted)."""
    bad = 0
    mark = codes.dtype.type(lo)
    full = codes.size - codes.size % BLOCK
    for s in range(0, full, BLOCK):
        marked, nan = _marked_nan(x[s:s + BLOCK], codes[s:s + BLOCK], mark)
        if marked == 0:
            continue
        if marked == nan:
            bad += nan
            marks[s // BLOCK] = 1
            continue
        bad += _repair_chunk(x[s:s + BLOCK], codes[s:s + BLOCK], centre, inv, step, eb, lo, hi, marks[s // BLOCK:])
    if full < codes.size:
        bad += _repair_chunk(x[full:], codes[full:], centre, inv, step, eb, lo, hi, marks[full // BLOCK:])
    return bad


@njit(cache=True)
def _repair_chunk(x, codes, centre, inv, step, eb, lo, hi, marks):
    """``repair`` of one chunk: a plain scan for the code ``lo`` (faster than a vector test per block,
    and than the same scan comparing with the float ``lo``)."""
    bad = 0
    mark = codes.dtype.type(lo)  # the integer compare of the docstring
    for i in range(codes.size):
        if codes[i] != mark:  # every other code already holds
            continue
        q, ok = _code(x[i], centre, inv, step, eb, lo, hi)
        codes[i] = q if ok else lo
        if not ok:
            bad += 1
            marks[i // BLOCK] = 1
    return bad


def gather_outliers(x, codes, centres, steps, ebs, lo, hi, counts, chunk, index, bits, marks=None):
    """Collect the outliers the kernels counted per ``chunk`` values (``counts``): their flat indices
    and raw bits, chunk ``c``'s into its own slots ``[sum(counts[:c]), sum(counts[:c + 1]))`` of
    ``index`` and ``bits``. ``centres``, ``steps`` and ``ebs`` hold each chunk's parameters (one
    value repeated for a field quantized as a whole). ``marks`` (optional, ``block_marks(x.size, chunk)``
    as the codes pass left it): only the marked blocks are read; without it, every block of a chunk
    counted nonzero. Returns how many each chunk holding any really held: a chunk never writes past
    its slots, so a count that disagrees (a kernel bug, or a block holding an outlier left unmarked)
    is reported by the caller, not written over a neighbour's or past the arrays (chunks counted 0
    are not read)."""
    size = block_marks(x.size, chunk).size
    if marks is None:
        marks = np.ones(size, np.uint8)
    elif marks.shape != (size,):  # the kernel checks no bounds
        raise ValueError(f"gather_outliers: marks has shape {marks.shape}, expected ({size},) for {x.size} values "
                         f"in chunks of {chunk}")
    return _gather_outliers(x, codes, centres, steps, ebs, lo, hi, counts, chunk, index, bits, marks)


@njit(parallel=True, cache=True, nogil=True)
def _gather_outliers(x, codes, centres, steps, ebs, lo, hi, counts, chunk, index, bits, marks):
    nc = counts.size
    per = (chunk + BLOCK - 1) // BLOCK
    starts = np.zeros(nc + 1, np.int64)
    for c in range(nc):
        starts[c + 1] = starts[c] + counts[c]
    raw = x.view(bits.dtype)
    found = np.zeros(nc, np.int64)
    for c in prange(nc):
        if counts[c]:
            s = c * chunk
            step = steps[c]
            inv = 1.0 / step if step > 0.0 else 0.0
            found[c] = _gather_chunk(x[s:s + chunk], codes[s:s + chunk], raw[s:s + chunk], s, centres[c], inv, step,
                                     ebs[c], lo, hi, index, bits, starts[c], starts[c + 1], marks[c * per:(c + 1) * per])
    return found


@njit(cache=True)
def _gather_chunk(x, codes, raw, first, centre, inv, step, eb, lo, hi, index, bits, k, end, marks):
    """Write the outliers of the chunk's marked blocks into slots ``k..end - 1`` (no further) and give
    them code 0; returns how many. The codes passes leave an outlier at ``lo``, the code type's
    minimum, and ``_code`` tells it from the rare element whose own code is ``lo``."""
    n = 0
    mark = codes.dtype.type(lo)
    for s in range(0, codes.size, BLOCK):
        if not marks[s // BLOCK]:
            continue
        if s + BLOCK <= codes.size and k + n + BLOCK <= end \
                and _marked_nan(x[s:s + BLOCK], codes[s:s + BLOCK], mark)[1] == BLOCK:
            _take_block(raw, codes, s, first, index, bits, k + n)  # a block all NaN (a masked region)
            n += BLOCK
            continue
        for i in range(s, min(s + BLOCK, codes.size)):
            if codes[i] == mark and (x[i] != x[i] or not _code(x[i], centre, inv, step, eb, lo, hi)[1]):
                codes[i] = 0
                if k + n < end:
                    index[k + n] = first + i
                    bits[k + n] = raw[i]
                n += 1
    return n


@njit(inline="always", cache=True)
def _take_block(raw, codes, s, first, index, bits, at):
    """Every element of the block at ``s`` an outlier (all NaN): their indices and bits into the slots
    from ``at``, their codes 0 (one loop LLVM vectorizes)."""
    for j in range(BLOCK):
        index[at + j] = first + s + j
        bits[at + j] = raw[s + j]
        codes[s + j] = 0


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
def dequantize_chunks_into(codes, out, centres, steps, chunk):
    """``dequantize_into`` with the centre and step of each ``chunk`` values of its own."""
    for c in prange(centres.size):
        s = c * chunk
        _dequantize_chunk(codes[s:s + chunk], out[s:s + chunk], centres[c], steps[c])


@njit(parallel=True, cache=True, nogil=True)
def scatter_bits(out_bits, index, bits):
    """Put outliers back: ``out_bits[index[k]] = bits[k]`` (raw bits, so NaN payloads survive)."""
    for k in prange(index.size):
        out_bits[index[k]] = bits[k]


@njit(cache=True)
def _fits(centre, step, r_lo, r_hi, hi):
    """Whether every value in ``[r_lo, r_hi]`` has a code (one to spare) around ``centre`` with ``step``."""
    return step > 0.0 and max(r_hi - centre, centre - r_lo) / step <= hi - 1.0


@njit(cache=True)
def _chunk_codes(xs, cs, centre, step, eb, r_lo, r_hi, lo, hi, edges, marks):
    """Codes of one chunk for ``(centre, step, eb)`` fitted to ``[r_lo, r_hi]`` (the fast path where it
    applies, else ``_code`` per element): ``(outliers, min, max)``; with ``edges``, ``[min, max]`` is
    the range of ``[r_lo, r_hi]`` and the chunk's non-NaN values (see ``_edge_chunk``). ``marks`` (the
    chunk's, see ``block_marks``) is cleared, then set where a block holds an outlier."""
    marks[:] = 0
    ok, c32, inv32, theta, qlo, qhi, mark = _fast_params(centre, step, eb, max(r_hi - centre, centre - r_lo), lo, hi)
    inv = 1.0 / step if step > 0.0 else 0.0
    if ok and edges:  # accept only codes whose values lie strictly inside [r_lo, r_hi]
        qlo = max(qlo, np.float32(np.ceil((r_lo - centre) * inv) + 1.0))
        qhi = min(qhi, np.float32(np.floor((r_hi - centre) * inv) - 1.0))
        return _edge_chunk(xs, cs, (c32, inv32, theta, qlo, qhi, mark), centre, inv, step, eb, lo, hi, r_lo, r_hi, marks)
    if ok:
        return _fast_chunk(xs, cs, (c32, inv32, theta, qlo, qhi, mark), centre, inv, step, eb, lo, hi, False,
                           marks)[0], 0.0, 0.0
    bad = 0
    for i in range(xs.size):
        q, good = _code(xs[i], centre, inv, step, eb, lo, hi)
        cs[i] = q if good else lo
        bad += _mark(marks, i, not good)
    low, high = r_lo, r_hi
    if edges:
        c_lo, c_hi, _ = _plain_range(xs)
        low, high = min(low, np.float64(c_lo)), max(high, np.float64(c_hi))
    return bad, low, high


@njit(cache=True)
def _running_plan(rel, eb_abs, r_lo, r_hi, centre, hi):
    """``(eb, centre, step)`` for the range ``[r_lo, r_hi]`` seen so far: the bound of that range
    (``rel > 0``) or ``eb_abs``, the centre kept while the range fits around it, else its midrange."""
    eb = rel * (r_hi - r_lo) if rel > 0.0 else eb_abs
    step = 2.0 * eb if math.isfinite(2.0 * eb) else 0.0
    if not _fits(centre, step, r_lo, r_hi, hi):
        centre = r_lo / 2 + r_hi / 2
    return eb, centre, step


@njit(cache=True)
def sample_range(x, lines, width):
    """``(min, max, finite)`` of the non-NaN values in ``lines`` windows of ``width`` values spread evenly
    over ``x`` (the first at 0, the last at ``x.size - width`` rounded down; starts rounded down to a multiple
    of ``width``, so ``width = 16`` float32 reads one cache line each); ``finite`` is False if one is ±inf.
    The whole of ``x`` if ``lines * width >= x.size``. ``min > max`` where every value read is NaN."""
    low = np.inf
    high = -np.inf
    n = x.size
    if lines * width >= n:
        starts = np.arange(1) if n else np.arange(0)
        width = n
    else:
        starts = np.arange(lines) * (n - width) // max(lines - 1, 1)
        starts -= starts % width
    for k in range(starts.size):
        for i in range(starts[k], min(starts[k] + width, n)):
            v = np.float64(x[i])
            low = v if v < low else low
            high = v if v > high else high
    return low, high, low != -np.inf and high != np.inf


@njit(inline="always", cache=True)
def _running_chunk(xs, cs, ms, rel, eb_abs, lo, hi, centre, step, eb, r_lo, r_hi):
    """A chunk of ``quantize_running`` with the plan ``(eb, centre, step)`` of the range ``[r_lo, r_hi]``:
    ``(done, outliers, eb, centre, step, min, max)``, the plan the chunk kept (redone at once from the wider
    range where its values past ``[r_lo, r_hi]`` missed their codes: it is still in cache) and ``[min, max]``
    the range of ``[r_lo, r_hi]`` and its non-NaN values; ``done`` False if it holds ±inf. (Inlined and
    returning its results: written into the outputs by itself, or not inlined, the loop ran 4-8 % slower on
    one thread, in a throwaway script's timings of the kernel.)"""
    bad, c_lo, c_hi = _chunk_codes(xs, cs, centre, step, eb, r_lo, r_hi, lo, hi, True, ms)
    if c_lo == -np.inf or c_hi == np.inf:
        return False, bad, eb, centre, step, r_lo, r_hi
    n_lo, n_hi = min(r_lo, c_lo), max(r_hi, c_hi)
    if bad and (n_lo < r_lo or n_hi > r_hi):
        eb, centre, step = _running_plan(rel, eb_abs, n_lo, n_hi, centre, hi)
        bad = _chunk_codes(xs, cs, centre, step, eb, n_lo, n_hi, lo, hi, False, ms)[0]
    return True, bad, eb, centre, step, n_lo, n_hi


@njit(parallel=True, cache=True, nogil=True)
def quantize_running(x, codes, rel, eb_abs, lo, hi, centres, ebs, steps, counts, chunk, marks, lines=0, wave=1,
                     serial=False):
    """One pass over a float32 field, ``chunk`` values at a time, in waves of ``wave`` chunks: the chunks of a
    wave are quantized (in parallel) with the plan of the range of the waves before it (the first wave: that of
    chunk 0), widened by the range of a sample of the field (``lines`` cache lines of 16 values spread over it,
    ``sample_range``; 0: none), whose bound is never looser than the field's (every value in that range is one
    of the field's), while each chunk's own range is found in the same loop; a chunk whose values past that
    range missed their codes is redone at once from the wider range (it is still in cache). The codes depend
    on ``wave``, not on the thread count; ``wave = 1`` is the sequential scheme, each chunk with the range of
    all chunks before it; ``serial`` runs the waves' chunks in turn outside a parallel region (the same codes:
    the caller's choice on one thread, where that loop ran 4 % faster in a throwaway script). Writes each
    chunk's centre, bound, step and outlier count, and the blocks holding an outlier into ``marks``
    (``block_marks(x.size, chunk)``); returns ``(done, min, max)``: ``done`` is False (and the outputs are
    partial) if a chunk or the sample holds ±inf, or chunk 0 no number, which the two-pass path handles."""
    per = (chunk + BLOCK - 1) // BLOCK
    low, high, _ = _plain_range(x[:chunk])
    r_lo, r_hi = np.float64(low), np.float64(high)
    if not (math.isfinite(r_lo) and math.isfinite(r_hi)):
        return False, 0.0, 0.0
    if lines > 0:
        s_lo, s_hi, finite = sample_range(x, lines, 16)
        if not finite:
            return False, 0.0, 0.0
        r_lo, r_hi = min(r_lo, s_lo), max(r_hi, s_hi)
    nc = centres.size
    wave = max(1, wave)
    done = np.ones(nc, np.bool_)
    lows = np.empty(nc)
    highs = np.empty(nc)
    centre = r_lo / 2 + r_hi / 2
    for w in range(0, nc, wave):
        eb, centre, step = _running_plan(rel, eb_abs, r_lo, r_hi, centre, hi)
        top = min(w + wave, nc)
        if serial:
            for c in range(w, top):
                s = c * chunk
                done[c], counts[c], ebs[c], centres[c], steps[c], lows[c], highs[c] = _running_chunk(
                    x[s:s + chunk], codes[s:s + chunk], marks[c * per:(c + 1) * per], rel, eb_abs, lo, hi, centre,
                    step, eb, r_lo, r_hi)
        else:
            for c in prange(w, top):
                s = c * chunk
                done[c], counts[c], ebs[c], centres[c], steps[c], lows[c], highs[c] = _running_chunk(
                    x[s:s + chunk], codes[s:s + chunk], marks[c * per:(c + 1) * per], rel, eb_abs, lo, hi, centre,
                    step, eb, r_lo, r_hi)
        for c in range(w, top):
            if not done[c]:
                return False, 0.0, 0.0
            r_lo, r_hi = min(r_lo, lows[c]), max(r_hi, highs[c])
        centre = centres[top - 1]
    return True, r_lo, r_hi


@njit(parallel=True, cache=True, nogil=True)
def requantize_chunks(x, codes, chunks, chunk, centre, step, eb, r_lo, r_hi, lo, hi, counts, fewer, marks):
    """Quantize again the listed chunks (of ``chunk`` values) with one plan fitted to ``[r_lo, r_hi]``, their
    outlier counts into ``counts`` and outlier blocks into ``marks`` (see ``quantize_running``); with ``fewer``,
    a chunk keeps the new codes only if they leave fewer outliers. Returns which chunks took the new codes."""
    took = np.zeros(chunks.size, np.bool_)
    per = (chunk + BLOCK - 1) // BLOCK
    for k in prange(chunks.size):
        c = chunks[k]
        s = c * chunk
        xs, cs, ms = x[s:s + chunk], codes[s:s + chunk], marks[c * per:(c + 1) * per]
        out = np.empty_like(cs) if fewer else cs
        out_ms = np.empty_like(ms) if fewer else ms
        bad = _chunk_codes(xs, out, centre, step, eb, r_lo, r_hi, lo, hi, False, out_ms)[0]
        if not fewer or bad < counts[c]:
            if fewer:
                cs[:] = out
                ms[:] = out_ms
            counts[c] = bad
            took[k] = True
    return took


@njit(parallel=True, cache=True, nogil=True)
def chunk_nans(x, chunks, chunk):
    """How many NaN each listed chunk (of ``chunk`` values) of ``x`` holds."""
    out = np.zeros(chunks.size, np.int64)
    for k in prange(chunks.size):
        out[k] = _nans(x[chunks[k] * chunk:(chunks[k] + 1) * chunk])
    return out


@njit(cache=True)
def _nans(xs):
    n = 0
    for i in range(xs.size):  # over a slice, a loop LLVM vectorizes
        n += xs[i] != xs[i]
    return n


@njit(inline="always", cache=True)
def _stack_row(x, codes, counts, marks, rel, eb_abs, tiny, lo, hi):
    """One row of ``quantize_stack``: returns ``(done, min, max, eb, centre, step)``."""
    low, high, nans = _plain_range(x)
    r_lo, r_hi = np.float64(low), np.float64(high)
    if not (nans == 0 and math.isfinite(r_lo) and math.isfinite(r_hi)) or x.size == 0:
        return False, 0.0, 0.0, 0.0, 0.0, 0.0
    eb = rel * (r_hi - r_lo) if rel > 0.0 else eb_abs
    eb = eb if eb > tiny else tiny
    centre = r_lo / 2 + r_hi / 2
    step = 2.0 * eb if math.isfinite(2.0 * eb) else 0.0
    ok, c32, inv32, theta, qlo, qhi, mark = _fast_params(centre, step, eb, max(r_hi - centre, centre - r_lo), lo, hi)
    if not ok:
        return False, 0.0, 0.0, 0.0, 0.0, 0.0
    fast = (c32, inv32, theta, qlo, qhi, mark)
    inv = 1.0 / step
    per = CHUNK // BLOCK
    for c in range(counts.size):
        s = c * CHUNK
        counts[c] = _fast_chunk(x[s:s + CHUNK], codes[s:s + CHUNK], fast, centre, inv, step, eb, lo, hi, False,
                                marks[c * per:(c + 1) * per])[0]
    return True, r_lo, r_hi, eb, centre, step


@njit(inline="always", cache=True)
def _put(plans, j, row):
    done, r_lo, r_hi, eb, centre, step = row
    plans[j, 0], plans[j, 1], plans[j, 2], plans[j, 3], plans[j, 4], plans[j, 5] = done, r_lo, r_hi, eb, centre, step


@njit(cache=True, nogil=True)
def _quantize_stack(x, codes, rels, ebs_abs, tiny, lo, hi, counts, marks, plans):
    for j in range(x.shape[0]):
        _put(plans, j, _stack_row(x[j], codes[j], counts[j], marks[j], rels[j], ebs_abs[j], tiny, lo, hi))


@njit(parallel=True, cache=True, nogil=True)
def _quantize_stack_parallel(x, codes, rels, ebs_abs, tiny, lo, hi, counts, marks, plans):
    for j in prange(x.shape[0]):
        _put(plans, j, _stack_row(x[j], codes[j], counts[j], marks[j], rels[j], ebs_abs[j], tiny, lo, hi))


def quantize_stack(x, codes, rels, ebs_abs, tiny, lo, hi, threads=1):
    """Quantize each row ``x[j]`` of a C-contiguous float32 ``[n, size]`` stack into ``codes[j]`` with
    its own plan, in one call: the row's finite range ``[min, max]`` (one vectorized pass), its bound
    ``eb = rels[j] * (max - min)`` if ``rels[j] > 0`` else ``ebs_abs[j]``, raised to at least ``tiny``,
    centre ``min/2 + max/2``, step ``2 eb``; codes by the float32 fast path (``fast_params``,
    ``_fast_chunk``: the codes ``quantize_into`` + ``repair`` give), per ``CHUNK`` values.

    Returns ``plans`` (float64 ``[n, 6]``: done, min, max, eb, centre, step), ``counts`` (int64
    ``[n, chunks]``: outliers per chunk, left at ``lo`` for ``gather_outliers``, which gives them code 0)
    and ``marks`` (uint8, row ``j`` the ``block_marks(size)`` of row ``j``: the blocks holding an
    outlier, which ``gather_outliers`` then reads alone). A row not done (holding NaN or ±inf, empty,
    or a plan the fast path does not take) has unspecified codes: the caller quantizes it another way.
    ``threads > 1``: rows in parallel."""
    n, size = x.shape
    counts = np.zeros((n, max(1, -(-size // CHUNK))), np.int64)
    plans = np.zeros((n, 6))
    marks = np.zeros((n, block_marks(size).size), np.uint8)
    run = _quantize_stack_parallel if threads > 1 and n > 1 else _quantize_stack
    _load_fast_chunk(codes.dtype)
    run(x, codes, rels, ebs_abs, tiny, lo, hi, counts, marks, plans)
    return plans, counts, marks
