"""Sixteen Huffman chunks decoded at once: the bit readers of 16 chunks as vectors (a numba intrinsic).

``huffman.decode_chunks`` interleaves two bit readers (two chunks); a look-up costs 3-3.5 ns per
reader there, the latency of one reader's chain (shift, table load, subtract), so one thread
decodes 0.8-1 ns per int8 symbol and 2-3 ns per int16 one. The chunks of a stream are independent
bit readers already (the stream format is unchanged): ``decode_steps`` keeps the state of 16 of
them in vectors (``<16 x i64>`` accumulators, bit counts, byte and symbol positions), and per step
refills every reader below ``huffman._REFILL`` bits with the next 32 bits of its own chunk (one
gather of 16 words, byte-swapped, made a step ahead so that it overlaps the table's), gathers the
16 direct entries (``vpgatherdd``/``vpgatherdq`` with AVX-512F, as ``simd.decode_groups``;
elsewhere LLVM's generic gather, lowered to scalar loads) and writes each entry's 64 bits at its
reader's position, then moves every reader on by its entry's symbols and bits, exactly as the
scalar run loop does.

``decode_steps_rows`` does the same with ``huffman.row_tables`` (uint32 entries of up to
``huffman.ROW`` symbols, each reader storing its entry's whole row), for codes so short that a
look-up holds more symbols than a 64-bit entry. ``decode_groups`` lets the 16 readers take the
chunks of a span in turn (8-bit codes), so that few chunks end with one reader alone, and a reader
with no chunk left copies a busy one while ``least_active`` readers are busy.

Readers whose entry is the prefix of a longer code search the canonical limits in the loop too
(gathers of ``limit``, ``first_index`` and ``syms``, a branch taken on a few per cent of steps); a
step stops short only where a reader's bits are no code (damage), which ``huffman.decode_alone``
then finds and flags. The caller guarantees the bounds (the intrinsic checks nothing): for
``steps`` steps every reader has 4 bytes per step, plus the 4 gathered ahead, left in its chunk
and 64 bits of room per step before its chunk's end, as ``decode_chunks``' runs.

Measured on one thread (docs/benchmarks.md, "``huffman`` decode: one-reader runs and 16 chunks at
once"): no faster with two vectors (32 chunks, two chains), with 32-bit lanes for the counts and
positions, or with scatters for the stores; the step is bound by its gathers and its 16 stores,
not by the chain's latency.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, register_jitable

from . import simd
from .fnv import record_chunks, record_pair
from .huffman import _REFILL, ROW, decode_alone, decode_chunks, decode_rows, decode_runs
from .targets import cpu

W = simd.W
"""Chunks decoded at once (one reader per chunk, 16 per vector); their checksums are computed
together too (``fnv.record_chunks``: four vectors of four chunks' lanes)."""

ACC, NBITS, POS, AT = range(4)
"""Rows of ``decode_steps``' state array: accumulator, unread bits, next byte, next symbol."""

_I8, _I32, _I64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)


def _vector(value, n=W, width=64):
    return ir.Constant(ir.VectorType(ir.IntType(width), n), [value] * n)


def _gather_words(builder, data, pos):
    """The 32-bit words at the byte offsets ``pos`` (``<16 x i64>``) of ``data`` (i8*), unaligned."""
    vt = ir.VectorType(_I32, W)
    if simd.avx512():  # two gathers of 8 x 32 bits with 64-bit indices
        it, ht = ir.VectorType(_I64, 8), ir.VectorType(_I32, 8)
        mask = ir.Constant(ir.VectorType(ir.IntType(1), 8), [1] * 8)
        fn = simd._function(builder.module, "llvm.x86.avx512.mask.gather.qpi.512", ht,
                            [ht, _I8.as_pointer(), it, mask.type, _I32])
        parts = [builder.call(fn, [ir.Constant(ht, None), data,
                                   builder.shuffle_vector(pos, ir.Constant(pos.type, ir.Undefined),
                                                          ir.Constant(ht, list(range(8 * h, 8 * h + 8)))),
                                   mask, ir.Constant(_I32, 1)]) for h in range(2)]
        return builder.shuffle_vector(parts[0], parts[1], ir.Constant(vt, list(range(W))))
    pt = ir.VectorType(_I32.as_pointer(), W)
    addr = builder.add(simd._splat(builder, builder.ptrtoint(data, _I64)), pos)
    mask = ir.Constant(ir.VectorType(ir.IntType(1), W), [1] * W)
    fn = simd._function(builder.module, f"llvm.masked.gather.v{W}i32.v{W}p0", vt, [pt, _I32, mask.type, vt])
    return builder.call(fn, [builder.inttoptr(addr, pt), ir.Constant(_I32, 1), mask, ir.Constant(vt, ir.Undefined)])


