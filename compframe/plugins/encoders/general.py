"""General-purpose CPU encoders: ``none`` (raw bytes), ``lz4`` (python-lz4) and ``zstd`` (zstandard).

``zstd`` writes zstd's own frame checksum and ``lz4`` appends a CRC-32 of the codes' bytes
(``checksum: true``, the default), so a damaged stream is refused instead of decoding to wrong
codes. ``none`` cannot tell; inside a frame, the container's section checksum catches it.
"""

from __future__ import annotations

import struct
import zlib
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

    ``mode: high_compression`` uses LZ4-HC at ``compression`` level 1..12. ``checksum: true``
    appends a CRC-32 of the codes' bytes (4 bytes; costs decoding speed, zlib.crc32 runs at about
    2 GB/s), so that a damaged stream is refused instead of decoding to wrong codes.
    """

    @dataclass
    class Config:
        mode: str = "default"
        acceleration: int = 1
        compression: int = 9
        checksum: bool = True

    def check(self):
        self.require("mode", choices=("default", "fast", "high_compression"))
        self.require("acceleration", low=1, high=65537)
        self.require("compression", low=1, high=12)

    def _encode(self, flat):
        c = self.config
        block = lz4.block.compress(
            flat, mode=c.mode, acceleration=c.acceleration, compression=c.compression, store_size=False
        )
        return block + struct.pack("<I", zlib.crc32(flat)) if c.checksum else block

    def _decode(self, payload, dtype, count):
        if self.config.checksum:
            if len(payload) < 4:
                raise StreamError("lz4 stream: too short for its checksum")
            payload, (crc,) = payload[:-4], struct.unpack_from("<I", payload, len(payload) - 4)
        raw = lz4.block.decompress(payload, uncompressed_size=count * dtype.itemsize)
        if self.config.checksum and zlib.crc32(raw) != crc:
            raise StreamError("lz4 stream: checksum mismatch, the decoded codes differ from the encoded ones")
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
        return zstandard.ZstdCompressor(
            level=c.level, threads=c.threads, write_content_size=True, write_checksum=True
        ).compress(flat)

    def _decode(self, payload, dtype, count):
        nbytes = count * dtype.itemsize
        if zstandard.frame_content_size(payload) != nbytes:
            raise StreamError(f"zstd stream: frame does not state {nbytes} bytes of content")
        stream = zstandard.ZstdDecompressor().decompressobj()
        raw = stream.decompress(payload)
        if not stream.eof or stream.unused_data:
            raise StreamError("zstd stream: truncated, or bytes follow the frame")
        return _from_bytes(raw, dtype, count)
