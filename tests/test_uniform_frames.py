"""int8/int16 frames: side data no quantizer writes is refused, every honest frame decodes; the
``passes``/``chunk`` parameters; the outlier gather never writes past a chunk's slots.

Crafted frames keep every CRC valid (rebuilt with ``container.dumps``), so only the quantizer's own
checks stand between them and a quietly wrong field.
"""

from __future__ import annotations

import numpy as np
import pytest

import compframe as cf
from compframe import container, registry
from compframe.base import ErrorBound
from compframe.errors import ConfigError, FrameError
from compframe.kernels import uniform as K

ONE_PASS = {"int8": ({"id": "int8", "passes": 1, "chunk": 256}, "rel:1e-2"),
            "int16": ({"id": "int16", "passes": 1, "chunk": 256}, "rel:1e-3")}


def one_pass_field() -> np.ndarray:
    """16 chunks of 256 Gaussian values, the first holding the range of the others, which the last value
    widens a little (less than the redo threshold), so that chunks keep their own centre and step (the
    one-pass path quantizes them in one wave, all with the first chunk's range); one NaN."""
    x = (np.random.default_rng(5).standard_normal(16 * 256) * 0.05).astype(np.float32)
    x[[3, 4]] = x.max(), x.min()
    x[-1] = np.float32(1.03) * x.max()
    x[7] = np.nan
    return x


def craft(frame: bytes, edit) -> bytes:
    """``frame`` with ``edit(header, side)`` applied, rebuilt by the container (every CRC valid)."""
    f = container.loads(frame)
    header, side = f.header, {k: v.copy() for k, v in f.side_arrays().items()}
    edit(header, side)
    streams = {k: bytes(v) for k, v in f.code_streams().items()}
    return container.dumps(header, streams, side)


@pytest.fixture(scope="module", params=sorted(ONE_PASS))
def one_pass(request):
    quantizer, bound = ONE_PASS[request.param]
    x = one_pass_field()
    frame = cf.compress(x, quantizer=quantizer, encoder="zstd", bound=bound)
    f = container.loads(frame)
    assert "chunk_step" in f.side_arrays() and f.header["meta"]["chunk"] == 256
    return x, frame


def test_one_pass_frame_round_trips_within_the_bound(one_pass):
    x, frame = one_pass
    y = cf.decompress(frame)
    eb = container.loads(frame).header["meta"]["abs_bound"]
    finite = np.isfinite(x)
    assert np.abs(y[finite].astype(np.float64) - x[finite]).max() <= eb
    assert np.isnan(y[7]) and np.isfinite(y[finite]).all()


def _set_side(name, i, value):
    def edit(header, side):
        side[name][i] = value
    return edit


def _set_meta(name, value):
    def edit(header, side):
        header["meta"][name] = value
    return edit


@pytest.mark.parametrize("name,value", [("chunk_centre", np.nan), ("chunk_centre", np.inf), ("chunk_centre", -np.inf),
                                        ("chunk_centre", 1e39), ("chunk_step", np.nan), ("chunk_step", np.inf),
                                        ("chunk_step", 0.0), ("chunk_step", -1e-3), ("chunk_step", "looser")])
def test_impossible_chunk_side_data_is_refused(one_pass, name, value):
    """A chunk's centre must be a finite float32 value, its step in (0, meta.step]: a step 1 % looser
    than the field's is as impossible as a NaN."""
    _, frame = one_pass
    step = container.loads(frame).header["meta"]["step"]
    value = step * 1.01 if value == "looser" else value
    bad = craft(frame, _set_side(name, 3, value))
    with pytest.raises(FrameError, match=rf"{name}\[3\]"):
        cf.decompress(bad)


PLAN_CASES = [("centre", np.nan), ("centre", np.inf), ("centre", 1e39), ("step", np.nan), ("step", np.inf),
              ("step", -0.01), ("step", 0.0), ("step", "looser"), ("abs_bound", np.nan), ("abs_bound", -1.0),
              ("abs_bound", "looser")]


