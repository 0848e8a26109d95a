"""The ``interp`` quantizer: SZ3's multilevel interpolation on the reconstructed values, against a
reference written out point by point; the bound on every element of adversarial fields; frames that
round-trip and damaged ones that are refused.

The generic bound checks of ``tests/test_quantizers_bound.py`` run on it too (it is error-bounded).
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
from test_lorenzo import adversarial, check, recrafted, smooth

import compframe as cf
from compframe import container, fuzz, registry
from compframe.base import ErrorBound, Quantized
from compframe.errors import ConfigError, FrameError
from compframe.kernels import interp as interp_kernels
from compframe.metrics import entropy_bits


def make(**params):
    return registry.create("quantizer", "interp", **params)


def reference(x: np.ndarray, eb: float, centre: float, cubic: bool, alpha: float, beta: float, code_max: int):
    """Codes and reconstruction of SZ3's interpolation, one point at a time (x 1-, 2- or 3-D, finite).

    Levels from stride 2^(L-1) down; in a level, axis 0, 1, 2 in turn; targets at odd multiples of s
    along the axis, multiples of s along the axes done and 2s along the others; Lagrange weights
    (cubic -1/16, 9/16, 9/16, -1/16; quadratics at the ends; the line through the last two past the
    end, or the last point); code = round((x - pred) / 2eb_l), 0 if it does not fit or hold.
    """
    shape = x.shape
    xh = np.full(shape, np.nan)
    codes = np.zeros(shape, np.int64)
    order = []  # flat indices in the order of prediction

    def put(idx, pred, e):
        order.append(np.ravel_multi_index(idx, shape))
        step = 2 * e
        q = int(np.rint((x[idx] - pred) / step)) if step else 0
        if abs(q) > code_max or abs(np.float32(pred + q * step) - x[idx]) > e:
            q = 0
        codes[idx], xh[idx] = q, np.float32(pred + q * step)

    put((0,) * x.ndim, centre, eb / min(alpha ** (max(1, max(math.ceil(math.log2(n)) for n in shape)) - 1), beta))
    top = max(math.ceil(math.log2(n)) if n > 1 else 0 for n in shape)
    for level in range(top, 0, -1):
        s, e = 2 ** (level - 1), eb / min(alpha ** (level - 1), beta)
        for axis in range(x.ndim):
            ranges = [range(0, n, s if a < axis else 2 * s) for a, n in enumerate(shape)]
            ranges[axis] = range(s, shape[axis], 2 * s)
            for idx in np.ndindex(*map(len, ranges)):
                idx = tuple(r[k] for r, k in zip(ranges, idx))
                i, n = idx[axis], shape[axis]

                def at(k):
                    return xh[idx[:axis] + (i + k * s,) + idx[axis + 1:]]

                if i + s < n and cubic and i >= 3 * s and i + 3 * s < n:
                    pred = -at(-3) / 16 + 9 * at(-1) / 16 + 9 * at(1) / 16 - at(3) / 16
                elif i + s < n and cubic and i + 3 * s < n:
                    pred = 3 * at(-1) / 8 + 6 * at(1) / 8 - at(3) / 8
                elif i + s < n and cubic and i >= 3 * s:
                    pred = -at(-3) / 8 + 6 * at(-1) / 8 + 3 * at(1) / 8
                elif i + s < n:
                    pred = (at(-1) + at(1)) / 2
                elif cubic and i >= 5 * s:
                    pred = 3 * at(-5) / 8 - 10 * at(-3) / 8 + 15 * at(-1) / 8
                elif i >= 3 * s:
                    pred = 1.5 * at(-1) - 0.5 * at(-3)
                else:
                    pred = at(-1)
                put(idx, pred, e)
    return codes, xh, np.array(order)


@pytest.mark.parametrize("method", ["cubic", "linear"])
@pytest.mark.parametrize("shape", [(1,), (2,), (3,), (37,), (2, 3), (11, 20), (1, 9), (5, 1, 7), (9, 6, 13)])
def test_codes_are_the_interpolation_errors_of_the_reconstruction(method, shape):
    """Codes and reconstruction equal the point-by-point reference (every point visited once, the
    level/axis order, the edge rules, the level-wise bounds), on sizes 1, 2, 3 and odd sizes; with
    ``layout: levels`` the same codes in the order of prediction."""
    x = smooth(shape) if len(shape) > 1 else np.cumsum(np.random.default_rng(3).standard_normal(shape)).astype(
        np.float32)
    q = make(method=method, layout="field", tune=False)
    quantized = check(q, x, "rel:1e-3")
    assert quantized.meta["outliers"] == 0
    codes, xh, order = reference(x.astype(np.float64), quantized.meta["abs_bound"], quantized.meta["centre"],
                          method == "cubic", 1.25, 2.0, 32767)
    assert np.array_equal(quantized.codes["codes"], codes)
    np.testing.assert_allclose(q.dequantize(quantized), xh, rtol=0, atol=1e-6 * quantized.meta["abs_bound"])
    assert np.array_equal(order, order_by_level(shape))
    ranked = check(make(method=method, tune=False), x, "rel:1e-3")
    assert np.array_equal(ranked.codes["codes"], codes.reshape(-1)[order_by_level(shape)])


def order_by_level(shape: tuple[int, ...]) -> np.ndarray:
    """SZ3's order of prediction, derived from each point's coordinates rather than by walking the
    passes: a point whose coordinates' lowest set bit is ``2^v`` (0 counting as divisible by every
    power) belongs to the level of stride ``s = 2^v`` and to the pass of the last axis whose coordinate
    is an odd multiple of ``s``; passes come coarsest level first, axes in order, and points within a
    pass in row-major order. The origin comes first."""
    coords = np.indices(shape).reshape(len(shape), -1)
    power = np.where(coords == 0, 64, np.log2(coords & -coords, where=coords > 0, out=np.zeros(coords.shape)))
    v = power.min(axis=0)
    axis = len(shape) - 1 - np.argmax((power == v)[::-1], axis=0)
    flat = np.arange(coords.shape[1])
    return np.lexsort((flat, axis, -v))


def test_order_by_level_on_a_known_case():
    """The order of a 5-point line and of a 3 x 3 grid written out by hand (SZ3: stride 4, then 2, then 1;
    in 2-D at stride 1 the points of odd row and even column, then those of odd column, centre included)."""
    assert order_by_level((5,)).tolist() == [0, 4, 2, 1, 3]
    assert order_by_level((3, 3)).tolist() == [0, 6, 2, 8, 3, 5, 1, 4, 7]


def test_first_point_holds_its_level_bound():
    """The origin is coded like every other point of the coarsest level: a code that holds the field's
    bound but not its level's (here ``eb / 2``) is refused, and the value is an outlier."""
    eb, top = 1.0, 127
    x = np.linspace(-150.0, 150.0, 64).astype(np.float32)  # centre 0, in reach of int8 codes (254 eb)
    x[0], x[1] = np.float32(2 * top * eb / 2 + 0.8 * eb), x[0]  # code 127 (steps of 2 eb_L = eb) misses by 0.8 eb
    q = make(code_dtype="int8", layout="field", tune=False)
    quantized = check(q, x, f"abs:{eb}")
    assert quantized.meta["levels"] == 6 and interp_kernels.level_bound(eb, 6, 1.25, 2.0) == eb / 2
    codes, _, _ = reference(x.astype(np.float64), eb, quantized.meta["centre"], True, 1.25, 2.0, top)
    assert codes[0] == 0 and np.array_equal(quantized.codes["codes"], codes)
    assert quantized.side["outlier_index"].tolist() == [0]


