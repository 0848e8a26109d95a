"""Metrics with stable names (used in results.json, MLflow and plots).

Error statistics follow Z-checker / SDRBench (x the original, e = x̂ - x, R = max(x) - min(x) over the
finite values): ``max_abs_error`` = max|e|, ``max_rel_error`` = max|e| / R, ``rmse``,
``nrmse`` = rmse / R, ``psnr`` = 20 log10(R / rmse), ``pearson`` = corr(x, x̂). Non-finite elements
are compared bit for bit (``nonfinite_ok``) and left out of the statistics.

Over many fields (``totals``): ratios of total bytes, throughputs of total bytes over total seconds
(never a mean of per-field rates: fields differ in size), worst errors.

``speedup@<B>GBps`` follows the DLRM compression study (dlrm_comp ``speedup_calculation.py``):
``1 / (1/CR + B (1/Tc + 1/Td))``, where Tc and Td are the compression and decompression
throughputs including quantization and dequantization. In MLflow, whose metric names cannot hold
``@``, the same value is logged as ``speedup_at_<B>GBps``.
"""

from __future__ import annotations

import math

import numpy as np

STAGES = ("quantize", "encode", "decode", "dequantize")
THROUGHPUTS = tuple(f"{stage}_gbps" for stage in STAGES)


def entropy_bits(codes: np.ndarray) -> float:
    """Order-0 (empirical) entropy of a code array, in bits per code."""
    flat = np.asarray(codes).reshape(-1)
    if flat.size == 0:
        return 0.0
    if flat.dtype.itemsize <= 2:  # bins over the codes' own range: the same non-zero counts in the same order
        counts = np.bincount(flat.astype(np.int64) - int(flat.min()))
    else:
        _, counts = np.unique(flat, return_counts=True)
    p = counts[counts > 0] / flat.size
    return float(-(p * np.log2(p)).sum())


def error_stats(x: np.ndarray, x_hat: np.ndarray) -> dict[str, float]:
    """Error statistics over the finite elements of ``x`` (float64 arithmetic)."""
    x = np.asarray(x).reshape(-1)
    y = np.asarray(x_hat).reshape(-1)
    finite = np.isfinite(x)
    all_finite = bool(finite.all())
    xf = x.astype(np.float64) if all_finite else x[finite].astype(np.float64)
    yf = y.astype(np.float64) if all_finite else y[finite].astype(np.float64)
    nonfinite_ok = all_finite or bool(
        np.array_equal(x[~finite].view(f"u{x.itemsize}"), y[~finite].view(f"u{y.itemsize}"))
    )
    if xf.size == 0:
        return {"max_abs_error": 0.0, "max_rel_error": 0.0, "rmse": 0.0, "nrmse": 0.0, "psnr": math.inf,
                "pearson": 1.0, "rel_l2_error": 0.0, "rms_value": 0.0, "value_range": 0.0,
                "nonfinite_ok": nonfinite_ok}
    e = yf - xf
    max_abs = float(np.abs(e).max())
    rmse = float(np.sqrt(np.mean(e * e)))
    rms_value = float(np.sqrt(np.mean(xf * xf)))
    rel_l2 = rmse / rms_value if rms_value > 0 else (0.0 if rmse == 0 else math.inf)
    value_range = float(xf.max() - xf.min())
    if value_range > 0:
        max_rel, nrmse = max_abs / value_range, rmse / value_range
        psnr = math.inf if rmse == 0 else 20 * math.log10(value_range / rmse)
    else:
        max_rel = nrmse = 0.0 if max_abs == 0 else math.inf
        psnr = math.inf if rmse == 0 else -math.inf
    sx, sy = xf.std(), yf.std()
    pearson = float(np.corrcoef(xf, yf)[0, 1]) if sx > 0 and sy > 0 else (1.0 if max_abs == 0 else 0.0)
    return {"max_abs_error": max_abs, "max_rel_error": max_rel, "rmse": rmse, "nrmse": nrmse, "psnr": psnr,
            "pearson": pearson, "rel_l2_error": rel_l2, "rms_value": rms_value, "value_range": value_range,
            "nonfinite_ok": nonfinite_ok}


