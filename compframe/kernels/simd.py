"""A vectorized rANS decoding loop for ``ans``'s lane mode, written as LLVM IR (a numba intrinsic).

numba's scalar code does not get vectorized here: LLVM cannot prove the state array and the
output free of aliasing with the table a gather reads, and its cost model rejects generic gathers
on AMD Zen. This intrinsic states the vector code directly: the states of 16 lanes are one
``<16 x i32>`` vector, kept in registers over a whole run of symbol groups (the interleaving of
Giesen, "Interleaved entropy coders", arXiv 1402.3392, with one word stream shared by all lanes).

Per group of ``lanes`` symbols and per vector of 16 lanes: ``slot = x & (2**R - 1)``; gather the
packed table entry ``e = (freq - 1) | (slot - cum) << S | symbol << 2S`` (``lane_entries``);
``x = (freq - 1) * (x >> R) + (x >> R) + (slot - cum)``; store the 16 symbols; then the lanes whose
state fell below ``2**16`` take the next 16-bit words of the shared word stream in lane order
(``llvm.masked.expandload``: one ``vpexpandw`` with AVX-512 VBMI2) and the word pointer moves by
their count; each lane's checksum takes its symbol (``ans.hash_lanes``'s step, in registers
too). Symbol groups and word order are those of ``ans.decode_lanes_tail``, which decodes
the same stream one lane at a time and is the reference (and the CUDA and tail code).
``decode_groups_pair`` runs the same steps on two chunks in one loop: the gathers are what a step
waits on, and two chunks' are independent.

On a CPU with AVX-512F the gather is ``vpgatherdd``/``vpgatherdq`` (LLVM's x86 intrinsics, not
subject to the cost model); elsewhere LLVM's generic masked gather, which it lowers to scalar loads.
The caller guarantees the bounds (the intrinsic checks nothing): ``groups * lanes`` symbols fit
``out`` from ``i``, the stream holds ``2 * groups * lanes`` bytes from ``p`` (a group reads at most
one word per lane), and the table has ``2**R`` entries (every slot is masked to ``R`` bits).
"""

from __future__ import annotations

import functools

import llvmlite.binding as llvm
import numba
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .targets import FNV_PRIME

W = 16
"""Lanes per vector (32-bit states in a 512-bit register)."""

_I1, _I16, _I32, _I64 = ir.IntType(1), ir.IntType(16), ir.IntType(32), ir.IntType(64)


@functools.cache
def target_features() -> frozenset[str]:
    """The CPU features numba compiles for: ``NUMBA_CPU_FEATURES`` where set (``NUMBA_CPU_NAME=generic``,
    used for caches shared between machines, sets none), else the host's."""
    from numba.core import config

    if config.CPU_FEATURES is not None:
        return frozenset(f[1:] for f in config.CPU_FEATURES.split(",") if f.startswith("+"))
    return frozenset(name for name, on in llvm.get_host_cpu_features().items() if on)


def avx512() -> bool:
    """True when numba compiles for a CPU with AVX-512F (hardware gathers of 16 x 32 bits); the x86
    gather intrinsics are emitted only then (LLVM cannot lower them for other targets)."""
    return "avx512f" in target_features()


def _splat(builder, value, n=W):
    vt = ir.VectorType(value.type, n)
    one = builder.insert_element(ir.Constant(vt, ir.Undefined), value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, ir.Constant(vt, ir.Undefined), ir.Constant(ir.VectorType(_I32, n), [0] * n))


def _function(module, name, ret, args):
    return module.globals.get(name) or ir.Function(module, ir.FunctionType(ret, args), name)


class Loop:
    """A loop in LLVM IR, built where ``builder`` stands: that block (the entry) branches to the
    block ``head``, whose phis ``values`` (one per value of ``initial``, which they take from the
    entry) carry the loop's state; ``head`` ends in ``enter``'s test, the blocks ``body``, ``inner``
    (one per name of ``inner``) and ``done`` follow it, in that order, and ``repeat`` closes the
    loop. Block names: ``name``, ``name.body``, ``name.<inner name>``, ``name.done``."""

    def __init__(self, builder, name, initial, inner=()):
        self.builder = builder
        entry = builder.block
        self.head = builder.append_basic_block(name)
        self.body = builder.append_basic_block(f"{name}.body")
        self.inner = [builder.append_basic_block(f"{name}.{part}") for part in inner]
        self.done = builder.append_basic_block(f"{name}.done")
        builder.branch(self.head)
        builder.position_at_end(self.head)
        self.values = [builder.phi(value.type) for value in initial]
        for phi, value in zip(self.values, initial):
            phi.add_incoming(value, entry)

    def enter(self, more):
        """End ``head``: on to ``body`` if the ``i1`` ``more`` is set, else to ``done``; the builder goes
        on in ``body``."""
        self.builder.cbranch(more, self.body, self.done)
        self.builder.position_at_end(self.body)

    def repeat(self, values):
        """End the block the builder is in with the branch back to ``head``, the phis ``values`` taking
        ``values`` (in order) from it; the builder goes on in ``done``."""
        for phi, value in zip(self.values, values):
            phi.add_incoming(value, self.builder.block)
        self.builder.branch(self.head)
        self.builder.position_at_end(self.done)


