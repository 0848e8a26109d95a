"""compframe: experiments in compressing machine-learning data.

The library face (the command line is ``python -m compframe.run``)::

    import compframe as cf
    frame = cf.compress(x, quantizer="int8", encoder="zstd", bound="rel:1e-2")
    x_hat = cf.decompress(frame)          # needs nothing but the bytes
    enc = cf.create("encoder", "zstd", level=19)
    cf.available("quantizer")
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


def _to_numpy(x: Any) -> tuple[np.ndarray, dict[str, str]]:
    """The array as numpy plus how to give the result back in the caller's kind."""
    module = type(x).__module__.split(".")[0]
    if module == "torch":
        return x.detach().cpu().numpy(), {"kind": "torch", "device": str(x.device)}
    if module == "cupy":
        return x.get(), {"kind": "cupy"}
    return np.asarray(x), {"kind": "numpy"}


def _from_numpy(x: np.ndarray, like: dict[str, str]) -> Any:
    if like.get("kind") == "torch":
        import torch

        return torch.from_numpy(x).to(like.get("device", "cpu"))
    if like.get("kind") == "cupy":
        import cupy

        return cupy.asarray(x)
    return x


def compress(x: Any, quantizer: Any = "int8", encoder: Any = "zstd", bound: Any = "rel:1e-2") -> bytes:
    """Compress a numpy array, torch tensor or CuPy array into a self-describing frame.

    ``quantizer`` and ``encoder`` are registry ids, config dicts (``{"id": "zstd", "level": 19}``)
    or plugin objects; ``bound`` is an ``ErrorBound``, a string like ``"rel:1e-2"``, or None for
    quantizers that promise a bit budget instead of an error bound.
    """
    from . import pipeline

    q, e = resolve("quantizer", quantizer), resolve("encoder", encoder)
    b = None if bound is None else ErrorBound.parse(bound)
    array, like = _to_numpy(x)
    return pipeline.compress(array, q, e, b, meta={"array": like})


def decompress(frame: bytes) -> Any:
    """Rebuild the array from a frame's bytes alone, as the kind of array that was compressed."""
    from . import pipeline

    x_hat, header = pipeline.decompress_frame(frame)
    return _from_numpy(x_hat, header["meta"].get("array", {}))

