"""The quantizer zoo: number formats, block formats, binarization, VQ, low rank and pruning.

Generic checks run over every bit-budget quantizer in the registry (promise kept, configs through
JSON, frames decoded from bytes alone, adversarial inputs handled or refused clearly); the formats
are checked against references: torch's own casts bit for bit, numpy's float16, OCP MX worked
examples, the mase formulas (DeepWok/mase, src/chop/nn/quantizers/) and the LPLR paper's phantom experiment
(Saha, Srivastava & Pilanci, NeurIPS 2023, pilancilab/matrix-compressor).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import compframe as cf
from compframe import fuzz, registry
from compframe.base import ErrorBound, Quantized
from compframe.pipeline import measure, promise_ok
from compframe.errors import FrameError
from compframe.registry import ConfigError

BUDGET = [pid for pid in registry.available("quantizer")
          if registry.plugin_class("quantizer", pid).guarantee == "bit_budget"]
MATRIX_ONLY = {"lplr", "lsvd", "dsvd"}
# small settings so the generic checks stay fast
SMALL = {"vq": {"iterations": 10, "batch_size": 256}}


def make(pid: str, **params):
    return registry.create("quantizer", pid, **{**SMALL.get(pid, {}), **params})


def roundtrip(q, x, bound=None) -> tuple[Quantized, np.ndarray]:
    quantized = q.quantize(x, bound)
    x_hat = q.dequantize(quantized)
    assert x_hat.shape == x.shape and x_hat.dtype == x.dtype
    return quantized, x_hat


def assert_promise(q, quantized, x, x_hat):
    stats = {"nonfinite_ok": True, "max_abs_error": 0.0}
    assert promise_ok(q, quantized, x, x_hat, stats), (q, quantized.meta)
    assert json.loads(json.dumps(quantized.meta, allow_nan=False)) is not None


def test_zoo_is_registered():
    expected = {"fixed", "bf16", "fp16", "fp8_e4m3", "fp8_e5m2", "minifloat", "log", "blockfp", "block_minifloat",
                "block_log", "mxint8", "mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4", "binary",
                "binary_residual", "vq", "lplr", "lsvd", "dsvd", "nq", "prune"}
    assert expected <= set(BUDGET)


# --- generic: every bit-budget quantizer ---------------------------------------------------------

def adversarial(dtype) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    info = np.finfo(dtype)
    with np.errstate(over="ignore"):
        huge = (rng.standard_normal((16, 16)) * (info.max / 8)).astype(dtype)
    return {
        "normal_2d": rng.standard_normal((37, 45)).astype(dtype),
        "odd_1d": rng.standard_normal(101).astype(dtype),
        "three_d": rng.standard_normal((3, 5, 33)).astype(dtype),
        "zeros": np.zeros((8, 8), dtype),
        "constant": np.full((6, 10), -2.5, dtype),
        "single": np.array([[0.75]], dtype),
        "huge": huge,
        "tiny": (rng.standard_normal((16, 16)) * info.tiny * 4).astype(dtype),
        "huge_range": np.array([[info.max, -info.max, 1.0, info.tiny, 0.0, -1e-3]], dtype),
        "nan_inf": np.array([[np.nan, np.inf, -np.inf, 1.0, -2.0, 0.5]], dtype),
        "empty": np.zeros((0, 4), dtype),
    }


CASES = list(adversarial(np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("pid", BUDGET)
def test_promise_or_clear_error(pid, case, dtype):
    """Every input either quantizes within the declared budget or is refused with the quantizer named."""
    x = adversarial(dtype)[case]
    q = make(pid)
    try:
        quantized, x_hat = roundtrip(q, x, ErrorBound("rel", 1e-2))
    except ValueError as e:
        assert f"'{pid}'" in str(e), f"unclear error from {pid}: {e}"
        return
    assert_promise(q, quantized, x, x_hat)
    if not np.isnan(x).any():
        assert not np.isnan(x_hat).any(), f"{pid} made NaN from {case}"
    finite = np.isfinite(x)
    if case in ("normal_2d", "odd_1d", "three_d") and finite.all():
        rel = np.linalg.norm(x_hat.astype(np.float64) - x) / np.linalg.norm(x.astype(np.float64))
        assert rel < 1.5, f"{pid}: relative error {rel}"
    if case == "zeros":
        assert np.all(x_hat == 0) or pid in MATRIX_ONLY | {"nq"}


@pytest.mark.parametrize("pid", BUDGET)
def test_config_json_roundtrip(pid):
    q = make(pid)
    again = registry.create_from_config("quantizer", json.loads(json.dumps(q.get_config())))
    assert again == q and repr(again) == repr(q)


@pytest.mark.parametrize("pid", BUDGET)
def test_frame_decodes_from_bytes(pid):
    """The container holds everything dequantization needs (config, meta as JSON, side arrays)."""
    x = np.random.default_rng(5).standard_normal((40, 70)).astype(np.float32)
    q = make(pid)
    bound = "rel:1e-2" if q.guarantee == "error_bound" else None
    frame = cf.compress(x, quantizer=q, encoder="zstd", bound=bound)
    assert np.array_equal(cf.decompress(frame), q.dequantize(q.quantize(x, None if bound is None else ErrorBound.parse(bound))))


@pytest.mark.parametrize("pid, param, value", [
    ("fixed", "width", 1), ("fixed", "width", 33), ("minifloat", "exponent_width", 7), ("minifloat", "form", "x"),
    ("fp8_e4m3", "overflow", "wrap"), ("blockfp", "block_size", 0), ("mxfp4", "block_size", -3),
    ("block_minifloat", "scale_width", 1), ("log", "width", 1), ("binary_residual", "levels", 1),
    ("vq", "bits", 0), ("vq", "block", [2, 2, 2]), ("lplr", "b1", 0), ("lplr", "cr", 0.0), ("nq", "b0", 17),
    ("prune", "fraction", 1.5), ("prune", "then", "nope"), ("prune", "then_params", {"width": 99}),
])
def test_bad_parameters_fail_before_data(pid, param, value):
    params = {param: value}
    if pid == "prune" and param == "then_params":
        params["then"] = "fixed"
    with pytest.raises(ConfigError) as info:
        registry.create("quantizer", pid, **params)
    assert param in str(info.value)


# --- scalar formats against torch and numpy ------------------------------------------------------

def _float32_probe() -> np.ndarray:
    rng = np.random.default_rng(0)
    normal = rng.standard_normal(100_000) * 10.0 ** rng.integers(-12, 8, 100_000)
    edges = [0.0, -0.0, np.inf, -np.inf, 448, 464, 465, 480, 57344, 61440, 61439, 65504, 65520, 65519.99,
             3.4e38, 1e-45, 2.0 ** -9, 2.0 ** -10, 2.0 ** -17, 2.0 ** -16 * 1.5, 2.0 ** -133, 2.0 ** -134]
    patterns = np.frombuffer(rng.bytes(4 * 100_000), dtype=np.uint32).view(np.float32)
    with np.errstate(over="ignore"):
        return np.concatenate([normal.astype(np.float32), np.array(edges, np.float32), patterns, -patterns])


TORCH_CASTS = [("bf16", torch.bfloat16, np.uint16), ("fp16", torch.float16, np.uint16),
               ("fp8_e4m3", torch.float8_e4m3fn, np.uint8), ("fp8_e5m2", torch.float8_e5m2, np.uint8)]


def _torch_bits(x: np.ndarray, tdtype, udtype) -> np.ndarray:
    view = torch.int16 if udtype == np.uint16 else torch.uint8
    return torch.from_numpy(x).to(tdtype).view(view).numpy().view(udtype)


@pytest.mark.parametrize("pid, tdtype, udtype", TORCH_CASTS)
def test_bit_exact_with_torch_cast(pid, tdtype, udtype):
    """Default overflow policies reproduce torch's casts bit for bit on float32 (NaN: any NaN code)."""
    x = _float32_probe()
    q = make(pid)
    codes = q.quantize(x, None).codes["codes"]
    ref = _torch_bits(x, tdtype, udtype)
    nan = np.isnan(x)
    assert np.array_equal(codes[~nan], ref[~nan])
    assert np.isnan(q.dequantize(Quantized({"codes": codes[nan]}, shape=(int(nan.sum()),)))).all()
    back = torch.from_numpy(ref.view(np.int16 if udtype == np.uint16 else np.uint8)).view(tdtype).float().numpy()
    assert np.array_equal(q.dequantize(Quantized({"codes": ref}, shape=ref.shape)), back, equal_nan=True)


