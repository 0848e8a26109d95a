"""Range-variant ANS (rANS, Duda 2013, arXiv 1311.2540) over symbol chunks, two interleaved states per chunk.

States are kept in ``[2**16, 2**32)`` and renormalized 16 bits at a time; frequencies sum to
``2**R`` (``R <= 16``), so each symbol moves at most one 16-bit word. Symbols at even offsets in
a chunk use state 0, odd ones state 1 (interleaving as in Giesen, arXiv 1402.3392), so the decoder
has two independent dependency chains; both share one word stream. The encoder runs each chunk
backwards and fills its scratch area from the end; a chunk's stream is its two final states
(4 bytes each, little-endian, state 0 first) followed by its words (2 bytes each, little-endian)
in decoding order. Decoding looks up one packed entry per slot:
``symbol | freq << 16 | (slot - cum) << 33``.
"""

from __future__ import annotations

import functools

import numba
import numpy as np

from .targets import checksum_chunk, checksum_cpu, checksums_cpu, cpu, cuda_device, launch, to_device

STATE_LOW = 1 << 16


def encode_chunk(x, lo, hi, base, mask, freq, cum, precision, out, end):
    """Encode ``x[lo:hi]`` into ``out[..end]`` (filled backwards); return the bytes written."""
    state0 = STATE_LOW
    state1 = STATE_LOW
    p = end
    i = hi - 1
    if (hi - lo) & 1:  # the last symbol sits at an even offset: state 0
        s = (np.int64(x[np.uint64(i)]) - base) & mask
        f = np.int64(freq[np.uint64(s)])
        if state0 >= (f << (32 - precision)):
            out[np.uint64(p - 2)] = state0 & 0xFF
            out[np.uint64(p - 1)] = (state0 >> 8) & 0xFF
            p -= 2
            state0 >>= 16
        q = state0 // f
        state0 = (q << precision) + state0 - q * f + np.int64(cum[np.uint64(s)])
        i -= 1
    while i > lo:  # offsets i (odd, state 1) and i - 1 (even, state 0)
        s = (np.int64(x[np.uint64(i)]) - base) & mask
        f = np.int64(freq[np.uint64(s)])
        if state1 >= (f << (32 - precision)):
            out[np.uint64(p - 2)] = state1 & 0xFF
            out[np.uint64(p - 1)] = (state1 >> 8) & 0xFF
            p -= 2
            state1 >>= 16
        q = state1 // f
        state1 = (q << precision) + state1 - q * f + np.int64(cum[np.uint64(s)])
        s = (np.int64(x[np.uint64(i - 1)]) - base) & mask
        f = np.int64(freq[np.uint64(s)])
        if state0 >= (f << (32 - precision)):
            out[np.uint64(p - 2)] = state0 & 0xFF
            out[np.uint64(p - 1)] = (state0 >> 8) & 0xFF
            p -= 2
            state0 >>= 16
        q = state0 // f
        state0 = (q << precision) + state0 - q * f + np.int64(cum[np.uint64(s)])
        i -= 2
    p -= 8
    for k in range(4):
        out[np.uint64(p + k)] = (state0 >> (8 * k)) & 0xFF
        out[np.uint64(p + 4 + k)] = (state1 >> (8 * k)) & 0xFF
    return end - p


def decode_chunk(data, start, end, out, lo, hi, base, mask, slots, precision):
    """Decode ``hi - lo`` symbols from ``data[start:end]`` into ``out[lo:hi]``.

    Returns 0, or -1 unless the stream is consumed exactly and both states return to their
    initial value. Never reads outside ``data[start:end]``.
    """
    if end - start < 8:
        return -1
    state0 = 0
    state1 = 0
    for k in range(4):
        state0 |= np.int64(data[np.uint64(start + k)]) << (8 * k)
        state1 |= np.int64(data[np.uint64(start + 4 + k)]) << (8 * k)
    if state0 < STATE_LOW or state1 < STATE_LOW:
        return -1
    p = start + 8
    smask = (1 << precision) - 1
    i = lo
    while i < hi:
        e0 = np.int64(slots[np.uint64(state0 & smask)])
        state0 = ((e0 >> 16) & 0x1FFFF) * (state0 >> precision) + (e0 >> 33)
        out[np.uint64(i)] = ((e0 & 0xFFFF) + base) & mask
        if i + 1 < hi:  # the odd symbol's update does not wait for the even symbol's word
            e1 = np.int64(slots[np.uint64(state1 & smask)])
            state1 = ((e1 >> 16) & 0x1FFFF) * (state1 >> precision) + (e1 >> 33)
            out[np.uint64(i + 1)] = ((e1 & 0xFFFF) + base) & mask
        if state0 < STATE_LOW:
            if p + 2 > end:
                return -1
            state0 = (state0 << 16) | np.int64(data[np.uint64(p)]) | (np.int64(data[np.uint64(p + 1)]) << 8)
            p += 2
        if state1 < STATE_LOW:
            if p + 2 > end:
                return -1
            state1 = (state1 << 16) | np.int64(data[np.uint64(p)]) | (np.int64(data[np.uint64(p + 1)]) << 8)
            p += 2
        i += 2
    if p != end or state0 != STATE_LOW or state1 != STATE_LOW:
        return -1
    return 0


_encode_cpu = cpu(encode_chunk)
_decode_cpu = cpu(decode_chunk)


