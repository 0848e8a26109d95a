"""The histogram kernels' paths (``compframe.kernels.histogram``: the codes counted as ``x - off`` on an
unsigned or a signed view where the alphabet does not wrap there, or subtracted and masked where it
does) against ``np.bincount`` per block and per column, on one thread and on all of numba's threads:
random codes, one symbol, two alternating symbols, full int8/int16 ranges, odd column counts, sizes
that are not a multiple of the unroll, and empty input."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from compframe.kernels import histogram


def reference(x, base, mask, alphabet):
    return np.bincount((x.astype(np.int64) - base) & mask, minlength=alphabet).astype(np.int64)


def check(x, base, mask, alphabet, columns):
    """Every entry point against the reference, with the result's dtype and shape."""
    one = histogram.histograms(x, 1, base, mask, alphabet)
    assert one.dtype == np.int64 and one.shape == (1, alphabet)
    assert np.array_equal(one[0], reference(x, base, mask, alphabet))
    for tables in (2, 3):
        span = -(-x.size // tables) if x.size else 1
        blocks = histogram.histograms(x, tables, base, mask, alphabet, span)
        assert blocks.dtype == np.int64 and blocks.shape == (tables, alphabet)
        for t in range(tables):
            assert np.array_equal(blocks[t], reference(x[t * span:(t + 1) * span], base, mask, alphabet)), (tables, t)
    if x.size % columns == 0:
        by_column = histogram.column_histograms(x, columns, base, mask, alphabet)
        assert by_column.dtype == np.int64 and by_column.shape == (columns, alphabet)
        grid = x.reshape(-1, columns)
        for j in range(columns):
            assert np.array_equal(by_column[j], reference(grid[:, j], base, mask, alphabet)), j


def cases():
    """(name, codes as stored, base, mask, alphabet, columns): bases below, across and above the
    signed and unsigned wrap points, so that all three paths run."""
    rng = np.random.default_rng(11)
    out = []
    for dtype in (np.uint8, np.uint16):
        mask = int(np.iinfo(dtype).max)
        half = (mask + 1) // 2
        for name, lo, width in (("unsigned", 3, 51), ("signed, around 0", -25, 51), ("signed, at the bottom", -half, 40),
                                ("unsigned, at the top", mask - 40, 41), ("wraps both", half - 10, mask + 1 - 5)):
            alphabet = width
            base = lo & mask
            for rows, columns in ((0, 3), (1, 1), (7, 3), (1001, 3), (601, 383), (2500, 64), (37, 1)):
                n = rows * columns
                codes = ((rng.integers(0, alphabet, n) + base) & mask).astype(dtype)
                out.append((f"{dtype.__name__} {name} {rows}x{columns}", codes, base, mask, alphabet, columns))
            n = 3001 * 3
            for kind, codes in (("one symbol", np.full(n, (base + alphabet - 1) & mask, dtype)),
                                ("two alternating", ((np.arange(n) % 2 * (alphabet - 1) + base) & mask).astype(dtype))):
                out.append((f"{dtype.__name__} {name} {kind}", codes, base, mask, alphabet, 3))
        full = np.arange(mask + 1, dtype=dtype).repeat(3 if dtype == np.uint8 else 1)
        rng.shuffle(full)
        for base in (0, 1, half, mask):  # the whole range: counted with the mask wherever base > 0
            out.append((f"{dtype.__name__} full range, base {base}", full, base, mask, mask + 1, 1))
    return out


@pytest.fixture(params=["one thread", "all threads"])
def threads(request):
    previous = numba.get_num_threads()
    numba.set_num_threads(1 if request.param == "one thread" else numba.config.NUMBA_NUM_THREADS)
    yield
    numba.set_num_threads(previous)


def test_counts_match_bincount(threads):
    for name, codes, base, mask, alphabet, columns in cases():
        try:
            check(codes, base, mask, alphabet, columns)
        except AssertionError as e:
            raise AssertionError(name) from e


def test_signed_codes_counted_like_their_unsigned_view(threads):
    """Codes handed over as int8/int16 (not the coders' unsigned view) give the same counts."""
    rng = np.random.default_rng(5)
    for dtype, utype in ((np.int8, np.uint8), (np.int16, np.uint16)):
        x = rng.integers(-30, 30, 383 * 700).astype(dtype)
        mask = int(np.iinfo(utype).max)
        base = -30 & mask
        for fn, args in ((histogram.histograms, (1,)), (histogram.column_histograms, (383,))):
            got = fn(x, *args, base, mask, 60)
            assert np.array_equal(got, fn(x.view(utype), *args, base, mask, 60))
        assert np.array_equal(histogram.histograms(x, 1, base, mask, 60)[0], reference(x.view(utype), base, mask, 60))


def test_paths_taken():
    """The view each alphabet gets: unsigned where it does not cross 0, signed where it does not cross
    the sign bit, none (subtract and mask) where it crosses both."""
    x = np.zeros(4, np.uint8)
    assert histogram._shifted(x, 3, 255, 51)[0].dtype == np.uint8
    assert histogram._shifted(x, 231, 255, 51)[0].dtype == np.int8 and histogram._shifted(x, 231, 255, 51)[1] == -25
    assert histogram._shifted(x, 100, 255, 256) is None
    assert histogram._shifted(x.astype(np.uint64), 0, 2**64 - 1, 4) is None  # 64-bit codes: the masked kernels
    assert histogram._shifted(x, 0, 15, 4) is None  # a mask narrower than the codes


def test_value_range_in_each_type(threads):
    """(min, max) as int64 values in every integer type (compared in the codes' own type, uint64 as the
    int64 of its bits), at sizes around the kernel's parts."""
    rng = np.random.default_rng(3)
    for dtype in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64):
        info = np.iinfo(dtype)
        for n in (1, 2, 7, 65, 1001, 300001):
            for x in (rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True),
                      np.array([info.max, info.min] * n, dtype)[:n], np.full(n, info.min, dtype)):
                as64 = x.view(np.int64) if dtype == np.uint64 else x.astype(np.int64)
                lo, hi = histogram.value_range(x)
                assert (lo, hi) == (as64.min(), as64.max()), (dtype, n)