def gbps(nbytes: int, seconds: float) -> float:
    """Throughput in GB/s (1e9 bytes per second) of ``nbytes`` input bytes."""
    return nbytes / seconds / 1e9 if seconds > 0 else math.inf


def stage_rates(nbytes: int, seconds: dict[str, float]) -> dict[str, float]:
    """``<stage>_s`` (seconds) and ``<stage>_gbps`` (input GB per second) of each timed stage."""
    return {**{f"{k}_s": t for k, t in seconds.items()}, **{f"{k}_gbps": gbps(nbytes, t) for k, t in seconds.items()}}


def speedup_key(bandwidth_gbps: float) -> str:
    return f"speedup@{bandwidth_gbps:g}GBps"


def speedups(ratio: float, m: dict[str, float], bandwidths_gbps) -> dict[str, float]:
    """``speedup@<B>GBps`` for each bandwidth B (GB/s) from the ratio and the four throughputs."""
    inv_tc = 1 / m["quantize_gbps"] + 1 / m["encode_gbps"]
    inv_td = 1 / m["decode_gbps"] + 1 / m["dequantize_gbps"]
    return {speedup_key(b): 1.0 / (1.0 / ratio + b * (inv_tc + inv_td)) for b in bandwidths_gbps}


def _pooled_rel_l2(fields: list[dict]) -> float:
    """||x̂ - x||₂ / ||x||₂ over all fields together (the relative Frobenius error of one matrix)."""
    err = sum(f["rmse"] ** 2 * f["n_values"] for f in fields)
    ref = sum(f.get("rms_value", 0.0) ** 2 * f["n_values"] for f in fields)
    return math.sqrt(err / ref) if ref > 0 else (0.0 if err == 0 else math.inf)


def totals(fields: list[dict], bandwidths_gbps) -> dict[str, float]:
    """Aggregate per-field results: ratio of total bytes, throughput = total bytes / total time (so a
    tiny field cannot drag a total down, nor a huge one be outvoted), worst errors."""
    if not fields:
        return {}
    n = sum(f["n_values"] for f in fields)
    in_bytes = sum(f["input_bytes"] for f in fields)
    out_bytes = sum(f["frame_bytes"] for f in fields)
    code_stream = sum(f["code_stream_bytes"] for f in fields)
    entropy_total = sum(f["entropy_bits"] * f["n_values"] for f in fields)
    out = {
        "n_fields": len(fields),
        "n_values": n,
        "input_bytes": in_bytes,
        "frame_bytes": out_bytes,
        "compression_ratio": in_bytes / out_bytes,
        "bits_per_value": 8 * out_bytes / n if n else 0.0,
        "entropy_bits": entropy_total / n if n else 0.0,
        "entropy_efficiency": (entropy_total / 8) / code_stream if code_stream else 1.0,
        "max_abs_error": max(f["max_abs_error"] for f in fields),
        "max_rel_error": max(f["max_rel_error"] for f in fields),
        "rmse": math.sqrt(sum(f["rmse"] ** 2 * f["n_values"] for f in fields) / n) if n else 0.0,
        "rel_l2_error": _pooled_rel_l2(fields),
        "budget_bits_per_value": (sum(f["budget_bits_per_value"] * f["n_values"] for f in fields) / n
                                  if n and all(f.get("budget_bits_per_value") is not None for f in fields) else None),
        "nrmse": max(f["nrmse"] for f in fields),
        "psnr": min(f["psnr"] for f in fields),
        "pearson": min(f["pearson"] for f in fields),
        "bound_ok": all(f["bound_ok"] for f in fields),
        "max_error_over_bound": max(
            (f["max_abs_error"] / f["abs_bound"] if f["abs_bound"] else (0.0 if f["max_abs_error"] == 0 else math.inf)
             for f in fields if f.get("abs_bound") is not None), default=None),
    }
    for stage in STAGES:
        seconds = sum(f[f"{stage}_s"] for f in fields)
        out[f"{stage}_s"] = seconds
        out[f"{stage}_gbps"] = gbps(in_bytes, seconds)
    out.update(speedups(out["compression_ratio"], out, bandwidths_gbps))
    return out
