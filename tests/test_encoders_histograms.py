"""The entropy coders' statistics (``compframe.kernels.histogram``) against ``np.bincount``: whole
runs, blocks and columns, uint8 and uint16 codes, a base that wraps, and counts past the narrow
counters' range."""

from __future__ import annotations

import numpy as np
import pytest

from compframe.kernels import histogram


def counts_of(values, base, mask, alphabet):
    return np.bincount((values.astype(np.int64) - base) & mask, minlength=alphabet)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_histograms_of_runs_and_columns(dtype):
    rng = np.random.default_rng(7)
    mask = np.iinfo(dtype).max
    for n, columns in ((1, 1), (7, 7), (9, 3), (1000, 10), (3 * 5003, 3), (131072, 64)):
        base = mask - 20  # the codes wrap past the top: (x - base) & mask is what is counted
        x = ((rng.geometric(0.05, n) + base) & mask).astype(dtype)
        alphabet = int(((x.astype(np.int64) - base) & mask).max()) + 1
        whole = counts_of(x, base, mask, alphabet)
        assert np.array_equal(histogram.histograms(x, 1, base, mask, alphabet)[0], whole)
        span = -(-n // 3)  # blocks of span codes, the last one cut at the end
        blocks = histogram.histograms(x, 3, base, mask, alphabet, span)
        for t in range(3):
            assert np.array_equal(blocks[t], counts_of(x[t * span:(t + 1) * span], base, mask, alphabet)), (n, t)
        by_column = histogram.column_histograms(x, columns, base, mask, alphabet)
        for j in range(columns):
            assert np.array_equal(by_column[j], counts_of(x.reshape(-1, columns)[:, j], base, mask, alphabet))


def test_counts_past_the_narrow_counters():
    """A column with more than 2**16 equal codes, and a run of them (the counters are 16 and 32 bits
    wide where the counts allow)."""
    x = np.zeros(2 * 70000, np.uint8)
    x[::2] = 1
    assert histogram.column_histograms(x, 2, 0, 255, 2).tolist() == [[0, 70000], [70000, 0]]
    assert histogram.histograms(x, 1, 0, 255, 2).tolist() == [[70000, 70000]]


def test_coarse_bins_match_the_numpy_binning():
    """``histogram.coarse_bins`` gives the bins and sums of the numpy it replaced in
    ``entropy.column_classes`` (``searchsorted`` of the running total, ``unique``, ``add.reduceat``):
    wide and narrow alphabets, symbols heavier than a share (bins of their own, edges that repeat),
    empty symbols at either end, one column."""
    rng = np.random.default_rng(5)
    for case in range(300):
        columns = int(rng.integers(1, 70))
        alphabet = int(rng.integers(1, 900))
        kind = case % 3
        if kind == 0:  # spread out
            by_column = rng.integers(0, 50, (columns, alphabet))
        elif kind == 1:  # peaked: a few symbols hold most codes
            by_column = rng.poisson(rng.pareto(0.7, alphabet) + 0.01, (columns, alphabet))
        else:  # sparse, with empty ends
            by_column = rng.integers(0, 4, (columns, alphabet)) * (rng.random((columns, alphabet)) < 0.1)
            by_column[:, : alphabet // 5] = 0
        by_column = by_column.astype(np.int64)
        total = by_column.sum(axis=0)
        if total.sum() == 0:
            continue
        bins = int(rng.choice([2, 7, 64]))
        cum = np.cumsum(total)
        edges = np.searchsorted(cum, cum[-1] * np.arange(1, bins) / bins, side="right")
        edges = np.unique(np.concatenate([[0], edges[edges < alphabet]]))
        want = np.add.reduceat(by_column, edges, axis=1)
        got = histogram.coarse_bins(by_column, total, bins)
        assert got.shape == want.shape and np.array_equal(got, want), (case, columns, alphabet, bins)


def reference_groupings(coarse, by_column, order, most, steps):
    """``histogram.column_groupings`` written with numpy (how ``entropy.column_classes`` grouped before
    it was one compiled call): matrix products, argmin, ``model_estimate``."""
    from compframe.plugins.encoders.entropy import model_estimate

    columns, bins = coarse.shape
    best = None
    k = 2
    while k <= most:
        members = np.empty(columns, np.int64)
        members[order] = np.arange(columns) * k // columns
        for _ in range(steps):
            pooled = histogram.pool_rows(coarse, members, k).astype(np.float64)
            cost = np.log2((pooled.sum(axis=1, keepdims=True) + bins / 2) / (pooled + 0.5))
            members = np.argmin(coarse.astype(np.float64) @ cost.T, axis=1)
        _, first = np.unique(members, return_index=True)
        labels = {m: i for i, m in enumerate(members[np.sort(first)])}
        members = np.array([labels[m] for m in members])
        if len(labels) < 2:
            break
        counts = np.zeros((len(labels), by_column.shape[1]), np.int64)
        np.add.at(counts, members, by_column)
        estimate = model_estimate(counts) + columns
        if best is not None and estimate >= best[0]:
            break
        best = (estimate, members, counts)
        k *= 2
    return best


def test_column_groupings_match_the_numpy_grouping():
    """The compiled grouping (Lloyd's steps, relabelling, pricing, the doubling's stop) gives the
    classes and class histograms of the same algorithm in numpy, on columns of different scales and
    shapes, wide and narrow, including alike columns that collapse to one class."""
    rng = np.random.default_rng(11)
    tried = grouped = 0
    for _ in range(120):
        columns = int(rng.integers(2, 90))
        alphabet = int(rng.integers(2, 200))
        rows = int(rng.integers(5, 3000))
        scales = rng.uniform(0.2, 30, columns) if rng.random() < 0.8 else np.full(columns, 3.0)
        x = np.clip(np.round(rng.standard_normal((rows, columns)) * scales + alphabet // 2), 0, alphabet - 1)
        by_column = np.stack([np.bincount(c, minlength=alphabet) for c in x.T.astype(np.int64)])
        bits, _, totals = histogram.row_costs(by_column)
        order = np.argsort(bits / np.maximum(totals, 1), kind="stable")
        most = min(16, columns // 2)
        estimate, members, counts = histogram.column_groupings(by_column, by_column, order, most, 2, histogram.xlogx(),
                                                                   histogram.log_half())
        want = reference_groupings(by_column, by_column, order, most, 2)
        tried += 1
        if want is None:
            assert counts.shape[0] == 0
            continue
        grouped += 1
        assert np.array_equal(members, want[1]) and np.array_equal(counts, want[2])
        assert estimate == pytest.approx(want[0], rel=1e-12)
    assert grouped > tried // 2


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_block_column_histograms_against_add_at(dtype):
    """``block_column_histograms`` counts each code in its block and column (``np.add.at``): blocks
    that cut rows, a block shorter than a row, one block, a shifted alphabet; its sums are the
    columns' histograms and the blocks' (``column_histograms``, ``histograms``), and its classes per
    block are ``block_class_histograms``'. An alphabet that wraps past 0 both unsigned and signed is
    left to those."""
    rng = np.random.default_rng(3)
    mask = np.iinfo(dtype).max
    for n, columns, span in ((1001, 7, 64), (384 * 700, 384, 1 << 16), (5000, 10, 5000), (999, 37, 100),
                             (50, 10, 7), (4096 * 3, 3, 4096)):
        base = int(rng.integers(0, 100))
        alphabet = int(rng.integers(2, 60))
        x = (rng.integers(0, alphabet, n) + base).astype(dtype)
        got = histogram.block_column_histograms(x, columns, span, base, mask, alphabet)
        blocks = -(-n // span)
        want = np.zeros((blocks, columns, alphabet), np.int64)
        i = np.arange(n)
        np.add.at(want, (i // span, i % columns, x.astype(np.int64) - base), 1)
        assert np.array_equal(got.cells.reshape(blocks, columns, alphabet), want), (n, columns, span)
        assert np.array_equal(got.by_column, histogram.column_histograms(x, columns, base, mask, alphabet))
        assert np.array_equal(got.by_block, histogram.histograms(x, blocks, base, mask, alphabet, span))
        classes = rng.integers(0, 3, columns)
        assert np.array_equal(got.pool_classes(classes, 3),
                              histogram.block_class_histograms(x, columns, classes, 3, span, base, mask, alphabet))
    wide = ((200 + np.arange(400) % 200) & 255).astype(np.uint8)  # 200 codes past 0 unsigned and 0x80 signed
    assert histogram.block_column_histograms(wide, 4, 64, 200, 255, 200) is None


def test_block_column_sums_in_parts():
    """The counts by block and column summed in column runs on several tasks (``BlockColumns`` from
    ``SUMS_PARALLEL_MIN`` counts) are the one-task sums for any number of runs, including one run
    more than there are columns."""
    rng = np.random.default_rng(8)
    columns, alphabet = 384, 200
    x = rng.integers(0, alphabet, columns * 1000).astype(np.uint16)
    got = histogram.block_column_histograms(x, columns, 1 << 16, 0, 0xFFFF, alphabet)
    assert got.cells.size >= histogram.SUMS_PARALLEL_MIN
    assert np.array_equal(got.by_column, histogram.column_histograms(x, columns, 0, 0xFFFF, alphabet))
    assert np.array_equal(got.by_block, histogram.histograms(x, got.cells.shape[0], 0, 0xFFFF, alphabet, 1 << 16))
    want = histogram._block_column_sums(got.cells, columns, alphabet)
    for parts in (1, 2, 3, 7):
        sums = histogram._block_column_sums_parallel(got.cells, columns, alphabet, parts)
        assert all(np.array_equal(a, b) for a, b in zip(sums, want)), parts
    small = histogram.block_column_histograms(x[:5 * 7 * 30], 7, 64, 0, 0xFFFF, alphabet)
    assert np.array_equal(histogram._block_column_sums_parallel(small.cells, 7, alphabet, 8)[0], small.by_column)