def test_overflow_policies_differ_from_torch_only_past_the_range():
    x = _float32_probe()
    finite = np.isfinite(x)
    e4m3 = make("fp8_e4m3", overflow="nonfinite")
    y = e4m3.dequantize(e4m3.quantize(x, None))
    torch_y = torch.from_numpy(x).to(torch.float8_e4m3fn).float().numpy()
    differs = ~((y == torch_y) | (np.isnan(y) & np.isnan(torch_y)))
    # OFP8 non-saturating E4M3: past 464 (the midpoint to the next, unrepresentable, value 480) is NaN
    assert np.all(np.abs(x[differs]) > 464) and np.isnan(y[differs]).all()
    assert np.all(torch_y[differs & finite] == np.sign(x[differs & finite]) * 448)
    e5m2 = make("fp8_e5m2", overflow="saturate")
    y = e5m2.dequantize(e5m2.quantize(x, None))
    torch_y = torch.from_numpy(x).to(torch.float8_e5m2).float().numpy()
    differs = ~((y == torch_y) | (np.isnan(y) & np.isnan(torch_y)))
    assert np.all(np.abs(x[differs & finite]) >= 61440) and np.all(np.abs(y[differs & finite]) == 57344)
    assert np.all(np.isinf(y[np.isinf(x)]))  # saturating still keeps infinities where the format has them


