"""The report's figures, each with the table of the numbers it draws.

A builder takes the runs and the colour map and returns a ``Figure`` or, when the runs hold no data
for it, a string saying why it was skipped. Colours are per pipeline (or sampler, or model) and the
same in every figure of a report (``colours``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib.ticker import FuncFormatter, MaxNLocator

from .. import metrics
from ..search import front as accuracy_front
from .runs import Run

BANDWIDTHS_GBPS = np.geomspace(1.0, 400.0, 81)
"""The speed-up figure's bandwidth axis: 1 to 400 GB/s (the DLRM study's range of interconnects)."""
SPEEDUP_AT = (1.0, 10.0, 100.0, 400.0)
MAX_LINE_POINTS = 60
"""A pipeline with more rate-distortion points than this is drawn as points, not joined by a line."""
MAX_SERIES = 12
"""At most this many curves in the per-table and training figures (the newest runs; the caption says)."""
DISTORTIONS = (("max_abs_error", "max |error| (data units)", True), ("psnr", "PSNR (dB)", False),
               ("rel_l2_error", "relative L2 error ||x̂-x||/||x||", True))


@dataclass
class Figure:
    """One figure: ``name`` is the PNG's file stem; ``columns``/``rows`` the numbers drawn."""

    name: str
    title: str
    caption: str
    columns: list[str]
    rows: list[list[Any]]
    fig: Any = field(repr=False)


def plt():
    """matplotlib's pyplot on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def colours(names: list[str]) -> dict[str, Any]:
    """One colour per name (sorted, so the same set of pipelines gets the same colours in any report)."""
    ordered = sorted(set(names))
    cmap = plt().get_cmap("tab10" if len(ordered) <= 10 else "tab20")
    return {n: cmap(i % cmap.N) for i, n in enumerate(ordered)}


def series_names(runs: list[Run]) -> list[str]:
    """Every name a figure colours by: pipelines, training pipelines, samplers, models."""
    names = [p for r in runs for p in r.pipelines]
    names += [r.train_pipeline for r in runs if r.task == "train"]
    names += [r.params["sampler"] for r in runs if "sampler" in r.params]
    names += [r.params.get("model.id", "model") for r in runs if r.task == "compress_model"]
    return names


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point dominates, both coordinates minimized (a point is
    dominated by one that is <= in both and < in one; equal points are all kept), by increasing x."""
    order = sorted(range(len(points)), key=lambda i: points[i])
    out: list[int] = []
    best = math.inf
    for i in order:
        x, y = points[i]
        if y < best or (out and points[out[-1]] == (x, y)):
            out.append(i)
            best = min(best, y)
    return out


def _log_scale(ax, values: list[float], wide: float = 20.0) -> None:
    """A log y axis, with plain tick labels, when ``values`` span more than ``wide`` times."""
    if values and min(values) > 0 and max(values) / min(values) > wide:
        ax.set_yscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain if max(values) / min(values) < 10 else FuncFormatter(lambda v, _: ""))


def _benchmark_points(runs: list[Run]) -> list[tuple[Run, str, dict[str, float]]]:
    return [(r, p, t) for r in runs if r.task == "benchmark" for p, t in r.pipelines.items()
            if _finite(t.get("bits_per_value")) and _finite(t.get("compression_ratio"))]


def _run_label(runs: list[Run]) -> Callable[[Run], str]:
    return (lambda r: "") if len({r.id for r in runs}) == 1 else (lambda r: r.label)


