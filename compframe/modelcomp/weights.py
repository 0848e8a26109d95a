"""A layer's weight through a quantizer: as a frame (``cf.compress``/``cf.decompress``) with its size,
or as a fake-quantized copy for training (the same values without building a frame).

Two sizes are reported per weight. ``frame_bytes`` is the real stored size: the frame's bytes with
the run's encoder (codes entropy- or LZ-coded, side data, mask, header). ``format_bits`` is the
size of the representation as the format packs it, independent of the encoder: the quantizer's
declared ``bits_per_value`` (every code at its bit width, side data such as scales, codebooks and
low-rank factors, and the pruning mask, 1 bit per weight) times the number of weights; quantizers
without a declared budget (the error-bounded ``int8``/``int16``) count their codes at the width of
their dtype plus their side data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import compress, decompress, pipeline
from ..base import ErrorBound, Quantizer
from ..registry import resolve


def as_matrix(w: np.ndarray) -> np.ndarray:
    """The weight as the quantizer sees it: conv kernels ``(out, in, *k)`` as ``(out, in·prod(k))``
    matrices (a view), so that block formats block along the whole fan-in rather than along a
    kernel row of 3 and matrix quantizers get one row per output channel; 1-D and 2-D unchanged."""
    return w.reshape(w.shape[0], -1) if w.ndim > 2 else w


def build(config: dict[str, Any], schedule) -> tuple[Quantizer, ErrorBound | None]:
    """The quantizer of ``config`` and its bound: the schedule's (``table=None``, ``iteration=None``)
    for error-bounded quantizers, None for bit-budget ones."""
    quantizer = resolve("quantizer", config)
    return quantizer, schedule.bound(None, None) if quantizer.guarantee == "error_bound" else None


def _refusal(name: str, quantizer: Quantizer, error: Exception) -> ValueError:
    return ValueError(f"layer '{name}': quantizer '{quantizer.plugin_id}' cannot represent its values: {error}")


def fake_quantize(name: str, w: np.ndarray, quantizer: Quantizer, bound: ErrorBound | None) -> np.ndarray:
    """``dequantize(quantize(w))``: the values a frame of ``w`` decompresses to (encoders are lossless)."""
    try:
        w_hat = quantizer.dequantize(quantizer.quantize(w, bound))
    except (ValueError, TypeError) as e:
        raise _refusal(name, quantizer, e) from None
    return np.ascontiguousarray(w_hat, dtype=w.dtype).reshape(w.shape)


def compress_weight(name: str, w: np.ndarray, quantizer: Quantizer, bound: ErrorBound | None,
                    encoder) -> tuple[bytes, np.ndarray]:
    """The frame of ``as_matrix(w)`` (``cf.compress``) and the weight rebuilt from its bytes
    (``cf.decompress``), in ``w``'s shape."""
    try:
        frame = compress(as_matrix(w), quantizer=quantizer, encoder=encoder, bound=bound)
    except (ValueError, TypeError) as e:
        raise _refusal(name, quantizer, e) from None
    return frame, np.asarray(decompress(frame)).reshape(w.shape)


def format_bits(frame: bytes) -> float:
    """The representation's size in bits, as the format packs it (see the module docstring)."""
    f, _, encoder = pipeline.parse(frame)
    meta, n = f.header["meta"], int(np.prod(f.header["shape"]))
    if "bits_per_value" in meta:
        return float(meta["bits_per_value"]) * n
    q = pipeline.decode_quantized(f, encoder)
    return 8.0 * (q.codes_nbytes + q.side_nbytes)


def pruned_fraction(frame: bytes) -> float:
    """Fraction of the weights removed by the pruning mask (0 for a frame without pruning)."""
    header = pipeline.parse(frame)[0].header
    n = int(np.prod(header["shape"]))
    if header["quantizer"]["id"] != "prune" or n == 0:
        return 0.0
    return 1.0 - header["meta"]["kept"] / n