def test_float64_rounds_once_like_numpy():
    """float64 input rounds directly (numpy's float16 cast), not through float32 as torch does."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(200_000) * 10.0 ** rng.integers(-8, 5, 200_000)
    q = make("fp16")
    assert np.array_equal(q.dequantize(q.quantize(x, None)), x.astype(np.float16).astype(np.float64))
    # bfloat16 keeps 8 significant bits: round the float64 significand once, half to even
    mantissa, exponent = np.frexp(x)
    expected = np.ldexp(np.rint(np.ldexp(mantissa, 8)), exponent - 8)
    bf = make("bf16")
    assert np.array_equal(bf.dequantize(bf.quantize(x, None)), expected)
    assert not np.array_equal(expected, torch.from_numpy(x).to(torch.bfloat16).double().numpy())  # torch: twice


def test_minifloat_matches_presets():
    x = _float32_probe()
    x = x[np.isfinite(x)]
    pairs = [({"width": 8, "exponent_width": 4, "specials": "fn"}, "fp8_e4m3"),
             ({"width": 16, "exponent_width": 5, "specials": "ieee", "overflow": "nonfinite"}, "fp16"),
             ({"width": 16, "exponent_width": 8, "specials": "ieee", "overflow": "nonfinite"}, "bf16")]
    for params, preset in pairs:
        assert np.array_equal(make("minifloat", **params).quantize(x, None).codes["codes"],
                              make(preset).quantize(x, None).codes["codes"])


def _table(q) -> np.ndarray:
    """Every finite value of a scalar format, from its own dequantizer."""
    n = 2 ** q.number_format().bits
    codes = np.arange(n, dtype=q.number_format().dtype)
    values = q.dequantize(Quantized({"codes": codes}, shape=(n,), dtype="float64"))
    return np.unique(np.abs(values[np.isfinite(values)]))


@settings(max_examples=30, deadline=None)
@given(width=st.integers(3, 10), exponent_width=st.integers(1, 6), form=st.sampled_from(["ieee", "denorm"]),
       bias=st.one_of(st.none(), st.integers(-4, 20)), seed=st.integers(0, 2 ** 16))
def test_minifloat_rounds_to_nearest(width, exponent_width, form, bias, seed):
    """Within the range, the result is a nearest value of the format (mase's Minifloat* value sets)."""
    exponent_width = min(exponent_width, width - 2)
    q = make("minifloat", width=width, exponent_width=exponent_width, form=form, bias=bias)
    table = _table(q)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-table[-1], table[-1], 500) * rng.choice([1, 1e-2, 1e-4], 500)
    y = q.dequantize(q.quantize(x, None))
    nearest = np.abs(np.abs(x)[:, None] - table[None, :]).min(axis=1)
    assert np.allclose(np.abs(x - y), nearest, rtol=0, atol=0)


