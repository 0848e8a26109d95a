"""The ``chain`` encoder: stages one after another (huffman then zstd by default), bit-exact, safe on damage."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import compframe as cf
from compframe import container, registry
from compframe.base import Encoder, stream_header
from compframe.errors import ConfigError, FrameError, StreamError
from compframe.plugins.encoders.chain import GROWTH, SLACK, stage_library

DATA = Path(__file__).parent / "data"
GOLDEN = sorted(DATA.glob("golden_chain_*.bin"))


def runs_field(rng, shape=(400, 32), zeros=0.97) -> np.ndarray:
    """int8 codes that are 0 with probability ``zeros``, in long runs (a smooth field's residuals)."""
    flat = np.where(rng.random(shape) < zeros, 0, np.rint(rng.laplace(0, 2, shape))).astype(np.int8).reshape(-1)
    flat[: flat.size // 2] = 0  # a long run of zeros, as a coarse-to-fine interpolation leaves
    return flat.reshape(shape)


def payload(stream: bytes) -> bytes:
    """The chain's own payload (after the dtype/shape header)."""
    return stream[stream_header(stream)[2]:]


def before_last(stream: bytes, enc) -> bytes:
    """The bytes the stage before the last wrote, recovered by decoding the last stage only."""
    body = memoryview(payload(stream))
    n = len(enc.stages)
    sizes = struct.unpack_from(f"<{n - 1}Q", body, 1)
    return enc.stages[-1]._decode(body[1 + 8 * (n - 1):], np.dtype(np.uint8), sizes[-1]).tobytes()


CHAINS = {
    "huffman_zstd": {},
    "huffman_column_zstd19": {"stages": [{"id": "huffman", "context": "column", "chunk": 64},
                                         {"id": "zstd", "level": 19}]},
    "ans_lz4": {"stages": [{"id": "ans", "chunk": 64}, {"id": "lz4"}]},
    "zstd_only": {"stages": [{"id": "zstd"}]},
    "three": {"stages": [{"id": "huffman", "chunk": 64}, {"id": "none"}, {"id": "gpulz", "chunk": 64}]},
}


@pytest.mark.parametrize("name", CHAINS)
def test_round_trips_bit_exact(name):
    enc = cf.create("encoder", "chain", **CHAINS[name])
    rng = np.random.default_rng(3)
    cases = [
        np.zeros(0, np.int8), np.zeros((0, 5), np.int16), np.array(7, np.uint8), np.full(33, -3, np.int8),
        runs_field(rng), rng.integers(-128, 128, (17, 9, 3)).astype(np.int8),
        np.rint(rng.laplace(0, 300, (50, 7))).clip(-32768, 32767).astype(np.int16),
        rng.integers(0, 256, 1000).astype(np.uint8), rng.integers(-32768, 32768, 3001).astype(np.int16),
    ]
    for codes in cases:
        out = enc.decode(enc.encode(codes))
        assert out.dtype == codes.dtype and out.shape == codes.shape and np.array_equal(out, codes), codes.shape


def test_default_is_huffman_then_zstd_and_frames_keep_format_configs_only():
    enc = cf.create("encoder", "chain", stages=[{"id": "huffman", "chunk": 1024},
                                                {"id": "zstd", "level": 9, "threads": 2}])
    fmt, options = enc.split_config()
    assert fmt == {"id": "chain", "stages": [{"id": "huffman"}, {"id": "zstd"}]}
    assert list(options) == ["stage_options"]  # device (always cpu in a chain) is not recorded
    assert options["stage_options"][0]["chunk"] == 1024 and "device" not in options["stage_options"][0]
    assert options["stage_options"][1] == {"level": 9, "threads": 2}
    assert [s["id"] for s in cf.create("encoder", "chain").config.stages] == ["huffman", "zstd"]
    x = np.random.default_rng(0).standard_normal((64, 48)).astype(np.float32)
    frame = cf.compress(x, quantizer="int8", encoder=enc, bound="rel:1e-2")
    assert container.loads(frame).header["encoder"] == fmt
    assert np.array_equal(cf.decompress(frame), cf.decompress(cf.compress(x, quantizer="int8", encoder="huffman",
                                                                          bound="rel:1e-2")))


def test_a_header_never_chooses_run_time_options():
    """for_decoding keeps each stage's format parameters only: levels and threads in a header are ignored."""
    dec = registry.plugin_class("encoder", "chain").for_decoding(
        {"stages": [{"id": "huffman", "chunk": 64, "device": "cuda"}, {"id": "zstd", "level": 22, "threads": 64}]})
    assert dec.get_config()["stages"] == [{"id": "huffman"}, {"id": "zstd"}]
    codes = runs_field(np.random.default_rng(1))
    assert np.array_equal(dec.decode(cf.create("encoder", "chain").encode(codes)), codes)


def test_beats_huffman_alone_on_runs_of_zeros():
    """An order-0 Huffman code spends at least 1 bit per code; zstd over its stream codes the runs."""
    codes = runs_field(np.random.default_rng(5), (2000, 64), zeros=0.995).reshape(-1)  # 1-D: no repeated rows
    huffman = len(cf.create("encoder", "huffman").encode(codes))
    chain = len(cf.create("encoder", "chain").encode(codes))
    assert huffman >= codes.size / 8  # the 1 bit per code floor
    assert chain < huffman / 2


@pytest.mark.parametrize("name", ["huffman_zstd", "ans_lz4", "three"])
def test_damaged_streams_raise_or_decode_exactly(name):
    enc = cf.create("encoder", "chain", **CHAINS[name])
    codes = runs_field(np.random.default_rng(7), (60, 16), zeros=0.8)
    stream = enc.encode(codes)
    rng = np.random.default_rng(8)
    for cut in sorted({*range(0, len(stream), max(1, len(stream) // 40)), len(stream) - 1}):
        with pytest.raises(StreamError):
            enc.decode(stream[:cut])
    for pos in rng.integers(0, len(stream), 150):
        damaged = bytearray(stream)
        damaged[pos] ^= 1 << int(rng.integers(0, 8))
        try:
            out = enc.decode(bytes(damaged))
        except StreamError:
            continue
        assert out.dtype == codes.dtype and np.array_equal(out.reshape(codes.shape), codes), pos


def test_stated_sizes_are_capped_before_allocating():
    enc = cf.create("encoder", "chain")
    codes = np.zeros((10, 10), np.int16)
    stream = bytearray(enc.encode(codes))
    start = stream_header(bytes(stream))[2]
    assert stream[start] == 2
    cap = GROWTH * codes.nbytes + SLACK
    struct.pack_into("<Q", stream, start + 1, cap + 1)
    with pytest.raises(StreamError, match="more than the chain allows"):
        enc.decode(bytes(stream))
    struct.pack_into("<Q", stream, start + 1, cap)  # allowed size, but not what zstd's frame holds
    with pytest.raises(StreamError):
        enc.decode(bytes(stream))
    stream[start] = 3
    with pytest.raises(StreamError, match="3 stages"):
        enc.decode(bytes(stream))
    big = np.random.default_rng(0).integers(-128, 128, 1 << 18).astype(np.int8)
    with pytest.raises(StreamError, match="chain stage 2's input"):  # the intermediate buffer is charged
        enc.decode(enc.encode(big), max_bytes=big.nbytes + 1000)
    assert np.array_equal(enc.decode(enc.encode(big), max_bytes=3 * big.nbytes), big)


@dataclass
class _WideOnlyConfig:
    device: str = "cpu"


class _WideOnly(Encoder):
    """A stand-in encoder that takes 2-byte codes only (no registered encoder refuses uint8)."""

    symbol_widths = (2,)
    Config = _WideOnlyConfig
    kind, plugin_id = "encoder", "wide_only"


@pytest.mark.parametrize("stages, param, words", [
    ([], "stages", "1..4"),
    ([{"id": "zstd"}] * 5, "stages", "1..4"),
    ([{"id": "huffmn"}], "stages[0]", "Did you mean 'huffman'"),
    ([{"id": "huffman"}, {"id": "zstd", "level": 99}], "stages[1]", "level"),
    ([{"id": "huffman"}, {"id": "chain"}], "stages[1]", "chain"),
    ([{"id": "huffman", "device": "cuda"}], "stages[0]", "cuda"),
    ([{"id": "huffman"}, {"id": "wide_only"}], "stages[1]", "uint8"),
    ([{"level": 3}], "stages[0]", "encoder config"),
    (["huffman"], "stages", "dict"),
])
def test_bad_configs_name_the_parameter(monkeypatch, stages, param, words):
    monkeypatch.setitem(registry._plugins["encoder"], "wide_only", _WideOnly)
    with pytest.raises(ConfigError, match=words) as info:
        cf.create("encoder", "chain", stages=stages)
    assert info.value.param == param
    with pytest.raises(ConfigError, match="device"):
        cf.create("encoder", "chain", device="cuda")


def test_crafted_headers_are_frame_errors():
    x = np.random.default_rng(2).standard_normal((16, 16)).astype(np.float32)
    f = container.loads(cf.compress(x, quantizer="int8", encoder="chain", bound="rel:1e-2"))
    codes = {name: bytes(s) for name, s in f.code_streams().items()}
    for stages in ([{"id": "nope"}], "huffman", [{"id": "chain"}], [{"id": "zstd"}], [7]):
        header = {k: v for k, v in f.header.items() if k != "sections"}
        header["encoder"] = {"id": "chain", "stages": stages}
        with pytest.raises(FrameError):
            cf.decompress(container.dumps(header, codes, f.side_arrays()))


def test_golden_streams_exist():
    assert {p.stem for p in GOLDEN} == {"golden_chain_huffman_zstd", "golden_chain_ans_huffman_lz4"}, \
        "tests/data/make_golden.py chain"


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_golden_streams_still_decode(path):
    """Streams written by an earlier compframe decode to the same codes, and today's chain writes the
    same bytes up to its last stage (the chain's header, sizes and the earlier stages' output), and
    the same bytes throughout where the last stage's library (zstd, lz4) is the version the json
    names (its bytes may change between its versions)."""
    meta = json.loads(path.with_suffix(".json").read_text())
    expected = np.load(path.with_suffix(".npy"))
    enc = cf.create("encoder", meta["encoder"], **meta["params"])
    stream = path.read_bytes()
    out = enc.decode(stream)
    assert out.dtype == expected.dtype and out.shape == expected.shape and np.array_equal(out, expected)
    fresh = enc.encode(expected)
    if meta["last_stage_library"] == stage_library(enc.stages[-1].plugin_id):
        assert fresh == stream
    n = len(enc.stages)
    head = stream_header(stream)[2] + 1 + 8 * (n - 1)
    assert fresh[:head] == stream[:head]
    assert before_last(fresh, enc) == before_last(stream, enc)