PINNED = {  # CRC-32 of the codes and of the reconstruction, written by the scalar sweep of c6c442c
    ((33, 40, 47), "float32", "cubic", "levels"): (0x70b7f741, 0x0ae251b3),
    ((33, 40, 47), "float32", "cubic", "field"): (0x656ba983, 0x0ae251b3),
    ((33, 40, 47), "float32", "linear", "levels"): (0x2b30ea5a, 0xe0bdcb67),
    ((33, 40, 47), "float32", "linear", "field"): (0xc49bbd29, 0xe0bdcb67),
    ((70, 90), "float64", "cubic", "levels"): (0x08405cee, 0xee6fb250),
    ((70, 90), "float64", "cubic", "field"): (0x5ca6caee, 0xee6fb250),
    ((70, 90), "float64", "linear", "levels"): (0xf792a299, 0xb2e6f3e3),
    ((70, 90), "float64", "linear", "field"): (0x65941146, 0xb2e6f3e3),
}


@pytest.mark.parametrize("shape, dtype, method, layout", list(PINNED))
def test_codes_and_reconstruction_are_pinned(shape, dtype, method, layout):
    """The vectorized sweep writes the bytes the point-by-point sweep wrote (frames are not versioned
    by sweep): CRC-32s recorded from the scalar implementation, rel 1e-3, int16 codes."""
    q = make(method=method, layout=layout, tune=False)
    quantized = q.quantize(smooth(shape).astype(dtype), ErrorBound("rel", 1e-3))
    got = (zlib.crc32(quantized.codes["codes"].tobytes()), zlib.crc32(q.dequantize(quantized).tobytes()))
    assert got == PINNED[(shape, dtype, method, layout)]