@pytest.mark.parametrize("name,value", PLAN_CASES)
@pytest.mark.parametrize("passes", [1, 2])
def test_impossible_plan_meta_is_refused(name, value, passes):
    """The field's plan (meta centre, step, abs_bound) of single-plan and one-pass frames alike: a
    step looser than twice the bound, a zero step with a positive bound, a bound looser than the
    header's bound of the value range are refused with a FrameError naming the field."""
    quantizer, bound = ONE_PASS["int16"]
    frame = cf.compress(one_pass_field(), quantizer={**quantizer, "passes": passes} if passes == 1 else "int16",
                        encoder="none", bound=bound)
    meta = container.loads(frame).header["meta"]
    if value == "looser":
        value = meta[name] * 1.01
    with pytest.raises(FrameError, match=f"meta.{name}"):
        cf.decompress(craft(frame, _set_meta(name, value)))


def honest_fields() -> dict[str, tuple[np.ndarray, str]]:
    rng = np.random.default_rng(11)
    return {
        "constant (step 0, bound 0)": (np.full(1000, 2.5, np.float32), "rel:1e-2"),
        "huge abs bound (step 0, 2 * bound overflows)": (rng.standard_normal(1000), "abs:1e308"),
        "float64 range overflows (bound inf)": (np.array([-1.7e308, 1.7e308, 0.0]), "rel:1e-2"),
        "all NaN": (np.full(600, np.nan, np.float32), "rel:1e-2"),
        "denormals": ((rng.integers(-50, 50, 3000) * np.finfo(np.float32).smallest_subnormal).astype(np.float32),
                      "abs:1e-45"),
        "gaussian": ((rng.standard_normal(5000) * 0.05).astype(np.float32), "rel:1e-3"),
        "far from zero": ((3e38 + rng.standard_normal(3000) * 1e33).astype(np.float32), "rel:1e-2"),
    }


@pytest.mark.parametrize("passes", ["auto", 1])
@pytest.mark.parametrize("qid", ["int8", "int16"])
def test_honest_edge_frames_still_decode(qid, passes):
    """Zero steps where the bound is 0 or overflows, NaN-only and denormal fields, centres near the
    float32 limit: every frame the quantizer writes passes the checks and keeps the bound."""
    for name, (x, bound) in honest_fields().items():
        quantizer = {"id": qid, "passes": passes, "chunk": 256}
        frame = cf.compress(x, quantizer=quantizer, encoder="zstd", bound=bound)
        y = cf.decompress(frame)
        eb = container.loads(frame).header["meta"]["abs_bound"]
        finite = np.isfinite(x)
        if finite.any():
            assert np.abs(y[finite].astype(np.float64) - x[finite].astype(np.float64)).max() <= eb, name
        assert np.array_equal(np.isnan(y), np.isnan(x)), name


