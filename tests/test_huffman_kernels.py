"""``kernels.huffman``'s decoder with either direct-entry width, and codes longer than the direct table;
``kernels.simd_huffman``'s 16 chunks at once against it."""

import numpy as np
import pytest
from conftest import run_on_generic_cpu

from compframe.kernels import huffman as hk
from compframe.kernels import simd_huffman as sh
from compframe.kernels.targets import checksum_cpu
from compframe.plugins.encoders.entropy import chunk_layout


def _streams(codes, max_len, chunk):
    u = codes.view(np.uint8 if codes.itemsize == 1 else np.uint16)
    mask = 0xFF if codes.itemsize == 1 else 0xFFFF
    base = int(u.min())
    counts = np.bincount((u.astype(np.int64) - base) & mask)[None]
    lengths = hk.code_lengths_tables(counts, max_len)
    param = int(lengths.max())
    starts, ends, table_of = chunk_layout(u.size, 1, chunk)
    data, sizes, sums = hk.encode("cpu", u, starts, ends, table_of, base, mask, hk.encoder_table(lengths, param), param)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    return u, lengths, param, base, mask, data, offsets, (starts, ends, table_of), sums


@pytest.mark.parametrize("dtype,entry", [(np.int8, np.uint32), (np.int8, np.int64), (np.int16, np.int64)])
def test_decoder_entries_and_long_codes(dtype, entry):
    """Skewed codes (many longer than the 12-bit direct table, several symbols per look-up for the
    short ones) decode exactly with uint32 and int64 entries (the encoder's checksums); a flipped bit
    changes its chunk's checksum (or marks it -1) and no other."""
    rng = np.random.default_rng(3)
    codes = (rng.geometric(0.3, 20000) * rng.choice([-1, 1], 20000)).astype(dtype)
    u, lengths, param, base, mask, data, offsets, layout, expected = _streams(codes, 20, 1000)
    assert param > hk.FAST_BITS  # the canonical-limit path is taken
    fast = np.empty((1, 1 << hk.FAST_BITS), entry)
    ok, limit, first_index, syms = hk.decoder_tables(lengths, param, base, mask, fast)
    assert ok
    out = np.zeros_like(u)
    sums = hk.decode("cpu", data, offsets, out, *layout, fast, limit, first_index, syms, param)
    assert np.array_equal(out, u) and np.array_equal(sums, expected)
    damaged = data.copy()
    damaged[offsets[7] + 5] ^= 0x04
    sums = hk.decode("cpu", damaged, offsets, np.zeros_like(u), *layout, fast, limit, first_index, syms, param)
    assert sums[7] != expected[7] and np.array_equal(np.delete(sums, 7), np.delete(expected, 7))


def _pairwise(data, offsets, out, starts, ends, table_of, fast, limit, first_index, syms, max_len):
    """The reference: every chunk through ``decode_chunks`` alone (the pair loop with an empty partner)."""
    status = np.zeros(starts.size, np.int64)
    for c in range(starts.size):
        t = table_of[c]
        status[c] = sh._decode_pair(data, out, max_len, fast[t], limit[t], first_index[t], syms[t], fast[t], limit[t],
                                    first_index[t], syms[t], offsets[c], offsets[c + 1], starts[c], ends[c],
                                    offsets[c + 1], offsets[c + 1], ends[c], ends[c])
    return status


def _row_tables(lengths, base, mask, fast, on):
    """``huffman.row_tables`` of ``fast`` (empty tables, the 64-bit-entry loop, unless ``on``)."""
    width = np.uint8 if mask == 0xFF else np.uint16
    if not on:
        return np.zeros((0, 0), np.uint32), np.zeros((0, 0, hk.ROW), width)
    entries, rows = np.empty(fast.shape, np.uint32), np.empty(fast.shape + (hk.ROW,), width)
    hk.row_tables(lengths, base, mask, fast, entries, rows)
    return entries, rows


