"""Number-format kernels for ``compframe.plugins.quantizers.formats`` and ``blocks``, compiled with numba.

``encode_into`` does for each value what ``SignMagnitude`` describes: find how many midpoints between
consecutive representable magnitudes lie below ``|x|``, a tie going to the even code, then the
overflow, inf and NaN rules, then the sign bit. The search starts from a bucket table indexed by the
binary exponent and the top ``j`` mantissa bits of ``|x|`` (``bucket_table``; read from the float64 bit
pattern) and holding at most one midpoint, so one comparison replaces a binary search.

``block_encode_into`` / ``block_decode_into`` are the block formats, row by row: per block of a row,
the largest finite magnitude, the shared exponent (OCP MX v1.0 §6.3), the elements encoded by the same
encoder (saturating) on the scaled row, and back. Drivers run a ``prange`` over chunks or rows.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

CHUNK = 1 << 16


def bucket_table(mids: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Search start for every bucket ``[2^e (1 + t 2^-j), 2^e (1 + (t+1) 2^-j))`` between the binades of the
    first and last midpoint: the number of midpoints below the bucket's start; then ``e_lo`` and ``j``.

    ``j`` is the fewest mantissa bits that put at most one midpoint in each bucket (at most 16), so one
    comparison finishes the search.
    """
    e_lo, e_hi = math.frexp(mids[0])[1] - 1, math.frexp(mids[-1])[1] - 1
    exps = np.frexp(mids)[1] - 1
    for j in range(1, 17):
        keys = (exps - e_lo) * (1 << j) + np.floor((np.ldexp(mids, -exps) - 1) * (1 << j)).astype(np.int64)
        if np.all(np.diff(keys) > 0):
            break
    e = np.arange(e_lo, e_hi + 1)[:, None]
    starts = np.ldexp(1.0 + np.arange(1 << j)[None, :] / (1 << j), e).reshape(-1)
    return np.searchsorted(mids, starts, side="left").astype(np.int32), e_lo, j


@njit(cache=True, nogil=True)
def _encode_chunk(x, out, mids, base, e_lo, j, table_codes, sign_bit, inf_code, nan_code, nan_sign,
                  overflow_code, saturate):
    """Codes of ``x`` into ``out`` (one loop body on purpose: split into helpers, numba's code runs 4x slower)."""
    shift, offset = 52 - j, (e_lo + 1023) << j  # bit pattern of |x| -> bucket
    top = mids.size if overflow_code < 0 else mids.size - 1  # index of the largest finite magnitude
    lo, hi = mids[0], mids[mids.size - 1]
    saturating = saturate or overflow_code < 0
    has_inf = inf_code >= 0
    value = np.empty(1, dtype=np.float64)
    pattern = value.view(np.int64)
    for i in range(x.size):
        value[0] = x[i]
        bits = pattern[0]
        sign = sign_bit if bits < 0 else 0
        a = abs(value[0])
        if a >= lo and a <= hi:  # the common case: one bucket look-up, one comparison
            idx = base[((bits & 0x7FFFFFFFFFFFFFFF) >> shift) - offset]
            idx += mids[idx] < a
            if a == mids[idx]:
                idx += table_codes[idx] & 1
        elif a < lo:
            idx = 0
        elif a != a:
            idx = -1
        else:
            idx = mids.size
        if idx > top:  # past the largest finite value: inf stays inf, finite overflow saturates or overflows
            idx = top + 1 if (has_inf and a == np.inf) or not saturating else top
        if idx < 0:
            out[i] = nan_code | (sign if nan_sign else 0)
        else:
            out[i] = table_codes[idx] | sign


@njit(parallel=True, cache=True, nogil=True)
def encode_into(x, out, mids, base, e_lo, j, table_codes, sign_bit, inf_code, nan_code, nan_sign, overflow_code,
                saturate):
    """Codes of the 1-D array ``x`` into ``out``; special codes are -1 where the format has none.

    ``table_codes`` holds the code of each magnitude in increasing order, then the overflow code (inf,
    else NaN) if the format has one; ``mids`` the midpoints between consecutive entries.
    """
    n_chunks = (x.size + CHUNK - 1) // CHUNK
    for c in prange(n_chunks):
        start = c * CHUNK
        stop = min(start + CHUNK, x.size)
        _encode_chunk(x[start:stop], out[start:stop], mids, base, e_lo, j, table_codes, sign_bit, inf_code,
                      nan_code, nan_sign, overflow_code, saturate)


@njit(parallel=True, cache=True, nogil=True)
def block_encode_into(x, codes, scales, block, emax, bias, max_exp, nan_scale, log_scale, twos_complement,
                      mids, base, e_lo, j, table_codes, sign_bit, overflow_code):
    """Block-scaled codes of the 2-D array ``x`` (rows, length) into ``codes`` and ``scales`` (rows, blocks).

    Shared exponent ``s = floor(log2 amax) - emax`` (``round`` with ``log_scale``), clamped to
    ``[-bias, max_exp]``; ``nan_scale`` for a block holding NaN or inf (its elements become 0). Elements
    ``x 2^-s`` are encoded saturating; ``twos_complement`` turns sign-magnitude codes into two's complement.
    """
    rows, length = x.shape
    n_blocks = scales.shape[1]
    for r in prange(rows):
        scaled = np.empty(length, dtype=np.float64)
        row_codes = np.empty(length, dtype=np.int64)
        for b in range(n_blocks):
            start = b * block
            stop = min(start + block, length)
            amax = 0.0
            bad = False
            for i in range(start, stop):
                a = abs(np.float64(x[r, i]))
                if not a < np.inf:
                    bad = True
                elif a > amax:
                    amax = a
            exp = -bias
            if bad:
                scales[r, b] = nan_scale
            else:
                if amax > 0:
                    exp = math.frexp(amax * 1.4142135623730951 if log_scale else amax)[1] - 1 - emax
                    exp = min(max(exp, -bias), max_exp)
                scales[r, b] = exp + bias
            inverse = 0.0 if bad else math.ldexp(1.0, -exp)  # a power of two: the products are exact
            for i in range(start, stop):
                scaled[i] = np.float64(x[r, i]) * inverse if not bad else 0.0
        _encode_chunk(scaled, row_codes, mids, base, e_lo, j, table_codes, sign_bit, -1, -1, False, overflow_code,
                      True)
        for i in range(length):
            code = row_codes[i]
            codes[r, i] = sign_bit - code if (twos_complement and code >= sign_bit) else code


@njit(parallel=True, cache=True, nogil=True)
def block_decode_into(codes, scales, out, block, bias, nan_scale, lut, twos_complement, sign_bit):
    """``out[r, i] = lut[code] 2^(scale - bias)`` (NaN for a NaN scale); the inverse of ``block_encode_into``.

    Returns how many codes fall outside ``lut`` (a code no encoder writes, such as -128 for
    MXINT8's symmetric int8); those elements become NaN. ``scales`` must be ``(rows, ceil(length /
    block))``, checked by the caller.
    """
    rows, length = codes.shape
    n_blocks = scales.shape[1]
    size = lut.size
    bad = 0
    for r in prange(rows):
        for b in range(n_blocks):
            s = np.int64(scales[r, b])
            scale = np.nan if s == nan_scale else math.ldexp(1.0, s - bias)
            for i in range(b * block, min((b + 1) * block, length)):
                code = np.int64(codes[r, i])
                if twos_complement and code < 0:
                    code = sign_bit - code
                if code < size:
                    out[r, i] = lut[code] * scale
                else:
                    out[r, i] = np.nan
                    bad += 1
    return bad
