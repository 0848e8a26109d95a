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
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

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


LANES_MIN = 16
"""Words per row from which ``_row_hash`` takes four words at a time. Below it, one chain of xor,
multiply and shift per word: the chains of neighbouring rows overlap there (2048 x 64 int8 codes,
8 words a row: 18 us with either hash)."""


@numba.njit(inline="always", cache=True)
def _row_hash(w, r, width):
    """A 64-bit hash of the words of row ``r``. Rows of ``LANES_MIN`` words or more: four words at a
    time into four independent products (one chain per word ran at about 6 cycles per 8 bytes: 0.24
    ms of MiniLM's 4096 x 384 int8 codes, 0.55 ms of its int16 codes), folded and mixed at the end so
    that the slot's low bits depend on every bit of the row."""
    if width < LANES_MIN:
        h = np.uint64(width)
        for k in range(width):
            h = (h ^ w[r, k]) * _MUL
            h ^= h >> np.uint64(29)
        return h
    h0 = np.uint64(width)
    h1 = h2 = h3 = np.uint64(0)
    k = 0
    while k + 4 <= width:
        h0 = (h0 ^ w[r, k]) * _MUL
        h1 = (h1 ^ w[r, k + 1]) * _MUL
        h2 = (h2 ^ w[r, k + 2]) * _MUL
        h3 = (h3 ^ w[r, k + 3]) * _MUL
        k += 4
    while k < width:
        h0 = (h0 ^ w[r, k]) * _MUL
        k += 1
    h = h0 ^ (h1 >> np.uint64(16) | h1 << np.uint64(48)) ^ (h2 >> np.uint64(32) | h2 << np.uint64(32)) \
        ^ (h3 >> np.uint64(48) | h3 << np.uint64(16))
    h ^= h >> np.uint64(32)
    h *= _MUL
    return h ^ (h >> np.uint64(29))


@numba.njit(cache=True, nogil=True)
def _first_copies_words(w, size):
    n, width = w.shape
    table = np.full(size, -1, np.int64)
    src = np.full(n, -1, np.int64)
    for r in range(n):
        slot = np.int64(_row_hash(w, r, width) & np.uint64(size - 1))
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


@numba.njit(cache=True, nogil=True)
def split_rows(table, src):
    """The rows of ``table`` that ``src`` (from ``first_copies``) marks as first copies, in order, and
    for the repeats: the gap (rows) since the previous repeat and the kept row each one repeats."""
    n, width = table.shape
    repeats = 0
    for r in range(n):
        repeats += src[r] >= 0
    kept = np.empty((n - repeats, width), table.dtype)
    gaps = np.empty(repeats, np.int64)
    refs = np.empty(repeats, np.int64)
    kept_index = np.empty(n, np.int64)
    k = 0
    d = 0
    last = -1
    for r in range(n):
        if src[r] < 0:
            for j in range(width):
                kept[k, j] = table[r, j]
            kept_index[r] = k
            k += 1
        else:
            gaps[d] = r - last - 1
            refs[d] = kept_index[src[r]]
            last = r
            d += 1
    return kept, gaps, refs


@numba.njit(cache=True, nogil=True)
def join_rows(kept, gaps, refs, out):
    """Inverse of ``split_rows`` into ``out`` (rows x width); False if the references do not fit:
    a gap that runs past the kept rows or the array, or a reference to a row not yet seen."""
    rows, width = out.shape
    unique = kept.shape[0]
    k = 0
    r = 0
    for d in range(gaps.size):
        g = gaps[d]
        if g < 0 or k + g > unique or r + g >= rows:
            return False
        for _ in range(g):
            for j in range(width):
                out[r, j] = kept[k, j]
            k += 1
            r += 1
        if refs[d] < 0 or refs[d] >= k:
            return False
        s = refs[d]
        for j in range(width):
            out[r, j] = kept[s, j]
        r += 1
    if k + rows - r != unique:
        return False
    while r < rows:
        for j in range(width):
            out[r, j] = kept[k, j]
        k += 1
        r += 1
    return True