def rate_distortion(runs: list[Run], colour: dict) -> Figure | str:
    """Distortion (max error, PSNR, relative L2) against bits per value, one line per pipeline."""
    points = _benchmark_points(runs)
    if not points:
        return "no task=benchmark run with bits_per_value and compression_ratio"
    panels = [d for d in DISTORTIONS if any(_finite(t.get(d[0])) and (not d[2] or t[d[0]] > 0) for _, _, t in points)]
    if not panels:
        return "the benchmark runs record no finite max_abs_error, psnr or rel_l2_error"
    fig, axes = plt().subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    for ax, (key, label, log) in zip(axes[0], panels):
        for pipeline in sorted({p for _, p, _ in points}):
            pts = sorted((t["bits_per_value"], t[key]) for _, p, t in points
                         if p == pipeline and _finite(t.get(key)) and (not log or t[key] > 0))
            if pts:  # a curve through a bound sweep; a cloud where many runs share the bounds
                dense = len(pts) > MAX_LINE_POINTS
                ax.plot(*zip(*pts), "o" if dense else "o-", ms=2.5 if dense else 4, lw=1.2, alpha=0.5 if dense else 1,
                        color=colour[pipeline], label=pipeline)
        ax.set(xlabel="frame bits per value (bits)", ylabel=label)
        if log:
            _log_scale(ax, [t[key] for _, _, t in points if _finite(t.get(key)) and t[key] > 0], wide=3.0)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].legend(fontsize="small")
    fig.suptitle("rate-distortion per pipeline")
    fig.tight_layout()
    who = _run_label(runs)
    rows = [[who(r), p, t["compression_ratio"], t["bits_per_value"], *(t.get(k) for k, _, _ in DISTORTIONS)]
            for r, p, t in sorted(points, key=lambda e: (e[1], e[2]["bits_per_value"]))]
    return Figure("rate_distortion", "Rate-distortion per pipeline",
                  f"{len(points)} (run, pipeline) points of {len({r.id for r, _, _ in points})} benchmark runs; "
                  "lossless points (zero error, infinite PSNR) are in the table only.",
                  ["run", "pipeline", "ratio", "bits/value", "max |error|", "PSNR (dB)", "rel L2"], rows, fig)


def pareto(runs: list[Run], colour: dict) -> Figure | str:
    """The Pareto front of the sweep: bits per value and distortion, both minimized."""
    points = _benchmark_points(runs)
    key = next((k for k in ("rel_l2_error", "max_abs_error") if any(_finite(t.get(k)) for _, _, t in points)), None)
    if len(points) < 2 or key is None:
        return "fewer than two benchmark (run, pipeline) points with bits_per_value and an error"
    points = [e for e in points if _finite(e[2].get(key))]
    xy = [(t["bits_per_value"], t[key]) for _, _, t in points]
    on = pareto_front(xy)
    fig, ax = plt().subplots(figsize=(7.5, 4.8))
    for pipeline in sorted({p for _, p, _ in points}):
        pts = [xy[i] for i, (_, p, _) in enumerate(points) if p == pipeline]
        ax.plot(*zip(*pts), "o", ms=5, alpha=0.55, color=colour[pipeline], label=pipeline)
    ax.step([xy[i][0] for i in on], [xy[i][1] for i in on], "k-", where="post", lw=1.2, label=f"front ({len(on)} points)")
    ax.plot([xy[i][0] for i in on], [xy[i][1] for i in on], "o", ms=8, mfc="none", mec="k")
    positive = [y for _, y in xy if y > 0]
    if positive and len(positive) < len(xy):  # lossless points (zero error) stay on the axis
        ax.set_yscale("symlog", linthresh=min(positive))
    else:
        _log_scale(ax, positive, wide=3.0)
    label = dict((k, lab) for k, lab, _ in DISTORTIONS)[key]
    ax.set(xlabel="frame bits per value (bits), lower is better", ylabel=f"{label}, lower is better",
           title=f"Pareto front: {len(on)} of {len(points)} points")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    fig.tight_layout()
    who = _run_label(runs)
    rows = [[who(points[i][0]), points[i][1], xy[i][0], xy[i][1], points[i][2]["compression_ratio"]] for i in on]
    return Figure("pareto_front", "Pareto front of the sweep",
                  f"Points no other point beats on both bits per value and {key} (lower is better on both); "
                  f"the table lists the front.",
                  ["run", "pipeline", "bits/value", key, "ratio"], rows, fig)