def test_minifloat_ieee_subnormals_and_denorm_values():
    e4m3 = make("minifloat", width=8, exponent_width=4, form="ieee")
    table = _table(e4m3)
    assert table[1] == 2.0 ** -9 and table[-1] == 480  # subnormal step 2^(1-b-m), no specials: 1.875 * 2^8
    denorm = make("minifloat", width=8, exponent_width=4, form="denorm")
    # mase MinifloatDenorm: (M / 2^m) 2^E, E in [-b, 2^e - 1 - b], no hidden bit
    expected = np.unique([m / 8 * 2.0 ** e for m in range(8) for e in range(-7, 9)])
    assert np.array_equal(_table(denorm), expected)


def test_fixed_matches_mase_formula():
    rng = np.random.default_rng(2)
    x = rng.standard_normal(10_000) * 8
    for width, frac in ((8, 4), (4, 1), (16, 10), (32, 20), (2, 0)):
        q = make("fixed", width=width, frac_width=frac)
        quantized, y = roundtrip(q, x)
        ref = np.clip(np.rint(x * 2.0 ** frac), -(2 ** (width - 1)), 2 ** (width - 1) - 1) / 2.0 ** frac
        assert np.array_equal(y, ref)
        assert quantized.codes["codes"].dtype.itemsize * 8 >= width
    assert np.array_equal(make("fixed", width=4, frac_width=0).dequantize(
        make("fixed", width=4, frac_width=0).quantize(np.array([2.5, 3.5, -0.5, 99.0, -np.inf]), None)),
        np.array([2.0, 4.0, -0.0, 7.0, -8.0]))
    wrap = make("fixed", width=4, frac_width=0, saturating=False)
    assert np.array_equal(wrap.dequantize(wrap.quantize(np.array([7.0, 8.0, 9.0, -9.0]), None)), [7.0, -8.0, -7.0, 7.0])


def test_log_format():
    q = make("log", width=5)  # 4-bit exponent field, bias 7: 2^-6 .. 2^8 and zero
    x = np.array([0.0, 1.0, 1.41, 1.42, -3.0, 1e9, 2.0 ** -6, 2.0 ** -8, -0.0])
    y = q.dequantize(q.quantize(x, None))
    assert np.array_equal(y, [0.0, 1.0, 1.0, 2.0, -4.0, 256.0, 2.0 ** -6, 0.0, -0.0])


# --- block formats --------------------------------------------------------------------------------

def _mx(pid, x, **params):
    q = make(pid, **params)
    quantized, y = roundtrip(q, np.asarray(x, dtype=np.float32))
    return quantized, y


def test_mx_worked_examples():
    """OCP MX v1.0 §6.3: X = 2^(floor(log2 amax) - emax_elem); elements rounded to nearest even, saturated."""
    # MXFP4 (E2M1, emax 2): amax 6 -> X = 1, every E2M1 value is exact; 7 saturates to 6
    grid = [0, 0.5, 1, 1.5, 2, 3, 4, 6]
    quantized, y = _mx("mxfp4", grid * 4)
    assert np.array_equal(y, grid * 4) and quantized.codes["scales"].tolist() == [[127]]
    assert np.array_equal(quantized.codes["elements"][:8], [0, 1, 2, 3, 4, 5, 6, 7])
    _, y = _mx("mxfp4", [7.0, 1.25, 1.75, 2.5, -5.0] + [0.0] * 27)
    assert np.array_equal(y[:5], [6.0, 1.0, 2.0, 2.0, -4.0])  # ties to even: 1.25->1, 1.75->2, 2.5->2, 5->4
    # amax 8 -> X = 2^(3-2) = 2: scale code 128, 0.5 underflows to the nearest multiple of 1
    quantized, y = _mx("mxfp4", [8.0, 0.5, 0.75] + [0.0] * 29)
    assert quantized.codes["scales"].tolist() == [[128]] and np.array_equal(y[:3], [8.0, 0.0, 1.0])
    # MXINT8: int8 x 2^-6 with X = 2^floor(log2 amax): amax 1 -> step 2^-6; 1.99 saturates at 127/64
    quantized, y = _mx("mxint8", [1.0, 1.99, -0.5, 2.0 ** -7, 3 * 2.0 ** -7] + [0.0] * 27)
    assert quantized.codes["scales"].tolist() == [[127]]
    assert quantized.codes["elements"][:5].tolist() == [64, 127, -32, 0, 2]
    # MXFP8 E4M3: amax 448 -> X = 2^(8-8) = 1; MXFP6 E3M2: amax 28 -> X = 1; E2M3: amax 7.5 -> X = 1
    for pid, top in (("mxfp8_e4m3", 448.0), ("mxfp8_e5m2", 57344.0), ("mxfp6_e3m2", 28.0), ("mxfp6_e2m3", 7.5)):
        quantized, y = _mx(pid, [top, -top / 2] + [0.0] * 30)
        assert quantized.codes["scales"].tolist() == [[127]] and y[:2].tolist() == [top, -top / 2], pid
    # 8.25 bits per value on full blocks, as the spec's storage cost
    quantized, _ = _mx("mxint8", np.ones((4, 64)))
    assert quantized.meta["bits_per_value"] == 8.25 and quantized.meta["code_bits"] == {"elements": 8, "scales": 8}


