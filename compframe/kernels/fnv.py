"""``targets.checksum_chunks`` on the CPU with its loop vectorised over 2 or 16 chunks: the same checksums, faster.

numba's scalar code of ``checksum_chunks`` keeps its eight FNV lanes (four per chunk) in eight
registers and runs one 32-bit multiply per value (about 0.65 ns per value on the bench machine, a
quarter of a Huffman decode); LLVM's SLP vectoriser does not pack the lanes because nothing is
stored between the steps. ``_steps`` states the loop in LLVM IR instead: the four lanes of each of
``chunks`` chunks sit in ``<4m x i32>`` vectors of m = 2 or 4 chunks (chunk 0's four lanes, then
chunk 1's, ...), and ``h = (h ^ v) * FNV_PRIME; h ^= h >> 13`` is three vector instructions per
vector of values. One vector of two chunks (``checksums``, as ``record_pair`` uses) is one
dependency chain, about 6 cycles (the multiply's latency) per 8 values; 16 chunks
(``record_chunks``, after ``simd_huffman``'s 16-chunk decode) are four independent chains of 16
lanes, bound by the loads, shuffles and multiplies instead: 0.10-0.14 ns per value against
0.23-0.26 for pairs (docs/benchmarks.md, "``huffman`` decode"). Each chunk's next 16 values are
one vector load, spread over four steps by shuffles. The chunks' rests and the folding of the lanes are
``targets.checksum_rest``, in scalar code. Plain LLVM vector IR, no x86 intrinsic: it compiles for
any target numba compiles for (``simd.target_features()``; tested with ``NUMBA_CPU_NAME=generic``).
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from . import simd
from .targets import FNV_OFFSET, FNV_PRIME, checksum_cpu, checksum_rest

_I32, _I64 = ir.IntType(32), ir.IntType(64)

GROUP = simd.W
"""Chunks whose checksums ``record_chunks`` computes together (16, as ``simd_huffman`` decodes them)."""


def _joined(builder, parts):
    """The vectors ``parts`` (2 or 4 of the same type) end to end, one vector."""
    while len(parts) > 1:
        n = parts[0].type.count
        mask = ir.Constant(ir.VectorType(_I32, 2 * n), list(range(2 * n)))
        parts = [builder.shuffle_vector(parts[k], parts[k + 1], mask) for k in range(0, len(parts), 2)]
    return parts[0]


@intrinsic
def _steps(typingctx, x, h, at, blocks, chunks):
    """``4 * blocks`` steps of ``checksum_chunks``' loop on ``chunks`` chunks at once (a literal: 2 or
    a multiple of 4): chunk k's lanes ``h[4k:4k + 4]`` (uint32) take ``x[at[k]:at[k] + 16 * blocks]``,
    four values per step (``at`` int64). Per block of 16 values a chunk's values are one vector load,
    spread over the four steps by shuffles. The caller keeps the reads inside ``x`` (nothing is
    checked); ``at`` is not moved."""
    if not isinstance(chunks, types.IntegerLiteral):
        raise numba.core.errors.RequireLiteralValue("chunks must be a compile-time constant")
    k_all = chunks.literal_value
    if h.dtype != types.uint32 or at.dtype != types.int64 or x.dtype not in (types.uint8, types.uint16) \
            or not (k_all == 2 or (k_all > 0 and k_all % 4 == 0)):
        return None
    per = min(k_all, 4)  # chunks per vector

    def codegen(context, builder, signature, args):
        xa, ha, aa = (context.make_array(t)(context, builder, a) for t, a in zip((x, h, at), args[:3]))
        count = args[3]
        elem = context.get_data_type(x.dtype)
        row = ir.VectorType(elem, 16)
        vt = ir.VectorType(_I32, 4 * per)
        prime, thirteen = ir.Constant(vt, [FNV_PRIME] * vt.count), ir.Constant(vt, [13] * vt.count)
        hptrs = [builder.bitcast(builder.gep(ha.data, [ir.Constant(_I64, 4 * k)]), vt.as_pointer())
                 for k in range(0, k_all, per)]
        starts = [builder.load(builder.gep(aa.data, [ir.Constant(_I64, k)])) for k in range(k_all)]
        first = [builder.load(ptr, align=4) for ptr in hptrs]
        loop = simd.Loop(builder, "fnv", [ir.Constant(_I64, 0)] + first)
        g, hs = loop.values[0], loop.values[1:]
        loop.enter(builder.icmp_signed("<", g, count))
        off = builder.shl(g, ir.Constant(_I64, 4))
        rows = [builder.load(builder.bitcast(builder.gep(xa.data, [builder.add(s, off)]), row.as_pointer()),
                             align=x.dtype.bitwidth // 8) for s in starts]
        nxt = list(hs)
        for v in range(len(hs)):  # per vector: its chunks' 16 values, then four steps of four values each
            block = _joined(builder, rows[per * v:per * v + per])
            for step in range(4):
                pick = ir.Constant(ir.VectorType(_I32, 4 * per), [16 * c + 4 * step + lane for c in range(per)
                                                                    for lane in range(4)])
                values = builder.zext(builder.shuffle_vector(block, ir.Constant(block.type, ir.Undefined), pick), vt)
                t = builder.mul(builder.xor(nxt[v], values), prime)
                nxt[v] = builder.xor(t, builder.lshr(t, thirteen))
        loop.repeat([builder.add(g, ir.Constant(_I64, 1))] + nxt)
        for ptr, value in zip(hptrs, hs):
            builder.store(value, ptr, align=4)
        return context.get_dummy_value()

    return types.void(x, h, at, blocks, chunks), codegen


@numba.njit(cache=True, nogil=True)
def _start(h, at, starts, a, n):
    """The lanes' start values ``h[:4n]`` and the positions ``at[:n] = starts[a:a + n]``."""
    for k in range(n):
        at[k] = starts[a + k]
        for lane in range(4):
            h[4 * k + lane] = FNV_OFFSET ^ lane