@pytest.mark.parametrize("dims", ["auto", 1, 2, 3])
def test_dims_choose_the_view(dims):
    """``dims`` predicts over the last ``dims`` axes with leading axes merged, like ``lorenzo``."""
    x = smooth((6, 40, 50))
    quantized = check(make(dims=dims, alpha=1.0, beta=1.0, layout="field", tune=False), x, "rel:1e-3")
    d = 3 if dims == "auto" else dims
    view = {1: (-1,), 2: (-1, 50), 3: (6, 40, 50)}[d]
    codes, _, _ = reference(x.reshape(view).astype(np.float64), quantized.meta["abs_bound"], quantized.meta["centre"],
                         True, 1.0, 1.0, 32767)
    assert np.array_equal(quantized.codes["codes"].reshape(view), codes)


def test_smooth_fields_code_to_less_than_lorenzo():
    """The point of it: on a smooth field at a loose bound most codes are 0, fewer than half the
    bits of Lorenzo's residuals of the same bound."""
    x = smooth((128, 128))
    bound = ErrorBound("rel", 1e-2)
    interp = make().quantize(x, bound).codes["codes"]
    lor = registry.create("quantizer", "lorenzo").quantize(x, bound).codes["codes"]
    assert entropy_bits(interp) < 0.5 * entropy_bits(lor)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("code_dtype", ["int8", "int16"])
@pytest.mark.parametrize("bound", ["rel:1e-2", "rel:1e-5", "abs:0.25", "abs:1e-40", "abs:1e30"])
def test_bound_on_adversarial_fields(dtype, code_dtype, bound):
    """``lorenzo``'s adversarial fields (spikes, steps, NaN/inf regions, values on and half-way between
    steps, denormals, single, empty, constant, strided, Fortran-order, 4-D, long rows) plus sizes 1,
    2 and 3 along each axis, for both methods."""
    rng = np.random.default_rng(5)
    cases = dict(adversarial(dtype))
    for shape in [(1, 2, 3), (3, 1, 2), (2, 3, 1), (3, 3, 3), (2, 2, 2), (5, 7, 3)]:
        cases[f"shape {shape}"] = (rng.standard_normal(shape) * 10).astype(dtype)
    for options in ({}, {"method": "linear", "layout": "field", "tune": False}):
        q = make(code_dtype=code_dtype, **options)
        for name, x in cases.items():
            try:
                check(q, x, bound)
            except AssertionError as e:
                raise AssertionError(f"{options}, case '{name}': {e}") from None


def test_outliers_are_the_values_off_the_bound():
    """NaN, inf and a spike are the outliers; the spike's neighbours stay codes (it is predicted as
    its interpolation, not its value)."""
    x = smooth((50, 60))
    x[10, 10], x[20, 30], x[40, 1] = np.nan, np.inf, 1e30
    quantized = check(make(), x, "abs:1e-3")
    assert sorted(quantized.side["outlier_index"]) == [10 * 60 + 10, 20 * 60 + 30, 40 * 60 + 1]