def ratio_per_table(runs: list[Run], colour: dict) -> Figure | str:
    """Compression ratio per embedding table, one line per pipeline (from its newest run with tables);
    a training run's exchange is its own line (dashed), beside the benchmarks of the same pipeline."""
    series: dict[tuple[str, str], tuple[Run, dict]] = {}  # (pipeline, task) -> (run, {table: ratio})
    for r in runs:
        if r.task == "benchmark" and r.pipelines:
            wanted = {(p, r.task) for p in r.pipelines}
        elif r.task == "train":
            wanted = {(r.train_pipeline, r.task)}
        else:
            continue
        if wanted <= set(series):
            continue  # an older run of pipelines already drawn: its artifact is not read
        for row in r.by_table:
            key = (row["pipeline"], r.task)
            if series.setdefault(key, (r, {}))[0] is r:
                series[key][1][row["table"]] = row["compression_ratio"]
        if len(series) >= MAX_SERIES:
            break
    if not series:
        return "no per-table results (by_table of task=benchmark on a tabled source, or of task=train)"
    tables = sorted({t for _, ratios in series.values() for t in ratios}, key=lambda t: (str(type(t)), t))
    fig, ax = plt().subplots(figsize=(max(7.0, 0.32 * len(tables) + 3), 4.5))
    for (pipeline, task), (r, ratios) in sorted(series.items()):
        xs = [i for i, t in enumerate(tables) if t in ratios]
        ax.plot(xs, [ratios[tables[i]] for i in xs], "o-" if task == "benchmark" else "s--", ms=4, lw=1.2,
                color=colour[pipeline], label=pipeline if task == "benchmark" else f"{pipeline} (training exchange)")
    ax.set_xticks(range(len(tables)), [str(t) for t in tables], fontsize="small")
    ax.set(xlabel="table", ylabel="compression ratio (input bytes / frame bytes)", title="ratio per table")
    _log_scale(ax, [v for _, ratios in series.values() for v in ratios.values()])
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    fig.tight_layout()
    rows = [[p, task, r.label, *[ratios.get(t) for t in tables]] for (p, task), (r, ratios) in sorted(series.items())]
    return Figure("ratio_per_table", "Compression ratio per table",
                  "One line per pipeline and task, from the newest run that has per-table results for it "
                  "(column 'run'); task=train lines are the compressed exchange of the training run.",
                  ["pipeline", "task", "run", *[f"table {t}" for t in tables]], rows, fig)


def speedup(runs: list[Run], colour: dict) -> Figure | str:
    """Modelled speed-up against bandwidth, 1 to 400 GB/s, per pipeline (median over runs, min-max band).

    speed-up = 1 / (1/CR + B (1/Tc + 1/Td)), the DLRM compression study's model (``metrics.speedups``).
    """
    keys = ("compression_ratio", *metrics.THROUGHPUTS)
    curves: dict[str, list[np.ndarray]] = {}
    for _, p, t in _benchmark_points(runs):
        if all(_finite(t.get(k)) and t[k] > 0 for k in keys):
            s = metrics.speedups(t["compression_ratio"], t, BANDWIDTHS_GBPS)
            curves.setdefault(p, []).append(np.array(list(s.values())))
    if not curves:
        return "no benchmark run with compression_ratio and the four throughputs (quantize/encode/decode/dequantize_gbps)"
    fig, ax = plt().subplots(figsize=(7.5, 4.8))
    rows = []
    for pipeline, cs in sorted(curves.items()):
        c = np.stack(cs)
        median = np.median(c, axis=0)
        ax.plot(BANDWIDTHS_GBPS, median, lw=1.6, color=colour[pipeline],
                label=pipeline if len(cs) == 1 else f"{pipeline} (median of {len(cs)} runs)")
        if len(cs) > 1:
            ax.fill_between(BANDWIDTHS_GBPS, c.min(axis=0), c.max(axis=0), color=colour[pipeline], alpha=0.15)
        at = [float(np.interp(math.log(b), np.log(BANDWIDTHS_GBPS), median)) for b in SPEEDUP_AT]
        below = np.nonzero(median < 1)[0]
        slower = None if not below.size else "<= 1" if below[0] == 0 else float(BANDWIDTHS_GBPS[below[0]])
        rows.append([pipeline, len(cs), *at, slower])
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(xlabel="link bandwidth B (GB/s)", ylabel="modelled speed-up of the transfer (x)",
           title="speed-up against bandwidth: 1 / (1/CR + B (1/Tc + 1/Td))")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return Figure("speedup_vs_bandwidth", "Speed-up against bandwidth",
                  "The DLRM compression study's model from each run's ratio and measured throughputs; "
                  "the line is the median over a pipeline's runs, the band their min-max. Below 1 (dashed), "
                  "sending uncompressed is faster.",
                  ["pipeline", "runs", *[f"speed-up @{b:g} GB/s" for b in SPEEDUP_AT], "slower than raw from B (GB/s)"],
                  rows, fig)


