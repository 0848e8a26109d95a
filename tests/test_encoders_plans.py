"""The column grouping of ``context=classes``/``auto`` is skipped where class tables cannot win
(their cost is bounded below by the columns' free entropy), with the streams of grouping first; and
``auto`` builds no table per column where the classes are estimated no larger (``ans``: no larger than
``COLUMN_MARGIN`` more)."""

from __future__ import annotations

import numpy as np
import pytest

from compframe.plugins.encoders import entropy
from compframe.registry import create


def drifting(rows=1024, columns=128, seed=5):
    """int8 codes whose columns differ enough for ``auto`` to price class tables (their free tables
    are more than ``auto_gain`` smaller than one table), but whose second half of rows is 5x wider:
    block tables win, and class tables cannot."""
    rng = np.random.default_rng(seed)
    x = rng.geometric(np.linspace(0.1, 0.5, columns), (rows, columns)) - 1
    x[rows // 2:] *= 5
    return np.clip(x - 3, -128, 127).astype(np.int8)


def column_scaled(rows=512, columns=48, seed=6):
    """int16 codes whose columns differ 20x in scale: class tables win."""
    rng = np.random.default_rng(seed)
    return np.rint(rng.laplace(0, np.geomspace(1, 20, columns), (rows, columns))).astype(np.int16)


@pytest.mark.parametrize("coder", ["ans", "huffman"])
def test_grouping_skipped_only_where_it_cannot_win(coder, monkeypatch):
    calls = []
    grouping = entropy.column_classes
    monkeypatch.setattr(entropy, "column_classes", lambda *a: calls.append(1) or grouping(*a))
    for codes, context, skipped in ((drifting(), "auto", True), (column_scaled(), "auto", False),
                                    (column_scaled(), "classes", False), (drifting(), "classes", False)):
        params = {"context": context, "dedup": False, "chunk": 16384}
        if context == "auto":
            params["block"] = 1 << 16  # 8 chunks, 2 blocks of codes
        enc = create("encoder", coder, **params)
        calls.clear()
        stream = enc.encode(codes)
        assert (not calls) == skipped, (context, calls)
        always = create("encoder", coder, **params)  # no best model known: always groups
        always._plans = lambda *args, e=always: type(e)._plans(e, *args[:5])
        calls.clear()
        assert always.encode(codes) == stream and calls, context
        assert np.array_equal(enc.decode(stream), codes)


@pytest.mark.parametrize("coder", ["ans", "huffman"])
def test_no_table_per_column_where_classes_are_estimated_smaller(coder, monkeypatch):
    """``auto`` builds no table per column once class tables were built with an estimate no larger
    (the grouping into one column per class is a table per column). On int8 codes of pooled lookups
    (bags of 1-10 rows) whose 32 columns' scales spread over 20x, the per-column model is estimated
    just below the classes' actual size (it was built, and lost, before the rule), but not below their
    estimate: ``auto`` builds the one table and the class tables only, and writes the classes' stream,
    which is smaller than the per-column one. Where each column has its own centre, the table per
    column is estimated smaller, built, and written."""
    built = []
    enc = create("encoder", coder, dedup=False)
    build = type(enc)._build_model
    monkeypatch.setattr(type(enc), "_build_model", lambda self, counts: built.append(len(counts)) or build(self, counts))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2048, 32)) * np.sqrt(rng.integers(1, 11, (2048, 1))) * np.geomspace(0.05, 1, 32)
    codes = np.rint(x / (0.02 * (x.max() - x.min()))).astype(np.int8)
    stream = enc.encode(codes)
    assert built and max(built) < codes.shape[1], built
    classes, column = (create("encoder", coder, dedup=False, context=c).encode(codes) for c in ("classes", "column"))
    assert stream == classes and len(classes) < len(column)
    rng = np.random.default_rng(4)
    centred = np.rint(rng.laplace(0, 2, (2048, 12)) + np.arange(12) * 30).astype(np.int16)
    built.clear()
    stream = enc.encode(centred)
    assert 12 in built and stream == create("encoder", coder, dedup=False, context="column").encode(centred)
    assert np.array_equal(enc.decode(stream), centred)


