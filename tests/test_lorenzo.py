"""The ``lorenzo`` quantizer: SZ's Lorenzo residuals of the reconstructed values, exactly; the bound on
every element of adversarial fields; frames that round-trip and damaged ones that are refused.

The generic bound checks of ``tests/test_quantizers_bound.py`` run on it too (it is error-bounded).
"""

from __future__ import annotations

import numpy as np
import pytest

import compframe as cf
from compframe import container, fuzz, registry
from compframe.base import ErrorBound, Quantized
from compframe.errors import ConfigError, FrameError
from compframe.kernels.lorenzo import CHUNK
from compframe.metrics import entropy_bits
from compframe.plugins.quantizers.lorenzo import lattice


def make(**params):
    return registry.create("quantizer", "lorenzo", **params)


def smooth(shape, seed=0) -> np.ndarray:
    """A smooth field: a sum of a few low-frequency waves over the grid (float32)."""
    rng = np.random.default_rng(seed)
    axes = np.meshgrid(*[np.linspace(0, 1, n) for n in shape], indexing="ij")
    x = np.zeros(shape)
    for _ in range(4):
        k = rng.uniform(1, 4, len(shape))
        x += rng.uniform(0.5, 1) * np.sin(2 * np.pi * sum(ki * a for ki, a in zip(k, axes)) + rng.uniform(0, 6))
    return x.astype(np.float32)


def check(q, x, bound) -> Quantized:
    """Quantize and dequantize ``x``: every finite element within the bound in float64, non-finite bit-identical."""
    quantized = q.quantize(x, ErrorBound.parse(bound))
    y = q.dequantize(quantized)
    assert y.shape == x.shape and y.dtype == x.dtype
    finite = np.isfinite(x)
    err = np.abs(x[finite].astype(np.float64) - y[finite].astype(np.float64))
    assert err.size == 0 or err.max() <= quantized.meta["abs_bound"], (err.max(), quantized.meta)
    bits = f"u{x.itemsize}"
    assert np.array_equal(x[~finite].view(bits), y[~finite].view(bits))
    return quantized


def reference_residuals(k: np.ndarray) -> np.ndarray:
    """SZ's Lorenzo prediction errors of the integer field ``k`` (1-, 2- or 3-D, zero outside), written out."""
    p = np.pad(k.astype(np.int64), [(1, 0)] * k.ndim)
    if k.ndim == 1:
        pred = p[:-1]
    elif k.ndim == 2:
        pred = p[1:, :-1] + p[:-1, 1:] - p[:-1, :-1]
    else:
        pred = (p[1:, 1:, :-1] + p[1:, :-1, 1:] + p[:-1, 1:, 1:] - p[1:, :-1, :-1] - p[:-1, 1:, :-1]
                - p[:-1, :-1, 1:] + p[:-1, :-1, :-1])
    return k - pred


@pytest.mark.parametrize("shape", [(5000,), (96, 80), (12, 20, 30)])
def test_codes_are_lorenzo_residuals_of_the_reconstruction(shape):
    """code = (x̂ - pred(x̂)) / (2 eb) with SZ's predictor over the reconstructed neighbours."""
    q = make()
    x = smooth(shape)
    quantized = check(q, x, "rel:1e-3")
    assert quantized.meta["outliers"] == 0 and quantized.meta["wide"] == 0
    y = q.dequantize(quantized).astype(np.float64)
    k = (y - quantized.meta["centre"]) / quantized.meta["step"]
    assert np.abs(k - np.rint(k)).max() < 1e-3  # every reconstructed value is a grid point
    assert np.array_equal(quantized.codes["codes"], reference_residuals(np.rint(k).astype(np.int64)))


@pytest.mark.parametrize("dims", ["auto", 1, 2, 3])
def test_dims_choose_the_predictor(dims):
    q = make(dims=dims)
    x = smooth((6, 40, 50))
    quantized = check(q, x, "rel:1e-3")
    y = q.dequantize(quantized).astype(np.float64)
    k = np.rint((y - quantized.meta["centre"]) / quantized.meta["step"]).astype(np.int64)
    d = 3 if dims == "auto" else dims
    view = {1: (-1,), 2: (-1, 50), 3: (6, 40, 50)}[d]
    assert np.array_equal(quantized.codes["codes"].reshape(view), reference_residuals(k.reshape(view)))


def test_lattice_views():
    assert lattice((7,), "auto") == (1, 1, 7)
    assert lattice((4, 5), "auto") == (1, 4, 5)
    assert lattice((2, 3, 4, 5), "auto") == (6, 4, 5)
    assert lattice((4, 5), 3) == (1, 4, 5)
    assert lattice((4, 5), 1) == (1, 1, 20)
    assert lattice((), "auto") == (1, 1, 1)
    assert lattice((0, 4), "auto") == (0, 0, 0)


