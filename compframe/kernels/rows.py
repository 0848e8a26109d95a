"""Repeated rows of a 2-D code array (host side): the first step of the entropy coders' ``dedup`` option.

Pooled embedding lookups repeat whole rows (a popular item looked up on its own, or the same bag
twice in a batch); an order-0 entropy coder pays for every copy again. ``first_copies`` finds, for
every row, the earlier row it repeats, with one pass of open-addressing hashing over the rows'
bytes and a byte-exact comparison on every hash hit (so a hash collision can cost time, never
correctness).
"""

from __future__ import annotations

import numba
import numpy as np

_MUL = np.uint64(0x9E3779B97F4A7C15)


def first_copies(rows: np.ndarray) -> np.ndarray:
    """For each row of the C-contiguous 2-D array ``rows``: -1 if no earlier row equals it, else the
    index of the first row it equals (int64 array of ``rows.shape[0]``)."""
    n = rows.shape[0]
    if n == 0:
        return np.empty(0, np.int64)
    raw = np.ascontiguousarray(rows).view(np.uint8).reshape(n, -1)
    size = 1 << max(4, int(2 * n - 1).bit_length())
    if raw.shape[1] % 8:  # zero-pad each row to whole 8-byte words (a copy; equal rows stay equal)
        padded = np.zeros((n, -(-raw.shape[1] // 8) * 8), np.uint8)
        padded[:, :raw.shape[1]] = raw
        raw = padded
    return _first_copies_words(raw.view(np.uint64), size)


@numba.njit(cache=True, nogil=True)
def _first_copies_words(w, size):
    n, width = w.shape
    table = np.full(size, -1, np.int64)
    src = np.full(n, -1, np.int64)
    for r in range(n):
        h = np.uint64(width)
        for k in range(width):
            h = (h ^ w[r, k]) * _MUL
            h ^= h >> np.uint64(29)
        slot = np.int64(h & np.uint64(size - 1))
        while True:
            j = table[slot]
            if j < 0:
                table[slot] = r
                break
            same = True
            for k in range(width):
                if w[j, k] != w[r, k]:
                    same = False
                    break
            if same:
                src[r] = j
                break
            slot = (slot + 1) & (size - 1)
    return src