def _steps(row):
    """The intrinsic ``decode_steps`` (``row`` 0: direct entries of ``huffman.FAST_BITS``' layout, each
    stored as 64 bits) or ``decode_steps_rows`` (``row`` symbols per look-up from ``huffman.row_tables``:
    a uint32 entry ``count | total << 5`` and a row of ``row`` symbols, stored whole)."""

    def typer(typingctx, state, toff, fast, limit, first_index, syms, data, out, steps, fast_bits, max_len, rows):
        if state.dtype != types.int64 or toff.dtype != types.int64 or limit.dtype != types.int64 \
                or first_index.dtype != types.int64 or syms.dtype != types.int32 or data.dtype != types.uint8 \
                or out.dtype not in (types.uint8, types.uint16) \
                or fast.dtype not in ((types.uint32,) if row else (types.uint32, types.int64)) \
                or (row and (rows.dtype != out.dtype or rows.ndim != 3)):
            return None
        wide = fast.dtype == types.int64
        # an entry's count at bit hb (3 bits, or 5 in row tables), its total length above
        hb, cb = (0, 5) if row else ((48, 3) if wide else (24, 3))
        sig = types.int64(state, toff, fast, limit, first_index, syms, data, out, steps, fast_bits, max_len, rows)
        sym_bits = out.dtype.bitwidth

        def codegen(context, builder, signature, args):
            sa, ta, fa, la, ia, ya, da, oa, ra = (
                context.make_array(t)(context, builder, a)
                for t, a in zip((state, toff, fast, limit, first_index, syms, data, out, rows), args[:8] + args[11:]))
            count, fb, top = args[8], args[9], args[10]
            vt, it = ir.VectorType(_I64, W), ir.VectorType(_I32, W)
            rows_p = [builder.bitcast(builder.gep(sa.data, [ir.Constant(_I64, W * r)]), vt.as_pointer())
                      for r in range(4)]
            first = [builder.load(ptr, align=8) for ptr in rows_p]
            foff, loff, yoff = (builder.trunc(builder.load(builder.bitcast(builder.gep(ta.data, [ir.Constant(_I64, W * r)]),
                                                                            vt.as_pointer()), align=8), it)
                                for r in range(3))
            data8 = builder.bitcast(da.data, _I8.as_pointer())
            fbv, topv = simd._splat(builder, fb), simd._splat(builder, top)
            fmask = builder.sub(builder.shl(_vector(1), fbv), _vector(1))
            lmask = builder.sub(builder.shl(_vector(1), topv), _vector(1))
            bswap = simd._function(builder.module, f"llvm.bswap.v{W}i32", it, [it])
            st = ir.IntType(sym_bits)
            rt = ir.VectorType(st, max(row, 1))

            def word_at(pos):  # the 32 bits at each reader's next byte, MSB-first
                return builder.zext(builder.call(bswap, [_gather_words(builder, data8, pos)]), vt)

            def any_of(flags):
                return builder.icmp_unsigned("!=", builder.bitcast(flags, ir.IntType(W)), ir.Constant(ir.IntType(W), 0))

            pending0 = word_at(first[POS])
            loop = simd.Loop(builder, "steps", [ir.Constant(_I64, 0)] + first + [pending0],
                             ("long", "found", "store", "scatter", "next"))
            g, acc, nbits, pos, at, pending = loop.values
            search, found, store, scatter, moved_on = loop.inner
            loop.enter(builder.icmp_signed("<", g, count))
            # a step: refill the readers below _REFILL bits from the word gathered the step before (the
            # next word's gather overlaps the table's), then one direct look-up per reader
            need = builder.icmp_signed("<", nbits, _vector(_REFILL))
            acc1 = builder.select(need, builder.and_(builder.or_(builder.shl(acc, _vector(32)), pending),
                                                     _vector((1 << 56) - 1)), acc)
            nbits1 = builder.add(nbits, builder.select(need, _vector(32), _vector(0)))
            pos1 = builder.add(pos, builder.select(need, _vector(4), _vector(0)))
            pending1 = word_at(pos1)
            index = builder.add(builder.trunc(builder.and_(builder.lshr(acc1, builder.sub(nbits1, fbv)), fmask), it), foff)
            e = simd._gather(builder, fa.data, index, wide)
            e = e if wide else builder.zext(e, vt)
            held = builder.and_(builder.lshr(e, _vector(hb)), _vector((1 << cb) - 1))
            prefix = builder.icmp_unsigned("==", held, _vector(0))
            named = builder.lshr(e, _vector(hb + cb))
            builder.cbranch(any_of(prefix), search, store)
            # rare: readers whose entry is the prefix of a longer code search the canonical limits from
            # the length the entry names (huffman.long_code), the others keep their entry
            builder.position_at_end(search)
            length = builder.phi(vt)
            length.add_incoming(named, loop.body)
            v = builder.and_(builder.lshr(acc1, builder.sub(nbits1, topv)), lmask)
            inside = builder.icmp_signed("<=", length, topv)
            below = builder.trunc(builder.select(inside, length, topv), it)
            bound = simd._gather(builder, la.data, builder.add(below, loff), True)
            further = builder.and_(builder.and_(prefix, inside), builder.icmp_signed(">=", v, bound))
            length.add_incoming(builder.add(length, builder.zext(further, vt)), search)
            builder.cbranch(any_of(further), search, found)
            builder.position_at_end(found)
            bad = builder.and_(prefix, builder.icmp_signed(">", length, topv))
            coded = builder.xor(prefix, bad)  # the readers whose search found a code
            n = builder.select(coded, length, _vector(1))  # valid indices for the others' (unused) look-ups
            start = simd._gather(builder, ia.data, builder.add(builder.trunc(n, it), loff), True)
            at_sym = builder.select(coded, builder.add(start, builder.lshr(v, builder.sub(topv, n))), _vector(0))
            symbol = builder.zext(simd._gather(builder, ya.data, builder.add(builder.trunc(at_sym, it), yoff), False), vt)
            long_e = builder.or_(builder.or_(symbol if not row else _vector(0), _vector(1 << hb)),
                                 builder.shl(n, _vector(hb + cb)))
            e_long = builder.select(prefix, long_e, e)
            builder.cbranch(any_of(bad), loop.done, store)
            builder.position_at_end(store)
            e_all = builder.phi(vt)
            e_all.add_incoming(e, loop.body)
            e_all.add_incoming(e_long, found)
            longs = builder.phi(prefix.type)  # readers whose symbol came from the search (row tables)
            longs.add_incoming(ir.Constant(prefix.type, None), loop.body)
            longs.add_incoming(prefix, found)
            long_syms = builder.phi(vt)
            long_syms.add_incoming(_vector(0), loop.body)
            long_syms.add_incoming(symbol, found)
            for k in range(W):  # each reader's symbols at its own position
                lane = ir.Constant(_I32, k)
                target = builder.gep(oa.data, [builder.extract_element(at, lane)])
                if row:  # the entry's whole row (symbols past its count are overwritten later)
                    src = builder.gep(builder.bitcast(ra.data, rt.as_pointer()),
                                      [builder.zext(builder.extract_element(index, lane), _I64)])
                    builder.store(builder.load(src, align=1), builder.bitcast(target, rt.as_pointer()), align=1)
                else:  # the entry's 64 bits: the symbols, then spare bits
                    builder.store(builder.extract_element(e_all, lane), builder.bitcast(target, _I64.as_pointer()),
                                  align=1)
            builder.cbranch(any_of(longs) if row else ir.Constant(ir.IntType(1), 0), scatter, moved_on)
            builder.position_at_end(scatter)  # row tables: the searched symbols over their rows' first one
            for k in range(W):
                lane = ir.Constant(_I32, k)
                here = builder.append_basic_block("steps.scatter.lane")
                after = builder.append_basic_block("steps.scatter.after")
                builder.cbranch(builder.extract_element(longs, lane), here, after)
                builder.position_at_end(here)
                target = builder.gep(oa.data, [builder.extract_element(at, lane)])
                builder.store(builder.trunc(builder.extract_element(long_syms, lane), st), target, align=1)
                builder.branch(after)
                builder.position_at_end(after)
            builder.branch(moved_on)
            builder.position_at_end(moved_on)
            moved = builder.add(at, builder.and_(builder.lshr(e_all, _vector(hb)), _vector((1 << cb) - 1)))
            loop.repeat([builder.add(g, ir.Constant(_I64, 1)), acc1,
                         builder.sub(nbits1, builder.lshr(e_all, _vector(hb + cb))), pos1, moved, pending1])
            steps_done = builder.phi(_I64)
            steps_done.add_incoming(g, loop.head)
            steps_done.add_incoming(g, found)
            values = [builder.phi(vt) for _ in rows_p]
            for value, last, kept in zip(values, (acc, nbits, pos, at), (acc1, nbits1, pos1, at)):
                value.add_incoming(last, loop.head)
                value.add_incoming(kept, found)
            for ptr, value in zip(rows_p, values):
                builder.store(value, ptr, align=8)
            return steps_done

        return sig, codegen

    return typer


