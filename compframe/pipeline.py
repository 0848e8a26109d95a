"""quantize -> encode -> decode -> dequantize, each stage timed, and the quantizer's promise checked.

``compress`` and ``decompress`` are the library's two halves (``cf.compress`` and ``cf.decompress``
call them); ``measure`` runs the same two halves on one array, timing each stage, and returns the
metrics of ``compframe.metrics`` for it: the encode time includes building the frame and the decode
time includes parsing it (header, checksums, plugins rebuilt from the header), as for a library user.

Thread policy: these functions are the only place where compframe sets numba's thread count
(``kernels.targets.cpu_threads_for``, from the field's number of values); plugins never change it.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any

import numpy as np

from . import container, decoding, metrics
from .base import Encoder, ErrorBound, Quantized, Quantizer
from .kernels.targets import cpu_threads_for


def _header(quantizer: Quantizer, encoder: Encoder, bound: ErrorBound | None, q: Quantized) -> dict[str, Any]:
    fmt, options = _config(encoder, encoder.split_config)
    return {
        "quantizer": _config(quantizer, quantizer.format_config),
        "encoder": fmt,  # what decoding needs; run-time options only for the record
        "encoder_options": options,
        "shape": list(q.shape),
        "dtype": q.dtype,
        "bound": None if bound is None else {"mode": bound.mode, "value": bound.value},
        "meta": q.meta,
    }


_CONFIGS: dict[int, tuple[Any, Any, Any]] = {}
"""``id(plugin) -> (plugin, a deep copy of its config, its header config)``: the last plugins seen."""


def _config(plugin: Quantizer | Encoder, build):
    """``build()`` (the plugin's config for a header), rebuilt only when ``plugin`` is new or its
    config differs from the copy kept (a small frame's header took about 10 us to rebuild each time).
    The entry holds the plugin, so its id cannot be reused by another object meanwhile."""
    hit = _CONFIGS.get(id(plugin))
    if hit is not None and hit[0] is plugin and hit[1] == plugin.config:
        return hit[2]
    value = build()
    if len(_CONFIGS) >= 32:
        _CONFIGS.pop(next(iter(_CONFIGS)))
    _CONFIGS[id(plugin)] = (plugin, copy.deepcopy(plugin.config), value)
    return value


def encode_quantized(q: Quantized, quantizer: Quantizer, encoder: Encoder, bound: ErrorBound | None) -> bytes:
    """Encode ``q``'s code arrays and build the frame; the code arrays are released as they are
    encoded (``q.codes`` is emptied), so the codes and the frame are never in memory together."""
    header = _header(quantizer, encoder, bound, q)
    streams = {name: encoder.encode_parts(q.codes.pop(name)) for name in list(q.codes)}
    return container.dumps(header, streams, q.side)


def compress(x: np.ndarray, quantizer: Quantizer, encoder: Encoder, bound: ErrorBound | None,
             meta: dict[str, Any] | None = None, quantize_kwargs: dict[str, Any] | None = None) -> bytes:
    """Compress ``x`` into a self-describing frame (``meta``: extra JSON-able header entries;
    ``quantize_kwargs``: run-time options of this quantizer's ``quantize``, e.g. ``value_range``
    for one that declares ``takes_value_range``)."""
    with cpu_threads_for(np.size(x)):
        q = quantizer.quantize(x, bound, **(quantize_kwargs or {}))
        q.meta.update(meta or {})
        return encode_quantized(q, quantizer, encoder, bound)


def parse(frame: bytes, device: Any = None) -> tuple[container.Frame, Quantizer, Encoder]:
    """The parsed frame, its quantizer and a decoder for its encoder's streams (running on the CPU
    unless ``device`` is a CUDA device); ``FrameError`` if damaged (``compframe.decoding``)."""
    f = container.loads(frame)
    return (f, *decoding.plugins(f.header, decoding.decode_device(device)))


def decode_quantized(f: container.Frame, encoder: Encoder, quantizer: Quantizer | None = None) -> Quantized:
    """The frame's codes, side arrays and meta, every stream checked against the header's shape
    (``Quantizer.code_layout``) before it is decoded."""
    if quantizer is None:
        quantizer = decoding.plugins(f.header)[0]
    return decoding.decode_codes(f, quantizer, encoder, decoding.header_quantized(f, quantizer))


def decompress_frame(frame: bytes, max_bytes: int | None = None, device: Any = None) -> tuple[np.ndarray, dict[str, Any]]:
    """The array rebuilt from a frame's bytes alone (numpy, on the host), and the frame's header.

    Any frame that cannot be decoded raises ``FrameError``; decoding allocates at most ``max_bytes``
    (default ``limits.default_max_bytes(len(frame))``) for the arrays the frame decides.
    """
    return decoding.decode(frame, max_bytes, device)


def roundtrip(x: np.ndarray, quantizer: Quantizer, bound: ErrorBound | None,
              quantize_kwargs: dict[str, Any] | None = None) -> tuple[Quantized, np.ndarray]:
    """``x`` quantized and dequantized at once (no encoding), on the threads ``compress`` would use
    (``quantize_kwargs`` as in ``compress``)."""
    with cpu_threads_for(np.size(x)):
        q = quantizer.quantize(x, bound, **(quantize_kwargs or {}))
        return q, quantizer.dequantize(q)


def dequantize_frame(f: container.Frame, encoder: Encoder, quantizer: Quantizer) -> np.ndarray:
    """A parsed frame's array, decoded with plugins the caller already holds (none rebuilt from the
    header), on the threads ``decompress`` would use for the frame's shape."""
    with cpu_threads_for(int(np.prod(f.header["shape"]))):
        return quantizer.dequantize(decode_quantized(f, encoder, quantizer))


