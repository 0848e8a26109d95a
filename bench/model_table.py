"""Tabulate ``task=compress_model`` runs: metric against bits per weight, one row per job.

    python bench/model_table.py RUN_OR_SWEEP_DIR... [--plot out.png] [--sort bits|metric]

Reads every ``results.json`` under the given folders (finished ``compress_model`` jobs only) and
prints a markdown table: model, the layers' quantizers (parameters that differ from the defaults),
pruned fraction, metric, fp32 metric, drop, ``bits_per_weight`` (format), ``frame_bits_per_weight``
(frames with the run's encoder) and the model size (format and frames). ``--plot`` draws the metric
against ``bits_per_weight``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from compframe import registry


def _params(config: dict) -> str:
    """``id(k=v, ...)`` with only the parameters that differ from the quantizer's defaults."""
    config = dict(config)
    qid = config.pop("id")
    if qid == "prune":
        inner = {"id": config["then"], **config["then_params"]}
        return f"prune {config['mode'][:3]} + {_params(inner)}"
    defaults = registry.create("quantizer", qid).get_config()
    changed = [f"{k}={v}" for k, v in config.items() if defaults.get(k) != v]
    return f"{qid}({', '.join(changed)})" if changed else qid


def label(results: dict) -> str:
    """The distinct per-layer quantizers of a run, with the layers each one covers when they differ."""
    by_label: dict[str, list[str]] = {}
    for row in results["layers"]:
        by_label.setdefault(_params(row["quantizer"]), []).append(row["name"])
    if len(by_label) == 1:
        return next(iter(by_label))
    groups = sorted(by_label.items(), key=lambda item: len(item[1]))
    parts = [f"{', '.join(names)}: {lab}" for lab, names in groups[:-1]]
    lab, names = groups[-1]
    return "; ".join([*parts, f"{'rest' if len(names) > 3 else ', '.join(names)}: {lab}"])


def load(paths: list[str]) -> list[dict]:
    rows = []
    for path in paths:
        files = [Path(path)] if path.endswith(".json") else sorted(Path(path).rglob("results.json"))
        for f in files:
            doc = json.loads(f.read_text())
            if doc.get("status") != "finished" or doc["config"].get("task", {}).get("id") != "compress_model":
                continue
            r = doc["results"]
            rows.append({"model": doc["config"]["model"]["id"], "label": label(r), **r["totals"],
                         "encoder": doc["config"]["encoder"]["id"], "path": str(f.parent)})
    return rows


def table(rows: list[dict]) -> str:
    name = "metric"
    out = ["| model | quantization | pruned | metric | fp32 | drop | bits/weight | frame bits/weight | "
           "model KB (format) | model KB (frames) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['model']} | {r['label']} | {r['sparsity']:.2f} | {r[name]:.4f} | {r['fp32_metric']:.4f} | "
                   f"{r['metric_drop']:+.4f} | {r['bits_per_weight']:.3f} | {r['frame_bits_per_weight']:.3f} "
                   f"({r['encoder']}) | {r['model_bits'] / 8e3:.1f} | {r['model_frame_bits'] / 8e3:.1f} |")
    return "\n".join(out)


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter([r["bits_per_weight"] for r in rows], [r["metric"] for r in rows])
    for r in rows:
        ax.annotate(r["label"], (r["bits_per_weight"], r["metric"]), fontsize=6)
    ax.axhline(rows[0]["fp32_metric"], ls="--", c="grey", label="fp32")
    ax.set_xlabel("bits per weight (format, side data and mask included)")
    ax.set_ylabel("metric")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--plot")
    ap.add_argument("--sort", choices=("bits", "metric"), default="bits")
    args = ap.parse_args()
    rows = load(args.paths)
    if not rows:
        raise SystemExit(f"no finished compress_model results under {args.paths}")
    key = "bits_per_weight" if args.sort == "bits" else "metric"
    rows.sort(key=lambda r: (r["model"], r[key]))
    print(table(rows))
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