@numba.njit(cache=True, nogil=True)
def _pair_on(x, h, at, k, ends, a):
    """Chunks ``a + k`` and ``a + k + 1`` from ``at[k]``, ``at[k + 1]`` on as far as both have blocks
    of 16 values left (lanes ``h[4k:4k + 8]``), ``at`` moved."""
    blocks = max(0, min((ends[a + k] - at[k]) // 16, (ends[a + k + 1] - at[k + 1]) // 16))
    _steps(x, h[4 * k:4 * k + 8], at[k:k + 2], blocks, 2)
    at[k] += 16 * blocks
    at[k + 1] += 16 * blocks


@numba.njit(cache=True, nogil=True)
def _group_on(x, h, at, k, hi, size):
    """Chunks ``k .. k + size - 1`` (``size`` 4 or 8) from ``at[k:]`` on as far as all have blocks of 16 values
    left (lanes ``h[4k:4k + 4 size]``), ``at`` moved (``_pair_on`` for four or eight chunks)."""
    blocks = hi[k] - at[k]
    for j in range(k, k + size):
        blocks = min(blocks, (hi[j] - at[j]) // 16)
    if blocks <= 0:
        return
    if size == 8:
        _steps(x, h[4 * k:4 * k + 32], at[k:k + 8], blocks, 8)
    else:
        _steps(x, h[4 * k:4 * k + 16], at[k:k + 4], blocks, 4)
    for j in range(k, k + size):
        at[j] += 16 * blocks


@numba.njit(cache=True, nogil=True)
def _finish(x, h, at, k, hi):
    """Chunk k's checksum from its lanes ``h[4k:4k + 4]`` after its values before ``at[k]``."""
    return checksum_rest(x, at[k], hi, np.int64(h[4 * k]), np.int64(h[4 * k + 1]), np.int64(h[4 * k + 2]),
                         np.int64(h[4 * k + 3]))


@numba.njit(cache=True, nogil=True)
def checksums(x, lo0, hi0, lo1, hi1, sums, k0, k1):
    """``targets.checksum_chunks(x, lo0, hi0, lo1, hi1, sums, k0, k1)``, the same values (CPU only)."""
    h = np.empty(8, np.uint32)
    at = np.array([lo0, lo1], np.int64)
    ends = np.array([hi0, hi1], np.int64)
    _start(h, at, at.copy(), 0, 2)
    _pair_on(x, h, at, 0, ends, 0)
    sums[k0] = _finish(x, h, at, 0, hi0)  # the rest of each alone, as in checksum_chunks
    sums[k1] = _finish(x, h, at, 1, hi1)


@numba.njit(cache=True, nogil=True)
def record_chunks(out, starts, ends, chunks, status, sums):
    """``record_pair`` for the 4, 8 or 16 chunks ``chunks`` (chunk indices, int64, any of ``starts``; ``status`` bit
    k flags chunk ``chunks[k]``): their lanes step together while each has blocks of 16 values left (16 chunks: four
    independent chains of 16 lanes; 8: two; 4: one, against a pair's one chain of 8), then, where their lengths
    differ, eights and fours of them (``chunks[0:8]``, ...) and pairs (``chunks[0]`` with ``chunks[1]``, ...) as
    far as each has blocks left, then each chunk's rest alone. The same values as ``checksum_chunk``. Chunks of
    different lengths lose least where neighbours in ``chunks`` have like lengths (``simd_huffman.longest_first``'s
    order)."""
    m = chunks.size
    lo = np.empty(m, np.int64)
    hi = np.empty(m, np.int64)
    for k in range(m):
        lo[k] = starts[chunks[k]]
        hi[k] = ends[chunks[k]]
    h = np.empty(4 * m, np.uint32)
    at = np.empty(m, np.int64)
    _start(h, at, lo, 0, m)
    blocks = hi[0] - at[0]
    for k in range(m):
        blocks = min(blocks, (hi[k] - at[k]) // 16)
    blocks = max(blocks, 0)
    if m == GROUP:
        _steps(out, h, at, blocks, GROUP)
    elif m == 8:
        _steps(out, h, at, blocks, 8)
    else:
        _steps(out, h, at, blocks, 4)
    for k in range(m):
        at[k] += 16 * blocks
    # chunks of different lengths: eights, then fours, step on to their own shortest before the pairs
    for k in range(0, m - 7, 8):
        _group_on(out, h, at, k, hi, 8)
    for k in range(0, m - 3, 4):
        _group_on(out, h, at, k, hi, 4)
    for k in range(0, m, 2):
        _pair_on(out, h, at, k, hi, 0)
    for k in range(m):
        sums[chunks[k]] = -1 if status >> k & 1 else _finish(out, h, at, k, hi[k])


@numba.njit(cache=True, nogil=True)
def record_run(out, starts, ends, a, b, status, sums):
    """``record_pair`` for the consecutive chunks ``a .. b - 1`` (``status[k]`` non-zero flags chunk ``a + k``): 16
    at a time (``record_chunks``), then 8 and 4 at a time, the rest in pairs and an odd last one alone; the same
    values. The pair-mode ``ans`` kernels and ``huffman``'s encoder without AVX-512 checksum a thread's run of chunks
    so: two chunks' lanes are one chain of multiplies (0.45 ns per value on the fourteenth session's Intel machine),
    and runs of 4, 8 and 16 chunks take 1.6x, 2.9x and 5x less time a value (``bench/bench_kernels.py
    --checksums``)."""
    k = a
    while b - k >= 4:
        m = GROUP if b - k >= GROUP else (8 if b - k >= 8 else 4)
        flags = 0
        for j in range(m):
            flags |= (1 if status[k - a + j] else 0) << j
        record_chunks(out, starts, ends, np.arange(k, k + m), flags, sums)
        k += m
    while k < b:
        pair = k + 1 < b
        record_pair(out, starts, ends, k, k + 1 if pair else starts.size,
                    (1 if status[k - a] else 0) | ((2 if status[k + 1 - a] else 0) if pair else 0), sums)
        k += 2


@numba.njit(cache=True, nogil=True)
def record_group(out, starts, ends, a, status, sums):
    """``record_chunks`` for the 16 chunks ``a .. a + 15`` (``GROUP``, all present in ``starts``)."""
    record_chunks(out, starts, ends, np.arange(a, a + GROUP), status, sums)


@numba.njit(cache=True, nogil=True)
def record_pair(out, starts, ends, a, b, status, sums):
    """The CPU coders' bookkeeping for chunks ``a`` and ``b = a + 1`` (absent when past the end):
    their checksums into ``sums``, or -1 for a chunk the decoder flagged (``status`` bit 1: a, 2: b)."""
    if b < starts.size:
        checksums(out, starts[a], ends[a], starts[b], ends[b], sums, a, b)
        if status & 2:
            sums[b] = -1
    else:
        sums[a] = checksum_cpu(out, starts[a], ends[a])
    if status & 1:
        sums[a] = -1