def decompress(frame: bytes, max_bytes: int | None = None) -> np.ndarray:
    """Rebuild the array from a frame's bytes alone (a damaged frame raises ``FrameError``)."""
    return decompress_frame(frame, max_bytes)[0]


def promise_ok(quantizer: Quantizer, q: Quantized, x: np.ndarray, x_hat: np.ndarray, stats: dict) -> bool:
    """Whether the quantizer kept its declared promise on this field.

    ``error_bound``: every finite element within ``meta['abs_bound']`` (float64 check, the same
    arithmetic the quantizer's own check uses) and every non-finite element bit-identical.
    ``bit_budget``: every code fits its ``code_bits`` and codes plus side data stay within
    ``bits_per_value``.
    """
    if quantizer.guarantee == "error_bound":
        return bool(stats["nonfinite_ok"] and stats["max_abs_error"] <= q.meta["abs_bound"])
    n = max(int(np.prod(q.shape)), 1)
    bits = 8 * q.side_nbytes
    for name, codes in q.codes.items():
        width = int(q.meta["code_bits"][name])
        low, high = (-(2 ** (width - 1)), 2 ** (width - 1)) if np.issubdtype(codes.dtype, np.signedinteger) \
            else (0, 2**width)
        if codes.size and not (low <= int(codes.min()) and int(codes.max()) < high):
            return False
        bits += codes.size * width
    return bits / n <= q.meta["bits_per_value"] * (1 + 1e-9)


def _timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def _parse_and_decode(frame: bytes) -> tuple[Quantized, Quantizer, container.Frame]:
    """What ``decompress`` does before dequantizing: parse the frame, rebuild the plugins, decode."""
    f, quantizer, encoder = parse(frame)
    return decode_quantized(f, encoder, quantizer), quantizer, f


def measure(x: np.ndarray, quantizer: Quantizer, encoders: Encoder | list[Encoder], bound: ErrorBound | None,
            bandwidths_gbps=(5.0,), work: int | None = None) -> list[dict[str, Any]]:
    """Run the four stages on ``x``, time each, check the promise; one metrics dict per encoder.

    The field is quantized once; each encoder encodes the same codes into a frame (timed with the
    frame's building), the frame is parsed back from bytes and decoded (timed together, checked
    bit-exact) and dequantized, so every result covers the library's whole path. Numba's threads
    follow the same policy as ``compress`` for a field of ``work`` values (default ``x.size``; a
    warm-up on a slice passes the full field's size, so it runs the same parallel-or-not path).
    Each result holds the seconds of every stage (``quantize_s``, ...) besides the throughputs.
    """
    with cpu_threads_for(np.size(x) if work is None else work):
        return _measure(x, quantizer, encoders, bound, bandwidths_gbps)


def _measure(x, quantizer, encoders, bound, bandwidths_gbps):
    encoders = [encoders] if isinstance(encoders, Encoder) else list(encoders)
    x = np.asarray(x)
    q, t_q = _timed(quantizer.quantize, x, bound)
    n, nbytes = x.size, x.nbytes
    entropy = sum(metrics.entropy_bits(c) * c.size for c in q.codes.values()) / n if n else 0.0
    results = []
    for encoder in encoders:
        frame, t_e = _timed(encode_quantized, dataclasses.replace(q, codes=dict(q.codes)), quantizer, encoder, bound)
        (q2, quantizer2, parsed), t_d = _timed(_parse_and_decode, frame)
        for name, codes in q.codes.items():
            if not np.array_equal(codes, q2.codes[name]):
                raise AssertionError(f"encoder '{encoder.plugin_id}' did not round-trip code array '{name}'")
        x_hat, t_dq = _timed(quantizer2.dequantize, q2)
        stats = metrics.error_stats(x, x_hat)
        code_stream = sum(s.nbytes for s in parsed.code_streams().values())
        result = {
            "encoder": encoder.plugin_id,
            "n_values": n,
            "input_bytes": nbytes,
            "frame_bytes": len(frame),
            "code_stream_bytes": code_stream,
            "side_bytes": q.side_nbytes,
            "compression_ratio": nbytes / len(frame),
            "bits_per_value": 8 * len(frame) / n if n else 0.0,
            "entropy_bits": entropy,
            "entropy_efficiency": (entropy * n / 8) / code_stream if code_stream else 1.0,
            **metrics.stage_rates(nbytes, {"quantize": t_q, "encode": t_e, "decode": t_d, "dequantize": t_dq}),
            **{k: v for k, v in stats.items() if k != "nonfinite_ok"},
            "bound_ok": promise_ok(quantizer, q, x, x_hat, stats),
            "abs_bound": q.meta.get("abs_bound"),
            "budget_bits_per_value": q.meta.get("bits_per_value"),
            "outliers": q.meta.get("outliers", 0),
        }
        result.update(metrics.speedups(result["compression_ratio"], result, bandwidths_gbps))
        results.append(result)
    return results
