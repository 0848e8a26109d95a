"""Every error-bounded quantizer keeps max|x - x̂| <= bound on every finite element, exactly.

Parametrized over the registry, so a new error-bounded quantizer is tested without editing this
file. Non-finite values must come back bit-identical.
"""

from __future__ import annotations

import dataclasses

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from compframe import registry
from compframe.base import ErrorBound
from compframe.kernels import uniform as K

BOUNDED = [pid for pid in registry.available("quantizer") if registry.plugin_class("quantizer", pid).guarantee == "error_bound"]


def check_bound(pid: str, x: np.ndarray, bound: ErrorBound, **options) -> dict:
    """Quantize and dequantize ``x``, check the promise on every element; ``options`` go to ``quantize``
    (with a ``value_range`` hint a ``rel`` bound may be tighter than the field's own, never looser)."""
    q = registry.create("quantizer", pid)
    quantized = q.quantize(x, bound, **options)
    y = q.dequantize(quantized)
    assert y.shape == x.shape and y.dtype == x.dtype
    finite = np.isfinite(x)
    eb = quantized.meta["abs_bound"]
    if finite.any():
        finite_vals = x[finite].astype(np.float64)
        err = np.abs(finite_vals - y[finite].astype(np.float64))
        assert err.max() <= eb, f"{pid}: max error {err.max()!r} > bound {eb!r}"
        if bound.mode == "rel":
            own = bound.value * (finite_vals.max() - finite_vals.min())
            if "value_range" in options:
                assert eb <= own * (1 + 1e-12), f"{pid}: bound {eb!r} looser than the field's own {own!r}"
            else:
                assert eb == pytest.approx(own, rel=1e-12)
        else:
            assert eb == bound.value
    bits = f"u{x.itemsize}"
    assert np.array_equal(x[~finite].view(bits), y[~finite].view(bits)), "non-finite values must be bit-identical"
    return quantized.meta


def adversarial(dtype) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    info = np.finfo(dtype)
    with np.errstate(over="ignore"):
        cases = {
            "empty": np.zeros(0, dtype),
            "single": np.array([3.25], dtype),
            "constant": np.full(1000, -7.5, dtype),
            "zeros": np.zeros((10, 10), dtype),
            "ramp": np.linspace(-1, 1, 10001, dtype=dtype),
            "far_from_zero": (1e6 + rng.standard_normal(5000)).astype(dtype),
            "huge_range": np.array([info.min, info.max, 0, 1, -1], dtype),
            "huge_values": (rng.standard_normal(1000) * info.max / 4).astype(dtype),
            "tiny_values": (rng.standard_normal(1000) * 1e-30).astype(dtype),
            "denormals": (np.arange(-500, 500) * info.smallest_subnormal).astype(dtype),
            "nan_inf": np.array([np.nan, np.inf, -np.inf, 1.0, 2.0, -np.nan], dtype),
            "all_nan": np.full(17, np.nan, dtype),
            "nan_payload": np.frombuffer(np.array([0x7FC00001, 0xFFC12345, 0x3F800000], np.uint32).tobytes(), np.float32).astype(dtype) if dtype == np.float32 else np.array([np.nan, 1.0], dtype),
            "heavy_tail": rng.standard_cauchy(20000).astype(dtype),
            "embedding_2d": rng.standard_normal((128, 64)).astype(dtype),
        }
    return cases


@pytest.mark.parametrize("pid", BOUNDED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bound", ["rel:1e-2", "rel:1e-4", "rel:1e-9", "abs:1e-3", "abs:1e-30", "abs:1e30"])
def test_bound_on_adversarial_inputs(pid, dtype, bound):
    for name, x in adversarial(dtype).items():
        try:
            check_bound(pid, x, ErrorBound.parse(bound))
        except AssertionError as e:
            raise AssertionError(f"case '{name}': {e}") from None


@pytest.mark.parametrize("pid", BOUNDED)
@settings(max_examples=60, deadline=None)
@given(
    x=hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=2, max_side=64),
                 elements=st.floats(width=32, allow_nan=True, allow_infinity=True)),
    mode=st.sampled_from(["abs", "rel"]),
    exponent=st.floats(-12, 2),
)
def test_bound_hypothesis(pid, x, mode, exponent):
    check_bound(pid, x, ErrorBound(mode, 10.0**exponent))


def test_codes_fit_and_outliers_are_exact():
    q = registry.create("quantizer", "int8")
    x = np.linspace(0, 1, 10000, dtype=np.float32)
    meta = check_bound("int8", x, ErrorBound("rel", 1e-3))  # needs codes up to ±250: int8 overflows
    assert meta["outliers"] > 0
    assert q.quantize(x, ErrorBound("rel", 1e-2)).meta["outliers"] == 0  # ±25 fits
    meta16 = check_bound("int16", x, ErrorBound("rel", 1e-3))
    assert meta16["outliers"] == 0