def _flags_damage(data, offsets, u, starts, ends, table_of, tables, by_rows, expected, rng, threads):
    """One bit flipped in every chunk: ``decode_cpu`` flags (-1) the chunks the scalar decoder flags,
    and no chunk keeps its checksum."""
    n = starts.size
    damaged = data.copy()
    bits = rng.integers(0, 8, n).astype(np.uint8)
    damaged[offsets[:-1] + rng.integers(0, np.diff(offsets))] ^= np.uint8(1) << bits
    got = np.zeros(n, np.int64)
    sh.decode_cpu(damaged, offsets, np.zeros_like(u), starts, ends, table_of, *tables, got, *by_rows, threads)
    status = _pairwise(damaged, offsets, np.zeros_like(u), starts, ends, table_of, *tables)
    assert np.array_equal(got < 0, status != 0) and np.all(got != expected)


@pytest.mark.parametrize("dtype,entry,rows", [(np.int8, np.uint32, False), (np.int16, np.int64, False),
                                              (np.int8, np.uint32, True), (np.int16, np.int64, True)])
def test_sixteen_chunks_at_once_match_the_pair_decoder(dtype, entry, rows):
    """``simd_huffman.decode_cpu`` (spans of groups of 16 chunks as vectors, each reader taking the
    next chunk as its own ends, then the five chunks past the groups in pairs) decodes 101 chunks (six
    groups, for 8-bit codes in two spans) of
    skewed codes with two alternating tables exactly (long codes inside the vector loop too), with the
    64-bit entries or the row tables (more symbols per look-up than a 64-bit entry holds), and on
    damaged streams flags the same chunks as the scalar decoder: random bytes under an incomplete
    code (bits that are no code stop the vector loop), and one flipped bit per chunk."""
    rng = np.random.default_rng(5)
    codes = (rng.geometric(0.25, 101 * 400) * rng.choice([-1, 1], 101 * 400)).astype(dtype)
    u, lengths, param, base, mask, data, offsets, (starts, ends, _), expected = _streams(codes, 20, 400)
    assert param > hk.FAST_BITS
    table_of = np.arange(starts.size) % 2
    lengths2 = np.concatenate([lengths, lengths])
    fast = np.empty((2, 1 << hk.FAST_BITS), entry)
    ok, limit, first_index, syms = hk.decoder_tables(lengths2, param, base, mask, fast)
    assert ok
    by_rows = _row_tables(lengths2, base, mask, fast, rows)
    held = (fast.astype(np.int64) >> (24 if entry is np.uint32 else 48)) & 7  # symbols per 64-bit entry
    assert not rows or (by_rows[0] & 31).max() > held.max()
    out = np.zeros_like(u)
    sums = np.zeros(starts.size, np.int64)
    sh.decode_cpu(data, offsets, out, starts, ends, table_of, fast, limit, first_index, syms, param, sums, *by_rows, 1)
    assert np.array_equal(out, u) and np.array_equal(sums, expected)
    _flags_damage(data, offsets, u, starts, ends, table_of, (fast, limit, first_index, syms, param), by_rows, expected,
                  rng, 1)
    # an incomplete code (lengths 1, 2, 3: the prefix 111 is no code) over random bytes
    short = np.zeros((2, 4), np.int64)
    short[:, :3] = [1, 2, 3]
    fast = np.empty((2, 1 << hk.FAST_BITS), entry)
    ok, limit, first_index, syms = hk.decoder_tables(short, 3, 0, mask, fast)
    assert ok
    by_rows = _row_tables(short, 0, mask, fast, rows)
    noise = rng.integers(0, 256, data.size, dtype=np.uint8)
    got = np.zeros(starts.size, np.int64)
    sh.decode_cpu(noise, offsets, np.zeros_like(u), starts, ends, table_of, fast, limit, first_index, syms, 3, got,
                  *by_rows, 1)
    status = _pairwise(noise, offsets, np.zeros_like(u), starts, ends, table_of, fast, limit, first_index, syms, 3)
    assert np.all(status != 0) and np.all(got == -1)


