"""Host-side (CPU) statistics the entropy coders need before coding: value range and histograms."""

from __future__ import annotations

import numba
import numpy as np


def value_range(x):
    """(min, max) of a non-empty 1-D integer array, in parallel (uint64 values taken as int64, as
    their bits)."""
    x = x.view(np.int64) if x.dtype == np.uint64 else x
    return _value_range(x, -(-x.size // (4 * numba.get_num_threads())))


def histograms(x, tables, base, mask, alphabet, span=0):
    """Counts of ``(x - base) & mask`` in each of ``tables`` consecutive runs of ``span`` values of ``x``
    (the last one cut at the end; ``span`` 0: ``x.size // tables``, equal runs): int64 ``[tables, alphabet]``."""
    split = max(1, numba.get_num_threads() // tables)
    lanes = 8 if tables * split * alphabet <= 1 << 20 else 1  # bound the scratch to 32 MB
    counts = _part_rows(tables * split, lanes * alphabet, np.uint32 if x.size < 1 << 32 else np.int64)
    shifted = _shifted(x, base, mask, alphabet)
    if shifted is None:
        _histograms(x, tables, base, mask, alphabet, split, lanes, span or x.size // tables, counts)
    else:
        _histograms_shifted(*shifted, tables, alphabet, split, lanes, span or x.size // tables, counts)
    return _sum_parts(counts, tables, lanes, alphabet)


PART_GAP = 512
"""Bytes of zeros ``_part_rows`` leaves between two parts' counts (rows start on a 64-byte line):
two threads counting codes of one table, or of 64 columns, into neighbouring rows wrote their most
frequent symbols' counts within a few hundred bytes of each other, the end of one row and the start
of the next, and slowed each other down (one table, 131 072 int8 codes of pooled lookups on two
threads: 34 us with rows end to end, 21-23 with 96 bytes or more between them; 64 columns: 35.5 us,
24 with 512 bytes; docs/benchmarks.md, thirteenth session)."""


def _part_rows(parts, n, dtype):
    """Zeroed counts of ``parts`` parts, ``n`` entries each: ``[parts, >= n]``, each row padded to whole
    64-byte lines and ``PART_GAP`` bytes more (read only ``[:, :n]``)."""
    item = np.dtype(dtype).itemsize
    stride = -(-n * item // 64) * 64 + (PART_GAP if parts > 1 else 0)
    return np.zeros((parts, stride // item), dtype)


@numba.njit(cache=True)
def _sum_parts(counts, groups, lanes, n):
    """``counts`` ``[groups * parts, >= lanes * n]`` (a group's parts one after the other, each part
    ``lanes`` runs of ``n`` counts) summed over each group's parts and lanes: int64 ``[groups, n]``
    (integer sums, the same as numpy's ``sum(axis=1, dtype=np.int64)``, which took 102 us on one uint16
    part of 384 x 501 entries where this loop takes about a third of that)."""
    parts = counts.shape[0] // groups
    out = np.empty((groups, n), np.int64)
    for g in range(groups):
        dst = out[g]
        first = counts[g * parts]
        for i in range(n):
            dst[i] = first[np.uint64(i)]
        for j in range(1, parts * lanes):
            row = counts[g * parts + j // lanes]
            o = (j % lanes) * n
            for i in range(n):
                dst[i] += row[np.uint64(o + i)]
    return out


def _shifted(x, base, mask, alphabet):
    """``(y, off)``: ``x`` viewed as unsigned or signed integers ``y`` such that ``(x - base) & mask``
    is ``y - off`` for every value of the alphabet (its ``alphabet`` values from ``base`` on, modulo
    ``mask + 1``, do not cross 0 unsigned, or do not cross 0x80.. signed), or None (then the kernels
    subtract and mask). Counting ``y - off`` the kernels fold ``- off`` into each column's or lane's
    table address: per code a load and an increment, no subtraction or mask (MiniLM 4096 x 384 column
    histograms: int8 0.44 -> 0.37 ns per code, int16 0.58 -> 0.45, one thread)."""
    size = 8 * x.dtype.itemsize
    if x.dtype.kind not in "ui" or size > 32 or mask != (1 << size) - 1 or not 0 <= base <= mask:
        return None
    if base + alphabet <= mask + 1:
        return x.view(f"u{size // 8}"), base
    signed = base - (mask + 1) if base > mask >> 1 else base
    if signed + alphabet <= (mask + 1) >> 1:
        return x.view(f"i{size // 8}"), signed
    return None


# Indices are cast to unsigned integers: numba then adds no negative-index wraparound, and the loops vectorize.


@numba.njit(parallel=True, cache=True)
def _value_range(x, step):
    parts = -(-x.size // step)
    lo = np.empty(parts, np.int64)
    hi = np.empty(parts, np.int64)
    for p in numba.prange(parts):
        a = p * step
        b = min(a + step, x.size)
        mn = x[np.uint64(a)]  # in the codes' own type: 64 int8 lanes a vector, not 8 int64 (0.11 -> 0.02 ms
        mx = mn  # on 1.5 M int8 codes); every type but uint64 (viewed as int64) orders as int64 does
        for i in range(a + 1, b):
            v = x[np.uint64(i)]
            mn = min(mn, v)
            mx = max(mx, v)
        lo[p] = mn
        hi[p] = mx
    return lo.min(), hi.max()


@numba.njit(parallel=True, cache=True)
def _histograms(x, tables, base, mask, alphabet, split, lanes, rows, counts):
    """Into ``counts`` ``[tables * split, lanes * alphabet]`` (zeroed; uint32 where no part reaches
    2**32 values): ``lanes`` interleaved sub-histograms per part, value ``i`` of a group of 8 into
    sub-histogram ``i % lanes``, so that a repeated symbol does not wait on its own previous
    increment (8 sub-histograms of 32-bit counts: 0.3 ns per int8 code here, 4 of 64 bits: 0.43)."""
    parts = tables * split
    step = -(-rows // split)
    for p in numba.prange(parts):
        t = p // split
        a = t * rows + (p % split) * step
        b = min(a + step, (t + 1) * rows, x.size)
        c = counts[p]
        i = a
        while i + 8 <= b:
            for k in range(8):
                c[np.uint64((k % lanes) * alphabet + ((np.int64(x[np.uint64(i + k)]) - base) & mask))] += 1
            i += 8
        while i < b:
            c[np.uint64((np.int64(x[np.uint64(i)]) - base) & mask)] += 1
            i += 1


@numba.njit(parallel=True, cache=True)
def _histograms_shifted(x, off, tables, alphabet, split, lanes, rows, counts):
    """``_histograms`` counting ``x - off`` (``_shifted``)."""
    parts = tables * split
    step = -(-rows // split)
    for p in numba.prange(parts):
        t = p // split
        a = t * rows + (p % split) * step
        b = min(a + step, (t + 1) * rows, x.size)
        c = counts[p]
        i = a
        while i + 8 <= b:
            for k in range(8):
                c[np.uint64((k % lanes) * alphabet - off + np.int64(x[np.uint64(i + k)]))] += 1
            i += 8
        while i < b:
            c[np.uint64(np.int64(x[np.uint64(i)]) - off)] += 1
            i += 1


BAND = 192
"""At most this many columns counted together over a part's rows (equal bands): MiniLM's 384
columns in two bands of 192 (int8: 19.6 KB of counts, within L1) took 0.49-0.50 ms instead of 0.53
for int8 and 0.57-0.61 instead of 0.71-0.75 for int16 (one thread, two runs); bands of 128 or
fewer were slower (64: 0.90 ms int16 against 0.58 for 192)."""


def column_histograms(x, columns, base, mask, alphabet):
    """Counts of ``(x - base) & mask`` in each column of ``x`` taken as ``rows x columns`` (row-major,
    ``x.size % columns == 0``), without transposing it: int64 ``[columns, alphabet]``."""
    rows = x.size // columns
    split = max(1, min(numba.get_num_threads(), rows // 256, (1 << 22) // max(columns * alphabet, 1)))
    # the narrowest counts a part's rows cannot overflow: half the cache footprint of int32 with uint16
    # (384 x 501 int16 codes of 4096 rows: 1.0 -> 0.8 ms)
    narrow = np.uint16 if -(-rows // split) < 1 << 16 else np.int32  # a column's count never exceeds rows < 2**31
    counts = _part_rows(split, columns * alphabet, narrow)
    shifted = _shifted(x, base, mask, alphabet)
    if shifted is None:
        _column_histograms(x, columns, base, mask, alphabet, split, counts)
    else:
        bands = -(-columns // BAND)
        _column_histograms_shifted(*shifted, columns, alphabet, split, -(-columns // bands), counts)
    return _sum_parts(counts, 1, 1, columns * alphabet).reshape(columns, alphabet)


@numba.njit(parallel=True, cache=True)
def _column_histograms(x, columns, base, mask, alphabet, split, counts):
    rows = x.size // columns
    step = -(-rows // split)
    for p in numba.prange(split):
        c = counts[p]
        for r in range(p * step, min((p + 1) * step, rows)):
            row = r * columns
            for j in range(columns):  # neighbouring symbols go to different tables: no chain of increments
                c[np.uint64(j * alphabet + ((np.int64(x[np.uint64(row + j)]) - base) & mask))] += 1


@numba.njit(parallel=True, cache=True)
def _column_histograms_shifted(x, off, columns, alphabet, split, band, counts):
    """``_column_histograms`` counting ``x - off`` (``_shifted``), ``band`` columns at a time over a
    part's rows (``BAND``). Unrolling the columns by 4 was slower (0.37 -> 0.42 ns per int8 code),
    and so were 8 codes read as one uint64 (0.44): the loop is a load, an increment and the column's
    table address step."""
    rows = x.size // columns
    step = -(-rows // split)
    for p in numba.prange(split):
        _count_rows(x, off, columns, alphabet, band, p * step, min((p + 1) * step, rows), counts[p])


@numba.njit(inline="always", cache=True)
def _count_rows(x, off, columns, alphabet, band, r0, r1, c):
    """Into ``c`` (``[columns * K]``) the counts of ``x - off`` in each column over the whole rows
    ``[r0, r1)``, ``band`` columns at a time."""
    for j0 in range(0, columns, band):
        j1 = min(j0 + band, columns)
        for r in range(r0, r1):
            row = r * columns
            for j in range(j0, j1):
                c[np.uint64(j * alphabet - off + np.int64(x[np.uint64(row + j)]))] += 1


@numba.njit(inline="always", cache=True)
def _count_codes(x, off, columns, alphabet, lo, hi, c):
    """``_count_rows`` for the codes ``[lo, hi)`` one by one (rows cut by ``lo`` or ``hi``)."""
    for i in range(lo, hi):
        c[np.uint64((i % columns) * alphabet - off + np.int64(x[np.uint64(i)]))] += 1


class BlockColumns:
    """Counts of codes by block of ``span`` codes and column (``block_column_histograms``): the
    columns' histograms ``by_column`` int64 ``[columns, K]``, the blocks' ``by_block`` int64
    ``[blocks, K]``, and the counts of each block's columns (narrow, ``[blocks, columns * K]``),
    which ``pool_classes`` pools by class for mode 7."""

    def __init__(self, cells, columns, alphabet):
        self.cells, self.columns, self.alphabet = cells, columns, alphabet
        parts = min(numba.get_num_threads(), columns)
        if parts > 1 and cells.size >= SUMS_PARALLEL_MIN:  # MiniLM's 6 x 384 x 501 int16 cells: 0.26 -> 0.15-0.19 ms
            self.by_column, self.by_block = _block_column_sums_parallel(cells, columns, alphabet, parts)
        else:
            self.by_column, self.by_block = _block_column_sums(cells, columns, alphabet)

    def pool_classes(self, classes, tables):
        """The counts by block and class (``classes[j]`` of column ``j``, below ``tables``): int64
        ``[blocks * tables, K]``, block-major, as ``block_class_histograms`` counts them."""
        blocks = self.cells.shape[0]
        members = (np.arange(blocks)[:, None] * tables + np.asarray(classes, np.int64)).reshape(-1)
        return pool_rows(self.cells.reshape(blocks * self.columns, self.alphabet), members, blocks * tables)


SUMS_PARALLEL_MIN = 1 << 18
"""Counts by block and column from which ``BlockColumns`` sums them on the threads numba has (the
sums are of integers: the same in any order)."""


def block_column_histograms(x, columns, span, base, mask, alphabet):
    """``BlockColumns`` of ``x`` (rows of ``columns`` codes; block ``b`` the codes ``[b * span, (b + 1)
    * span)``, the last one cut at the end, blocks cutting rows anywhere) in one pass, or None where
    the codes' alphabet wraps (``_shifted``). It replaces two passes of ``auto`` on fields of several
    blocks, the columns' histograms and the blocks', and a third for mode 7 (a column histogram per
    block again, ``block_class_histograms``). The caller bounds ``blocks * columns * alphabet``."""
    shifted = _shifted(x, base, mask, alphabet)
    if shifted is None:
        return None
    blocks = -(-x.size // span)
    narrow = np.uint16 if span // columns + 2 < 1 << 16 else np.int32  # a column's count in a block
    cells = np.zeros((blocks, columns * alphabet), narrow)
    bands = -(-columns // BAND)
    _block_column_counts(*shifted, columns, alphabet, span, -(-columns // bands), cells)
    return BlockColumns(cells, columns, alphabet)


@numba.njit(parallel=True, cache=True)
def _block_column_counts(x, off, columns, alphabet, span, band, cells):
    """Into ``cells[b]`` the counts of ``x - off`` (``_shifted``) in each column over block ``b``: the
    codes before its first whole row and after its last one by one, its whole rows ``band`` columns
    at a time (``_count_rows``, as ``_column_histograms_shifted``)."""
    for b in numba.prange(cells.shape[0]):
        lo = b * span
        hi = min(lo + span, x.size)
        r0 = -(-lo // columns)
        r1 = max(r0, hi // columns)  # r1 == r0: a block within one row
        _count_codes(x, off, columns, alphabet, lo, min(r0 * columns, hi), cells[b])
        _count_codes(x, off, columns, alphabet, r1 * columns, hi, cells[b])
        _count_rows(x, off, columns, alphabet, band, r0, r1, cells[b])


@numba.njit(cache=True)
def _block_column_sums(cells, columns, alphabet):
    """``cells`` ``[blocks, columns * K]`` summed over the blocks (int64 ``[columns, K]``) and over the
    columns (int64 ``[blocks, K]``), in one read."""
    blocks = cells.shape[0]
    by_column = np.zeros((columns, alphabet), np.int64)
    by_block = np.zeros((blocks, alphabet), np.int64)
    for b in range(blocks):
        _add_columns(cells[b], 0, columns, alphabet, by_column, by_block[b])
    return by_column, by_block


@numba.njit(inline="always", cache=True)
def _add_columns(cells, j0, j1, alphabet, by_column, dst):
    """Add one block's counts of columns ``[j0, j1)`` (``cells``: ``[columns * K]``) to ``by_column`` and,
    summed over those columns, to ``dst`` ``[K]``."""
    for j in range(j0, j1):
        col = by_column[j]
        src = cells[j * alphabet:(j + 1) * alphabet]
        for s in range(alphabet):
            v = np.int64(src[s])
            col[s] += v
            dst[s] += v


@numba.njit(parallel=True, cache=True)
def _block_column_sums_parallel(cells, columns, alphabet, parts):
    """``_block_column_sums`` with the columns cut into ``parts`` runs, one per task: each task sums
    its columns over the blocks and keeps its share of each block's sum, added up at the end."""
    blocks = cells.shape[0]
    by_column = np.zeros((columns, alphabet), np.int64)
    shares = np.zeros((parts, blocks, alphabet), np.int64)
    step = -(-columns // parts)
    for p in numba.prange(parts):
        for b in range(blocks):
            _add_columns(cells[b], p * step, min((p + 1) * step, columns), alphabet, by_column, shares[p, b])
    by_block = np.zeros((blocks, alphabet), np.int64)
    for p in range(parts):
        for b in range(blocks):
            for s in range(alphabet):
                by_block[b, s] += shares[p, b, s]
    return by_column, by_block


def block_class_histograms(x, columns, classes, tables, span, base, mask, alphabet):
    """Counts of ``(x - base) & mask`` (``x`` in rows of ``columns`` codes) by block and class: code
    ``i`` counted in block ``i // span`` and class ``classes[i % columns]`` (below ``tables``):
    int64 ``[blocks * tables, alphabet]``, block-major (``ceil(x.size / span)`` blocks). Each block's
    whole rows by ``column_histograms``, pooled by class; the codes of the rows a block cuts, one by
    one (MiniLM's 4096 x 384 int8 codes, 6 blocks: 0.62 ms, int16 1.19 ms, one thread, ``--stages``).
    The caller guarantees the alphabet and the classes. ``auto`` pools these from
    ``block_column_histograms`` where that one pass was made (0.03 and 0.14 ms there), and counts
    them here where it was not (more counts by block and column than codes, an alphabet that wraps)."""
    blocks = -(-x.size // span)
    cls = np.asarray(classes, np.int64)
    out = np.zeros((blocks * tables, alphabet), np.int64)
    for b in range(blocks):
        lo, hi = b * span, min((b + 1) * span, x.size)
        r0, r1 = -(-lo // columns), hi // columns
        if r1 <= r0:
            _count_classes(x, lo, hi, columns, cls, base, mask, out, b * tables)
            continue
        _count_classes(x, lo, r0 * columns, columns, cls, base, mask, out, b * tables)
        _count_classes(x, r1 * columns, hi, columns, cls, base, mask, out, b * tables)
        by_column = column_histograms(x[r0 * columns:r1 * columns], columns, base, mask, alphabet)
        out[b * tables:(b + 1) * tables] += pool_rows(by_column, cls, tables)
    return out


@numba.njit(cache=True)
def _count_classes(x, lo, hi, columns, classes, base, mask, out, row):
    """Count ``x[lo:hi]`` into ``out[row + classes[i % columns]]`` (``block_class_histograms``' edges)."""
    for i in range(lo, hi):
        out[row + classes[i % columns], (np.int64(x[i]) - base) & mask] += 1


XLOGX_SIZE = 1 << 16
_TABLES = {}


def _table(name, values):
    """The read-only float64 table ``values(c)`` of ``c = arange(XLOGX_SIZE)``, built once per process by
    one vectorised call (numpy's log2 gives an element the same value at any position in an array, so a
    table's first ``n`` entries are what a table of ``n`` entries would hold)."""
    if name not in _TABLES:
        table = values(np.arange(XLOGX_SIZE, dtype=np.float64))
        table.flags.writeable = False
        _TABLES[name] = table
    return _TABLES[name]


def xlogx():
    """``c * log2(c)`` for ``c`` in ``[0, XLOGX_SIZE)`` (0 for 0)."""
    return _table("xlogx", lambda c: c * np.log2(np.where(c > 0, c, 1.0)))


def log_half():
    """``log2(c + 1/2)`` for ``c`` in ``[0, XLOGX_SIZE)`` (``column_groupings``' Krichevsky-Trofimov costs
    of a count ``c``)."""
    return _table("log_half", lambda c: np.log2(c + 0.5))


def column_sums(counts):
    """The rows of ``counts`` ``[rows, K]`` summed: int64 ``[1, K]`` (``pool_rows`` into one row, which adds
    the rows as vectors: 64 x 501 5.8 -> 4.6 us, 384 x 501 33 -> 26 against numpy's ``sum(axis=0)``, which
    goes column by column)."""
    return pool_rows(counts, np.zeros(len(counts), np.int64), 1)


def row_costs(counts):
    """For each row of ``counts`` ``[tables, K]`` (int64): its symbols' order-0 entropy in bits (the
    row's counts coded with a table fitted to them), the number of symbols present and the row's total.
    ``n log2 n - sum c log2 c`` with ``c log2 c`` looked up in a table of one vectorised log over
    ``0 .. max(counts)`` (a scalar log per entry was most of the cost; ``xlogx`` for counts below
    ``XLOGX_SIZE``) when that table is no longer than ``counts``; else a log per non-zero entry."""
    top = int(counts.max()) if counts.size else 0
    if top > max(counts.size, 1 << 12):
        return _row_costs(counts, np.empty(0))
    if top < XLOGX_SIZE:
        return _row_costs(counts, xlogx())
    c = np.arange(top + 1, dtype=np.float64)
    c[0] = 1.0
    return _row_costs(counts, c * np.log2(c))


@numba.njit(cache=True)
def _row_costs(counts, xlogx):
    tables, alphabet = counts.shape
    bits = np.zeros(tables, np.float64)
    used = np.zeros(tables, np.int64)
    totals = np.zeros(tables, np.int64)
    direct = xlogx.size == 0
    for t in range(tables):
        n = 0
        k = 0
        acc = 0.0
        row = counts[t]
        if direct:
            for s in range(alphabet):
                c = row[s]
                n += c
                if c > 0:
                    k += 1
                    acc += c * np.log2(c)
        else:  # branch-free (xlogx[0] is 0): sparse rows mispredicted the test; four sums in turn, not
            # one chain of floating-point adds (each waits for the one before)
            a0 = a1 = a2 = a3 = 0.0
            s = 0
            while s + 4 <= alphabet:
                c0, c1, c2, c3 = row[s], row[s + 1], row[s + 2], row[s + 3]
                n += c0 + c1 + c2 + c3
                k += (c0 > 0) + (c1 > 0) + (c2 > 0) + (c3 > 0)
                a0 += xlogx[np.uint64(c0)]
                a1 += xlogx[np.uint64(c1)]
                a2 += xlogx[np.uint64(c2)]
                a3 += xlogx[np.uint64(c3)]
                s += 4
            while s < alphabet:
                c0 = row[s]
                n += c0
                k += c0 > 0
                a0 += xlogx[np.uint64(c0)]
                s += 1
            acc = (a0 + a1) + (a2 + a3)
        bits[t] = n * np.log2(n) - acc if n > 0 else 0.0
        used[t] = k
        totals[t] = n
    return bits, used, totals


@numba.njit(cache=True)
def coarse_bins(by_column, total, bins):
    """``by_column`` ``[columns, K]`` summed over at most ``bins`` bins of consecutive symbols, each
    about an equal share of ``total`` (``[K]``, the columns' sum): a bin ends before the first symbol
    whose running total passes ``j / bins`` of the whole (``j = 1 .. bins - 1``), so a symbol more
    frequent than a share is a bin of its own. The numpy it replaces (``searchsorted`` of the running
    total, ``unique``, ``add.reduceat``; same bins, same sums) took 27-39 us on the bench's 2048 x 64
    int16 fields (a 501-symbol alphabet; a third to a half of ``entropy.column_classes``' time there),
    and 43, 202 and 277 us against this loop's 14.5, 89 and 133 on random counts of 64 x 501, 384 x 501
    and 512 x 553 (one thread; docs/benchmarks.md, sixteenth session)."""
    columns, alphabet = by_column.shape
    whole = np.int64(0)
    for s in range(alphabet):
        whole += total[s]
    edges = np.empty(bins + 1, np.int64)
    edges[0] = 0
    m = 1
    s = 0
    running = total[0]
    for j in range(1, bins):
        share = whole * j / bins
        while s < alphabet and running <= share:  # the first symbol whose running total passes the share
            s += 1
            if s < alphabet:
                running += total[s]
        if s < alphabet and s > edges[m - 1]:
            edges[m] = s
            m += 1
    edges[m] = alphabet
    out = np.zeros((columns, m), np.int64)
    for c in range(columns):
        row = by_column[c]
        for i in range(m):
            acc = np.int64(0)
            for t in range(edges[i], edges[i + 1]):
                acc += row[t]
            out[c, i] = acc
    return out


@numba.njit(cache=True, fastmath={"nsz", "arcp", "contract", "afn", "reassoc"})
def column_groupings(coarse, by_column, order, most, steps, xlogx, log_half):
    """The groupings of the columns into 2, 4, 8 ... ``most`` classes that share a table, the doubling
    stopped at the first count that does not lower the estimate (``entropy.column_classes``).

    Each grouping: the rows of ``coarse`` ``[columns, B]`` (the columns' histograms over a few bins) in
    ``order`` cut into equal runs, then ``steps`` of Lloyd's algorithm, each fitting the class tables
    to the rows assigned to them (Krichevsky-Trofimov smoothed, so that an absent bin costs finite
    bits) and moving every row to the class whose table codes it in the fewest bits (the first such
    class on ties); empty classes dropped, the rest numbered by first appearance. A grouping is priced
    by its classes' full histograms (``by_column`` ``[columns, K]`` pooled): their order-0 entropy,
    Rissanen's ``(k - 1) / 2 * log2(n)`` bits per table of ``k`` symbols used ``n`` times
    (``entropy.model_estimate``; ``c log2 c`` from the table ``xlogx`` where it holds ``c``), and a
    byte per column. A class table's cost of bin ``b`` is ``log2(n + B / 2) - log2(c_b + 1/2)``, the
    second term from the table ``log_half`` where it holds ``c_b`` (a scalar log per bin and step was
    a quarter of the call on 64 columns in 16 classes). Returns (estimate in bytes, class of each
    column (int64), the classes' histograms ``[classes, K]``); classes empty where every grouping
    collapses to one class. One compiled call: the doubling in numpy took 0.17-0.28 ms on 64
    columns, most of it per-call overhead."""
    columns, bins = coarse.shape
    dense = coarse.astype(np.float64)
    best = np.inf
    best_members = np.zeros(columns, np.int64)
    best_counts = np.zeros((0, by_column.shape[1]), np.int64)
    members = np.empty(columns, np.int64)
    k = 2
    while k <= most:
        for j in range(columns):
            members[order[j]] = j * k // columns
        cost = np.empty((k, bins), np.float64)
        for _ in range(steps):
            pooled = pool_rows(coarse, members, k)  # integer sums: exact in any order
            for c in range(k):
                total = 0
                for b in range(bins):
                    total += pooled[c, b]
                top = np.log2(total + bins / 2)
                for b in range(bins):
                    p = pooled[c, b]
                    cost[c, b] = top - (log_half[p] if p < log_half.size else np.log2(p + 0.5))
            for j in range(columns):
                low = np.inf
                pick = 0
                for c in range(k):
                    acc = 0.0
                    for b in range(bins):
                        acc += dense[j, b] * cost[c, b]
                    if acc < low:
                        low = acc
                        pick = c
                members[j] = pick
        relabelled, used = _by_first_appearance(members, k)
        if used < 2:
            break  # one class: the single table
        counts = pool_rows(by_column, relabelled, used)
        bits = 0.0
        for c in range(used):
            n = 0
            present = 0
            acc = 0.0
            for s in range(counts.shape[1]):
                v = counts[c, s]
                if v > 0:
                    n += v
                    present += 1
                    acc += xlogx[v] if v < xlogx.size else v * np.log2(v)
            if n > 0:
                bits += n * np.log2(n) - acc + (present - 1) / 2 * np.log2(n)
        estimate = bits / 8 + columns
        if estimate >= best:
            break  # more classes no longer pay for their tables
        best, best_members, best_counts = estimate, relabelled, counts
        k *= 2
    return best, best_members, best_counts


@numba.njit(cache=True)
def _by_first_appearance(members, classes):
    """``members`` (values below ``classes``) renumbered 0, 1, ... in order of first appearance, and
    the number of distinct values."""
    label = np.full(classes, -1, np.int64)
    out = np.empty(members.size, np.int64)
    used = 0
    for j in range(members.size):
        m = members[j]
        if label[m] < 0:
            label[m] = used
            used += 1
        out[j] = label[m]
    return out, used


@numba.njit(cache=True)
def pool_rows(counts, members, classes):
    """The rows of ``counts`` ``[rows, K]`` summed by class (``members``): int64 ``[classes, K]``."""
    rows, alphabet = counts.shape
    pooled = np.zeros((classes, alphabet), np.int64)
    for j in range(rows):
        dst = pooled[members[j]]  # row views: the loop vectorizes (384 x 501: 0.11 -> 0.03 ms)
        src = counts[j]
        for s in range(alphabet):
            dst[s] += src[s]
    return pooled