def _named(typer, name, doc):
    typer.__name__, typer.__qualname__, typer.__doc__ = name, name, doc
    return intrinsic(typer)


decode_steps = _named(_steps(0), "decode_steps", """``steps`` look-ups of each of 16 bit readers (``state[:, k]``:
``ACC``, ``NBITS``, ``POS``, ``AT`` of reader k, int64, updated) with ``huffman.decoder_tables``' tables
(2-D; reader k's rows start ``toff[0, k]`` entries into ``fast``, ``toff[1, k]`` into ``limit`` and
``first_index``, ``toff[2, k]`` into ``syms``; ``fast_bits`` index bits, codes of at most ``max_len``
bits), writing to ``out`` (uint8 or uint16) and reading ``data`` (uint8); ``rows`` is unused. Returns
the steps done: fewer only when a reader's bits are no code (a damaged chunk), with that step's
refills kept.""")

decode_steps_rows = _named(_steps(ROW), "decode_steps_rows", """``decode_steps`` with ``huffman.row_tables``'
tables: ``fast`` their uint32 entries, ``rows`` their rows of ``ROW`` symbols (``[tables,
2**fast_bits, ROW]``, ``out``'s dtype); each look-up stores its whole row (``ROW`` symbols of room per
step).""")


MIN_RUN = 8
"""Below this many steps left for the nearest reader the chunks are finished one by one."""