def test_centre_keeps_offset_data_in_range():
    """Data far from zero still fits the code type: codes are taken around the midrange."""
    x = (1000.0 + np.random.default_rng(0).random(4096)).astype(np.float32)
    q = registry.create("quantizer", "int8").quantize(x, ErrorBound("rel", 1e-2))
    assert np.abs(q.codes["codes"]).max() <= 25
    # Values within half an ulp (6e-5 at 1000) of a midpoint between two reconstruction points
    # miss the bound on both sides after rounding to float32: they, and only they, are outliers.
    assert q.meta["outliers"] <= 0.005 * x.size
    check_bound("int8", x, ErrorBound("rel", 1e-2))


def test_step_matches_dlrm_formula():
    """code = round((x - c) / (2 eb_abs)), eb_abs = eb (max - min) (dlrm_comp quantization.py)."""
    x = np.array([0.0, 0.1, 0.5, 0.74, 1.0], np.float64)
    q = registry.create("quantizer", "int16").quantize(x, ErrorBound("rel", 0.01))
    eb = 0.01
    assert q.meta["step"] == 2 * eb
    expected = np.rint((x - 0.5) / (2 * eb)).astype(np.int16)
    assert np.array_equal(q.codes["codes"], expected)


def test_missing_bound_is_an_error():
    with pytest.raises(ValueError, match="needs a bound"):
        registry.create("quantizer", "int8").quantize(np.ones(3, np.float32), None)


def test_non_float_input_is_an_error():
    with pytest.raises(TypeError, match="takes float32, float64 arrays, got int32"):
        registry.create("quantizer", "int8").quantize(np.ones(3, np.int32), ErrorBound("rel", 1e-2))


@pytest.mark.parametrize("spec,err", [("rel:0", "finite and > 0"), ("abs:-1", "finite and > 0"), ("rel:nan", "finite"),
                                      ("pct:1", "mode 'pct' is unknown"), ("1e-2", "must look like"),
                                      ("rel:abc", "not a number")])
def test_error_bound_validation(spec, err):
    with pytest.raises(ValueError, match=err):
        ErrorBound.parse(spec)


@pytest.mark.parametrize("pid", ["int8", "int16"])
def test_reused_buffers_give_the_same_result(pid):
    q = registry.create("quantizer", pid)
    x = np.random.default_rng(5).standard_normal((64, 32)).astype(np.float32)
    b = ErrorBound("rel", 1e-3)
    fresh = q.quantize(x, b)
    buf = np.full(x.size, 99, dtype=q.code_dtype)
    reused = q.quantize(x, b, out=buf)
    assert reused.codes["codes"].base is buf or reused.codes["codes"] is buf or np.shares_memory(reused.codes["codes"], buf)
    assert np.array_equal(fresh.codes["codes"], reused.codes["codes"])
    out = np.empty_like(x)
    y = q.dequantize(reused, out=out)
    assert np.shares_memory(y, out) and np.array_equal(y, q.dequantize(fresh))
    with pytest.raises(ValueError, match="out must be a C-contiguous"):
        q.quantize(x, b, out=np.empty(3, q.code_dtype))


def half_way(dtype, lo: float, hi: float, step: float, ulps: int) -> np.ndarray:
    """A field pinned to ``[lo, hi]`` (so its centre is their midrange ``c``): ``lo``, ``hi`` and the
    half-way points ``c + k * step ± step / 2`` between reconstruction points inside, with their
    ``ulps`` neighbours on each side."""
    centre = float(dtype(lo)) / 2 + float(dtype(hi)) / 2
    k = np.arange(-np.ceil((hi - lo) / step), np.ceil((hi - lo) / step) + 1)
    half = np.concatenate([centre + k * step + step / 2, centre + k * step - step / 2]).astype(dtype)
    near = [half]
    for direction in (np.inf, -np.inf):
        x = half
        for _ in range(ulps):
            x = np.nextafter(x, dtype(direction))
            near.append(x)
    near = np.concatenate(near)
    return np.concatenate([np.array([lo, hi], dtype), near[(near >= dtype(lo)) & (near <= dtype(hi))]])


def edges(dtype) -> dict[str, np.ndarray]:
    """Values at and next to ``±eb`` from reconstruction points (the half-way points between two of
    them), for a field pinned to [-1, 1] (centre 0) at ``abs:1e-3`` / ``rel:5e-4`` (step 2e-3), and
    for one pinned to [-0.7, 1.1] at ``rel:1e-4`` (step 3.6e-4, codes to ±2500; a reciprocal and a
    centre float32 does not hold exactly) with every float within 8 ulps of them: the band where the
    float32 path's margin decides (a quarter of that margin gives wrong codes here)."""
    pinned = half_way(dtype, -1.0, 1.0, 2e-3, 1)
    offset = (pinned + dtype(3.0)).astype(dtype)  # the same away from zero: the centre is 3
    wide = half_way(dtype, -0.7, 1.1, 2 * 1e-4 * (float(dtype(1.1)) - float(dtype(-0.7))), 8)
    return {"half_way": pinned, "half_way_offset": offset, "half_way_wide": wide}


