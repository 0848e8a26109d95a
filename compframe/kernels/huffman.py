"""Canonical, length-limited Huffman coding of symbol chunks (cuSZ-style: chunks code independently).

Symbols are ``(x - base) & mask`` of the unsigned view of the codes (``mask`` 0xFF or 0xFFFF), so
one compiled kernel serves signed and unsigned codes. Codes are written MSB-first; every chunk
starts on a byte boundary and ends with zero padding.

Encoding looks up ``code << 5 | length`` per symbol, gathers as many codes as fit in 55 bits
(``group = 55 // max_len``, so that with the fewer than 8 bits left over they stay below 2**62),
then writes 8 bytes at once and moves on by the whole bytes among them; each chunk is
written into its own scratch area (of the most bytes it can take) and the areas are then gathered,
so that one pass both sizes and writes the chunks.

Decoding reads the first ``FAST_BITS`` bits through a direct table (as many symbols per look-up as
fit in those bits, up to six 8-bit or three 16-bit ones, already shifted by ``base``) and longer
codes through the canonical limits (left-justified to ``L`` bits), from the length the direct entry
names. The bit reader refills 32 bits at a time while 4 bytes of the chunk are left, byte
by byte (zero beyond the chunk's end) after that. ``decode_chunks`` decodes two chunks at once with
two independent bit readers, each with its own tables (a table per column pairs chunks too), so
that the CPU overlaps their dependency chains, and the rest of each alone (``decode_alone``: runs
of look-ups with one reader, ``decode_runs``, then symbol by symbol at the end); a kernel passes an
empty second chunk to decode one alone. On the CPU, ``simd_huffman.decode_cpu`` decodes groups of
16 chunks as vectors of bit readers first and the chunks left over with ``decode_chunks``; for
short codes (``rows_pay``: zero-heavy prediction codes of 1-1.3 bits) it takes up to ``ROW``
symbols per look-up from row tables (``row_tables``, ``decode_rows``) instead of an entry's 64 bits. The CPU
drivers compute the chunks' checksums with ``fnv.record_chunks`` (16 chunks of the order they were
coded or decoded in, longest first where their lengths differ) and ``fnv.record_pair`` (the rest),
the same values as ``targets.checksum_chunks``, which the CUDA kernels use.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from numba.extending import register_jitable

from .fnv import record_run
from .targets import checksum_chunk, checksum_chunks, cpu, cuda_device, launch, to_device

FAST_BITS = 12
"""Bits resolved by the direct decoding table (2**12 entries per table by default; the caller may
give fewer when there are many tables for few symbols each, and ``direct_bits`` up to ``WIDE_BITS``
for one table of long codes, ``LARGE_BITS`` for one of many symbols: the table's width sets the
bits). An entry holds the symbols whose codes follow one another within those bits, already shifted by ``base``:
``s1 | s2 << W | ... | count << H | total << H + 3`` (``W`` = 8 or 16, the code width; ``H`` = 48
in int64 entries, up to ``48 // W`` symbols, or 24 in uint32 entries, up to three 8-bit symbols),
with ``count`` the symbols and ``total`` their bits; ``count`` 0 marks a prefix of a longer code
(or of no code at all: the search then finds none and the chunk is flagged), and ``total`` is then the length of the first code at or after the prefix (where the search
through the canonical limits starts)."""

WIDE_BITS = 16
"""The widest direct table ``direct_bits`` picks for one table of long codes (2**16 entries)."""

ROW = 16
"""Symbols per look-up of the row tables (``row_tables``): codes of 1-2 bits (zero-heavy prediction
codes) put up to ``FAST_BITS`` symbols in a look-up, more than a 64-bit direct entry holds."""


LARGE_BITS = 14
"""The direct table's bits for one table decoding at least ``LARGE_SYMBOLS`` symbols (``direct_bits``):
2**14 int64 entries (128 KiB) leave the L1 cache but stay in L2, and hold more codes per look-up
(MiniLM 4096 x 384: int16 1.58 -> 1.81 symbols per look-up, int8 3.95 -> 4.63; docs/benchmarks.md,
issue 13, ``huffman`` fourth session)."""

LARGE_SYMBOLS = 64 << LARGE_BITS
"""The 16-bit symbols from which ``direct_bits`` widens a table to ``LARGE_BITS`` (8-bit ones: twice
as many): building 2**14 entries costs 0.06-0.11 ms, which 2**20 int16 symbols decoded 12 % faster
repay; int8 look-ups hold 3-6 codes already, and gain about 8 %."""


@numba.njit(cache=True)
def direct_bits(lengths, symbols, wbits):
    """Bits of the direct decoding table for the code lengths ``lengths`` (one table, ``[1, K]``)
    decoding ``symbols`` symbols of ``wbits`` bits (8 or 16): ``FAST_BITS``, widened (up to
    ``WIDE_BITS``) while the codes longer than the table carry more than 5 % of the code space
    (``sum 2**-length``, about the share of symbols that would take the slow path through the
    canonical limits) and the table has at most an eighth as many entries as there are symbols to
    decode; at least ``LARGE_BITS`` from ``LARGE_SYMBOLS`` symbols on (twice as many 8-bit ones),
    unless the codes are so short (mean length ``sum 2**-l * l``) that ``rows_pay`` would take row
    tables at that width (they stay at ``FAST_BITS``)."""
    longest = 0
    mean = 0.0
    for s in range(lengths.shape[1]):
        longest = max(longest, lengths[0, s])
        if lengths[0, s] > 0:
            mean += 2.0 ** -lengths[0, s] * lengths[0, s]
    bits = FAST_BITS
    while bits < min(WIDE_BITS, longest) and (8 << (bits + 1)) <= symbols:
        space = 0.0
        for s in range(lengths.shape[1]):
            if lengths[0, s] > bits:
                space += 2.0 ** -lengths[0, s]
        if space <= 0.05:
            break
        bits += 1
    held = 3 if wbits == 16 else 6  # symbols of an int64 entry (a wide table of 8-bit codes gets those)
    if symbols >= LARGE_SYMBOLS * (2 if wbits == 8 else 1) and LARGE_BITS <= 1.5 * held * mean:
        bits = max(bits, LARGE_BITS)
    return bits


@numba.njit(cache=True)
def length_sum(lengths):
    """The sum over the tables ``lengths`` ``[tables, K]`` of each table's mean code length
    ``sum 2**-l * l`` (the length expected under the table's own model)."""
    weight = np.zeros(64)  # 2**-l * l by table (exact), not a power per entry
    for n in range(1, 64):
        weight[n] = 2.0 ** -n * n
    total = 0.0
    for t in range(lengths.shape[0]):
        for s in range(lengths.shape[1]):
            total += weight[np.uint64(lengths[t, s] & 63)]
    return total


@numba.njit(cache=True)
def narrow_entries(lengths, bits):
    """True when uint32 direct entries (up to three 8-bit symbols) lose little against int64 ones (up
    to six) for the tables ``lengths``: a ``bits``-bit look-up holds fewer than three codes of the
    tables' mean length (``length_sum`` over the tables), so the narrower table, which takes half
    the cache, is the faster."""
    return bits < 3 * length_sum(lengths) / lengths.shape[0]


def rows_pay(fast, mask, nbytes, count):
    """True when the row tables (``row_tables``) of the direct tables ``fast`` (``[tables, 2**P]``) are
    worth building to decode ``count`` symbols (``mask`` 0xFF or 0xFFFF) from ``nbytes`` bytes of
    chunks: a ``P``-bit look-up holds more than one and a half times the symbols that an entry of
    ``fast`` does (3 16-bit or 3-6 8-bit ones) at the stream's mean code length ``8 nbytes / count``
    (zero-heavy prediction codes: 1-1.3 bits), and every table decodes at least 32 symbols per entry
    (a row costs about as much to build as a few look-ups)."""
    held = (48 if fast.itemsize == 8 else 24) // (8 if mask == 0xFF else 16)
    bits = fast.shape[1].bit_length() - 1
    return count >= 32 * fast.size and bits * count > 1.5 * held * 8 * nbytes


_REFILL = 24
"""The decoders keep at least this many bits in the reader before a look-up (the longest code)."""
_M56 = (1 << 56) - 1


def encode_chunk(x, lo, hi, base, mask, table, group, out, pos):
    """Write the codes of ``x[lo:hi]`` MSB-first to ``out[pos:]`` (zero-padded to a byte); return the
    bytes of the chunk. ``table[s]`` is ``code << 5 | length``; ``group`` codes fit in 55 bits.

    Writes up to 8 bytes past the chunk's end (``out`` needs that slack); later writes of the chunk
    overwrite the bytes written ahead, and the last one ends with zero bits.
    """
    p, _, nbits = encode_run(x, lo, hi, base, mask, table, group, out, pos, 0, 0)
    return p - pos + ((nbits + 7) >> 3)


@register_jitable
def encode_run(x, i, hi, base, mask, table, group, out, p, acc, nbits):
    """``encode_chunk``'s loop over the symbols ``i .. hi - 1``, the writer at byte ``p`` holding the
    ``nbits`` (fewer than 8) bits ``acc`` not yet written, as it leaves them (and as
    ``simd_huffman_encode.encode_steps`` keeps its writers): returns ``(p, acc, nbits)`` after them.
    The bytes do not depend on where runs start: a run's last write holds all its whole bytes."""
    while i < hi:
        stop = min(i + group, hi)
        while i < stop:
            e = np.int64(table[np.uint64((np.int64(x[np.uint64(i)]) - base) & mask)])
            n = e & 31
            acc = (acc << n) | (e >> 5)
            nbits += n
            i += 1
        t = (acc << 2) << (62 - nbits)  # left-justified in 64 bits (wraps to negative in int64)
        out[np.uint64(p)] = (t >> 56) & 0xFF
        out[np.uint64(p + 1)] = (t >> 48) & 0xFF
        out[np.uint64(p + 2)] = (t >> 40) & 0xFF
        out[np.uint64(p + 3)] = (t >> 32) & 0xFF
        out[np.uint64(p + 4)] = (t >> 24) & 0xFF
        out[np.uint64(p + 5)] = (t >> 16) & 0xFF
        out[np.uint64(p + 6)] = (t >> 8) & 0xFF
        out[np.uint64(p + 7)] = t & 0xFF
        p += nbits >> 3
        nbits &= 7
        acc &= (1 << nbits) - 1
    return p, acc, nbits


@register_jitable
def refill(data, p, acc):
    """The 32 bits at ``data[p:p + 4]`` (MSB-first) appended to ``acc``, which keeps its low 56 bits."""
    word = ((np.int64(data[np.uint64(p)]) << 24) | (np.int64(data[np.uint64(p + 1)]) << 16)
            | (np.int64(data[np.uint64(p + 2)]) << 8) | np.int64(data[np.uint64(p + 3)]))
    return ((acc << 32) | word) & _M56


@register_jitable
def put_entry(out, i, e, wbits):
    """Write a direct entry's 64 bits to ``out[i:]`` (its symbols, then bytes that later look-ups
    overwrite): byte pieces of one value, which the compiler merges into one store."""
    if wbits == 8:
        out[np.uint64(i)] = e & 0xFF
        out[np.uint64(i + 1)] = (e >> 8) & 0xFF
        out[np.uint64(i + 2)] = (e >> 16) & 0xFF
        out[np.uint64(i + 3)] = (e >> 24) & 0xFF
        out[np.uint64(i + 4)] = (e >> 32) & 0xFF
        out[np.uint64(i + 5)] = (e >> 40) & 0xFF
        out[np.uint64(i + 6)] = (e >> 48) & 0xFF
        out[np.uint64(i + 7)] = (e >> 56) & 0xFF
    else:
        out[np.uint64(i)] = e & 0xFFFF
        out[np.uint64(i + 1)] = (e >> 16) & 0xFFFF
        out[np.uint64(i + 2)] = (e >> 32) & 0xFFFF
        out[np.uint64(i + 3)] = (e >> 48) & 0xFFFF


@register_jitable
def long_code(acc, nbits, n, max_len, limit):
    """The length of the code at the top of the reader's ``nbits`` bits, searched through the
    canonical limits from length ``n`` on; ``max_len + 1`` if no code starts there (damage)."""
    v = (acc >> (nbits - max_len)) & ((1 << max_len) - 1)
    while n <= max_len and v >= limit[n]:
        n += 1
    return n


@register_jitable
def long_symbol(acc, nbits, n, max_len, first, syms):
    """The symbol of the ``n``-bit code at the top of the reader's bits (``long_code``'s length)."""
    v = (acc >> (nbits - max_len)) & ((1 << max_len) - 1)
    return syms[np.uint64(first[n] + (v >> (max_len - n)))]


@register_jitable
def decode_runs(data, out, max_len, fast, limit, first, syms, acc, nbits, p, i, end, hi):
    """Runs of look-ups of one bit reader (``decode_chunks``' run loop with one reader: ``nbits``
    unread bits in ``acc``, the next byte at ``p``, the next symbol at ``i``) while they cannot pass
    ``data[:end]`` or ``out[:hi]``; stops within ``64 / wbits`` symbols or 4 bytes of either end.
    Returns the reader's state ``(acc, nbits, p, i)`` and 1 if its bits are no code (damage), else 0."""
    wbits = 8 * out.itemsize
    fast_bits = 0
    while (1 << fast_bits) < fast.size:
        fast_bits += 1
    fmask = (1 << fast_bits) - 1
    hb = min(48, 8 * fast.itemsize - 8)
    while True:
        run = min((hi - i) * wbits // 64, (end - p) // 4)
        if run <= 0:
            break
        e = 0
        for _ in range(run):
            if nbits < _REFILL:
                acc = refill(data, p, acc)
                p += 4
                nbits += 32
            e = np.int64(fast[np.uint64((acc >> (nbits - fast_bits)) & fmask)])
            if ((e >> hb) & 7) == 0:
                break
            put_entry(out, i, e, wbits)
            i += (e >> hb) & 7
            nbits -= e >> (hb + 3)
        if ((e >> hb) & 7) == 0:  # a code longer than the direct table, from the length its entry names
            n = long_code(acc, nbits, e >> (hb + 3), max_len, limit)
            if n > max_len:
                return acc, nbits, p, i, 1
            out[np.uint64(i)] = long_symbol(acc, nbits, n, max_len, first, syms)
            i += 1
            nbits -= n
    return acc, nbits, p, i, 0


@register_jitable
def decode_rows(data, out, max_len, entries, rows, limit, first, syms, acc, nbits, p, i, end, hi):
    """``decode_runs`` with the row tables of one table (``row_tables``' ``entries`` and ``rows``):
    each look-up copies its row of ``ROW`` symbols, so the runs stop within ``ROW`` symbols of
    ``hi``. Returns ``(acc, nbits, p, i, bad)`` as ``decode_runs``."""
    fast_bits = 0
    while (1 << fast_bits) < entries.size:
        fast_bits += 1
    fmask = (1 << fast_bits) - 1
    while True:
        run = min((hi - i) // ROW, (end - p) // 4)
        if run <= 0:
            break
        e = 0
        for _ in range(run):
            if nbits < _REFILL:
                acc = refill(data, p, acc)
                p += 4
                nbits += 32
            w = (acc >> (nbits - fast_bits)) & fmask
            e = np.int64(entries[np.uint64(w)])
            if (e & 31) == 0:
                break
            for k in range(ROW):
                out[np.uint64(i + k)] = rows[np.uint64(w), k]
            i += e & 31
            nbits -= e >> 5
        if (e & 31) == 0:  # a code longer than the direct table, from the length its entry names
            n = long_code(acc, nbits, e >> 5, max_len, limit)
            if n > max_len:
                return acc, nbits, p, i, 1
            out[np.uint64(i)] = long_symbol(acc, nbits, n, max_len, first, syms)
            i += 1
            nbits -= n
    return acc, nbits, p, i, 0


@register_jitable
def decode_alone(data, out, max_len, fast, limit, first, syms, acc, nbits, p, i, start, end, hi):
    """Decode the rest of one chunk (``data[start:end]`` into ``out[:hi]``) from a bit reader's state:
    ``nbits`` unread bits in ``acc``, the next byte at ``p``, the next symbol at ``i``. Returns 1 if
    the chunk is damaged (``decode_chunks``' test), else 0.

    ``decode_runs``, then symbol by symbol: through the canonical limits where a look-up would
    write past ``hi``, with zero bytes past ``end``."""
    acc, nbits, p, i, bad = decode_runs(data, out, max_len, fast, limit, first, syms, acc, nbits, p, i, end, hi)
    if bad:
        return 1
    wbits = 8 * out.itemsize
    fast_bits = 0
    while (1 << fast_bits) < fast.size:
        fast_bits += 1
    fmask = (1 << fast_bits) - 1
    mask = (1 << wbits) - 1
    hb = min(48, 8 * fast.itemsize - 8)
    while i < hi:
        if nbits < _REFILL and end - p >= 4:  # as in the runs
            acc = refill(data, p, acc)
            p += 4
            nbits += 32
        while nbits < _REFILL:  # near the end, byte by byte: zeros beyond it; acc keeps its low 56 bits
            acc = ((acc << 8) | (np.int64(data[np.uint64(p)]) if p < end else 0)) & _M56
            p += 1
            nbits += 8
        room = (hi - i) * wbits >= hb  # a look-up writes hb / wbits symbols
        e = np.int64(fast[np.uint64((acc >> (nbits - fast_bits)) & fmask)])
        if ((e >> hb) & 7) == 0 or not room:  # one symbol through the canonical limits
            n = long_code(acc, nbits, 1, max_len, limit)
            if n > max_len:
                return 1
            out[np.uint64(i)] = long_symbol(acc, nbits, n, max_len, first, syms)
            i += 1
            nbits -= n
        else:
            for k in range(hb // wbits):
                out[np.uint64(i + k)] = (e >> (wbits * k)) & mask
            i += (e >> hb) & 7
            nbits -= e >> (hb + 3)
    used = (p - start) * 8 - nbits
    avail = (end - start) * 8
    if used > avail or used + 8 <= avail:
        return 1
    if used < avail and ((np.int64(data[np.uint64(end - 1)]) << (used - avail + 8)) & 0xFF) != 0:
        return 1
    return 0


def decode_chunks(data, out, max_len, fast0, limit0, first0, syms0, fast1, limit1, first1, syms1, start0, end0, lo0,
                  hi0, start1, end1, lo1, hi1):
    """Decode chunk 0 (``hi0 - lo0`` symbols from ``data[start0:end0]`` into ``out[lo0:hi0]``, with the
    tables ``fast0``, ``limit0``, ``first0``, ``syms0``: a row of each of ``decoder_tables``) and chunk
    1 likewise (its own tables, the same or another); chunk 1 may be empty (``lo1 == hi1``,
    ``start1 == end1``). The symbol width is ``out``'s; both direct tables have the same width.

    Returns a bit mask of the damaged chunks (1: chunk 0, 2: chunk 1): those whose bits do not form
    valid codes or do not end exactly in the chunk's last byte with zero padding. Never reads
    outside ``data[start0:end0]`` and ``data[start1:end1]``.
    """
    wbits = 8 * out.itemsize
    fast_bits = 0  # the direct table has 2**fast_bits entries (fast_bits, or fewer for many small tables)
    while (1 << fast_bits) < fast0.size:
        fast_bits += 1
    fmask = (1 << fast_bits) - 1
    hb = min(48, 8 * fast0.itemsize - 8)  # an entry's symbols are below bit hb (uint32 or int64 entries)
    acc0 = 0
    n0 = 0
    p0 = start0
    i0 = lo0
    acc1 = 0
    n1 = 0
    p1 = start1
    i1 = lo1
    bad = 0
    longer = 0
    e0 = e1 = 0
    # Both chunks in runs of look-ups that cannot pass either chunk's end: a look-up writes 64 bits of
    # symbols (and moves on by at most 48 / wbits symbols) and refills at most four bytes.
    while bad == 0:
        run = min(min(hi0 - i0, hi1 - i1) * wbits // 64, min(end0 - p0, end1 - p1) // 4)
        if run <= 0:
            break
        for _ in range(run):
            if n0 < _REFILL:
                acc0 = refill(data, p0, acc0)
                p0 += 4
                n0 += 32
            if n1 < _REFILL:
                acc1 = refill(data, p1, acc1)
                p1 += 4
                n1 += 32
            e0 = np.int64(fast0[np.uint64((acc0 >> (n0 - fast_bits)) & fmask)])
            e1 = np.int64(fast1[np.uint64((acc1 >> (n1 - fast_bits)) & fmask)])
            if ((e0 >> hb) & 7) == 0 or ((e1 >> hb) & 7) == 0:
                longer = 1  # a code longer than fast_bits: decoded below, outside the run
                break
            put_entry(out, i0, e0, wbits)  # branch-free on the symbol count
            put_entry(out, i1, e1, wbits)
            i0 += (e0 >> hb) & 7
            n0 -= e0 >> (hb + 3)
            i1 += (e1 >> hb) & 7
            n1 -= e1 >> (hb + 3)
        if longer == 0:
            continue
        longer = 0
        # one symbol through the canonical limits for each chunk whose entry was a prefix, from the
        # length the entry names; the other chunk's look-up is made again in the next run
        if ((e0 >> hb) & 7) == 0:
            n = long_code(acc0, n0, e0 >> (hb + 3), max_len, limit0)
            if n > max_len:
                bad |= 1
            else:
                out[np.uint64(i0)] = long_symbol(acc0, n0, n, max_len, first0, syms0)
                i0 += 1
                n0 -= n
        if ((e1 >> hb) & 7) == 0:
            n = long_code(acc1, n1, e1 >> (hb + 3), max_len, limit1)
            if n > max_len:
                bad |= 2
            else:
                out[np.uint64(i1)] = long_symbol(acc1, n1, n, max_len, first1, syms1)
                i1 += 1
                n1 -= n
    # each chunk's rest alone
    if (bad & 1) == 0:
        bad |= decode_alone(data, out, max_len, fast0, limit0, first0, syms0, acc0, n0, p0, i0, start0, end0, hi0)
    if (bad & 2) == 0:
        bad |= 2 * decode_alone(data, out, max_len, fast1, limit1, first1, syms1, acc1, n1, p1, i1, start1, end1, hi1)
    return bad


_encode_cpu = cpu(encode_chunk)
_decode_cpu = cpu(decode_chunks)


@numba.njit(parallel=True, cache=True)
def encode_cpu(x, starts, ends, table_of, base, mask, table, group, scratch, scratch_start, nbytes, sums, threads):
    """Every chunk one at a time (where numba does not compile for AVX-512F, see ``_cpu_encoder``), in
    ``threads`` runs of consecutive chunks at most, one per task, each run's checksums after its chunks
    (``fnv.record_run``: 4-16 chunks at once; in pairs until the fourteenth session)."""
    n = starts.size
    spans = max(1, min(threads, n))
    for s in numba.prange(spans):
        lo, hi = s * n // spans, (s + 1) * n // spans
        for a in range(lo, hi):
            nbytes[a] = _encode_cpu(x, starts[a], ends[a], base, mask, table[table_of[a]], group, scratch,
                                    scratch_start[a])
        record_run(x, starts, ends, lo, hi, np.zeros(hi - lo, np.int64), sums)


@numba.njit(parallel=True, cache=True)
def gather_cpu(scratch, scratch_end, cap, nbytes, offsets, out):
    for i in numba.prange(nbytes.size):
        a = scratch_end[i] - cap[i]
        out[offsets[i]:offsets[i + 1]] = scratch[a:a + nbytes[i]]


_NO_ROWS = {0: np.zeros((0, 0), np.uint32), 1: np.zeros((0, 0, ROW), np.uint8), 2: np.zeros((0, 0, ROW), np.uint16)}
"""Empty row tables (``decode`` without them), by symbol width."""

cuda = None
"""numba.cuda, bound on first GPU use; a module global so that the CUDA simulator can swap it."""


@functools.cache
def _cuda_kernels():
    global cuda
    from numba import cuda

    encode_dev, decode_dev, checksum_dev, checksums_dev = (
        cuda_device(f) for f in (encode_chunk, decode_chunks, checksum_chunk, checksum_chunks))

    @cuda.jit
    def encode(x, starts, ends, table_of, base, mask, table, group, scratch, scratch_start, nbytes, sums):
        i = cuda.grid(1)
        if i < starts.size:
            nbytes[i] = encode_dev(x, starts[i], ends[i], base, mask, table[table_of[i]], group, scratch,
                                   scratch_start[i])
            sums[i] = checksum_dev(x, starts[i], ends[i])

    @cuda.jit
    def decode(data, offsets, out, starts, ends, table_of, fast, limit, first_index, syms, max_len, sums):
        j = cuda.grid(1)  # one thread per pair of chunks, as on the CPU
        n = starts.size
        a = 2 * j
        b = a + 1
        if a < n:
            ta = table_of[a]
            if b < n:
                tb = table_of[b]
                status = decode_dev(data, out, max_len, fast[ta], limit[ta], first_index[ta], syms[ta], fast[tb],
                                    limit[tb], first_index[tb], syms[tb], offsets[a], offsets[a + 1], starts[a],
                                    ends[a], offsets[b], offsets[b + 1], starts[b], ends[b])
            else:
                status = decode_dev(data, out, max_len, fast[ta], limit[ta], first_index[ta], syms[ta], fast[ta],
                                    limit[ta], first_index[ta], syms[ta], offsets[a], offsets[a + 1], starts[a],
                                    ends[a], offsets[a + 1], offsets[a + 1], ends[a], ends[a])
            if b < n:
                checksums_dev(out, starts[a], ends[a], starts[b], ends[b], sums, a, b)
                if status & 2:
                    sums[b] = -1
            else:
                sums[a] = checksum_dev(out, starts[a], ends[a])
            if status & 1:
                sums[a] = -1

    return encode, decode


def encode(device, x, starts, ends, table_of, base, mask, table, max_len):
    """Encode every chunk with ``table`` (``code << 5 | length`` per table and symbol, uint32) and
    codes of at most ``max_len`` bits; returns (concatenated streams uint8, bytes per chunk, checksums)."""
    group = max(1, 55 // max_len)
    cap = ((ends - starts) * max_len + 7) // 8 + 8  # the most bytes a chunk can take, plus 8 of slack
    scratch_end = np.cumsum(cap)
    scratch = np.empty(int(scratch_end[-1]) if cap.size else 0, np.uint8)
    nbytes = np.zeros(starts.size, np.int64)
    sums = np.zeros(starts.size, np.int64)
    if device == "cpu" and _cpu_encoder() is not None:
        _cpu_encoder()(x, starts, ends, table_of, base, mask, table, group, scratch, scratch_end - cap, nbytes, sums,
                       numba.get_num_threads())
    elif device == "cpu":
        encode_cpu(x, starts, ends, table_of, base, mask, table, group, scratch, scratch_end - cap, nbytes, sums,
                   numba.get_num_threads())
    else:
        enc, _ = _cuda_kernels()
        d = to_device(x, starts, ends, table_of, table, scratch, scratch_end - cap, nbytes, sums)
        launch(enc, starts.size, d[0], d[1], d[2], d[3], base, mask, d[4], group, d[5], d[6], d[7], d[8])
        scratch, nbytes, sums = d[5].copy_to_host(), d[7].copy_to_host(), d[8].copy_to_host()
    offsets = np.zeros(starts.size + 1, np.int64)
    np.cumsum(nbytes, out=offsets[1:])
    out = np.empty(int(offsets[-1]), np.uint8)
    gather_cpu(scratch, scratch_end, cap, nbytes, offsets, out)
    return out, nbytes, sums


@functools.cache
def _cpu_encoder():
    """``simd_huffman_encode.encode_cpu`` (16 chunks at once) where numba compiles for AVX-512F, else
    None: ``encode_cpu`` then (a chunk at a time: LLVM's generic gathers, lowered to scalar loads, would
    not pay); imported on first use (that module imports this one)."""
    from . import simd

    if not simd.avx512():
        return None
    from .simd_huffman_encode import encode_cpu as vector

    return vector


@functools.cache
def _cpu_decoder():
    """``simd_huffman.decode_cpu``, imported on first use (that module imports this one); kept, as an
    import statement costs about a microsecond per call."""
    from .simd_huffman import decode_cpu

    return decode_cpu


def decode(device, data, offsets, out, starts, ends, table_of, fast, limit, first_index, syms, max_len,
           entries=None, rows=None):
    """Decode every chunk into ``out`` (tables from ``decoder_tables``; on the CPU the row tables
    ``entries``, ``rows`` of ``row_tables`` too where given); returns the per-chunk checksums (-1
    marks a damaged chunk)."""
    sums = np.zeros(starts.size, np.int64)
    if device == "cpu":
        decode_cpu = _cpu_decoder()
        if rows is None:
            entries, rows = _NO_ROWS[0], _NO_ROWS[out.itemsize]
        threads = numba.get_num_threads() if starts.size >= 32 else 1  # spans matter from two groups of 16 on
        decode_cpu(data, offsets, out, starts, ends, table_of, fast, limit, first_index, syms, max_len, sums,
                   entries, rows, threads)
        return sums
    _, dec = _cuda_kernels()
    d = to_device(data, offsets, out, starts, ends, table_of, fast, limit, first_index, syms, sums)
    launch(dec, (starts.size + 1) // 2, d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], max_len, d[10])
    out[...] = d[2].copy_to_host()
    return d[10].copy_to_host()


@numba.njit(cache=True)
def encoder_table(lengths, max_len):
    """``code << 5 | length`` for every table (row) and symbol of the code lengths ``lengths`` (0 =
    absent symbol): canonical codes, assigned in order of (length, symbol) with ``first[l] =
    (first[l-1] + count[l-1]) << 1`` (Schwartz and Kallick 1964, as in DEFLATE, RFC 1951 §3.2.2)."""
    tables, alphabet = lengths.shape
    out = np.zeros((tables, alphabet), np.uint32)
    count = np.zeros(max_len + 1, np.int64)
    nxt = np.zeros(max_len + 1, np.int64)
    for t in range(tables):
        count[:] = 0
        for s in range(alphabet):
            count[lengths[t, s]] += 1
        code = 0
        for n in range(1, max_len + 1):
            nxt[n] = code
            code = (code + count[n]) << 1
        for s in range(alphabet):
            n = lengths[t, s]
            if n > 0:
                out[t, s] = (nxt[n] << 5) | n
                nxt[n] += 1
    return out


@numba.njit(cache=True)
def decoder_tables(lengths, max_len, base, mask, fast):
    """The decoding tables of the canonical codes with code lengths ``lengths`` ``[tables, K]`` (each
    at most ``max_len``), symbols shifted by ``base``: fills ``fast`` ``[tables, 2**P]`` (P <= WIDE_BITS;
    uint32 or int64 entries, layout in ``FAST_BITS``) and returns (ok, limit, first_index, syms).

    ``limit[t, n]``: the codes of at most ``n`` bits end there (left-justified to ``max_len`` bits);
    ``syms[t, first_index[t, n] + code]``: the symbol of an ``n``-bit code. ``ok`` is False (and the
    tables unusable) when the lengths violate the Kraft inequality. A prefix of ``P`` bits
    gets a next symbol while the bits left after the codes so far hold a whole code (the
    zero-filled bits beyond them cannot matter then).
    """
    tables, alphabet = lengths.shape
    wbits = 8 if mask == 0xFF else 16
    size = fast.shape[1]
    fast_bits = 0
    while (1 << fast_bits) < size:
        fast_bits += 1
    limit = np.zeros((tables, max_len + 1), np.int64)
    first_index = np.zeros((tables, max_len + 1), np.int64)
    syms = np.zeros((tables, alphabet), np.int32)
    count = np.zeros(max_len + 1, np.int64)
    first = np.zeros(max_len + 1, np.int64)
    nxt = np.zeros(max_len + 1, np.int64)
    sym = np.zeros(size, np.int64)
    length = np.zeros(size, np.int64)
    for t in range(tables):
        count[:] = 0
        for s in range(alphabet):
            count[lengths[t, s]] += 1
        code = 0
        index = 0
        for n in range(1, max_len + 1):
            first[n] = code
            if code + count[n] > (1 << n):
                return False, limit, first_index, syms
            limit[t, n] = (code + count[n]) << (max_len - n)
            first_index[t, n] = index - code
            nxt[n] = index
            index += count[n]
            code = (code + count[n]) << 1
        for s in range(alphabet):  # symbols in canonical order
            n = lengths[t, s]
            if n > 0:
                syms[t, nxt[n]] = (s + base) & mask
                nxt[n] += 1
        # the codes of at most FAST_BITS bits cover consecutive prefix ranges from 0
        sym[:] = 0
        length[:] = 0
        pos = 0
        for n in range(1, min(max_len, fast_bits) + 1):
            span = 1 << (fast_bits - n)
            for j in range(first_index[t, n] + first[n], first_index[t, n] + first[n] + count[n]):
                sym[pos:pos + span] = syms[t, j]
                length[pos:pos + span] = n
                pos += span
        hb = min(48, 8 * fast.itemsize - 8)  # symbols below bit hb, then the count and the length
        per = hb // wbits
        for w in range(size):
            e = 0
            held = 0
            total = 0
            r = w
            while held < per:  # unsigned indices: no negative-index check (20-25 % of the build)
                n = length[np.uint64(r)]
                if n == 0 or total + n > fast_bits:
                    break
                e |= sym[np.uint64(r)] << (wbits * held)
                total += n
                held += 1
                r = (w << total) & (size - 1)
            if held == 0:  # a longer code: the length of the first code at or after this prefix
                n = fast_bits + 1
                while n < max_len and (w << (max_len - fast_bits)) >= limit[t, n]:
                    n += 1
                total = n
            fast[t, w] = e | (held << hb) | (total << (hb + 3))
    return True, limit, first_index, syms


@numba.njit(cache=True)
def row_tables(lengths, base, mask, fast, entries, rows):
    """The row tables of ``decoder_tables``' direct table ``fast`` (``[tables, 2**P]``, built from the
    code lengths ``lengths``, symbols shifted by ``base``): fills ``entries`` (uint32, same shape) with
    ``count | total << 5`` and ``rows`` (``[tables, 2**P, ROW]``) with the ``count`` symbols (up to
    ``ROW``) whose codes follow one another within the ``P`` bits of each prefix, ``total`` their bits;
    where ``fast`` has a prefix of a longer code (count 0) the entry copies its length (where the
    search through the canonical limits starts). Rows past their count are left as they were."""
    tables, alphabet = lengths.shape
    size = fast.shape[1]
    fast_bits = 0
    while (1 << fast_bits) < size:
        fast_bits += 1
    hb = min(48, 8 * fast.itemsize - 8)
    count = np.zeros(fast_bits + 2, np.int64)
    nxt = np.zeros(fast_bits + 2, np.int64)
    sym = np.zeros(size, np.int64)
    length = np.zeros(size, np.int64)
    for t in range(tables):
        count[:] = 0
        for s in range(alphabet):
            count[min(lengths[t, s], fast_bits + 1)] += 1
        code = 0
        for n in range(1, fast_bits + 1):  # canonical codes (encoder_table's order), left-justified to P bits
            nxt[n] = code << (fast_bits - n)
            code = (code + count[n]) << 1
        length[:] = 0
        for s in range(alphabet):
            n = lengths[t, s]
            if 0 < n <= fast_bits:
                span = 1 << (fast_bits - n)
                sym[nxt[n]:nxt[n] + span] = (s + base) & mask
                length[nxt[n]:nxt[n] + span] = n
                nxt[n] += span
        for w in range(size):
            held = 0
            total = 0
            r = w
            while held < ROW:
                n = length[r]
                if n == 0 or total + n > fast_bits:
                    break
                rows[t, w, held] = sym[r]
                total += n
                held += 1
                r = (w << total) & (size - 1)
            if held == 0:
                total = np.int64(fast[t, w]) >> (hb + 3)
            entries[t, w] = held | (total << 5)


@numba.njit(cache=True)
def code_lengths(counts, max_len):
    """Huffman code lengths for ``counts`` (0 for absent symbols), no longer than ``max_len`` bits.

    Optimal lengths by the in-place algorithm of Moffat and Katajainen (WADS 1995); lengths over
    ``max_len`` are cut to it and the Kraft sum restored by lengthening the rarest shorter codes,
    then shortening the most frequent codes while the sum allows. Needs ``2**max_len >= #used``.
    """
    used = np.nonzero(counts)[0]
    n = used.size
    lengths = np.zeros(counts.size, np.int64)
    if n == 0:
        return lengths
    if n == 1:
        lengths[used[0]] = 1
        return lengths
    order = used[np.argsort(counts[used], kind="mergesort")]
    a = counts[order].astype(np.int64)
    # phase 1: internal node weights and parent pointers
    a[0] += a[1]
    root = 0
    leaf = 2
    for nxt in range(1, n - 1):
        if leaf >= n or a[root] < a[leaf]:
            a[nxt] = a[root]
            a[root] = nxt
            root += 1
        else:
            a[nxt] = a[leaf]
            leaf += 1
        if leaf >= n or (root < nxt and a[root] < a[leaf]):
            a[nxt] += a[root]
            a[root] = nxt
            root += 1
        else:
            a[nxt] += a[leaf]
            leaf += 1
    # phase 2: depths of internal nodes
    a[n - 2] = 0
    for nxt in range(n - 3, -1, -1):
        a[nxt] = a[a[nxt]] + 1
    # phase 3: depths of leaves
    avail = 1
    used_nodes = 0
    depth = 0
    root = n - 2
    nxt = n - 1
    while avail > 0:
        while root >= 0 and a[root] == depth:
            used_nodes += 1
            root -= 1
        while avail > used_nodes:
            a[nxt] = depth
            nxt -= 1
            avail -= 1
        avail = 2 * used_nodes
        depth += 1
        used_nodes = 0
    # a[k] is now the length of order[k] (rarest first, non-increasing lengths)
    if a[0] > max_len:
        kraft = 0  # in units of 2**-max_len
        for k in range(n):
            if a[k] > max_len:
                a[k] = max_len
            kraft += 1 << (max_len - a[k])
        excess = kraft - (1 << max_len)
        while excess > 0:
            for k in range(n):
                if a[k] < max_len:
                    excess -= 1 << (max_len - a[k] - 1)
                    a[k] += 1
                    if excess <= 0:
                        break
        for k in range(n - 1, -1, -1):
            while a[k] > 1 and excess + (1 << (max_len - a[k])) <= 0:
                excess += 1 << (max_len - a[k])
                a[k] -= 1
    for k in range(n):
        lengths[order[k]] = a[k]
    return lengths


@numba.njit(cache=True)
def build_model(counts, max_length):
    """What ``Huffman._build_model`` needs for the histograms ``counts`` ``[tables, K]``, in one compiled
    call (in numpy, a count of used symbols, two maxima, a product's sum and the planes: 15-20 us of
    small calls per model, two or three models per ``auto`` encode): the longest code (at least 1), the
    code lengths as uint8 (``pack_blob(lengths, 1)``'s one plane, before zlib), the coded bits of the
    counted symbols, and the encoder table (``encoder_table``). Codes are at most ``max_length`` bits,
    raised to ``ceil(log2(#symbols))`` where a table uses more symbols than that allows."""
    tables, alphabet = counts.shape
    used = 1
    for t in range(tables):
        k = 0
        for s in range(alphabet):
            k += counts[t, s] > 0
        used = max(used, k)
    need = 0
    while (1 << need) < used:
        need += 1
    lengths = code_lengths_tables(counts, max(max_length, need))
    longest = 1
    bits = np.int64(0)
    plane = np.empty(tables * alphabet, np.uint8)
    for t in range(tables):
        for s in range(alphabet):
            n = lengths[t, s]
            longest = max(longest, n)
            bits += counts[t, s] * n
            plane[t * alphabet + s] = n
    return longest, plane, float(bits), encoder_table(lengths, longest)


@numba.njit(cache=True)
def code_lengths_tables(counts, max_len):
    """``code_lengths`` of every row of ``counts`` ``[tables, K]``, in one call: int64 ``[tables, K]``."""
    out = np.zeros(counts.shape, np.int64)
    for t in range(counts.shape[0]):
        out[t] = code_lengths(counts[t], max_len)
    return out