@pytest.mark.parametrize("encoder", ["zstd", "gpulz", "ans", "huffman", "none"])
def test_frames_round_trip(encoder):
    x = smooth((64, 48, 8))
    x[1, 2, 3] = np.nan
    for layout in ("levels", "field"):
        q = make(code_dtype="int8", layout=layout)
        frame = cf.compress(x, quantizer=q, encoder=encoder, bound="rel:1e-4")
        expected = q.dequantize(q.quantize(x, ErrorBound("rel", 1e-4)))
        assert np.array_equal(cf.decompress(frame).view(np.uint32), expected.view(np.uint32))
        # tune's settings steer quantize only (meta records what the sweep used): not in the header
        assert container.loads(frame).header["quantizer"] == {"id": "interp", "dims": "auto", "code_dtype": "int8",
                                                              "layout": layout}


def test_damaged_side_data_is_refused():
    q = make()
    x = smooth((30, 40))
    x[5, 5] = np.nan
    good = q.quantize(x, ErrorBound("rel", 1e-3))
    assert good.meta["outliers"] == 1

    def edited(**side):
        return Quantized(codes=dict(good.codes), side={**good.side, **side}, meta=good.meta, shape=good.shape,
                         dtype=good.dtype, bound=good.bound)

    with pytest.raises(FrameError, match="outside the field"):
        q.dequantize(edited(outlier_index=np.array([x.size + 3], np.uint32)))
    with pytest.raises(FrameError, match="does not fit"):
        q.dequantize(edited(outlier_bits=good.side["outlier_bits"].astype(np.uint64)))
    with pytest.raises(FrameError, match="side arrays"):
        q.code_layout(Quantized(codes=dict(good.codes), side={"outlier_index": good.side["outlier_index"]},
                                meta=good.meta, shape=good.shape, dtype=good.dtype, bound=good.bound))
    with pytest.raises(FrameError, match="codes are"):
        q.dequantize(Quantized(codes={"codes": good.codes["codes"].astype(np.int8)}, side=good.side,
                               meta=good.meta, shape=good.shape, dtype=good.dtype, bound=good.bound))
    with pytest.raises(FrameError, match="abs_bound"):
        q.dequantize(Quantized(codes=dict(good.codes), side=good.side, meta={**good.meta, "abs_bound": "x"},
                               shape=good.shape, dtype=good.dtype, bound=good.bound))


def test_header_values_that_disagree_are_refused():
    """``meta.abs_bound`` (with ``value_range``) must be what the header's bound gives, ``meta.levels``
    what the shape gives, ``meta.outliers`` the side data's count: a frame edited consistently
    otherwise (CRCs recomputed) is refused naming the field, not decoded into another field."""
    x = smooth((40, 50))
    x[3, 4] = np.nan
    frame = cf.compress(x, quantizer="interp", encoder="zstd", bound="rel:1e-3")
    meta = container.loads(frame).header["meta"]
    assert np.array_equal(cf.decompress(recrafted(frame)).view(np.uint32), cf.decompress(frame).view(np.uint32))
    cases = {
        "meta.abs_bound": {"abs_bound": 2 * meta["abs_bound"]},
        "meta.value_range": {"value_range": float("nan")},
        "meta.levels": {"levels": meta["levels"] + 1},
        "meta.outliers": {"outliers": 2},
    }
    for field, edit in cases.items():
        with pytest.raises(FrameError, match=field.replace(".", r"\.")):
            cf.decompress(recrafted(frame, **edit))
    header, bodies = fuzz.split(frame)
    header["bound"] = {"mode": "abs", "value": meta["abs_bound"] * 2}
    with pytest.raises(FrameError, match=r"meta\.abs_bound .* abs:"):
        cf.decompress(fuzz.join(header, bodies))
    header["bound"] = {"mode": "loose", "value": 1.0}
    with pytest.raises(FrameError, match="frame header: bound"):
        cf.decompress(fuzz.join(header, bodies))
    header["bound"] = None  # without the bound, meta.abs_bound could not be checked: refused
    with pytest.raises(FrameError, match=r"frame header: bound is null, but meta\.abs_bound"):
        cf.decompress(fuzz.join(header, bodies))


