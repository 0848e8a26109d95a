"""``ans``'s modes 6 and 7: codes in rows, each with the table of its column's class (no
transposes), in mode 7 one set of class tables per block of chunks.

The lane kernels with column offsets (``ans.row_offsets``) against the scalar encoder and decoder,
the stream mode against the column-ordered mode 5 it replaces (same codes, same tables, no more
bytes), what the encoder writes when, and damaged or impossible streams."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from test_ans_lanes import SPANS, coded_fields
from test_encoders_lossless import assert_flips_refused_or_exact

from compframe import registry
from compframe.base import StreamError
from compframe.kernels import ans as ans_kernels
from compframe.plugins.encoders import entropy
from compframe.plugins.encoders.entropy import chunk_layout, frequency_tables


def make(pid="ans", **params):
    return registry.create("encoder", pid, **params)


def _field(rng, rows, columns, dtype, k):
    """Codes of ``columns`` columns of very different spreads (0..k-1, then cast)."""
    scale = np.geomspace(0.3, k / 6, columns)[rng.permutation(columns)]
    return np.clip(np.rint(np.abs(rng.laplace(0, 1, (rows, columns))) * scale), 0, k - 1).astype(dtype)


@pytest.mark.parametrize("lanes", [16, 32, 64])
@pytest.mark.parametrize("spans", ["alone", "one", "two", "three"])
@pytest.mark.parametrize("blocks", [1, 3])
def test_column_offsets_write_and_read_the_scalar_bytes(lanes, spans, blocks, monkeypatch):
    """``ans_kernels.encode``/``decode`` with ``columns`` (the vector loops stepping a column offset
    per group, one chunk or two at a time, in the runs of ``SPANS``) write, chunk by chunk, the bytes
    of the scalar encoder with the same offsets, and decode them exactly, as the scalar decoder alone
    does; column counts below, at and above a vector's 16 and a group's lanes, chunks that end
    mid-row, int8 (32-bit entries) and int16 codes (64-bit entries at R = 14); with ``blocks`` 3, a
    set of class tables per block of chunks (mode 7: chunk ``j`` on the tables of its block
    ``table_of[j]``)."""
    monkeypatch.setattr(ans_kernels, "_spans", SPANS[spans])
    rng = np.random.default_rng(200 + lanes)
    for dtype, k, precision in ((np.uint8, 200, 11), (np.uint16, 900, 14)):
        mask = np.iinfo(dtype).max
        for columns in (2, 3, 16, 37, 150):
            rows = 9 * lanes // columns + 13
            x = _field(rng, rows, columns, dtype, k)
            tables = min(columns, 5)
            classes = (np.arange(columns) * 7 % tables).astype(np.uint8)
            u = x.reshape(-1)
            starts, ends, table_of = chunk_layout(u.size, blocks, 3 * lanes + 7, True)
            counts = np.ones((blocks * tables, k), np.int64)  # every symbol codable in every table
            for j in range(starts.size):
                at = np.arange(starts[j], ends[j])
                np.add.at(counts, (table_of[j] * tables + classes[at % columns], u[at]), 1)
            freq = frequency_tables(counts, precision)
            cum = np.cumsum(freq, axis=1) - freq
            per_block = tables if blocks > 1 else None
            data, nbytes, sums = ans_kernels.encode("cpu", u, starts, ends, table_of, 0, mask, freq, cum, precision,
                                                    lanes, classes, per_block)
            rcp, info = (t.reshape(blocks, -1) for t in ans_kernels.encoder_tables(freq, cum, precision))
            toff = ans_kernels.row_offsets(classes, k, lanes)
            offsets = np.concatenate([[0], np.cumsum(nbytes)])
            for j in range(starts.size):
                ref = np.zeros(2 * (ends[j] - starts[j]) + 4 * lanes, np.uint8)
                size = ans_kernels._encode_lanes_cpu(u, 0, mask, precision, ref, rcp[table_of[j]], info[table_of[j]],
                                                     starts[j], ends[j], ref.size, lanes, np.empty(lanes, np.int64),
                                                     toff, columns)
                assert nbytes[j] == size and np.array_equal(data[offsets[j]:offsets[j + 1]], ref[ref.size - size:]), \
                    (dtype, columns, j)
            out = np.zeros_like(u)
            got = ans_kernels.decode("cpu", data, offsets, out, starts, ends, table_of, 0, mask, freq, precision, lanes,
                                     columns=classes, per_block=per_block)
            assert np.array_equal(out, u) and np.array_equal(got, sums), (dtype, columns)
            table = ans_kernels.lane_entries(freq, precision, 0, mask, u.itemsize).reshape(blocks, -1)
            dtoff = ans_kernels.row_offsets(classes, 1 << precision, lanes)
            shift = ans_kernels.lane_shift(precision, u.itemsize)
            ref = np.zeros_like(u)
            for j in range(starts.size):
                st, hs = np.empty(lanes, np.uint32), np.empty(lanes, np.uint32)
                p = ans_kernels._start_lanes_cpu(data, offsets[j], offsets[j + 1], lanes, st, hs)
                assert ans_kernels._decode_lanes_tail_cpu(data, ref, table[table_of[j]], precision, shift, p,
                                                          offsets[j + 1], starts[j], starts[j], ends[j], lanes, st, hs,
                                                          dtoff, columns) == 0
                assert ans_kernels._fold_lanes_cpu(hs, lanes) == sums[j]
            assert np.array_equal(ref, u)


def test_row_offsets():
    toff = ans_kernels.row_offsets(np.array([2, 0, 1], np.uint8), 10, 32)
    assert toff.dtype == np.uint32 and toff.size == 3 + 32
    assert toff.tolist() == [[20, 0, 10][m % 3] for m in range(35)]
    with pytest.raises(ValueError, match="lane mode"):
        ans_kernels.encode("cpu", np.zeros(4, np.uint8), np.array([0]), np.array([4]), np.array([0]), 0, 255,
                           np.array([[4096, 0]]), np.array([[0, 4096]]), 12, 2, np.array([0, 0], np.uint8))


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16])
@pytest.mark.parametrize("context", ["classes", "column", "auto"])
def test_lane_streams_of_column_tables_take_mode_6(dtype, context, monkeypatch):
    """In the lane mode, class and column tables are written in mode 6: the codes as they are, the
    chunks of one table; the stream decodes exactly, is no larger than the same model in mode 5 or
    mode 2 by column (the same tables, more chunks), and the pair mode keeps those modes."""
    rng = np.random.default_rng(7)
    info = np.iinfo(dtype)
    k = 120 if info.bits == 8 else 3000
    x = _field(rng, 1500, 24, np.int64, k)
    x = (x - (k // 2 if info.min < 0 else 0)).astype(dtype)
    enc = make(context=context, chunk=4096, lanes=32)
    stream = enc.encode(x)
    mode, tables, _, lanes = coded_fields(stream, 2)
    assert lanes > 2 and mode == 6 and tables > 1, (mode, tables, lanes)
    assert np.array_equal(enc.decode(stream), x)
    monkeypatch.setattr(entropy.Ans, "_rows_mode", lambda self, model, chunks: False)
    before = enc.encode(x)
    old_mode, old_tables, _, old_lanes = coded_fields(before, 2)
    assert old_mode in (2, 5) and old_tables == tables and old_lanes == lanes
    assert len(stream) <= len(before) and np.array_equal(enc.decode(before), x)
    monkeypatch.undo()
    pair = make(context=context, chunk=4096, lanes=2).encode(x)
    assert coded_fields(pair, 2)[0] in (2, 5)


def test_mode_6_in_more_dimensions_and_under_dedup():
    """3-D codes (the last axis is the column) and a dedup stream whose kept rows are in mode 6."""
    rng = np.random.default_rng(8)
    x = _field(rng, 1200, 12, np.int8, 100).reshape(40, 30, 12)
    enc = make(context="classes", lanes=16, chunk=1000, dedup=False)
    stream = enc.encode(x)
    assert coded_fields(stream, 3)[0] == 6 and np.array_equal(enc.decode(stream), x)
    rows = _field(rng, 3000, 16, np.int8, 100)
    rows[rng.integers(0, 3000, 500)] = rows[rng.integers(0, 3000, 500)]
    enc = make(context="classes", lanes=32, chunk=2048)
    stream = enc.encode(rows)
    head = 1 + 3 + 1 + 16
    inner = head + 10 + 12 + 4 + struct.unpack_from("<I", stream, head + 10 + 8)[0]  # after the references
    assert stream[head + 1] == 3 and stream[inner + 1] == 6  # a dedup stream around a mode 6 one
    assert np.array_equal(enc.decode(stream), rows)


def test_damaged_and_impossible_mode_6_streams_are_refused():
    """Every truncation and flipped byte is refused or decodes exactly; a class past the tables, a
    mode 6 stream in the pair mode, and huffman given a mode 6 stream are refused by name."""
    rng = np.random.default_rng(9)
    x = _field(rng, 600, 10, np.int8, 60)
    enc = make(context="classes", lanes=16, chunk=1000, dedup=False)
    stream = enc.encode(x)
    head = 1 + 3 + 1 + 16
    assert stream[head + 1] == 6
    for cut in range(len(stream)):
        with pytest.raises(StreamError):
            enc.decode(stream[:cut])
    assert_flips_refused_or_exact(enc, stream, x, (0x01, 0x80))
    tables = coded_fields(stream, 2)[1]
    classes_at = head + 10 + 25 + 4  # the stream's head, the coded fields with the checksum, the column count
    bad = bytearray(stream)
    bad[classes_at + 3] = tables
    with pytest.raises(StreamError, match="not one of the"):
        enc.decode(bytes(bad))
    bad = bytearray(stream)
    bad[head + 10 + 16] &= 31  # the lane code 0: the pair mode
    with pytest.raises(StreamError, match="16, 32 or 64 lanes"):
        enc.decode(bytes(bad))
    with pytest.raises(StreamError, match="written by ans only"):
        make("huffman").decode(stream)


def test_huffman_keeps_mode_5():
    rng = np.random.default_rng(10)
    x = _field(rng, 2000, 16, np.int8, 100)
    stream = make("huffman", context="classes", chunk=4096).encode(x)
    assert stream[1 + 3 + 1 + 16 + 1] == 5


def test_column_tables_are_priced_as_mode_6_lays_them_out():
    """Outside the pair mode, class tables and a table per column (at most 256 columns) cost the
    chunk table and final states of one table's chunks, the column count and a class byte per column
    (mode 6), not a run of chunks per column or per class (modes 2 and 5, where 64 columns' lane
    states at 32 lanes, about 6 KB, made column tables lose to one table on fields they shrink by
    4 %); over 256 columns, and in the pair mode, the old layouts' prices stay."""
    count, chunk = 2048 * 64, 16384
    for lanes, waste in ((0, 0), (32, 3 * 32)):
        enc = make(lanes=lanes, chunk=chunk)
        for mode, tables in ((entropy.CODED, 64), (entropy.CLASSES, 5)):
            assert enc._layout_bytes(count, mode, tables, 64) == (4 + waste) * (count // chunk) + 4 + 64
        assert enc._layout_bytes(2048 * 300, entropy.CODED, 300, 300) == (4 + waste) * 300 * -(-2048 // chunk)
    pair = make(lanes=2, chunk=chunk)
    assert pair._layout_bytes(count, entropy.CODED, 64, 64) == 4 * 64 * -(-2048 // chunk)
    assert pair._layout_bytes(count, entropy.CLASSES, 5, 64) == 4 * (count // chunk + 5) + 4 + 64


def test_block_class_histograms_count_what_a_reference_counts():
    """``histogram.block_class_histograms`` against ``np.add.at`` over every code: blocks that start
    and end mid-row, blocks shorter than a row, int8 and int16 codes shifted by ``base`` (mode 7's
    model counts)."""
    from compframe.kernels import histogram

    rng = np.random.default_rng(14)
    for dtype, k, base in ((np.uint8, 50, 200), (np.uint16, 500, 65400)):
        mask = np.iinfo(dtype).max
        for columns, rows, span in ((384, 700, 65536), (7, 300, 1000), (384, 40, 100003), (50, 30, 37)):
            symbols = rng.integers(0, k, rows * columns)
            x = ((symbols + base) & mask).astype(dtype)
            classes = rng.integers(0, 6, columns).astype(np.uint8)
            got = histogram.block_class_histograms(x, columns, classes, 6, span, base, mask, k)
            ref = np.zeros((-(-x.size // span) * 6, k), np.int64)
            at = np.arange(x.size)
            np.add.at(ref, ((at // span) * 6 + classes[at % columns], symbols), 1)
            assert np.array_equal(got, ref), (dtype, columns, span)


def _drifting(rng, rows=1000):
    """int8 codes whose columns differ in scale (two classes) and whose rows' spread changes half-way
    (two blocks): each way of varying alone leaves the other to one table."""
    scale = np.tile([0.5, 6.0], 4) * np.repeat([1.0, 4.0], rows // 2)[:, None]
    return np.rint(rng.laplace(0, 1, (rows, 8)) * scale).clip(-127, 127).astype(np.int8)


def test_auto_takes_class_tables_per_block_where_rows_drift_and_columns_differ():
    """Mode 7 under ``auto``: smaller than block tables (mode 4) and class tables (mode 6) of the same
    field, decoded exactly; not taken in the pair mode, nor where the rows do not drift."""
    x = _drifting(np.random.default_rng(12))
    params = {"chunk": 256, "lanes": 16, "dedup": False}
    stream = make(block=4096, **params).encode(x)
    mode, tables, _, _ = coded_fields(stream, 2)
    assert mode == 7 and tables == 4  # 2 blocks x 2 classes
    assert np.array_equal(make(block=4096, **params).decode(stream), x)
    assert len(stream) < len(make(context="block", block=4096, **params).encode(x))
    assert len(stream) < len(make(context="classes", **params).encode(x))
    assert coded_fields(make(block=4096, chunk=256, lanes=2, dedup=False).encode(x), 2)[0] != 7
    steady = _drifting(np.random.default_rng(12))[:500]  # the first half: no drift
    assert coded_fields(make(block=1024, **params).encode(np.tile(steady, (2, 1))), 2)[0] != 7


def test_damaged_and_impossible_mode_7_streams_are_refused():
    """Every truncation and flipped byte of a mode 7 stream is refused or decodes exactly; a block
    count that is not mode 4's, a table count that is not a multiple of it, a class past a block's
    tables, and huffman given the stream are refused by name."""
    x = _drifting(np.random.default_rng(13), 600)
    enc = make(chunk=256, lanes=16, block=4096, dedup=False)
    stream = enc.encode(x)
    head = 1 + 3 + 1 + 16
    assert stream[head + 1] == 7
    for cut in range(0, len(stream), 3):
        with pytest.raises(StreamError):
            enc.decode(stream[:cut])
    assert_flips_refused_or_exact(enc, stream, x, (0x01, 0x80))
    classes_at = head + 10 + 25 + 4  # the stream's head, the coded fields with the checksum, the column count
    blocks_at = classes_at + 8  # after the classes of the 8 columns
    tables_at = head + 10 + 12
    (blocks,) = struct.unpack_from("<I", stream, blocks_at)
    (tables,) = struct.unpack_from("<I", stream, tables_at)
    assert blocks >= 2 and tables % blocks == 0
    for at, value, message in ((blocks_at, 1, "blocks"), (blocks_at, 10**6, "blocks"),
                               (tables_at, tables + 1, "blocks"), (classes_at + 2, tables // blocks, "not one of the")):
        bad = bytearray(stream)
        if at == classes_at + 2:
            bad[at] = value
        else:
            struct.pack_into("<I", bad, at, value)
        with pytest.raises(StreamError, match=message):
            enc.decode(bytes(bad))
    with pytest.raises(StreamError, match="mode 7 .* written by ans only"):
        make("huffman").decode(stream)
