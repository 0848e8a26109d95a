"""LZSS over fixed-size chunks of 1-, 2- or 4-byte symbols, in the token format of GPULZ (ICS'23).

A chunk is matched on its own: at each position the encoder looks through the previous ``window``
symbols of the chunk for the longest match of at most 255 symbols (the nearest on a tie). Only
earlier positions holding the same symbol can start a match, so the encoder walks a hash chain of
them, nearest first (a head table of ``HASH_SIZE`` buckets and one link per position, in scratch
arrays the caller passes: one pair per CPU task, one per chunk on a GPU). The result is exactly
that of a linear scan of the window, at the cost of the candidates that share the symbol's bucket.
A match is written as two bytes ``(length, offset)`` in symbols, a literal as the
symbol's ``S`` raw bytes (little-endian); one flag bit per token (1 = match) is packed LSB-first,
8 per byte. A chunk's stream is its flag bytes followed by its token bytes. Matches may overlap the
output they copy (``length > offset``), which LZSS decodes symbol by symbol.
"""

from __future__ import annotations

import functools

import numba
import numpy as np

from .targets import checksum_chunk, checksum_cpu, cpu, cuda_device, launch, to_device

MAX_MATCH = 255
HASH_BITS = 10
HASH_SIZE = 1 << HASH_BITS
"""Buckets of the match finder: symbol ``v`` (``< 2**32``, so the product stays below 2**48) goes to
``((v * 40503) >> 6) & (HASH_SIZE - 1)`` (written out in ``encode_chunk``, which both targets compile)."""


def encode_chunk(x, lo, hi, nbytes_sym, window, min_match, flags, fpos, data, dpos, head, link):
    """Match and encode ``x[lo:hi]``: flag bits to ``flags[fpos:]`` (pre-zeroed), tokens to ``data[dpos:]``.

    ``head`` (``HASH_SIZE`` entries) and ``link`` (``hi - lo`` entries) are scratch. Returns
    (tokens, token bytes).
    """
    for h in range(HASH_SIZE):
        head[h] = -1
    i = lo
    ntok = 0
    d = dpos
    while i < hi:
        best = 0
        best_off = 0
        limit = min(MAX_MATCH, hi - i)
        b = ((np.int64(x[i]) * 40503) >> 6) & (HASH_SIZE - 1)
        j = head[b]
        while j >= 0 and i - j <= window:  # earlier positions in the bucket, nearest first
            n = 0
            while n < limit and x[i + n] == x[j + n]:
                n += 1
            if n > best:
                best = n
                best_off = i - j
                if n == limit:
                    break
            j = link[j - lo]
        step = best if best >= min_match else 1
        for k in range(i, i + step):  # every position enters the chains, matched or not
            b = ((np.int64(x[k]) * 40503) >> 6) & (HASH_SIZE - 1)
            link[k - lo] = head[b]
            head[b] = k
        if best >= min_match:
            flags[fpos + (ntok >> 3)] |= 1 << (ntok & 7)
            data[d] = best
            data[d + 1] = best_off
            d += 2
            i += best
        else:
            v = np.int64(x[i])
            for b in range(nbytes_sym):
                data[d + b] = (v >> (8 * b)) & 0xFF
            d += nbytes_sym
            i += 1
        ntok += 1
    return ntok, d - dpos


def decode_chunk(data, start, end, ntok, out, lo, hi, nbytes_sym):
    """Decode ``ntok`` tokens from ``data[start:end]`` into ``out[lo:hi]``.

    Returns 0, or -1 unless the tokens fill the chunk exactly and use every byte (the flag
    byte's unused bits must be 0). Never reads or writes outside the given ranges.
    """
    nflag = (ntok + 7) >> 3
    if nflag > end - start:
        return -1
    d = start + nflag
    o = lo
    for t in range(ntok):
        if (data[start + (t >> 3)] >> (t & 7)) & 1:
            if d + 2 > end:
                return -1
            n = np.int64(data[d])
            off = np.int64(data[d + 1])
            d += 2
            if n == 0 or off == 0 or off > o - lo or n > hi - o:
                return -1
            for k in range(n):
                out[o + k] = out[o + k - off]
            o += n
        else:
            if d + nbytes_sym > end or o >= hi:
                return -1
            v = 0
            for b in range(nbytes_sym):
                v |= np.int64(data[d + b]) << (8 * b)
            out[o] = v
            d += nbytes_sym
            o += 1
    if o != hi or d != end:
        return -1
    if (ntok & 7) != 0 and (np.int64(data[start + nflag - 1]) >> (ntok & 7)) != 0:
        return -1
    return 0


_encode_cpu = cpu(encode_chunk)
_decode_cpu = cpu(decode_chunk)


@numba.njit(parallel=True, cache=True)
def encode_cpu(x, chunk, nbytes_sym, window, min_match, flags, fcap, data, dcap, ntok, dbytes, sums, heads, links):
    # the chunks are dealt out in interleaved groups, one per task, each with its own match-finder scratch
    tasks = heads.shape[0]
    for t in numba.prange(tasks):
        for i in range(t, ntok.size, tasks):
            lo = i * chunk
            hi = min(lo + chunk, x.size)
            ntok[i], dbytes[i] = _encode_cpu(x, lo, hi, nbytes_sym, window, min_match, flags, i * fcap, data,
                                             i * dcap, heads[t], links[t])
            sums[i] = checksum_cpu(x, lo, hi)


