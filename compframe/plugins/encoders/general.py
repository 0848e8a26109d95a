"""General-purpose CPU encoders: ``none`` (raw bytes), ``lz4`` (python-lz4) and ``zstd`` (zstandard).

``zstd`` writes zstd's own frame checksum and ``lz4`` appends a CRC-32 of the codes' bytes
(``checksum: true``, the default), so a damaged stream is refused instead of decoding to wrong
codes. ``none`` cannot tell; inside a frame, the container's section checksum catches it.
"""

from __future__ import annotations

import struct
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
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


def cpu_only(plugin, why: str) -> None:
    """The ``device`` parameter of an encoder that runs on the CPU only (every encoder has one)."""
    plugin.require("device", choices=("cpu", "cuda"))
    if plugin.config.device == "cuda":
        plugin.fail("device", f"is 'cuda' but '{plugin.plugin_id}' runs on the CPU only: {why}")


@register("encoder", "none")
class Raw(Encoder):
    """The codes' raw bytes, unchanged: the baseline every other encoder is measured against."""

    @dataclass
    class Config:
        device: str = "cpu"

    def check(self):
        cpu_only(self, "'none' copies the codes on the host")

    def _encode(self, flat, shape):
        return [flat]  # the array itself as the payload part: written into the frame without a copy

    def _decode(self, payload, dtype, count):
        return _from_bytes(payload, dtype, count)


@register("encoder", "lz4")
class LZ4(Encoder):
    """LZ4 (python-lz4) over independent blocks of ``block`` code bytes, compressed and decompressed
    on ``threads`` threads; ``acceleration`` trades ratio for speed (1 = default).

    ``mode: high_compression`` uses LZ4-HC at ``compression`` level 1..12. ``checksum`` appends a
    CRC-32 of the codes' bytes, so that a damaged stream is refused instead of decoding to wrong
    codes. Blocks bound the temporary memory to a block per thread and let both cores work; LZ4's
    64 KiB window makes the ratio cost of a block boundary negligible above a few hundred KiB.

    Payload: u32 block size, u32 block count n, n x u32 compressed sizes, the n LZ4 blocks (raw
    block format, no size prefix), then the CRC-32 (u32) if ``checksum``.
    """

    format_params = ("checksum",)
    unrecorded_params = ("threads", "device")  # the blocks are independent: the same bytes on any thread count

    @dataclass
    class Config:
        mode: str = "default"
        acceleration: int = 1
        compression: int = 9
        checksum: bool = True
        block: int = 1 << 22
        threads: int = 2
        device: str = "cpu"

    def check(self):
        cpu_only(self, "LZ4 on a GPU is encoder=nvcomp_lz4 (the 'gpu' extra), whose stream is nvCOMP's own")
        self.require("mode", choices=("default", "fast", "high_compression"))
        self.require("acceleration", low=1, high=65537)
        self.require("compression", low=1, high=12)
        self.unused_unless("acceleration", self.config.mode == "fast", "mode=fast")
        self.unused_unless("compression", self.config.mode == "high_compression", "mode=high_compression")
        self.require("block", low=1 << 16, high=1 << 30)
        self.require("threads", low=1, high=256)

    def _map(self, fn, items):
        if self.config.threads == 1 or len(items) < 2:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(min(self.config.threads, len(items))) as pool:  # lz4 releases the GIL
            return list(pool.map(fn, items))

    def _encode(self, flat, shape):
        c = self.config
        raw = memoryview(flat).cast("B") if flat.size else memoryview(b"")
        blocks = [raw[i:i + c.block] for i in range(0, raw.nbytes, c.block)]
        comp = self._map(lambda b: lz4.block.compress(
            b, mode=c.mode, acceleration=c.acceleration, compression=c.compression, store_size=False), blocks)
        parts = [struct.pack(f"<II{len(comp)}I", c.block, len(comp), *map(len, comp)), *comp]
        if c.checksum:
            parts.append(struct.pack("<I", zlib.crc32(raw)))
        return parts

    def _decode(self, payload, dtype, count):
        nbytes = count * dtype.itemsize
        tail = 4 if self.config.checksum else 0
        if len(payload) < 8 + tail:
            raise StreamError("lz4 stream: too short for its block table")
        block, n = struct.unpack_from("<II", payload, 0)
        if block < 1 or n != -(-nbytes // block) or len(payload) < 8 + 4 * n + tail:
            raise StreamError(f"lz4 stream: block table ({n} blocks of {block} bytes) does not fit {nbytes} bytes")
        sizes = struct.unpack_from(f"<{n}I", payload, 8)
        if 8 + 4 * n + sum(sizes) + tail != len(payload):
            raise StreamError("lz4 stream: block sizes do not add up to the stream's length")
        out = np.empty(count, dtype)
        view = memoryview(out).cast("B") if count else memoryview(bytearray())
        starts = np.concatenate([[8 + 4 * n], 8 + 4 * n + np.cumsum(sizes)]).astype(int)

        def one(k):
            size = min(block, nbytes - k * block)
            data = lz4.block.decompress(payload[starts[k]:starts[k + 1]], uncompressed_size=size)
            if len(data) != size:
                raise StreamError(f"lz4 stream: block {k} holds {len(data)} bytes, expected {size}")
            view[k * block:k * block + size] = data

        self._map(one, list(range(n)))
        if self.config.checksum:
            (crc,) = struct.unpack_from("<I", payload, len(payload) - 4)
            if zlib.crc32(view) != crc:
                raise StreamError("lz4 stream: checksum mismatch, the decoded codes differ from the encoded ones")
        return out


_ZSTD = threading.local()


def _zstd_compressor(level: int, threads: int) -> zstandard.ZstdCompressor:
    """This thread's compressor for ``level`` and ``threads`` (a zstd context is not thread-safe,
    and making one per call cost about 20 us, a fifth of compressing a 64 x 32 slice)."""
    cache = _ZSTD.__dict__.setdefault("compressors", {})
    if (level, threads) not in cache:
        cache[level, threads] = zstandard.ZstdCompressor(level=level, threads=threads, write_content_size=True,
                                                         write_checksum=True)
    return cache[level, threads]


def _zstd_decompressor() -> zstandard.ZstdDecompressor:
    """This thread's decompressor (its context is reused by each ``decompressobj``)."""
    if not hasattr(_ZSTD, "decompressor"):
        _ZSTD.decompressor = zstandard.ZstdDecompressor()
    return _ZSTD.decompressor


@register("encoder", "zstd")
class Zstd(Encoder):
    """Zstandard (zstandard package) at ``level`` -7..22, with ``threads`` worker threads (0 = none)."""

    @dataclass
    class Config:
        level: int = 3
        threads: int = 0
        device: str = "cpu"

    def check(self):
        cpu_only(self, "compframe has no GPU zstd")
        self.require("level", low=-7, high=22)
        self.require("threads", low=-1, high=64)

    def _encode(self, flat, shape):
        c = self.config
        return _zstd_compressor(c.level, c.threads).compress(flat)

    def _decode(self, payload, dtype, count):
        nbytes = count * dtype.itemsize
        if zstandard.frame_content_size(payload) != nbytes:
            raise StreamError(f"zstd stream: frame does not state {nbytes} bytes of content")
        stream = _zstd_decompressor().decompressobj()
        raw = stream.decompress(payload)
        if not stream.eof or stream.unused_data:
            raise StreamError("zstd stream: truncated, or bytes follow the frame")
        return _from_bytes(raw, dtype, count)
