"""``gpulz``: LZSS on independent chunks with 1-, 2- or 4-byte symbols, after GPULZ (ICS'23, arXiv 2304.07342).

Stream layout after the base class's dtype/shape header (integers little-endian)::

    u8  version (1)     u8 S (symbol bytes)     u8 window
    u32 chunk           bytes per chunk (a multiple of S)
    u64 nbytes          bytes of the codes (count * itemsize); the last symbol is zero-padded
    u32 checksum        CRC-32 over the dtype string, the fields above, the chunk table, then
                        the chunks' checksums of their symbols
    u16 tokens[n]       tokens of each chunk
    u32 sizes[n]        bytes of each chunk's stream; offsets are their prefix sum
    chunk streams       each: ceil(tokens / 8) flag bytes (LSB first, 1 = match), then the tokens:
                        a match is (length, offset) in symbols, one byte each; a literal is S bytes

A match is kept only when it is shorter than its literals (length >= 3, 2, 1 symbols for S = 1, 2,
4), so no chunk grows by more than its flag bits.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ... import limits
from ...base import Encoder, StreamError
from ...kernels import lz as lz_kernels
from ...kernels.targets import combine_checksums, cuda_status
from ...registry import register

VERSION = 1
_HEAD = struct.Struct("<BBBIQI")
MAX_CHUNK = 32768


@register("encoder", "gpulz")
class GpuLZ(Encoder):
    """LZSS in GPULZ's format: ``chunk`` bytes matched independently (default 2048), symbols of
    ``symbol_bytes`` (1, 2, 4; 0 = the codes' item size), a window of ``window`` symbols (<= 255,
    default 128, also the longest match), ``device`` cpu|cuda. Defaults follow the paper's
    evaluation (C=2048, W=128; S=2 for int16 codes).
    """

    symbol_widths = (1, 2, 4)
    devices = ("cpu", "cuda")

    @dataclass
    class Config:
        chunk: int = 2048
        symbol_bytes: int = 0
        window: int = 128
        device: str = "cpu"

    def check(self):
        self.require("chunk", low=4, high=MAX_CHUNK)
        if self.config.chunk % 4:
            self.fail("chunk", f"is {self.config.chunk}; must be a multiple of 4 bytes (any symbol size divides it)")
        self.require("symbol_bytes", choices=(0, 1, 2, 4))
        self.require("window", low=1, high=255)
        self.require("device", choices=("cpu", "cuda"))
        if self.config.device == "cuda":
            reason = cuda_status()
            if reason:
                self.fail("device", f"is 'cuda' but {reason}")

    def _encode(self, flat: np.ndarray, shape: tuple[int, ...]) -> bytes:
        c = self.config
        width = c.symbol_bytes or flat.dtype.itemsize
        raw = flat.view(np.uint8)
        nsym = -(-raw.size // width)
        padded = np.zeros(nsym * width, np.uint8)
        padded[:raw.size] = raw
        x = padded.view(f"<u{width}")
        data, ntok, sizes, sums = lz_kernels.encode(c.device, x, c.chunk // width, c.window, 2 // width + 1)
        table = ntok.astype("<u2").tobytes() + sizes.astype("<u4").tobytes()
        head = _HEAD.pack(VERSION, width, c.window, c.chunk, raw.size, 0)[:-4]
        checksum = combine_checksums(sums, flat.dtype.str.encode(), head, table)
        return b"".join((head, struct.pack("<I", checksum), table, data.tobytes()))

    def _decode(self, payload: memoryview, dtype: np.dtype, count: int) -> np.ndarray:
        try:
            version, width, window, chunk, nbytes, checksum = _HEAD.unpack_from(payload, 0)
        except struct.error:
            raise StreamError("gpulz stream: payload header is truncated") from None
        if version != VERSION or width not in (1, 2, 4):
            raise StreamError(f"gpulz stream: unknown version {version} or symbol size {width}")
        if nbytes != count * dtype.itemsize:
            raise StreamError(f"gpulz stream: holds {nbytes} bytes, header says {count} values of {dtype}")
        if not 0 < chunk <= MAX_CHUNK or chunk % width:
            raise StreamError(f"gpulz stream: chunk of {chunk} bytes is invalid for {width}-byte symbols")
        csym = chunk // width
        nsym = -(-nbytes // width)
        nchunks = -(-nsym // csym)
        pos = _HEAD.size
        if pos + 6 * nchunks > len(payload):
            raise StreamError(f"gpulz stream: truncated ({len(payload)} bytes, the chunk table needs more)")
        limits.charge(4 * 8 * nchunks + (nsym * width - nbytes), f"the table of {nchunks} chunks")
        ntok = np.frombuffer(payload, "<u2", nchunks, pos).astype(np.int64)
        sizes = np.frombuffer(payload, "<u4", nchunks, pos + 2 * nchunks).astype(np.int64)
        data = np.frombuffer(payload, np.uint8, offset=pos + 6 * nchunks)
        if np.any(ntok > csym):
            raise StreamError("gpulz stream: a chunk claims more tokens than symbols")
        offsets = np.zeros(nchunks + 1, np.int64)
        np.cumsum(sizes, out=offsets[1:])
        if offsets[-1] != data.size:
            raise StreamError(f"gpulz stream: chunks take {offsets[-1]} bytes, {data.size} are present")
        out = np.empty(nsym, f"<u{width}")
        sums = lz_kernels.decode(self.config.device, data, offsets, ntok, out, csym)
        bad = np.flatnonzero(sums < 0)
        if bad.size:
            raise StreamError(f"gpulz stream: {bad.size} damaged chunk(s), first at index {bad[0]}")
        meta = (dtype.str.encode(), payload[:_HEAD.size - 4], payload[_HEAD.size:pos + 6 * nchunks])
        if combine_checksums(sums, *meta) != checksum:
            raise StreamError("gpulz stream: checksum mismatch, the decoded codes differ from the encoded ones")
        return out.view(np.uint8)[:nbytes].view(dtype)
