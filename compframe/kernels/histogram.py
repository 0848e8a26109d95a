"""Host-side (CPU) statistics the entropy coders need before coding: value range and histograms."""

from __future__ import annotations

import numba
import numpy as np


def value_range(x):
    """(min, max) of a non-empty 1-D integer array, in parallel."""
    return _value_range(x, -(-x.size // (4 * numba.get_num_threads())))


def histograms(x, tables, base, mask, alphabet, span=0):
    """Counts of ``(x - base) & mask`` in each of ``tables`` consecutive runs of ``span`` values of ``x``
    (the last one cut at the end; ``span`` 0: ``x.size // tables``, equal runs): int64 ``[tables, alphabet]``."""
    split = max(1, numba.get_num_threads() // tables)
    lanes = 4 if tables * split * alphabet <= 1 << 20 else 1  # bound the scratch to 32 MB
    return _histograms(x, tables, base, mask, alphabet, split, lanes, span or x.size // tables)


# Indices are cast to unsigned integers: numba then adds no negative-index wraparound, and the loops vectorize.


@numba.njit(parallel=True, cache=True)
def _value_range(x, step):
    parts = -(-x.size // step)
    lo = np.empty(parts, np.int64)
    hi = np.empty(parts, np.int64)
    for p in numba.prange(parts):
        a = p * step
        b = min(a + step, x.size)
        mn = np.int64(x[np.uint64(a)])
        mx = mn
        for i in range(a + 1, b):
            v = np.int64(x[np.uint64(i)])
            mn = min(mn, v)
            mx = max(mx, v)
        lo[p] = mn
        hi[p] = mx
    return lo.min(), hi.max()


@numba.njit(parallel=True, cache=True)
def _histograms(x, tables, base, mask, alphabet, split, lanes, rows):
    parts = tables * split
    counts = np.zeros((parts, lanes * alphabet), np.int64)  # interleaved sub-histograms per part
    lane1, lane2, lane3 = (1 % lanes) * alphabet, (2 % lanes) * alphabet, (3 % lanes) * alphabet
    step = -(-rows // split)
    for p in numba.prange(parts):
        t = p // split
        a = t * rows + (p % split) * step
        b = min(a + step, (t + 1) * rows, x.size)
        c = counts[p]
        i = a
        while i + 4 <= b:  # a repeated symbol would otherwise wait on its own previous increment
            c[np.uint64((np.int64(x[np.uint64(i)]) - base) & mask)] += 1
            c[np.uint64(lane1 + ((np.int64(x[np.uint64(i + 1)]) - base) & mask))] += 1
            c[np.uint64(lane2 + ((np.int64(x[np.uint64(i + 2)]) - base) & mask))] += 1
            c[np.uint64(lane3 + ((np.int64(x[np.uint64(i + 3)]) - base) & mask))] += 1
            i += 4
        while i < b:
            c[np.uint64((np.int64(x[np.uint64(i)]) - base) & mask)] += 1
            i += 1
    return counts.reshape(tables, split * lanes, alphabet).sum(axis=1)


def column_histograms(x, columns, base, mask, alphabet):
    """Counts of ``(x - base) & mask`` in each column of ``x`` taken as ``rows x columns`` (row-major,
    ``x.size % columns == 0``), without transposing it: int64 ``[columns, alphabet]``."""
    rows = x.size // columns
    split = max(1, min(numba.get_num_threads(), rows // 256, (1 << 22) // max(columns * alphabet, 1)))
    return _column_histograms(x, columns, base, mask, alphabet, split)


@numba.njit(parallel=True, cache=True)
def _column_histograms(x, columns, base, mask, alphabet, split):
    rows = x.size // columns
    counts = np.zeros((split, columns * alphabet), np.int32)  # a column's count never exceeds rows < 2**31
    step = -(-rows // split)
    for p in numba.prange(split):
        c = counts[p]
        for r in range(p * step, min((p + 1) * step, rows)):
            row = r * columns
            for j in range(columns):  # neighbouring symbols go to different tables: no chain of increments
                c[np.uint64(j * alphabet + ((np.int64(x[np.uint64(row + j)]) - base) & mask))] += 1
    return counts.sum(axis=0, dtype=np.int64).reshape(columns, alphabet)
