"""A vectorized rANS encoding loop for ``ans``'s lane mode, written as LLVM IR (a numba intrinsic):
the encoder twin of ``simd.decode_groups``, writing the bytes of ``ans.encode_lanes``.

The lanes of the lane mode are independent state chains (Giesen, "Interleaved entropy coders",
arXiv 1402.3392), so 16 lanes' encoding steps are one ``<16 x i32>`` vector step. The encoder walks
the symbols backwards, group by group (``lanes`` symbols, one per lane) and, within a group, from
the last vector of 16 lanes to the first. Per vector of 16 symbols ``c`` (already minus ``base``):

- gather ``e = cum | (2**R - freq) << 16`` (``ans.encoder_tables``' ``info``, low 32 bits); when
  the masked codes index at most 256 entries (``mask < 256``) and the CPU has AVX-512 VBMI, and the
  loop has at least two vectors a step, the table is instead held in registers as four byte planes
  of 256 bytes (loaded once, with masked loads: entries past ``min(mask + 1, len(table))`` read
  as 0), each looked up for up to 64 codes at once with two ``vpermi2b`` and a select on the code's
  bit 7, and the four bytes put back together per lane: pair 32 lanes 0.81 -> 0.63-0.66 ns per
  symbol (256 symbols, R = 12), 0.81 -> 0.59 (16 symbols, R = 8); one chunk of 16 lanes keeps the
  gather (latency bound, the planes no faster);
- the lanes whose state ``x >= freq << (32 - R)`` emit their low 16 bits: stored below the word
  pointer in lane order (``llvm.masked.compressstore``: one ``vpcompressw`` with AVX-512 VBMI2),
  the pointer moving down by their count, and take ``x >> 16``; the scalar encoder, which walks
  the lanes downwards and writes each word below the previous one, leaves the same bytes;
- ``x = x + cum + (x // freq) * (2**R - freq)`` (rANS's ``(x // f) << R + x % f + cum``, Duda
  2013, arXiv 1311.2540), the quotient as ``floor((x + 1/2) / freq)`` in double precision: ``x + 1/2``
  and ``freq`` are exact doubles, the correctly rounded quotient is off by less than
  ``2**32 * 2**-53 = 2**-21``, while ``(x + 1/2) / freq`` lies at least ``1 / (2 freq) >= 2**-17``
  from an integer, so the floor is exact (bit for bit the integer division of the scalar code;
  ``tests/test_simd_encode_division.py`` checks every frequency of every precision at the edges of
  its quotients). Measured exact alternatives on Zen 4 (fifth session; 4096 x 384 symbols, one
  thread, ns per symbol at 32 lanes, two chunks at once): this ``vdivpd`` pair 0.81, ``vrcp14pd`` and
  one third-order Newton-Raphson step with FMAs (relative error < 2**-41.9) 0.90, one half divided
  and one by the reciprocal 0.85, float32 ``vdivps`` with an integer +-1 correction (exact for R >=
  10 only) 1.14: the reciprocal's six FMAs or the correction's multiply cost more than the divider
  they spare (without the quotient at all the loop takes 0.53-0.65, without the gather 0.51-0.58).

``encode_groups_pair`` runs the same steps on two chunks in one loop (the twin of
``simd.decode_groups_pair``): a step waits on its gather and its division, and two chunks' are
independent, so 16 or 32 lanes per chunk get the overlap that 32 or 64 lanes have in one.

On a CPU with AVX-512F the gather is ``vpgatherdd`` (``simd._gather``); elsewhere LLVM lowers the
generic gather and compress-store to scalar code. The caller guarantees the bounds (nothing is
checked): ``groups * lanes`` symbols from ``i`` are in ``x``, ``out`` has room below ``p`` for
their words (at most 2 bytes per symbol) and 32 bytes more (``_store_words``), every code minus ``base`` (masked) indexes the table, and the table
entries of the coded symbols have ``freq >= 1``.
"""

from __future__ import annotations

import numba
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .simd import W, Loop, _check_lanes, _column_offsets, _column_step, _function, _gather, _splat, avx512, \
    column_args, target_features

_I1, _I16, _I32, _I64 = ir.IntType(1), ir.IntType(16), ir.IntType(32), ir.IntType(64)