@pytest.mark.parametrize("dtype,entry,rows", [(np.int8, np.uint32, False), (np.int16, np.int64, False),
                                              (np.int8, np.uint32, True)])
def test_idle_readers_copy_a_busy_one(dtype, entry, rows):
    """Where the readers run out of chunks (fewer than 16 chunks, a short last chunk, chunks past the
    last group of 16 as a group of their own on one thread, else in pairs) the idle ones copy a busy
    reader: from ``least_active`` to 17 chunks and 32 + 1, 8 and 15,
    with a last chunk of 1 code to a whole one, in one span and two, every code and checksum is the
    encoder's, and a flipped bit per chunk is flagged as by the scalar decoder."""
    rng = np.random.default_rng(9)
    least = sh.least_active(np.dtype(dtype).itemsize)
    for nchunks in list(range(least, 18)) + [33, 40, 47]:
        last = int(rng.choice([1, 37, 300, 400]))
        n = 400 * (nchunks - 1) + last
        codes = (rng.geometric(0.25, n) * rng.choice([-1, 1], n)).astype(dtype)
        u, lengths, param, base, mask, data, offsets, (starts, ends, table_of), expected = _streams(codes, 20, 400)
        assert starts.size == nchunks
        fast = np.empty((1, 1 << hk.FAST_BITS), entry)
        ok, limit, first_index, syms = hk.decoder_tables(lengths, param, base, mask, fast)
        by_rows = _row_tables(lengths, base, mask, fast, rows)
        tables = (fast, limit, first_index, syms, param)
        for threads in (1, 2):
            out = np.zeros_like(u)
            sums = np.zeros(nchunks, np.int64)
            sh.decode_cpu(data, offsets, out, starts, ends, table_of, *tables, sums, *by_rows, threads)
            assert np.array_equal(out, u) and np.array_equal(sums, expected), (nchunks, last, threads)
            _flags_damage(data, offsets, u, starts, ends, table_of, tables, by_rows, expected, rng, threads)


@pytest.mark.parametrize("dtype,entry,rows", [(np.int8, np.int64, False), (np.int16, np.int64, False),
                                              (np.int8, np.uint32, True)])
@pytest.mark.parametrize("threads", [1, 2])
def test_chunks_of_different_lengths_longest_first(dtype, entry, rows, threads):
    """Chunks of different lengths (class tables' chunks end with their class's columns) go through
    the 16 readers longest first, in one span or two: 101 chunks of 30-700 codes with three tables
    decode exactly with the encoder's checksums, and on a damaged stream (one flipped bit per chunk,
    or random bytes under an incomplete code) the same chunks are flagged as by the scalar decoder."""
    rng = np.random.default_rng(7)
    lengths_of = rng.choice([30, 200, 450, 700], 101)
    ends = np.cumsum(lengths_of)
    starts = ends - lengths_of
    table_of = rng.integers(0, 3, 101)
    n = int(ends[-1])
    codes = (rng.geometric(0.25, n) * rng.choice([-1, 1], n)).astype(dtype)
    u = codes.view(np.uint8 if codes.itemsize == 1 else np.uint16)
    mask = 0xFF if codes.itemsize == 1 else 0xFFFF
    base = int(u.min())
    counts = np.stack([np.bincount((u[np.repeat(table_of == t, lengths_of)].astype(np.int64) - base) & mask,
                                   minlength=mask + 1) for t in range(3)])
    lengths = hk.code_lengths_tables(counts, 20)
    param = int(lengths.max())
    data, sizes, expected = hk.encode("cpu", u, starts, ends, table_of, base, mask, hk.encoder_table(lengths, param),
                                      param)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    assert all(expected[c] == checksum_cpu(u, starts[c], ends[c]) for c in range(101))  # 16 at a time, longest first
    order = sh.longest_first(starts, ends, 2)
    assert sorted(order.tolist()) == list(range(101))  # each span's chunks longest first, dealt in turn
    assert all(np.all(np.diff(lengths_of[part]) <= 0) for part in (order[:51], order[51:]))
    assert np.all(lengths_of[order[:50]] >= lengths_of[order[51:]])
    assert sh.longest_first(np.arange(0, 6400, 400), np.arange(400, 6401, 400).clip(0, 6300), 1).size == 0
    fast = np.empty((3, 1 << hk.FAST_BITS), entry)
    ok, limit, first_index, syms = hk.decoder_tables(lengths, param, base, mask, fast)
    assert ok
    by_rows = _row_tables(lengths, base, mask, fast, rows)
    tables = (fast, limit, first_index, syms, param)
    out = np.zeros_like(u)
    sums = np.zeros(101, np.int64)
    sh.decode_cpu(data, offsets, out, starts, ends, table_of, *tables, sums, *by_rows, threads)
    assert np.array_equal(out, u) and np.array_equal(sums, expected)
    _flags_damage(data, offsets, u, starts, ends, table_of, tables, by_rows, expected, rng, threads)
    short = np.zeros((3, 4), np.int64)
    short[:, :3] = [1, 2, 3]
    fast = np.empty((3, 1 << hk.FAST_BITS), entry)
    ok, limit, first_index, syms = hk.decoder_tables(short, 3, 0, mask, fast)
    by_rows = _row_tables(short, 0, mask, fast, rows)
    noise = rng.integers(0, 256, data.size, dtype=np.uint8)
    got = np.zeros(101, np.int64)
    sh.decode_cpu(noise, offsets, np.zeros_like(u), starts, ends, table_of, fast, limit, first_index, syms, 3, got,
                  *by_rows, threads)
    assert np.all(got == -1)


