"""Every registered encoder round-trips every code dtype bit-exactly (numcodecs' check_encode_decode).

Parametrized over the registry: a new encoder is tested without editing this file. Damaged and
truncated streams must raise ``StreamError`` (a ValueError), never return wrong data.
"""

from __future__ import annotations

import numpy as np
import pytest

from compframe import registry
from compframe.base import StreamError

ENCODERS = [pid for pid in registry.available("encoder") if "cpu" in registry.plugin_class("encoder", pid).devices]
SIZES = [0, 1, 2, 7, 255, 256, 257, 4095, 4096, 4097, 100_003]


def distributions(dtype, n: int, rng) -> dict[str, np.ndarray]:
    info = np.iinfo(dtype)
    skew = np.clip(np.rint(rng.laplace(0, 3, n)), info.min, info.max).astype(dtype)
    return {
        "skewed": skew,
        "uniform": rng.integers(info.min, int(info.max) + 1, n, dtype=dtype),
        "constant": np.full(n, info.max, dtype),
        "extremes": rng.choice(np.array([info.min, info.max], dtype), n),
        "runs": np.repeat(rng.integers(info.min, int(info.max) + 1, max(n // 50, 1), dtype=dtype), 50)[:n],
    }


@pytest.mark.parametrize("pid", ENCODERS)
@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16])
def test_round_trip(pid, dtype):
    enc = registry.create("encoder", pid)
    if np.dtype(dtype).itemsize not in enc.symbol_widths:
        pytest.skip(f"{pid} takes widths {enc.symbol_widths}")
    rng = np.random.default_rng(1)
    for n in SIZES:
        for name, codes in distributions(dtype, n, rng).items():
            out = enc.decode(enc.encode(codes))
            assert out.dtype == codes.dtype and out.shape == codes.shape, (n, name)
            assert np.array_equal(out, codes), (pid, n, name)


@pytest.mark.parametrize("pid", ENCODERS)
def test_round_trip_2d_keeps_shape(pid):
    enc = registry.create("encoder", pid)
    codes = np.random.default_rng(2).integers(-20, 20, (300, 64)).astype(np.int8)
    out = enc.decode(enc.encode(codes))
    assert out.shape == (300, 64) and np.array_equal(out, codes)


@pytest.mark.parametrize("pid", ENCODERS)
def test_damaged_streams_are_refused(pid):
    enc = registry.create("encoder", pid)
    codes = np.clip(np.rint(np.random.default_rng(3).laplace(0, 4, 3000)), -127, 127).astype(np.int8)
    stream = enc.encode(codes)
    for cut in sorted({0, 1, 2, 5, len(stream) // 2, len(stream) - 1}):
        with pytest.raises(StreamError):
            enc.decode(stream[:cut])
    rng = np.random.default_rng(4)
    for _ in range(200):
        bad = bytearray(stream)
        for pos in rng.integers(0, len(bad), rng.integers(1, 4)):
            bad[pos] ^= int(rng.integers(1, 256))
        try:
            out = enc.decode(bytes(bad))
        except StreamError:
            continue
        if pid == "none":  # raw bytes without a checksum: the damage shows exactly where it was made
            assert out.shape == codes.shape and out.tobytes() == bytes(bad[len(stream) - codes.nbytes:])
        else:  # a checksummed stream decodes to the right codes (damage in ignored bytes) or is refused
            assert np.array_equal(out, codes), f"{pid} decoded a damaged stream to wrong codes"


def test_wrong_dtype_is_refused():
    with pytest.raises(TypeError, match="takes .*int8.*got float32"):
        registry.create("encoder", "lz4").encode(np.zeros(4, np.float32))


@pytest.mark.parametrize("threads", [1, 2])
def test_lz4_many_blocks(threads):
    """Streams of several blocks (the last one partial) round-trip, and a broken block table is refused."""
    enc = registry.create("encoder", "lz4", block=65536, threads=threads)
    codes = np.clip(np.rint(np.random.default_rng(6).laplace(0, 30, 300_001)), -32768, 32767).astype(np.int16)
    stream = enc.encode(codes)
    assert np.array_equal(enc.decode(stream), codes)
    header_len = len(stream) - len(enc.encode_parts(codes)[1]) - sum(len(p) for p in enc.encode_parts(codes)[2:])
    bad = bytearray(stream)
    bad[header_len + 4] ^= 1  # the block count
    with pytest.raises(StreamError, match="block table"):
        enc.decode(bytes(bad))
    bad = bytearray(stream)
    bad[header_len + 8] ^= 1  # the first block's compressed size
    with pytest.raises(StreamError):
        enc.decode(bytes(bad))