def _store_words(builder, out, p, below, state, emit):
    """Store the low 16 bits of the lanes of ``state`` where ``emit`` is set, in lane order, at
    ``out[below:p]`` (``below = p - 2 * count``). With AVX-512F: compressed in a register
    (``vpcompressd``; its memory form takes over 100 cycles on Zen 4) with the lanes reversed, so that
    reversed back the words sit at the top of 16 words stored whole at ``out[p - 32:p]``: the bytes
    below ``below`` are scratch the following words and the final states overwrite. Elsewhere
    LLVM's generic compress-store, exactly the words."""
    vt, mt, wt = ir.VectorType(_I32, W), ir.VectorType(_I1, W), ir.VectorType(_I16, W)
    if not avx512():
        fn = _function(builder.module, f"llvm.masked.compressstore.v{W}i16", ir.VoidType(), [wt, _I16.as_pointer(), mt])
        builder.call(fn, [builder.trunc(state, wt), builder.bitcast(builder.gep(out, [below]), _I16.as_pointer()), emit])
        return
    rev = ir.Constant(ir.VectorType(_I32, W), list(range(W - 1, -1, -1)))
    fn = _function(builder.module, f"llvm.x86.avx512.mask.compress.v{W}i32", vt, [vt, vt, mt])
    packed = builder.call(fn, [builder.shuffle_vector(state, ir.Constant(vt, ir.Undefined), rev), ir.Constant(vt, None),
                               builder.shuffle_vector(emit, ir.Constant(mt, ir.Undefined), rev)])
    words = builder.shuffle_vector(builder.trunc(packed, wt), ir.Constant(wt, ir.Undefined), rev)
    target = builder.gep(out, [builder.sub(p, ir.Constant(_I64, 2 * W))])
    builder.store(words, builder.bitcast(target, wt.as_pointer()), align=1)


def vbmi() -> bool:
    """True when the byte permutes of AVX-512 VBMI (``vpermi2b``) can be emitted."""
    return avx512() and "avx512vbmi" in target_features()