def test_smooth_fields_give_low_entropy_codes():
    """The point of prediction: on a smooth field the residuals carry far less information than the
    grid values int16 codes hold."""
    x = smooth((256, 256))
    bound = ErrorBound("rel", 1e-4)
    lor = make().quantize(x, bound).codes["codes"]
    raw = registry.create("quantizer", "int16").quantize(x, bound).codes["codes"]
    assert entropy_bits(lor) < 0.5 * entropy_bits(raw)


def adversarial(dtype) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    info = np.finfo(dtype)
    with np.errstate(over="ignore"):
        alternating = np.where(np.indices((20, 30)).sum(0) % 2 == 0, info.max / 2, -info.max / 2).astype(dtype)
    steps = np.repeat(np.array([0.0, 1e3, -1e3, 5.0, 5.0 + 1e-3]), 400).astype(dtype).reshape(20, 100)
    holes = smooth((30, 40)).astype(dtype)
    holes[3:9, 5:20] = np.nan
    holes[20, :] = np.inf
    holes[25, 7] = -np.inf
    # with abs 0.25: values on grid points and half-way between two
    at_eb = np.array([[0.0, 0.5, 1.0], [0.25, 0.75, 0.125]], dtype)
    return {
        "alternating_huge": alternating,
        "steps": steps,
        "nan_inf_regions": holes,
        "at_eb": at_eb,
        "denormals": (rng.integers(-50, 50, (16, 16)) * info.smallest_subnormal).astype(dtype),
        "single": np.array([[[2.5]]], dtype),
        "empty_3d": np.zeros((0, 3, 4), dtype),
        "constant": np.full((7, 9, 11), -3.25, dtype),
        "non_contiguous": smooth((40, 60)).astype(dtype)[::2, ::-3],
        "fortran": np.asfortranarray(smooth((33, 17)).astype(dtype)),
        "four_d": smooth((3, 4, 10, 12)).astype(dtype),
        "long_row": np.cumsum(rng.standard_normal(3 * CHUNK + 17)).astype(dtype),
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("code_dtype", ["int8", "int16"])
@pytest.mark.parametrize("bound", ["rel:1e-2", "rel:1e-5", "abs:0.25", "abs:1e-40", "abs:1e30"])
def test_bound_on_adversarial_fields(dtype, code_dtype, bound):
    q = make(code_dtype=code_dtype)
    for name, x in adversarial(dtype).items():
        try:
            check(q, x, bound)
        except AssertionError as e:
            raise AssertionError(f"case '{name}': {e}") from None


def test_wide_residuals_and_segments():
    """Residuals past the code type (int8 at a fine bound) and past int32 (3-D checkerboard of ±5e8
    grid steps: residuals of ±4e9, kept modulo 2^32) still decode exactly, across row segments."""
    q = make(code_dtype="int8")
    x = np.cumsum(np.random.default_rng(2).standard_normal(2 * CHUNK + 5)).astype(np.float32)
    quantized = check(q, x, "rel:1e-5")
    assert quantized.meta["wide"] > 100
    board = np.where(np.indices((4, 5, 6)).sum(0) % 2 == 0, 1e6, -1e6)
    quantized = check(make(), board, "abs:1e-3")
    assert np.abs(quantized.side["wide_codes"].astype(np.int64)).max() > 2**30
    assert quantized.meta["outliers"] == 0


def test_outliers_are_the_values_off_the_grid():
    x = smooth((50, 60))
    x[10, 10], x[20, 30], x[40, 1] = np.nan, np.inf, 1e30
    quantized = check(make(), x, "abs:1e-3")
    assert sorted(quantized.side["outlier_index"]) == [10 * 60 + 10, 20 * 60 + 30, 40 * 60 + 1]


@pytest.mark.parametrize("encoder", ["zstd", "gpulz", "ans", "huffman", "none"])
def test_frames_round_trip(encoder):
    x = smooth((64, 48, 8))
    x[1, 2, 3] = np.nan
    q = make(code_dtype="int8")
    frame = cf.compress(x, quantizer=q, encoder=encoder, bound="rel:1e-4")
    expected = q.dequantize(q.quantize(x, ErrorBound("rel", 1e-4)))
    assert np.array_equal(cf.decompress(frame).view(np.uint32), expected.view(np.uint32))


def test_damaged_side_data_is_refused():
    q = make(code_dtype="int8")
    x = np.cumsum(np.random.default_rng(4).standard_normal(3000)).astype(np.float32)
    x[5] = np.nan
    good = q.quantize(x, ErrorBound("rel", 1e-4))
    assert good.meta["wide"] >= 2 and good.meta["outliers"] == 1

    def edited(**side):
        return Quantized(codes=dict(good.codes), side={**good.side, **side}, meta=good.meta, shape=good.shape,
                         dtype=good.dtype, bound=good.bound)

    wide = good.side["wide_index"]
    cases = {
        "not strictly increasing": edited(wide_index=wide[::-1].copy()),
        "outside the field": edited(wide_index=np.append(wide[:-1], np.uint32(x.size))),
        "does not fit": edited(wide_codes=good.side["wide_codes"].astype(np.int64)),
        "outside the field ": edited(outlier_index=np.array([x.size + 3], np.uint32)),
    }
    for match, bad in cases.items():
        with pytest.raises(FrameError, match=match.strip()):
            q.dequantize(bad)
    missing = Quantized(codes=dict(good.codes), side={k: v for k, v in good.side.items() if k != "wide_codes"},
                        meta=good.meta, shape=good.shape, dtype=good.dtype, bound=good.bound)
    with pytest.raises(FrameError, match="side arrays"):
        q.code_layout(missing)
    with pytest.raises(FrameError, match="codes are"):
        q.dequantize(Quantized(codes={"codes": good.codes["codes"].astype(np.int16)}, side=good.side,
                               meta=good.meta, shape=good.shape, dtype=good.dtype, bound=good.bound))


def recrafted(frame: bytes, **meta) -> bytes:
    """``frame`` with its header's ``meta`` entries replaced and every CRC recomputed (a frame the
    container accepts: only the quantizer can see that the values do not fit together)."""
    header, bodies = fuzz.split(frame)
    header["meta"].update(meta)
    return fuzz.join(header, bodies)


def test_header_values_that_disagree_are_refused():
    """A bound, step or count in the header that disagrees with the frame's own bound or side data is
    refused naming the field, not decoded into another field."""
    x = smooth((40, 50))
    x[3, 4] = np.nan
    frame = cf.compress(x, quantizer="lorenzo", encoder="zstd", bound="rel:1e-3")
    meta = container.loads(frame).header["meta"]
    eb, step = meta["abs_bound"], meta["step"]
    assert np.array_equal(cf.decompress(recrafted(frame)).view(np.uint32), cf.decompress(frame).view(np.uint32))
    cases = {  # each edit keeps the others consistent: only the named field is wrong
        "meta.abs_bound": {"abs_bound": 2 * eb, "step": 4 * eb},
        "meta.value_range": {"value_range": -1.0},
        "meta.step": {"step": 2 * step},
        "meta.outliers": {"outliers": 0},
        "meta.wide": {"wide": 3},
    }
    for field, edit in cases.items():
        with pytest.raises(FrameError, match=field.replace(".", r"\.")):
            cf.decompress(recrafted(frame, **edit))
    header, bodies = fuzz.split(frame)
    header["bound"] = {"mode": "rel", "value": 2e-3}
    with pytest.raises(FrameError, match=r"meta\.abs_bound .* rel:0\.002"):
        cf.decompress(fuzz.join(header, bodies))
    header["bound"] = None
    with pytest.raises(FrameError, match=r"frame header: bound is null, but meta\.abs_bound"):
        cf.decompress(fuzz.join(header, bodies))


@pytest.mark.parametrize("param, value", [("dims", 4), ("dims", 0), ("dims", "2"), ("code_dtype", "int32")])
def test_bad_parameters(param, value):
    with pytest.raises(ConfigError) as info:
        make(**{param: value})
    assert param in str(info.value)


def test_missing_bound_is_an_error():
    with pytest.raises(ValueError, match="'lorenzo' is error-bounded"):
        make().quantize(np.ones(3, np.float32), None)


@pytest.mark.slow
def test_fuzzed_lorenzo_frames_raise_only_frame_error(tmp_path):
    """Mutants of lorenzo frames (int8 codes with outliers and wide residuals, 1-D/2-D/3-D, several
    encoders) decoded by guarded workers whose kernels check every index: no crash, no hang, no
    access out of bounds, no exception but FrameError."""
    x2 = fuzz.sample_field()
    x1 = np.cumsum(np.random.default_rng(1).standard_normal(300)).astype(np.float32)
    x1[17] = np.nan
    x3 = smooth((4, 6, 10))
    x3[1, 2, 3] = np.inf
    frames = {}
    for name, x in (("1d", x1), ("2d", x2), ("3d", x3)):
        for encoder in ("none", "zstd", {"id": "gpulz", "chunk": 64}, {"id": "ans", "chunk": 64}):
            frame = cf.compress(x, quantizer={"id": "lorenzo", "code_dtype": "int8"}, encoder=encoder, bound="rel:1e-4")
            frames[f"{name}+{encoder if isinstance(encoder, str) else encoder['id']}"] = frame
    metas = [container.loads(f).header["meta"] for f in frames.values()]
    assert min(m["wide"] for m in metas) > 0 and min(m["outliers"] for m in metas) > 0
    cases = fuzz.mutants(frames, 1500, seed=13)
    report = fuzz.run(cases, workers=2, timeout=120, warmup=list(frames.values()), boundscheck=str(tmp_path))
    bad = [(b["frame"], b["ops"], b["outcome"], b["message"]) for b in report.bad]
    assert report.total == len(cases) and not bad, bad[:5]
    assert report.counts["frame_error"] > 0.5 * len(cases)