def _gather(builder, table, index, wide):
    """The table entries at ``index`` (``<16 x i32>``): ``<16 x i32>``, or ``<16 x i64>`` if ``wide``."""
    module = builder.module
    mask = ir.Constant(ir.VectorType(_I1, W), [1] * W)
    if not wide:
        vt = ir.VectorType(_I32, W)
        if avx512():
            fn = _function(module, "llvm.x86.avx512.mask.gather.dpi.512", vt,
                           [vt, _I32.as_pointer(), vt, mask.type, _I32])
            return builder.call(fn, [ir.Constant(vt, None), builder.bitcast(table, _I32.as_pointer()), index, mask,
                                     ir.Constant(_I32, 4)])
    elif avx512():  # two gathers of 8 x 64 bits, indices from each half
        vt, it, half = ir.VectorType(_I64, 8), ir.VectorType(_I32, 8), ir.Constant(ir.VectorType(_I1, 8), [1] * 8)
        fn = _function(module, "llvm.x86.avx512.mask.gather.dpq.512", vt, [vt, _I64.as_pointer(), it, half.type, _I32])
        base = builder.bitcast(table, _I64.as_pointer())
        parts = [builder.call(fn, [ir.Constant(vt, None), base,
                                   builder.shuffle_vector(index, ir.Constant(index.type, ir.Undefined),
                                                          ir.Constant(it, list(range(8 * h, 8 * h + 8)))),
                                   half, ir.Constant(_I32, 8)]) for h in range(2)]
        return builder.shuffle_vector(parts[0], parts[1], ir.Constant(ir.VectorType(_I32, W), list(range(W))))
    entry = _I64 if wide else _I32
    vt = ir.VectorType(entry, W)
    addr = builder.add(_splat(builder, builder.ptrtoint(table, _I64)),
                       builder.mul(builder.zext(index, ir.VectorType(_I64, W)),
                                   _splat(builder, ir.Constant(_I64, entry.width // 8))))
    pt = ir.VectorType(entry.as_pointer(), W)
    fn = _function(module, f"llvm.masked.gather.v{W}i{entry.width}.v{W}p0", vt, [pt, _I32, mask.type, vt])
    return builder.call(fn, [builder.inttoptr(addr, pt), ir.Constant(_I32, entry.width // 8), mask,
                             ir.Constant(vt, ir.Undefined)])


def _column_step(builder, col, step, ncol, down=False):
    """The column ``lanes`` symbols after (``down``: before) column ``col`` of ``ncol`` (i64 values;
    ``step = lanes % ncol``): one add and a select, no division in the loop."""
    if down:
        c = builder.sub(col, step)
        return builder.select(builder.icmp_signed("<", c, ir.Constant(_I64, 0)), builder.add(c, ncol), c)
    c = builder.add(col, step)
    return builder.select(builder.icmp_signed(">=", c, ncol), builder.sub(c, ncol), c)


def _column_offsets(builder, toff, col, k):
    """The 16 table offsets ``toff[col + 16 k:][:16]`` (``<16 x i32>``) of the row-order column mode:
    the tables of 16 consecutive symbols whose first is in column ``col`` (``toff`` repeats its
    first ``lanes`` entries past ``ncol``, so that no vector wraps)."""
    at = builder.gep(toff, [builder.add(col, ir.Constant(_I64, W * k))])
    return builder.load(builder.bitcast(at, ir.VectorType(_I32, W).as_pointer()), align=4)


def _emit_groups(context, builder, count, chunks, wide, vectors, r64, s64, out_type, cols=None):
    """The loop of ``count`` groups of ``16 * vectors`` symbols over each chunk of ``chunks``, a list
    of (states ``i32*``, checksums ``i32*``, table pointer, output pointer, first symbol, word bytes
    ``i8*``, first word): the chunks' steps in one loop body, so that their gathers overlap.
    ``cols``: None (a table per chunk), or (offsets ``i32*``, ``ncol`` i64) of the row-order column
    mode, the table of each symbol at ``offsets[symbol index % ncol]`` (``ans.row_offsets``).
    Returns each chunk's word position after the loop."""
    vt, mt, wt = ir.VectorType(_I32, W), ir.VectorType(_I1, W), ir.VectorType(_I16, W)
    st = ir.VectorType(out_type, W)
    r = builder.trunc(r64, _I32)
    narrow = (lambda v: builder.trunc(v, vt)) if wide else (lambda v: v)
    rv = _splat(builder, r)
    sv = _splat(builder, s64 if wide else builder.trunc(s64, _I32))
    ssv = builder.add(sv, sv)
    mv = _splat(builder, builder.sub(builder.shl(ir.Constant(_I32, 1), r), ir.Constant(_I32, 1)))
    low_bound, sixteen = _splat(builder, ir.Constant(_I32, 1 << 16)), _splat(builder, ir.Constant(_I32, 16))
    expand = _function(builder.module, f"llvm.masked.expandload.v{W}i16", wt, [_I16.as_pointer(), mt, wt])
    popcount = _function(builder.module, f"llvm.ctpop.i{W}", ir.IntType(W), [ir.IntType(W)])
    prime, thirteen = _splat(builder, ir.Constant(_I32, FNV_PRIME)), _splat(builder, ir.Constant(_I32, 13))
    ptrs = [[builder.bitcast(builder.gep(base, [ir.Constant(_I64, W * k)]), vt.as_pointer())
             for base in (chunk[0], chunk[1]) for k in range(vectors)] for chunk in chunks]
    first = [[builder.load(ptr, align=4) for ptr in row] for row in ptrs]
    width = 1 + 2 * vectors  # per chunk: its word position, states, checksums (in registers)
    initial = [ir.Constant(_I64, 0)] + [v for chunk, row in zip(chunks, first) for v in [chunk[6]] + row]
    if cols is not None:  # each chunk's column of its next group's first symbol
        toff, ncol = cols
        step = builder.urem(ir.Constant(_I64, W * vectors), ncol)
        initial += [builder.urem(chunk[4], ncol) for chunk in chunks]
    loop = Loop(builder, "groups", initial)
    g = loop.values[0]
    pgs = loop.values[1:1 + width * len(chunks):width]
    states = [loop.values[2 + width * n:1 + width * (n + 1)] for n in range(len(chunks))]
    at_col = loop.values[1 + width * len(chunks):]
    loop.enter(builder.icmp_signed("<", g, count))

    def index(n, k, state):
        slot = builder.and_(state, mv)
        return slot if cols is None else builder.add(slot, _column_offsets(builder, toff, at_col[n], k))

    entries = [[_gather(builder, chunk[2], index(n, k, state), wide) for k, state in enumerate(phis[:vectors])]
               for n, (chunk, phis) in enumerate(zip(chunks, states))]  # every gather first
    following = []
    for chunk, pg, phis, gathered in zip(chunks, pgs, states, entries):
        at = builder.add(chunk[4], builder.mul(g, ir.Constant(_I64, W * vectors)))
        pnext, updated, hashed = pg, [], []
        for k, (state, e) in enumerate(zip(phis[:vectors], gathered)):
            f1 = builder.and_(narrow(e), mv)
            bias = builder.and_(narrow(builder.lshr(e, sv)), mv)
            h = builder.lshr(state, rv)
            state = builder.add(builder.mul(f1, h), builder.add(h, bias))
            target = builder.gep(chunk[3], [builder.add(at, ir.Constant(_I64, W * k))])
            symbol = narrow(builder.lshr(e, ssv))
            builder.store(builder.trunc(symbol, st), builder.bitcast(target, st.as_pointer()), align=1)
            digest = builder.mul(builder.xor(phis[vectors + k], symbol), prime)
            hashed.append(builder.xor(digest, builder.lshr(digest, thirteen)))
            low = builder.icmp_unsigned("<", state, low_bound)
            words = builder.call(expand, [builder.bitcast(builder.gep(chunk[5], [pnext]), _I16.as_pointer()), low,
                                          ir.Constant(wt, None)])
            updated.append(builder.select(low, builder.or_(builder.shl(state, sixteen), builder.zext(words, vt)), state))
            taken = builder.zext(builder.call(popcount, [builder.bitcast(low, ir.IntType(W))]), _I64)
            pnext = builder.add(pnext, builder.add(taken, taken))
        following += [pnext] + updated + hashed
    if cols is not None:
        following += [_column_step(builder, c, step, ncol) for c in at_col]
    loop.repeat([builder.add(g, ir.Constant(_I64, 1))] + following)
    for row, phis in zip(ptrs, states):
        for ptr, state in zip(row, phis):
            builder.store(state, ptr, align=4)
    return pgs


def _check_lanes(lanes, arrays, tables, toff=None):
    """The vector width ``lanes`` holds (a literal multiple of 16), or None if the arguments do not
    fit (``toff``: None, or a C-contiguous uint32 array)."""
    if not isinstance(lanes, types.IntegerLiteral):
        raise numba.core.errors.RequireLiteralValue("lanes must be a compile-time constant")
    if any(a.dtype != types.uint32 for a in arrays) or len({t.dtype for t in tables}) != 1 \
            or tables[0].dtype not in (types.uint32, types.uint64) or lanes.literal_value % W:
        return None
    if not (toff is None or isinstance(toff, types.NoneType)
            or (isinstance(toff, types.Array) and toff.dtype == types.uint32 and toff.layout == "C")):
        return None
    return lanes.literal_value // W


def column_args(context, builder, toff, ncol, args):
    """The ``cols`` of ``_emit_groups`` from an intrinsic's ``toff`` and ``ncol`` types and their
    values ``args``: None where ``toff`` is None."""
    if toff is None or isinstance(toff, types.NoneType):
        return None
    return context.make_array(toff)(context, builder, args[0]).data, context.cast(builder, args[1], ncol, types.int64)


@intrinsic
def decode_groups(typingctx, x, hashes, table, out, i, groups, data, p, precision, shift, lanes, toff, ncol):
    """Decode ``groups`` groups of ``lanes`` symbols (a literal multiple of 16) into ``out[i:]`` from
    the words at ``data[p:]``, updating the states ``x[:lanes]`` and the lanes' checksums
    ``hashes[:lanes]`` (uint32, ``ans.hash_lanes``'s step); returns the new ``p``. ``table`` holds
    uint32 or uint64 entries ``(freq - 1) | (slot - cum) << shift | sym << 2 shift``. ``toff``:
    None, or the row-order column mode's table offsets (uint32, ``ans.row_offsets``, at least
    ``ncol + lanes - 1`` entries): symbol ``i`` looks up ``table[toff[i % ncol] + slot]``."""
    vectors = _check_lanes(lanes, (x, hashes), (table,), toff)
    if vectors is None:
        return None
    sig = types.int64(x, hashes, table, out, i, groups, data, p, precision, shift, lanes, toff, ncol)

    def codegen(context, builder, signature, args):
        xa, ha, ta, oa, da = (context.make_array(t)(context, builder, a)
                              for t, a in zip((x, hashes, table, out, data), (args[0], args[1], args[2], args[3], args[6])))
        chunk = (xa.data, ha.data, ta.data, oa.data, args[4], da.data, args[7])
        (pg,) = _emit_groups(context, builder, args[5], [chunk], table.dtype == types.uint64, vectors, args[8], args[9],
                             context.get_data_type(out.dtype), column_args(context, builder, toff, ncol, args[11:13]))
        return pg

    return sig, codegen


@intrinsic
def decode_groups_pair(typingctx, x, hashes, table_a, table_b, out, ia, ib, groups, data, pos, precision, shift, lanes,
                       toff, ncol):
    """``decode_groups`` on two chunks at once (their steps interleaved: twice the independent
    gathers in flight): chunk a with the states ``x[:lanes]``, checksums ``hashes[:lanes]``,
    ``table_a``, symbols to ``out[ia:]`` and words from ``data[pos[0]:]``; chunk b with
    ``x[lanes:2 lanes]``, ``hashes[lanes:2 lanes]``, ``table_b``, ``out[ib:]`` and ``data[pos[1]:]``.
    ``groups`` groups of each; the new word positions are written to ``pos`` (int64[2]). The
    caller guarantees the bounds of both, as for ``decode_groups`` (``toff``, ``ncol``: as there)."""
    vectors = _check_lanes(lanes, (x, hashes), (table_a, table_b), toff)
    if vectors is None or pos.dtype != types.int64:
        return None
    sig = types.none(x, hashes, table_a, table_b, out, ia, ib, groups, data, pos, precision, shift, lanes, toff, ncol)

    def codegen(context, builder, signature, args):
        xa, ha, ta, tb, oa, da, pa = (context.make_array(t)(context, builder, a) for t, a in zip(
            (x, hashes, table_a, table_b, out, data, pos), (args[0], args[1], args[2], args[3], args[4], args[8], args[9])))
        half = ir.Constant(_I64, lanes.literal_value)
        at = [builder.gep(pa.data, [ir.Constant(_I64, c)]) for c in (0, 1)]
        chunks = [(xa.data, ha.data, ta.data, oa.data, args[5], da.data, builder.load(at[0])),
                  (builder.gep(xa.data, [half]), builder.gep(ha.data, [half]), tb.data, oa.data, args[6], da.data,
                   builder.load(at[1]))]
        ends = _emit_groups(context, builder, args[7], chunks, table_a.dtype == types.uint64, vectors, args[10],
                            args[11], context.get_data_type(out.dtype),
                            column_args(context, builder, toff, ncol, args[13:15]))
        for ptr, value in zip(at, ends):
            builder.store(value, ptr)
        return context.get_dummy_value()

    return sig, codegen
