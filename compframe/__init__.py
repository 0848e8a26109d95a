"""compframe: experiments in compressing machine-learning data.

The library face (the command line is ``python -m compframe.run``)::

    import compframe as cf
    frame = cf.compress(x, quantizer="int8", encoder="zstd", bound="rel:1e-2")
    x_hat = cf.decompress(frame)          # needs nothing but the bytes
    enc = cf.create("encoder", "zstd", level=19)
    cf.available("quantizer")

``cf.Codec`` (numcodecs) and ``cf.ZarrCodec`` (zarr v3) are imported on first use: they need the
``zarr`` extra, which ``import compframe`` does not.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import ErrorBound, Field, Quantized
from .errors import ConfigError, DataError, FrameError, RegistryError, StreamError
from .registry import available, create, resolve

__all__ = ["compress", "decompress", "create", "available", "ErrorBound", "Field", "Quantized",
           "FrameError", "StreamError", "DataError", "ConfigError", "RegistryError"]
__version__ = "0.1.0"

_LAZY = {"Codec": "codec", "ZarrCodec": "zarr_codec"}


def __getattr__(name: str) -> Any:
    """``Codec`` and ``ZarrCodec``, imported when first asked for (numcodecs and zarr are optional)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _to_numpy(x: Any) -> tuple[np.ndarray, dict[str, str]]:
    """The array as numpy plus how to give the result back in the caller's kind."""
    module = type(x).__module__.split(".")[0]
    if module == "torch":
        return x.detach().cpu().numpy(), {"kind": "torch", "device": str(x.device)}
    if module == "cupy":
        return x.get(), {"kind": "cupy"}
    return np.asarray(x), {"kind": "numpy"}


KINDS = ("numpy", "torch", "cupy")


def _output_kind(recorded: Any, like: Any, device: Any) -> tuple[str, str]:
    """(kind, device) of the result: the caller's ``like``/``device`` if given, else what the frame
    records (``meta['array']``), limited to numpy and CPU torch; the recorded value is only checked."""
    from .decoding import CUDA_DEVICE

    recorded = {} if recorded is None else recorded
    where = recorded.get("device") if isinstance(recorded, dict) else None
    if not isinstance(recorded, dict) or recorded.get("kind", "numpy") not in KINDS or not (
            where is None or (isinstance(where, str) and (where == "cpu" or CUDA_DEVICE.fullmatch(where)))):
        raise FrameError(f"frame header: meta.array {recorded!r:.80} is not a known array kind "
                         f"({', '.join(KINDS)}) and device (cpu, cuda[:n])")
    if like is None:
        kind = "numpy" if recorded.get("kind", "numpy") == "cupy" else recorded.get("kind", "numpy")
    elif isinstance(like, str):
        kind = like
    else:
        module = type(like).__module__.split(".")[0]
        kind = module if module in ("torch", "cupy") else "numpy"
        if device is None and kind == "torch":
            device = str(like.device)
    if kind not in KINDS:
        raise ValueError(f"like={like!r}: the result kind must be one of {', '.join(KINDS)} or an array of one")
    if kind == "numpy" and device not in (None, "cpu"):
        raise ValueError(f"device={device!r}: a numpy result lives on the host; use like='torch' or 'cupy'")
    return kind, "cpu" if device is None else str(device)


def _from_numpy(x: np.ndarray, kind: str, device: str) -> Any:
    if kind == "torch":
        import torch

        return torch.from_numpy(x).to(device)
    if kind == "cupy":
        import cupy

        with cupy.cuda.Device(int(device.partition(":")[2] or 0)):
            return cupy.asarray(x)
    return x


DEFAULT_BOUND = "rel:1e-2"
"""The bound of an error-bounded quantizer when none is given (``cf.compress``, ``cf.Codec``)."""
_UNSET: Any = object()


def bound_for(quantizer: Any, bound: Any = _UNSET, *, kind: str = "quantizer", plugin_id: str | None = None
              ) -> ErrorBound | None:
    """The ``ErrorBound`` (or None) that ``quantizer`` (a built plugin) runs with, given ``bound``.

    Error-bounded quantizers (``guarantee == "error_bound"``) need one (default ``DEFAULT_BOUND``);
    quantizers that promise a bit budget take none, and a bound given to one is refused rather than
    written into the frame's header as if it held. Errors are ``ConfigError`` naming the parameter
    ``bound`` of ``kind`` ``plugin_id`` (default: the quantizer).
    """
    bounded = quantizer.guarantee == "error_bound"
    q = quantizer.plugin_id
    where = (kind, q if plugin_id is None else plugin_id, "bound")
    if bound is _UNSET:
        bound = DEFAULT_BOUND if bounded else None
    if bound is None:
        if bounded:
            raise ConfigError(*where, f"is None, but quantizer '{q}' is error-bounded and needs one, e.g. 'rel:1e-2'")
        return None
    if not bounded:
        raise ConfigError(*where, f"is {bound!r}, but quantizer '{q}' promises a bit budget, not an error bound; "
                                  "pass bound=None")
    try:
        return ErrorBound.parse(bound)
    except ValueError as e:
        raise ConfigError(*where, f"is {bound!r}: {e}") from None


def compress(x: Any, quantizer: Any = "int8", encoder: Any = "zstd", bound: Any = _UNSET) -> bytes:
    """Compress a numpy array, torch tensor or CuPy array into a self-describing frame.

    ``quantizer`` and ``encoder`` are registry ids, config dicts (``{"id": "zstd", "level": 19}``)
    or plugin objects; ``bound`` is an ``ErrorBound`` or a string like ``"rel:1e-2"`` (the default)
    for error-bounded quantizers, and None (the default) for quantizers that promise a bit budget
    instead; a bound given to those is refused (``bound_for``).
    """
    from . import pipeline

    q, e = resolve("quantizer", quantizer), resolve("encoder", encoder)
    b = bound_for(q, bound)
    array, like = _to_numpy(x)
    return pipeline.compress(array, q, e, b, meta={"array": like})


def decompress(frame: bytes, *, like: Any = None, device: Any = None, max_bytes: int | None = None) -> Any:
    """Rebuild the array from a frame's bytes alone.

    The result is the kind of array that was compressed, limited to numpy and CPU torch (a frame of
    a CuPy array decodes to numpy, of a CUDA tensor to a CPU tensor) unless the caller asks:
    ``like`` (``"numpy"``, ``"torch"``, ``"cupy"`` or an array of that kind, whose device a torch
    result follows) and ``device`` (a torch device such as ``"cuda:0"``; with ``cuda``, encoders that
    run on a GPU decode there). A header never selects a device or triggers an import of its own.

    Every failure to decode raises ``FrameError``; decoding allocates at most ``max_bytes`` bytes
    for the arrays the frame decides (default ``max(256 MiB, 256 x len(frame))``, see
    ``compframe.limits``), and a frame that needs more is refused before the allocation.
    """
    from . import pipeline

    if like is not None:
        _output_kind(None, like, device)  # a bad argument fails before any decoding
    x_hat, header = pipeline.decompress_frame(frame, max_bytes=max_bytes, device=device)
    kind, where = _output_kind(header["meta"].get("array"), like, device)
    return _from_numpy(x_hat, kind, where)
