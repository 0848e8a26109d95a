"""One frame per destination: the slices of several tables, each with its own error bound, in one frame.

The exchange's unit is a ``[rows, dim]`` slice of one table's pooled lookup; in ``pack=slice`` every
slice is a frame of its own, whose fixed cost (header, checksums, plugin calls: tens of microseconds)
outweighs the work on 8 KiB of data. Here instead:

- ``quantize_tables``: each table's whole pooled lookup ``[B, dim]`` is quantized once by the run's
  quantizer with its table's bound (``rel``: over the whole lookup, as the study does; its finite
  range found in one pass and handed over as ``value_range``), so every slice of it has the table's
  bound, centre and step;
- ``pack``: the rows of one destination rank, ``[lo, hi)`` of every table, go into one frame of shape
  ``[n, rows, dim]``: an ordinary frame of that quantizer (int8, int16:
  ``compframe.plugins.quantizers.uniform``) in its per-chunk form, ``meta.chunk`` = ``rows * dim``,
  the side arrays ``chunk_centre`` and ``chunk_step`` giving each table's slice its table's plan, the
  outliers' indices counted from the start of the frame. ``cf.decompress`` reads it like any frame;
  each slice decodes to the rows of its table's quantized lookup, bit for bit (the dequantizer's
  arithmetic does not depend on the chunking), hence within its table's bound. The codes are
  encoded once, as one stream.

``meta.abs_bound`` (and the header's ``abs`` bound) is the largest of the tables' bounds, the frame's
promise for every element; ``meta.abs_bounds`` lists each table's own (half its ``chunk_step``).

Bytes per table: each slice is charged its own side data (its outliers and its centre and step)
exactly, and the shared bytes (frame prefix and header, the code stream) in proportion to the
order-0 entropy of its codes (estimated from ``ENTROPY_SAMPLES`` of them, summed over the code bytes'
positions: an upper bound of the codes' own entropy for int16), or equally where every slice's is
zero. The charges sum to the frame's size.
"""

from __future__ import annotations


import numba
import numpy as np

from ..base import Encoder, ErrorBound, Quantized, Quantizer
from ..container import loads
from ..kernels.targets import cpu_threads_for
from ..kernels.uniform import CHUNK, finite_range, gather_outliers, quantize_stack
from ..pipeline import dequantize_frame, encode_quantized
from ..plugins.quantizers.uniform import OUTLIER_SIDE, UniformQuantizer
from ..plugins.quantizers.uniform import _limits as code_limits

CHUNK_SIDE_BYTES = 16
"""The side bytes of one slice's plan: its table's centre and step (float64 each)."""
TINY = float(np.finfo(np.float32).tiny)
"""The least bound of a table (see ``quantize_tables``)."""
ENTROPY_SAMPLES = 512
"""Codes per slice from which its share of the shared bytes is estimated."""


def packable(quantizer: Quantizer | None) -> bool:
    """Whether ``quantizer``'s frames can hold slices with plans of their own (int8, int16)."""
    return isinstance(quantizer, UniformQuantizer)


def quantize_tables(xs: list[np.ndarray], bounds: list[ErrorBound], quantizer: Quantizer) -> list[Quantized]:
    """Each table's pooled lookup ``xs[j]`` (float, ``[B, dim]``) quantized with ``bounds[j]`` over its
    finite range, as ``quantizer.quantize(xs[j], abs bound, value_range=(min, max))`` does.

    A ``rel`` bound becomes ``abs`` over that range, at least ``TINY`` (a constant or all-non-finite
    lookup then keeps a positive step, which a chunk's plan needs; its values come back exact).
    float32 lookups of one shape (the exchange's) are quantized in one kernel call over their stack
    (``kernels.uniform.quantize_stack``; ``_stacked``), the others, and any lookup holding NaN or
    ±inf, one by one (``_one_table``): the same codes, side data and meta either way."""
    parts: list[Quantized | None] = [None] * len(xs)
    if xs and all(x.dtype == np.float32 and x.shape == xs[0].shape for x in xs):
        parts = _stacked(xs, bounds, quantizer)
    return [p if p is not None else _one_table(x, b, quantizer) for p, x, b in zip(parts, xs, bounds, strict=True)]


