"""nVIDIA nvCOMP's GPU codecs as reference encoders: ``nvcomp_lz4`` and ``nvcomp_ans``.

They need the ``gpu`` extra (``pip install compframe[gpu]``: cupy and nvidia-nvcomp) and a CUDA
device; both are imported lazily, and a missing one is reported when the encoder is built, before
any data is touched. The stream is nvCOMP's own (``BitstreamKind.NVCOMP_NATIVE``: chunked, with
nvCOMP's header holding the sizes) after the base class's dtype/shape header; it decodes only on a
CUDA device with nvCOMP.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ...base import Encoder, StreamError
from ...registry import register


@functools.cache
def _gpu_modules():
    """(cupy, nvidia.nvcomp), or a RuntimeError saying what is missing."""
    try:
        import cupy
        from nvidia import nvcomp
    except ImportError as e:
        raise RuntimeError(
            f"nvCOMP encoders need the 'gpu' extra (pip install 'compframe[gpu]': cupy, nvidia-nvcomp): {e}"
        ) from None
    try:
        available = cupy.cuda.is_available()
    except Exception:
        available = False
    if not available:
        raise RuntimeError("nvCOMP encoders need a CUDA device; cupy.cuda.is_available() is False")
    return cupy, nvcomp


def gpu_missing() -> str | None:
    """None if nvCOMP can run here, else why not."""
    try:
        _gpu_modules()
    except RuntimeError as e:
        return str(e)
    return None


class NvcompCodec(Encoder):
    """Base of the nvCOMP wrappers: ``algorithm`` names nvCOMP's codec; ``chunk`` is its chunk size in
    bytes; ``device`` is always ``cuda`` (the parameter exists so that every GPU-capable encoder
    takes it)."""

    algorithm: str
    devices = ("cuda",)

    @dataclass
    class Config:
        chunk: int = 65536
        device: str = "cuda"

    @classmethod
    def unavailable(cls) -> str | None:
        return gpu_missing()

    def check(self):
        self.require("chunk", low=4096, high=1 << 24)
        self.require("device", choices=("cuda",))
        reason = self.unavailable()
        if reason:
            self.fail("device", f"is 'cuda' but {reason}")

    def _codec(self):
        cupy, nvcomp = _gpu_modules()
        return cupy, nvcomp, nvcomp.Codec(
            algorithm=self.algorithm,
            bitstream_kind=nvcomp.BitstreamKind.NVCOMP_NATIVE,
            uncomp_chunk_size=self.config.chunk,
        )

    def _encode(self, flat: np.ndarray, shape: tuple[int, ...]) -> bytes:
        if flat.size == 0:
            return b""
        cupy, nvcomp, codec = self._codec()
        encoded = codec.encode(nvcomp.as_array(cupy.asarray(flat.view(np.uint8))))
        return cupy.asnumpy(cupy.asarray(encoded).view(cupy.uint8)).tobytes()

    def _decode(self, payload: memoryview, dtype: np.dtype, count: int) -> np.ndarray:
        if count == 0:
            if len(payload):
                raise StreamError(f"{self.plugin_id} stream: trailing bytes after an empty array")
            return np.empty(0, dtype)
        cupy, nvcomp, codec = self._codec()
        device_bytes = cupy.asarray(np.frombuffer(payload, np.uint8))
        decoded = codec.decode(nvcomp.as_array(device_bytes))
        raw = cupy.asnumpy(cupy.asarray(decoded).view(cupy.uint8))
        if raw.size != count * dtype.itemsize:
            raise StreamError(f"{self.plugin_id} stream: decoded {raw.size} bytes, expected {count * dtype.itemsize}")
        return raw.view(dtype)


@register("encoder", "nvcomp_lz4")
class NvcompLZ4(NvcompCodec):
    """nvCOMP's GPU LZ4 (chunked, ``chunk`` bytes per chunk): the reference of the GPULZ paper."""

    algorithm = "LZ4"


@register("encoder", "nvcomp_ans")
class NvcompANS(NvcompCodec):
    """nvCOMP's GPU ANS (chunked, ``chunk`` bytes per chunk): the ANS reference of the DLRM study."""

    algorithm = "ANS"
