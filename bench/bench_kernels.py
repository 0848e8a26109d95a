"""Kernel-level timings behind the `huffman` decode figures (run by hand; one thread, best of N).

    python bench/bench_kernels.py --checksums        # µs per 16 chunks x 8192 values: 8 fnv.record_pair calls vs one fnv.record_group
    python bench/bench_kernels.py --huffman-decode   # MiniLM 4096 x 384, huffman context=none: whole Encoder.decode,
                                                     # the decode kernel alone (simd_huffman.decode_cpu) and its checksums alone
    python bench/bench_kernels.py --interp-decode    # the same for interp's int16 prediction codes of grf2d k^-4 2048 x 2048
                                                     # (bench_lorenzo's field) at rel 1e-2, 1e-3, 1e-4, huffman defaults
    python bench/bench_kernels.py --huffman-chunks   # the same for pooled 2048 x 64 and MiniLM 4096 x 384 int8/int16, huffman
                                                     # context=none in one chunk (the lone-chunk path) and in 24576-symbol chunks
    python bench/bench_kernels.py --huffman-widths   # pooled 2048 x 64 and MiniLM 4096 x 384 int8/int16, context=none: the
                                                     # decode kernel and the symbols per look-up for direct tables of 11-16 bits
    python bench/bench_kernels.py --encode-lanes     # ans's vector encode kernel alone (simd_encode.encode_groups, one chunk
                                                     # of 16/32/64 lanes; encode_groups_pair, two of 16/32) on 4096 x 384
                                                     # uint8 symbols, geometric p=0.05 over 256 symbols (mask 255) and 16
                                                     # (mask 15), R = 12: ns per symbol
    python bench/bench_kernels.py --chunk-counts     # pooled 2048 x 64 int8/int16 codes cut to 16 chunks of 8192 and
                                                     # to 15.4 (81 rows less), 15, 14, 12, 11 and 8 chunks: huffman and
                                                     # ans (context=none, dedup off) encode and decode, us; then that
                                                     # field four times over cut to 32-64 chunks, huffman, 1 and 2 threads
    python bench/bench_kernels.py --field-sizes      # ans and huffman (context=none, dedup off) on the pooled lookups eight
                                                     # times over (16384 x 64) cut to 512-16384 rows, 1 and 2 threads:
                                                     # ns per row of 64 codes, encode / decode
    python bench/bench_kernels.py --repeated-rows    # pooled 2048 x 64 and MiniLM 4096 x 384 int8/int16: dedup's search for
                                                     # repeated rows alone (rows.first_copies), and whole default huffman
                                                     # and ans encodes with dedup on (the default) and off
    python bench/bench_kernels.py --pair-mode        # ans (default, dedup off) on sparse int16 codes in the pair mode,
                                                     # 200 000-900 000 codes, 1 and 2 threads: encode / decode us
    python bench/bench_kernels.py --huffman-encode   # huffman context=none encodes of pooled 2048 x 64 and MiniLM 4096 x 384,
                                                     # 1 and 2 threads (the encoder without AVX-512: NUMBA_CPU_NAME=haswell
                                                     # NUMBA_CPU_FEATURES=+avx2,+avx,+fma,+bmi,+bmi2,+sse4.2,+sse4.1,...)

docs/benchmarks.md ("`huffman` decode: one-reader runs and 16 chunks at once") quotes both; run
them against another tree with ``PYTHONPATH=<tree>`` to compare.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compframe.kernels.simd_encode import encode_groups as simd_encode_groups  # noqa: E402
from compframe.kernels.simd_encode import encode_groups_pair as simd_encode_pair  # noqa: E402


def best_ms(f, n: int) -> float:
    f()
    b = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        f()
        b = min(b, time.perf_counter() - t)
    return b * 1e3


def checksums(repeat: int) -> None:
    from compframe.kernels import fnv

    rng = np.random.default_rng(0)
    n, k = 8192, 16
    for dt in (np.uint8, np.uint16):
        x = rng.integers(0, 200, n * k + 64).astype(dt)
        starts = np.arange(k, dtype=np.int64) * n
        ends, sums = starts + n, np.zeros(k, np.int64)

        def pairs():
            for a in range(0, k, 2):
                fnv.record_pair(x, starts, ends, a, a + 1, 0, sums)

        for name, f in (("8 x record_pair", pairs), ("record_group", lambda: fnv.record_group(x, starts, ends, 0, 0, sums))):
            ms = best_ms(f, repeat)
            print(f"{np.dtype(dt).name} {name}: {ms * 1e3:.1f} us per {n * k} values ({ms * 1e6 / (n * k):.3f} ns/value)")
        # class tables' chunks (a class's columns of 2048 rows, cut at 8192 codes), as huffman's decoder orders
        # them (simd_huffman.longest_first): in pairs, as until the fourteenth session, or 16 at a time
        # the column-scaled pooled field's int8 and int16 class-table layouts (bench_decode_calls --column-scales)
        for layout in ([8192] * 10 + [6144] * 6 + [4096] + [2048] * 4,
                       [8192] * 13 + [6144] * 2 + [4096] * 2 + [2048] * 2):
            lengths = np.array(layout, np.int64)
            cs, ce = np.cumsum(lengths) - lengths, np.cumsum(lengths)
            order, csums = np.argsort(-lengths, kind="stable"), np.zeros(lengths.size, np.int64)

            def class_pairs():
                for at in range(0, order.size, 2):
                    fnv.record_pair(x, cs, ce, order[at], order[at + 1] if at + 1 < order.size else order.size, 0,
                                    csums)

            def class_groups():
                fnv.record_chunks(x, cs, ce, order[:16], 0, csums)
                for at in range(16, order.size, 2):
                    fnv.record_pair(x, cs, ce, order[at], order[at + 1] if at + 1 < order.size else order.size, 0,
                                    csums)

            for name, f in (("class chunks in pairs", class_pairs), ("class chunks, record_chunks", class_groups)):
                ms = best_ms(f, repeat)
                print(f"{np.dtype(dt).name} {name}: {ms * 1e3:.1f} us per {int(ce[-1])} values in {lengths.size} "
                      "chunks of 2048-8192")
        # a thread's run of consecutive chunks (ans's pair mode, huffman's encoder without AVX-512): fnv.record_run
        for runs in (2, 4, 8, 16):
            rs = np.arange(runs, dtype=np.int64) * (n * k // runs)
            re, rsums, flags = rs + n * k // runs, np.zeros(runs, np.int64), np.zeros(runs, np.int64)
            ms = best_ms(lambda: fnv.record_run(x, rs, re, 0, runs, flags, rsums), repeat)
            print(f"{np.dtype(dt).name} record_run of {runs} chunks: {ms * 1e3:.1f} us per {n * k} values")


def minilm_codes():
    """``(label, codes, encoder)``: MiniLM 4096 x 384 int8 rel 1e-2 and int16 rel 1e-3, ``context=none``."""
    import bench_encoders as B

    from compframe import registry

    x = B.minilm_table()[:4096]
    for dt, eb in (("int8", 0.01), ("int16", 0.001)):
        yield dt, B.quantize(x, eb, dt)[0], registry.create("encoder", "huffman", context="none")


def lookup_fields():
    """``(name, floats)``: the pooled 2048 x 64 lookups (bench_encoders' second field) and MiniLM's first
    4096 rows (if installed)."""
    import bench_encoders as B

    table = B.minilm_table()
    return [("pooled 2048x64", B.pooled_lookups(2)[1][1])] + \
        ([("MiniLM 4096x384", np.ascontiguousarray(table[:4096]))] if table is not None else [])


def chunked_codes():
    """``(label, codes, encoder)``: pooled 2048 x 64 and MiniLM 4096 x 384 (if installed), int8 rel 1e-2
    and int16 rel 1e-3, ``huffman`` ``context=none`` with the whole field as one chunk and with
    24576-symbol chunks (6 chunks: pairs; 64 chunks: groups of 16)."""
    import bench_encoders as B

    from compframe import registry

    for name, x in lookup_fields():
        for dt, eb in (("int8", 0.01), ("int16", 0.001)):
            codes = B.quantize(x, eb, dt)[0]
            for chunk in (codes.size, 24576):
                yield f"{name} {dt}", codes, registry.create("encoder", "huffman", context="none", chunk=chunk)


def interp_codes():
    """``(label, codes, encoder)``: interp's int16 codes of bench_lorenzo's grf2d k^-4 2048 x 2048
    field at rel 1e-2, 1e-3, 1e-4, ``huffman`` with its defaults (as ``encoder=chain``'s first stage)."""
    import bench_lorenzo as L

    from compframe import registry
    from compframe.base import ErrorBound

    x = L.gaussian_field((2048, 2048), 4.0, 0)
    for rel in (1e-2, 1e-3, 1e-4):
        codes = registry.create("quantizer", "interp").quantize(x, ErrorBound("rel", rel)).codes["codes"]
        yield f"interp rel {rel:g}, {np.mean(codes == 0):.1%} zeros", codes, registry.create("encoder", "huffman")


def decode_arguments(e, blob) -> tuple:
    """The arguments of the ``simd_huffman.decode_cpu`` call that ``e.decode(blob)`` makes."""
    from compframe.kernels import huffman, simd_huffman

    # huffman keeps the kernel it looked up (functools.cache, not in older trees): cleared around the capture
    forget = getattr(getattr(huffman, "_cpu_decoder", None), "cache_clear", lambda: None)
    captured, kernel = [], simd_huffman.decode_cpu
    simd_huffman.decode_cpu = lambda *a: captured.append(a) or kernel(*a)
    forget()
    try:
        e.decode(blob)
    finally:
        simd_huffman.decode_cpu = kernel
        forget()
    return captured[0]


def huffman_decode(repeat: int, cases) -> None:
    from compframe.kernels import fnv, simd_huffman

    kernel = simd_huffman.decode_cpu
    for dt, codes, e in cases:
        blob = e.encode(codes)
        args = decode_arguments(e, blob)
        out, starts, ends, sums = args[2], args[3], args[4], args[11]

        def checks():
            for a in range(0, starts.size - starts.size % 16, 16):
                fnv.record_group(out, starts, ends, a, 0, sums)

        whole, alone, sums_ms = best_ms(lambda: e.decode(blob), repeat), best_ms(lambda: kernel(*args), repeat), \
            best_ms(checks, repeat)
        assert np.array_equal(e.decode(blob), codes)
        ns = 1e6 / codes.size
        print(f"{dt}: {starts.size} chunks, {8 * len(blob) / codes.size:.2f} bits/code; decode {whole:.3f} ms ({codes.nbytes / whole / 1e3:.0f} MB/s of codes), "
              f"kernel {alone:.3f} ms ({alone * ns:.3f} ns/symbol), checksums {sums_ms:.3f} ms ({sums_ms * ns:.3f} ns/symbol)")


@numba.njit(cache=True)
def symbols_per_lookup(data, offsets, starts, ends, fast, limit, max_len, fast_bits):
    """Symbols per direct look-up of one bit reader walking every chunk as the decoders' run loop
    does (``fast``'s first table, of ``fast_bits`` bits; a code longer than the table counts as one
    look-up)."""
    hb = min(48, 8 * fast.itemsize - 8)
    lookups, symbols = 0, 0
    for c in range(starts.size):
        acc, nbits, p, i = 0, 0, offsets[c], starts[c]
        while i < ends[c] - 8 and p + 4 <= offsets[c + 1]:
            if nbits < 24:
                word = (np.int64(data[p]) << 24) | (np.int64(data[p + 1]) << 16) | (np.int64(data[p + 2]) << 8) \
                    | np.int64(data[p + 3])
                acc, p, nbits = ((acc << 32) | word) & ((1 << 56) - 1), p + 4, nbits + 32
            e = np.int64(fast[0, (acc >> (nbits - fast_bits)) & ((1 << fast_bits) - 1)])
            held, used = (e >> hb) & 7, e >> (hb + 3)
            if held == 0:  # the canonical limits, from the length the entry names
                v = (acc >> (nbits - max_len)) & ((1 << max_len) - 1)
                while used <= max_len and v >= limit[0, used]:
                    used += 1
                held = 1
            lookups, symbols, i, nbits = lookups + 1, symbols + held, i + held, nbits - used
    return symbols / max(lookups, 1)


def huffman_widths(repeat: int) -> None:
    """The decode kernel on the captured arguments of a ``context=none`` decode with direct tables of
    11-16 bits (uint32 and int64 entries for 8-bit codes), alternated round by round."""
    import bench_encoders as B

    from compframe import registry
    from compframe.kernels import huffman, simd_huffman
    from compframe.plugins.encoders import entropy

    kernel = simd_huffman.decode_cpu
    x = B.pooled_lookups(2)[1][1]
    pooled = [(f"pooled 2048x64 {dt}", B.quantize(x, eb, dt)[0]) for dt, eb in (("int8", 0.01), ("int16", 0.001))]
    for label, codes in pooled + [(f"MiniLM 4096x384 {dt}", c) for dt, c, _ in minilm_codes()]:
        e = registry.create("encoder", "huffman", context="none", dedup=False)
        blob = e.encode(codes)
        entropy._DECODERS._items.clear()
        args, mask = list(decode_arguments(e, blob)), (1 << (8 * codes.itemsize)) - 1
        (model,) = entropy._DECODERS._items.values()
        variants = {}
        for bits in range(11, 17):
            for entry in (np.uint32, np.int64) if mask == 0xFF else (np.int64,):
                fast = np.empty((1, 1 << bits), entry)
                _, limit, first_index, syms = huffman.decoder_tables(model.values, args[10], int(codes.min()) & mask,
                                                                     mask, fast)
                a = args[:2] + [np.empty_like(args[2])] + args[3:6] + [fast, limit, first_index, syms] + args[10:]
                kernel(*a)
                assert np.array_equal(a[2], codes.reshape(-1).view(a[2].dtype))
                variants[bits, np.dtype(entry).name] = a
        best = {k: float("inf") for k in variants}
        for _ in range(max(1, repeat // 10)):
            for k, a in variants.items():
                best[k] = min(best[k], best_ms(lambda: kernel(*a), 10))
        for (bits, entry), a in variants.items():
            per = symbols_per_lookup(a[0], a[1], a[3], a[4], a[6], a[7], a[10], bits)
            print(f"{label}: {bits} bits, {entry} entries: kernel {best[bits, entry]:.3f} ms "
                  f"({best[bits, entry] * 1e6 / codes.size:.3f} ns/symbol), {per:.2f} symbols per look-up")


@numba.njit
def _encode_single(st, table, x, groups, mask, out, precision, lanes, reps):
    p = 0
    for _ in range(reps):
        if lanes == 16:
            p = simd_encode_groups(st, table, x, 0, groups, 0, mask, out, out.size, precision, 16, None, 1)
        elif lanes == 32:
            p = simd_encode_groups(st, table, x, 0, groups, 0, mask, out, out.size, precision, 32, None, 1)
        else:
            p = simd_encode_groups(st, table, x, 0, groups, 0, mask, out, out.size, precision, 64, None, 1)
    return p


@numba.njit
def _encode_pair(st, table, x, half, groups, mask, out, pos, precision, lanes, reps):
    for _ in range(reps):
        pos[0], pos[1] = out.size // 2, out.size
        if lanes == 16:
            simd_encode_pair(st, table, table, x, 0, half, groups, 0, mask, out, pos, precision, 16, None, 1)
        else:
            simd_encode_pair(st, table, table, x, 0, half, groups, 0, mask, out, pos, precision, 32, None, 1)


def encode_lanes(repeat: int) -> None:
    """The lane encoder's kernel alone: ns per symbol, best of ``repeat`` runs of 5 calls."""
    from compframe.kernels import ans
    from compframe.plugins.encoders.entropy import quantize_frequencies

    precision = 12
    rng = np.random.default_rng(0)
    for symbols, mask in ((256, 255), (16, 15)):
        x = (rng.geometric(0.05, 4096 * 384).clip(1, symbols) - 1).astype(np.uint8)
        freq = np.maximum(quantize_frequencies(np.bincount(x, minlength=symbols), precision), 1).reshape(1, -1)
        table = ans.encoder_tables(freq, np.cumsum(freq, axis=1) - freq, precision)[1].astype(np.uint32)[0]
        out = np.zeros(2 * x.size + 4096, np.uint8)
        times = {}
        for lanes in (16, 32, 64):
            st = np.full(lanes, 1 << 16, np.uint32)
            args = (st, table, x, x.size // lanes, mask, out, precision, lanes)
            _encode_single(*args, 1)
            times[f"one chunk, {lanes} lanes"] = best_ms(lambda: _encode_single(*args, 5), repeat) / 5
        half = x.size // 2
        for lanes in (16, 32):
            st, pos = np.full(2 * lanes, 1 << 16, np.uint32), np.zeros(2, np.int64)
            args = (st, table, x, half, half // lanes, mask, out, pos, precision, lanes)
            _encode_pair(*args, 1)
            times[f"two chunks, {lanes} lanes each"] = best_ms(lambda: _encode_pair(*args, 5), repeat) / 5
        print(f"{symbols} symbols (mask {mask}), R = {precision}: "
              + ", ".join(f"{k} {v * 1e6 / x.size:.3f} ns/symbol" for k, v in times.items()))


CHUNK_COUNTS = (131072, 125888, 122880, 114688, 98304, 90112, 65536)
"""Codes of ``chunk_counts``' fields: 16 chunks of 8192, then 2048 x 64 less 81 rows (what ``dedup``
keeps of bench_encoders' pooled lookups), 15, 14, 12, 11 and 8 chunks."""


def _codes_by_coder(x, coders):
    """``(coder, code type, encoder, flat codes)``: each of ``coders`` (``context=none``, ``dedup`` off)
    with ``x``'s int8 codes at rel 1e-2 and int16 codes at rel 1e-3."""
    import bench_encoders as B

    from compframe import registry

    for pid in coders:
        enc = registry.create("encoder", pid, context="none", dedup=False)
        for dt, eb in (("int8", 0.01), ("int16", 0.001)):
            yield pid, dt, enc, B.quantize(x, eb, dt)[0].reshape(-1)


def _round_trip_us(enc, codes, repeat: int) -> str:
    """``"encode / decode"`` in us (best of ``repeat``) of ``codes`` as rows of 64, the round trip checked."""
    field = np.ascontiguousarray(codes).reshape(-1, 64)
    blob = enc.encode(field)
    assert np.array_equal(np.asarray(enc.decode(blob)).reshape(-1), field.reshape(-1))
    return f"{best_ms(lambda: enc.encode(field), repeat) * 1e3:.0f} / {best_ms(lambda: enc.decode(blob), repeat) * 1e3:.0f}"


def chunk_counts(repeat: int) -> None:
    """``huffman`` and ``ans`` (``context=none``, ``dedup`` off) encode and decode times (us, best of
    ``repeat``) of the first ``CHUNK_COUNTS`` codes of the pooled 2048 x 64 field, int8 rel 1e-2 and
    int16 rel 1e-3, as rows of 64 codes: how the vector loops fare with fewer than 16 chunks or a
    short last one."""
    import bench_encoders as B

    from compframe import registry

    x = B.pooled_lookups(2)[1][1]
    for pid, dt, enc, codes in _codes_by_coder(x, ("huffman", "ans")):
        cells = [f"{n} codes {_round_trip_us(enc, codes[:n], repeat)}" for n in CHUNK_COUNTS]
        print(f"{pid} {dt} encode / decode us: " + ", ".join(cells))
    # 32-64 chunks (the pooled field four times over, 8192 x 64), huffman, one and two threads
    x4 = np.concatenate([x] * 4)
    enc = registry.create("encoder", "huffman", context="none", dedup=False)
    for threads in (1, 2):
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        for dt, eb in (("int8", 0.01), ("int16", 0.001)):
            codes = B.quantize(x4, eb, dt)[0].reshape(-1)
            cells = []
            for chunks in (32, 33, 36, 40, 47, 56, 64):
                cells.append(f"{chunks} chunks {_round_trip_us(enc, codes[:chunks * 8192], repeat)}")
            print(f"huffman {dt}, {numba.get_num_threads()} thread(s), encode / decode us: " + ", ".join(cells))
    numba.set_num_threads(1)


FIELD_ROWS = (512, 1000, 2000, 2048, 2100, 3000, 4096, 5000, 8192, 9000, 12000, 16384)
"""Rows of 64 codes ``field_sizes`` cuts the field to: multiples of 2048 (131 072 codes, ``ans``'s chunk)
and rows beside them."""


def field_sizes(repeat: int) -> None:
    """``ans`` and ``huffman`` (``context=none``, ``dedup`` off) encode and decode of the pooled lookups
    eight times over (16384 x 64), int8 rel 1e-2 and int16 rel 1e-3, cut to ``FIELD_ROWS`` rows, on
    one thread and two: ns per row of 64 codes (best of ``repeat``), to show where a field's size,
    not its content, sets the speed."""
    import bench_encoders as B

    x8 = np.concatenate([B.pooled_lookups(2)[1][1]] * 8)
    for threads in (1, 2):
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        for pid, dt, enc, codes in _codes_by_coder(x8, ("ans", "huffman")):
            cells = []
            for rows in FIELD_ROWS:
                field = np.ascontiguousarray(codes[:rows * 64]).reshape(rows, 64)
                blob = enc.encode(field)
                e, d = best_ms(lambda: enc.encode(field), repeat), best_ms(lambda: enc.decode(blob), repeat)
                cells.append(f"{rows}: {e * 1e6 / rows:.0f} / {d * 1e6 / rows:.0f}")
            print(f"{pid} {dt}, {numba.get_num_threads()} thread(s), ns per row, encode / decode: " + ", ".join(cells))
    numba.set_num_threads(1)


PAIR_MODE_CODES = (200_000, 600_000, 900_000)
"""Sizes of the sparse int16 fields ``pair_mode`` codes (2, 8 and 8 chunks of the pair mode)."""


def pair_mode(repeat: int) -> None:
    """``ans`` (the default, ``dedup`` off) encode and decode of sparse int16 codes (97 % zeros, the rest
    uniform in -3..3: about 0.24 bits a code, so the pair mode) of ``PAIR_MODE_CODES`` codes, on one
    thread and two: us, best of ``repeat``."""
    from compframe import registry

    rng = np.random.default_rng(1)
    enc = registry.create("encoder", "ans", dedup=False)
    fields = [np.where(rng.random(n) < 0.97, 0, rng.integers(-3, 4, n)).astype(np.int16) for n in PAIR_MODE_CODES]
    for threads in (1, 2):
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        cells = []
        for codes in fields:
            blob = enc.encode(codes)
            assert np.array_equal(enc.decode(blob), codes)
            cells.append(f"{codes.size} codes {best_ms(lambda: enc.encode(codes), repeat) * 1e3:.0f} / "
                         f"{best_ms(lambda: enc.decode(blob), repeat) * 1e3:.0f}")
        print(f"ans pair mode, {numba.get_num_threads()} thread(s), encode / decode us: " + ", ".join(cells))
    numba.set_num_threads(1)


def huffman_encode(repeat: int) -> None:
    """``huffman`` encodes (``context=none``, ``dedup`` off) of ``lookup_fields``, int8 rel 1e-2 and int16
    rel 1e-3, on one thread and two: us, best of ``repeat``; and which encoder ran (the vector one
    needs AVX-512F: run with ``NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES=+avx2,...`` for the other)."""
    import bench_encoders as B

    from compframe import registry
    from compframe.kernels import huffman

    kind = "16 chunks at once (AVX-512)" if huffman._cpu_encoder() is not None else "one chunk at a time"
    enc = registry.create("encoder", "huffman", context="none", dedup=False)
    for threads in (1, 2):
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        for name, x in lookup_fields():
            for dt, eb in (("int8", 0.01), ("int16", 0.001)):
                codes = B.quantize(x, eb, dt)[0]
                assert np.array_equal(enc.decode(enc.encode(codes)), codes)
                print(f"huffman encoder {kind}, {numba.get_num_threads()} thread(s), {name} {dt}: "
                      f"{best_ms(lambda: enc.encode(codes), repeat) * 1e3:.0f} us")
    numba.set_num_threads(1)


def repeated_rows(repeat: int) -> None:
    """``rows.first_copies`` alone, and the whole ``huffman`` and ``ans`` default encodes with ``dedup``
    on and off (us, best of ``repeat``), on ``lookup_fields``."""
    import bench_encoders as B

    from compframe import registry
    from compframe.kernels import rows

    for name, x in lookup_fields():
        for dt, eb in (("int8", 0.01), ("int16", 0.001)):
            codes = B.quantize(x, eb, dt)[0]
            src = rows.first_copies(codes)
            times = {"first_copies": best_ms(lambda: rows.first_copies(codes), repeat)}
            for pid in ("huffman", "ans"):
                for dedup in (True, False):
                    enc = registry.create("encoder", pid, dedup=dedup)
                    times[f"{pid} dedup={dedup}"] = best_ms(lambda: enc.encode(codes), repeat)
            print(f"{name} {dt} ({int((src >= 0).sum())} repeated rows): "
                  + ", ".join(f"{k} {v * 1e3:.1f} us" for k, v in times.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checksums", action="store_true")
    ap.add_argument("--huffman-decode", action="store_true")
    ap.add_argument("--interp-decode", action="store_true")
    ap.add_argument("--huffman-chunks", action="store_true")
    ap.add_argument("--huffman-widths", action="store_true")
    ap.add_argument("--encode-lanes", action="store_true")
    ap.add_argument("--repeated-rows", action="store_true")
    ap.add_argument("--chunk-counts", action="store_true")
    ap.add_argument("--field-sizes", action="store_true")
    ap.add_argument("--pair-mode", action="store_true")
    ap.add_argument("--huffman-encode", action="store_true")
    ap.add_argument("--repeat", type=int, default=100)
    a = ap.parse_args()
    numba.set_num_threads(1)
    if a.checksums:
        checksums(a.repeat)
    if a.huffman_decode:
        huffman_decode(a.repeat, minilm_codes())
    if a.interp_decode:
        huffman_decode(a.repeat, interp_codes())
    if a.huffman_chunks:
        huffman_decode(a.repeat, chunked_codes())
    if a.huffman_widths:
        huffman_widths(a.repeat)
    if a.encode_lanes:
        encode_lanes(a.repeat)
    if a.repeated_rows:
        repeated_rows(a.repeat)
    if a.chunk_counts:
        chunk_counts(a.repeat)
    if a.field_sizes:
        field_sizes(a.repeat)
    if a.pair_mode:
        pair_mode(a.repeat)
    if a.huffman_encode:
        huffman_encode(a.repeat)
    if not (a.checksums or a.huffman_decode or a.interp_decode or a.huffman_chunks or a.huffman_widths
            or a.encode_lanes or a.repeated_rows or a.chunk_counts or a.field_sizes or a.pair_mode
            or a.huffman_encode):
        ap.error("choose --checksums, --huffman-decode, --interp-decode, --huffman-chunks, --huffman-widths, "
                 "--encode-lanes, --repeated-rows, --chunk-counts, --field-sizes, --pair-mode "
                 "and/or --huffman-encode")


if __name__ == "__main__":
    main()
