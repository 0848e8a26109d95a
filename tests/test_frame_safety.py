"""Decoding is memory-safe on any bytes: one error type, bounded allocation, the caller's output kind,
run-time options never required, and a fuzz test of mutated frames (CRCs recomputed) in guarded workers."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import compframe as cf
from compframe import container, decoding, fuzz, limits
from compframe.base import stream_header

DATA = Path(__file__).parent / "data"


def edit(frame: bytes, change) -> bytes:
    """``frame`` after ``change(header, bodies)`` edits its header or section bodies; CRCs recomputed."""
    header, bodies = fuzz.split(frame)
    change(header, bodies)
    return fuzz.join(header, bodies)


def section(header: dict, name: str) -> int:
    return next(i for i, e in enumerate(header["sections"]) if e["name"] == name)


def set_stream_shape(body: bytearray, shape: list[int]) -> bytearray:
    """A stream with the same dtype and payload and another shape in its header."""
    dtype, _, start = stream_header(bytes(body))
    dt = dtype.str.encode()
    head = bytes([len(dt)]) + dt + bytes([len(shape)]) + np.array(shape, "<u8").tobytes()
    return bytearray(head) + body[start:]


@pytest.fixture(scope="module")
def field():
    return fuzz.sample_field()


def frame_of(x, quantizer="int8", encoder="none", bound="rel:1e-2"):
    return cf.compress(x, quantizer=quantizer, encoder=encoder, bound=bound)


# ---------------------------------------------------------------- one error type, each class of crafted frame


def test_outlier_index_out_of_range_negative_or_retyped(field):
    frame = frame_of(field)
    n = field.size

    def past_end(h, b):
        b[section(h, "outlier_index")][:4] = np.uint32(n).tobytes()

    def retyped_signed(h, b):
        i = section(h, "outlier_index")
        h["sections"][i]["dtype"] = "<i4"
        b[i][:4] = np.int32(-5).tobytes()

    def retyped_wider(h, b):
        i = section(h, "outlier_index")
        h["sections"][i]["dtype"] = "<u8"
        h["sections"][i]["shape"] = [len(b[i]) // 8]

    for change, match in ((past_end, "outside the field"), (retyped_signed, "outlier side data"),
                          (retyped_wider, "outlier side data|holds")):
        with pytest.raises(cf.FrameError, match=match):
            cf.decompress(edit(frame, change))


def test_outlier_bits_or_header_dtype_changed(field):
    frame = frame_of(field)

    def bits_u8(h, b):
        i = section(h, "outlier_bits")
        h["sections"][i]["dtype"] = "<u8"
        h["sections"][i]["shape"] = [len(b[i]) // 8]

    def dtype_f64(h, b):
        h["dtype"] = "float64"

    def dtype_foreign(h, b):
        h["dtype"] = "float16"

    for change in (bits_u8, dtype_f64, dtype_foreign):
        with pytest.raises(cf.FrameError):
            cf.decompress(edit(frame, change))


def test_mx_scale_shapes_swapped_and_foreign_element_codes(field):
    frame = frame_of(field, "mxint8", "none", None)

    def swap(h, b):
        i = section(h, "scales")
        _, shape, _ = stream_header(bytes(b[i]))
        b[i] = set_stream_shape(b[i], shape[::-1])

    with pytest.raises(cf.StreamError, match="expects"):
        cf.decompress(edit(frame, swap))

    def minus_128(h, b):  # symmetric int8 elements stop at -127; -128 would index past the element table
        i = section(h, "elements")
        _, _, start = stream_header(bytes(b[i]))
        b[i][start] = 0x80

    with pytest.raises(cf.FrameError, match="not 8-bit codes"):
        cf.decompress(edit(frame, minus_128))


def test_vq_codebook_and_index_shapes(field):
    frame = frame_of(np.nan_to_num(field, posinf=1.0), {"id": "vq", "bits": 3, "iterations": 2}, "none", None)

    def fewer_centres(h, b):
        i = section(h, "codebook")
        h["sections"][i]["shape"] = [2, 4]
        b[i] = b[i][:2 * 4 * 4]

    def wrong_block(h, b):
        i = section(h, "codebook")
        h["sections"][i]["shape"] = [16, 2]

    with pytest.raises(cf.FrameError, match="past the codebook"):
        cf.decompress(edit(frame, fewer_centres))
    with pytest.raises(cf.FrameError, match="codebook must be"):
        cf.decompress(edit(frame, wrong_block))


def test_lowrank_factor_shapes(field):
    frame = frame_of(np.nan_to_num(field, posinf=1.0), {"id": "lplr", "rank": 4}, "zstd", None)
    with pytest.raises(cf.FrameError, match="expects"):
        cf.decompress(edit(frame, lambda h, b: h["meta"].update(rank=5)))
    with pytest.raises(cf.FrameError, match="meta.rank"):
        cf.decompress(edit(frame, lambda h, b: h["meta"].update(rank=10**9)))
    with pytest.raises(cf.FrameError, match="meta.exponent"):
        cf.decompress(edit(frame, lambda h, b: h["meta"].update(exponent="2")))


def test_prune_mask_of_a_huge_shape_is_refused_before_any_allocation(field):
    frame = frame_of(field, {"id": "prune", "fraction": 0.5, "then": "int8"}, "zstd")
    with pytest.raises(cf.StreamError, match=r"expects \[480\]"):  # the mask stream holds 48 bytes
        cf.decompress(edit(frame, lambda h, b: h.update(shape=[24, 160])))
    with pytest.raises(cf.FrameError, match="max_bytes"):  # a 4 TiB result is refused before its mask
        cf.decompress(edit(frame, lambda h, b: h.update(shape=[1 << 40])))

    def mask_lies(h, b):
        h["meta"]["kept"] -= 1

    with pytest.raises(cf.FrameError, match="expects|keeps"):
        cf.decompress(edit(frame, mask_lies))


def test_consistent_huge_claims_hit_max_bytes_before_allocating():
    """A constant stream codes any count in a few bytes: header, stream shape and count all agree on
    2**34 values, so only the byte budget stops it, before the 16 GiB result is allocated."""
    frame = cf.compress(np.zeros((4, 64), np.float32), quantizer="int8", encoder="ans", bound="abs:1")
    n = 1 << 34

    def grow(h, b):
        h["shape"] = [n]
        i = section(h, "codes")
        body = set_stream_shape(b[i], [n])
        _, _, start = stream_header(bytes(body))
        body[start + 2:start + 10] = np.uint64(n).tobytes()  # the coded stream's own count, and its CRC
        body[start + 18:start + 22] = np.uint32(zlib.crc32(body[start:start + 18], zlib.crc32(b"|i1"))).tobytes()
        b[i] = body

    with pytest.raises(cf.FrameError, match="max_bytes"):
        cf.decompress(edit(frame, grow))


def test_max_bytes_caps_the_output(field):
    frame = frame_of(field, encoder="zstd")
    need = field.nbytes + field.size  # the result and its int8 codes
    with pytest.raises(cf.FrameError, match=r"max_bytes=1000 .*cf.decompress\(frame, max_bytes="):
        cf.decompress(frame, max_bytes=1000)
    assert cf.decompress(frame, max_bytes=need).shape == field.shape
    assert limits.default_max_bytes(10) == 256 << 20 and limits.default_max_bytes(1 << 30) == 256 << 30
    stream = cf.registry.create_from_config("encoder", {"id": "zstd"}).encode_parts(np.zeros((30, 40), np.int8))
    with pytest.raises(cf.FrameError, match=r"max_bytes=100 bytes \(zstd codes \[30, 40\] of int8: 1200 bytes"):
        cf.registry.create_from_config("encoder", {"id": "zstd"}).decode(b"".join(stream), max_bytes=100)
    with pytest.raises(ValueError, match="max_bytes"):
        cf.decompress(frame, max_bytes=-1)


def test_budget_scope_nests_and_ends_with_its_decode():
    """A nested ``limits.budget`` shares the outer one; the outer one ends with its block, also when
    the block raises, and a bad ``max_bytes`` is refused on entry."""
    with limits.budget(100, 0) as outer:
        with limits.budget(None, 10**9) as inner:
            assert inner is outer and inner.limit == 100
            limits.charge(60, "a")
        with pytest.raises(cf.FrameError, match=r"max_bytes=100 bytes \(b: 50 bytes after 60\)"):
            limits.charge(50, lambda: "b")
    limits.charge(1 << 40, "nothing is charged outside a decode")
    with pytest.raises(KeyError), limits.budget(None, 1) as b:
        assert b.limit == limits.DEFAULT_FLOOR
        raise KeyError
    with limits.budget(7, 0) as b:
        assert b.limit == 7 and b.used == 0
    for bad in (-1, 1.5, True, "8"):
        with pytest.raises(ValueError, match="max_bytes must be a whole number"), limits.budget(bad, 0):
            pass


def test_header_structure_and_plugins_fail_as_frame_errors(field):
    frame = frame_of(field, encoder="huffman")
    cases = [
        lambda h, b: h.update(quantizer="int8"),
        lambda h, b: h.update(quantizer={"id": "no_such"}),
        lambda h, b: h["encoder"].update(id="int8"),
        lambda h, b: h["encoder"].update(chunk="64"),  # a format-free option: ignored, see below
        lambda h, b: h["sections"][0].update(role="code?"),
        lambda h, b: h["sections"][1].update(dtype="O"),
        lambda h, b: h["sections"][1].update(shape=[-1, -len(b[1]) // 4]),
        lambda h, b: h.update(shape=[24, "16"]),
        lambda h, b: h["meta"].update(centre="0"),
        lambda h, b: h.update(meta=[1]),
    ]
    outcomes = []
    for change in cases:
        try:
            cf.decompress(edit(frame, change))
            outcomes.append("ok")
        except cf.FrameError as e:
            assert not str(e).startswith(decoding.UNEXPECTED), e
            outcomes.append("error")
    assert outcomes == ["error"] * 3 + ["ok"] + ["error"] * 6
    deep = b"[" * 100_000 + b"]" * 100_000  # nested past Python's recursion limit
    with pytest.raises(cf.FrameError, match="JSON"):
        cf.decompress(struct.pack("<4sHHII", b"CFRM", 1, 0, len(deep), zlib.crc32(deep)) + deep)


# ---------------------------------------------------------------- output kind and devices


def test_output_kind_is_the_callers(field):
    torch = pytest.importorskip("torch")
    frame = cf.compress(torch.from_numpy(field), quantizer="bf16", encoder="zstd", bound=None)
    assert isinstance(cf.decompress(frame), torch.Tensor) and cf.decompress(frame).device.type == "cpu"
    assert isinstance(cf.decompress(frame, like="numpy"), np.ndarray)
    assert isinstance(cf.decompress(frame, like=np.empty(0)), np.ndarray)
    assert isinstance(cf.decompress(frame_of(field), like=torch.empty(0)), torch.Tensor)
    assert cf.decompress(frame, device="cpu").device.type == "cpu"
    with pytest.raises(ValueError, match="like="):
        cf.decompress(frame, like="jax")
    with pytest.raises(ValueError, match="numpy result lives on the host"):
        cf.decompress(frame_of(field), device="cuda")


def test_a_header_never_selects_a_device_or_imports(field):
    frame = frame_of(field)
    as_cuda = edit(frame, lambda h, b: h["meta"].update(array={"kind": "torch", "device": "cuda:0"}))
    assert cf.decompress(as_cuda).device.type == "cpu"  # a CUDA tensor went in: a CPU tensor comes out
    for bad in ({"kind": "torch", "device": "meta"}, {"kind": "jax"}, "torch"):
        with pytest.raises(cf.FrameError, match="meta.array"):
            cf.decompress(edit(frame, lambda h, b, bad=bad: h["meta"].update(array=bad)))
    code = f"""
