"""The LPLR paper's image experiment: the Shepp-Logan phantom at one bit per value, both bit splits, LPLR's options.

    python bench/lplr_phantom.py OUT_DIR [--size 1000] [--seeds 0 1 2 3 4 5 6 7 8 9]

Saha, Srivastava & Pilanci (NeurIPS 2023), repository pilancilab/matrix-compressor: phantom 1000 x 1000
scaled to [0, 1], B0 = 1 (rank 83 at cr = 1), LPLR, LSVD and DSVD with normalize_and_shift, NQ without.
The repository's notebook (``example.ipynb``) sets B1 = 8, B2 = 4; its committed rank-83 images
(``artifacts/images/shepp-logan-rank-83_b1-4_b2-8_b0-1``) are B1 = 4, B2 = 8. Both splits run here, LPLR
with the Gaussian sketch, the sparse JL sketch (1 and 4 nonzeros per row) and one power iteration, over
the seeds.
Writes ``lplr_phantom.md`` (relative Frobenius errors ``‖Â - A‖_F / ‖A‖_F``, mean [min, max] over the
seeds for seeded methods), ``lplr_phantom.json`` and ``lplr_phantom.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from compframe import registry
from compframe.plugins.data.image import scaled, shepp_logan

SPLITS = {"B1=4, B2=8 (repo images)": {"b1": 4, "b2": 8}, "B1=8, B2=4 (repo notebook)": {"b1": 8, "b2": 4}}
# (label, quantizer id, extra params, seeded): the sketch options apply to lplr only
METHODS = [("lplr gaussian", "lplr", {}, True),
           ("lplr sparse_jl s=1", "lplr", {"sketch": "sparse_jl", "sketch_nnz": 1}, True),
           ("lplr sparse_jl s=4", "lplr", {"sketch": "sparse_jl", "sketch_nnz": 4}, True),
           ("lplr gaussian q=1", "lplr", {"power_iters": 1}, True),
           ("lsvd", "lsvd", {}, False),
           ("dsvd", "dsvd", {}, False)]
REPO_LOG = {"lplr gaussian": 0.240, "dsvd": 0.497, "nq": 0.532}  # artifacts/images/eval.log (one unseeded run)


def error(pid: str, params: dict, a: np.ndarray) -> dict:
    q = registry.create("quantizer", pid, **params)
    quantized = q.quantize(a, None)
    a_hat = q.dequantize(quantized).astype(np.float64)
    return {"error": float(np.linalg.norm(a_hat - a) / np.linalg.norm(a)), "rank": quantized.meta.get("rank"),
            "bits_per_value": quantized.meta["bits_per_value"]}


def summary(runs: list[dict]) -> dict:
    errs = [r["error"] for r in runs]
    return {"mean": float(np.mean(errs)), "std": float(np.std(errs)), "min": min(errs), "max": max(errs),
            "rank": runs[0]["rank"], "bits_per_value": runs[0]["bits_per_value"], "runs": runs}


def measure(a: np.ndarray, seeds: list[int]) -> list[dict]:
    rows = []
    for split, bits in SPLITS.items():
        for label, pid, extra, seeded in METHODS:
            params = {**bits, "b0": 1, "normalize_and_shift": True, **extra}
            runs = [{"seed": s, **error(pid, {**params, "seed": s}, a)} for s in (seeds if seeded else seeds[:1])]
            rows.append({"split": split, "method": label, "params": {"id": pid, **params}, **summary(runs)})
            print(f"{split:28s} {label:20s} {rows[-1]['mean']:.4f} [{rows[-1]['min']:.4f}, {rows[-1]['max']:.4f}]",
                  flush=True)
    rows.append({"split": "B0=1", "method": "nq", "params": {"id": "nq", "b0": 1}, **summary([error("nq", {"b0": 1}, a)])})
    return rows


def table(rows: list[dict], size: int, seeds: list[int]) -> str:
    lines = [f"Shepp-Logan {size}x{size}, B0=1; relative Frobenius error, mean [min, max] (std) over seeds "
             f"{seeds} for the seeded LPLR rows", "",
             "| bits | method | rank | bits/value | error | repo log |", "|---|---|---|---|---|---|"]
    for r in rows:
        seeded = len(r["runs"]) > 1
        err = f"{r['mean']:.3f} [{r['min']:.3f}, {r['max']:.3f}] ({r['std']:.3f})" if seeded else f"{r['mean']:.3f}"
        repo = f"{REPO_LOG[r['method']]:.3f}" if r["method"] in REPO_LOG else "-"
        lines.append(f"| {r['split']} | {r['method']} | {r['rank'] or '-'} | {r['bits_per_value']:.4f} | {err} | {repo} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path, size: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.2))
    labels = [f"{r['method']}\n{r['split'].split(' (')[0]}" for r in rows]
    x = np.arange(len(rows))
    means = np.array([r["mean"] for r in rows])
    ax.bar(x, means, color=["C0" if "B1=4" in r["split"] else "C1" if "B1=8" in r["split"] else "C2" for r in rows])
    ax.errorbar(x, means, yerr=[means - [r["min"] for r in rows], [r["max"] for r in rows] - means], fmt="none",
                color="k", capsize=3)
    ax.axhline(REPO_LOG["lplr gaussian"], color="r", ls="--", lw=1, label="repo log LPLR 0.240")
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("relative Frobenius error")
    ax.set_title(f"Shepp-Logan {size}², 1 bit per value (bars: mean, whiskers: seed range)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = measure(scaled(shepp_logan(args.size)), args.seeds)
    (args.out / "lplr_phantom.json").write_text(json.dumps({"size": args.size, "seeds": args.seeds, "rows": rows},
                                                           indent=2))
    text = table(rows, args.size, args.seeds)
    (args.out / "lplr_phantom.md").write_text(text)
    print(text)
    plot(rows, args.out / "lplr_phantom.png", args.size)
    print(args.out / "lplr_phantom.png")


if __name__ == "__main__":
    main()
