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


@numba.njit(cache=True)
def row_costs(counts):
    """For each row of ``counts`` ``[tables, K]``: its symbols' order-0 entropy in bits (the row's
    counts coded with a table fitted to them), the number of symbols present and the row's total."""
    tables, alphabet = counts.shape
    bits = np.zeros(tables, np.float64)
    used = np.zeros(tables, np.int64)
    totals = np.zeros(tables, np.int64)
    for t in range(tables):
        n = 0
        for s in range(alphabet):
            n += counts[t, s]
        acc = 0.0
        k = 0
        for s in range(alphabet):
            c = counts[t, s]
            if c > 0:
                acc += c * np.log2(n / c)
                k += 1
        bits[t] = acc
        used[t] = k
        totals[t] = n
    return bits, used, totals


@numba.njit(cache=True)
def nearest_classes(counts, members):
    """Lloyd's step for grouping the rows of ``counts`` ``[columns, K]`` into classes that share a table:
    the class tables are fitted to the rows ``members`` assigns to them (class ``c`` = rows with
    ``members == c``, Krichevsky-Trofimov smoothed so that an absent symbol costs finite bits), and each
    row goes to the class whose table codes it in the fewest bits. Returns the new ``members`` and the
    total bits of that assignment."""
    columns, alphabet = counts.shape
    classes = members.max() + 1
    pooled = np.zeros((classes, alphabet), np.int64)
    for j in range(columns):
        for s in range(alphabet):
            pooled[members[j], s] += counts[j, s]
    cost = np.empty((alphabet, classes), np.float64)  # -log2 p_c(s), symbol-major: a row reads one line per symbol
    for c in range(classes):
        total = 0
        for s in range(alphabet):
            total += pooled[c, s]
        for s in range(alphabet):
            cost[s, c] = np.log2((total + alphabet / 2) / (pooled[c, s] + 0.5))
    out = np.empty(columns, np.int64)
    bits = np.empty(classes, np.float64)
    total_bits = 0.0
    for j in range(columns):
        bits[:] = 0.0
        for s in range(alphabet):
            n = counts[j, s]
            if n > 0:
                for c in range(classes):
                    bits[c] += n * cost[s, c]
        best = 0
        for c in range(1, classes):
            if bits[c] < bits[best]:
                best = c
        out[j] = best
        total_bits += bits[best]
    return out, total_bits