import sys, compframe as cf
from compframe import fuzz
frame = fuzz.join(*fuzz.split(open({str(DATA / 'golden_int8_none.cfrm')!r}, 'rb').read()))
h, b = fuzz.split(frame)
h['meta']['array'] = {{'kind': 'cupy'}}
assert type(cf.decompress(fuzz.join(h, b))).__module__ == 'numpy'
h['encoder'] = {{'id': 'nvcomp_lz4'}}
try:
    cf.decompress(fuzz.join(h, b))
except cf.FrameError as e:
    assert 'decode only on cuda' in str(e), e
else:
    raise AssertionError('nvcomp frame decoded on the CPU')
assert 'cupy' not in sys.modules and 'nvidia.nvcomp' not in sys.modules and 'numba.cuda' not in sys.modules, sorted(
    m for m in sys.modules if 'cupy' in m or 'nvcomp' in m or 'numba.cuda' in m)
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


OPTION_FRAMES = sorted(DATA.glob("golden_options_*.cfrm"))


def test_option_frames_exist():
    assert len(OPTION_FRAMES) == 6, "tests/data/golden_options_* are missing (make_golden.py options)"
    for path in OPTION_FRAMES:
        expected = np.load(path.with_suffix(".npy"))
        assert np.array_equal(cf.decompress(path.read_bytes()).view(np.uint8), expected.view(np.uint8)), path.stem