def _one_table(x: np.ndarray, bound: ErrorBound, quantizer: Quantizer) -> Quantized:
    """One lookup through ``quantizer.quantize`` with its finite range as ``value_range``."""
    with cpu_threads_for(x.size):
        lo, hi, n = finite_range(x.reshape(-1))
        b = ErrorBound("abs", max(bound.absolute(hi - lo), TINY))
        return quantizer.quantize(x, b, value_range=(lo, hi) if n else None)


def _stacked(xs: list[np.ndarray], bounds: list[ErrorBound], quantizer: Quantizer) -> list[Quantized | None]:
    """``quantize_tables`` for float32 lookups of one shape in one ``quantize_stack`` call; None for a
    lookup the kernel leaves (NaN or ±inf, empty, a plan without the fast path). Its result is
    ``quantize``'s with the range hint: for finite data the hint is the exact range, so ``quantize``
    keeps its one fast pass with the plan of that range and the bound given, which is this plan."""
    shape, n = xs[0].shape, len(xs)
    stack = np.stack([x.reshape(-1) for x in xs])
    codes = np.empty(stack.shape, dtype=quantizer.code_dtype)
    rels = np.array([b.value if b.mode == "rel" else 0.0 for b in bounds])
    abss = np.array([b.value if b.mode == "abs" else 0.0 for b in bounds])
    if any(b.mode not in ("rel", "abs") or not b.value > 0 for b in bounds):
        return [None] * n
    with cpu_threads_for(stack.size):
        plans, counts, marks = quantize_stack(stack, codes, rels, abss, TINY, *code_limits(quantizer.code_dtype),
                                              threads=numba.get_num_threads())
        return [_table(quantizer, stack[j], codes[j], plans[j], counts[j], marks[j], shape) if plans[j, 0] else None
                for j in range(n)]


def _table(quantizer: Quantizer, flat: np.ndarray, codes: np.ndarray, plan: np.ndarray, counts: np.ndarray,
           marks: np.ndarray, shape: tuple[int, ...]) -> Quantized:
    """The ``Quantized`` of one row of ``quantize_stack`` (``plan``: done, min, max, eb, centre, step;
    ``marks``: its blocks holding an outlier), its outliers gathered as ``quantize`` gathers them."""
    _, lo, hi, eb, centre, step = (float(v) for v in plan)
    n_out = int(counts.sum())
    index, bits = np.empty(n_out, np.uint32 if flat.size < 2**32 else np.uint64), np.empty(n_out, np.uint32)
    if n_out:
        nc = counts.size
        found = gather_outliers(flat, codes, np.full(nc, centre), np.full(nc, step), np.full(nc, eb),
                                *code_limits(quantizer.code_dtype), counts, CHUNK, index, bits, marks)
        if not np.array_equal(found, counts):
            raise RuntimeError(f"pack: the outlier gather found {found.tolist()[:8]} per chunk where the codes pass "
                               f"counted {counts.tolist()[:8]} (first 8 chunks)")
    meta = {"centre": centre, "step": step, "abs_bound": eb, "value_range": hi - lo, "range": [lo, hi],
            "outliers": n_out}
    return Quantized(codes={"codes": codes.reshape(shape)}, side={"outlier_index": index, "outlier_bits": bits},
                     meta=meta, shape=tuple(shape), dtype="float32")


def pack(parts: list[Quantized], lo: int, hi: int, quantizer: Quantizer, encoder: Encoder) -> tuple[bytes, list[int]]:
    """The frame of rows ``[lo, hi)`` of each table's quantized lookup (``quantize_tables``: one shape
    ``[B, dim]``, one plan each) and the bytes of the frame charged to each table (see the module doc)."""
    if not parts:
        raise ValueError("pack needs at least one table")
    shape = parts[0].shape
    if len(shape) != 2 or any(p.shape != shape or set(p.side) != OUTLIER_SIDE for p in parts):
        raise ValueError(f"pack takes [B, dim] lookups of one shape, each quantized with one plan; got "
                         f"{[(p.shape, sorted(p.side)) for p in parts]}")
    n, dim = len(parts), shape[1]
    size = (hi - lo) * dim
    index_dtype = np.uint64 if n * size >= 2**32 else np.uint32
    codes = np.empty((n, hi - lo, dim), dtype=quantizer.code_dtype)
    index, bits = [np.empty(0, index_dtype)], [np.empty(0, parts[0].side["outlier_bits"].dtype)]
    own = [CHUNK_SIDE_BYTES if size else 0] * n
    for j, p in enumerate(parts):
        codes[j] = p.codes["codes"][lo:hi]
        i = p.side["outlier_index"]
        if i.size:
            keep = (i >= lo * dim) & (i < hi * dim)
            index.append((i[keep].astype(np.int64) - lo * dim + j * size).astype(index_dtype))
            bits.append(p.side["outlier_bits"][keep])
            own[j] += index[-1].nbytes + bits[-1].nbytes
    with cpu_threads_for(n * size):
        q = _stack(parts, codes, np.concatenate(index), np.concatenate(bits), size)
        weights = _entropy_bits(codes.reshape(n, -1))
        frame = encode_quantized(q, quantizer, encoder, ErrorBound("abs", q.meta["abs_bound"]))
    return frame, _charge(len(frame), own, weights)