@pytest.mark.parametrize("chunk", [64, 100, 4096])
def test_small_chunks_hold_the_bound_and_match_the_reference(chunk):
    """``passes: 1`` with any chunk length, on the fields built against the one-pass path: every
    element within the field's own bound, each chunk's codes the per-element kernels' for its centre
    and step (the two-pass reference, chunk by chunk), non-finite values bit-identical."""
    from test_quantizers_bound import chunk_reference_codes, one_pass_cases

    for qid, bound in (("int8", "rel:1e-2"), ("int16", "rel:1e-4"), ("int16", "abs:1e-3")):
        q = registry.create_from_config("quantizer", {"id": qid, "passes": 1, "chunk": chunk})
        b = ErrorBound.parse(bound)
        for name, x in one_pass_cases(chunk, 4 + 3000 // chunk).items():
            quantized = q.quantize(x, b)
            assert np.array_equal(quantized.codes["codes"], chunk_reference_codes(qid, x, quantized)), (chunk, name)
            y = q.dequantize(quantized)
            finite = np.isfinite(x)
            if finite.any():
                err = np.abs(y[finite].astype(np.float64) - x[finite].astype(np.float64)).max()
                assert err <= quantized.meta["abs_bound"], (chunk, name, qid, bound)
                if b.mode == "rel":
                    assert quantized.meta["abs_bound"] == b.absolute(float(x[finite].max()) - float(x[finite].min()))
            assert np.array_equal(x[~finite].view(np.uint32), y[~finite].view(np.uint32)), (chunk, name)


def test_passes_two_never_writes_chunk_side_data(monkeypatch):
    from compframe.plugins.quantizers import uniform as U

    monkeypatch.setattr(U, "ONE_PASS_MIN", 0)
    x = one_pass_field()
    assert "chunk_step" not in registry.create_from_config("quantizer", {"id": "int8", "passes": 2}).quantize(
        x, ErrorBound("rel", 1e-2)).side
    auto = registry.create_from_config("quantizer", {"id": "int8", "chunk": 256}).quantize(x, ErrorBound("rel", 1e-2))
    assert "chunk_step" in auto.side


@pytest.mark.parametrize("qid", ["int8", "int16"])
def test_passes_and_chunk_stay_out_of_the_header(qid):
    """They steer only how quantize runs (meta.chunk records a one-pass frame's chunking): a frame's
    header holds the decoding config alone, so a two-pass frame's bytes do not depend on them."""
    x = one_pass_field()
    frames = [cf.compress(x, quantizer={"id": qid, **params}, encoder="zstd", bound="rel:1e-2")
              for params in ({}, {"passes": 2}, {"passes": "auto", "chunk": 4096})]
    assert frames[0] == frames[1] == frames[2]
    assert container.loads(frames[0]).header["quantizer"] == {"id": qid}
    one = cf.compress(x, quantizer={"id": qid, "passes": 1, "chunk": 256}, encoder="zstd", bound="rel:1e-2")
    f = container.loads(one)
    assert f.header["quantizer"] == {"id": qid} and f.header["meta"]["chunk"] == 256
    assert np.abs(cf.decompress(one) - x)[~np.isnan(x)].max() <= f.header["meta"]["abs_bound"]


@pytest.mark.parametrize("config,param", [({"passes": 3}, "passes"), ({"passes": "one"}, "passes"),
                                          ({"chunk": 10}, "chunk"), ({"chunk": 1 << 31}, "chunk"),
                                          ({"passes": 2, "chunk": 1024}, "chunk")])
def test_bad_parameters_are_config_errors(config, param):
    with pytest.raises(ConfigError, match=param):
        registry.create_from_config("quantizer", {"id": "int16", **config})


def test_gather_never_writes_past_a_chunks_slots():
    """Counts that disagree with the codes (a kernel bug) are reported, not written past the arrays."""
    x = np.array([0.0, 30.0, 0.1, -30.0, np.nan, 0.2] * 2, np.float32)
    ones = np.ones(2)
    for claimed in ([1, 1], [3, 5], [3, 3]):
        codes = np.full(x.size, -128, np.int8)  # what a codes pass leaves at an outlier, everywhere: ±30 (150
        # steps of 0.2) and NaN are the outliers, the others hold their nearest code; the gather gives them code 0
        counts = np.array(claimed, np.int64)
        n = int(counts.sum())
        index, bits = np.full(n + 1, 77, np.uint32), np.zeros(n + 1, np.uint32)
        found = K.gather_outliers(x, codes, 0 * ones, 0.2 * ones, 0.11 * ones, -128.0, 127.0, counts, 6, index[:n],
                                  bits[:n])
        assert found.tolist() == [3, 3], claimed
        assert index[n] == 77  # the sentinel past the arrays is untouched
        assert np.flatnonzero(codes == 0).tolist() == [1, 3, 4, 7, 9, 10]
        if claimed == [3, 3]:
            assert index[:n].tolist() == [1, 3, 4, 7, 9, 10]


def test_gather_takes_blocks_all_nan_whole_and_keeps_to_its_slots():
    """Blocks whose every value is NaN (a masked region) are taken whole, the others element by element:
    the same indices, bits and codes as the element-by-element reference, in order; and a count that
    understates a chunk's outliers (a kernel bug) still never writes past the chunk's slots, whole
    blocks included."""
    chunk = 4 * K.BLOCK
    x = np.linspace(-1, 1, 3 * chunk).astype(np.float32)
    x[K.BLOCK:3 * K.BLOCK] = np.nan  # blocks 1 and 2 of chunk 0: whole
    x[chunk + 5:chunk + 2 * K.BLOCK - 3] = np.nan  # chunk 1: a block but for its edges, and a partial one
    x[2 * chunk + 7] = np.float32(50.0)  # chunk 2: an outlier that is not NaN beside a NaN block
    x[2 * chunk + K.BLOCK:2 * chunk + 2 * K.BLOCK] = np.nan
    step = 2 * 0.01
    out = ~np.isfinite(x) | (np.abs(x) > 127 * step + 0.01)
    codes = np.clip(np.rint(np.where(out, 0, x) / step), -127, 127).astype(np.int8)
    codes[out] = -128  # as a codes pass leaves them
    want = np.flatnonzero(out)
    counts = np.bincount(want // chunk, minlength=3)
    ones = np.ones(3)
    for claimed in (counts, counts - np.array([K.BLOCK + 1, 0, 1])):
        c = codes.copy()
        n = int(claimed.sum())
        index, bits = np.full(n + 1, 7, np.uint32), np.zeros(n + 1, np.uint32)
        found = K.gather_outliers(x, c, 0 * ones, step * ones, 0.01 * ones, -128.0, 127.0, claimed, chunk, index[:n],
                                  bits[:n])
        assert found.tolist() == counts.tolist() and index[n] == 7
        assert np.flatnonzero(c == 0).tolist() == sorted(set(want) | set(np.flatnonzero(codes == 0)))
        if claimed is counts:
            assert index[:n].tolist() == want.tolist() and np.array_equal(bits[:n], x.view(np.uint32)[want])


@pytest.mark.parametrize("chunk", [100, 256])
def test_block_marks_are_the_outlier_blocks(chunk):
    """The one-pass codes pass marks exactly the 64-value blocks (per chunk, see ``K.block_marks``) that hold
    an outlier, the gather over those finds what a gather over every block finds, and it reads nothing else
    (no marks: nothing found)."""
    x = one_pass_field()
    x[[300, 301, 1500, 4000]] = np.nan  # outliers, with x[7]
    nc = -(-x.size // chunk)
    centres, ebs, steps, counts = np.empty(nc), np.empty(nc), np.empty(nc), np.zeros(nc, np.int64)
    codes, marks = np.empty(x.size, np.int16), K.block_marks(x.size, chunk)
    assert K.quantize_running(x, codes, 1e-3, 0.0, -32768.0, 32767.0, centres, ebs, steps, counts, chunk, marks)[0]
    n = int(counts.sum())
    gathered = []
    for m in (None, marks, np.zeros_like(marks)):
        index, bits = np.empty(n, np.uint32), np.empty(n, np.uint32)
        found = K.gather_outliers(x, codes.copy(), centres, steps, ebs, -32768.0, 32767.0, counts, chunk, index, bits,
                                  m)  # a copy: the gather gives the outliers code 0
        gathered.append((found.sum(), index.tolist(), bits.tolist()))
    assert gathered[0][0] == n >= 5 and gathered[1] == gathered[0] and gathered[2][0] == 0
    per = -(-chunk // 64)
    expected = np.zeros_like(marks)
    index = np.array(gathered[0][1])
    expected[index // chunk * per + index % chunk // 64] = 1
    assert np.array_equal(marks, expected)


@pytest.mark.parametrize("qid", ["int8", "int16"])
def test_fast_path_never_accepts_a_rebuild_past_float32_max(qid):
    """A value whose nearest code rebuilds past the float32 range (here to +inf) is an outlier, kept
    exactly (the float32 fast path accepted it, and it came back as inf: found by hypothesis)."""
    x = np.zeros((3, 22), np.float32)
    x[0, 0] = 3.3826481e38
    q = registry.create("quantizer", qid)
    quantized = q.quantize(x, ErrorBound("rel", 10**-1.5))
    y = q.dequantize(quantized)
    assert y[0, 0] == x[0, 0] and quantized.meta["outliers"] == 1
    assert np.abs(y.astype(np.float64) - x).max() <= quantized.meta["abs_bound"]