@pytest.mark.parametrize("path", OPTION_FRAMES, ids=lambda p: p.stem)
def test_run_time_options_are_not_requirements(path):
    """Frames written by encoders configured with device=cuda, a level or threads decode on this
    CPU-only machine to the same values (the options are recorded, never re-validated)."""
    frame = path.read_bytes()
    expected = np.load(path.with_suffix(".npy"))
    assert np.array_equal(cf.decompress(frame).view(np.uint8), expected.view(np.uint8))
    header = container.loads(frame).header
    options = header.get("encoder_options", header["encoder"])
    assert options.get("device") == "cuda" or options.get("threads", 0) > 2 or options.get("level", 3) != 3
    absurd = edit(frame, lambda h, b: h.setdefault("encoder_options", {}).update(device="tpu", threads=-5))
    assert np.array_equal(cf.decompress(absurd).view(np.uint8), expected.view(np.uint8))


def test_new_frames_store_format_parameters_only(field):
    frame = frame_of(field, encoder={"id": "lz4", "threads": 1, "checksum": False, "mode": "fast", "acceleration": 4})
    header = container.loads(frame).header
    assert header["encoder"] == {"id": "lz4", "checksum": False}
    assert header["encoder_options"]["acceleration"] == 4
    assert np.array_equal(cf.decompress(frame), cf.decompress(frame_of(field)), equal_nan=True)