def unpack(buf, n: int, shape: tuple[int, ...], quantizer: Quantizer, encoder: Encoder) -> np.ndarray:
    """The ``[n, *shape]`` slices of a frame built by ``pack`` (decoded with the caller's plugins);
    ``ValueError`` if the frame holds another shape."""
    f = loads(buf)
    if tuple(f.header["shape"]) != (n, *shape):
        raise ValueError(f"packed frame holds {f.header['shape']}, expected {[n, *shape]}")
    return dequantize_frame(f, encoder, quantizer)


def _stack(parts: list[Quantized], codes: np.ndarray, index: np.ndarray, bits: np.ndarray, size: int) -> Quantized:
    """The frame's ``Quantized``: ``codes`` ``[n, rows, dim]`` with each table's plan per chunk of
    ``size`` values (one plan where the slices are empty) and the outliers of all of them."""
    metas = [p.meta for p in parts]
    ebs = [m["abs_bound"] for m in metas]
    lo, hi = min(m["range"][0] for m in metas), max(m["range"][1] for m in metas)
    widest = max(range(len(metas)), key=lambda j: metas[j]["step"])  # the frame's plan: never tighter than a slice's
    side = {"outlier_index": index, "outlier_bits": bits}
    meta = {"centre": metas[widest]["centre"], "step": metas[widest]["step"], "abs_bound": max(ebs),
            "value_range": hi - lo, "range": [lo, hi], "outliers": int(index.size), "abs_bounds": ebs}
    if size:
        side.update(chunk_centre=np.array([m["centre"] for m in metas], np.float64),
                    chunk_step=np.array([m["step"] for m in metas], np.float64))
        meta["chunk"] = size
    return Quantized(codes={"codes": codes}, side=side, meta=meta, shape=codes.shape, dtype=parts[0].dtype)


def _entropy_bits(codes: np.ndarray) -> np.ndarray:
    """Per row of ``codes`` (``[n, size]``): the order-0 entropy in bits of each byte position of its
    codes, summed over the positions, estimated from about ``ENTROPY_SAMPLES`` evenly spaced codes of
    the row (a histogram of all of them costs as much as a third of the pack) and times ``size``."""
    n, size = codes.shape
    raw = codes[:, ::max(1, size // ENTROPY_SAMPLES)].view(np.uint8).reshape(n, -1, codes.dtype.itemsize)
    rows = np.arange(n, dtype=np.int32)[:, None] << 8
    out = np.zeros(n)
    for b in range(raw.shape[2]):
        counts = np.bincount((rows | raw[:, :, b]).reshape(-1), minlength=256 * n).reshape(n, 256)
        p = np.where(counts > 0, counts / max(raw.shape[1], 1), 1.0)  # 0 log 0 = 0
        out -= size * (p * np.log2(p)).sum(axis=1)
    return out


def _charge(total: int, own: list[int], weights) -> list[int]:
    """``own[j]`` plus a share of ``total - sum(own)`` by ``weights`` (equal if they sum to 0), as
    integers that sum to ``total`` (each share the difference of two rounded cumulative shares)."""
    shared = total - sum(own)
    w = [float(v) for v in weights]
    if not sum(w) > 0:
        w = [1.0] * len(own)
    whole, acc, edge, out = sum(w), 0.0, 0, []
    for o, v in zip(own, w):
        acc += v
        nxt = int(shared * acc / whole + 0.5)
        out.append(o + nxt - edge)
        edge = nxt
    out[-1] += shared - edge
    return out
