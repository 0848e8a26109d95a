"""General-purpose CPU encoders: ``none`` (raw bytes), ``lz4`` (python-lz4) and ``zstd`` (zstandard)."""

from __future__ import annotations

from dataclasses import dataclass

import lz4.block
import numpy as np
import zstandard

from ...base import Encoder, StreamError
from ...registry import register


def _from_bytes(raw, dtype: np.dtype, count: int) -> np.ndarray:
    if len(raw) != count * dtype.itemsize:
        raise StreamError(f"payload holds {len(raw)} bytes, expected {count * dtype.itemsize}")
    return np.frombuffer(raw, dtype=dtype).copy() if isinstance(raw, memoryview) else np.frombuffer(raw, dtype=dtype)


@register("encoder", "none")
class Raw(Encoder):
    """The codes' raw bytes, unchanged: the baseline every other encoder is measured against."""

    @dataclass
    class Config:
        pass

    def _encode(self, flat):
        return flat.tobytes()

    def _decode(self, payload, dtype, count):
        return _from_bytes(payload, dtype, count)


@register("encoder", "lz4")
class LZ4(Encoder):
    """LZ4 block format (python-lz4); ``acceleration`` trades ratio for speed (1 = default).

    ``mode: high_compression`` uses LZ4-HC at ``compression`` level 1..12.
    """

    @dataclass
    class Config:
        mode: str = "default"
        acceleration: int = 1
        compression: int = 9

    def check(self):
        self.require("mode", choices=("default", "fast", "high_compression"))
        self.require("acceleration", low=1, high=65537)
        self.require("compression", low=1, high=12)

    def _encode(self, flat):
        c = self.config
        return lz4.block.compress(
            flat, mode=c.mode, acceleration=c.acceleration, compression=c.compression, store_size=False
        )

    def _decode(self, payload, dtype, count):
        raw = lz4.block.decompress(payload, uncompressed_size=count * dtype.itemsize)
        return _from_bytes(raw, dtype, count)


@register("encoder", "zstd")
class Zstd(Encoder):
    """Zstandard (zstandard package) at ``level`` -7..22, with ``threads`` worker threads (0 = none)."""

    @dataclass
    class Config:
        level: int = 3
        threads: int = 0

    def check(self):
        self.require("level", low=-7, high=22)
        self.require("threads", low=-1, high=64)

    def _encode(self, flat):
        c = self.config
        return zstandard.ZstdCompressor(level=c.level, threads=c.threads, write_content_size=True).compress(flat)

    def _decode(self, payload, dtype, count):
        nbytes = count * dtype.itemsize
        raw = zstandard.ZstdDecompressor().decompress(payload, max_output_size=nbytes)
        return _from_bytes(raw, dtype, count)
