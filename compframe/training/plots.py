"""Plots of training runs (PNG in the run's folder; the job logs them to MLflow as artifacts).

``plot_run``: loss (per iteration and its moving mean) and test AUC against iteration
(``training.png``), and the compression ratio and error bound of each table against iteration
(``tables.png``). ``plot_comparison``: the loss and AUC curves of several runs on shared axes
(none / a fixed bound / the schedules), drawn from their results.json by ``bench/bench_train.py``
or at the end of a ``-m`` sweep by ``TrainSweepCallback``.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
from hydra.experimental.callback import Callback

log = logging.getLogger("compframe.training")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _smooth(values: list[float], width: int) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    width = max(1, min(width, v.size))
    return np.convolve(v, np.ones(width) / width, mode="valid")


def plot_run(results: dict, out_dir: Path) -> list[Path]:
    """``training.png`` and (if any table statistics were logged) ``tables.png``; returns the paths."""
    plt = _plt()
    out_dir = Path(out_dir)
    paths = []
    losses, evals = results.get("losses", []), results.get("evals", [])
    if losses:
        start = int(results.get("start_iteration", 0))
        fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
        x = np.arange(start, start + len(losses))
        a.plot(x, losses, lw=0.5, alpha=0.4, label="loss")
        w = max(1, len(losses) // 50)
        a.plot(x[w - 1:], _smooth(losses, w), lw=1.5, label=f"mean of {w}")
        a.set(xlabel="iteration", ylabel="training BCE", title="training loss")
        a.legend()
        if evals:
            b.plot([e["iteration"] for e in evals], [e["auc"] for e in evals], "o-")
        b.set(xlabel="iteration", ylabel="test AUC", title="test AUC")
        fig.tight_layout()
        paths.append(out_dir / "training.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    history = results.get("history", [])
    tables = sorted({int(k.split("_")[-1]) for row in history for k in row if k.startswith("ratio.table_")})
    if history and tables:
        fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
        it = [row["iteration"] for row in history]
        cmap = plt.get_cmap("viridis", len(tables))
        for k, t in enumerate(tables):
            a.plot(it, [row.get(f"ratio.table_{t}", math.nan) for row in history], color=cmap(k), lw=1)
            b.plot(it, [row.get(f"bound.table_{t}", math.nan) for row in history], color=cmap(k), lw=1,
                   label=f"table {t}")
        a.set(xlabel="iteration", ylabel="compression ratio (wire)", title="ratio per table")
        b.set(xlabel="iteration", ylabel="error bound (schedule value)", title="bound per table")
        b.legend(fontsize=6, ncol=2, loc="upper right")
        fig.tight_layout()
        paths.append(out_dir / "tables.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


def plot_comparison(runs: dict[str, dict], path: Path) -> Path:
    """Loss (moving mean) and test AUC against iteration, one line per run label."""
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for label, res in runs.items():
        losses = res.get("losses", [])
        if losses:
            w = max(1, len(losses) // 40)
            start = int(res.get("start_iteration", 0))
            a.plot(np.arange(start + w - 1, start + len(losses)), _smooth(losses, w), lw=1.2, label=label)
        evals = res.get("evals", [])
        if evals:
            b.plot([e["iteration"] for e in evals], [e["auc"] for e in evals], "o-", ms=3, label=label)
    a.set(xlabel="iteration", ylabel="training BCE (moving mean)", title="loss")
    b.set(xlabel="iteration", ylabel="test AUC", title="test AUC")
    a.legend(fontsize=7)
    b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def sweep_runs(sweep_dir: Path) -> dict[str, dict]:
    """The results of the ``task=train`` jobs of a multirun folder, by job name (override dirname)."""
    runs = {}
    for f in sorted(Path(sweep_dir).rglob("results.json")):  # an override holding '/' nests the job folder
        doc = json.loads(f.read_text())
        if (doc.get("config", {}).get("task") or {}).get("id") == "train":
            runs[doc.get("name") or f.parent.name] = doc.get("results", {})
    return runs


class TrainSweepCallback(Callback):
    """At the end of a multirun of ``task=train`` jobs: ``train_comparison.png`` in the sweep folder,
    logged to the sweep's MLflow parent run (opened by ``compframe.tracking.SweepCallback``)."""

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        runs = sweep_runs(sweep_dir)
        if not runs:
            return
        path = plot_comparison(runs, sweep_dir / "train_comparison.png")
        parent = sweep_dir / "mlflow_parent_run_id"
        if not parent.exists() or not config.tracking.enabled:
            return
        try:
            from mlflow.tracking import MlflowClient

            MlflowClient(tracking_uri=config.tracking.uri).log_artifact(parent.read_text().strip(), str(path))
        except Exception as e:  # noqa: BLE001 - tracking never fails a sweep
            log.warning("could not log %s to the sweep's MLflow run: %s", path, e)