@pytest.mark.parametrize("param, value", [("dims", 4), ("code_dtype", "int32"), ("method", "spline"),
                                          ("alpha", 0.5), ("beta", 0.9), ("layout", "rows"), ("tune", "yes")])
def test_bad_parameters(param, value):
    with pytest.raises(ConfigError) as info:
        make(**{param: value, **({"tune": False} if param in ("method", "alpha", "beta") else {})})
    assert param in str(info.value)


def test_settings_without_tune_only():
    """method/alpha/beta do nothing while ``tune`` picks them: setting one is an error."""
    with pytest.raises(ConfigError, match="tune=false"):
        make(method="linear")


def test_tune_picks_the_cheapest_candidate(monkeypatch):
    """``tune`` keeps the candidate whose codes on the sampled block cost least; the frame records
    it and decodes with it (the decoder reads the settings from the frame, not its config)."""
    from compframe.plugins.quantizers import interp as interp_plugin
    from compframe.plugins.quantizers.interp import CANDIDATES

    x = smooth((64, 64))
    bound = ErrorBound("rel", 1e-3)  # where this field's cheapest candidate is not the default
    with monkeypatch.context() as m:  # the sample is the whole field
        m.setattr(interp_plugin, "TUNE_SHARE", 1)
        m.setattr(interp_plugin, "TUNE_MIN", 1)
        tuned = make().quantize(x, bound)
        check(make(), x, "rel:1e-3")
    chosen = (tuned.meta["method"], tuned.meta["alpha"], tuned.meta["beta"])
    assert chosen in CANDIDATES

    def cost(q):
        codes = q.codes["codes"]
        edges = np.cumsum([0, 1] + [math.prod(c) for *_, c in interp_kernels.passes((1, 64, 64))])
        return sum(entropy_bits(codes[a:b]) * (b - a) for a, b in zip(edges[:-1], edges[1:]))

    costs = {c: cost(make(method=c[0], alpha=c[1], beta=c[2], tune=False).quantize(x, bound)) for c in CANDIDATES}
    assert costs[chosen] == min(costs.values()) and max(costs.values()) > min(costs.values())
    fixed = make(tune=False)
    assert np.array_equal(fixed.dequantize(tuned), make().dequantize(tuned))
    default = (fixed.config.method, fixed.config.alpha, fixed.config.beta)
    assert chosen != default  # so the next line can fail: a field below 2^18 values is not tuned
    untuned = make().quantize(x, bound)
    assert (untuned.meta["method"], untuned.meta["alpha"], untuned.meta["beta"]) == default
    assert np.array_equal(untuned.codes["codes"], make(tune=False).quantize(x, bound).codes["codes"])
    for meta in ({"method": "spline"}, {"alpha": 0.5}, {"beta": "x"}):
        with pytest.raises(FrameError, match="meta"):
            fixed.dequantize(Quantized(codes=dict(tuned.codes), side=tuned.side, meta={**tuned.meta, **meta},
                                       shape=tuned.shape, dtype=tuned.dtype, bound=tuned.bound))


@pytest.mark.parametrize("dtype", [np.int8, np.int16])
def test_pass_bits_is_the_order_0_entropy_of_each_pass(dtype):
    """``tune``'s price, one compiled call per candidate: the order-0 entropy of each run times its
    length, summed (as ``entropy_bits`` gives it), over runs that are empty, of one code, of one
    value, or span the whole code range; the scratch counts are left zero."""
    rng = np.random.default_rng(5)
    info = np.iinfo(dtype)
    codes = np.concatenate([rng.integers(-3, 4, 5000), np.zeros(300, np.int64), [info.min, info.max, 7],
                            np.rint(rng.laplace(0, 40, 20000)).clip(info.min, info.max)]).astype(dtype)
    edges = np.array([0, 1, 1, 5000, 5300, 5303, 9000, codes.size], np.int64)
    scratch = np.zeros(1 << (8 * codes.itemsize), np.int64)
    want = sum(entropy_bits(codes[a:b]) * (b - a) for a, b in zip(edges[:-1], edges[1:]) if b > a)
    assert interp_kernels.pass_bits(codes, edges, scratch) == pytest.approx(want, rel=1e-12)
    assert not scratch.any()
    assert interp_kernels.pass_bits(codes, np.array([0, codes.size]), scratch) == pytest.approx(
        entropy_bits(codes) * codes.size, rel=1e-12)