def sampler_comparison(runs: list[Run], colour: dict) -> Figure | str:
    """Best value so far against the trial, one curve per sampler (mean over seeds, min-max band)."""
    studies: dict[str, list[np.ndarray]] = {}
    for r in runs:
        if "sampler" in r.params and "seed" in r.params:
            c = r.curve("best_so_far")
            if c:
                studies.setdefault(r.params["sampler"], []).append(np.array([v for _, v in c]))
    if not studies:
        return "no search study runs (params sampler and seed, step metric best_so_far; bench/sampler_comparison.py)"
    fig, axes = plt().subplots(1, 2, figsize=(11, 4.2))
    rows, late = [], []
    for sampler, cs in sorted(studies.items()):
        n = min(len(c) for c in cs)
        c = np.stack([x[:n] for x in cs])
        trials = np.arange(1, n + 1)
        for ax in axes:
            ax.plot(trials, c.mean(axis=0), lw=1.6, color=colour[sampler], label=f"{sampler} (mean of {len(cs)} seed{'s' if len(cs) > 1 else ''})")
            ax.fill_between(trials, c.min(axis=0), c.max(axis=0), color=colour[sampler], alpha=0.15)
        late.append(c[:, n // 4:])
        at = {k: c[:, k - 1] for k in sorted({min(10, n), min(20, n), n})}
        rows += [[sampler, len(cs), k, float(v.mean()), float(v.min()), float(v.max())] for k, v in at.items()]
    low, high = min(float(x.min()) for x in late), max(float(x.max()) for x in late)
    axes[1].set_ylim(low - 0.05 * (high - low or 1), high + 0.05 * (high - low or 1))
    for ax, title in zip(axes, ("sampler comparison", "zoom: from a quarter of the trials on")):
        ax.set(xlabel="trial", ylabel="best objective value so far", title=title)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small", loc="lower right")
    fig.tight_layout()
    return Figure("sampler_comparison", "Sampler comparison",
                  "Best value so far after each trial; the band spans the seeds (min to max).",
                  ["sampler", "seeds", "after trials", "mean best", "min", "max"], rows, fig)


def training(runs: list[Run], colour: dict) -> Figure | str:
    """Training loss and test AUC against iteration, one line per run (task=train)."""
    shown = []
    for r in runs:
        if r.task == "train" and (r.curve("loss_avg") or r.curve("auc")):
            shown.append(r)
        if len(shown) == MAX_SERIES:
            break
    if not shown:
        return "no task=train run with step metrics loss_avg or auc"
    fig, (a, b) = plt().subplots(1, 2, figsize=(11, 4.2))
    styles = ("-", "--", ":", "-.")
    seen: dict[str, int] = {}
    rows = []
    for r in shown:
        p = r.train_pipeline
        ls = styles[seen.setdefault(p, 0) % len(styles)]
        seen[p] += 1
        for ax, key in ((a, "loss_avg"), (b, "auc")):
            c = r.curve(key)
            if c:
                ax.plot(*zip(*c), ls, marker="o" if key == "auc" else None, ms=3, lw=1.3, color=colour[p],
                        label=f"{r.label} ({p})")
        loss, auc = r.curve("loss_avg"), r.curve("auc")
        rows.append([r.label, p, loss[-1][0] if loss else None, loss[-1][1] if loss else None,
                     auc[-1][1] if auc else None, len(loss), len(auc)])
    a.set(xlabel="iteration", ylabel="training BCE loss (nats, mean over the log interval)", title="loss")
    b.set(xlabel="iteration", ylabel="test ROC AUC", title="test AUC")
    for ax in (a, b):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    fig.tight_layout()
    return Figure("training_curves", "Training curves",
                  f"{len(shown)} task=train run(s), colour per pipeline of the compressed exchange"
                  + (f" (the newest {MAX_SERIES})" if len(shown) == MAX_SERIES else "") + ".",
                  ["run", "pipeline", "last iteration", "last loss", "last AUC", "loss points", "AUC points"], rows, fig)


def accuracy_vs_bits(runs: list[Run], colour: dict) -> Figure | str:
    """Model metric against bits per weight (task=compress_model), per model, with the front and fp32."""
    pts = [r for r in runs if r.task == "compress_model" and _finite(r.metrics.get("bits_per_weight"))
           and _finite(r.metrics.get("metric"))]
    if not pts:
        return "no task=compress_model run with bits_per_weight and metric"
    metric = next((k for k in pts[0].metrics if k != "metric" and f"fp32_{k}" in pts[0].metrics
                   and pts[0].metrics[k] == pts[0].metrics["metric"]), "metric")
    fig, ax = plt().subplots(figsize=(7.5, 4.8))
    rows = []
    for model in sorted({r.params.get("model.id", "model") for r in pts}):
        mine = [r for r in pts if r.params.get("model.id", "model") == model]
        xy = [{"x": r.metrics["bits_per_weight"], "y": r.metrics["metric"], "run": r} for r in mine]
        ax.plot([p["x"] for p in xy], [p["y"] for p in xy], "o", ms=5, alpha=0.6, color=colour[model], label=model)
        best = accuracy_front(xy, "x", "y")
        ax.step([p["x"] for p in best], [p["y"] for p in best], "-", where="post", lw=1.2, color=colour[model],
                label=f"{model} front")
        fp32 = [r.metrics["fp32_metric"] for r in mine if _finite(r.metrics.get("fp32_metric"))]
        if fp32:
            ax.axhline(statistics.median(fp32), color=colour[model], ls="--", lw=0.9, label=f"{model} fp32")
        on = {id(p["run"]) for p in best}
        rows += [[r.label, model, r.metrics["bits_per_weight"], r.metrics.get("frame_bits_per_weight"),
                  r.metrics["metric"], r.metrics.get("fp32_metric"), "yes" if id(r) in on else ""]
                 for r in sorted(mine, key=lambda r: r.metrics["bits_per_weight"])]
    ax.set(xlabel="bits per weight of the compressed layers (format bits)", ylabel=f"test {metric}",
           title=f"{metric} against bits per weight")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return Figure("accuracy_vs_bits", f"{metric.capitalize()} against bits (model compression)",
                  "Each point is a task=compress_model run; the step line is each model's front (no run has "
                  "fewer bits and a higher metric), the dashed line its fp32 metric.",
                  ["run", "model", "bits/weight", "frame bits/weight", metric, f"fp32 {metric}", "on front"], rows, fig)


BUILDERS = (rate_distortion, pareto, ratio_per_table, speedup, sampler_comparison, training, accuracy_vs_bits)
