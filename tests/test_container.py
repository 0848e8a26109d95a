"""The frame: self-describing, checksummed per section, refusing damage and truncation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import compframe as cf
from compframe import container
from compframe.container import FrameError

DATA = Path(__file__).parent / "data"


def small_frame() -> tuple[np.ndarray, bytes]:
    x = np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)
    x[0, 0] = np.nan
    return x, cf.compress(x, quantizer="int8", encoder="zstd", bound="rel:1e-2")


def test_frame_decodes_from_bytes_alone():
    x, frame = small_frame()
    f = container.loads(frame)
    assert f.header["quantizer"]["id"] == "int8" and f.header["encoder"]["id"] == "zstd"
    assert f.header["shape"] == [16, 8] and f.header["dtype"] == "float32"
    assert f.header["bound"] == {"mode": "rel", "value": 0.01}
    y = cf.decompress(frame)
    assert np.isnan(y[0, 0]) and np.nanmax(np.abs(x - y)) <= f.header["meta"]["abs_bound"]


def test_every_single_byte_flip_is_refused():
    _, frame = small_frame()
    for pos in range(len(frame)):
        bad = bytearray(frame)
        bad[pos] ^= 0x40
        with pytest.raises(FrameError):
            cf.decompress(bytes(bad))


def test_every_truncation_is_refused():
    _, frame = small_frame()
    for cut in range(len(frame)):
        with pytest.raises(FrameError):
            cf.decompress(frame[:cut])
    with pytest.raises(FrameError, match="trailing bytes"):
        cf.decompress(frame + b"\0")


def test_not_a_frame():
    with pytest.raises(FrameError, match="not a compframe frame"):
        cf.decompress(b"PK\x03\x04" + bytes(40))


def test_future_version_refused():
    _, frame = small_frame()
    bad = bytearray(frame)
    bad[4] = 99
    with pytest.raises(FrameError, match="version 99 is not supported"):
        cf.decompress(bytes(bad))


GOLDEN = sorted(DATA.glob("golden_*.cfrm"))


def test_golden_frames_exist():
    """One golden frame per pipeline make_golden.py writes, each with its expected values and config."""
    names = {p.stem for p in GOLDEN if not p.stem.startswith("golden_options_")}
    assert names == {"golden_int8_none", "golden_int8_lz4", "golden_int16_zstd", "golden_interp_chain",
                     "golden_interp_chain_b7dd09d"}, "run tests/data/make_golden.py"
    for path in GOLDEN:
        assert path.with_suffix(".npy").is_file() and path.with_suffix(".json").is_file(), path


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_golden_frames_still_decode(path):
    """Frames written by an earlier compframe must keep decoding to the same values."""
    expected = np.load(path.with_suffix(".npy"))
    y = cf.decompress(path.read_bytes())
    assert y.dtype == expected.dtype and np.array_equal(y.view(np.uint8), expected.view(np.uint8))
    meta = json.loads(path.with_suffix(".json").read_text())
    assert container.loads(path.read_bytes()).header["quantizer"] == meta["quantizer"]