UNIFORM = ["int8", "int16"]
FAST_BOUNDS = ["rel:1e-2", "rel:5e-4", "rel:1e-4", "abs:1e-3", "abs:1e-30", "abs:1e30"]


def reference_codes(pid: str, x: np.ndarray, meta: dict) -> np.ndarray:
    """The codes of the per-element float64 kernels (``quantize_into`` + ``repair``) for ``meta``."""
    info = np.iinfo(registry.plugin_class("quantizer", pid).code_dtype)
    flat = x.reshape(-1)
    codes = np.empty(flat.size, info.dtype)
    args = (meta["centre"], meta["step"], meta["abs_bound"], float(info.min), float(info.max))
    counts = K.quantize_into(flat, codes, *args)
    if counts.any():
        marks = K.block_marks(flat.size)
        out = K.repair(flat, codes, *args, counts, marks)
        n = int(out.sum())
        if n:  # the outliers, left at the minimum, get code 0 from the gather
            one = np.ones(out.size)
            K.gather_outliers(flat, codes, one * args[0], one * args[1], one * args[2], args[3], args[4], out, K.CHUNK,
                              np.empty(n, np.uint64), np.empty(n, f"u{flat.itemsize}"), marks)
    return codes.reshape(x.shape)


@numba.njit(cache=True)
def _codes_one_by_one(x, centre, step, eb, lo, hi):
    """``kernels.uniform``'s ``_nearest`` and ``_code`` of every element alone: the nearest code and
    whether it holds, then the code ``_code`` settles on and whether that holds (else an outlier)."""
    near, near_ok = np.empty(x.size, np.int64), np.empty(x.size, np.bool_)
    codes, held = np.empty(x.size, np.int64), np.empty(x.size, np.bool_)
    for i in range(x.size):
        q, ok, _ = K._nearest(x[i], centre, 1.0 / step, step, eb, lo, hi)
        near[i], near_ok[i] = q, ok
        q, ok = K._code(x[i], centre, 1.0 / step, step, eb, lo, hi)
        codes[i], held[i] = q, ok
    return near, near_ok, codes, held


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("dtype", [np.int8, np.int16])
def test_repair_settles_the_marked_misses_and_marks_their_blocks(dtype, dense):
    """The float64 kernels: ``quantize_into`` marks each miss with the code type's minimum and
    ``repair`` settles exactly those (the neighbouring code, or the minimum left for an outlier), sets
    the block of each outlier in ``marks`` and no other, and counts them per chunk; the gather gives
    the outliers code 0. A field of zeros (most codes
    0) with NaN, inf, values past the codes' reach, values whose own code is the minimum, and
    values half-way between two steps, over several chunks: the codes are ``_code``'s element by
    element, and ``gather_outliers`` reading only the marked blocks finds every outlier. ``dense``:
    NaN in one value of seven too, so that ``repair`` takes its block-by-block path in every chunk but
    the last (blocks whose misses are all NaN, and blocks mixing NaN with the rest)."""
    rng = np.random.default_rng(4)
    info = np.iinfo(dtype)
    lo, hi = float(info.min), float(info.max)
    n = 3 * K.CHUNK + 1000
    eb, centre = 0.01, 0.0
    step = 2 * eb
    x = np.where(rng.random(n) < 0.7, 0.0, rng.uniform(lo * step, hi * step, n))
    x[::5003] = np.nan
    if dense:
        x[:3 * K.CHUNK][rng.random(3 * K.CHUNK) < 1 / 7] = np.nan
    x[7::9001] = np.inf
    x[11::7001] = lo * step  # the minimum is its own code: repair must give it back unchanged
    x[13::6007] = (lo - 40) * step  # past the codes' reach
    x[17::3001] = (np.arange(17, n, 3001) % 50 + 0.5) * step  # half-way between two steps
    codes = np.empty(n, dtype)
    counts = K.quantize_into(x, codes, centre, step, eb, lo, hi)
    near, near_ok, expected, held = _codes_one_by_one(x, centre, step, eb, lo, hi)
    assert np.array_equal(codes, np.where(near_ok, near, lo))  # every miss marked with the minimum
    assert np.array_equal(counts, np.bincount(np.flatnonzero(~near_ok) // K.CHUNK, minlength=counts.size))
    assert np.count_nonzero(near_ok & (near == lo)) > 0 and np.count_nonzero(near_ok & ~held) == 0
    assert np.count_nonzero(~near_ok & held) > 0 and np.count_nonzero(~held) > 0  # both kinds of miss occur
    marks = K.block_marks(n)
    out = K.repair(x, codes, centre, step, eb, lo, hi, counts, marks)
    assert np.array_equal(codes, np.where(held, expected, lo))  # outliers left at the minimum for the gather
    per = -(-K.CHUNK // K.BLOCK)
    bad = np.flatnonzero(~held)
    assert np.array_equal(out, np.bincount(bad // K.CHUNK, minlength=counts.size))
    blocks = np.unique(bad // K.CHUNK * per + bad % K.CHUNK // K.BLOCK)
    assert np.array_equal(np.flatnonzero(marks), blocks)
    index, bits = np.empty(bad.size, np.uint32), np.empty(bad.size, np.uint64)
    one = np.ones(counts.size)
    found = K.gather_outliers(x, codes, one * centre, one * step, one * eb, lo, hi, out, K.CHUNK, index, bits, marks)
    assert np.array_equal(found, out) and np.array_equal(index, bad) and np.array_equal(bits, x.view(np.uint64)[bad])
    assert np.array_equal(codes, np.where(held, expected, 0))  # and code 0 from it


def fast_path_cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    odd = (rng.standard_normal(3 * K.CHUNK + 45) * 0.05).astype(np.float32)
    dense = odd.copy()  # NaN in one value of five: blocks whose unsettled values are all NaN, and mixed ones
    dense[rng.random(dense.size) < 0.2] = np.nan
    dense[::97] = np.float32(1e4)  # past the codes' reach
    return {**adversarial(np.float32), **edges(np.float32),
            # sizes that are not multiples of the block or of the chunk, over several chunks
            "embedding_odd": odd, "nan_dense": dense}


@pytest.mark.parametrize("pid", UNIFORM)
@pytest.mark.parametrize("bound", FAST_BOUNDS)
def test_fast_path_gives_the_reference_codes(pid, bound):
    """The float32 path accepts a code without rebuilding the value only where its margin proves
    the bound: its codes equal the per-element kernels' everywhere, and the bound holds."""
    b = ErrorBound.parse(bound)
    q = registry.create("quantizer", pid)
    for name, x in fast_path_cases().items():
        meta = check_bound(pid, x, b)
        assert np.array_equal(q.quantize(x, b).codes["codes"], reference_codes(pid, x, meta)), f"case '{name}'"


def test_fast_path_is_taken_on_ordinary_fields():
    meta = registry.create("quantizer", "int16").quantize(np.linspace(-1, 1, 1000, dtype=np.float32),
                                                          ErrorBound("rel", 1e-4)).meta
    fast = K.fast_params(meta["centre"], meta["step"], meta["abs_bound"], 1.0, -32768.0, 32767.0)
    assert fast is not None and 0.49 < fast[2] < 0.5  # theta: a margin of about 1.2e-3 below 1/2
    assert K.fast_params(1e6, 1e-3, 5e-4, 1.0, -128.0, 127.0) is None  # float32 cannot resolve the step
    assert K.fast_params(0.0, 0.0, 0.0, 0.0, -128.0, 127.0) is None  # a constant field


def hints(x: np.ndarray) -> dict[str, tuple[float, float]]:
    """Ranges a caller might pass: right, too narrow, too wide, shifted off, far off, a point."""
    finite = x[np.isfinite(x)].astype(np.float64)
    lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
    w = hi - lo
    return {"exact": (lo, hi), "narrow": (lo + w / 4, hi - w / 4), "wide": (lo - w, hi + w),
            "shifted": (lo + w / 2, hi + w / 2), "far_off": (1e6, 2e6), "point": (lo, lo)}


@pytest.mark.parametrize("pid", UNIFORM)
@pytest.mark.parametrize("bound", ["rel:1e-2", "rel:1e-4", "abs:1e-3", "abs:1e-30"])
def test_value_range_hint_keeps_the_bound(pid, bound):
    """A wrong range from the caller (the data outside it, or narrower) never loosens the bound:
    every adversarial case holds it; a right range gives the two-pass result exactly."""
    b = ErrorBound.parse(bound)
    q = registry.create("quantizer", pid)
    for name, x in {**adversarial(np.float32), **edges(np.float32)}.items():
        plain = q.quantize(x, b)
        for hname, hint in hints(x).items():
            try:
                meta = check_bound(pid, x, b, value_range=hint)
            except AssertionError as e:
                raise AssertionError(f"case '{name}', hint '{hname}' {hint}: {e}") from None
            if hname == "exact":
                hinted = q.quantize(x, b, value_range=hint)
                assert np.array_equal(hinted.codes["codes"], plain.codes["codes"]) and meta == plain.meta, name


def test_value_range_hint_is_one_pass_when_it_holds():
    """A range the data fills (the previous iteration's, slightly narrower) is kept: the bound is the
    hint's, tighter than the field's own; a range the field is narrower than is redone."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(50_000) * 0.05).astype(np.float32)
    q = registry.create("quantizer", "int16")
    b = ErrorBound("rel", 1e-4)
    lo, hi = q.quantize(x, b).meta["range"]
    kept = q.quantize(x, b, value_range=(0.99 * lo, 0.99 * hi)).meta
    assert kept["abs_bound"] == pytest.approx(0.99 * b.value * (hi - lo), rel=1e-12) and kept["range"] == [lo, hi]
    redone = q.quantize(x, b, value_range=(1.01 * lo, 1.01 * hi)).meta
    assert redone["abs_bound"] == b.value * (hi - lo)


@pytest.mark.parametrize("value_range,err", [((1.0,), "pair"), ((2.0, 1.0), "min <= max"),
                                             ((0.0, np.inf), "finite"), ("ab", "pair")])
def test_value_range_validation(value_range, err):
    with pytest.raises(ValueError, match=err):
        registry.create("quantizer", "int8").quantize(np.ones(3, np.float32), ErrorBound("rel", 1e-2),
                                                      value_range=value_range)


def one_pass_cases(chunk: int = K.CHUNK, chunks: int = 4) -> dict[str, np.ndarray]:
    """Fields of several chunks (``chunks`` of ``chunk`` values, and 45 more) aimed at the one-pass
    path's range taken from the chunks before: the range only at the end, a single spike, extremes
    that grow or alternate chunk by chunk, a constant first chunk, NaN or inf where the range is
    taken, denormals."""
    rng = np.random.default_rng(13)
    n = chunks * chunk + 45
    noise = (rng.standard_normal(n) * 0.05).astype(np.float32)
    at_end = noise.copy()
    at_end[-chunk // 2:] *= 1000
    spike = noise.copy()
    spike[2 * chunk + 17] = 3e4
    growing = noise * np.repeat(4.0 ** np.minimum(np.arange(chunks + 1), 4), chunk)[:n].astype(np.float32)
    alternating = noise.copy()
    alternating[np.arange(0, n, chunk + 1)] = np.float32(1e3) * (-1.0) ** np.arange(0, n, chunk + 1)
    constant_first = noise.copy()
    constant_first[:chunk] = 0.25
    nan_first = noise.copy()
    nan_first[:chunk] = np.nan
    nan_spread = noise.copy()
    nan_spread[::1001] = np.nan
    nan_dense = noise.copy()
    nan_dense[rng.random(n) < 0.2] = np.nan
    inf_late = noise.copy()
    inf_late[-3] = np.inf
    denormals = (rng.integers(-500, 500, n) * np.finfo(np.float32).smallest_subnormal).astype(np.float32)
    return {"noise": noise, "range_at_end": at_end, "spike": spike, "growing": growing, "alternating": alternating,
            "constant_first": constant_first, "nan_first_chunk": nan_first, "nan_spread": nan_spread,
            "nan_dense": nan_dense,
            "inf_late": inf_late, "denormals": denormals, "ramp_up": np.linspace(0, 1, n, dtype=np.float32)}


@pytest.fixture(params=[2, 16], ids=["wave2", "wave16"])
def one_pass_everywhere(monkeypatch, request):
    """The one-pass path for float32 fields of any size and any bound (by default only from 16 MiB
    and ``rel`` bounds from the code type's ``ONE_PASS_REL_MIN``), in waves of 2 chunks (the fields of
    ``one_pass_cases`` then take three, each with the range of the ones before) and of 16 (the default:
    one wave, every chunk with chunk 0's range)."""
    from compframe.plugins.quantizers import uniform as U

    monkeypatch.setattr(U, "WAVE", request.param)
    monkeypatch.setattr(U, "ONE_PASS_MIN", 0)
    monkeypatch.setattr(U, "ONE_PASS_REL_MIN", dict.fromkeys(U.ONE_PASS_REL_MIN, 0.0))


def one_pass_checked(pid: str, q, name: str, x: np.ndarray, b: ErrorBound):
    """``q.quantize(x, b)`` (case ``name``) after ``check_bound``, its codes checked against
    ``chunk_reference_codes``."""
    try:
        check_bound(pid, x, b)
    except AssertionError as e:
        raise AssertionError(f"case '{name}': {e}") from None
    quantized = q.quantize(x, b)
    assert np.array_equal(quantized.codes["codes"], chunk_reference_codes(pid, x, quantized)), name
    return quantized


def chunk_reference_codes(pid: str, x: np.ndarray, quantized) -> np.ndarray:
    """``reference_codes`` chunk by chunk with each chunk's centre and step (bound: half the step)."""
    side, flat = quantized.side, x.reshape(-1)
    if "chunk_step" not in side:
        return reference_codes(pid, x, quantized.meta)
    chunk = quantized.meta["chunk"]
    parts = [reference_codes(pid, flat[c * chunk:(c + 1) * chunk], {"centre": centre, "step": step, "abs_bound": step / 2})
             for c, (centre, step) in enumerate(zip(side["chunk_centre"], side["chunk_step"]))]
    return np.concatenate(parts).reshape(x.shape)


@pytest.mark.parametrize("pid", UNIFORM)
@pytest.mark.parametrize("bound", ["rel:1e-2", "rel:1e-4", "abs:1e-3", "abs:1e-30"])
def test_one_pass_holds_the_bound_on_adversarial_inputs(pid, bound, one_pass_everywhere):
    """The default one-pass path keeps the promise exactly as the two-pass one (every element within
    ``abs_bound``, which is the field's own ``rel`` bound; non-finite values bit-identical) on the
    adversarial inputs and on fields built against a range taken from the chunks before; each chunk's
    codes are the per-element kernels' for that chunk's centre and step; outliers are at most a few
    more than the two-pass path leaves (a prefix range that does not fit the codes, centred off the
    bulk, is retried with the field's plan); a one-chunk field gives the two-pass result exactly."""
    from compframe.plugins.quantizers import uniform as U

    b = ErrorBound.parse(bound)
    q = registry.create("quantizer", pid)
    for name, x in {**adversarial(np.float32), **edges(np.float32), **one_pass_cases()}.items():
        quantized = one_pass_checked(pid, q, name, x, b)
        U.ONE_PASS_MIN, saved = 1 << 62, U.ONE_PASS_MIN
        try:
            plain = q.quantize(x, b)
        finally:
            U.ONE_PASS_MIN = saved
        assert quantized.meta["outliers"] <= plain.meta["outliers"] + 8, name  # a few more rounding cases at most
        if x.size <= K.CHUNK:
            assert np.array_equal(quantized.codes["codes"], plain.codes["codes"]) and quantized.meta == plain.meta, name


def test_one_pass_retries_chunks_for_outliers_that_are_not_nan(one_pass_everywhere, monkeypatch):
    """A one-pass chunk with more than 1/64 outliers is coded again with the field's plan only where more
    than 1/64 of them are not NaN, which no plan codes: NaN in one value of five redoes no chunk of a
    Gaussian field at ``rel:1e-2`` (all were coded twice before), and at ``rel:1e-4``, where int8's running
    plans miss the bulk, chunks are still redone, among those redone without the NaN; the bound holds and
    the codes are the per-chunk kernels' either way."""
    retried = []
    real = K.requantize_chunks
    monkeypatch.setattr(K, "requantize_chunks", lambda *a: retried.append((a[12], a[2].copy(), real(*a))) or
                        retried[-1][2])
    noise = one_pass_cases()["noise"]
    dense = noise.copy()
    dense[np.random.default_rng(4).random(noise.size) < 0.2] = np.nan
    q = registry.create("quantizer", "int8")

    def redone(x, bound):
        retried.clear()
        one_pass_checked("int8", q, bound, x, ErrorBound.parse(bound))
        return [sorted(chunks[took].tolist()) for fewer, chunks, took in retried if fewer]

    assert redone(dense, "rel:1e-2") == []
    plain, with_nan = redone(noise, "rel:1e-4")[0], redone(dense, "rel:1e-4")[0]
    assert with_nan and set(with_nan) <= set(plain)  # fewer outliers that are not NaN: a chunk may drop out


@pytest.mark.parametrize("qid, bound", [("int8", "rel:1e-2"), ("int16", "rel:1e-3"), ("int8", "rel:1e-3")])
def test_one_pass_codes_do_not_depend_on_the_thread_count(qid, bound, monkeypatch):
    """The one-pass path quantizes the chunks of a wave in parallel: on one thread and on two, a field of 37
    chunks (3 waves of 16) whose range widens a little chunk by chunk (each chunk holds its extremes, none
    redone for a tight bound, so each keeps its wave's plan: 5 plans; in waves of 8 there would be 7), with
    NaN in two chunks, gets the same codes, per-chunk plans and outliers, the codes those plans give. int8
    codes at ``rel:1e-3`` cover a quarter of the range: there half the values are outliers and every chunk
    is retried with the field's plan."""
    import numba

    from compframe.plugins.quantizers import uniform as U

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has one thread here")
    monkeypatch.setattr(U, "ONE_PASS_MIN", 0)
    chunk = 4096
    top = np.repeat(1.0 + 0.002 * np.arange(37), chunk)
    x = (np.random.default_rng(29).uniform(-0.99, 0.99, 37 * chunk) * top).astype(np.float32)
    x[::chunk], x[1::chunk] = top[::chunk], -top[::chunk]
    x[[3 * chunk + 5, 20 * chunk + 7, 20 * chunk + 9]] = np.nan
    q = registry.create_from_config("quantizer", {"id": qid, "chunk": chunk, "passes": 1})
    b = ErrorBound.parse(bound)
    results = []
    previous = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            results.append(q.quantize(x, b))
    finally:
        numba.set_num_threads(previous)
    one, two = results
    if bound == "rel:1e-3" and qid == "int8":
        assert one.meta["outliers"] > x.size // 3 and "chunk_step" not in one.side
    else:
        assert one.meta["outliers"] == 3 and len(np.unique(one.side["chunk_step"])) == 5
    assert np.array_equal(one.codes["codes"], two.codes["codes"]) and one.meta == two.meta
    assert one.side.keys() == two.side.keys() and all(np.array_equal(one.side[k], two.side[k]) for k in one.side)
    assert np.array_equal(one.codes["codes"], chunk_reference_codes(qid, x, one))


def test_one_pass_costs_little_ratio_and_round_trips(one_pass_everywhere):
    """On a Gaussian field of 64 chunks the one-pass codes carry at most 1 % more order-0 entropy than
    the two-pass ones (a chunk more than ``REDO_BITS`` tighter is redone); the frame with per-chunk
    centres and steps decodes through the container to ``dequantize``'s values; a range only at the
    end is redone everywhere, giving the two-pass frame layout (no per-chunk side data)."""
    import compframe as cf
    from compframe.plugins.quantizers import uniform as U

    x = (np.random.default_rng(17).standard_normal(64 * K.CHUNK) * 0.05).astype(np.float32)
    q = registry.create("quantizer", "int8")
    b = ErrorBound("rel", 1e-2)
    one = q.quantize(x, b)
    U.ONE_PASS_MIN = 1 << 62
    two = q.quantize(x, b)
    U.ONE_PASS_MIN = 0

    def entropy(codes):
        counts = np.unique(codes, return_counts=True)[1]
        p = counts / codes.size
        return -(p * np.log2(p)).sum()

    assert "chunk_step" in one.side and one.meta["abs_bound"] == two.meta["abs_bound"]
    assert entropy(two.codes["codes"]) <= entropy(one.codes["codes"]) <= 1.01 * entropy(two.codes["codes"])
    frame = cf.compress(x, quantizer="int8", encoder="zstd", bound=b)
    assert np.array_equal(cf.decompress(frame), q.dequantize(one))
    at_end = one_pass_cases()["range_at_end"]
    assert "chunk_step" not in q.quantize(at_end, b).side


def test_one_pass_frame_side_data_is_checked(one_pass_everywhere):
    """Per-chunk centres and steps that do not fit the field are refused with a FrameError."""
    from compframe.errors import FrameError

    x = (np.random.default_rng(19).standard_normal(8 * K.CHUNK) * 0.05).astype(np.float32)
    q = registry.create("quantizer", "int16")
    quantized = q.quantize(x, ErrorBound("rel", 1e-3))
    assert "chunk_step" in quantized.side
    huge = dataclasses.replace(quantized, meta={**quantized.meta, "chunk": 2**70})
    with pytest.raises(FrameError, match="meta.chunk"):  # was an OverflowError from numba
        q.dequantize(huge)
    quantized.side["chunk_step"] = quantized.side["chunk_step"][:-1]
    with pytest.raises(FrameError, match="chunk_step"):
        q.dequantize(quantized)
    del quantized.side["chunk_step"]
    with pytest.raises(FrameError, match="side arrays"):
        q.dequantize(quantized)


def sampled_cases(lines: int) -> dict[str, np.ndarray]:
    """Fields of 4 chunks (and 45 values) aimed at the range a one-pass field starts from, that of ``lines``
    cache lines spread over it (``K.sample_range``): extremes only between the sampled lines, the range
    completed only at a sampled line, ±inf or NaN only there, a ramp and a drifting uniform field (ranges the
    chunks before a chunk never hold), and the spikes and growing extremes of ``one_pass_cases``."""
    cases = {k: v for k, v in one_pass_cases().items() if k in ("spike", "growing", "alternating", "nan_first_chunk")}
    noise = one_pass_cases()["noise"]
    n = noise.size
    starts = np.arange(lines) * (n - 16) // (lines - 1)
    starts -= starts % 16
    sampled = np.zeros(n, bool)
    for s in starts:
        sampled[s:s + 16] = True
    between = noise.copy()
    late = np.flatnonzero(~sampled[2 * K.CHUNK:]) + 2 * K.CHUNK
    between[late[[5, -5]]] = [3.0, -2.0]  # the range, set where no line is read and no chunk before holds it
    at_lines = noise.copy()
    at_lines[[100, 200, starts[6] + 7]] = [2.9, -2.0, 3.0]  # the range's top only at a line in the last chunk: known
    # from the start with the sample, without it the chunks before would keep a step 1/25 bit tighter
    inf_at_line, nan_at_lines = noise.copy(), noise.copy()
    inf_at_line[starts[5] + 3] = -np.inf
    nan_at_lines[sampled] = np.nan
    rng = np.random.default_rng(23)
    drift = (rng.random(n) * 0.1 + np.linspace(-1, 1, n)).astype(np.float32)
    return {**cases, "extremes_between_lines": between, "extremes_at_lines": at_lines, "inf_at_a_line": inf_at_line,
            "nan_at_every_line": nan_at_lines, "ramp": np.linspace(-1, 1, n, dtype=np.float32), "uniform_drift": drift}


def test_finite_range_is_the_order_key_range():
    """``K.finite_range`` (one min/max pass that counts NaN, and the order-key pass only where ±inf, or
    NaN with a zero at an end, needs it) gives what it gave before it counted NaN, bit for bit, -0.0
    included: a field holding NaN or ±inf the order-key pass's result, a clean one the plain pass's
    (which keeps the zero that came first), and the count of finite values. Fields clean, with NaN,
    with ±inf, with zeros of both signs at an end (with and without NaN), all NaN, denormals, below and
    above one chunk, float32 and float64."""
    rng = np.random.default_rng(21)

    def keyed(x):
        itype, exp_mask, shift, mag = K._KEYS[x.dtype.itemsize]
        info = np.iinfo(itype)
        lo, hi, n = K.key_range(x.view(itype), itype(exp_mask), itype(shift), itype(mag), itype(info.max),
                                itype(info.min))
        return (0.0, 0.0, 0) if n == 0 else (*K._key_values(lo, hi, x.dtype), int(n))

    for dtype in (np.float32, np.float64):
        for n in (50, 1000, 3 * K.CHUNK + 7):
            base = rng.standard_normal(n).astype(dtype)
            cases = {"clean": base.copy(), "nan": base.copy(), "inf": base.copy(), "zeros_nan": np.abs(base),
                     "neg_zero_nan": -np.abs(base), "zeros_clean": np.abs(base), "all_nan": np.full(n, np.nan, dtype),
                     "denormal_nan": (rng.integers(1, 50, n) * np.finfo(dtype).smallest_subnormal).astype(dtype)}
            cases["nan"][rng.random(n) < 0.2] = np.nan
            cases["inf"][[3, n - 2]] = [np.inf, -np.inf]
            cases["inf"][5] = np.nan
            for name in ("zeros_nan", "neg_zero_nan", "zeros_clean"):
                cases[name][[n - 1, 1]] = [0.0, -0.0]  # a zero of each sign at the low (or high) end
            for name in ("zeros_nan", "neg_zero_nan", "denormal_nan"):
                cases[name][rng.random(n) < 0.3] = np.nan
            for name, x in cases.items():
                finite = np.isfinite(x)
                plain = K._plain_range(x) if n <= K.CHUNK else K.plain_range(x)  # as finite_range runs it
                got = K.finite_range(x)
                want = (float(plain[0]), float(plain[1]), n) if finite.all() else keyed(x)
                assert got[2] == want[2] == int(np.isfinite(x).sum()), (dtype, n, name)
                assert np.array(got[:2]).view(np.uint64).tolist() == np.array(want[:2]).view(np.uint64).tolist(), \
                    (dtype, n, name, got, want)


def test_sample_range_reads_its_lines():
    """``K.sample_range``: the min and max of the non-NaN values in the lines it promises to read, whether
    one is ±inf, the whole field where the lines cover it."""
    x = (np.random.default_rng(29).standard_normal(100_003)).astype(np.float32)
    x[::5] = np.nan
    for lines in (2, 7, 300, 7000):
        starts = np.arange(lines) * (x.size - 16) // (lines - 1)
        read = np.concatenate([x[s - s % 16:s - s % 16 + 16] for s in starts]) if lines * 16 < x.size else x
        assert K.sample_range(x, lines, 16) == (np.nanmin(read), np.nanmax(read), True), lines
    x[(1000 * (x.size - 16) // 6999) // 16 * 16 + 9] = np.inf
    assert not K.sample_range(x, 7000, 16)[2] and K.sample_range(x, 7, 16)[2]


@pytest.mark.parametrize("pid", UNIFORM)
@pytest.mark.parametrize("bound", ["rel:1e-2", "rel:1e-4"])
def test_sampled_one_pass_holds_the_bound(pid, bound, one_pass_everywhere, monkeypatch):
    """The one-pass path starting from a sampled range (``SAMPLE_LINES`` lines, here 8 on a 4-chunk field)
    keeps the promise on every element of ``sampled_cases`` with the field's own ``rel`` bound (the sample
    holds only the field's values, so its range is never wider than the field's; values past it are
    found by the exact check), each chunk's codes are the per-element kernels' for its centre and step;
    a field whose range lies in the sample gets the two-pass frame exactly, as does one with ±inf there."""
    from compframe.plugins.quantizers import uniform as U

    monkeypatch.setattr(U, "SAMPLE_MIN", 0)
    monkeypatch.setattr(U, "SAMPLE_LINES", 8)
    b = ErrorBound.parse(bound)
    q = registry.create("quantizer", pid)
    two = registry.create_from_config("quantizer", {"id": pid, "passes": 2})
    for name, x in sampled_cases(8).items():
        quantized = one_pass_checked(pid, q, name, x, b)
        plain = two.quantize(x, b)
        assert quantized.meta["outliers"] <= plain.meta["outliers"] + 8, name
        if name in ("extremes_at_lines", "inf_at_a_line"):
            assert np.array_equal(quantized.codes["codes"], plain.codes["codes"]) and quantized.meta == plain.meta \
                and "chunk_step" not in quantized.side, name
