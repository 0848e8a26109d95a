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