@numba.njit(cache=True, nogil=True)
def gather_columns(a, order):
    """The columns of ``a`` (rows x columns) in ``order``, each as a row of the result: ``out[k] =
    a[:, order[k]]``, 8 rows of ``a`` at a time: for each column, the 8 values of those rows go to 8
    consecutive places of the output (a fixed-length inner loop that the compiler unrolls and
    vectorises), and only 8 rows of ``a`` are live at a time, so a row length that is a multiple of
    4 KiB does not evict them from one cache set."""
    n, m = a.shape
    out = np.empty((m, n), a.dtype)
    i0 = 0
    while i0 + 8 <= n:
        for k in range(m):
            j = order[k]
            for i in range(8):
                out[k, i0 + i] = a[i0 + i, j]
        i0 += 8
    for i in range(i0, n):
        for k in range(m):
            out[k, i] = a[i, order[k]]
    return out


def columns_first(a, order=None):
    """``gather_columns(a, order)`` (``order`` None: ``a.T`` as a new C-contiguous array). Codes of 1
    or 2 bytes go by tiles (``_tiled``: 4096 x 384 int8 0.52-0.70 -> 0.20-0.22 ms, int16 0.64-1.08 ->
    0.23 ms here); others by bands of 16 rows where a row of ``a`` is not a multiple of 1 KiB (16
    rows 4 KiB apart would share a cache set and evict each other)."""
    order = np.arange(a.shape[1]) if order is None else order
    if a.itemsize in _WORD and a.flags.c_contiguous:
        return _by_tiles(a, a.shape[0], order, False)
    return _gather_columns16(a, order) if (a.shape[1] * a.itemsize) % 1024 else gather_columns(a, order)


def rows_first(a, order=None):
    """``scatter_columns(a, order)`` (``order`` None: ``a.T`` as a new C-contiguous array): codes of 1
    or 2 bytes by tiles (``_tiled``: 384 x 4096 back to rows, int8 0.37-0.61 -> 0.17-0.21 ms, int16
    0.48-0.75 -> 0.22 ms here)."""
    order = np.arange(a.shape[0]) if order is None else order
    if a.itemsize in _WORD and a.flags.c_contiguous:
        return _by_tiles(a, a.shape[1], order, True)
    return scatter_columns(a, order)


def _by_tiles(a, rows, order, scatter):
    """``_tiled`` from the C-contiguous 2-D array ``a`` of 1- or 2-byte codes (as unsigned words) into
    a new ``a.shape[::-1]`` array: ``rows`` rows on the row-major side, ``scatter`` as there."""
    out = np.empty((a.shape[1], a.shape[0]), a.dtype)
    word = _WORD[a.itemsize]
    _tiled(a.reshape(-1).view(word), out.reshape(-1).view(word), rows, order, scatter)
    return out


_WORD = {1: np.dtype(np.uint8), 2: np.dtype(np.uint16)}

TILE = 32
"""Values a side of ``_tiled``'s tiles (vectors of 32 or 64 bytes: 16 took 1.4-1.9x longer here)."""

BAND = 128
"""Bytes of each column-side row that a pass of ``_tiled`` completes: whole cache lines, so that those
rows' lines (a power-of-two stride apart, so in one cache set) need not stay resident."""


