"""The lossless encoders of issue 3 (huffman, ans, gpulz, nvCOMP wrappers) and the general ones.

Round trips over dtypes, sizes around chunk boundaries and distributions; fuzzing with random bytes,
every single-byte flip and every truncation of small streams (a damaged stream must raise
``StreamError`` or decode to exactly the original codes, never crash, hang or return other data);
entropy bounds; context modelling; parameter checks.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from compframe import registry
from compframe.base import StreamError
from compframe.registry import ConfigError

ROOT = Path(__file__).resolve().parents[1]
DTYPES = [np.int8, np.uint8, np.int16, np.uint16]

# (id, params, chunk in symbols or None): small chunks put many boundaries into small arrays.
CONFIGS = [
    ("huffman", {}, 8192),
    ("huffman", {"chunk": 64}, 64),
    ("huffman", {"chunk": 64, "max_length": 8}, 64),
    ("huffman", {"chunk": 100, "context": "column"}, 100),
    ("huffman", {"chunk": 64, "context": "classes"}, 64),
    ("ans", {}, 131072),
    ("ans", {"chunk": 64, "lanes": 16}, 64),
    ("ans", {"chunk": 100, "lanes": 32, "context": "column"}, 100),
    ("ans", {"chunk": 64, "lanes": 64, "block": 1024}, 64),
    ("ans", {"chunk": 64}, 64),
    ("ans", {"chunk": 64, "precision": 10}, 64),
    ("ans", {"chunk": 100, "context": "column"}, 100),
    ("ans", {"chunk": 64, "context": "classes"}, 64),
    ("gpulz", {}, None),
    ("gpulz", {"chunk": 64, "window": 16}, None),
    ("gpulz", {"chunk": 64, "symbol_bytes": 1}, None),
    ("gpulz", {"chunk": 64, "symbol_bytes": 4}, None),
    ("lz4", {}, None),
    ("lz4", {"checksum": True}, None),
    ("zstd", {}, None),
]
IDS = [f"{pid}-{'-'.join(f'{k}={v}' for k, v in params.items()) or 'default'}" for pid, params, _ in CONFIGS]
MINE = ("huffman", "ans", "gpulz")


def make(pid, **params):
    return registry.create("encoder", pid, **params)


def sizes_for(chunk, itemsize):
    chunk = chunk or 64 // itemsize
    return sorted({0, 1, 2, 3, 777, chunk - 1, chunk, chunk + 1, 2 * chunk + 1, 20_001})


def distributions(dtype, n, rng):
    info = np.iinfo(dtype)
    return {
        "skewed": np.clip(np.rint(rng.laplace(0, 3, n)), info.min, info.max).astype(dtype),
        "uniform": rng.integers(info.min, int(info.max) + 1, n, dtype=dtype),
        "constant": np.full(n, info.min, dtype),
        "random": rng.integers(max(info.min, -40), 41, n).astype(dtype),
        "extremes": rng.choice(np.array([info.min, info.max], dtype), n),
        "runs": np.repeat(rng.integers(0, 9, max(n // 7, 1)), 7)[:n].astype(dtype),
    }


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("pid,params,chunk", CONFIGS, ids=IDS)
def test_round_trip(pid, params, chunk, dtype):
    enc = make(pid, **params)
    rng = np.random.default_rng(0)
    for n in sizes_for(chunk, np.dtype(dtype).itemsize):
        for name, codes in distributions(dtype, n, rng).items():
            out = enc.decode(enc.encode(codes))
            assert out.dtype == codes.dtype and out.shape == codes.shape, (n, name)
            assert np.array_equal(out, codes), (n, name)


@pytest.mark.parametrize("pid", MINE)
@pytest.mark.parametrize("shape", [(0, 5), (1, 7), (7, 1), (33, 9), (5, 4, 3), (300, 64)])
def test_shapes_and_column_context(pid, shape):
    rng = np.random.default_rng(1)
    codes = np.rint(rng.laplace(0, 2, shape) * (1 + np.arange(shape[-1]))).clip(-128, 127).astype(np.int8)
    params = {"chunk": 64} if pid == "gpulz" else {"chunk": 64, "context": "column"}
    enc = make(pid, **params)
    out = enc.decode(enc.encode(codes))
    assert out.shape == codes.shape and np.array_equal(out, codes)


def _tables(stream: bytes, ndim: int) -> int:
    """The table count of a huffman/ans stream (see entropy.py's layout)."""
    head = 1 + 3 + 1 + 8 * ndim  # base header for dtype '<i1' / '<i2'
    return struct.unpack_from("<iIIIBII", stream, head + 10)[3]


@pytest.mark.parametrize("pid", ["huffman", "ans"])
def test_column_context_pays_off_and_falls_back(pid):
    rng = np.random.default_rng(2)
    rows, cols = 4096, 16
    # columns with very different distributions: per-column tables win
    varied = np.stack([rng.integers(-60, 60, rows) if c % 2 else rng.geometric(0.5, rows) for c in range(cols)], 1)
    varied = varied.astype(np.int8)
    none, column = make(pid, context="none"), make(pid, context="column")
    a, b = none.encode(varied), column.encode(varied)
    assert _tables(b, 2) == cols and len(b) < 0.95 * len(a)
    assert np.array_equal(column.decode(b), varied)
    # i.i.d. columns: one shared table is cheaper, so the stream falls back to it
    iid = np.rint(rng.laplace(0, 3, (rows, cols))).astype(np.int8)
    c = column.encode(iid)
    assert _tables(c, 2) == 1 and c == none.encode(iid)
    # 1-D data: nothing to split
    flat = iid.reshape(-1)
    assert column.encode(flat) == none.encode(flat)


@pytest.mark.parametrize("pid", ["huffman", "ans"])
@pytest.mark.parametrize("dtype", [np.int8, np.int16])
def test_auto_context_picks_the_smallest(pid, dtype):
    """context=auto (the default) writes the smallest of the none, block, column and classes streams, on
    fields built so that each of the four wins: i.i.d. codes (one table), columns centred apart (a table
    per column: no two columns share a table cheaply), 64 columns of four spreads shuffled (four
    classes of columns) and i.i.d. columns whose spread changes half-way down (a table per block)."""
    rng = np.random.default_rng(13)
    rows, cols = 4096, 16
    scale = 20 if dtype == np.int8 else 300
    spreads = np.repeat([0.3, 2, scale / 4, scale], 16)
    rng.shuffle(spreads)
    fields = {
        "none": rng.laplace(0, scale / 4, (rows, cols)),
        "column": rng.laplace(0, scale / 40, (rows, cols)) + np.arange(cols) * scale / 3,
        "classes": rng.laplace(0, 1, (rows, 64)) * spreads,
        "block": rng.laplace(0, 1, (rows, cols)) * np.repeat([0.3, scale], rows // 2)[:, None],
    }
    for winner, values in fields.items():
        codes = np.rint(values).clip(np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)
        streams = {ctx: make(pid, chunk=4096, context=ctx, **({"block": 1 << 14} if ctx == "block" else {}))
                   .encode(codes) for ctx in ("none", "column", "classes", "block")}
        auto = make(pid, chunk=4096, block=1 << 14).encode(codes)
        sizes = {ctx: len(s) for ctx, s in streams.items()}
        assert min(sizes, key=sizes.get) == winner and auto == streams[winner], (winner, sizes)
        if winner != "none":
            assert sizes[winner] < 0.97 * sizes["none"], (winner, sizes)
        assert np.array_equal(make(pid).decode(auto), codes)


@pytest.mark.parametrize("pid", ["huffman", "ans"])
def test_auto_tries_block_tables_before_grouping_columns(pid, monkeypatch):
    """Where block tables are estimated within ``auto_gain`` of the columns' free entropy (the bound
    class tables cannot beat), ``auto`` builds them before grouping the columns, and once they are
    built it groups none; it writes the block stream, the smallest of the four. int16 codes of 64
    alike columns whose spread grows 16-fold over 8 runs of rows (before, the grouping was made)."""
    from compframe.plugins.encoders import entropy

    groupings = []
    grouping = entropy.column_classes
    monkeypatch.setattr(entropy, "column_classes", lambda *a: groupings.append(1) or grouping(*a))
    rng = np.random.default_rng(13)
    spread = 10 * np.repeat(np.geomspace(1, 16, 8), 512)[:, None]
    codes = np.rint(rng.laplace(0, 1, (4096, 64)) * spread).astype(np.int16)
    auto = make(pid, chunk=4096, block=1 << 14).encode(codes)
    assert not groupings
    sizes = {ctx: len(make(pid, chunk=4096, context=ctx, **({"block": 1 << 14} if ctx == "block" else {}))
                      .encode(codes)) for ctx in ("none", "column", "classes", "block")}
    assert groupings and min(sizes, key=sizes.get) == "block"
    assert auto == make(pid, chunk=4096, block=1 << 14, context="block").encode(codes)


@pytest.mark.parametrize("pid", ["huffman", "ans"])
def test_auto_keeps_one_table_where_column_tables_gain_little(pid):
    """Column and class tables encode and decode slower than one table: ``auto`` keeps them only where
    they make the stream at least ``auto_gain`` (default 2 %) smaller. Columns whose spreads differ by
    a few percent: classes are the smallest stream, by less than that, so the default writes the
    one-table stream and ``auto_gain=0`` the classes one; where the spreads differ fourfold the
    default keeps the class tables."""
    rng = np.random.default_rng(21)
    near = np.rint(rng.laplace(0, 1, (4096, 64)) * np.linspace(10, 13, 64)).astype(np.int8)
    far = np.rint(rng.laplace(0, 1, (4096, 64)) * np.repeat([3, 12], 32)).astype(np.int8)
    for codes, gains in ((near, False), (far, True)):
        none, classes = (make(pid, context=c, dedup=False).encode(codes) for c in ("none", "classes"))
        pure = make(pid, dedup=False, auto_gain=0.0).encode(codes)
        default = make(pid, dedup=False).encode(codes)
        assert pure == classes and len(classes) < len(none)
        assert (len(classes) < 0.98 * len(none)) == gains, (len(classes), len(none))
        assert default == (classes if gains else none)
        assert np.array_equal(make(pid).decode(default), codes)
    with pytest.raises(ConfigError, match="'auto_gain' is 0.1 but has no effect unless context=auto"):
        make(pid, context="block", auto_gain=0.1)


def test_column_kernels_and_class_layout():
    """rows.gather_columns/scatter_columns/columns_first/rows_first against numpy (shapes
    around the 8- and 16-row steps and the 32 x 32 tiles, with rows and columns past whole tiles),
    and class_layout: the columns stably by class, every class's run cut into whole chunks of its
    table."""
    from compframe.kernels import rows as rk
    from compframe.plugins.encoders.entropy import class_layout

    rng = np.random.default_rng(15)
    for shape in [(1, 1), (7, 3), (8, 8), (17, 9), (300, 64)]:
        a = rng.integers(-99, 99, shape).astype(np.int16)
        order = rng.permutation(shape[1])
        gathered = rk.gather_columns(a, order)
        assert np.array_equal(gathered, a[:, order].T)
        assert np.array_equal(rk.scatter_columns(gathered, order), a)
    for shape, dtype in [((15, 3), np.uint8), ((16, 5), np.uint16), ((33, 100), np.uint8), ((40, 512), np.int16),
                         ((97, 70), np.uint16), ((64, 32), np.int8), ((40, 70), np.int32)]:
        a = rng.integers(0, 99, shape).astype(dtype)  # int32: bands of 16 rows; 1-2 bytes: 32 x 32 tiles
        order = rng.permutation(shape[1])
        assert np.array_equal(rk.columns_first(a), a.T) and np.array_equal(rk.columns_first(a, order), a[:, order].T)
        assert np.array_equal(rk.rows_first(a[:, order].T.copy(), order), a) and np.array_equal(rk.rows_first(a.T.copy()), a)
    classes = np.array([2, 0, 2, 1, 0, 2], np.uint8)
    order, starts, ends, table_of = class_layout(classes, 5, 4)
    assert order.tolist() == [1, 4, 3, 0, 2, 5]
    runs = {0: (0, 10), 1: (10, 15), 2: (15, 30)}
    for t, (a, b) in runs.items():
        mine = table_of == t
        assert starts[mine].tolist() == list(range(a, b, 4))
        assert ends[mine].tolist() == [min(s + 4, b) for s in range(a, b, 4)]


def test_huffman_wide_alphabet_gets_a_wider_direct_table():
    """One table of long codes (a wide int16 alphabet) decodes through a direct table wider than
    FAST_BITS: the round trip holds and a damaged byte is still refused."""
    from compframe.kernels import huffman as hk

    rng = np.random.default_rng(14)
    codes = np.rint(rng.laplace(0, 2000, 1 << 18)).clip(-32768, 32767).astype(np.int16)
    lengths = hk.code_lengths(np.bincount(codes.astype(np.int64) - codes.min()), 24)
    assert hk.direct_bits(lengths[None], codes.size, 16) > hk.FAST_BITS
    assert hk.direct_bits(lengths[None], 1000, 16) == hk.FAST_BITS  # too few symbols to pay for a wider table
    enc = make("huffman", context="none", dedup=False)
    stream = enc.encode(codes)
    assert np.array_equal(enc.decode(stream), codes)
    damaged = bytearray(stream)
    damaged[len(stream) // 2] ^= 0x10
    with pytest.raises(StreamError):
        enc.decode(bytes(damaged))


def _direct_widths(enc, stream, codes, decodes=3):
    """Decode ``stream`` ``decodes`` times from an empty model cache, each bit-exact: the (tables, bits)
    of the direct tables each decode left cached."""
    from compframe.plugins.encoders.entropy import _DECODERS

    _DECODERS._items.clear()  # a cache: this worker's other tests only lose their hits
    widths = []
    for _ in range(decodes):
        assert np.array_equal(enc.decode(stream), codes)
        (model,) = _DECODERS._items.values()
        fast = next(t for k, t in model.decoders.items() if len(k) == 3)[0]
        widths.append((fast.shape[0], fast.shape[1].bit_length() - 1))
    return widths


def test_huffman_wider_direct_table_for_a_model_decoded_again():
    """One table of many symbols: the first decode of a model builds a FAST_BITS direct table, the
    second (a model seen again) a LARGE_BITS one; both decode bit-exactly, and a damaged byte is
    still refused with the wider table."""
    from compframe.kernels import huffman as hk
    from compframe.plugins.encoders.entropy import _DECODERS

    rng = np.random.default_rng(15)
    codes = np.rint(rng.laplace(0, 6, 1 << 17)).clip(-127, 127).astype(np.int8)  # about 4.5 bits per code
    enc = make("huffman", context="none", dedup=False)
    stream = enc.encode(codes)
    assert _direct_widths(enc, stream, codes) == [(1, hk.FAST_BITS), (1, hk.LARGE_BITS), (1, hk.LARGE_BITS)]
    # whether a decode fits max_bytes does not depend on the cache: the least budget a cold decode
    # takes (bisected) decodes again with the wide table cached, and a second decode at that budget
    # keeps the first table rather than fail building the wide one
    def fits(limit):
        try:
            return np.array_equal(enc.decode(stream, max_bytes=limit), codes)
        except StreamError:
            return False

    def least():
        lo, hi = 0, 1 << 24
        while hi - lo > 1:
            _DECODERS._items.clear()
            lo, hi = (lo, (lo + hi) // 2) if fits((lo + hi) // 2) else ((lo + hi) // 2, hi)
        return hi

    def width():
        (model,) = _DECODERS._items.values()
        return next(t for k, t in model.decoders.items() if len(k) == 3)[0].shape[1]

    need = least()
    _DECODERS._items.clear()
    assert fits(need) and fits(need)  # cold, then a second decode with no room for the wide table
    assert width() == 1 << hk.FAST_BITS
    _DECODERS._items.clear()
    assert fits(None) and fits(None) and width() == 1 << hk.LARGE_BITS  # widened under the default budget
    assert fits(need)  # the wide table kept, charged as the first decode's
    damaged = bytearray(stream)
    damaged[len(stream) // 2] ^= 0x10
    with pytest.raises(StreamError):
        enc.decode(bytes(damaged))


def entropy_bytes(codes):
    counts = np.unique(codes, return_counts=True)[1]
    return float(-(counts * np.log2(counts / codes.size)).sum() / 8)


@pytest.mark.parametrize("dtype", [np.int8, np.int16])
def test_entropy_bounds(dtype):
    rng = np.random.default_rng(3)
    n = 1 << 20
    scale = 3 if dtype == np.int8 else 300
    codes = np.rint(rng.laplace(0, scale, n)).clip(np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)
    h = entropy_bytes(codes)
    ans, huff = len(make("ans").encode(codes)), len(make("huffman").encode(codes))
    assert ans <= 1.01 * h + 4096, (ans, h)
    assert huff <= h + n / 8 + 4096, (huff, h)
    assert huff <= 1.03 * h + 4096  # in practice close to the bound on smooth distributions


def test_ans_against_constriction():
    constriction = pytest.importorskip("constriction")
    rng = np.random.default_rng(4)
    codes = (rng.geometric(0.3, 1 << 18) * rng.choice([-1, 1], 1 << 18)).clip(-127, 127).astype(np.int8)
    sym = codes.astype(np.int32) + 127
    counts = np.bincount(sym, minlength=255).astype(np.float64)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(sym, constriction.stream.model.Categorical(counts / counts.sum(), perfect=False))
    reference = coder.get_compressed().nbytes
    ours = len(make("ans").encode(codes))
    assert ours <= 1.01 * reference + 1024, (ours, reference)


def test_huffman_length_limit():
    # Fibonacci-like counts force optimal codes far longer than the limit
    counts = [1, 1]
    while len(counts) < 40:
        counts.append(counts[-1] + counts[-2])
    counts = np.minimum(counts, 200_000)
    codes = np.repeat(np.arange(len(counts), dtype=np.int16), counts)
    np.random.default_rng(5).shuffle(codes)
    for limit in (8, 12, 24):
        enc = make("huffman", max_length=limit)
        stream = enc.encode(codes)
        longest = struct.unpack_from("<iIIIBII", stream, 1 + 3 + 1 + 8 + 10)[4]
        assert longest <= max(limit, math.ceil(math.log2(len(counts))))
        assert np.array_equal(enc.decode(stream), codes)


def _fuzz_cases():
    rng = np.random.default_rng(6)
    small = np.rint(rng.laplace(0, 3, 150)).astype(np.int8)
    pool = rng.integers(-300, 300, (4, 6)).astype(np.int16)
    drift = np.rint(rng.laplace(0, 1, 1100) * np.repeat([1.0, 40.0], 550)).clip(-127, 127).astype(np.int8)
    classes = np.rint(rng.laplace(0, 1, (100, 8)) * np.tile([1.0, 30.0], 4)).clip(-127, 127).astype(np.int8)
    return {"int8": small, "int16-2d": (small.astype(np.int16) * 50).reshape(30, 5),
            "int16-repeated-rows": pool[rng.integers(0, 4, 12)], "int8-drift": drift,
            "int8-column-classes": classes}  # mode 5 under context=classes (only there: the others code it alike)


FUZZED = [c for c in CONFIGS if c[0] in MINE and c[1].get("chunk") == 64] + [
    ("huffman", {"chunk": 64, "block": 1024}, 64),  # two tables for the drifting case (mode 4)
    ("ans", {"chunk": 100, "block": 1024}, 100),
    ("huffman", {"chunk": 100, "context": "column"}, 100),
    ("ans", {"chunk": 100, "context": "column"}, 100),
    ("lz4", {"checksum": True}, None),
    ("zstd", {}, None),
]


def assert_flips_refused_or_exact(enc, stream: bytes, codes: np.ndarray, flips, name: str = "") -> None:
    """Every byte of ``stream`` xor-ed with each of ``flips`` is refused (``StreamError``) or decodes
    to exactly ``codes``: the format may ignore a byte (e.g. gpulz's window), never misread one."""
    for pos in range(len(stream)):
        for flip in flips:
            bad = bytearray(stream)
            bad[pos] ^= flip
            try:
                out = enc.decode(bytes(bad))
            except StreamError:
                continue
            assert out.dtype == codes.dtype and np.array_equal(out, codes), (name, pos, flip)


@pytest.mark.parametrize("pid,params,chunk", FUZZED, ids=lambda v: str(v))
def test_every_flip_and_truncation_is_caught(pid, params, chunk):
    enc = make(pid, **params)
    for name, codes in _fuzz_cases().items():
        if name == "int8-column-classes" and params.get("context") != "classes":
            continue
        stream = enc.encode(codes)
        if name == "int8-column-classes":
            assert stream[1 + 3 + 1 + 16 + 1] == 5  # the mode byte after the base header
        for cut in range(len(stream)):
            with pytest.raises(StreamError):
                enc.decode(stream[:cut])
        with pytest.raises(StreamError):
            enc.decode(stream + b"\0")
        assert_flips_refused_or_exact(enc, stream, codes, (0x01, 0x80, 0xFF), name)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    payload=st.binary(max_size=200),
    dtype=st.sampled_from(["<i1", "|u1", "<i2", "<u2"]),
    count=st.integers(0, 300),
    pid=st.sampled_from(MINE + ("lz4", "zstd")),
)
def test_random_payloads_raise_stream_error(payload, dtype, count, pid):
    # a valid base header (dtype, shape) followed by random bytes: the encoder's own parsing
    header = struct.pack(f"<B{len(dtype)}sBQ", len(dtype), dtype.encode(), 1, count)
    try:
        make(pid, **({"checksum": True} if pid == "lz4" else {})).decode(header + payload)
    except StreamError:
        return
    pytest.fail("random bytes decoded")  # pragma: no cover - would need a forged checksum


@pytest.mark.parametrize("header", [b"\x01,", b"\x0537X\tW\x01\x00"])
def test_damaged_dtype_string_raises_stream_error(header):
    with pytest.raises(StreamError):
        make("huffman").decode(header)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    codes=hnp.arrays(st.sampled_from(DTYPES), st.integers(0, 300)),
    config=st.sampled_from([c for c in CONFIGS if c[0] in MINE]),
)
def test_round_trip_hypothesis(codes, config):
    pid, params, _ = config
    enc = make(pid, **params)
    out = enc.decode(enc.encode(codes))
    assert out.dtype == codes.dtype and np.array_equal(out, codes)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    codes=hnp.arrays(np.int16, st.integers(1, 200), elements=st.integers(-50, 50)),
    pid=st.sampled_from(MINE),
    seed=st.integers(0, 2**32 - 1),
)
def test_mutated_streams_hypothesis(codes, pid, seed):
    enc = make(pid, chunk=64)
    stream = bytearray(enc.encode(codes))
    rng = np.random.default_rng(seed)
    head = 1 + 3 + 1 + 8  # the base header of 1-D '<i2' codes (see test_damaged_dtype_string_...)
    for pos in rng.integers(head, len(stream), rng.integers(1, 5)):
        stream[pos] = int(rng.integers(0, 256))
    try:
        out = enc.decode(bytes(stream))
    except StreamError:
        return
    assert np.array_equal(out, codes)


@pytest.mark.parametrize(
    "pid,params,param",
    [
        ("huffman", {"chunk": 0}, "chunk"),
        ("huffman", {"max_length": 30}, "max_length"),
        ("huffman", {"context": "row"}, "context"),
        ("huffman", {"device": "tpu"}, "device"),
        ("ans", {"precision": 20}, "precision"),
        ("ans", {"precision": 5}, "precision"),
        ("gpulz", {"window": 0}, "window"),
        ("gpulz", {"window": 256}, "window"),
        ("gpulz", {"symbol_bytes": 3}, "symbol_bytes"),
        ("gpulz", {"chunk": 2050}, "chunk"),
        ("gpulz", {"chunk": 65536}, "chunk"),
    ],
)
def test_bad_parameters_are_refused(pid, params, param):
    with pytest.raises(ConfigError, match=f"parameter '{param}'"):
        make(pid, **params)


def _cuda_present() -> bool:
    try:
        import cupy

        return bool(cupy.cuda.is_available())
    except Exception:
        return False


@pytest.mark.skipif(_cuda_present(), reason="a CUDA device is present")
@pytest.mark.parametrize("pid", MINE)
def test_cuda_device_without_cuda_fails_at_construction(pid):
    with pytest.raises(ConfigError, match="parameter 'device' is 'cuda' but"):
        make(pid, device="cuda")


@pytest.mark.parametrize("pid", ["none", "lz4", "zstd"])
def test_cpu_only_encoders_refuse_cuda_by_name(pid):
    """Every encoder takes ``device``; the CPU-only ones refuse ``cuda`` and say why, whatever the machine."""
    assert make(pid, device="cpu").config.device == "cpu"
    with pytest.raises(ConfigError, match=f"parameter 'device' is 'cuda' but '{pid}' runs on the CPU only"):
        make(pid, device="cuda")


def test_every_encoder_has_a_device_parameter():
    for pid in registry.available("encoder"):
        assert "device" in registry.plugin_class("encoder", pid).Config.__dataclass_fields__, pid


@pytest.mark.skipif(_cuda_present(), reason="a CUDA device is present")
@pytest.mark.parametrize("pid", ["nvcomp_lz4", "nvcomp_ans"])
def test_nvcomp_without_gpu_names_the_extra(pid):
    assert registry.plugin_class("encoder", pid).devices == ("cuda",)
    with pytest.raises(ConfigError, match="gpu' extra|CUDA device"):
        make(pid)


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_present(), reason="needs cupy and a CUDA device")
@pytest.mark.parametrize("pid,params", [("nvcomp_lz4", {}), ("nvcomp_ans", {}), ("huffman", {"device": "cuda"}),
                                        ("ans", {"device": "cuda"}), ("gpulz", {"device": "cuda"})])
def test_gpu_round_trip(pid, params):  # pragma: no cover - needs a GPU
    codes = np.rint(np.random.default_rng(7).laplace(0, 3, (2048, 64))).astype(np.int8)
    enc = make(pid, **params)
    assert np.array_equal(enc.decode(enc.encode(codes)), codes)
    if pid in MINE:
        assert enc.encode(codes) == make(pid).encode(codes)


@pytest.mark.parametrize("pid", [*MINE, "nvcomp_lz4", "nvcomp_ans"])
def test_yaml_and_config(pid):
    text = (ROOT / "conf" / "encoder" / f"{pid}.yaml").read_text()
    assert text.startswith(f"# python -m compframe.run encoder={pid}")
    assert f"/schema/encoder/{pid}@_here_" in text
    if pid in MINE:
        enc = make(pid)
        assert registry.create_from_config("encoder", enc.get_config()) == enc


@pytest.mark.parametrize("pid", ["huffman", "ans"])
def test_wide_codes_are_refused(pid):
    with pytest.raises(TypeError, match="takes"):
        make(pid).encode(np.zeros(4, np.int32))


def test_gpulz_beats_lz4_on_short_repeats():
    # int16 codes with short runs and sparse non-zeros: LZ4's 4-byte minimum match and per-sequence
    # token cost lose to GPULZ's 2-byte matches of 2-byte symbols
    rng = np.random.default_rng(8)
    n = 1 << 17
    runs = np.repeat(rng.integers(-5, 5, n // 6), 6).astype(np.int16)
    sparse = ((rng.random(n) < 0.05) * rng.integers(-3, 4, n)).astype(np.int16)
    for codes in (runs, sparse):
        ours = len(make("gpulz").encode(codes))
        assert np.array_equal(make("gpulz").decode(make("gpulz").encode(codes)), codes)
        assert 1.2 * ours <= len(make("lz4", checksum=False).encode(codes))


def _repeated_rows(rng, dtype, rows, cols, distinct):
    info = np.iinfo(dtype)
    pool = rng.integers(max(info.min, -60), min(info.max, 60) + 1, (distinct, cols)).astype(dtype)
    return pool[rng.integers(0, distinct, rows)]


@pytest.mark.parametrize("pid", ["huffman", "ans"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape,distinct", [((2, 4), 1), ((50, 4), 3), ((333, 7), 40), ((40, 3, 9), 5),
                                            ((1000, 64), 1), ((4097, 12), 600), ((30, 3), 2)])
def test_dedup_round_trip(pid, dtype, shape, distinct):
    rng = np.random.default_rng(sum(shape) + distinct)
    codes = _repeated_rows(rng, dtype, int(np.prod(shape[:-1])), shape[-1], distinct).reshape(shape)
    for params in ({}, {"context": "column", "chunk": 64}, {"chunk": 64}):
        enc = make(pid, **params)
        stream = enc.encode(codes)
        out = enc.decode(stream)
        assert out.dtype == codes.dtype and out.shape == codes.shape and np.array_equal(out, codes)
        mode = stream[1 + 3 + 1 + 8 * len(shape) + 1]
        assert mode == (3 if shape[-1] >= 4 else 1 if distinct == 1 else 2), params  # rows of 3 are not deduplicated


@pytest.mark.parametrize("pid", ["huffman", "ans"])
def test_dedup_pays_for_repeats_only(pid):
    """k copies of each row cost about one copy plus a few bytes of reference per repeat; without
    repeats the stream is exactly the plain one (mode 2), and ``dedup=False`` turns it off."""
    rng = np.random.default_rng(3)
    unique = np.clip(np.rint(rng.laplace(0, 6, (500, 64))), -127, 127).astype(np.int8)
    plain = make(pid, dedup=False).encode(unique)
    assert make(pid).encode(unique) == plain
    copies = unique[np.repeat(np.arange(500), 4)][rng.permutation(2000)]
    deduped = make(pid).encode(copies)
    assert len(deduped) < len(plain) + 4 * 1500  # 1500 repeats at under 4 bytes each
    assert len(make(pid, dedup=False).encode(copies)) > 3.5 * len(plain)
    assert np.array_equal(make(pid).decode(deduped), copies)


@pytest.mark.parametrize("pid", ["huffman", "ans"])
def test_dedup_references_are_checked(pid):
    rng = np.random.default_rng(4)
    codes = _repeated_rows(rng, np.int16, 40, 8, 5)
    enc = make(pid)
    stream = enc.encode(codes)
    head = 1 + 3 + 1 + 16  # base header of a 2-D '<i2' array
    assert stream[head + 1] == 3
    # a dedup stream nested inside a dedup stream is refused, not decoded recursively
    inner = head + 10 + 12 + 4 + struct.unpack_from("<I", stream, head + 10 + 8)[0]
    nested = stream[:inner] + stream[head:inner] + stream[inner:]
    with pytest.raises(StreamError):
        enc.decode(nested)
    # more kept rows than rows, or a row length that does not divide the count
    for offset, value in ((head + 10 + 4, 41), (head + 10 + 4, 0), (head + 10, 7)):
        bad = bytearray(stream)
        struct.pack_into("<I", bad, offset, value)
        with pytest.raises(StreamError):
            enc.decode(bytes(bad))


@pytest.mark.parametrize("dedup", [True, False])
@pytest.mark.parametrize("row", [[51, 38, 31], [1, 8, 30], [0, 255, 7, 9]])
def test_ans_constant_columns_round_trip(row, dedup):
    """Columns that each hold one value give per-column tables of one symbol; its frequency must stay
    below 2**R (found by hypothesis: such streams were refused as damaged)."""
    codes = np.tile(np.array(row, np.uint8), (8, 1))
    enc = make("ans", context="column", dedup=dedup)
    assert np.array_equal(enc.decode(enc.encode(codes)), codes)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.integers(1, 60),
    cols=st.integers(1, 20),
    distinct=st.integers(1, 8),
    dtype=st.sampled_from(DTYPES),
    pid=st.sampled_from(["huffman", "ans"]),
    context=st.sampled_from(["none", "column", "classes"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_dedup_round_trip_hypothesis(rows, cols, distinct, dtype, pid, context, seed):
    codes = _repeated_rows(np.random.default_rng(seed), dtype, rows, cols, distinct)
    enc = make(pid, chunk=64, context=context)
    out = enc.decode(enc.encode(codes))
    assert out.dtype == codes.dtype and np.array_equal(out, codes)


def _linear_scan_lzss(x, chunk, window, min_match):
    """GPULZ's tokens by the definition: scan every offset of the window, longest match, nearest on a tie."""
    width = x.dtype.itemsize
    out = bytearray()
    for lo in range(0, x.size, chunk):
        hi = min(lo + chunk, x.size)
        flags, tokens, i, t = bytearray((hi - lo + 7) // 8), bytearray(), lo, 0
        while i < hi:
            best, best_off = 0, 0
            for off in range(1, min(window, i - lo) + 1):
                n = 0
                while n < min(255, hi - i) and x[i + n] == x[i - off + n]:
                    n += 1
                if n > best:
                    best, best_off = n, off
            if best >= min_match:
                flags[t >> 3] |= 1 << (t & 7)
                tokens += bytes((best, best_off))
                i += best
            else:
                tokens += int(x[i]).to_bytes(width, "little")
                i += 1
            t += 1
        out += flags[:(t + 7) // 8] + tokens
    return bytes(out)


@pytest.mark.parametrize("case", ["few-symbols", "runs", "colliding-buckets", "int16-noise"])
@pytest.mark.parametrize("chunk,window", [(64, 16), (300, 255), (1000, 5)])
def test_gpulz_match_finder_equals_linear_scan(case, chunk, window):
    """The hash-chain match finder gives exactly the tokens of a scan over the whole window."""
    from compframe.kernels import lz as lz_kernels

    rng = np.random.default_rng(9)
    if case == "colliding-buckets":  # symbols that share a hash bucket but differ
        same = [v for v in range(1 << 20, (1 << 20) + 400000, 7) if ((v * 40503) >> 6) % lz_kernels.HASH_SIZE == 5]
        x = rng.choice(np.array(same[:6], np.uint32), 2000)
    else:
        x = {"few-symbols": rng.integers(0, 3, 2000).astype(np.uint8),
             "runs": np.repeat(rng.integers(0, 5, 400), rng.integers(1, 9, 400)).astype(np.uint16)[:2000],
             "int16-noise": np.rint(rng.laplace(0, 20, 2000)).astype(np.int16).view(np.uint16)}[case]
    min_match = 2 // x.dtype.itemsize + 1
    data, *_ = lz_kernels.encode("cpu", x, chunk, window, min_match)
    assert data.tobytes() == _linear_scan_lzss(x, chunk, window, min_match)


def test_paired_checksums_equal_single_ones():
    """``checksum_chunks`` (two chunks at once, used by the CPU drivers) gives ``checksum_chunk``'s values."""
    from compframe.kernels.targets import checksum_cpu, checksums_cpu

    x = np.random.default_rng(5).integers(0, 1 << 16, 300).astype(np.uint16)
    for lo0, hi0, lo1, hi1 in [(0, 0, 0, 0), (0, 7, 7, 7), (0, 100, 100, 300), (3, 250, 17, 18), (5, 9, 0, 300)]:
        sums = np.zeros(2, np.int64)
        checksums_cpu(x, lo0, hi0, lo1, hi1, sums, 0, 1)
        assert sums[0] == checksum_cpu(x, lo0, hi0) and sums[1] == checksum_cpu(x, lo1, hi1)


def test_split_and_join_rows_check_the_references():
    from compframe.kernels import rows as rows_kernels

    rng = np.random.default_rng(8)
    table = rng.integers(0, 4, (50, 5)).astype(np.int16)[rng.integers(0, 10, 200)]
    src = rows_kernels.first_copies(table)
    kept, gaps, refs = rows_kernels.split_rows(table, src)
    assert kept.shape[0] == len(np.unique(table, axis=0)) and gaps.size == 200 - kept.shape[0]
    out = np.empty_like(table)
    assert rows_kernels.join_rows(kept, gaps, refs, out) and np.array_equal(out, table)
    bad_cases = []
    g = gaps.copy(); g[-1] += 500; bad_cases.append((g, refs))          # a gap past the last row
    r = refs.copy(); r[0] = kept.shape[0]; bad_cases.append((gaps, r))  # a row that does not exist
    r = refs.copy(); r[0] = gaps[0]; bad_cases.append((gaps, r))        # a kept row not seen yet
    bad_cases.append((gaps[:-1], refs[:-1]))                            # kept and repeated rows do not add up
    for g, r in bad_cases:
        assert not rows_kernels.join_rows(kept, g, r, np.empty_like(table))


def test_first_copies_of_long_and_short_rows():
    """``first_copies`` gives each row the first earlier row equal to it, byte for byte, for rows of
    one word to past ``LANES_MIN`` words (both hashes) and of widths that are no whole words, where
    rows differ in a single byte anywhere."""
    from compframe.kernels import rows as rows_kernels

    rng = np.random.default_rng(12)
    for width, dtype in ((3, np.int8), (8, np.int8), (64, np.int8), (127, np.int8), (128, np.int8),
                         (129, np.int8), (384, np.int8), (384, np.int16), (33, np.int16), (200, np.int32)):
        base = rng.integers(-3, 4, (40, width)).astype(dtype)
        table = base[rng.integers(0, 40, 300)]
        table[rng.integers(0, 300, 60), rng.integers(0, width, 60)] += 1  # some copies one value off
        src = rows_kernels.first_copies(table)
        first = {}
        expect = np.full(300, -1, np.int64)
        for r in range(300):
            key = table[r].tobytes()
            if key in first:
                expect[r] = first[key]
            else:
                first[key] = r
        assert np.array_equal(src, expect), (width, dtype)


def test_ans_reciprocal_division_is_exact():
    """The encoder's ``(x * rcp) >> (32 + R)`` equals ``x // freq`` for every frequency and precision at
    the states it meets (below ``freq << (32 - R)``), and the product fits in uint64."""
    from compframe.kernels import ans as ans_kernels

    for r in range(1, 17):
        f = np.arange(1, 1 << r, dtype=np.int64)
        rcp, info = ans_kernels.encoder_tables(f[None, :], np.zeros((1, f.size), np.int64), r)
        rcp = rcp[0]
        xmax = (f << (32 - r)).astype(np.uint64)
        assert np.array_equal(info[0] >> np.uint64(32), xmax)
        top = xmax - np.uint64(1)
        for x in (top, top - top % f.astype(np.uint64) - np.uint64(1)):  # the largest state; remainder freq - 1
            ok = x < xmax  # (a pick below 0 wraps: skipped)
            xs, rs, fs = x[ok], rcp[ok], f[ok].astype(np.uint64)
            # x * rcp < 2**64 (no wrap in uint64): its high 32 bits from the two halves of rcp
            hi_part = xs * (rs >> np.uint64(32)) + ((xs * (rs & np.uint64(0xFFFFFFFF))) >> np.uint64(32))
            assert np.all(hi_part < np.uint64(1 << 32)), r
            assert np.array_equal((xs * rs) >> np.uint64(32 + r), xs // fs), r


def _ans_reference_streams(x, starts, ends, table_of, base, mask, freq, cum, r):
    """The chunk streams by the definition (module docstring of kernels/ans.py), with plain division."""
    out = []
    for lo, hi, t in zip(starts, ends, table_of):
        state, words = [1 << 16, 1 << 16], []
        for i in range(hi - 1, lo - 1, -1):
            k = (i - lo) & 1
            s = (int(x[i]) - base) & mask
            f, c = int(freq[t, s]), int(cum[t, s])
            if state[k] >= f << (32 - r):
                words.append(state[k] & 0xFFFF)
                state[k] >>= 16
            state[k] = ((state[k] // f) << r) + state[k] % f + c
        out.append(struct.pack("<II", *state) + b"".join(struct.pack("<H", w) for w in reversed(words)))
    return out


@pytest.mark.parametrize("dtype,r,chunk,tables", [(np.uint8, 12, 64, 1), (np.uint8, 10, 100, 3),
                                                  (np.uint16, 16, 333, 1), (np.uint16, 14, 64, 5),
                                                  (np.uint8, 16, 65, 2)])
def test_ans_kernels_match_the_reference_and_flag_damaged_chunks(dtype, r, chunk, tables):
    """Two-chunk encoder and decoder (pairs with different tables, odd chunk counts, odd lengths) write
    the reference bytes; a damaged chunk is flagged (-1) or fails its checksum, the others decode."""
    from compframe.kernels import ans as ans_kernels
    from compframe.plugins.encoders.entropy import chunk_layout, quantize_frequencies

    rng = np.random.default_rng(r * 1000 + chunk + tables)
    per = 2 * chunk + 17
    mask = np.iinfo(dtype).max
    x = (rng.geometric(0.15, per * tables) * rng.choice([-1, 1], per * tables) + 40).astype(np.int64)
    x[::97] = rng.integers(0, 90, x[::97].size)  # rare symbols: frequency 1 at R = 10
    base = (mask - 20) if dtype == np.uint8 else 5  # symbols wrap around the top for uint8
    x = ((x + base) & mask).astype(dtype)
    alphabet = int(((x.astype(np.int64) - base) & mask).max()) + 1
    counts = np.stack([np.bincount((x[t * per:(t + 1) * per].astype(np.int64) - base) & mask, minlength=alphabet)
                       for t in range(tables)])
    freq = np.stack([quantize_frequencies(c, r) for c in counts])
    cum = np.cumsum(freq, axis=1) - freq
    starts, ends, table_of = chunk_layout(x.size, tables, chunk)
    assert starts.size == 3 * tables  # odd counts for odd tables; pairs across tables for 2 or more
    data, sizes, sums = ans_kernels.encode("cpu", x, starts, ends, table_of, base, mask, freq.astype(np.uint32),
                                           cum.astype(np.uint32), r)
    ref = _ans_reference_streams(x, starts, ends, table_of, base, mask, freq, cum, r)
    assert data.tobytes() == b"".join(ref) and list(sizes) == [len(s) for s in ref]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    def decode(d, offs):
        out = np.zeros(x.size, dtype)
        return out, ans_kernels.decode("cpu", d, offs, out, starts, ends, table_of, base, mask, freq, r)

    out, got = decode(data, offsets)
    assert np.array_equal(out, x) and np.array_equal(got, sums)
    for j in (0, starts.size // 2, starts.size - 1):
        lo, hi = offsets[j], offsets[j + 1]
        damaged = []
        for pos in (lo, lo + 5, lo + 8, (lo + hi) // 2, hi - 1):  # a state, a word near the start, middle, end
            d = data.copy()
            d[pos] ^= 0x24
            damaged.append((d, offsets))
        if j + 1 < starts.size:  # one word moved from chunk j to chunk j + 1 (both still complete lengths)
            o = offsets.copy()
            o[j + 1] -= 2
            damaged.append((data, o))
        o = offsets.copy()  # chunk j without its last word, the stream shorter
        o[j + 1:] -= 2
        damaged.append((np.delete(data, [hi - 2, hi - 1]), o))
        for d, o in damaged:
            _, got = decode(d, o)
            hit = np.flatnonzero(got != sums)
            assert j in hit and set(hit) <= {j, j + 1}, (j, hit)


@pytest.mark.parametrize("pid", ["huffman", "ans"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_block_tables_follow_drifting_statistics(pid, dtype):
    """context=block (the default): one table per block of chunks when that is cheaper, as deflate's
    blocks adapt; codes whose spread drifts along the array gain, iid codes keep one table."""
    rng = np.random.default_rng(11)
    info = np.iinfo(dtype)
    for n in (1023, 1024, 1025, 5000, 64 * 100 + 1, 60000):
        scale = np.where(np.arange(n) < n // 2, 1.0, 40.0)  # the spread changes half-way
        centre = 0 if info.min < 0 else 120
        drift = np.clip(np.rint(rng.laplace(0, 1, n) * scale) + centre, max(info.min, -300),
                        min(info.max, 300)).astype(dtype)
        for chunk in (64, 100):
            enc = make(pid, chunk=chunk, block=1024)
            stream = enc.encode(drift)
            assert np.array_equal(enc.decode(stream), drift)
            if n == 60000:
                assert stream[1 + 3 + 1 + 8 + 1] == 4  # mode 4: block layout
    # the gain, with chunks long enough that the per-chunk bytes do not hide it
    blocks, single = make(pid, chunk=512, block=4096).encode(drift), make(pid, chunk=512, context="none").encode(drift)
    assert len(blocks) < 0.93 * len(single), (len(blocks), len(single))
    iid = np.clip(np.rint(rng.laplace(0, 4, 50000)), 0, 120).astype(dtype)
    stream = make(pid, chunk=64, block=1024).encode(iid)
    assert stream[1 + 3 + 1 + 8 + 1] == 2 and stream == make(pid, chunk=64, context="none").encode(iid)


GOLDEN_STREAMS = sorted((ROOT / "tests" / "data").glob("golden_stream_*.bin"))
LANE_STREAMS = ("lanes16", "lanes32_columns", "lanes64_blocks")  # ans's lane mode (make_golden.py lanes)
ROW_STREAMS = ("rows_classes", "rows_columns", "rows_blocks")  # ans's modes 6 and 7 (make_golden.py rows)
DECODE_ONLY = {"ans_lanes32_columns": "ans writes mode 6 for a table per column in the lane mode"}
"""Golden streams of a layout today's encoder no longer writes for their codes: they must still decode."""


def test_golden_streams_exist():
    """A golden stream for every stream mode of huffman and ans and every symbol size of gpulz."""
    modes = {f"{pid}_{mode}" for pid in ("huffman", "ans")
             for mode in ("one_table", "columns", "blocks", "dedup", "classes")}
    expected = modes | {"ans_constant", "gpulz_s1", "gpulz_s2", "gpulz_s4"} | {f"ans_{m}" for m in LANE_STREAMS} \
        | {f"ans_{m}" for m in ROW_STREAMS}
    assert {p.stem.removeprefix("golden_stream_") for p in GOLDEN_STREAMS} == expected, "tests/data/make_golden.py"
    for path in GOLDEN_STREAMS:
        assert path.with_suffix(".npy").is_file() and path.with_suffix(".json").is_file(), path


@pytest.mark.parametrize("path", GOLDEN_STREAMS, ids=lambda p: p.stem)
def test_golden_streams_still_decode(path):
    """Streams written by an earlier compframe (one per mode of huffman, ans and gpulz) decode to the
    same codes, and today's encoder writes the same bytes. An encoder whose choices change on purpose
    (a better model, same format) regenerates these files with make_golden.py in a commit that says
    so, after checking that the old ones still decode."""
    import json

    meta = json.loads(path.with_suffix(".json").read_text())
    expected = np.load(path.with_suffix(".npy"))
    enc = make(meta["encoder"], **meta["params"])
    stream = path.read_bytes()
    out = enc.decode(stream)
    assert out.dtype == expected.dtype and out.shape == expected.shape and np.array_equal(out, expected)
    if "columns" in path.stem:
        assert _tables(stream, expected.ndim) > 1
    mode = stream[1 + 3 + 1 + 8 * expected.ndim + 1]
    if "classes" in path.stem:  # mode 5 (mode 6 for ans's lane mode), fewer tables than columns
        assert mode == (6 if "rows" in path.stem else 5)
        assert 1 < _tables(stream, expected.ndim) < expected.shape[-1]
    if "rows_columns" in path.stem:  # mode 6 with a table per column
        assert mode == 6 and _tables(stream, expected.ndim) == expected.shape[-1]
    if "rows_blocks" in path.stem:  # mode 7: class tables per block
        assert mode == 7 and _tables(stream, expected.ndim) >= 4
    if path.stem.removeprefix("golden_stream_") in DECODE_ONLY:
        assert mode == 2 and enc.encode(expected) != stream  # else it is not decode-only: drop it from the list
        return
    assert enc.encode(expected) == stream, "the encoder now writes other bytes for the same codes"


@pytest.mark.parametrize("pid", ["huffman", "ans"])
def test_large_models_deflate_with_runs_and_decode(pid):
    """A model whose byte planes reach ``RLE_BLOB_MIN`` (a table per column over a wide alphabet,
    each column seeing few of its symbols) is deflated with zlib's run-length strategy, a smaller
    one at level 6, and both streams decode to the codes: the blob inflates to the model's planes."""
    import zlib

    from compframe.plugins.encoders import entropy

    rng = np.random.default_rng(5)
    codes = np.rint(rng.laplace(0, 3, (3000, 64)) + 40 * np.arange(64) - 1280).astype(np.int16)  # centres apart
    for width, rle in ((64, True), (4, False)):
        part = np.ascontiguousarray(codes[:, :width])
        enc = make(pid, context="column", dedup=False)
        alphabet = int(part.max()) - int(part.min()) + 1
        counts = np.zeros((width, alphabet), np.int64)
        for c in range(width):
            counts[c] = np.bincount(part[:, c].astype(np.int64) - int(part.min()), minlength=alphabet)
        model = enc._build_model(counts)
        planes = zlib.decompress(model.blob)
        assert (len(planes) >= entropy.RLE_BLOB_MIN) == rle
        z = zlib.compressobj(6, zlib.DEFLATED, 15, 8, zlib.Z_RLE)
        assert model.blob == (z.compress(planes) + z.flush() if rle else zlib.compress(planes, 6))
        stream = enc.encode(part)
        assert np.array_equal(enc.decode(stream), part)
        assert _tables(stream, 2) == width


@pytest.mark.parametrize("pid", ["huffman", "ans"])
def test_dedup_around_block_tables(pid):
    """Mode 3 holding a mode 4 stream: repeated rows, and kept rows whose spread changes half-way."""
    rng = np.random.default_rng(12)
    rows = np.rint(rng.laplace(0, 1, (3000, 8)) * np.repeat([1.0, 40.0], 1500)[:, None]).clip(-127, 127)
    rows = rows.astype(np.int8)
    rows[rng.integers(0, 3000, 300)] = rows[rng.integers(0, 3000, 300)]
    enc = make(pid, chunk=64, block=1024)
    stream = enc.encode(rows)
    head = 1 + 3 + 1 + 16
    assert stream[head + 1] == 3
    inner = head + 10 + 12 + 4 + struct.unpack_from("<I", stream, head + 10 + 8)[0]
    assert stream[inner + 1] == 4
    assert np.array_equal(enc.decode(stream), rows)


def test_zstd_contexts_reused_per_thread_stay_clean():
    """zstd keeps one compressor and decompressor per thread: a damaged or truncated stream leaves
    nothing behind for the next, and threads coding at once get the bytes a fresh context writes."""
    import zstandard
    from concurrent.futures import ThreadPoolExecutor

    enc = make("zstd")
    rng = np.random.default_rng(8)
    arrays = [rng.integers(-50, 50, 100_000).astype(np.int8), rng.integers(-3, 3, 50_000).astype(np.int16)]
    streams = [enc.encode(a) for a in arrays]
    bad = bytearray(streams[0])
    bad[len(bad) // 2] ^= 0xFF
    for damaged in (bytes(bad), streams[0][:len(streams[0]) // 2]):
        with pytest.raises(StreamError):
            enc.decode(damaged)
        assert all(np.array_equal(enc.decode(s), a) for s, a in zip(streams, arrays))
    fresh = zstandard.ZstdCompressor(level=3, write_content_size=True, write_checksum=True)
    assert all(s.endswith(fresh.compress(a)) for s, a in zip(streams, arrays))
    with ThreadPoolExecutor(4) as pool:
        again = list(pool.map(lambda k: enc.encode(arrays[k % 2]), range(16)))
        decoded = list(pool.map(lambda k: enc.decode(again[k]), range(16)))
    assert all(again[k] == streams[k % 2] and np.array_equal(decoded[k], arrays[k % 2]) for k in range(16))


def test_huffman_several_tables_build_small_first_then_the_fast_width():
    """A model of several tables (column tables of short int8 codes): its first decode builds direct
    tables FIRST_BITS under its symbols per table (cheap to build), a second decode (the model come
    back) the wider ones that decode fastest; every decode is bit-exact, and a damaged byte is still
    refused with either width. Long codes (int16) keep a look-up of 1.75 mean-length codes."""
    from compframe.kernels import huffman as hk
    from compframe.plugins.encoders.entropy import _DECODERS, Huffman

    rng = np.random.default_rng(16)
    scales = np.geomspace(0.3, 3, 16)
    codes = np.rint(rng.laplace(0, scales, (8192, 16))).clip(-127, 127).astype(np.int8)  # 8192 codes per column
    enc = make("huffman", context="column", dedup=False)
    stream = enc.encode(codes)
    under = (8192).bit_length()  # 14
    assert _direct_widths(enc, stream, codes) == [(16, under - Huffman.FIRST_BITS), (16, hk.FAST_BITS - 1),
                                                  (16, hk.FAST_BITS - 1)]  # 9, then 11
    damaged = bytearray(stream)
    damaged[len(stream) // 2] ^= 0x10
    for clear in (True, False):
        if clear:
            _DECODERS._items.clear()
        with pytest.raises(StreamError):
            enc.decode(bytes(damaged))
    wide = np.rint(rng.laplace(0, 12, (8192, 16))).astype(np.int16)  # about 6 bits per code
    lengths = np.stack([hk.code_lengths(np.bincount(c.astype(np.int64) - wide.min(), minlength=wide.max() - wide.min() + 1), 24)
                        for c in wide.T])
    mean = hk.length_sum(lengths) / lengths.shape[0]
    assert Huffman._direct_bits(lengths, 0xFFFF, wide.size) == int(1.75 * mean) == 10  # over under - FIRST_BITS
    assert Huffman._direct_bits(lengths, 0xFFFF, wide.size, again=True) == hk.FAST_BITS - 1