def test_gather_misses_finds_every_miss_in_order():
    """The outliers' index and raw bits: every value whose x̂ misses the bound (NaN and inf too), in
    order, over chunks of many misses, of none, and a partial last chunk and block."""
    from compframe.kernels.uniform import CHUNK

    rng = np.random.default_rng(9)
    n = 3 * CHUNK + 2 * interp_kernels.MARK + 77
    x = rng.standard_normal(n).astype(np.float32)
    xh = x + np.float32(0.5e-3) * rng.uniform(-1, 1, n).astype(np.float32)
    where = np.concatenate([rng.choice(CHUNK, 300, replace=False), [CHUNK + 5], 2 * CHUNK + np.arange(40), [n - 1]])
    xh[where] += np.float32(0.01)
    x[[7, n - 2]] = [np.nan, np.inf]
    eb = 1e-3
    want = np.flatnonzero(~(np.abs(x.astype(np.float64) - xh.astype(np.float64)) <= eb))
    marks = np.ones(-(-n // interp_kernels.MARK), np.bool_)
    counts = interp_kernels.count_misses(x, xh, eb, marks)
    index, bits = np.empty(int(counts.sum()), np.uint32), np.empty(int(counts.sum()), np.uint32)
    interp_kernels.gather_misses(x, xh, eb, counts, index, bits, marks)
    assert np.array_equal(index, want) and np.array_equal(bits, x.view(np.uint32)[want])
    marks[want[-1] // interp_kernels.MARK] = False  # blocks not marked are not checked
    assert interp_kernels.count_misses(x, xh, eb, marks).sum() == (want // interp_kernels.MARK != want[-1] //
                                                                   interp_kernels.MARK).sum() < want.size


def test_missing_bound_is_an_error():
    with pytest.raises(ValueError, match="'interp' is error-bounded"):
        make().quantize(np.ones(3, np.float32), None)


def test_in_the_fuzz_corpus():
    assert fuzz.QUANTIZERS["interp"][0]["id"] == "interp"
    frame = cf.compress(fuzz.sample_field(), quantizer=fuzz.QUANTIZERS["interp"][0], encoder="zstd", bound="abs:1e-2")
    assert cf.decompress(frame).shape == (24, 16)


@pytest.mark.slow
def test_fuzzed_interp_frames_raise_only_frame_error(tmp_path):
    """Mutants of interp frames (outliers, 1-D/2-D/3-D, both layouts, raw and entropy-coded codes)
    decoded by guarded workers whose kernels check every index: no crash, no hang, no access out of
    bounds, no exception but FrameError. Two encoders: ``none`` hands edited bytes to the sweep as
    codes, ``ans`` its own layout checks (its CRC-32 catches edited payloads, as zstd's checksum
    would: a third, checksummed encoder adds mutants of the same kind, so it was dropped with a
    third of the mutants, the same number per frame)."""
    x1 = np.cumsum(np.random.default_rng(1).standard_normal(300)).astype(np.float32)
    x1[17] = np.nan
    x3 = smooth((5, 6, 10))
    x3[1, 2, 3] = np.inf
    frames = {}
    for name, x in (("1d", x1), ("2d", fuzz.sample_field()), ("3d", x3)):
        for layout in ("levels", "field"):
            for encoder in ("none", {"id": "ans", "chunk": 64}):
                frame = cf.compress(x, quantizer={"id": "interp", "code_dtype": "int8", "layout": layout},
                                    encoder=encoder, bound="rel:1e-3")
                frames[f"{name}+{layout}+{encoder if isinstance(encoder, str) else encoder['id']}"] = frame
    cases = fuzz.mutants(frames, 1000, seed=17)
    report = fuzz.run(cases, workers=2, timeout=120, warmup=list(frames.values()), boundscheck=str(tmp_path))
    bad = [(b["frame"], b["ops"], b["outcome"], b["message"]) for b in report.bad]
    assert report.total == len(cases) and not bad, bad[:5]
    assert report.counts["frame_error"] > 0.5 * len(cases)
