"""Range-variant ANS (rANS, Duda 2013, arXiv 1311.2540) over symbol chunks: two interleaved states
per chunk (the pair mode, described here), or 16-64 (the lane mode, ``LANES``: ``encode_lanes``,
``decode_lanes_tail`` and the vector decoders ``simd.decode_groups``, ``simd.decode_groups_pair``).

States are kept in ``[2**16, 2**32)`` and renormalized 16 bits at a time; frequencies sum to
``2**R`` (``R <= 16``), so each symbol moves at most one 16-bit word. Symbols at even offsets in
a chunk use state 0, odd ones state 1 (interleaving as in Giesen, arXiv 1402.3392), so the decoder
has two independent dependency chains; both share one word stream. The encoder runs each chunk
backwards and fills its scratch area from the end; a chunk's stream is its two final states
(4 bytes each, little-endian, state 0 first) followed by its words (2 bytes each, little-endian)
in decoding order.

Encoding divides by a symbol's frequency through a multiply by a precomputed reciprocal (see
``encoder_tables``); ``encode_chunks`` encodes two chunks at once (four independent state chains)
with branch-free renormalization. Decoding looks up, per table and slot, ``(freq - 1) | (slot -
cum) << 16`` (uint32) and the symbol already shifted by ``base`` (in the codes' width);
``decode_chunks`` decodes two chunks at once (four independent state chains; each chunk with its
own table, so that a table per column pairs chunks too), in runs of symbols
that cannot pass either chunk's end (checked once per run), with branch-free renormalization; the
drivers pass an absent second chunk to decode one alone. The CUDA kernels run the same two-chunk
functions, one GPU thread per pair of chunks.

The lane mode also codes codes laid out in rows with a table per column's class (the entropy
coders' modes 6 and 7): ``row_offsets`` gives each column's table offset, which the lane kernels
(vector and scalar, CPU and CUDA) add to every symbol's table index, and ``encode``/``decode``
take the classes as ``columns`` (and ``per_block``, mode 7's tables per block of chunks).
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from numba.extending import register_jitable

from . import simd, simd_encode
from .fnv import record_run
from .targets import FNV_OFFSET, FNV_PRIME, checksum_chunk, checksum_chunks, cpu, cuda_device, launch, to_device

STATE_LOW = 1 << 16


def encode_chunks(x, base, mask, precision, out, nbytes, rcp0, info0, lo0, hi0, end0, k0, rcp1, info1, lo1, hi1,
                  end1, k1):
    """Encode chunk 0 (``x[lo0:hi0]`` into ``out[..end0]``, filled backwards, with the tables
    ``rcp0``/``info0``) and chunk 1 likewise, together (four independent state chains); set
    ``nbytes[k0]`` and ``nbytes[k1]`` to the bytes written. ``k1 < 0``: there is no chunk 1.

    Per symbol ``s`` (tables from ``encoder_tables``, both uint64): ``rcp[s]`` and ``info[s] = cum |
    (2**R - freq) << 16 | (freq << (32 - R)) << 32`` (the state bound at which a word is emitted).
    ``state // freq`` is ``(state * rcp[s]) >> (32 + R)`` (exact and below 2**64 in uint64, see
    ``encoder_tables``), so a state becomes
    ``state + cum + q * (2**R - freq)`` (= ``(q << R) + state - q * freq + cum``).

    Renormalization is branch-free: the state's low word is always written at ``p - 2`` and ``p``
    moves only when the word is emitted; a word not emitted is overwritten by the next one or by
    the final states (all writes stay within the chunk's ``2 * symbols + 8`` bytes before ``end``).
    """
    tshift = np.uint64(32 + precision)
    a0 = STATE_LOW
    a1 = STATE_LOW
    pa = end0
    ia = hi0 - 1
    b0 = STATE_LOW
    b1 = STATE_LOW
    pb = end1
    ib = hi1 - 1
    if k1 < 0:
        ib = lo1 - 1
    for k in range(2):  # a chunk of odd length ends with a symbol at an even offset: state 0
        if k == 0:
            s0, p, i, lo, hi, rcp, info = a0, pa, ia, lo0, hi0, rcp0, info0
        else:
            s0, p, i, lo, hi, rcp, info = b0, pb, ib, lo1, hi1, rcp1, info1
        if (k == 0 or k1 >= 0) and (hi - lo) & 1:
            c0 = np.uint64((np.int64(x[np.uint64(i)]) - base) & mask)
            e0 = info[c0]
            out[np.uint64(p - 2)] = s0 & 0xFF
            out[np.uint64(p - 1)] = (s0 >> 8) & 0xFF
            f = s0 >= np.int64(e0 >> np.uint64(32))
            s0 = (s0 >> 16) if f else s0
            p = (p - 2) if f else p
            q = np.int64((np.uint64(s0) * rcp[c0]) >> tshift)
            s0 += np.int64(e0 & np.uint64(0xFFFF)) + q * np.int64((e0 >> np.uint64(16)) & np.uint64(0xFFFF))
            i -= 1
        if k == 0:
            a0, pa, ia = s0, p, i
        else:
            b0, pb, ib = s0, p, i
    # both chunks, a pair of symbols of each per iteration: offsets i (odd, state 1) and i - 1 (even, state 0)
    stop = ia - 2 * (min(ia - lo0 + 1, ib - lo1 + 1) >> 1)
    d = ib - ia  # chunk 1's symbols sit d after chunk 0's
    while ia > stop:
        ca1 = np.uint64((np.int64(x[np.uint64(ia)]) - base) & mask)
        ca0 = np.uint64((np.int64(x[np.uint64(ia - 1)]) - base) & mask)
        cb1 = np.uint64((np.int64(x[np.uint64(ia + d)]) - base) & mask)
        cb0 = np.uint64((np.int64(x[np.uint64(ia + d - 1)]) - base) & mask)
        ea1 = info0[ca1]
        ea0 = info0[ca0]
        eb1 = info1[cb1]
        eb0 = info1[cb0]
        out[np.uint64(pa - 2)] = a1 & 0xFF
        out[np.uint64(pa - 1)] = (a1 >> 8) & 0xFF
        f = a1 >= np.int64(ea1 >> np.uint64(32))
        a1 = (a1 >> 16) if f else a1
        pa = (pa - 2) if f else pa
        out[np.uint64(pa - 2)] = a0 & 0xFF
        out[np.uint64(pa - 1)] = (a0 >> 8) & 0xFF
        f = a0 >= np.int64(ea0 >> np.uint64(32))
        a0 = (a0 >> 16) if f else a0
        pa = (pa - 2) if f else pa
        out[np.uint64(pb - 2)] = b1 & 0xFF
        out[np.uint64(pb - 1)] = (b1 >> 8) & 0xFF
        f = b1 >= np.int64(eb1 >> np.uint64(32))
        b1 = (b1 >> 16) if f else b1
        pb = (pb - 2) if f else pb
        out[np.uint64(pb - 2)] = b0 & 0xFF
        out[np.uint64(pb - 1)] = (b0 >> 8) & 0xFF
        f = b0 >= np.int64(eb0 >> np.uint64(32))
        b0 = (b0 >> 16) if f else b0
        pb = (pb - 2) if f else pb
        q = np.int64((np.uint64(a1) * rcp0[ca1]) >> tshift)
        a1 += np.int64(ea1 & np.uint64(0xFFFF)) + q * np.int64((ea1 >> np.uint64(16)) & np.uint64(0xFFFF))
        q = np.int64((np.uint64(a0) * rcp0[ca0]) >> tshift)
        a0 += np.int64(ea0 & np.uint64(0xFFFF)) + q * np.int64((ea0 >> np.uint64(16)) & np.uint64(0xFFFF))
        q = np.int64((np.uint64(b1) * rcp1[cb1]) >> tshift)
        b1 += np.int64(eb1 & np.uint64(0xFFFF)) + q * np.int64((eb1 >> np.uint64(16)) & np.uint64(0xFFFF))
        q = np.int64((np.uint64(b0) * rcp1[cb0]) >> tshift)
        b0 += np.int64(eb0 & np.uint64(0xFFFF)) + q * np.int64((eb0 >> np.uint64(16)) & np.uint64(0xFFFF))
        ia -= 2
    ib = ia + d
    for k in range(2):  # each chunk's remaining pairs alone, then its final states
        if k == 0:
            s0, s1, p, i, lo, end, rcp, info, kk = a0, a1, pa, ia, lo0, end0, rcp0, info0, k0
        else:
            s0, s1, p, i, lo, end, rcp, info, kk = b0, b1, pb, ib, lo1, end1, rcp1, info1, k1
        if kk < 0:
            continue
        while i > lo:
            c1 = np.uint64((np.int64(x[np.uint64(i)]) - base) & mask)
            c0 = np.uint64((np.int64(x[np.uint64(i - 1)]) - base) & mask)
            e1 = info[c1]
            e0 = info[c0]
            out[np.uint64(p - 2)] = s1 & 0xFF
            out[np.uint64(p - 1)] = (s1 >> 8) & 0xFF
            f = s1 >= np.int64(e1 >> np.uint64(32))
            s1 = (s1 >> 16) if f else s1
            p = (p - 2) if f else p
            out[np.uint64(p - 2)] = s0 & 0xFF
            out[np.uint64(p - 1)] = (s0 >> 8) & 0xFF
            f = s0 >= np.int64(e0 >> np.uint64(32))
            s0 = (s0 >> 16) if f else s0
            p = (p - 2) if f else p
            q = np.int64((np.uint64(s1) * rcp[c1]) >> tshift)
            s1 += np.int64(e1 & np.uint64(0xFFFF)) + q * np.int64((e1 >> np.uint64(16)) & np.uint64(0xFFFF))
            q = np.int64((np.uint64(s0) * rcp[c0]) >> tshift)
            s0 += np.int64(e0 & np.uint64(0xFFFF)) + q * np.int64((e0 >> np.uint64(16)) & np.uint64(0xFFFF))
            i -= 2
        p -= 8
        for j in range(4):
            out[np.uint64(p + j)] = (s0 >> (8 * j)) & 0xFF
            out[np.uint64(p + 4 + j)] = (s1 >> (8 * j)) & 0xFF
        nbytes[kk] = end - p


def decode_chunks(data, out, fb0, sym0, fb1, sym1, precision, start0, end0, lo0, hi0, start1, end1, lo1, hi1):
    """Decode chunk 0 (``hi0 - lo0`` symbols from ``data[start0:end0]`` into ``out[lo0:hi0]``, with
    the tables ``fb0``, ``sym0``: a row of ``decoder_tables``) and chunk 1 likewise (``fb1``, ``sym1``,
    the same or another table); chunk 1 may be absent (``lo1 == hi1`` and ``start1 == end1``).

    Returns a bit mask of the damaged chunks (1: chunk 0, 2: chunk 1): those whose words are not
    consumed exactly or whose states do not both return to their initial value. Never reads
    outside ``data[start0:end0]`` and ``data[start1:end1]``.

    States stay in ``[2**16, 2**32)`` whatever the data (a decoding step leaves at least
    ``2**(16 - R)``, so one word restores the bound), so one word per symbol is the most a step reads.
    """
    smask = (1 << precision) - 1
    bad = 0
    a0 = STATE_LOW
    a1 = STATE_LOW
    pa = end0
    if end0 - start0 < 8:
        bad |= 1
    else:
        a0 = 0
        a1 = 0
        for k in range(4):
            a0 |= np.int64(data[np.uint64(start0 + k)]) << (8 * k)
            a1 |= np.int64(data[np.uint64(start0 + 4 + k)]) << (8 * k)
        pa = start0 + 8
        if a0 < STATE_LOW or a1 < STATE_LOW:
            bad |= 1
    b0 = STATE_LOW
    b1 = STATE_LOW
    pb = end1
    if lo1 == hi1 and start1 == end1:
        pass  # no second chunk: it is trivially complete
    elif end1 - start1 < 8:
        bad |= 2
    else:
        b0 = 0
        b1 = 0
        for k in range(4):
            b0 |= np.int64(data[np.uint64(start1 + k)]) << (8 * k)
            b1 |= np.int64(data[np.uint64(start1 + 4 + k)]) << (8 * k)
        pb = start1 + 8
        if b0 < STATE_LOW or b1 < STATE_LOW:
            bad |= 2
    ia = lo0
    ib = lo1
    # Both chunks in runs of iterations that cannot pass either chunk's end: an iteration decodes
    # two symbols of each chunk and reads at most two words (4 bytes) of each.
    while bad == 0:
        run = min(min(hi0 - ia, hi1 - ib) >> 1, min(end0 - pa, end1 - pb) >> 2)
        if run <= 0:
            break
        stop = ia + 2 * run
        d = ib - ia  # chunk 1's symbols sit d after chunk 0's
        while ia < stop:
            ka0 = np.uint64(a0 & smask)
            ka1 = np.uint64(a1 & smask)
            kb0 = np.uint64(b0 & smask)
            kb1 = np.uint64(b1 & smask)
            ea0 = np.int64(fb0[ka0])
            ea1 = np.int64(fb0[ka1])
            eb0 = np.int64(fb1[kb0])
            eb1 = np.int64(fb1[kb1])
            out[np.uint64(ia)] = sym0[ka0]
            out[np.uint64(ia + 1)] = sym0[ka1]
            out[np.uint64(ia + d)] = sym1[kb0]
            out[np.uint64(ia + d + 1)] = sym1[kb1]
            # freq * (state >> R) + slot - cum, with freq - 1 stored (a frequency of 2**16 fits)
            h = a0 >> precision
            a0 = (ea0 & 0xFFFF) * h + (h + (ea0 >> 16))
            h = a1 >> precision
            a1 = (ea1 & 0xFFFF) * h + (h + (ea1 >> 16))
            h = b0 >> precision
            b0 = (eb0 & 0xFFFF) * h + (h + (eb0 >> 16))
            h = b1 >> precision
            b1 = (eb1 & 0xFFFF) * h + (h + (eb1 >> 16))
            # branch-free renormalization: a state below STATE_LOW (c true) takes the next 16 bits
            c = a0 < STATE_LOW
            w = np.int64(data[np.uint64(pa)]) | (np.int64(data[np.uint64(pa + 1)]) << 8)
            a0 = (((a0 << 16) | w) if c else a0)
            pa = (pa + 2) if c else pa
            c = a1 < STATE_LOW
            w = np.int64(data[np.uint64(pa)]) | (np.int64(data[np.uint64(pa + 1)]) << 8)
            a1 = (((a1 << 16) | w) if c else a1)
            pa = (pa + 2) if c else pa
            c = b0 < STATE_LOW
            w = np.int64(data[np.uint64(pb)]) | (np.int64(data[np.uint64(pb + 1)]) << 8)
            b0 = (((b0 << 16) | w) if c else b0)
            pb = (pb + 2) if c else pb
            c = b1 < STATE_LOW
            w = np.int64(data[np.uint64(pb)]) | (np.int64(data[np.uint64(pb + 1)]) << 8)
            b1 = (((b1 << 16) | w) if c else b1)
            pb = (pb + 2) if c else pb
            ia += 2
        ib = ia + d
    # each chunk's rest alone: the same runs, then symbol by symbol with checked reads
    for k in range(2):
        if k == 0:
            s0, s1, p, i, end, hi, fb, sym = a0, a1, pa, ia, end0, hi0, fb0, sym0
        else:
            s0, s1, p, i, end, hi, fb, sym = b0, b1, pb, ib, end1, hi1, fb1, sym1
        if bad & (1 << k):
            continue
        while True:
            run = min((hi - i) >> 1, (end - p) >> 2)
            if run <= 0:
                break
            for _ in range(run):
                k0 = np.uint64(s0 & smask)
                k1 = np.uint64(s1 & smask)
                e0 = np.int64(fb[k0])
                e1 = np.int64(fb[k1])
                out[np.uint64(i)] = sym[k0]
                out[np.uint64(i + 1)] = sym[k1]
                h = s0 >> precision
                s0 = (e0 & 0xFFFF) * h + (h + (e0 >> 16))
                h = s1 >> precision
                s1 = (e1 & 0xFFFF) * h + (h + (e1 >> 16))
                c = s0 < STATE_LOW
                w = np.int64(data[np.uint64(p)]) | (np.int64(data[np.uint64(p + 1)]) << 8)
                s0 = (((s0 << 16) | w) if c else s0)
                p = (p + 2) if c else p
                c = s1 < STATE_LOW
                w = np.int64(data[np.uint64(p)]) | (np.int64(data[np.uint64(p + 1)]) << 8)
                s1 = (((s1 << 16) | w) if c else s1)
                p = (p + 2) if c else p
                i += 2
        while i < hi:
            k0 = np.uint64(s0 & smask)
            e0 = np.int64(fb[k0])
            out[np.uint64(i)] = sym[k0]
            h = s0 >> precision
            s0 = (e0 & 0xFFFF) * h + (h + (e0 >> 16))
            if i + 1 < hi:  # the odd symbol's update does not wait for the even symbol's word
                k1 = np.uint64(s1 & smask)
                e1 = np.int64(fb[k1])
                out[np.uint64(i + 1)] = sym[k1]
                h = s1 >> precision
                s1 = (e1 & 0xFFFF) * h + (h + (e1 >> 16))
            if s0 < STATE_LOW:
                if p + 2 > end:
                    bad |= 1 << k
                    break
                s0 = (s0 << 16) | np.int64(data[np.uint64(p)]) | (np.int64(data[np.uint64(p + 1)]) << 8)
                p += 2
            if s1 < STATE_LOW:
                if p + 2 > end:
                    bad |= 1 << k
                    break
                s1 = (s1 << 16) | np.int64(data[np.uint64(p)]) | (np.int64(data[np.uint64(p + 1)]) << 8)
                p += 2
            i += 2
        if p != end or s0 != STATE_LOW or s1 != STATE_LOW:
            bad |= 1 << k
    return bad


_encode_cpu = cpu(encode_chunks)
_decode_cpu = cpu(decode_chunks)


@numba.njit(parallel=True, cache=True)
def encode_cpu(x, starts, ends, table_of, base, mask, rcp, info, precision, scratch, scratch_end, nbytes, sums,
               spans):
    """Every chunk of the pair mode, in ``spans`` runs of consecutive chunks (``_span``), one per task,
    each run's chunks two at a time, an odd last one alone with an absent partner, then the run's
    checksums (``fnv.record_run``: four or more chunks at once, 1.6-5x faster a value than pairs)."""
    n = starts.size
    for s in numba.prange(spans):
        lo, hi = _span(n, spans, s)
        for a in range(lo, hi, 2):
            b = a + 1
            ta = table_of[a]
            if b < hi:
                tb = table_of[b]
                _encode_cpu(x, base, mask, precision, scratch, nbytes, rcp[ta], info[ta], starts[a], ends[a],
                            scratch_end[a], a, rcp[tb], info[tb], starts[b], ends[b], scratch_end[b], b)
            else:
                _encode_cpu(x, base, mask, precision, scratch, nbytes, rcp[ta], info[ta], starts[a], ends[a],
                            scratch_end[a], a, rcp[ta], info[ta], ends[a], ends[a], scratch_end[a], -1)
        record_run(x, starts, ends, lo, hi, np.zeros(hi - lo, np.int64), sums)  # up to 16 chunks at once


@numba.njit(parallel=True, cache=True)
def decode_cpu(data, offsets, out, starts, ends, table_of, fb, sym, precision, sums, spans):
    """Every chunk of the pair mode, in ``spans`` runs as ``encode_cpu``, each chunk with its own table, then
    each run's checksums (-1 for a damaged chunk) as there."""
    n = starts.size
    for s in numba.prange(spans):
        lo, hi = _span(n, spans, s)
        flags = np.zeros(hi - lo, np.int64)
        for a in range(lo, hi, 2):
            b = a + 1
            ta = table_of[a]
            if b < hi:
                tb = table_of[b]
                status = _decode_cpu(data, out, fb[ta], sym[ta], fb[tb], sym[tb], precision, offsets[a],
                                     offsets[a + 1], starts[a], ends[a], offsets[b], offsets[b + 1], starts[b], ends[b])
                flags[b - lo] = status & 2
            else:  # alone, with an absent partner
                status = _decode_cpu(data, out, fb[ta], sym[ta], fb[ta], sym[ta], precision, offsets[a],
                                     offsets[a + 1], starts[a], ends[a], offsets[a + 1], offsets[a + 1], ends[a],
                                     ends[a])
            flags[a - lo] = status & 1
        record_run(out, starts, ends, lo, hi, flags, sums)  # the run's checksums, up to 16 chunks at once


def encoder_tables(freq, cum, precision):
    """Per table and symbol the reciprocal ``rcp`` and ``info = cum | (2**R - freq) << 16 |
    (freq << (32 - R)) << 32`` (both uint64) that ``encode_chunks`` takes, for ``freq``/``cum``
    ``[tables, K]``.

    Division by a multiply with a precomputed reciprocal as in R. Alverson, "Integer Division Using
    Reciprocals" (10th IEEE Symposium on Computer Arithmetic, 1991), used for rANS by F. Giesen's
    rans_byte.h (``RansEncSymbolInit``, ``RansEncPutSymbol``). rans_byte takes a 32-bit
    reciprocal with shift ``31 + ceil(log2 freq)``, exact for states below 2**31; here states reach
    ``freq * 2**(32 - R) - 1`` (up to 2**32 - 1), where that is not exact for every frequency, so the
    shift is ``T = 32 + R`` and ``rcp = ceil(2**T / freq)`` (at most 2**48; freq 1 needs no special
    case): with ``rcp * freq = 2**T + e``, ``0 <= e < freq``, ``(x * rcp) >> T = x // freq`` whenever
    ``x * e < 2**T``, and ``x * e < freq**2 * 2**(32 - R) < 2**(32 + R)``; the product itself stays
    below ``2**64 + (freq - 1) * 2**(32 - R) - 2**(32 + R) / freq < 2**64``, so it is exact in uint64
    (and in Python integers under the CUDA simulator).
    """
    return _encoder_tables(freq.astype(np.int64), cum.astype(np.int64), precision)


@numba.njit(cache=True)
def _encoder_tables(freq, cum, precision):
    rcp = np.zeros(freq.shape, np.uint64)
    info = np.zeros(freq.shape, np.uint64)
    one = np.int64(1) << (32 + precision)
    for t in range(freq.shape[0]):
        for s in range(freq.shape[1]):
            f = freq[t, s]
            if f > 0:
                rcp[t, s] = np.uint64((one + f - 1) // f)
                info[t, s] = (np.uint64(cum[t, s] | (((1 << precision) - f) << 16))
                              | (np.uint64(f << (32 - precision)) << np.uint64(32)))
    return rcp, info


@numba.njit(cache=True)
def decoder_tables(freq, precision, base, mask, sym):
    """Per table and slot ``(freq - 1) | (slot - cum) << 16`` (uint32, returned) for frequencies
    ``freq`` ``[tables, K]`` that sum to ``2**precision`` in every row (checked by the caller), and
    the slot's symbol ``(s + base) & mask`` into ``sym`` ``[tables, 2**precision]``."""
    tables, alphabet = freq.shape
    fb = np.empty((tables, 1 << precision), np.uint32)
    for t in range(tables):
        pos = 0
        for s in range(alphabet):
            f = freq[t, s]
            v = (s + base) & mask
            for k in range(f):
                fb[t, pos + k] = (f - 1) | (k << 16)
                sym[t, pos + k] = v
            pos += f
    return fb


@numba.njit(parallel=True, cache=True)
def gather_cpu(scratch, scratch_end, nbytes, offsets, out):
    for i in numba.prange(nbytes.size):
        out[offsets[i]:offsets[i] + nbytes[i]] = scratch[scratch_end[i] - nbytes[i]:scratch_end[i]]


LANES = (2, 16, 32, 64)
"""State chains per chunk: 2 is the pair mode above (``encode_chunks``/``decode_chunks``); 16, 32
and 64 the lane mode (``encode_lanes``/``decode_lanes_tail`` and ``simd.decode_groups``).

Lane mode: symbol ``i`` of a chunk is coded by lane ``i % lanes`` (Giesen, arXiv 1402.3392),
all lanes share one 16-bit word stream, and a decoder reads each lane's word right after decoding
its symbol, in symbol order, so that a decoder may decode a whole group of ``lanes`` symbols (one
vector step per 16 lanes) and then refill the lanes in lane order. A chunk's stream is its
``lanes`` final states (u32, lane 0 first) followed by its words (u16) in decoding order."""


def encode_lanes(x, base, mask, precision, out, rcp, info, lo, hi, end, lanes, st, toff, ncol):
    """Encode ``x[lo:hi]`` with ``lanes`` lanes into ``out[..end]`` (filled backwards, at most
    ``2 * (hi - lo) + 4 * lanes`` bytes); ``st`` is scratch for ``lanes`` states (int64 or uint32).
    Returns the bytes written. The step is ``encode_chunks``'s (same tables, same branch-free
    renormalization). ``toff``, ``ncol``: see ``encode_lanes_steps``."""
    for j in range(lanes):
        st[j] = STATE_LOW
    p = encode_lanes_steps(x, base, mask, precision, out, rcp, info, lo, lo, hi, end, lanes, st, toff, ncol)
    return finish_lanes(out, end, p, lanes, st)


@register_jitable
def encode_lanes_steps(x, base, mask, precision, out, rcp, info, lo, a, b, p, lanes, st, toff, ncol):
    """Encode ``x[a:b]`` of the chunk that starts at ``x[lo]`` (symbol ``i`` is lane ``(i - lo) %
    lanes``'s), backwards, with the states ``st``, writing the words below ``out[p]``; returns the
    new ``p``. Each lane's low word is written at ``p - 2`` and kept only if emitted. ``toff``:
    None (one table: ``rcp``, ``info`` indexed by the symbol), or the tables of the row-order
    column mode (``row_offsets``): symbol ``x[i]`` then uses the entries from ``toff[i % ncol]`` on
    (``rcp``, ``info`` hold every table, one after the other)."""
    tshift = np.uint64(32 + precision)
    j = (b - lo - 1) & (lanes - 1)
    col = (b - 1) % ncol
    for i in range(b - 1, a - 1, -1):  # backwards: the decoder reads the words in symbol order
        c = np.uint64((np.int64(x[np.uint64(i)]) - base) & mask)
        if toff is not None:
            c += np.uint64(toff[col])
            col = col - 1 if col > 0 else ncol - 1
        e = info[c]
        s = np.int64(st[j])
        out[np.uint64(p - 2)] = s & 0xFF
        out[np.uint64(p - 1)] = (s >> 8) & 0xFF
        f = s >= np.int64(e >> np.uint64(32))
        s = (s >> 16) if f else s
        p = (p - 2) if f else p
        q = np.int64((np.uint64(s) * rcp[c]) >> tshift)
        st[j] = s + np.int64(e & np.uint64(0xFFFF)) + q * np.int64((e >> np.uint64(16)) & np.uint64(0xFFFF))
        j = (j - 1) & (lanes - 1)
    return p


@register_jitable
def finish_lanes(out, end, p, lanes, st):
    """Write the ``lanes`` final states ``st`` (u32 each, lane 0 first) below ``out[p]``, the start of
    the chunk's stream that ends at ``out[end]``; returns the chunk's bytes."""
    p -= 4 * lanes
    for j in range(lanes):
        s = np.int64(st[j])
        for k in range(4):
            out[np.uint64(p + 4 * j + k)] = (s >> (8 * k)) & 0xFF
    return end - p


def hash_lanes(x, lo, hi, lanes, hs):
    """The lane mode's checksum of ``x[lo:hi]`` before folding: ``targets.checksum_chunk``'s step
    with ``lanes`` lanes, value ``i`` into lane ``(i - lo) % lanes`` (``hs``: ``lanes`` uint32,
    overwritten). A decoder updates the same lanes as it writes the symbols. Whole groups go
    lane by lane over contiguous values, a loop LLVM vectorizes (3-7 GB/s here)."""
    for j in range(lanes):
        hs[j] = FNV_OFFSET ^ j
    i = lo
    while i + lanes <= hi:
        for j in range(lanes):
            h = ((np.int64(hs[j]) ^ np.int64(x[np.uint64(i + j)])) * FNV_PRIME) & 0xFFFFFFFF
            hs[j] = h ^ (h >> 13)
        i += lanes
    for j in range(hi - i):
        h = ((np.int64(hs[j]) ^ np.int64(x[np.uint64(i + j)])) * FNV_PRIME) & 0xFFFFFFFF
        hs[j] = h ^ (h >> 13)


def fold_lanes(hs, lanes):
    """One 32-bit checksum from the lanes of ``hash_lanes`` (folded as ``targets.checksum_chunk`` folds its four)."""
    h = np.int64(hs[0])
    for j in range(1, lanes):
        h = ((h ^ np.int64(hs[j])) * FNV_PRIME) & 0xFFFFFFFF
        h ^= h >> 13
    return h


def start_lanes(data, start, end, lanes, st, hs):
    """Read the ``lanes`` initial states of the chunk ``data[start:end]`` into ``st`` (uint32) and
    start the lanes' checksums ``hs``; returns where its words begin, or -1 if the chunk is too
    short or a state is below ``2**16``."""
    for j in range(lanes):
        hs[j] = FNV_OFFSET ^ j
    if end - start < 4 * lanes:
        return -1
    bad = False
    for j in range(lanes):
        s = 0
        for k in range(4):
            s |= np.int64(data[np.uint64(start + 4 * j + k)]) << (8 * k)
        st[j] = s
        bad = bad or s < STATE_LOW
    return -1 if bad else start + 4 * lanes


def decode_lanes_tail(data, out, table, precision, shift, p, end, i, lo, hi, lanes, st, hs, toff, ncol):
    """Decode ``out[i:hi]`` of the chunk that starts at ``out[lo]`` from the words at ``data[p:end]``
    with the states ``st`` (uint32, ``st[j]`` lane ``j``; symbol ``i`` is lane ``(i - lo) % lanes``'s), one symbol at a
    time with checked reads, and hash them into the lanes' checksums ``hs``; ``table`` from
    ``lane_entries``. ``toff``: None (one table), or the row-order column mode's offsets
    (``row_offsets``): symbol ``i`` then looks up ``table[toff[i % ncol] + slot]`` (``table`` holds
    every table, one after the other). Returns 1 if the chunk is damaged (its words are not consumed
    exactly, or its states do not all return to ``2**16``), else 0. Never
    reads outside ``data[p:end]``: it is the reference of ``simd.decode_groups``, which does the same
    by groups where the bounds are known to hold."""
    smask = (1 << precision) - 1
    j = (i - lo) & (lanes - 1)
    col = i % ncol
    while i < hi:
        s = np.int64(st[j])
        slot = s & smask
        if toff is not None:
            slot += np.int64(toff[col])
            col = col + 1 if col + 1 < ncol else 0
        e = np.int64(table[np.uint64(slot)])
        v = e >> (2 * shift)
        out[np.uint64(i)] = v
        v = ((np.int64(hs[j]) ^ v) * FNV_PRIME) & 0xFFFFFFFF
        hs[j] = v ^ (v >> 13)
        h = s >> precision
        s = (e & smask) * h + h + ((e >> shift) & smask)
        if s < STATE_LOW:
            if p + 2 > end:
                return 1
            s = (s << 16) | np.int64(data[np.uint64(p)]) | (np.int64(data[np.uint64(p + 1)]) << 8)
            p += 2
        st[j] = s
        j = (j + 1) & (lanes - 1)
        i += 1
    if p != end:
        return 1
    for j in range(lanes):
        if st[j] != STATE_LOW:
            return 1
    return 0


def lane_shift(precision, width):
    """Where ``lane_entries`` puts the slot offset: ``R`` when an entry fits 32 bits (``2R`` bits and
    the symbol's ``8 * width``), else 16 (64-bit entries)."""
    return precision if 2 * precision + 8 * width <= 32 else 16


def lane_entries(freq, precision, base, mask, width):
    """Per table and slot ``(freq - 1) | (slot - cum) << S | ((s + base) & mask) << 2S`` for the lane
    decoders, ``S = lane_shift(precision, width)``: one gathered value gives the whole step. uint32
    when it fits, else uint64; frequencies ``[tables, K]`` summing to ``2**precision`` per row."""
    shift = lane_shift(precision, width)
    table = np.empty((freq.shape[0], 1 << precision), np.uint32 if 2 * shift + 8 * width <= 32 else np.uint64)
    _lane_entries(freq, base, mask, shift, table)
    return table


@numba.njit(cache=True)
def _lane_entries(freq, base, mask, shift, table):
    for t in range(freq.shape[0]):
        pos = 0
        for s in range(freq.shape[1]):
            f = freq[t, s]
            v = ((s + base) & mask) << (2 * shift)
            for k in range(f):
                table[t, pos + k] = (f - 1) | (k << shift) | v
            pos += f


_encode_lanes_cpu = cpu(encode_lanes)
_encode_lanes_steps_cpu = cpu(encode_lanes_steps)
_finish_lanes_cpu = cpu(finish_lanes)
_hash_lanes_cpu = cpu(hash_lanes)
_fold_lanes_cpu = cpu(fold_lanes)
_start_lanes_cpu = cpu(start_lanes)
_decode_lanes_tail_cpu = cpu(decode_lanes_tail)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _decode_lanes_cpu(data, out, table, precision, shift, start, end, lo, hi, lanes, toff, ncol):
    """One chunk of the lane mode: ``simd.decode_groups`` while whole groups and their words surely
    fit, then ``decode_lanes_tail``. Returns the chunk's checksum, or -1 if it is damaged."""
    st = np.empty(lanes, np.uint32)
    hs = np.empty(lanes, np.uint32)
    p = _start_lanes_cpu(data, start, end, lanes, st, hs)
    if p < 0:
        return -1
    return _decode_lanes_rest(data, out, table, precision, shift, p, end, lo, lo, hi, lanes, st, hs, toff, ncol)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _decode_lanes_rest(data, out, table, precision, shift, p, end, i, lo, hi, lanes, st, hs, toff, ncol):
    """``out[i:hi]`` of the chunk that starts at ``out[lo]``, from the words at ``data[p:end]`` with
    the lanes' states ``st`` and checksums ``hs`` (as ``_decode_lanes_cpu`` after the start);
    returns the chunk's checksum, or -1 if it is damaged."""
    whole = lo + (hi - lo) // lanes * lanes
    while True:
        run = min((whole - i) // lanes, (end - p) // (2 * lanes))  # a group reads at most a word per lane
        if run <= 0:
            break
        if lanes == 16:
            p = simd.decode_groups(st, hs, table, out, i, run, data, p, precision, shift, 16, toff, ncol)
        elif lanes == 32:
            p = simd.decode_groups(st, hs, table, out, i, run, data, p, precision, shift, 32, toff, ncol)
        elif lanes == 64:
            p = simd.decode_groups(st, hs, table, out, i, run, data, p, precision, shift, 64, toff, ncol)
        else:
            return -1  # not a lane count of the format (LANES)
        i += run * lanes
    if _decode_lanes_tail_cpu(data, out, table, precision, shift, p, end, i, lo, hi, lanes, st, hs, toff, ncol):
        return -1
    return _fold_lanes_cpu(hs, lanes)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _decode_lanes_pair_cpu(data, out, table_a, table_b, precision, shift, start_a, end_a, lo_a, hi_a, start_b, end_b,
                           lo_b, hi_b, lanes, sums, a, toff, ncol):
    """Chunks ``a`` and ``a + 1`` of the lane mode (checksums to ``sums[a]`` and ``sums[a + 1]``, -1
    for a damaged one): ``simd.decode_groups_pair`` while whole groups of both surely fit (two
    chunks' gathers in flight at once, as 64 lanes have in one), then each chunk's rest alone
    (``_decode_lanes_rest``). The same symbols and checksums as decoding each alone."""
    st = np.empty(2 * lanes, np.uint32)
    hs = np.empty(2 * lanes, np.uint32)
    sa, sb, ha, hb = st[:lanes], st[lanes:], hs[:lanes], hs[lanes:]
    pos = np.empty(2, np.int64)
    pos[0] = _start_lanes_cpu(data, start_a, end_a, lanes, sa, ha)
    pos[1] = _start_lanes_cpu(data, start_b, end_b, lanes, sb, hb)
    ia, ib = lo_a, lo_b
    whole_a, whole_b = lo_a + (hi_a - lo_a) // lanes * lanes, lo_b + (hi_b - lo_b) // lanes * lanes
    while pos[0] >= 0 and pos[1] >= 0:
        run = min(min((whole_a - ia) // lanes, (end_a - pos[0]) // (2 * lanes)),
                  min((whole_b - ib) // lanes, (end_b - pos[1]) // (2 * lanes)))
        if run <= 0:
            break
        if lanes == 16:
            simd.decode_groups_pair(st, hs, table_a, table_b, out, ia, ib, run, data, pos, precision, shift, 16,
                                    toff, ncol)
        elif lanes == 32:
            simd.decode_groups_pair(st, hs, table_a, table_b, out, ia, ib, run, data, pos, precision, shift, 32,
                                    toff, ncol)
        elif lanes == 64:
            simd.decode_groups_pair(st, hs, table_a, table_b, out, ia, ib, run, data, pos, precision, shift, 64,
                                    toff, ncol)
        else:
            break  # not a lane count of the format: each chunk's rest refuses it
        ia += run * lanes
        ib += run * lanes
    sums[a] = -1 if pos[0] < 0 else _decode_lanes_rest(data, out, table_a, precision, shift, pos[0], end_a, ia, lo_a,
                                                        hi_a, lanes, sa, ha, toff, ncol)
    sums[a + 1] = -1 if pos[1] < 0 else _decode_lanes_rest(data, out, table_b, precision, shift, pos[1], end_b, ib,
                                                            lo_b, hi_b, lanes, sb, hb, toff, ncol)


@register_jitable
def _encode_groups(st, packed, x, lo, groups, base, mask, out, p, precision, lanes, toff, ncol):
    """``simd_encode.encode_groups`` with the lane count as the literal it needs (16, 32 or 64; the
    caller checked it): the one place that turns ``lanes`` into a compile-time constant."""
    if lanes == 16:
        return simd_encode.encode_groups(st, packed, x, lo, groups, base, mask, out, p, precision, 16, toff, ncol)
    if lanes == 32:
        return simd_encode.encode_groups(st, packed, x, lo, groups, base, mask, out, p, precision, 32, toff, ncol)
    return simd_encode.encode_groups(st, packed, x, lo, groups, base, mask, out, p, precision, 64, toff, ncol)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _encode_lanes_vec_cpu(x, base, mask, precision, out, rcp, info, packed, lo, hi, end, lanes, toff, ncol):
    """One chunk of the lane mode, the bytes of ``encode_lanes``: the last, partial group with its
    scalar steps, then the whole groups with ``simd_encode.encode_groups`` (``packed``: the low 32
    bits of ``info``). Returns the bytes written, or -1 for a lane count the vector loop has no
    variant of (16, 32, 64), before anything is written."""
    if lanes != 16 and lanes != 32 and lanes != 64:
        return -1
    st = np.empty(lanes, np.uint32)
    for j in range(lanes):
        st[j] = STATE_LOW
    whole = lo + (hi - lo) // lanes * lanes
    p = _encode_lanes_steps_cpu(x, base, mask, precision, out, rcp, info, lo, whole, hi, end, lanes, st, toff, ncol)
    p = _encode_groups(st, packed, x, lo, (whole - lo) // lanes, base, mask, out, p, precision, lanes, toff, ncol)
    return _finish_lanes_cpu(out, end, p, lanes, st)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _encode_lanes_pair_cpu(x, base, mask, precision, out, rcp_a, info_a, packed_a, lo_a, hi_a, end_a, rcp_b, info_b,
                           packed_b, lo_b, hi_b, end_b, lanes, nbytes, a, toff, ncol):
    """Chunks ``a`` and ``a + 1`` of the lane mode (bytes written to ``nbytes[a]``, ``nbytes[a + 1]``),
    the bytes of ``_encode_lanes_vec_cpu`` on each: each chunk's last, partial group with its scalar
    steps, then the last whole groups of both together (``simd_encode.encode_groups_pair``: two
    chains of gathers and divisions in flight, as 32 lanes have in one chunk), then the groups one
    chunk has more alone. False, before anything is written, for a lane count the vector loop has
    no variant of (16, 32, 64)."""
    if lanes != 16 and lanes != 32 and lanes != 64:
        return False
    st = np.empty(2 * lanes, np.uint32)
    for j in range(2 * lanes):
        st[j] = STATE_LOW
    sa, sb = st[:lanes], st[lanes:]
    whole_a, whole_b = lo_a + (hi_a - lo_a) // lanes * lanes, lo_b + (hi_b - lo_b) // lanes * lanes
    pos = np.empty(2, np.int64)
    pos[0] = _encode_lanes_steps_cpu(x, base, mask, precision, out, rcp_a, info_a, lo_a, whole_a, hi_a, end_a, lanes,
                                     sa, toff, ncol)
    pos[1] = _encode_lanes_steps_cpu(x, base, mask, precision, out, rcp_b, info_b, lo_b, whole_b, hi_b, end_b, lanes,
                                     sb, toff, ncol)
    ga, gb = (whole_a - lo_a) // lanes, (whole_b - lo_b) // lanes
    run = min(ga, gb)
    ia, ib = lo_a + (ga - run) * lanes, lo_b + (gb - run) * lanes
    if lanes == 16:
        simd_encode.encode_groups_pair(st, packed_a, packed_b, x, ia, ib, run, base, mask, out, pos, precision, 16,
                                       toff, ncol)
    elif lanes == 32:
        simd_encode.encode_groups_pair(st, packed_a, packed_b, x, ia, ib, run, base, mask, out, pos, precision, 32,
                                       toff, ncol)
    else:  # 64, the only lane count left
        simd_encode.encode_groups_pair(st, packed_a, packed_b, x, ia, ib, run, base, mask, out, pos, precision, 64,
                                       toff, ncol)
    pa = _encode_groups(sa, packed_a, x, lo_a, ga - run, base, mask, out, pos[0], precision, lanes, toff, ncol)
    pb = _encode_groups(sb, packed_b, x, lo_b, gb - run, base, mask, out, pos[1], precision, lanes, toff, ncol)
    nbytes[a] = _finish_lanes_cpu(out, end_a, pa, lanes, sa)
    nbytes[a + 1] = _finish_lanes_cpu(out, end_b, pb, lanes, sb)
    return True


@numba.njit(cache=True)
def _span(n, spans, s):
    """Chunks ``[lo, hi)`` of span ``s`` of ``spans``: the ``n`` chunks cut into runs whose counts
    differ by one at most, the longer runs last."""
    return s * n // spans, (s + 1) * n // spans


@numba.njit(parallel=True, cache=True)
def encode_lanes_cpu(x, starts, ends, table_of, base, mask, rcp, info, packed, precision, lanes, scratch,
                     scratch_end, nbytes, sums, spans, toff, ncol):
    """Every chunk of the lane mode, in ``spans`` runs of consecutive chunks (``_span``), one run per
    task, each run's chunks two at a time (``_encode_lanes_pair_cpu``) and an odd last one alone;
    ``toff``, ``ncol``: None and 1, or the row-order column mode's (``row_offsets``). The bytes do
    not depend on ``spans``."""
    n = starts.size
    for s in numba.prange(spans):
        lo, hi = _span(n, spans, s)
        hs = np.empty(lanes, np.uint32)
        for a in range(lo, hi, 2):
            if a + 1 < hi:
                ta, tb = table_of[a], table_of[a + 1]
                if not _encode_lanes_pair_cpu(x, base, mask, precision, scratch, rcp[ta], info[ta], packed[ta],
                                              starts[a], ends[a], scratch_end[a], rcp[tb], info[tb], packed[tb],
                                              starts[a + 1], ends[a + 1], scratch_end[a + 1], lanes, nbytes, a, toff,
                                              ncol):
                    nbytes[a] = nbytes[a + 1] = -1
            else:
                t = table_of[a]
                nbytes[a] = _encode_lanes_vec_cpu(x, base, mask, precision, scratch, rcp[t], info[t], packed[t],
                                                  starts[a], ends[a], scratch_end[a], lanes, toff, ncol)
            for k in range(a, min(a + 2, hi)):
                _hash_lanes_cpu(x, starts[k], ends[k], lanes, hs)
                sums[k] = _fold_lanes_cpu(hs, lanes)


@numba.njit(parallel=True, cache=True)
def decode_lanes_cpu(data, offsets, out, starts, ends, table_of, table, precision, shift, lanes, sums, spans, toff,
                     ncol):
    """Every chunk of the lane mode, in ``spans`` runs as ``encode_lanes_cpu`` (two at a time:
    ``_decode_lanes_pair_cpu``); ``toff``, ``ncol``: None and 1, or the row-order column mode's
    (``row_offsets``)."""
    n = starts.size
    for s in numba.prange(spans):
        lo, hi = _span(n, spans, s)
        for a in range(lo, hi, 2):
            if a + 1 < hi:
                _decode_lanes_pair_cpu(data, out, table[table_of[a]], table[table_of[a + 1]], precision, shift,
                                       offsets[a], offsets[a + 1], starts[a], ends[a], offsets[a + 1], offsets[a + 2],
                                       starts[a + 1], ends[a + 1], lanes, sums, a, toff, ncol)
            else:
                sums[a] = _decode_lanes_cpu(data, out, table[table_of[a]], precision, shift, offsets[a],
                                            offsets[a + 1], starts[a], ends[a], lanes, toff, ncol)


cuda = None
"""numba.cuda, bound on first GPU use; a module global so that the CUDA simulator can swap it."""


@functools.cache
def _cuda_kernels():
    global cuda
    from numba import cuda

    encode_dev, decode_dev, checksum_dev, checksums_dev = (
        cuda_device(f) for f in (encode_chunks, decode_chunks, checksum_chunk, checksum_chunks))

    @cuda.jit
    def encode(x, starts, ends, table_of, base, mask, rcp, info, precision, scratch, scratch_end, nbytes, sums):
        j = cuda.grid(1)  # one thread per pair of chunks, as on the CPU
        n = starts.size
        a = 2 * j
        b = a + 1
        if a < n:
            ta = table_of[a]
            if b < n:
                tb = table_of[b]
                encode_dev(x, base, mask, precision, scratch, nbytes, rcp[ta], info[ta], starts[a], ends[a],
                           scratch_end[a], a, rcp[tb], info[tb], starts[b], ends[b], scratch_end[b], b)
                checksums_dev(x, starts[a], ends[a], starts[b], ends[b], sums, a, b)
            else:
                encode_dev(x, base, mask, precision, scratch, nbytes, rcp[ta], info[ta], starts[a], ends[a],
                           scratch_end[a], a, rcp[ta], info[ta], ends[a], ends[a], scratch_end[a], -1)
                sums[a] = checksum_dev(x, starts[a], ends[a])

    @cuda.jit
    def decode(data, offsets, out, starts, ends, table_of, fb, sym, precision, sums):
        j = cuda.grid(1)  # one thread per pair of chunks, as on the CPU
        n = starts.size
        a = 2 * j
        b = a + 1
        if a < n:
            ta = table_of[a]
            if b < n:
                tb = table_of[b]
                status = decode_dev(data, out, fb[ta], sym[ta], fb[tb], sym[tb], precision, offsets[a],
                                    offsets[a + 1], starts[a], ends[a], offsets[b], offsets[b + 1], starts[b], ends[b])
            else:
                status = decode_dev(data, out, fb[ta], sym[ta], fb[ta], sym[ta], precision, offsets[a],
                                    offsets[a + 1], starts[a], ends[a], offsets[a + 1], offsets[a + 1], ends[a],
                                    ends[a])
            if b < n:
                checksums_dev(out, starts[a], ends[a], starts[b], ends[b], sums, a, b)
                if status & 2:
                    sums[b] = -1
            else:
                sums[a] = checksum_dev(out, starts[a], ends[a])
            if status & 1:
                sums[a] = -1

    encode_lanes_dev, hash_lanes_dev, fold_lanes_dev, start_lanes_dev, decode_lanes_tail_dev = (
        cuda_device(f) for f in (encode_lanes, hash_lanes, fold_lanes, start_lanes, decode_lanes_tail))

    @cuda.jit
    def encode_lanes_kernel(x, starts, ends, table_of, base, mask, rcp, info, precision, lanes, scratch, scratch_end,
                            nbytes, sums, toff, ncol):
        k = cuda.grid(1)  # one thread per chunk
        if k < starts.size:
            st = cuda.local.array(64, numba.int64)
            hs = cuda.local.array(64, numba.uint32)
            t = table_of[k]
            nbytes[k] = encode_lanes_dev(x, base, mask, precision, scratch, rcp[t], info[t], starts[k], ends[k],
                                         scratch_end[k], lanes, st, toff, ncol)
            hash_lanes_dev(x, starts[k], ends[k], lanes, hs)
            sums[k] = fold_lanes_dev(hs, lanes)

    @cuda.jit
    def decode_lanes_kernel(data, offsets, out, starts, ends, table_of, table, precision, shift, lanes, sums, toff,
                            ncol):
        k = cuda.grid(1)  # one thread per chunk, one symbol at a time
        if k < starts.size:
            st = cuda.local.array(64, numba.uint32)
            hs = cuda.local.array(64, numba.uint32)
            p = start_lanes_dev(data, offsets[k], offsets[k + 1], lanes, st, hs)
            if p < 0 or decode_lanes_tail_dev(data, out, table[table_of[k]], precision, shift, p, offsets[k + 1],
                                              starts[k], starts[k], ends[k], lanes, st, hs, toff, ncol):
                sums[k] = -1
            else:
                sums[k] = fold_lanes_dev(hs, lanes)

    return encode, decode, encode_lanes_kernel, decode_lanes_kernel


def row_offsets(classes, stride, lanes):
    """The row-order column mode's table offsets: ``classes[m % C] * stride`` (uint32) for ``m`` in
    ``[0, C + lanes)``, ``C = len(classes)``: symbol ``i`` of codes laid out in rows of ``C``
    columns uses the table of its column's class, whose entries start at ``toff[i % C]`` in all the
    tables laid one after the other (``stride`` entries each). The entries past ``C`` repeat the
    first ones, so that a vector of 16 offsets from any column up to ``lanes`` later reads no
    wrap."""
    classes = np.asarray(classes, np.int64)
    m = np.arange(classes.size + max(int(lanes), 16)) % classes.size
    return (classes[m] * int(stride)).astype(np.uint32)


def _row_tables(tables, columns, lanes, stride, per_block, table_of):
    """``tables``, ``table_of`` and (toff, ncol) for the kernels: as they are with None and 1 where
    ``columns`` is None; else (row-order column mode) the tables laid one after the other in rows of
    ``per_block`` tables (None: all in one row, every chunk on it), and the offsets of
    ``row_offsets`` (table ``columns[c]`` of its chunk's row for column ``c``)."""
    if columns is None:
        return tables, table_of, None, 1
    if per_block is None:
        per_block, table_of = tables[0].shape[0], np.zeros(table_of.size, np.int64)
    rows = tuple(t.reshape(-1, per_block * t.shape[1]) for t in tables)
    return rows, table_of, row_offsets(columns, stride, lanes), len(columns)


def encode(device, x, starts, ends, table_of, base, mask, freq, cum, precision, lanes=2, columns=None,
           per_block=None):
    """Encode every chunk with ``lanes`` state chains (``LANES``); returns (concatenated streams
    uint8, bytes per chunk, checksums). ``columns``: None (each chunk with its table ``table_of``),
    or the table of each column (the row-order column mode, lane mode only: ``x`` in rows of
    ``len(columns)`` codes, each code with its column's table); then ``per_block``: None (one set of
    tables, ``table_of`` ignored), or the tables of a block (``freq`` holds the blocks' tables one
    block after the other, and chunk ``j`` codes column ``c`` with table ``table_of[j] * per_block
    + columns[c]``)."""
    if lanes not in LANES:
        raise ValueError(f"lanes is {lanes}; allowed: {', '.join(map(str, LANES))}")
    if columns is not None and lanes == 2:
        raise ValueError("the row-order column mode needs the lane mode (lanes 16, 32 or 64)")
    rcp, info = encoder_tables(freq, cum, precision)
    (rcp, info), table_of, toff, ncol = _row_tables((rcp, info), columns, lanes, freq.shape[1], per_block, table_of)
    cap = 2 * (ends - starts) + 4 * lanes
    scratch_end = np.cumsum(cap)
    scratch = np.empty(int(scratch_end[-1]) if cap.size else 0, np.uint8)  # only the written tails are read
    nbytes = np.zeros(starts.size, np.int64)
    sums = np.zeros(starts.size, np.int64)
    if device == "cpu" and lanes == 2:
        encode_cpu(x, starts, ends, table_of, base, mask, rcp, info, precision, scratch, scratch_end, nbytes, sums,
                   _spans(starts.size))
    elif device == "cpu":
        packed = info.astype(np.uint32)  # cum | (2**R - freq) << 16: the vector encoder's table
        encode_lanes_cpu(x, starts, ends, table_of, base, mask, rcp, info, packed, precision, lanes, scratch,
                         scratch_end, nbytes, sums, _spans(starts.size), toff, ncol)
    else:
        kernels = _cuda_kernels()
        d = to_device(x, starts, ends, table_of, rcp, info, scratch, scratch_end, nbytes, sums)
        if lanes == 2:
            launch(kernels[0], (starts.size + 1) // 2, d[0], d[1], d[2], d[3], base, mask, d[4], d[5], precision,
                   d[6], d[7], d[8], d[9])
        else:
            toff = to_device(row_offsets(np.zeros(1, np.int64), 0, lanes) if toff is None else toff)[0]
            launch(kernels[2], starts.size, d[0], d[1], d[2], d[3], base, mask, d[4], d[5], precision, lanes,
                   d[6], d[7], d[8], d[9], toff, ncol)
        scratch, nbytes, sums = d[6].copy_to_host(), d[8].copy_to_host(), d[9].copy_to_host()
    offsets = np.zeros(starts.size + 1, np.int64)
    np.cumsum(nbytes, out=offsets[1:])
    out = np.empty(int(offsets[-1]), np.uint8)
    gather_cpu(scratch, scratch_end, nbytes, offsets, out)
    return out, nbytes, sums


def _spans(chunks):
    """The runs of consecutive chunks the CPU kernels (the lane mode's and the pair mode's) share out,
    one per thread (at most one per chunk): each thread codes its chunks two at a time, which is
    1.25-1.3x faster than one at a time with 32 lanes, and takes as many chunks as another, give or
    take one. (Before the thirteenth session the lane mode sent every chunk alone where every thread
    could not get a pair, and both modes handed pairs out whole, so that on two threads five chunks
    went four to one thread.)"""
    return max(1, min(chunks, numba.get_num_threads()))


def lookup_tables(freq, precision, base, mask, dtype, lanes):
    """The tables ``decode`` looks the symbols up in, for frequencies ``freq`` ``[tables, K]`` (each
    row summing to ``2**precision``), symbols shifted by ``base`` in the codes' ``dtype``: the pair
    mode's (``decoder_tables``, and the symbols), or the lane mode's (``lane_entries``, any lane count)."""
    if lanes == 2:
        sym = np.empty((freq.shape[0], 1 << precision), dtype)
        return decoder_tables(freq, precision, base, mask, sym), sym
    return (lane_entries(freq, precision, base, mask, np.dtype(dtype).itemsize),)


def decode(device, data, offsets, out, starts, ends, table_of, base, mask, freq, precision, lanes=2, tables=None,
           columns=None, per_block=None):
    """Decode every chunk into ``out`` with the frequencies ``freq`` ``[tables, K]`` (each row summing
    to ``2**precision``) and ``lanes`` state chains; returns the per-chunk checksums (-1 marks a
    damaged chunk). ``tables``: ``lookup_tables`` of these arguments, built before (else built here).
    ``columns``, ``per_block``: as for ``encode`` (each class below ``per_block`` or ``freq.shape[0]``,
    and ``table_of`` below the blocks, checked by the caller)."""
    if lanes not in LANES:
        raise ValueError(f"lanes is {lanes}; allowed: {', '.join(map(str, LANES))}")
    if columns is not None and lanes == 2:
        raise ValueError("the row-order column mode needs the lane mode (lanes 16, 32 or 64)")
    sums = np.zeros(starts.size, np.int64)
    if tables is None:
        tables = lookup_tables(freq, precision, base, mask, out.dtype, lanes)
    tables, table_of, toff, ncol = _row_tables(tables, columns, lanes, 1 << precision, per_block, table_of)
    shift = lane_shift(precision, out.itemsize)
    if device == "cpu" and lanes == 2:
        decode_cpu(data, offsets, out, starts, ends, table_of, *tables, precision, sums, _spans(starts.size))
        return sums
    if device == "cpu":
        decode_lanes_cpu(data, offsets, out, starts, ends, table_of, tables[0], precision, shift, lanes, sums,
                         _spans(starts.size), toff, ncol)
        return sums
    kernels = _cuda_kernels()
    d = to_device(data, offsets, out, starts, ends, table_of, sums, *tables)
    if lanes == 2:
        launch(kernels[1], (starts.size + 1) // 2, d[0], d[1], d[2], d[3], d[4], d[5], d[7], d[8], precision, d[6])
    else:
        toff = to_device(row_offsets(np.zeros(1, np.int64), 0, lanes) if toff is None else toff)[0]
        launch(kernels[3], starts.size, d[0], d[1], d[2], d[3], d[4], d[5], d[7], precision, shift, lanes, d[6], toff,
               ncol)
    out[...] = d[2].copy_to_host()
    return d[6].copy_to_host()