MIN_ACTIVE = (12, 10)
"""Readers of 8-bit and of 16-bit symbols with a chunk to decode below which ``decode_groups`` leaves the
vector steps (whose cost does not depend on how many lanes are busy) and finishes every chunk alone;
fields of fewer chunks decode in pairs (``huffman.decode_chunks``). Pooled 2048 x 64 codes, one
thread, in as many chunks of 8192 codes as the field holds: 8-bit readers gained from 12 chunks on
(15: 173 -> 152-155 us) and lost with 8 (97 -> 125 us); 16-bit ones gained from 10 (11: 304-309 ->
229-231 us, 15: 419-420 -> 255-257) and lost with 8 (201 -> 209 us); docs/benchmarks.md, twelfth
session. Measured on a Zen 4: on an Intel Xeon (thirteenth session, "Tried and left out") pairs and
the vector steps broke even nearer 9-10 chunks (8-bit) and 8 (16-bit), so the best floors depend on
the machine."""


@register_jitable
def least_active(itemsize):
    """The readers ``decode_groups`` keeps the vector steps for (``MIN_ACTIVE``)."""
    return MIN_ACTIVE[0] if itemsize == 1 else MIN_ACTIVE[1]


STAGGER = 64
"""Bytes of output between the starting points of neighbouring readers of 16-bit codes (one cache
line). Chunks start a multiple of 4 KiB apart, so readers that move in lockstep (about one 16-bit
symbol per look-up, as on pooled int16 codes) store to the same L1 set, which has fewer ways (12 on
Zen 4) than there are readers: 3.2 ns per symbol in step against 2.2 staggered. 8-bit readers
drift apart (1-6 symbols per look-up) and pay more for the stagger (decoded one reader at a time,
before and after the vector loop) than they gain."""


