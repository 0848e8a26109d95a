"""Decoding a frame safely: the header's plugins, shapes and streams checked before any data is decoded.

A frame is data, not code (docs/format.md, "What a frame promises"): its header names a quantizer and an
encoder by id, which are looked up in the registry (never imported by name), built from the header's
parameters (only the encoder's format parameters: ``Encoder.format_params``), and asked what the
frame must hold (``Quantizer.code_layout``). Each code stream's own dtype and shape must match that
before it is decoded, and every allocation is charged to the decode's byte budget
(``compframe.limits``). Anything that does not fit raises ``FrameError``; an exception of any other
type that a check missed is turned into one too (its message says so), so callers see one error type.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

from . import container, limits
from .base import Encoder, ErrorBound, Quantized, Quantizer
from .errors import ConfigError, FrameError, RegistryError
from .registry import plugin_class

CUDA_DEVICE = re.compile(r"cuda(:\d{1,3})?")
UNEXPECTED = "frame cannot be decoded (unexpected"
"""How the message of a ``FrameError`` starts when no check caught the problem first (the safety net)."""


def decode_device(device: Any) -> str:
    """``cuda`` when the caller asked for a result on a CUDA device (``"cuda"``, ``"cuda:1"``, a torch
    device), else ``cpu``: the device a GPU-capable decoder runs on. Never read from a header."""
    return "cuda" if device is not None and CUDA_DEVICE.fullmatch(str(device)) else "cpu"


def _build(kind: str, node: Any, build) -> Any:
    node = limits.mapping(node, kind)
    plugin_id = node.get("id")
    if not isinstance(plugin_id, str):
        raise FrameError(f"frame header: {kind} id must be a string, got {plugin_id!r:.80}")
    try:
        cls = plugin_class(kind, plugin_id)
        return build(cls, {k: v for k, v in node.items() if k != "id"})
    except FrameError:
        raise
    except (RegistryError, ConfigError, TypeError, ValueError) as e:
        raise FrameError(f"frame header: {kind} cannot be built ({type(e).__name__}: {e})") from None


def _encoder(cls: type[Encoder], params: dict[str, Any], device: str) -> Encoder:
    """A decoder on ``device`` if the encoder runs there, else on the CPU; an encoder without CPU
    decoding (nvCOMP) only when the caller asked for ``cuda``."""
    if device not in cls.devices or (device == "cuda" and "cpu" in cls.devices and _cuda_missing()):
        device = "cpu"
    if device not in cls.devices:
        raise FrameError(f"streams of encoder '{cls.plugin_id}' decode only on {' or '.join(cls.devices)} "
                         "(cf.decompress(frame, device='cuda') on a machine with a CUDA device)")
    return cls.for_decoding(params, device)


def _cuda_missing() -> bool:
    from .kernels.targets import cuda_status  # imports numba.cuda: only when the caller asked for cuda

    return cuda_status() is not None


def plugins(header: dict[str, Any], device: str = "cpu") -> tuple[Quantizer, Encoder]:
    """The quantizer and a decoder for the encoder named in ``header``; ``device`` is the decoder's
    (``decode_device``). A header never selects a device or triggers an import: ids are looked up in
    the registry, and an encoder whose streams decode only on a GPU (nvCOMP) is refused unless the
    caller asked for ``cuda``. Plugins are immutable once built, so the last ones built are reused
    for the same configuration (a frame stream repeats its header)."""
    try:
        key = json.dumps([header.get("quantizer"), header.get("encoder"), device], sort_keys=True)
    except (TypeError, ValueError):
        key = None
    if key is not None and key in _recent:
        return _recent[key]
    quantizer = _build("quantizer", header.get("quantizer"), lambda cls, params: cls(**params))
    encoder = _build("encoder", header.get("encoder"), lambda cls, params: _encoder(cls, params, device))
    if key is not None:
        if len(_recent) >= 64:
            _recent.pop(next(iter(_recent)))
        _recent[key] = (quantizer, encoder)
    return quantizer, encoder


_recent: dict[str, tuple[Quantizer, Encoder]] = {}


def header_quantized(f: container.Frame, quantizer: Quantizer) -> Quantized:
    """A ``Quantized`` with the header's shape, dtype, meta and side arrays, and no codes yet."""
    h = f.header
    shape = limits.shape(h.get("shape"), "shape")
    dtype = limits.dtype(h.get("dtype"), "dtype", tuple(quantizer.float_dtypes))
    meta = limits.mapping(h.get("meta"), "meta")
    return Quantized(codes={}, side=f.side_arrays(), meta=meta, shape=shape, dtype=dtype.name, bound=_bound(h))


def _bound(h: dict) -> ErrorBound | None:
    """The header's ``bound`` (null or ``{mode, value}``) as an ``ErrorBound``; ``FrameError`` if it is not one."""
    spec = h.get("bound")
    if spec is None:
        return None
    spec = limits.mapping(spec, "bound")
    try:
        return ErrorBound(spec.get("mode"), limits.number(spec.get("value"), "bound.value"))
    except ValueError as e:
        raise FrameError(f"frame header: bound {spec!r:.80} is not an error bound ({e})") from None


def decode_codes(f: container.Frame, quantizer: Quantizer, encoder: Encoder, q: Quantized) -> Quantized:
    """Check the code streams against ``quantizer.code_layout(q)`` and decode them into ``q.codes``."""
    streams = f.code_streams()
    layout = quantizer.code_layout(q)
    if layout is not None and set(layout) != set(streams):
        raise FrameError(f"frame holds code streams {sorted(streams)}, quantizer '{quantizer.plugin_id}' "
                         f"expects {sorted(layout)}")
    for name, stream in streams.items():
        q.codes[name] = encoder.decode(stream, None if layout is None else layout[name])
    return q


def decode(frame: bytes, max_bytes: int | None = None, device: Any = None) -> tuple[np.ndarray, dict[str, Any]]:
    """The array a frame holds (numpy, on the host) and the frame's header; ``FrameError`` for any
    frame that cannot be decoded within ``max_bytes`` (see ``compframe.limits``)."""
    from .kernels.targets import cpu_threads_for

    try:
        with limits.budget(max_bytes, _nbytes(frame)):
            f = container.loads(frame)
            quantizer, encoder = plugins(f.header, decode_device(device))
            q = header_quantized(f, quantizer)
            limits.charge(math.prod(q.shape) * np.dtype(q.dtype).itemsize, f"the result {list(q.shape)} of {q.dtype}")
            with cpu_threads_for(math.prod(q.shape)):
                x = quantizer.dequantize(decode_codes(f, quantizer, encoder, q))
    except FrameError:
        raise
    except Exception as e:  # a check that should have come first: still one error type for the caller
        raise FrameError(f"{UNEXPECTED} {type(e).__name__}: {str(e)[:300]})") from e
    if isinstance(x, np.generic):  # numpy turns 0-d results of ufuncs and indexing into scalars
        x = np.asarray(x)
    if not isinstance(x, np.ndarray) or x.shape != q.shape or x.dtype != np.dtype(q.dtype):
        raise FrameError(f"quantizer '{quantizer.plugin_id}' decoded {getattr(x, 'shape', None)} of "
                         f"{getattr(x, 'dtype', None)}, the header says {list(q.shape)} of {q.dtype}")
    return x, f.header


def _nbytes(frame: Any) -> int:
    """The size of a bytes-like frame (0 for anything else: ``container.loads`` refuses it)."""
    try:
        return memoryview(frame).nbytes
    except TypeError:
        return 0
