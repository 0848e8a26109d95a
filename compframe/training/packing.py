"""One frame per destination: several tables' slices, each with its own error bound, in one frame.

The exchange's unit is a ``[rows, dim]`` slice of one table's pooled lookup; in ``pack=slice`` every
slice is a frame of its own, whose fixed cost (header, checksums, plugin calls: tens of microseconds)
outweighs the work on 8 KiB of data. ``pack`` puts the slices of ``n`` tables bound for one rank into
one frame of shape ``[n, rows, dim]``:

- each slice is quantized by the run's quantizer exactly as in ``pack=slice`` (same bound, same
  ``value_range``), into its own part of one code buffer, so its codes, centre, step and outliers
  are the ones its own frame would hold;
- the frame is an ordinary frame of that quantizer (int8, int16: ``compframe.plugins.quantizers.uniform``)
  in its per-chunk form: ``meta.chunk`` = ``rows * dim`` and the side arrays ``chunk_centre`` and
  ``chunk_step`` give each slice its own centre and step; the outliers' indices count from the
  start of the buffer. ``cf.decompress`` reads it like any frame, and every slice decodes to the
  values (bit for bit) that its own frame decodes to, hence within its own table's bound;
- the codes are encoded once, as one stream.

``meta.abs_bound`` is the largest of the slices' bounds (the frame's promise for every element);
``meta.abs_bounds`` lists each slice's own, which is half its ``chunk_step``.

Bytes per table: each slice is charged its own side data (its outliers and its centre and step)
exactly, and the shared bytes (frame prefix and header, the code stream) in proportion to the
order-0 entropy of its codes (estimated from ``ENTROPY_SAMPLES`` of them, summed over the code bytes'
positions: an upper bound of the codes' own entropy for int16), or equally where every slice's is zero. The charges sum to the frame's size.
"""

from __future__ import annotations

import math

import numpy as np

from ..base import Encoder, ErrorBound, Quantized, Quantizer
from ..kernels.targets import cpu_threads_for
from ..pipeline import dequantize_frame, encode_quantized
from ..container import loads
from ..plugins.quantizers.uniform import UniformQuantizer

CHUNK_SIDE_BYTES = 16
"""The side bytes of one slice's plan: its centre and step (float64 each)."""
ENTROPY_SAMPLES = 512
"""Codes per slice from which its share of the shared bytes is estimated."""


def packable(quantizer: Quantizer | None) -> bool:
    """Whether ``quantizer``'s frames can hold slices with plans of their own (int8, int16)."""
    return isinstance(quantizer, UniformQuantizer)


def pack(slices: list[np.ndarray], bounds: list[ErrorBound], ranges: list[tuple[float, float, int]],
         quantizer: Quantizer, encoder: Encoder) -> tuple[bytes, list[int]]:
    """The frame of ``slices`` (float arrays of one shape ``[rows, dim]``, each quantized with its
    ``abs`` bound and, where its ``ranges`` entry counts finite values, that ``(min, max)`` as its
    ``value_range``), and the bytes of the frame charged to each slice (see the module doc)."""
    if not slices:
        raise ValueError("pack needs at least one slice")
    shape = slices[0].shape
    if any(s.shape != shape for s in slices) or any(b.mode != "abs" for b in bounds):
        raise ValueError(f"pack takes slices of one shape with abs bounds, got {[s.shape for s in slices]}, "
                         f"{[str(b) for b in bounds]}")
    n, size = len(slices), math.prod(shape)
    codes = np.empty((n, *shape), dtype=quantizer.code_dtype)
    with cpu_threads_for(n * size):
        parts = [quantizer.quantize(s, b, out=codes[j], value_range=(r[0], r[1]) if r[2] else None)
                 for j, (s, b, r) in enumerate(zip(slices, bounds, ranges, strict=True))]
        q = _stack(parts, codes, size, [r[2] > 0 for r in ranges])
        own = [p.side_nbytes + (CHUNK_SIDE_BYTES if size else 0) for p in parts]
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


def _stack(parts: list[Quantized], codes: np.ndarray, size: int, found: list[bool]) -> Quantized:
    """One ``Quantized`` of the parts' codes (already in ``codes``), in the per-chunk form (empty
    slices: one plan); ``found``: whether each part has a finite value (its ``meta.range`` counts)."""
    if any(set(p.side) != {"outlier_index", "outlier_bits"} for p in parts):
        raise ValueError("pack: a slice was quantized in chunks of its own (a slice of >= ONE_PASS_MIN values "
                         "without a finite value); use pack=slice")
    total = codes.size
    index = np.concatenate([p.side["outlier_index"].astype(np.uint64) + j * size for j, p in enumerate(parts)])
    index = index.astype(np.uint32 if total < 2**32 else np.uint64)
    bits = np.concatenate([p.side["outlier_bits"] for p in parts])
    metas = [p.meta for p in parts]
    ranges = [m["range"] for m, f in zip(metas, found) if f] or [[0.0, 0.0]]
    lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    ebs = [m["abs_bound"] for m in metas]
    side = {"outlier_index": index, "outlier_bits": bits}
    widest = max(range(len(metas)), key=lambda j: metas[j]["step"])  # the frame's plan: never tighter than a slice's
    meta = {"centre": metas[widest]["centre"], "step": metas[widest]["step"], "abs_bound": max(ebs), "value_range": hi - lo,
            "range": [lo, hi], "outliers": int(index.size), "abs_bounds": ebs}
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


def _charge(total: int, own: list[int], weights: np.ndarray) -> list[int]:
    """``own[j]`` plus a share of ``total - sum(own)`` by ``weights`` (equal if they sum to 0), as
    integers that sum to ``total``."""
    shared = total - sum(own)
    w = np.asarray(weights, np.float64)
    w = w if w.sum() > 0 else np.ones(len(own))
    edges = np.floor(shared * np.cumsum(w) / w.sum() + 0.5).astype(np.int64)
    edges[-1] = shared
    return [o + int(s) for o, s in zip(own, np.diff(edges, prepend=0))]