@numba.njit(parallel=True, cache=True)
def gather_cpu(flags, fcap, data, dcap, ntok, dbytes, offsets, out):
    for i in numba.prange(ntok.size):
        nf = (ntok[i] + 7) >> 3
        o = offsets[i]
        out[o:o + nf] = flags[i * fcap:i * fcap + nf]
        out[o + nf:o + nf + dbytes[i]] = data[i * dcap:i * dcap + dbytes[i]]


@numba.njit(parallel=True, cache=True)
def decode_cpu(data, offsets, ntok, out, chunk, nbytes_sym, sums):
    for i in numba.prange(ntok.size):
        lo = i * chunk
        hi = min(lo + chunk, out.size)
        status = _decode_cpu(data, offsets[i], offsets[i + 1], ntok[i], out, lo, hi, nbytes_sym)
        sums[i] = checksum_cpu(out, lo, hi) if status == 0 else -1


cuda = None
"""numba.cuda, bound on first GPU use; a module global so that the CUDA simulator can swap it."""


@functools.cache
def _cuda_kernels():
    global cuda
    from numba import cuda

    encode_dev, decode_dev, checksum_dev = (cuda_device(f) for f in (encode_chunk, decode_chunk, checksum_chunk))

    @cuda.jit
    def encode(x, chunk, nbytes_sym, window, min_match, flags, fcap, data, dcap, ntok, dbytes, sums, heads, links):
        i = cuda.grid(1)
        if i < ntok.size:
            lo = i * chunk
            hi = min(lo + chunk, x.size)
            t, n = encode_dev(x, lo, hi, nbytes_sym, window, min_match, flags, i * fcap, data, i * dcap,
                              heads[i], links[i])
            ntok[i] = t
            dbytes[i] = n
            sums[i] = checksum_dev(x, lo, hi)

    @cuda.jit
    def decode(data, offsets, ntok, out, chunk, nbytes_sym, sums):
        i = cuda.grid(1)
        if i < ntok.size:
            lo = i * chunk
            hi = min(lo + chunk, out.size)
            status = decode_dev(data, offsets[i], offsets[i + 1], ntok[i], out, lo, hi, nbytes_sym)
            sums[i] = checksum_dev(out, lo, hi) if status == 0 else -1

    return encode, decode


def encode(device, x, chunk, window, min_match):
    """Encode symbols ``x`` (uint8/16/32) in chunks of ``chunk`` symbols.

    Returns (concatenated chunk streams uint8, tokens per chunk, bytes per chunk, checksums).
    """
    nchunks = -(-x.size // chunk)
    nbytes_sym = x.dtype.itemsize
    fcap = (chunk + 7) >> 3
    dcap = chunk * nbytes_sym
    flags = np.zeros(nchunks * fcap, np.uint8)
    data = np.zeros(nchunks * dcap, np.uint8)
    ntok = np.zeros(nchunks, np.int64)
    dbytes = np.zeros(nchunks, np.int64)
    sums = np.zeros(nchunks, np.int64)
    if device == "cpu":
        tasks = min(4 * numba.get_num_threads(), nchunks)
        heads = np.empty((tasks, HASH_SIZE), np.int64)
        links = np.empty((tasks, chunk), np.int64)
        encode_cpu(x, chunk, nbytes_sym, window, min_match, flags, fcap, data, dcap, ntok, dbytes, sums, heads, links)
    else:
        enc, _ = _cuda_kernels()
        heads = np.empty((nchunks, HASH_SIZE), np.int64)  # match-finder scratch: one pair per chunk (thread)
        links = np.empty((nchunks, chunk), np.int64)
        d = to_device(x, flags, data, ntok, dbytes, sums, heads, links)
        launch(enc, nchunks, d[0], chunk, nbytes_sym, window, min_match, d[1], fcap, d[2], dcap, d[3], d[4], d[5],
               d[6], d[7])
        flags, data, ntok, dbytes, sums = (a.copy_to_host() for a in d[1:6])
    sizes = ((ntok + 7) >> 3) + dbytes
    offsets = np.zeros(nchunks + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    out = np.empty(int(offsets[-1]), np.uint8)
    gather_cpu(flags, fcap, data, dcap, ntok, dbytes, offsets, out)
    return out, ntok, sizes, sums


def decode(device, data, offsets, ntok, out, chunk):
    """Decode every chunk into ``out`` (its dtype gives S); returns checksums (-1 marks a damaged chunk)."""
    sums = np.zeros(ntok.size, np.int64)
    nbytes_sym = out.dtype.itemsize
    if device == "cpu":
        decode_cpu(data, offsets, ntok, out, chunk, nbytes_sym, sums)
        return sums
    _, dec = _cuda_kernels()
    d = to_device(data, offsets, ntok, out, sums)
    launch(dec, ntok.size, d[0], d[1], d[2], d[3], chunk, nbytes_sym, d[4])
    out[...] = d[3].copy_to_host()
    return d[4].copy_to_host()
