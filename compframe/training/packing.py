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


import numpy as np

from ..base import Encoder, ErrorBound, Quantized, Quantizer
from ..container import loads
from ..kernels.targets import cpu_threads_for
from ..kernels.uniform import finite_range
from ..pipeline import dequantize_frame, encode_quantized
from ..plugins.quantizers.uniform import OUTLIER_SIDE, UniformQuantizer

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
    """Each table's pooled lookup ``xs[j]`` (float, ``[B, dim]``) quantized with ``bounds[j]``, its
    finite range found in one pass (``kernels.uniform.finite_range``) and passed as ``value_range``.

    A ``rel`` bound becomes ``abs`` over that range, at least ``TINY`` (a constant or all-non-finite
    lookup then keeps a positive step, which a chunk's plan needs; its values come back exact)."""
    parts = []
    for x, b in zip(xs, bounds, strict=True):
        with cpu_threads_for(x.size):
            lo, hi, n = finite_range(x.reshape(-1))
            b = ErrorBound("abs", max(b.absolute(hi - lo), TINY))
            parts.append(quantizer.quantize(x, b, value_range=(lo, hi) if n else None))
    return parts


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