@register_jitable
def _start(data, offsets, out, starts, ends, table_of, fast, limit, first_index, syms, max_len, entries, rows, c, hi,
           state, k):
    """Reader ``k`` of ``state`` at the start of chunk ``c``, its symbols up to ``hi`` decoded alone
    (by rows first where there are row tables); returns 1 if its bits are no code, else 0."""
    t = table_of[c]
    acc, nbits, p, i, bad = 0, 0, offsets[c], starts[c], 0
    if rows.shape[0] > 0:
        acc, nbits, p, i, bad = decode_rows(data, out, max_len, entries[t], rows[t], limit[t], first_index[t],
                                            syms[t], acc, nbits, p, i, offsets[c + 1], hi)
    if bad == 0:
        acc, nbits, p, i, bad = decode_runs(data, out, max_len, fast[t], limit[t], first_index[t], syms[t], acc,
                                            nbits, p, i, offsets[c + 1], hi)
    state[ACC, k], state[NBITS, k], state[POS, k], state[AT, k] = acc, nbits, p, i
    return bad


@register_jitable
def _finish(data, offsets, out, ends, table_of, fast, limit, first_index, syms, max_len, entries, rows, c, state, k):
    """The rest of chunk ``c`` from reader ``k``'s state, by rows first where there are row tables
    (damage is left to ``huffman.decode_alone`` to find), then ``decode_alone``; returns its status."""
    t = table_of[c]
    acc, nbits, p, i = state[ACC, k], state[NBITS, k], state[POS, k], state[AT, k]
    if rows.shape[0] > 0:
        acc, nbits, p, i, bad = decode_rows(data, out, max_len, entries[t], rows[t], limit[t], first_index[t],
                                            syms[t], acc, nbits, p, i, offsets[c + 1], ends[c])
        if bad:
            acc, nbits, p, i = state[ACC, k], state[NBITS, k], state[POS, k], state[AT, k]
    return decode_alone(data, out, max_len, fast[t], limit[t], first_index[t], syms[t], acc, nbits, p, i,
                        offsets[c], offsets[c + 1], ends[c])


