"""Sixteen Huffman chunks encoded at once: the bit writers of 16 chunks as vectors (a numba intrinsic),
the encoder twin of ``simd_huffman.decode_steps``.

``huffman.encode_chunk`` appends one chunk's codes to a 64-bit accumulator, ``group = 55 // L``
codes at a time (``L`` the longest code), then writes the accumulator's whole bytes at once (8
bytes, MSB-first; the bytes past the whole ones are overwritten by the next write). One symbol is
about ten scalar instructions (load, shift, mask, table load, two field extractions, shift-or, add):
one thread encodes about 1.05 ns per symbol, bound by the instructions it issues, not by a chain's
latency, so two chunks interleaved run no faster. ``encode_steps`` keeps 16 chunks' writers in
vectors (``<16 x i64>`` accumulators, bit counts, byte and symbol positions): every ``4 / size``
codes one 32-bit gather reads each writer's next four 8-bit or two 16-bit symbols and their table
entries ``code << 5 | length`` are looked up for the codes ahead (in byte planes held in registers,
``vpermi2b``, where the 16 writers share one table of at most 256 entries and the CPU has AVX-512
VBMI, as ``ans``'s encoder; else gathered); per code every accumulator shifts by its own length
(``vpsllvq``) and takes the code; after ``group`` codes each writer stores its accumulator's 8
bytes, left-justified and byte-swapped, at its own byte position, and keeps the bits past its
whole bytes: the bytes of ``huffman.encode_chunk``, whose loop (``huffman.encode_run``) codes each
chunk's start and rest.

``encode_chunks`` drives 16 writers over a list of chunks: writer ``k`` first codes ``STAGGER * k``
bytes of symbols alone (chunks 8 KiB apart would otherwise put the 16 reads of a step in one L1
set: 353 us against 171 for 16 chunks of 8192 int8 codes), and a writer near its chunk's end
finishes it alone and takes the next chunk, or, with none left, copies a busy writer (the vector
steps go on while ``least_active`` writers are busy). ``encode_cpu`` gives it the chunks of one
length in their order, or every chunk longest first where they differ (class tables), as the
decoder does, in a span per thread.
Measured on 2048 x 64 int8 codes of one table (docs/benchmarks.md, "``huffman`` encoding: 16 chunks
at once"): 188 -> 98 us for the 16 chunks with their checksums.

The caller of ``encode_steps`` guarantees the bounds (nothing is checked): for ``rounds * group``
codes every writer's symbols lie in ``x`` with 4 bytes of ``x`` readable from each (the gather reads
32 bits), its table row holds every masked symbol, and its output has 8 bytes of room past each
write.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, register_jitable

from . import simd
from .fnv import record_chunks, record_pair
from .huffman import encode_chunk, encode_run
from .simd_encode import _byte_planes, _lookup_bytes, vbmi
from .simd_huffman import ACC, AT, NBITS, POS, W, _gather_words, _vector, longest_first
from .targets import cpu

_I8, _I32, _I64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
_encode_one = cpu(encode_chunk)


def _entries_from_planes(builder, planes, words, base, mask):
    """The table entries (``<16 x i32>`` per code, four of them) of the four 8-bit symbols in each lane's
    word of ``words`` (``<16 x i32>``, the first symbol in the low byte), ``base`` and ``mask`` (i64)
    applied, looked up in the byte planes ``planes`` (``simd_encode._byte_planes``): one ``vpermi2b``
    pair per plane for all 64."""
    bt = ir.VectorType(_I8, 64)
    base8, mask8 = (simd._splat(builder, builder.trunc(v, _I8), 64) for v in (base, mask))
    codes = builder.and_(builder.sub(builder.bitcast(words, bt), base8), mask8)
    got = [_lookup_bytes(builder, regs, codes) for regs in planes]
    it = ir.VectorType(_I32, W)
    out = []
    for q in range(4):  # code q of lane k is byte 4k + q
        pick = ir.Constant(ir.VectorType(_I32, W), [4 * k + q for k in range(W)])
        e = None
        for b in range(4):
            part = builder.zext(builder.shuffle_vector(got[b], ir.Constant(bt, ir.Undefined), pick), it)
            if b:
                part = builder.shl(part, ir.Constant(it, [8 * b] * W))
            e = part if e is None else builder.or_(e, part)
        out.append(e)
    return out


def _emit_steps(context, builder, sa, table_ptr, toffv, x8, out_ptr, count, group_, base, mask, size, planes):
    """The loop of ``encode_steps`` (``planes``: None, table gathers; else the byte planes of one table
    shared by the 16 writers): ``count * group`` codes, a write after every ``group``; the symbols read
    as one 32-bit word per writer every ``4 / size`` codes, their entries kept in ``ebuf``."""
    vt, it = ir.VectorType(_I64, W), ir.VectorType(_I32, W)
    per = 4 // size
    basev, maskv = (simd._splat(builder, builder.trunc(v, _I32)) for v in (base, mask))
    rows_p = [builder.bitcast(builder.gep(sa.data, [ir.Constant(_I64, W * r)]), vt.as_pointer()) for r in range(4)]
    first = [builder.load(ptr, align=8) for ptr in rows_p]
    ebuf = cgutils.alloca_once(builder, ir.ArrayType(it, 4))
    bswap = simd._function(builder.module, f"llvm.bswap.v{W}i64", vt, [vt])
    width = ir.Constant(it, [(1 << (8 * size)) - 1] * W)
    total = builder.mul(count, group_)
    zero = ir.Constant(_I64, 0)
    loop = simd.Loop(builder, "encode", [zero, zero, first[ACC], first[NBITS], first[POS], first[AT]],
                     ("refill", "code", "write", "next"))
    step, j, acc, nbits, pos, at = loop.values
    refill, code, write, latch = loop.inner
    loop.enter(builder.icmp_signed("<", step, total))
    phase = builder.urem(step, ir.Constant(_I64, per))
    builder.cbranch(builder.icmp_unsigned("==", phase, zero), refill, code)
    builder.position_at_end(refill)  # the next per symbols of every writer, and their entries
    offset = builder.shl(at, _vector(size - 1)) if size > 1 else at
    words = _gather_words(builder, x8, offset)
    if planes is not None:
        entries = _entries_from_planes(builder, planes, words, base, mask)
    else:
        entries = []
        for q in range(per):
            symbol = builder.and_(builder.lshr(words, ir.Constant(it, [8 * size * q] * W)), width)
            entries.append(simd._gather(builder, table_ptr, builder.add(builder.and_(builder.sub(symbol, basev), maskv),
                                                                        toffv), False))
    for q, e in enumerate(entries):
        builder.store(e, builder.gep(ebuf, [ir.Constant(_I32, 0), ir.Constant(_I32, q)]), align=64)
    builder.branch(code)
    builder.position_at_end(code)  # one code of every writer
    e = builder.load(builder.gep(ebuf, [ir.Constant(_I32, 0), builder.trunc(phase, _I32)]), align=64)
    n = builder.zext(builder.and_(e, ir.Constant(it, [31] * W)), vt)
    bits = builder.zext(builder.lshr(e, ir.Constant(it, [5] * W)), vt)
    acc1 = builder.or_(builder.shl(acc, n), bits)
    nbits1 = builder.add(nbits, n)
    j1 = builder.add(j, ir.Constant(_I64, 1))
    builder.cbranch(builder.icmp_signed("==", j1, group_), write, latch)
    builder.position_at_end(write)  # the accumulator left-justified in 64 bits, MSB-first, at each writer's byte
    t = builder.call(bswap, [builder.shl(builder.shl(acc1, _vector(2)), builder.sub(_vector(62), nbits1))])
    for k in range(W):
        lane = ir.Constant(_I32, k)
        target = builder.gep(out_ptr, [builder.extract_element(pos, lane)])
        builder.store(builder.extract_element(t, lane), builder.bitcast(target, _I64.as_pointer()), align=1)
    left = builder.and_(nbits1, _vector(7))
    kept = builder.and_(acc1, builder.sub(builder.shl(_vector(1), left), _vector(1)))
    pos2 = builder.add(pos, builder.lshr(nbits1, _vector(3)))
    builder.branch(latch)
    builder.position_at_end(latch)
    merged = []  # (j, acc, nbits, pos) from a code without a write, and after one
    for without, after in ((j1, zero), (acc1, kept), (nbits1, left), (pos, pos2)):
        phi = builder.phi(after.type)
        phi.add_incoming(without, code)
        phi.add_incoming(after, write)
        merged.append(phi)
    loop.repeat([builder.add(step, ir.Constant(_I64, 1))] + merged + [builder.add(at, _vector(1))])
    for ptr, value in zip(rows_p, (acc, nbits, pos, at)):
        builder.store(value, ptr, align=8)


@intrinsic
def encode_steps(typingctx, state, toff, table, x, out, rounds, group, base, mask):
    """``rounds`` rounds of ``group`` codes of each of 16 bit writers (``state[:, k]``: ``ACC``, ``NBITS``,
    ``POS``, ``AT`` of writer k, int64, updated: the accumulator holding ``NBITS`` bits, fewer than 8
    between rounds, the next output byte, the next symbol), each round ending in an 8-byte write
    per writer. Writer k codes ``(x[AT] - base) & mask`` with ``table``'s entry ``toff[k] + code``
    (uint32 ``code << 5 | length``, the table flattened), writing to ``out`` (uint8). Where the CPU
    has AVX-512 VBMI, the codes are 8-bit (``mask < 256``) and every writer has the same table row,
    the entries come from that row's byte planes in registers (``simd_encode._byte_planes``, as
    ``ans``'s encoder) instead of gathers; 16-bit codes gather theirs (a byte-plane lookup of two
    16-bit codes of narrow alphabets per gather was no faster on ``lorenzo``'s and ``interp``'s
    codes: docs/benchmarks.md). The caller guarantees ``x`` holds 4 bytes from every symbol
    read (``rounds * group`` per writer, rounded up to a word)."""
    if state.dtype != types.int64 or toff.dtype != types.int64 or table.dtype != types.uint32 \
            or x.dtype not in (types.uint8, types.uint16) or out.dtype != types.uint8 or x.layout != "C" \
            or table.layout != "C":
        return None
    sig = types.none(state, toff, table, x, out, rounds, group, base, mask)
    size = x.dtype.bitwidth // 8

    def codegen(context, builder, signature, args):
        sa, ta, tba, xa, oa = (context.make_array(t)(context, builder, a)
                               for t, a in zip((state, toff, table, x, out), args[:5]))
        count, group_, base_, mask_ = args[5:9]
        vt, it = ir.VectorType(_I64, W), ir.VectorType(_I32, W)
        toff64 = builder.load(builder.bitcast(ta.data, vt.as_pointer()), align=8)
        toffv = builder.trunc(toff64, it)
        x8 = builder.bitcast(xa.data, _I8.as_pointer())
        common = (sa, tba.data, toffv, x8, oa.data, count, group_, base_, mask_, size)
        if size != 1 or not vbmi():
            _emit_steps(context, builder, *common, None)
            return context.get_dummy_value()
        row = builder.extract_element(toff64, ir.Constant(_I32, 0))
        one_row = builder.icmp_unsigned("==", builder.bitcast(builder.icmp_signed("==", toff64, simd._splat(builder, row)),
                                                              ir.IntType(W)), ir.Constant(ir.IntType(W), (1 << W) - 1))
        small = builder.and_(one_row, builder.icmp_unsigned("<", mask_, ir.Constant(_I64, 256)))
        with builder.if_else(small) as (then, otherwise):
            with then:
                valid = builder.sub(tba.nitems, row)
                valid = builder.select(builder.icmp_signed("<", valid, ir.Constant(_I64, 256)), valid,
                                       ir.Constant(_I64, 256))
                planes = _byte_planes(builder, builder.gep(tba.data, [row]), valid)
                _emit_steps(context, builder, *common, planes)
            with otherwise:
                _emit_steps(context, builder, *common, None)
        return context.get_dummy_value()

    return sig, codegen


STAGGER = 64
"""Bytes of input between the starting points of neighbouring writers (one cache line): chunks of 8192
8-bit symbols start 8 KiB apart, so 16 writers reading in lockstep read 16 lines of one L1 set,
which has 8 ways on Zen 4."""


@register_jitable
def _take(x, starts, ends, table_of, base, mask, table, group, out, out_start, c, ahead, state, toff, k):
    """Writer ``k`` at the start of chunk ``c``, its first ``ahead`` symbols coded alone."""
    i = min(ends[c], starts[c] + ahead)
    state[POS, k], state[ACC, k], state[NBITS, k] = encode_run(x, starts[c], i, base, mask, table[table_of[c]], group,
                                                               out, out_start[c], 0, 0)
    state[AT, k] = i
    toff[k] = table_of[c] * table.shape[1]


@register_jitable
def _close(x, ends, table_of, base, mask, table, group, out, out_start, nbytes, c, state, k):
    """Chunk ``c``'s rest from writer ``k``'s state, coded alone; its byte count into ``nbytes``."""
    p, _, nbits = encode_run(x, state[AT, k], ends[c], base, mask, table[table_of[c]], group, out, state[POS, k],
                             state[ACC, k], state[NBITS, k])
    nbytes[c] = p + ((nbits + 7) >> 3) - out_start[c]


MIN_ACTIVE = 12
"""Writers with a chunk of 8-bit symbols to code below which ``encode_chunks`` leaves the vector steps
(whose cost does not depend on how many lanes are busy) and codes the rest of every chunk alone
(pooled int8 codes, one thread: 12 chunks 246-249 -> 218-220 us, 15 chunks 293-294 -> 238-242;
docs/benchmarks.md, twelfth session). 16-bit symbols,
whose table entries are gathered, leave them at the first idle writer: with 12-15 writers busy they
ran 3-11 % slower than the chunks alone in pairs."""


@register_jitable
def least_active(itemsize):
    """The writers ``encode_chunks`` keeps the vector steps for: ``MIN_ACTIVE`` for 8-bit symbols, all
    16 for 16-bit ones."""
    return MIN_ACTIVE if itemsize == 1 else W


@numba.njit(cache=True, nogil=True)
def encode_chunks(x, starts, ends, table_of, base, mask, table, group, out, out_start, nbytes, order, a0, a1):
    """The chunks ``order[a0:a1]`` (at least ``least_active``; ``huffman.encode``'s layout, each written at
    ``out[out_start[c]:]``, its byte count into ``nbytes``) by 16 writers: writer k first codes
    ``STAGGER * k`` bytes of symbols of its first chunk alone, then ``encode_steps`` runs while at least
    ``least_active`` writers have a round and 4 symbols left; a writer short of that finishes its chunk
    alone (``huffman.encode_run``) and takes the next one, or, with no chunk left, idles: before every
    call it takes a copy of a busy writer's state and table, so that it writes the same bytes at the
    same places as that writer. Then every busy writer's rest alone. Fewer than 16 chunks, a short
    last chunk, or chunks of different lengths thus keep the vector steps until the writers run out
    of chunks, not to the first one that ends (2048 x 64 int8 codes but 81 rows: 276-278 -> 235-239 us)."""
    least = least_active(x.itemsize)
    state = np.zeros((4, W), np.int64)
    toff = np.empty(W, np.int64)
    lane = np.full(W, -1, np.int64)
    ahead = STAGGER // x.itemsize
    nxt = a0
    for k in range(min(W, a1 - a0)):
        lane[k] = order[nxt]
        _take(x, starts, ends, table_of, base, mask, table, group, out, out_start, lane[k], ahead * k, state, toff, k)
        nxt += 1
    while True:
        rounds = 1 << 62
        busy = -1
        active = 0
        for k in range(W):
            if lane[k] < 0:
                continue
            left = (ends[lane[k]] - state[AT, k] - 4) // group  # the gather reads 32 bits at a symbol
            if left < 1:  # this chunk ends alone; the writer takes the next one, or idles
                _close(x, ends, table_of, base, mask, table, group, out, out_start, nbytes, lane[k], state, k)
                lane[k] = -1
                if nxt < a1:
                    lane[k] = order[nxt]
                    _take(x, starts, ends, table_of, base, mask, table, group, out, out_start, lane[k], 0, state,
                          toff, k)
                    nxt += 1
                    left = (ends[lane[k]] - state[AT, k] - 4) // group
            if lane[k] >= 0:
                active += 1
                busy = k
                rounds = min(rounds, left)
        if active < least or rounds < 1:
            break
        for k in range(W):
            if lane[k] < 0:  # idle: a copy of a busy writer, storing what it stores
                for f in range(4):
                    state[f, k] = state[f, busy]
                toff[k] = toff[busy]
        encode_steps(state, toff, table, x, out, rounds, group, base, mask)
    for k in range(W):
        if lane[k] >= 0:
            _close(x, ends, table_of, base, mask, table, group, out, out_start, nbytes, lane[k], state, k)
    for at in range(nxt, a1):  # chunks no writer took (shorter than a round each)
        c = order[at]
        nbytes[c] = _encode_one(x, starts[c], ends[c], base, mask, table[table_of[c]], group, out, out_start[c])


@numba.njit(parallel=True, cache=True)
def encode_cpu(x, starts, ends, table_of, base, mask, table, group, scratch, scratch_start, nbytes, sums, threads):
    """``huffman.encode_cpu`` (the same bytes, sizes and checksums) with the chunks through
    ``encode_chunks``, in ``threads`` spans where there are 32 chunks a span (16 where they have one
    length; ``numba.get_num_threads()``): chunks of one length (but the last) in their order, but for
    fewer than ``least_active`` chunks past the last group of 16, which go in pairs as there (on the
    threads, where one span's writers would code them alone); chunks of different lengths (class
    tables) longest first (``simd_huffman.longest_first``), so that the writers run out of chunks
    near the stream's end. Fewer than ``least_active`` chunks in all go in pairs. The checksums are
    taken 16 chunks at a time (``fnv.record_chunks``), the rest in pairs, in that order: longest first, class
    tables' chunks of like lengths go together (in their own order, 2048 x 64 int8 codes in 21 chunks of
    2048-8192 codes took 48 us against 24: a throwaway script, docs/benchmarks.md)."""
    n = starts.size
    fits = table.size < 1 << 31  # encode_steps' 32-bit table indices
    least = least_active(x.itemsize)
    rest = 0
    if fits and n >= least:
        spans = max(1, min(threads, n // (2 * W)))
        order = longest_first(starts, ends, spans)
        if not order.size:  # chunks of one length: spans of 16 chunks or more, the chunks past the last
            # group of 16 in pairs unless there are ``least`` of them (or there is no group)
            groups = n // W
            rest = n - W * groups if groups and n - W * groups < least else 0
            spans = max(1, min(threads, groups))
            order = np.arange(n - rest)
        m = n - rest
        for j in numba.prange(spans):  # the chunks and their checksums in one parallel region
            encode_chunks(x, starts, ends, table_of, base, mask, table, group, scratch, scratch_start, nbytes, order,
                          j * m // spans, (j + 1) * m // spans)
            for g in range(j, -(-m // W), spans):  # the checksums in the order's groups of 16
                if W * g + W <= m:
                    record_chunks(x, starts, ends, order[W * g:W * g + W], 0, sums)
                else:
                    for a in range(W * g, m, 2):
                        record_pair(x, starts, ends, order[a], order[a + 1] if a + 1 < m else n, 0, sums)
        if not rest:
            return
    else:
        rest = n
    for j in numba.prange((rest + 1) // 2):
        a = n - rest + 2 * j
        b = a + 1
        nbytes[a] = _encode_one(x, starts[a], ends[a], base, mask, table[table_of[a]], group, scratch, scratch_start[a])
        if b < n:
            nbytes[b] = _encode_one(x, starts[b], ends[b], base, mask, table[table_of[b]], group, scratch,
                                    scratch_start[b])
        record_pair(x, starts, ends, a, b, 0, sums)
