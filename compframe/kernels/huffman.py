"""Canonical, length-limited Huffman coding of symbol chunks (cuSZ-style: chunks code independently).

Symbols are ``(x - base) & mask`` of the unsigned view of the codes (``mask`` 0xFF or 0xFFFF), so
one compiled kernel serves signed and unsigned codes. Codes are written MSB-first; every chunk
starts on a byte boundary and ends with zero padding. Decoding reads the first ``P`` bits through a
direct table (one or two symbols per look-up) and longer codes through the canonical limits
(left-justified to ``L`` bits).
"""

from __future__ import annotations

import functools

import numba
import numpy as np

from .targets import checksum_chunk, checksum_cpu, cpu, cuda_device, launch, to_device

FAST_BITS = 12
"""Bits resolved by the direct decoding table (2**12 entries per table). An entry holds up to two
symbols whose codes fit in those bits: ``s1 | s2 << 16 | count << 32 | len1 << 34 | len1+len2 << 39``
(count 0: the code is longer, found through the canonical limits)."""


def size_chunk(x, lo, hi, base, mask, length):
    """Bytes that symbols ``x[lo:hi]`` take with code lengths ``length``."""
    bits = 0
    for i in range(lo, hi):
        bits += np.int64(length[(np.int64(x[i]) - base) & mask])
    return (bits + 7) >> 3


def encode_chunk(x, lo, hi, base, mask, code, length, out, pos):
    """Write the codes of ``x[lo:hi]`` MSB-first to ``out[pos:]`` (zero-padded to a byte)."""
    acc = 0
    nbits = 0
    for i in range(lo, hi):
        s = (np.int64(x[i]) - base) & mask
        n = np.int64(length[s])
        acc = (acc << n) | np.int64(code[s])
        nbits += n
        if nbits >= 32:  # acc < 2**56: write 4 bytes at once
            nbits -= 32
            v = acc >> nbits
            out[pos] = (v >> 24) & 0xFF
            out[pos + 1] = (v >> 16) & 0xFF
            out[pos + 2] = (v >> 8) & 0xFF
            out[pos + 3] = v & 0xFF
            pos += 4
            acc &= (1 << nbits) - 1
    while nbits >= 8:
        nbits -= 8
        out[pos] = (acc >> nbits) & 0xFF
        pos += 1
    if nbits > 0:
        out[pos] = (acc << (8 - nbits)) & 0xFF


def decode_chunk(data, start, end, out, lo, hi, base, mask, fast, limit, first_index, syms, max_len):
    """Decode ``hi - lo`` symbols from ``data[start:end]`` into ``out[lo:hi]``.

    Returns 0, or -1 if the bits do not form valid codes or do not end exactly in the chunk's
    last byte with zero padding. Never reads outside ``data[start:end]``.
    """
    acc = 0
    nbits = 0
    p = start
    avail = (end - start) * 8
    need = max(max_len, FAST_BITS)
    i = lo
    while i < hi:
        while nbits <= 48:  # refill to 49..56 bits; acc keeps only its low 56 bits
            acc = ((acc << 8) | (np.int64(data[p]) if p < end else 0)) & 0xFFFFFFFFFFFFFF
            p += 1
            nbits += 8
        while nbits >= need and i < hi:  # every code fits: decode without refilling
            e = np.int64(fast[(acc >> (nbits - FAST_BITS)) & ((1 << FAST_BITS) - 1)])
            if e == 0:  # a code longer than FAST_BITS
                w = (acc >> (nbits - max_len)) & ((1 << max_len) - 1)
                n = FAST_BITS + 1
                while n <= max_len and w >= limit[n]:
                    n += 1
                if n > max_len:
                    return -1
                out[i] = (np.int64(syms[first_index[n] + (w >> (max_len - n))]) + base) & mask
                nbits -= n
                i += 1
            elif i + 1 < hi:  # branch-free on the pair: the second write is overwritten if unused
                out[i] = ((e & 0xFFFF) + base) & mask
                out[i + 1] = (((e >> 16) & 0xFFFF) + base) & mask
                i += (e >> 32) & 3
                nbits -= (e >> 39) & 31
            else:
                out[i] = ((e & 0xFFFF) + base) & mask
                nbits -= (e >> 34) & 31
                i += 1
        if (p - start) * 8 - nbits > avail:
            return -1
    used = (p - start) * 8 - nbits
    if used > avail or used + 8 <= avail:
        return -1
    if used < avail and ((np.int64(data[end - 1]) << (used - avail + 8)) & 0xFF) != 0:
        return -1
    return 0


_size_cpu = cpu(size_chunk)
_encode_cpu = cpu(encode_chunk)
_decode_cpu = cpu(decode_chunk)


@numba.njit(parallel=True, cache=True)
def sizes_cpu(x, starts, ends, table_of, base, mask, length, nbytes):
    for i in numba.prange(starts.size):
        nbytes[i] = _size_cpu(x, starts[i], ends[i], base, mask, length[table_of[i]])


@numba.njit(parallel=True, cache=True)
def encode_cpu(x, starts, ends, table_of, base, mask, code, length, out, offsets, sums):
    for i in numba.prange(starts.size):
        t = table_of[i]
        _encode_cpu(x, starts[i], ends[i], base, mask, code[t], length[t], out, offsets[i])
        sums[i] = checksum_cpu(x, starts[i], ends[i])


