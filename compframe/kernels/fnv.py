"""``targets.checksum_chunks`` on the CPU with its paired loop vectorised: the same checksums, faster.

numba's scalar code of ``checksum_chunks`` keeps its eight FNV lanes (four per chunk) in eight
registers and runs one 32-bit multiply per value (about 0.65 ns per value on the bench machine, a
quarter of a Huffman decode); LLVM's SLP vectoriser does not pack the lanes because nothing is
stored between the steps. ``_paired_steps`` states the loop in LLVM IR instead: the eight lanes are
one ``<8 x i32>`` vector (chunk 0's four values, then chunk 1's), ``h = (h ^ v) * FNV_PRIME;
h ^= h >> 13`` is three vector instructions per eight values. The chunks' rests and the folding of
the lanes are ``checksum_chunks``' own steps, in scalar code.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .targets import FNV_OFFSET, FNV_PRIME, checksum_cpu, checksum_rest

_I32, _I64 = ir.IntType(32), ir.IntType(64)
_V8 = ir.VectorType(_I32, 8)


def _splat(value: int):
    return ir.Constant(_V8, [value] * 8)


@intrinsic
def _paired_steps(typingctx, x, h, i, j, groups):
    """``groups`` steps of ``checksum_chunks``' paired loop on the lanes ``h[:8]`` (uint32): lanes 0-3
    take ``x[i + 4g:i + 4g + 4]``, lanes 4-7 ``x[j + 4g:j + 4g + 4]``. The caller keeps the reads
    inside ``x`` (nothing is checked)."""
    if h.dtype != types.uint32 or x.dtype not in (types.uint8, types.uint16):
        return None

    def codegen(context, builder, signature, args):
        xa = context.make_array(x)(context, builder, args[0])
        ha = context.make_array(h)(context, builder, args[1])
        i0, j0, count = args[2], args[3], args[4]
        elem = context.get_data_type(x.dtype)
        quad = ir.VectorType(elem, 4)
        hptr = builder.bitcast(ha.data, _V8.as_pointer())
        start = builder.load(hptr, align=4)
        entry = builder.block
        head = builder.append_basic_block("fnv.head")
        body = builder.append_basic_block("fnv.body")
        done = builder.append_basic_block("fnv.done")
        builder.branch(head)
        builder.position_at_end(head)
        g = builder.phi(_I64)
        hv = builder.phi(_V8)
        builder.cbranch(builder.icmp_signed("<", g, count), body, done)
        builder.position_at_end(body)
        off = builder.shl(g, ir.Constant(_I64, 2))
        a = builder.load(builder.bitcast(builder.gep(xa.data, [builder.add(i0, off)]), quad.as_pointer()),
                         align=x.dtype.bitwidth // 8)
        b = builder.load(builder.bitcast(builder.gep(xa.data, [builder.add(j0, off)]), quad.as_pointer()),
                         align=x.dtype.bitwidth // 8)
        v = builder.zext(builder.shuffle_vector(a, b, ir.Constant(_V8, list(range(8)))), _V8)
        t = builder.mul(builder.xor(hv, v), _splat(FNV_PRIME))
        nxt = builder.xor(t, builder.lshr(t, _splat(13)))
        g1 = builder.add(g, ir.Constant(_I64, 1))
        builder.branch(head)
        g.add_incoming(ir.Constant(_I64, 0), entry)
        g.add_incoming(g1, body)
        hv.add_incoming(start, entry)
        hv.add_incoming(nxt, body)
        builder.position_at_end(done)
        builder.store(hv, hptr, align=4)
        return context.get_dummy_value()

    return types.void(x, h, i, j, groups), codegen


@numba.njit(cache=True, nogil=True)
def checksums(x, lo0, hi0, lo1, hi1, sums, k0, k1):
    """``targets.checksum_chunks(x, lo0, hi0, lo1, hi1, sums, k0, k1)``, the same values (CPU only)."""
    h = np.empty(8, np.uint32)
    for lane in range(4):
        h[lane] = FNV_OFFSET ^ lane
        h[4 + lane] = FNV_OFFSET ^ lane
    groups = max(0, min((hi0 - lo0) // 4, (hi1 - lo1) // 4))
    _paired_steps(x, h, lo0, lo1, groups)
    i, j = lo0 + 4 * groups, lo1 + 4 * groups  # the rest of each alone, as in checksum_chunks
    sums[k0] = checksum_rest(x, i, hi0, np.int64(h[0]), np.int64(h[1]), np.int64(h[2]), np.int64(h[3]))
    sums[k1] = checksum_rest(x, j, hi1, np.int64(h[4]), np.int64(h[5]), np.int64(h[6]), np.int64(h[7]))


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