@numba.njit(parallel=True, cache=True)
def encode_cpu(x, starts, ends, table_of, base, mask, freq, cum, precision, scratch, scratch_end, nbytes, sums):
    n = starts.size
    for j in numba.prange((n + 1) // 2):
        a = 2 * j
        b = a + 1
        t = table_of[a]
        nbytes[a] = _encode_cpu(x, starts[a], ends[a], base, mask, freq[t], cum[t], precision, scratch, scratch_end[a])
        if b < n:
            t = table_of[b]
            nbytes[b] = _encode_cpu(x, starts[b], ends[b], base, mask, freq[t], cum[t], precision, scratch,
                                    scratch_end[b])
            checksums_cpu(x, starts[a], ends[a], starts[b], ends[b], sums, a, b)
        else:
            sums[a] = checksum_cpu(x, starts[a], ends[a])


@numba.njit(parallel=True, cache=True)
def decode_cpu(data, offsets, out, starts, ends, table_of, base, mask, slots, precision, sums):
    n = starts.size
    for j in numba.prange((n + 1) // 2):  # chunks in pairs: their checksums computed together
        a = 2 * j
        b = a + 1
        sa = _decode_cpu(data, offsets[a], offsets[a + 1], out, starts[a], ends[a], base, mask, slots[table_of[a]],
                         precision)
        if b < n:
            sb = _decode_cpu(data, offsets[b], offsets[b + 1], out, starts[b], ends[b], base, mask,
                             slots[table_of[b]], precision)
            checksums_cpu(out, starts[a], ends[a], starts[b], ends[b], sums, a, b)
            if sb != 0:
                sums[b] = -1
        else:
            sums[a] = checksum_cpu(out, starts[a], ends[a])
        if sa != 0:
            sums[a] = -1


@numba.njit(cache=True)
def slot_table(freq, precision):
    """Per table and slot ``symbol | freq << 16 | (slot - cum) << 33`` for frequencies ``freq``
    ``[tables, K]`` that sum to ``2**precision`` in every row (checked by the caller)."""
    tables, alphabet = freq.shape
    slots = np.empty((tables, 1 << precision), np.int64)
    for t in range(tables):
        pos = 0
        for s in range(alphabet):
            f = freq[t, s]
            for k in range(f):
                slots[t, pos + k] = s | (f << 16) | (k << 33)
            pos += f
    return slots


@numba.njit(parallel=True, cache=True)
def gather_cpu(scratch, scratch_end, nbytes, offsets, out):
    for i in numba.prange(nbytes.size):
        out[offsets[i]:offsets[i] + nbytes[i]] = scratch[scratch_end[i] - nbytes[i]:scratch_end[i]]


cuda = None
"""numba.cuda, bound on first GPU use; a module global so that the CUDA simulator can swap it."""


@functools.cache
def _cuda_kernels():
    global cuda
    from numba import cuda

    encode_dev, decode_dev, checksum_dev = (cuda_device(f) for f in (encode_chunk, decode_chunk, checksum_chunk))

    @cuda.jit
    def encode(x, starts, ends, table_of, base, mask, freq, cum, precision, scratch, scratch_end, nbytes, sums):
        i = cuda.grid(1)
        if i < starts.size:
            t = table_of[i]
            nbytes[i] = encode_dev(x, starts[i], ends[i], base, mask, freq[t], cum[t], precision, scratch,
                                   scratch_end[i])
            sums[i] = checksum_dev(x, starts[i], ends[i])

    @cuda.jit
    def decode(data, offsets, out, starts, ends, table_of, base, mask, slots, precision, sums):
        i = cuda.grid(1)
        if i < starts.size:
            status = decode_dev(data, offsets[i], offsets[i + 1], out, starts[i], ends[i], base, mask,
                                slots[table_of[i]], precision)
            sums[i] = checksum_dev(out, starts[i], ends[i]) if status == 0 else -1

    return encode, decode


def encode(device, x, starts, ends, table_of, base, mask, freq, cum, precision):
    """Encode every chunk; returns (concatenated streams uint8, bytes per chunk, checksums)."""
    cap = 2 * (ends - starts) + 8
    scratch_end = np.cumsum(cap)
    scratch = np.zeros(int(scratch_end[-1]) if cap.size else 0, np.uint8)
    nbytes = np.zeros(starts.size, np.int64)
    sums = np.zeros(starts.size, np.int64)
    if device == "cpu":
        encode_cpu(x, starts, ends, table_of, base, mask, freq, cum, precision, scratch, scratch_end, nbytes, sums)
    else:
        enc, _ = _cuda_kernels()
        d = to_device(x, starts, ends, table_of, freq, cum, scratch, scratch_end, nbytes, sums)
        launch(enc, starts.size, d[0], d[1], d[2], d[3], base, mask, d[4], d[5], precision, d[6], d[7], d[8], d[9])
        scratch, nbytes, sums = d[6].copy_to_host(), d[8].copy_to_host(), d[9].copy_to_host()
    offsets = np.zeros(starts.size + 1, np.int64)
    np.cumsum(nbytes, out=offsets[1:])
    out = np.empty(int(offsets[-1]), np.uint8)
    gather_cpu(scratch, scratch_end, nbytes, offsets, out)
    return out, nbytes, sums


def decode(device, data, offsets, out, starts, ends, table_of, base, mask, slots, precision):
    """Decode every chunk into ``out``; returns the per-chunk checksums (-1 marks a damaged chunk)."""
    sums = np.zeros(starts.size, np.int64)
    if device == "cpu":
        decode_cpu(data, offsets, out, starts, ends, table_of, base, mask, slots, precision, sums)
        return sums
    _, dec = _cuda_kernels()
    d = to_device(data, offsets, out, starts, ends, table_of, slots, sums)
    launch(dec, starts.size, d[0], d[1], d[2], d[3], d[4], d[5], base, mask, d[6], precision, d[7])
    out[...] = d[2].copy_to_host()
    return d[7].copy_to_host()