@pytest.mark.slow
def test_sixteen_chunks_decode_when_numba_targets_a_generic_cpu(tmp_path):
    """NUMBA_CPU_NAME=generic compiles without AVX-512: the vector decoder uses LLVM's generic gathers
    there (no x86 intrinsic) and decodes the same codes, with 64-bit entries and with row tables (the
    zero-heavy codes)."""
    script = (
        "import numpy as np\n"
        "from compframe import registry\n"
        "from compframe.kernels import simd\n"
        "assert not simd.avx512()\n"
        "rng = np.random.default_rng(0)\n"
        "c = (rng.geometric(0.2, 300000) - 3).astype(np.int16)\n"
        "z = (rng.geometric(0.5, 300000) * (rng.random(300000) < 0.05)).astype(np.int16)\n"
        "e = registry.create('encoder', 'huffman', chunk=4096)\n"
        "assert np.array_equal(e.decode(e.encode(c)), c) and np.array_equal(e.decode(e.encode(z)), z)\n"
        "print('ok')\n")
    p = run_on_generic_cpu(script, tmp_path / "cache")
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-2000:]


def test_zero_heavy_codes_decode_through_row_tables():
    """Codes that are mostly zero (1-bit codes: a look-up holds up to 12) take the row tables in
    ``Huffman``'s decoder (by the stream's bits per code: 1.3 do, 6 do not), and decode exactly, with
    codes longer than the direct table among them."""
    from compframe.plugins.encoders import entropy
    from compframe.registry import create

    rng = np.random.default_rng(7)
    n = 1 << 18
    zeros = (rng.geometric(0.3, n) * rng.choice([-1, 1], n) * (rng.random(n) < 0.05)).astype(np.int16)
    zeros[::5000] = 30000  # codes longer than the direct table
    fast = np.empty((1, 1 << hk.FAST_BITS), np.int64)
    assert hk.rows_pay(fast, 0xFFFF, n * 13 // 80, n) and not hk.rows_pay(fast, 0xFFFF, n * 6 // 8, n)
    enc = create("encoder", "huffman", context="none", chunk=4096, dedup=False)
    stream = enc.encode(zeros)
    assert len(stream) < n * 13 // 80  # 1.3 bits per code or less
    np.testing.assert_array_equal(enc.decode(stream), zeros)
    assert any(key[3:4] == ("rows",) for m in entropy._DECODERS._items.values() for key in m.decoders)  # rows built


def test_model_cache_keeps_every_stream_exact():
    """Decoding through the cache of models read before (``entropy._DECODERS``) gives what a cold
    decode gives: the same stream twice, a stream with the same code lengths but another base (its
    tables hold other symbols), the same model for another symbol count; a damaged chunk is still
    refused on a cache hit; the cache holds at most ``MODELS`` models."""
    from compframe.errors import StreamError
    from compframe.plugins.encoders import entropy
    from compframe.registry import create

    enc = create("encoder", "huffman", context="none", dedup=False, chunk=1024)
    rng = np.random.default_rng(5)
    codes = np.clip(rng.normal(0, 6, 8192), -100, 100).astype(np.int8)
    shifted = (codes.astype(np.int16) + 7).astype(np.int8)  # same histogram shape, lo + 7: same lengths blob
    entropy._DECODERS._items.clear()
    for c in (codes, codes, shifted, codes[:4096], codes):
        stream = enc.encode(c)
        np.testing.assert_array_equal(enc.decode(stream), c)
    # one model per length blob (codes and shifted share one, with tables for each base), one for the half
    assert len(entropy._DECODERS._items) == 2
    assert sorted(sum(len(key) == 3 for key in m.decoders) for m in entropy._DECODERS._items.values()) == [1, 2]
    damaged = bytearray(enc.encode(codes))
    damaged[-300] ^= 0x10  # inside the last chunks
    with pytest.raises(StreamError):
        enc.decode(bytes(damaged))
    for k in range(entropy._ModelCache.MODELS + 4):
        c = np.clip(rng.normal(0, 2 + k, 4096), -120, 120).astype(np.int8)
        np.testing.assert_array_equal(enc.decode(enc.encode(c)), c)
    assert len(entropy._DECODERS._items) <= entropy._ModelCache.MODELS


@pytest.mark.parametrize("dtype", [np.int8, np.int16])
def test_sixteen_chunks_encoded_at_once_write_the_scalar_bytes(dtype):
    """``simd_huffman_encode.encode_cpu`` (16 chunks' bit writers as vectors, staggered starts, each
    chunk's rest alone, writers taking the next chunk longest first where the chunks differ in length,
    16 checksums at once; byte planes for one int8 table, gathers otherwise; one span and two) writes
    the bytes, sizes and checksums of the scalar ``huffman.encode_cpu``: one table and three, chunks
    of one length and of many (shorter than the stagger too), 16k + 0..5 and 16k + 13 chunks and
    fewer than 16 (idle writers), 3-9 codes per write (longest code 6-18 bits), symbols that wrap around the mask (a
    base above them). The idle writers' bytes stay within the room ``huffman.encode`` gives them."""
    from compframe.kernels import simd_huffman_encode as se

    rng = np.random.default_rng(11)
    for case in range(24):
        tables = 1 if case % 3 else 3
        least = se.least_active(np.dtype(dtype).itemsize)
        nchunks = 16 * int(rng.integers(1, 6)) + (case % 6 if case % 4 != 2 else 13) if case % 4 \
            else int(rng.integers(least, 17))
        if case % 2:
            lengths_of = rng.choice([1, 5, 63, 700, 2000, 8192], nchunks)
        else:
            lengths_of = np.full(nchunks, int(rng.choice([64, 1000, 8192])))
        ends = np.cumsum(lengths_of)
        starts = ends - lengths_of
        table_of = rng.integers(0, tables, nchunks)
        n = int(ends[-1])
        scale = float(rng.choice([0.5, 3, 40, 2000 if dtype == np.int16 else 40]))
        codes = np.rint(rng.laplace(0, scale, n)).clip(np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)
        u = codes.view(np.uint8 if dtype == np.int8 else np.uint16)
        mask = 0xFF if dtype == np.int8 else 0xFFFF
        base = int(codes.min()) & mask  # the symbols below zero wrap around
        counts = np.stack([np.bincount((u[np.repeat(table_of == t, lengths_of)].astype(np.int64) - base) & mask,
                                       minlength=int((int(codes.max()) - int(codes.min())) + 1)) for t in range(tables)])
        counts[:, 0] += 1  # every table codes at least two symbols
        counts[:, -1] += 1
        used = int((counts > 0).sum(axis=1).max())
        lengths = hk.code_lengths_tables(counts, max(int(rng.choice([9, 12, 16, 24])), used.bit_length()))
        param = int(lengths.max())
        table = hk.encoder_table(lengths, param)
        group = max(1, 55 // param)
        cap = (lengths_of * param + 7) // 8 + 8
        at = np.cumsum(cap) - cap
        got = []
        for encode, threads in ((hk.encode_cpu, 1), (se.encode_cpu, 1), (se.encode_cpu, 2), (hk.encode_cpu, 2)):
            # the vector encoder in one span and in two (from 64 chunks), the scalar one in one run and two
            scratch = np.zeros(int(cap.sum()) + 64, np.uint8)
            scratch[-64:] = 0xA5
            nbytes, sums = np.zeros(nchunks, np.int64), np.zeros(nchunks, np.int64)
            encode(u, starts, ends, table_of, base, mask, table, group, scratch, at, nbytes, sums, threads)
            assert (scratch[-64:] == 0xA5).all(), case
            got.append(([bytes(scratch[a:a + b]) for a, b in zip(at, nbytes)], nbytes, sums))
        (ref, ref_sizes, ref_sums), *vectors = got
        assert all(ref_sums[c] == checksum_cpu(u, starts[c], ends[c]) for c in range(nchunks)), case
        for vec, vec_sizes, vec_sums in vectors:
            assert ref == vec and np.array_equal(ref_sizes, vec_sizes) and np.array_equal(ref_sums, vec_sums), case


@pytest.mark.parametrize("dtype", [np.int8, np.int16])
def test_one_table_streams_take_chunks_of_one_length(dtype):
    """``huffman`` cuts a stream of one table that ``chunk`` would leave with a shorter last chunk into as
    many chunks of one length, a multiple of ``EVEN_ALIGN`` (125 888 codes, a 2048 x 64 field less 81
    rows: 16 of 7872, not 15 of 8192 and one of 3008); a whole number of chunks, a single chunk and
    tables per block keep ``chunk``. Every stream decodes exactly."""
    import struct

    from compframe.registry import create

    def recorded(stream):  # the chunk a 1-D coded stream records (entropy.py's layout)
        return struct.unpack_from("<iIIIBII", stream, 1 + 3 + 1 + 8 + 10)[2]

    rng = np.random.default_rng(3)
    enc = create("encoder", "huffman", dedup=False, context="none")
    assert enc.EVEN_ALIGN == 8
    for count, want in ((125888, 7872), (16 * 8192, 8192), (5000, 8192), (8193, 4104), (3 * 8192 + 1, 6152)):
        codes = np.rint(rng.laplace(0, 6, count)).astype(dtype)
        stream = enc.encode(codes)
        assert recorded(stream) == want, count
        n = -(-count // want)
        assert n == -(-count // 8192) and (n == 1 or count - (n - 1) * want > want - enc.EVEN_ALIGN * n)
        assert np.array_equal(enc.decode(stream), codes)
    drift = np.concatenate([np.rint(rng.laplace(0, 2, 150001)), np.rint(rng.laplace(0, 30, 150000))]).astype(dtype)
    blocks = create("encoder", "huffman", dedup=False, context="block", block=1 << 16)
    stream = blocks.encode(drift)
    assert stream[1 + 3 + 1 + 8 + 1] == 4 and recorded(stream) == 8192  # mode 4: tables per block
    assert np.array_equal(blocks.decode(stream), drift)