def test_thread_count_leaves_the_frame_unchanged(field):
    """lz4's ``threads`` (and its ``device``, always cpu) are not recorded: the frame's bytes are the
    same on any thread count; zstd's ``threads`` stays recorded (zstd's multi-threaded mode may write
    other bytes)."""
    big = np.tile(field, (1 << 21) // field.size + 1)  # 4+ lz4 blocks of 2**16 bytes, so threads take part
    one, many = (frame_of(big, encoder={"id": "lz4", "threads": t, "block": 1 << 16}) for t in (1, 4))
    assert one == many
    assert "threads" not in container.loads(one).header["encoder_options"]
    assert "device" not in container.loads(one).header["encoder_options"]
    assert container.loads(frame_of(field, encoder={"id": "zstd", "threads": 2})).header["encoder_options"]["threads"] == 2


# ---------------------------------------------------------------- inputs


@pytest.mark.parametrize("quantizer,bound", [("int8", "rel:1e-2"), ("int16", "abs:1e-3"), ("bf16", None),
                                             ("mxint8", None), ("fixed", None), ("vq", None), ("nq", None),
                                             ({"id": "prune", "then": "fp16"}, None)])
def test_zero_d_arrays_come_back_zero_d(quantizer, bound):
    x = np.array(1.25, np.float32)
    y = cf.decompress(cf.compress(x, quantizer=quantizer, encoder="zstd", bound=bound))
    assert y.shape == () and y.dtype == np.float32


def test_big_endian_input_is_converted():
    x = np.linspace(-3, 3, 96).reshape(8, 12)
    for dtype in (">f4", ">f8"):
        y = cf.decompress(cf.compress(x.astype(dtype), quantizer="int16", encoder="huffman", bound="abs:1e-3"))
        assert y.dtype == np.dtype(dtype).newbyteorder("=") and np.abs(y - x.astype(dtype)).max() <= 1e-3
    codes = np.arange(40, dtype=">i2").reshape(4, 10)
    enc = cf.create("encoder", "ans")
    assert np.array_equal(enc.decode(enc.encode(codes)), codes)


def test_every_quantizer_states_its_frame_layout():
    from compframe.base import Quantizer
    from compframe.registry import available, plugin_class

    missing = [q for q in available("quantizer") if plugin_class("quantizer", q).code_layout is Quantizer.code_layout]
    assert not missing, f"quantizers without code_layout (their frames would decode unchecked): {missing}"


def test_stream_shape_must_match_the_frame():
    enc = cf.create("encoder", "zstd")
    stream = enc.encode(np.arange(12, dtype=np.int8).reshape(3, 4))
    with pytest.raises(cf.StreamError, match=r"expects \[4, 3\]"):
        enc.decode(stream, (np.dtype(np.int8), (4, 3)))
    with pytest.raises(cf.StreamError, match="not a code dtype"):
        enc.decode(stream.replace(b"|i1", b">i2", 1))


# ---------------------------------------------------------------- the fuzz test


@pytest.mark.slow
def test_fuzzed_frames_raise_only_frame_error():
    """10^4 mutants of the 100 frames of ``fuzz.sample_frames`` (10 quantizers x 10 CPU encoder
    configurations), CRCs recomputed,
    decoded by two guarded worker processes: no crash, no hang, no exception but FrameError, and
    none caught only by the decoder's safety net."""
    frames = fuzz.sample_frames()
    for frame in frames.values():  # compile (and cache) every kernel here, so the workers only load them
        cf.decompress(frame)
    cases = fuzz.mutants(frames, 10_000, seed=2026)
    report = fuzz.run(cases, workers=2, timeout=60, warmup=list(frames.values()))
    bad = [(b["frame"], b["ops"], b["outcome"], b["message"]) for b in report.bad]
    assert report.total == len(cases) and not bad, bad[:5]
    assert report.counts["frame_error"] > 0.6 * len(cases)
    assert {c[0] for c in cases} == set(frames) and {op for c in cases for op in c[1].split("+")} >= set(fuzz.OPERATORS)


@pytest.mark.slow
def test_the_watchdog_sees_crashes_and_hangs():
    """A worker killed by a signal and one that stops answering are both reported, and the pool goes on."""
    frame = frame_of(fuzz.sample_field())
    report = fuzz.run([("ok", "none", frame), ("crash", "none", fuzz.CRASH), ("hang", "none", fuzz.HANG),
                       ("ok", "none", frame)], workers=1, timeout=5, warmup=[frame])
    assert report.counts == {"ok": 2, "crash": 1, "hang": 1}, report.counts
    assert [b["frame"] for b in report.bad] == ["crash", "hang"]


def test_golden_json_lists_the_encoder():
    for path in OPTION_FRAMES:
        config = json.loads(path.with_suffix(".json").read_text())
        assert "quantizer" in config and "encoder" in config, path.stem


def test_a_kernel_that_fails_to_compile_is_not_reported_as_damage(monkeypatch):
    """A library's error on damaged input is a StreamError; a numba compile error is a bug in the
    decoder, and passes through as itself instead of blaming the payload."""
    import numba
    from numba.core.errors import TypingError

    from compframe import registry
    from compframe.errors import StreamError

    @numba.njit
    def broken(x):
        return x.no_such_attribute

    enc = registry.create_from_config("encoder", {"id": "zstd"})
    stream = b"".join(enc.encode_parts(np.arange(100, dtype=np.int8)))
    monkeypatch.setattr(type(enc), "_decode", lambda self, payload, dtype, count: broken(np.zeros(3)))
    with pytest.raises(TypingError):
        enc.decode(stream)
    monkeypatch.setattr(type(enc), "_decode", lambda self, payload, dtype, count: 1 // 0)
    with pytest.raises(StreamError, match="payload is damaged \\(ZeroDivisionError"):
        enc.decode(stream)