def pooled_lookups(seed, table_rows=3000, rows=2048, columns=64, zipf=1.1):
    """int8 codes (rel 1e-2) of pooled embedding lookups, as bench/bench_encoders.py makes them: each row
    the sum of a bag of 1-10 Zipf-popular rows of a uniform table, the columns scaled 0.05-1."""
    rng = np.random.default_rng(seed)
    table = rng.uniform(-1, 1, (table_rows, columns)) / np.sqrt(table_rows)
    bag = rng.integers(1, 11, rows)
    a = 1.0 - zipf
    ranks = np.floor(((table_rows ** a - 1.0) * rng.random(bag.sum()) + 1.0) ** (1.0 / a)).astype(np.int64)
    x = np.add.reduceat(table[np.clip(ranks, 1, table_rows) - 1], np.concatenate([[0], np.cumsum(bag)[:-1]]), axis=0)
    x = x * np.geomspace(0.05, 1, columns)
    return np.rint(x / (0.02 * (x.max() - x.min()))).astype(np.int8)


def test_ans_table_per_column_needs_its_margin(monkeypatch):
    """``ans`` under ``auto`` builds a table per column only where it is estimated ``Ans.COLUMN_MARGIN``
    below the class tables: on column-scaled pooled lookups the estimate puts it 0.09 % below them, and
    without the margin the 64-table model is built and then loses to the classes (the stream is the
    same either way); with it only the one table and the class tables are built. ``huffman`` keeps no
    margin."""
    codes = pooled_lookups(0)
    built = []
    build = entropy.Ans._build_model
    monkeypatch.setattr(entropy.Ans, "_build_model", lambda self, counts: built.append(len(counts)) or build(self, counts))
    enc = create("encoder", "ans", dedup=False)
    stream = enc.encode(codes)
    assert built and max(built) < codes.shape[1], built
    assert np.array_equal(enc.decode(stream), codes)
    monkeypatch.setattr(entropy.Ans, "COLUMN_MARGIN", 0.0)
    built.clear()
    assert enc.encode(codes) == stream and codes.shape[1] in built, built
    assert entropy.Huffman.COLUMN_MARGIN == 0.0
    monkeypatch.setattr(entropy.Ans, "COLUMN_MARGIN", 0.5)  # only auto weighs it: context=column is asked for
    column = create("encoder", "ans", dedup=False, context="column")
    built.clear()
    column.encode(codes)
    assert codes.shape[1] in built


@pytest.mark.parametrize("coder", ["ans", "huffman"])
def test_one_pass_block_column_counts_give_the_same_streams(coder, monkeypatch):
    """Under ``auto`` a field of several blocks is counted by block and column in one pass
    (``histogram.block_column_histograms``); its streams are those of the separate passes (the
    columns', the blocks', and for mode 7 the classes' per block), on fields where block tables and
    class tables win (``huffman``), and class tables and class tables per block (``ans`` in lanes)."""
    from compframe.kernels import histogram

    rng = np.random.default_rng(8)
    rows = 2000
    spread = np.tile([0.5, 6.0], 4) * np.repeat([1.0, 4.0], rows // 2)[:, None]
    fields = [np.rint(rng.laplace(0, 1, (rows, 8)) * spread).clip(-127, 127).astype(np.int8),  # mode 7
              drifting(), column_scaled(rows=4096)]
    blocks = (1 << 12, 1 << 15, 1 << 16)  # 4, 4 and 3 blocks: fewer counts by block and column than codes
    params = {"dedup": False, "chunk": 256} | ({"lanes": 16} if coder == "ans" else {})
    calls = []
    counted = histogram.block_column_histograms
    monkeypatch.setattr(histogram, "block_column_histograms", lambda *a: calls.append(1) or counted(*a))
    one_pass = [create("encoder", coder, block=b, **params).encode(x) for b, x in zip(blocks, fields)]
    assert len(calls) == len(fields)
    monkeypatch.setattr(histogram, "block_column_histograms", lambda *a: None)
    assert [create("encoder", coder, block=b, **params).encode(x) for b, x in zip(blocks, fields)] == one_pass
    modes = {stream[1 + 3 + 1 + 16 + 1] for stream in one_pass}  # mode 7: pooled from the one pass
    assert modes == ({6, 7} if coder == "ans" else {4, 5}), modes