@intrinsic
def _tile(typingctx, src, src_at, dst, dst_at, n):
    """Transpose an ``n x n`` tile (``n`` a literal power of two): the vector of ``n`` values at
    ``src[src_at[r]:]`` is row ``r``; column ``c`` goes to ``dst[dst_at[c]:]``. log2(n) rounds of
    interleaving pairs of vectors (LLVM's target-independent ``shufflevector``: unpack or permute
    instructions on x86, lowered for any target), no bounds checked: the caller keeps every vector
    inside its array."""
    if not isinstance(n, types.IntegerLiteral) or src.dtype != dst.dtype:
        return None
    size = n.literal_value
    sig = types.none(src, src_at, dst, dst_at, n)

    def codegen(context, builder, signature, args):
        sa, oa, da, pa = (context.make_array(t)(context, builder, v)
                          for t, v in zip((src, src_at, dst, dst_at), args[:4]))
        vt = ir.VectorType(context.get_data_type(src.dtype), size)
        i32 = ir.IntType(32)

        def at(array, offsets, k):
            off = builder.load(builder.gep(offsets.data, [ir.Constant(ir.IntType(64), k)]))
            return builder.bitcast(builder.gep(array.data, [off]), vt.as_pointer())

        v = [builder.load(at(sa, oa, r), align=1) for r in range(size)]
        h = size // 2
        lo = ir.Constant(ir.VectorType(i32, size), [x for k in range(h) for x in (k, size + k)])
        hi = ir.Constant(ir.VectorType(i32, size), [x for k in range(h, size) for x in (k, size + k)])
        for _ in range(size.bit_length() - 1):  # after log2(n) rounds v[c] is column c
            v = [w for k in range(h) for w in (builder.shuffle_vector(v[k], v[k + h], lo),
                                               builder.shuffle_vector(v[k], v[k + h], hi))]
        for c in range(size):
            builder.store(v[c], at(da, pa, c), align=1)
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(cache=True, nogil=True)
def _tiled(src, dst, rows, order, scatter):
    """The permuted transpose between a ``rows x m`` row-major array and its ``m`` columns in ``order``
    (``m = order.size``; flat arrays of the same size): ``gather_columns`` from ``src`` (row-major)
    into ``dst`` (columns), or with ``scatter`` its inverse. By ``TILE x TILE`` tiles (``_tile``): a band
    of ``BAND`` bytes of rows at a time, within it each run of ``TILE`` consecutive columns, tile by tile
    down the band; the values past whole tiles one at a time."""
    m = order.size
    row_of = np.empty(m, np.int64)
    for k in range(m):
        row_of[order[k]] = k
    rm = np.empty(TILE, np.int64)  # offsets on the row-major side
    cm = np.empty(TILE, np.int64)  # and on the columns' side
    tall = rows // TILE * TILE
    wide = m // TILE * TILE
    band = max(BAND // src.itemsize, TILE)
    for b0 in range(0, tall, band):
        for j0 in range(0, wide, TILE):
            for i0 in range(b0, min(b0 + band, tall), TILE):
                for r in range(TILE):
                    rm[r] = (i0 + r) * m + j0
                    cm[r] = row_of[j0 + r] * rows + i0
                if scatter:
                    _tile(src, cm, dst, rm, TILE)
                else:
                    _tile(src, rm, dst, cm, TILE)
    for i in range(rows):
        for j in range(wide if i < tall else 0, m):
            if scatter:
                dst[i * m + j] = src[row_of[j] * rows + i]
            else:
                dst[row_of[j] * rows + i] = src[i * m + j]


@numba.njit(cache=True, nogil=True)
def _gather_columns16(a, order):
    n, m = a.shape
    out = np.empty((m, n), a.dtype)
    i0 = 0
    while i0 + 16 <= n:
        for k in range(m):
            j = order[k]
            for i in range(16):
                out[k, i0 + i] = a[i0 + i, j]
        i0 += 16
    for i in range(i0, n):
        for k in range(m):
            out[k, i] = a[i, order[k]]
    return out


@numba.njit(cache=True, nogil=True)
def scatter_columns(a, order):
    """Inverse of ``gather_columns``: the rows of ``a`` (columns x rows) back as the columns
    ``order`` names, ``out[:, order[k]] = a[k]``: ``transpose`` with its source rows looked up through
    the inverse of ``order`` (8 output columns at a time, written together)."""
    m, n = a.shape
    row_of = np.empty(m, np.int64)
    for k in range(m):
        row_of[order[k]] = k
    out = np.empty((n, m), a.dtype)
    c0 = 0
    while c0 + 8 <= m:
        r0, r1, r2, r3 = row_of[c0], row_of[c0 + 1], row_of[c0 + 2], row_of[c0 + 3]
        r4, r5, r6, r7 = row_of[c0 + 4], row_of[c0 + 5], row_of[c0 + 6], row_of[c0 + 7]
        for i in range(n):
            out[i, c0] = a[r0, i]
            out[i, c0 + 1] = a[r1, i]
            out[i, c0 + 2] = a[r2, i]
            out[i, c0 + 3] = a[r3, i]
            out[i, c0 + 4] = a[r4, i]
            out[i, c0 + 5] = a[r5, i]
            out[i, c0 + 6] = a[r6, i]
            out[i, c0 + 7] = a[r7, i]
        c0 += 8
    for c in range(c0, m):
        for i in range(n):
            out[i, c] = a[row_of[c], i]
    return out
