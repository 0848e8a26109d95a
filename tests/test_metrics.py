"""Metrics against hand calculations and the formulas they cite."""

from __future__ import annotations

import math

import numpy as np
import pytest

from compframe import metrics, pipeline, registry
from compframe.base import ErrorBound


def test_error_stats_by_hand():
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    y = np.array([0.0, 1.5, 2.0, 2.5, 4.0])
    s = metrics.error_stats(x, y)
    assert s["max_abs_error"] == 0.5
    assert s["value_range"] == 4.0
    assert s["max_rel_error"] == 0.125
    assert s["rmse"] == pytest.approx(math.sqrt(0.5 / 5))
    assert s["nrmse"] == pytest.approx(math.sqrt(0.1) / 4)
    assert s["psnr"] == pytest.approx(-20 * math.log10(math.sqrt(0.1) / 4))
    assert s["pearson"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert s["rel_l2_error"] == pytest.approx(np.linalg.norm(y - x) / np.linalg.norm(x))


def test_error_stats_skip_and_compare_nonfinite():
    x = np.array([np.nan, 1.0, np.inf, 3.0], np.float32)
    assert metrics.error_stats(x, x.copy())["nonfinite_ok"]
    y = x.copy()
    y[2] = -np.inf
    s = metrics.error_stats(x, y)
    assert not s["nonfinite_ok"] and s["max_abs_error"] == 0.0


def test_entropy():
    assert metrics.entropy_bits(np.zeros(100, np.int8)) == 0.0
    assert metrics.entropy_bits(np.arange(256, dtype=np.uint8)) == pytest.approx(8.0)
    c = np.array([0, 0, 1, 2], np.int16)
    assert metrics.entropy_bits(c) == pytest.approx(1.5)
    assert metrics.entropy_bits(np.array([-5, 70000], np.int32)) == pytest.approx(1.0)


def test_speedup_formula():
    """speedup = 1 / (1/CR + B (1/Tc + 1/Td)), Tc, Td including (de)quantization (dlrm_comp)."""
    m = {"quantize_gbps": 10.0, "encode_gbps": 10.0, "decode_gbps": 20.0, "dequantize_gbps": 20.0}
    s = metrics.speedups(4.0, m, [5.0, 1.0])
    tc, td = 5.0, 10.0
    assert s["speedup@5GBps"] == pytest.approx(1 / (1 / 4 + 5 * (1 / tc + 1 / td)))
    assert s["speedup@1GBps"] == pytest.approx(1 / (1 / 4 + 1 * (1 / tc + 1 / td)))


def _row(n_values, frame_bytes, seconds, **kw):
    row = {"n_values": n_values, "input_bytes": 4 * n_values, "frame_bytes": frame_bytes,
           "code_stream_bytes": frame_bytes - 10, "max_abs_error": 0.1, "max_rel_error": 0.01, "rmse": 0.05,
           "nrmse": 0.005, "psnr": 40.0, "pearson": 0.99, "bound_ok": True, "abs_bound": 0.1, "entropy_bits": 2.0,
           **metrics.stage_rates(4 * n_values, dict(zip(metrics.STAGES, seconds)))}
    row.update(kw)
    return row


def test_totals_ratio_of_sums_and_bytes_over_time():
    rows = [
        _row(100, 100, (1e-6, 2e-6, 1e-6, 1e-6), max_abs_error=0.1, psnr=40.0, rmse=0.05),
        _row(100, 300, (3e-6, 2e-6, 1e-6, 1e-6), max_abs_error=0.2, psnr=30.0, rmse=0.1, abs_bound=0.4,
             entropy_bits=6.0),
    ]
    t = metrics.totals(rows, [5.0])
    assert t["compression_ratio"] == 2.0
    assert t["quantize_gbps"] == pytest.approx(800 / 4e-6 / 1e9)
    assert t["encode_gbps"] == pytest.approx(800 / 4e-6 / 1e9)
    assert t["max_abs_error"] == 0.2 and t["psnr"] == 30.0 and t["bound_ok"]
    assert t["max_error_over_bound"] == pytest.approx(1.0)
    assert t["rmse"] == pytest.approx(math.sqrt((0.05**2 + 0.1**2) / 2))
    assert t["entropy_efficiency"] == pytest.approx((4.0 * 200 / 8) / 380)
    m = {k: t[k] for k in metrics.THROUGHPUTS}
    assert t["speedup@5GBps"] == pytest.approx(metrics.speedups(2.0, m, [5.0])["speedup@5GBps"])


def test_totals_are_not_dragged_down_by_a_tiny_field():
    """A 64-value bias beside a million-value weight (issue 12): the small field's slow rate (fixed
    overheads) must count for its bytes only, not as one vote of two."""
    big = _row(1_000_000, 1_000_000, (4e-3, 4e-3, 4e-3, 4e-3))      # 1 GB/s per stage
    tiny = _row(64, 100, (1e-3, 1e-3, 1e-3, 1e-3))                    # 0.000256 GB/s
    t = metrics.totals([big, tiny], [5.0])
    assert t["quantize_gbps"] == pytest.approx((4_000_000 + 256) / 5e-3 / 1e9)
    assert 0.79 < t["quantize_gbps"] < 0.81 and t["speedup@5GBps"] > 0.03  # a harmonic mean: 0.0005, 0.0003


def test_measure_reports_every_stable_name():
    x = np.random.default_rng(0).standard_normal((256, 64)).astype(np.float32)
    (r,) = pipeline.measure(x, registry.create("quantizer", "int8"), registry.create("encoder", "zstd"),
                            ErrorBound("rel", 1e-2), [5.0])
    names = ["compression_ratio", "bits_per_value", "entropy_bits", "entropy_efficiency", "quantize_gbps",
             "encode_gbps", "decode_gbps", "dequantize_gbps", "max_abs_error", "max_rel_error", "rmse", "nrmse",
             "psnr", "pearson", "bound_ok", "speedup@5GBps"]
    for name in names:
        assert name in r, name
    assert r["bound_ok"] and r["max_rel_error"] <= 1e-2
    assert r["compression_ratio"] == pytest.approx(x.nbytes / r["frame_bytes"])
    # zstd cannot beat the order-0 entropy of i.i.d. Gaussian codes by much, nor miss it by much
    assert 0.7 < r["entropy_efficiency"] <= 1.05
