"""compframe as a numcodecs codec: a float chunk in, an ordinary compframe frame out.

    codec = compframe.Codec(quantizer="int16", encoder="zstd", bound="abs:1e-3")
    frame = codec.encode(chunk)        # bytes; cf.decompress(frame) reads it as well
    chunk_hat = codec.decode(frame)    # same dtype and shape, every finite element within the bound

numcodecs finds the codec by its id, ``"compframe"``, through the entry point group
``numcodecs.codecs``, without compframe being imported first (so zarr v2 arrays, whose metadata
names it, open anywhere compframe is installed). ``compframe.zarr_codec.ZarrCodec`` wraps it as a
zarr v3 array-to-bytes codec. Needs the ``zarr`` extra (numcodecs and zarr).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numcodecs.abc import Codec as NumcodecsCodec
from numcodecs.compat import ensure_ndarray_like, ndarray_copy

from . import _UNSET, bound_for, compress, pipeline
from .errors import ConfigError
from .registry import resolve



def _fail(param: str, message: str) -> ConfigError:
    return ConfigError("codec", Codec.codec_id, param, message)


class Codec(NumcodecsCodec):
    """Compress float32/float64 chunks with a compframe quantizer and encoder (lossy).

    ``quantizer`` and ``encoder`` are registry ids or config dicts (``{"id": "zstd", "level": 19}``),
    as for ``cf.compress``. ``bound`` (``"abs:1e-3"``, ``"rel:1e-2"`` or an ``ErrorBound``) is what
    an error-bounded quantizer (``int8``, ``int16``, ``lorenzo``) promises for every finite element
    of each chunk, non-finite elements coming back bit-identical; ``rel`` is relative to the range
    (max - min of the finite values) of each chunk on its own. It defaults to ``rel:1e-2`` for those
    and must be None for quantizers that promise a bit budget instead (``fp16``, ``mxint8``, ...).

    ``encode`` returns one compframe frame per chunk, with the chunk's dtype and shape in its
    header; ``decode`` rebuilds the chunk from the frame alone (any compframe frame, whatever codec
    configuration wrote it) and raises ``compframe.FrameError`` for a damaged one. The codec runs
    on the host: encoders that run only on a GPU, or configured with ``device="cuda"``, are refused.
    """

    codec_id = "compframe"

    def __init__(self, quantizer: Any = "int8", encoder: Any = "zstd", bound: Any = _UNSET):
        self._quantizer = resolve("quantizer", quantizer)
        self._encoder = resolve("encoder", encoder)
        if "cpu" not in self._encoder.devices or getattr(self._encoder.config, "device", "cpu") != "cpu":
            raise _fail("encoder", f"{self._encoder!r} does not encode on the host; the codec needs an "
                                   "encoder with device='cpu' (the frames it writes decode on any machine)")
        self._bound = bound_for(self._quantizer, bound, kind="codec", plugin_id=self.codec_id)

    @property
    def float_dtypes(self) -> tuple[str, ...]:
        """The dtypes of the chunks this codec encodes (its quantizer's)."""
        return tuple(self._quantizer.float_dtypes)

    def get_config(self) -> dict[str, Any]:
        """JSON-able: the id, the quantizer's and encoder's full configs, the bound as ``"mode:value"``
        (the value's shortest exact decimal) or None. ``from_config`` rebuilds an equal codec."""
        b = self._bound
        return {
            "id": self.codec_id,
            "quantizer": self._quantizer.get_config(),
            "encoder": self._encoder.get_config(),
            "bound": None if b is None else f"{b.mode}:{b.value!r}",
        }

    def encode(self, buf: Any) -> bytes:
        """The frame of one chunk: a float32/float64 array (any shape) or a buffer of such values."""
        return compress(ensure_ndarray_like(buf), quantizer=self._quantizer, encoder=self._encoder, bound=self._bound)

    def decode(self, buf: Any, out: Any = None) -> np.ndarray:
        """The chunk of a frame, as an array of the dtype and shape that were encoded; with ``out``
        (numcodecs' contract: a writeable buffer of exactly the decoded size), written into it.
        ``buf`` is any C-contiguous buffer; anything that is not a valid frame raises ``FrameError``."""
        chunk, _ = pipeline.decompress_frame(buf)
        return ndarray_copy(chunk, out)

    def __repr__(self) -> str:
        config = self.get_config()
        return f"Codec(quantizer={config['quantizer']!r}, encoder={config['encoder']!r}, bound={config['bound']!r})"