# spacing of each MX element format's top binade: 2^(emax - mantissa bits), INT8: 2^-6
MX_TOP_STEP = {"mxint8": 2.0 ** -6, "mxfp8_e4m3": 2.0 ** 5, "mxfp8_e5m2": 2.0 ** 13, "mxfp6_e2m3": 2.0 ** -1,
               "mxfp6_e3m2": 2.0 ** 2, "mxfp4": 2.0 ** 1}


@settings(max_examples=25, deadline=None)
@given(pid=st.sampled_from(sorted(MX_TOP_STEP)), seed=st.integers(0, 2 ** 16), rows=st.integers(1, 4),
       length=st.integers(1, 100), spread=st.integers(0, 30))
def test_mx_error_within_two_top_steps(pid, seed, rows, length, spread):
    """Every element is within two top-binade steps of its block's scale X (one for rounding anywhere in the
    block, one more where the block maximum saturates), whatever the magnitudes across blocks."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, length)) * 2.0 ** rng.integers(-spread, spread + 1, (rows, length))
    q = make(pid)
    quantized, y = roundtrip(q, x)
    scale = np.ldexp(1.0, quantized.codes["scales"].astype(np.int64) - 127)
    bound = 2 * np.repeat(scale, 32, axis=1)[:, :length] * MX_TOP_STEP[pid]
    assert np.all(np.abs(y - x) <= bound)


def test_mxfp8_elements_match_torch_saturating_cast():
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((64, 96)) * 10.0 ** rng.integers(-6, 6, (64, 1))).astype(np.float32)
    quantized, _ = _mx("mxfp8_e4m3", x)
    exp = quantized.codes["scales"].astype(np.int64) - 127
    scaled = np.ldexp(x.astype(np.float64), -np.repeat(exp, 32, axis=1)).astype(np.float32)
    ref = torch.from_numpy(scaled).to(torch.float8_e4m3fn).view(torch.uint8).numpy()
    assert np.array_equal(quantized.codes["elements"], ref)


def test_mx_padding_special_blocks_and_range():
    x = np.arange(1, 34, dtype=np.float32)  # 33 values: two blocks, the last padded
    quantized, y = _mx("mxfp8_e4m3", x)
    assert quantized.codes["elements"].shape == (33,) and quantized.codes["scales"].shape == (1, 2)
    assert quantized.meta["bits_per_value"] == pytest.approx((33 * 8 + 2 * 8) / 33)
    assert y[32] == 32  # 33 = 1.03125 * 2^5 needs more than E4M3's 3 mantissa bits
    x = np.zeros((3, 64), np.float32)
    x[0, 3], x[1, 40], x[2] = np.nan, np.inf, 1.0
    quantized, y = _mx("mxfp4", x)
    assert quantized.codes["scales"].tolist() == [[255, 0], [0, 255], [125, 125]]  # amax 1: X = 2^(0-2)
    assert np.isnan(y[0, :32]).all() and (y[0, 32:] == 0).all() and np.isnan(y[1, 32:]).all() and (y[2] == 1).all()
    big = make("mxint8")
    huge = np.array([1e300, -1e300, 1.0], np.float64)
    quantized, y = roundtrip(big, huge)
    assert quantized.codes["scales"].tolist() == [[254]] and y[0] == 127 * 2.0 ** (127 - 6)
    tiny = np.array([1e-300, 2e-300], np.float64)
    quantized, y = roundtrip(big, tiny)
    assert quantized.codes["scales"].tolist() == [[0]] and np.all(y == 0)


def test_blockfp_equals_mxint8_and_block_variants():
    x = np.random.default_rng(6).standard_normal((10, 100)).astype(np.float32)
    a = make("blockfp", width=8, exponent_width=8, block_size=32).quantize(x, None)
    b = make("mxint8").quantize(x, None)
    assert all(np.array_equal(a.codes[k], b.codes[k]) for k in b.codes)
    for pid, params in (("blockfp", {"width": 4}), ("block_minifloat", {}), ("block_minifloat", {"form": "denorm"}),
                        ("block_log", {}), ("block_log", {"width": 6})):
        q = make(pid, **params)
        quantized, y = roundtrip(q, x)
        rel = np.linalg.norm(y - x) / np.linalg.norm(x)
        assert rel < 0.4, (pid, params, rel)
        assert_promise(q, quantized, x, y)


# --- binary, vq --------------------------------------------------------------------------------------

def test_binary_and_residual():
    x = np.random.default_rng(7).standard_normal((50, 40))
    q, y = roundtrip(make("binary"), x)
    alpha = np.abs(x).mean()
    assert np.array_equal(y, np.where(x >= 0, alpha, -alpha)) and q.meta["code_bits"] == {"signs": 1}
    errors = []
    for levels in (2, 3, 4):
        quantized, y = roundtrip(make("binary_residual", levels=levels), x)
        errors.append(np.linalg.norm(y - x))
        assert quantized.codes["signs"].shape == (levels, 50, 40)
    assert np.linalg.norm(np.where(x >= 0, alpha, -alpha) - x) > errors[0] > errors[1] > errors[2]


def test_vq_tiles_codebook_and_seed():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((31, 47)).astype(np.float32)
    q = make("vq")
    quantized, y = roundtrip(q, x)
    assert quantized.codes["codes"].shape == (16, 24) and quantized.side["codebook"].shape == (16, 4)
    assert quantized.meta["bits_per_value"] == pytest.approx((16 * 24 * 4 + 16 * 4 * 32) / x.size)
    assert np.array_equal(make("vq").quantize(x, None).codes["codes"], quantized.codes["codes"])  # seeded
    tile = y[:2, :2].reshape(-1)  # each 2x2 tile is one codebook row
    assert any(np.array_equal(tile, row) for row in quantized.side["codebook"])
    flat = make("vq", bits=8, block=[2]).quantize(x.reshape(-1), None)
    assert flat.codes["codes"].shape == (x.size // 2 + 1,) and flat.side["codebook"].shape == (256, 2)
    assert np.linalg.norm(y - x) / np.linalg.norm(x) < 0.6
    clustered = np.repeat(rng.standard_normal((8, 1)), 16, axis=1).reshape(-1)  # 8 distinct 4-vectors
    assert np.allclose(make("vq", bits=3).dequantize(make("vq", bits=3).quantize(clustered, None)), clustered,
                       rtol=1e-12, atol=0)


# --- low rank ----------------------------------------------------------------------------------------

def test_lowrank_rank_budget_and_shapes():
    a = np.random.default_rng(9).standard_normal((300, 200))
    q = make("lplr", b1=8, b2=4, b0=1)
    quantized, _ = roundtrip(q, a)
    assert quantized.meta["rank"] == int(300 * 200 * 1 / (300 * 8 + 200 * 4))
    assert quantized.codes["Z"].shape == (300, quantized.meta["rank"]) and quantized.meta["bits_per_value"] <= 1.01
    assert make("dsvd", rank=7).quantize(a, None).meta["rank"] == 7
    assert make("lsvd", b1=8, b2=4, b0=1, cr=2.0).quantize(a, None).meta["rank"] == 2 * quantized.meta["rank"] + 1
    three_d = a.reshape(3, 100, 200)
    assert roundtrip(make("lplr"), three_d)[1].shape == (3, 100, 200)
    with pytest.raises(ValueError, match="matrix"):
        make("lplr").quantize(a[0], None)
    with pytest.raises(ConfigError, match="rank 0"):
        make("lplr", b0=1, cr=0.001).quantize(a, None)
    first = make("lplr", seed=3).quantize(a, None)
    assert np.array_equal(first.codes["Z"], make("lplr", seed=3).quantize(a, None).codes["Z"])
    assert not np.array_equal(first.codes["Z"], make("lplr", seed=4).quantize(a, None).codes["Z"])


# The LPLR options and the paper's phantom row: tests/test_lplr.py.


# --- prune --------------------------------------------------------------------------------------------

def test_prune_magnitude_then_error_bounded_int8():
    x = np.random.default_rng(10).standard_normal((64, 50)).astype(np.float32)
    q = make("prune", fraction=0.75, then="int8")
    quantized, y = roundtrip(q, x, ErrorBound("abs", 1e-2))
    kept = np.abs(x) > np.sort(np.abs(x).reshape(-1))[int(0.75 * x.size) - 1]
    assert np.array_equal(y != 0, kept) and quantized.meta["kept"] == kept.sum()
    assert np.abs(y[kept] - x[kept]).max() <= quantized.meta["then"]["abs_bound"]
    assert np.abs(x[~kept]).max() == quantized.meta["pruned_max"]
    assert {"mask", "then.codes"} <= set(quantized.codes) and quantized.codes["mask"].size == x.size // 8
    assert_promise(q, quantized, x, y)
    frame = cf.compress(x, quantizer={"id": "prune", "fraction": 0.75, "then": "int8"}, bound="abs:1e-2")
    assert np.array_equal(cf.decompress(frame), y)


@pytest.mark.parametrize("then", ["int8", "interp"])
def test_prune_checks_the_inner_bound_against_the_frames(then):
    """The survivors' quantizer gets the frame's bound on decoding, as it got it on encoding: a header
    whose inner ``abs_bound`` (and step) were doubled consistently is refused, not decoded 2x off."""
    x = np.random.default_rng(10).standard_normal((64, 50)).astype(np.float32)
    frame = cf.compress(x, quantizer={"id": "prune", "fraction": 0.75, "then": then}, bound="abs:1e-2")
    assert np.array_equal(cf.decompress(frame), roundtrip(make("prune", fraction=0.75, then=then), x,
                                                          ErrorBound("abs", 1e-2))[1])
    header, bodies = fuzz.split(frame)
    inner = header["meta"]["then"]
    inner.update({k: 2 * inner[k] for k in ("abs_bound", "step") if k in inner})
    with pytest.raises(FrameError, match=r"meta\.abs_bound = 0\.02"):
        cf.decompress(fuzz.join(header, bodies))


def test_prune_takes_over_an_error_bound():
    """With an error-bounded inner quantizer prune promises max(pruned magnitude, inner bound), checked by the
    pipeline as for any error-bounded quantizer; NaN and inf are never pruned and come back bit-identical."""
    x = np.random.default_rng(12).standard_normal(5000).astype(np.float32)
    x[[3, 70, 900]] = [np.nan, np.inf, -np.inf]
    q = make("prune", fraction=0.9, then="int8")
    assert q.guarantee == "error_bound" and make("prune", then="mxfp4").guarantee == "bit_budget"
    (result,) = measure(x, q, registry.create("encoder", "zstd"), ErrorBound("rel", 1e-3))
    assert result["bound_ok"] and result["abs_bound"] >= result["max_abs_error"]
    for mode in ("magnitude", "random"):
        quantized, y = roundtrip(make("prune", fraction=1.0, mode=mode, then="int8"), x, ErrorBound("rel", 1e-3))
        assert quantized.meta["kept"] == 3 and np.array_equal(y[[3, 70, 900]].view(np.uint32), x[[3, 70, 900]].view(np.uint32))


def test_prune_random_and_nested_params():
    x = np.random.default_rng(11).standard_normal(1000)
    q = make("prune", fraction=0.3, mode="random", seed=5, then="mxfp4", then_params={"block_size": 16})
    quantized, y = roundtrip(q, x)
    assert quantized.meta["kept"] == 700 and quantized.meta["code_bits"]["then.elements"] == 4
    assert np.array_equal(make("prune", fraction=0.3, mode="random", seed=5, then="mxfp4",
                               then_params={"block_size": 16}).quantize(x, None).codes["mask"], quantized.codes["mask"])
    for fraction in (0.0, 1.0):
        _, y = roundtrip(make("prune", fraction=fraction), x)
        assert np.count_nonzero(y) == (x.size if fraction == 0 else 0)