@numba.njit(parallel=True, cache=True)
def decode_cpu(data, offsets, out, starts, ends, table_of, base, mask, fast, limit, first_index, syms, max_len, sums):
    for i in numba.prange(starts.size):
        t = table_of[i]
        status = _decode_cpu(data, offsets[i], offsets[i + 1], out, starts[i], ends[i], base, mask,
                             fast[t], limit[t], first_index[t], syms[t], max_len)
        sums[i] = checksum_cpu(out, starts[i], ends[i]) if status == 0 else -1


cuda = None
"""numba.cuda, bound on first GPU use; a module global so that the CUDA simulator can swap it."""


@functools.cache
def _cuda_kernels():
    global cuda
    from numba import cuda

    size_dev, encode_dev, decode_dev, checksum_dev = (
        cuda_device(f) for f in (size_chunk, encode_chunk, decode_chunk, checksum_chunk)
    )

    @cuda.jit
    def sizes(x, starts, ends, table_of, base, mask, length, nbytes):
        i = cuda.grid(1)
        if i < starts.size:
            nbytes[i] = size_dev(x, starts[i], ends[i], base, mask, length[table_of[i]])

    @cuda.jit
    def encode(x, starts, ends, table_of, base, mask, code, length, out, offsets, sums):
        i = cuda.grid(1)
        if i < starts.size:
            t = table_of[i]
            encode_dev(x, starts[i], ends[i], base, mask, code[t], length[t], out, offsets[i])
            sums[i] = checksum_dev(x, starts[i], ends[i])

    @cuda.jit
    def decode(data, offsets, out, starts, ends, table_of, base, mask, fast, limit, first_index, syms, max_len, sums):
        i = cuda.grid(1)
        if i < starts.size:
            t = table_of[i]
            status = decode_dev(data, offsets[i], offsets[i + 1], out, starts[i], ends[i], base, mask,
                                fast[t], limit[t], first_index[t], syms[t], max_len)
            sums[i] = checksum_dev(out, starts[i], ends[i]) if status == 0 else -1

    return sizes, encode, decode


def chunk_sizes(device, x, starts, ends, table_of, base, mask, length):
    """Bytes of each chunk (int64 array)."""
    nbytes = np.zeros(starts.size, np.int64)
    if device == "cpu":
        sizes_cpu(x, starts, ends, table_of, base, mask, length, nbytes)
        return nbytes
    sizes, _, _ = _cuda_kernels()
    d = to_device(x, starts, ends, table_of, length, nbytes)
    launch(sizes, starts.size, d[0], d[1], d[2], d[3], base, mask, d[4], d[5])
    return d[5].copy_to_host()


def encode(device, x, starts, ends, table_of, base, mask, code, length, offsets):
    """The concatenated chunk streams (uint8, ``offsets[-1]`` bytes) and the per-chunk checksums."""
    out = np.zeros(int(offsets[-1]), np.uint8)
    sums = np.zeros(starts.size, np.int64)
    if device == "cpu":
        encode_cpu(x, starts, ends, table_of, base, mask, code, length, out, offsets, sums)
        return out, sums
    _, enc, _ = _cuda_kernels()
    d = to_device(x, starts, ends, table_of, code, length, out, offsets, sums)
    launch(enc, starts.size, d[0], d[1], d[2], d[3], base, mask, d[4], d[5], d[6], d[7], d[8])
    return d[6].copy_to_host(), d[8].copy_to_host()


def decode(device, data, offsets, out, starts, ends, table_of, base, mask, fast, limit, first_index, syms, max_len):
    """Decode every chunk into ``out``; returns the per-chunk checksums (-1 marks a damaged chunk)."""
    sums = np.zeros(starts.size, np.int64)
    if device == "cpu":
        decode_cpu(data, offsets, out, starts, ends, table_of, base, mask, fast, limit, first_index, syms, max_len,
                   sums)
        return sums
    _, _, dec = _cuda_kernels()
    d = to_device(data, offsets, out, starts, ends, table_of, fast, limit, first_index, syms, sums)
    launch(dec, starts.size, d[0], d[1], d[2], d[3], d[4], d[5], base, mask, d[6], d[7], d[8], d[9], max_len, d[10])
    out[...] = d[2].copy_to_host()
    return d[10].copy_to_host()


@numba.njit(cache=True)
def pair_tables(order, n_len, bits):
    """Direct decoding tables over ``bits``-bit prefixes, one row per table (entry layout in
    ``FAST_BITS``), from each table's symbols in canonical order and their lengths (0 = unused).

    Codes of at most ``bits`` bits come first in canonical order and cover consecutive prefix
    ranges. A prefix gets a second symbol when the bits left after the first code hold a whole
    code (the zero-filled bits beyond them cannot matter then). Needs a valid (Kraft) code.
    """
    tables, alphabet = order.shape
    size = 1 << bits
    out = np.zeros((tables, size), np.int64)
    sym = np.zeros(size, np.int64)
    length = np.zeros(size, np.int64)
    for t in range(tables):
        sym[:] = 0
        length[:] = 0
        pos = 0
        for j in range(alphabet):
            n = n_len[t, j]
            if n == 0 or n > bits:
                break
            span = 1 << (bits - n)
            sym[pos:pos + span] = order[t, j]
            length[pos:pos + span] = n
            pos += span
        for w in range(size):
            n1 = length[w]
            if n1 == 0:
                continue
            r = (w << n1) & (size - 1)
            n2 = length[r]
            if 0 < n2 <= bits - n1:
                out[t, w] = sym[w] | (sym[r] << 16) | (2 << 32) | (n1 << 34) | ((n1 + n2) << 39)
            else:
                out[t, w] = sym[w] | (1 << 32) | (n1 << 34) | (n1 << 39)
    return out


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