def _byte_planes(builder, table, size):
    """The first 256 entries of the uint32 ``table`` (``size`` of them valid, the rest read as 0) as
    four byte planes, each ``<64 x i8>`` x 4 (plane ``b``: byte ``b`` of entries 64 j .. 64 j + 63)."""
    vt, mt, bt = ir.VectorType(_I32, W), ir.VectorType(_I1, W), ir.VectorType(ir.IntType(8), W)
    load = _function(builder.module, f"llvm.masked.load.v{W}i32.p0", vt, [vt.as_pointer(), _I32, mt, vt])
    sizev = _splat(builder, builder.trunc(size, _I32))
    parts = []
    for k in range(256 // W):
        idx = ir.Constant(vt, list(range(W * k, W * k + W)))
        ptr = builder.bitcast(builder.gep(table, [ir.Constant(_I64, W * k)]), vt.as_pointer())
        parts.append(builder.call(load, [ptr, ir.Constant(_I32, 4), builder.icmp_signed("<", idx, sizev),
                                         ir.Constant(vt, None)]))
    planes = []
    for b in range(4):
        bytes_ = [builder.trunc(builder.lshr(v, _splat(builder, ir.Constant(_I32, 8 * b))), bt) for v in parts]
        regs = []
        for j in range(4):
            q = bytes_[4 * j:4 * j + 4]
            lo = builder.shuffle_vector(q[0], q[1], ir.Constant(ir.VectorType(_I32, 32), list(range(32))))
            hi = builder.shuffle_vector(q[2], q[3], ir.Constant(ir.VectorType(_I32, 32), list(range(32))))
            regs.append(builder.shuffle_vector(lo, hi, ir.Constant(ir.VectorType(_I32, 64), list(range(64)))))
        planes.append(regs)
    return planes


def _lookup_bytes(builder, regs, idx):
    """``regs`` (4 x ``<64 x i8>``, 256 bytes) at the 64 byte indices ``idx``: two ``vpermi2b`` (128
    bytes each, index bits 0-6) and a select on bit 7."""
    bt = ir.VectorType(ir.IntType(8), 64)
    fn = _function(builder.module, "llvm.x86.avx512.vpermi2var.qi.512", bt, [bt, bt, bt])
    low = builder.call(fn, [regs[0], idx, regs[1]])
    high = builder.call(fn, [regs[2], idx, regs[3]])
    return builder.select(builder.icmp_signed("<", idx, ir.Constant(bt, None)), high, low)


def _emit_encode(context, builder, count, chunks, vectors, base, mask, precision, xtype, planes=None, cols=None):
    """The loop of ``count`` groups of ``16 * vectors`` symbols, last group first, over each chunk of
    ``chunks``, a list of (states ``i32*``, table pointer, symbols pointer, first symbol, output
    pointer, word position): the chunks' steps in one loop body, so that their gathers and
    divisions overlap. ``cols``: None, or (offsets ``i32*``, ``ncol`` i64) of the row-order column
    mode (the table entry of code ``c`` at symbol index ``i``: ``offsets[i % ncol] + c``; as
    ``simd._emit_groups``). Returns each chunk's word position after the loop."""
    vt, wt = ir.VectorType(_I32, W), ir.VectorType(_I16, W)
    dt = ir.VectorType(ir.DoubleType(), W)
    xt = ir.VectorType(xtype, W)
    r = builder.trunc(precision, _I32)
    basev = _splat(builder, builder.trunc(base, _I32))
    maskv = _splat(builder, builder.trunc(mask, _I32))
    onev = _splat(builder, builder.shl(ir.Constant(_I32, 1), r))
    boundshift = _splat(builder, builder.sub(ir.Constant(_I32, 32), r))
    low16, sixteen = _splat(builder, ir.Constant(_I32, 0xFFFF)), _splat(builder, ir.Constant(_I32, 16))
    half = ir.Constant(dt, [0.5] * W)
    popcount = _function(builder.module, f"llvm.ctpop.i{W}", ir.IntType(W), [ir.IntType(W)])
    sptrs = [[builder.bitcast(builder.gep(c[0], [ir.Constant(_I64, W * k)]), vt.as_pointer()) for k in range(vectors)]
             for c in chunks]
    first = [[builder.load(ptr, align=4) for ptr in row] for row in sptrs]
    initial = [count] + [c[5] for c in chunks] + [v for row in first for v in row]
    if cols is not None:  # each chunk's column just past the groups: the loop steps it down first
        toff, ncol = cols
        step = builder.urem(ir.Constant(_I64, W * vectors), ncol)
        initial += [builder.urem(builder.add(c[3], builder.mul(count, ir.Constant(_I64, W * vectors))), ncol)
                    for c in chunks]
    loop = Loop(builder, "groups", initial)
    g, pgs = loop.values[0], loop.values[1:1 + len(chunks)]
    phis = [loop.values[1 + len(chunks) + vectors * n:1 + len(chunks) + vectors * (n + 1)]
            for n in range(len(chunks))]  # the states stay in registers
    loop.enter(builder.icmp_signed(">", g, ir.Constant(_I64, 0)))
    gm = builder.sub(g, ir.Constant(_I64, 1))
    ats = [builder.add(c[3], builder.mul(gm, ir.Constant(_I64, W * vectors))) for c in chunks]
    at_col = []
    if cols is not None:
        at_col = [_column_step(builder, c, step, ncol, down=True)
                  for c in loop.values[1 + len(chunks) + vectors * len(chunks):]]
    pnext = list(pgs)
    updated = [list(row) for row in phis]
    entries = None
    if planes is not None:  # the table entries of the whole group from the byte planes in registers
        bt8 = ir.VectorType(ir.IntType(8), W)
        entries = []
        for n, c in enumerate(chunks):
            codes = []
            for k in range(vectors):
                src = builder.bitcast(builder.gep(c[2], [builder.add(ats[n], ir.Constant(_I64, W * k))]),
                                      xt.as_pointer())
                codes.append(builder.trunc(builder.and_(builder.sub(builder.zext(builder.load(src, align=1), vt), basev),
                                                        maskv), bt8))
            while len(codes) < 4:
                codes.append(ir.Constant(bt8, None))
            pair = ir.Constant(ir.VectorType(_I32, 32), list(range(32)))
            idx = builder.shuffle_vector(builder.shuffle_vector(codes[0], codes[1], pair),
                                         builder.shuffle_vector(codes[2], codes[3], pair),
                                         ir.Constant(ir.VectorType(_I32, 64), list(range(64))))
            got = [_lookup_bytes(builder, regs, idx) for regs in planes[n]]
            row = []
            for k in range(vectors):
                e = None
                for b in range(4):
                    part = builder.zext(builder.shuffle_vector(got[b], ir.Constant(got[b].type, ir.Undefined),
                                                               ir.Constant(vt, list(range(W * k, W * k + W)))), vt)
                    if b:
                        part = builder.shl(part, _splat(builder, ir.Constant(_I32, 8 * b)))
                    e = part if e is None else builder.or_(e, part)
                row.append(e)
            entries.append(row)
    for k in reversed(range(vectors)):
        for n, c in enumerate(chunks):
            if entries is not None:
                e = entries[n][k]
            else:
                src = builder.bitcast(builder.gep(c[2], [builder.add(ats[n], ir.Constant(_I64, W * k))]),
                                      xt.as_pointer())
                code = builder.and_(builder.sub(builder.zext(builder.load(src, align=1), vt), basev), maskv)
                if cols is not None:
                    code = builder.add(code, _column_offsets(builder, toff, at_col[n], k))
                e = _gather(builder, c[1], code, False)
            rest = builder.lshr(e, sixteen)  # 2**R - freq
            freq = builder.sub(onev, rest)
            state = updated[n][k]
            emit = builder.icmp_unsigned(">=", state, builder.shl(freq, boundshift))
            taken = builder.zext(builder.call(popcount, [builder.bitcast(emit, ir.IntType(W))]), _I64)
            above, pnext[n] = pnext[n], builder.sub(pnext[n], builder.add(taken, taken))
            _store_words(builder, c[4], above, pnext[n], state, emit)
            state = builder.select(emit, builder.lshr(state, sixteen), state)
            q = builder.fptoui(builder.fdiv(builder.fadd(builder.uitofp(state, dt), half), builder.uitofp(freq, dt)),
                               vt)
            updated[n][k] = builder.add(builder.add(state, builder.and_(e, low16)), builder.mul(q, rest))
    loop.repeat([gm] + pnext + [v for row in updated for v in row] + at_col)
    for row, values in zip(sptrs, phis):
        for ptr, state in zip(row, values):
            builder.store(state, ptr, align=4)
    return pgs


def _emit_dispatch(context, builder, count, chunks, sizes, vectors, base, mask, precision, xtype, cols=None):
    """``_emit_encode`` with the table entries from byte planes in registers when the masked codes
    index at most 256 entries and the CPU has AVX-512 VBMI (``sizes``: the tables' entry counts),
    else with gathers (always with ``cols``: the row-order column mode's several tables). Returns
    each chunk's word position after the loop."""
    if cols is not None or not vbmi() or len(chunks) * vectors < 2:  # one vector of 16 lanes: the gather is as fast
        return _emit_encode(context, builder, count, chunks, vectors, base, mask, precision, xtype, cols=cols)
    small = builder.icmp_unsigned("<", mask, ir.Constant(_I64, 256))
    with builder.if_else(small) as (then, otherwise):
        with then:
            planes = []
            for c, size in zip(chunks, sizes):
                valid = builder.add(mask, ir.Constant(_I64, 1))
                valid = builder.select(builder.icmp_signed("<", size, valid), size, valid)
                planes.append(_byte_planes(builder, c[1], valid))
            fast = _emit_encode(context, builder, count, chunks, vectors, base, mask, precision, xtype, planes)
            fast_block = builder.block
        with otherwise:
            slow = _emit_encode(context, builder, count, chunks, vectors, base, mask, precision, xtype)
            slow_block = builder.block
    ends = []
    for a, b in zip(fast, slow):
        phi = builder.phi(a.type)
        phi.add_incoming(a, fast_block)
        phi.add_incoming(b, slow_block)
        ends.append(phi)
    return ends


def _check_encode(states, tables, x, out, lanes, toff):
    """The vectors of 16 lanes ``lanes`` holds, or None if the arguments do not fit the encoder."""
    if not isinstance(lanes, types.IntegerLiteral):
        raise numba.core.errors.RequireLiteralValue("lanes must be a compile-time constant")
    if states.dtype != types.uint32 or any(t.dtype != types.uint32 for t in tables) \
            or x.dtype not in (types.uint8, types.uint16) or out.dtype != types.uint8 or x.layout != "C" \
            or lanes.literal_value % W:
        return None
    return _check_lanes(lanes, (states,), tables, toff)


@intrinsic
def encode_groups(typingctx, states, table, x, i, groups, base, mask, out, p, precision, lanes, toff, ncol):
    """Encode the ``groups`` groups of ``lanes`` symbols (a literal multiple of 16) at ``x[i:]``,
    last group first, with the states ``states[:lanes]`` (uint32, updated), writing their words
    below ``out[p]``; returns the new ``p``. ``table`` (uint32, per symbol): ``cum | (2**R - freq) << 16``.
    ``toff``: None, or the row-order column mode's table offsets (uint32, ``ans.row_offsets``, at
    least ``ncol + lanes - 1`` entries): the code ``c`` of symbol ``i`` takes ``table[toff[i % ncol] + c]``."""
    vectors = _check_encode(states, (table,), x, out, lanes, toff)
    if vectors is None:
        return None
    sig = types.int64(states, table, x, i, groups, base, mask, out, p, precision, lanes, toff, ncol)

    def codegen(context, builder, signature, args):
        sa, ta, xa, oa = (context.make_array(t)(context, builder, a)
                          for t, a in zip((states, table, x, out), (args[0], args[1], args[2], args[7])))
        (pg,) = _emit_dispatch(context, builder, args[4], [(sa.data, ta.data, xa.data, args[3], oa.data, args[8])],
                               [ta.nitems], vectors, args[5], args[6], args[9], context.get_data_type(x.dtype),
                               column_args(context, builder, toff, ncol, args[11:13]))
        return pg

    return sig, codegen


@intrinsic
def encode_groups_pair(typingctx, states, table_a, table_b, x, ia, ib, groups, base, mask, out, pos, precision, lanes,
                       toff, ncol):
    """``encode_groups`` on two chunks at once (their steps interleaved: two chains of gathers and
    divisions in flight): chunk a with the states ``states[:lanes]``, ``table_a``, the groups at
    ``x[ia:]`` and words below ``out[pos[0]]``; chunk b with ``states[lanes:2 lanes]``, ``table_b``,
    ``x[ib:]`` and ``out[pos[1]]``. ``groups`` groups of each; the new word positions are written
    to ``pos`` (int64[2]). The bytes of each chunk are those ``encode_groups`` writes; the caller
    guarantees the bounds of both (``toff``, ``ncol``: as there)."""
    vectors = _check_encode(states, (table_a, table_b), x, out, lanes, toff)
    if vectors is None or pos.dtype != types.int64:
        return None
    sig = types.none(states, table_a, table_b, x, ia, ib, groups, base, mask, out, pos, precision, lanes, toff, ncol)

    def codegen(context, builder, signature, args):
        sa, ta, tb, xa, oa, pa = (context.make_array(t)(context, builder, a) for t, a in zip(
            (states, table_a, table_b, x, out, pos), (args[0], args[1], args[2], args[3], args[9], args[10])))
        at = [builder.gep(pa.data, [ir.Constant(_I64, c)]) for c in (0, 1)]
        chunks = [(sa.data, ta.data, xa.data, args[4], oa.data, builder.load(at[0])),
                  (builder.gep(sa.data, [ir.Constant(_I64, lanes.literal_value)]), tb.data, xa.data, args[5], oa.data,
                   builder.load(at[1]))]
        ends = _emit_dispatch(context, builder, args[6], chunks, [ta.nitems, tb.nitems], vectors, args[7], args[8],
                              args[11], context.get_data_type(x.dtype),
                              column_args(context, builder, toff, ncol, args[13:15]))
        for ptr, value in zip(at, ends):
            builder.store(value, ptr)
        return context.get_dummy_value()

    return sig, codegen