@numba.njit(cache=True, nogil=True)
def decode_groups(data, offsets, out, starts, ends, table_of, fast, limit, first_index, syms, max_len, order, a0, a1,
                  sums, entries, rows):
    """Decode the chunks ``order[a0:a1]`` (at least ``least_active``; ``decode_cpu``'s arguments) and record their
    checksums (-1 for a damaged chunk): ``fnv.record_chunks`` per 16 chunks of the order (``order[a0:a0 + 16]``,
    ...), the rest by ``fnv.record_pair`` two at a time (class tables' chunks had theirs in pairs until the
    fourteenth session: 2048 x 64 int8 codes in 21 chunks, 62-64 us against 21-22 for their checksums alone,
    ``bench/bench_kernels.py --checksums``). 16 readers take
    the chunks in turn: ``decode_steps`` (``decode_steps_rows`` with ``entries`` and ``rows`` where ``rows`` is not
    empty) while at least ``least_active`` readers are surely inside their chunks (a look-up writes 64 bits of
    symbols, or a row; a step reads at most 4 bytes, and the next 4 are gathered ahead); a reader near its chunk's
    end finishes it alone (``huffman.decode_alone``, which also makes the end checks) and takes the next chunk, or,
    with no chunk left, idles: before every call it takes a copy of a busy reader's state and tables, so that it
    reads and stores what that reader does. Fewer than 16 chunks or a short last chunk thus keep the vector steps
    until the readers run out of chunks, not to the first one that ends. Bits that are no code stop the vector loop:
    every chunk left is then finished alone, where ``decode_alone`` finds the damage."""
    wbits = 8 * out.itemsize
    fast_bits = 0
    while (1 << fast_bits) < fast.shape[1]:
        fast_bits += 1
    least = least_active(out.itemsize)
    state = np.zeros((4, W), np.int64)
    toff = np.empty((3, W), np.int64)
    lane = np.full(W, -1, np.int64)  # each reader's chunk, as its place in order; -1 idle
    status = np.zeros(a1 - a0, np.int64)  # by place in order
    room = ROW if rows.shape[0] > 0 else 64 // wbits  # symbols a look-up writes
    damaged = 0
    nxt = a0
    # 16-bit codes: reader k starts each chunk about 64 k bytes of output in (decoded alone), so that
    # readers in lockstep store to different cache sets (see STAGGER)
    ahead = STAGGER // 2 if wbits == 16 else 0
    for k in range(min(W, a1 - a0)):
        c = order[nxt]
        damaged |= _start(data, offsets, out, starts, ends, table_of, fast, limit, first_index, syms, max_len, entries,
                          rows, c, min(ends[c], starts[c] + ahead * k), state, k)
        lane[k] = nxt
        nxt += 1
    while damaged == 0:
        run = MIN_RUN << 40
        active = 0
        busy = 0
        for k in range(W):
            if lane[k] < 0:
                continue
            c = order[lane[k]]
            left = min((ends[c] - state[AT, k]) // room, (offsets[c + 1] - state[POS, k]) // 4 - 1)
            if left < MIN_RUN:  # this chunk ends alone; the reader takes the next one, or idles
                status[lane[k] - a0] = _finish(data, offsets, out, ends, table_of, fast, limit, first_index, syms,
                                               max_len, entries, rows, c, state, k)
                lane[k] = -1
                if nxt < a1:
                    c = order[nxt]
                    damaged |= _start(data, offsets, out, starts, ends, table_of, fast, limit, first_index, syms,
                                      max_len, entries, rows, c, min(ends[c], starts[c] + ahead * k), state, k)
                    lane[k] = nxt
                    nxt += 1
                    left = min((ends[c] - state[AT, k]) // room, (offsets[c + 1] - state[POS, k]) // 4 - 1)
            if lane[k] >= 0:
                active += 1
                busy = k
                run = min(run, left)
        if active < least or run < MIN_RUN or damaged:
            break
        for k in range(W):
            if lane[k] < 0:  # idle: a copy of a busy reader, storing what it stores
                for f in range(4):
                    state[f, k] = state[f, busy]
                t = table_of[order[lane[busy]]]
            else:
                t = table_of[order[lane[k]]]
            toff[0, k] = t * fast.shape[1]  # the same for the row tables' entries
            toff[1, k] = t * limit.shape[1]
            toff[2, k] = t * syms.shape[1]
        if rows.shape[0] > 0:
            done = decode_steps_rows(state, toff, entries, limit, first_index, syms, data, out, run, fast_bits,
                                     max_len, rows)
        else:
            done = decode_steps(state, toff, fast, limit, first_index, syms, data, out, run, fast_bits, max_len, rows)
        damaged = done < run
    for k in range(W):
        if lane[k] >= 0:
            status[lane[k] - a0] = _finish(data, offsets, out, ends, table_of, fast, limit, first_index, syms, max_len,
                                           entries, rows, order[lane[k]], state, k)
    for at in range(nxt, a1):  # after damage: the chunks no reader took
        c = order[at]
        _start(data, offsets, out, starts, ends, table_of, fast, limit, first_index, syms, max_len, entries, rows, c,
               starts[c], state, 0)
        status[at - a0] = _finish(data, offsets, out, ends, table_of, fast, limit, first_index, syms, max_len, entries,
                                  rows, c, state, 0)
    for g in range((a1 - a0) // W):  # the checksums 16 chunks at a time, in the order's groups of 16
        mask = 0
        for k in range(W):
            mask |= status[W * g + k] << k
        record_chunks(out, starts, ends, order[a0 + W * g:a0 + W * g + W], mask, sums)
    for at in range(a0 + W * ((a1 - a0) // W), a1, 2):  # the rest in pairs
        pair = at + 1 < a1
        record_pair(out, starts, ends, order[at], order[at + 1] if pair else starts.size,
                    status[at - a0] | (status[at + 1 - a0] << 1 if pair else 0), sums)


SPAN = 4
"""Groups of 16 chunks of 8-bit symbols that ``decode_groups`` takes at once (its readers take the
next chunk as one ends, so only its last 16 chunks end alone; their checksums follow, 512 KiB at
8192 symbols per chunk, in the L2 cache): MiniLM int8 0.98-0.99 ms against 1.02-1.03 in groups of
16. 16-bit readers restart each chunk staggered (``STAGGER``), which costs what the turns save
(2.3-2.5 ms against 2.3): they keep groups of 16."""

_decode_pair = cpu(decode_chunks)


@numba.njit(cache=True)
def longest_first(starts, ends, spans):
    """The chunks longest first (stably), dealt in turn to ``spans`` runs of the order (span ``j``
    the ``j``-th, ``spans + j``-th, ... longest), or an empty array where every chunk but the last has
    the first one's length (the chunks in their own order then)."""
    n = starts.size
    same = True
    for c in range(1, n - 1):
        same &= ends[c] - starts[c] == ends[0] - starts[0]
    if same:
        return np.empty(0, np.int64)
    ranked = np.argsort(starts - ends, kind="mergesort")
    order = np.empty(n, np.int64)
    at = 0
    for j in range(spans):
        for r in range(j, n, spans):
            order[at] = ranked[r]
            at += 1
    return order


@numba.njit(parallel=True, cache=True)
def decode_cpu(data, offsets, out, starts, ends, table_of, fast, limit, first_index, syms, max_len, sums, entries,
               rows, threads):
    """Decode every chunk (``huffman.decode``'s CPU side) with ``decode_groups`` (unless the tables hold 2**31
    entries or more; with the row tables ``entries``, ``rows`` of ``huffman.row_tables`` unless ``rows`` is empty),
    in at least ``threads`` spans where there are chunks enough (``numba.get_num_threads()``): chunks of one length
    (but the last) in spans of groups of 16, the chunks past the last group a group of their own where there are
    ``least_active`` of them on one thread (or no whole group), else in pairs with ``huffman.decode_chunks`` (an
    odd last one alone: pairs decode faster than the one-reader loop that finishes the chunks of a vector loop
    with fewer readers busy, and on two threads they share the rest out evenly where a group of its own would
    go to one span); chunks of different lengths (class tables: chunks as long as a class's columns) all
    through ``decode_groups``, longest first (``longest_first``), so that the readers, which take the next chunk
    as one ends, run out of chunks near the end of the stream rather than at the first short chunk."""
    n = starts.size
    fits = max(fast.size, limit.size, syms.size) < 1 << 31  # decode_steps' 32-bit table indices
    vector = fits and n >= least_active(out.itemsize)
    spans = max(1, min(threads, n // (2 * W)))
    order = longest_first(starts, ends, spans) if vector else np.empty(0, np.int64)
    if order.size:
        for j in numba.prange(spans):
            decode_groups(data, offsets, out, starts, ends, table_of, fast, limit, first_index, syms, max_len, order,
                          j * n // spans, (j + 1) * n // spans, sums, entries, rows)
        return
    groups = n // W if fits else 0
    rest = n - W * groups
    if vector and (groups == 0 or (rest >= least_active(out.itemsize) and threads == 1)):
        groups, rest = groups + 1, 0  # the chunks past the last group of 16 are a group of their own
    # spans of at most SPAN groups (16-bit: one), as many as the threads at least (when there are groups
    # enough); the last group may hold fewer than 16 chunks (from ``least_active`` on)
    span = SPAN if out.itemsize == 1 else 1
    spans = min(groups, -(-max(-(-groups // span), threads) // threads) * threads)
    order = np.arange(n)
    for j in numba.prange(spans):
        decode_groups(data, offsets, out, starts, ends, table_of, fast, limit, first_index, syms, max_len, order,
                      W * (j * groups // spans), min(n - rest, W * ((j + 1) * groups // spans)), sums, entries, rows)
    for j in numba.prange((rest + 1) // 2):
        a = n - rest + 2 * j
        b = a + 1
        ta = table_of[a]
        if b < n:
            tb = table_of[b]
            status = _decode_pair(data, out, max_len, fast[ta], limit[ta], first_index[ta], syms[ta], fast[tb],
                                  limit[tb], first_index[tb], syms[tb], offsets[a], offsets[a + 1], starts[a], ends[a],
                                  offsets[b], offsets[b + 1], starts[b], ends[b])
        else:  # alone, with an empty partner
            status = _decode_pair(data, out, max_len, fast[ta], limit[ta], first_index[ta], syms[ta], fast[ta],
                                  limit[ta], first_index[ta], syms[ta], offsets[a], offsets[a + 1], starts[a], ends[a],
                                  offsets[a + 1], offsets[a + 1], ends[a], ends[a])
        record_pair(out, starts, ends, a, b, status, sums)  # -1 for a chunk the decoder flagged
