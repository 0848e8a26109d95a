"""What a search found, written when the sweep ends: a table, the accuracy-vs-bits front, best so far.

``SearchReport`` is a Hydra callback, configured next to the ``mlflow`` callback in the
``hparams_search`` configs. When a multirun ends it reads every job's ``results.json`` in the sweep
folder (failed jobs included, as such) and each job's own overrides, and writes into the sweep folder:

- ``search_report.csv``: one row per job: number, status, the swept parameters (the overrides that
  differ between jobs), ``x``, ``y`` and the ``columns`` asked for;
- ``search_report.json``: the same rows, the front (the finished jobs that no other job beats on
  both ``y``, higher, and ``x``, lower) and the best ``y`` so far after each job;
- ``search_report.png``: ``y`` against ``x`` (one series per value of ``group``, the front as a
  step line) and the best ``y`` so far against the job number.

It prints the table and logs the three files, ``best_<y>`` and ``front_size`` to the sweep's MLflow
parent run. A report never fails the sweep: any error is logged as a warning.

``mixed_precision_space`` is an Optuna ``custom_search_space`` for per-layer formats and widths.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

log = logging.getLogger("compframe.search")

REPORT = "search_report"
IGNORED_OVERRIDES = ("hparams_search",)


def front(rows: list[dict[str, Any]], x: str, y: str) -> list[dict[str, Any]]:
    """The rows no other row dominates (``y`` higher or equal and ``x`` lower or equal, one strictly), by ``x``."""
    done = sorted((r for r in rows if _finite(r.get(x)) and _finite(r.get(y))), key=lambda r: (r[x], -r[y]))
    out: list[dict[str, Any]] = []
    for r in done:
        if not out or r[y] > out[-1][y]:
            out.append(r)
    return out


def best_so_far(values: list[float | None]) -> list[float | None]:
    """The running maximum of ``values`` in order; None (a failed job) carries the previous best."""
    best, out = None, []
    for v in values:
        if _finite(v) and (best is None or v > best):
            best = v
        out.append(best)
    return out


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def read_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    """``{num, status, overrides, totals}`` of every job folder of the sweep, by job number."""
    from omegaconf import OmegaConf

    jobs = []
    # a job folder is named after its overrides, so one holding a path ('a=/x/y') is nested deeper
    for path in sweep_dir.rglob("results.json"):
        hydra_dir = path.parent / ".hydra"
        if not hydra_dir.is_dir():
            continue
        try:
            doc = json.loads(path.read_text())
            overrides = list(OmegaConf.load(hydra_dir / "overrides.yaml"))
            num = int(OmegaConf.load(hydra_dir / "hydra.yaml").hydra.job.num)
        except (OSError, ValueError, AttributeError) as e:
            log.warning("search report: skipping %s (%s)", path.parent, e)
            continue
        params = dict(o.lstrip("+").split("=", 1) for o in overrides if "=" in o and not o.startswith("~"))
        jobs.append({"num": num, "status": doc.get("status"), "error": doc.get("error"),
                     "overrides": {k: v for k, v in params.items() if k not in IGNORED_OVERRIDES},
                     "totals": (doc.get("results") or {}).get("totals", {})})
    return sorted(jobs, key=lambda j: j["num"])


def report_rows(jobs: list[dict[str, Any]], x: str, y: str, columns: list[str]) -> tuple[list[str], list[dict]]:
    """The swept parameter names and one flat row per job (parameters, status, x, y, columns)."""
    keys = list(dict.fromkeys(k for j in jobs for k in j["overrides"]))
    swept = [k for k in keys if len({j["overrides"].get(k) for j in jobs}) > 1] or keys
    rows = []
    for j in jobs:
        row = {"job": j["num"], "status": j["status"], **{k: j["overrides"].get(k) for k in swept}}
        for name in dict.fromkeys([x, y, *columns]):
            row[name] = j["totals"].get(name)
        rows.append(row)
    return swept, rows


class SearchReport(Callback):
    """Hydra callback: the sweep's table, ``y``-vs-``x`` front and best-so-far curve (module docstring).

    ``x``/``y``: names of results totals (``y`` is maximized, ``x`` minimized); ``group``: a swept
    parameter drawn as one series per value (None: one series); ``columns``: more totals for the table.
    """

    def __init__(self, x: str = "bits_per_weight", y: str = "metric", group: str | None = None,
                 columns: list[str] | None = None, title: str = "") -> None:
        self.x, self.y, self.group = x, y, group
        self.columns, self.title = list(columns or []), title

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            files = self.write(sweep_dir)
        except Exception as e:  # noqa: BLE001 - a report, never a reason to fail the sweep
            log.warning("search report failed: %s: %s", type(e).__name__, e)
            return
        if files:
            self._log_to_parent(config, sweep_dir, files)

    def write(self, sweep_dir: Path) -> list[Path]:
        """Write the report files into ``sweep_dir``; returns them (none if the sweep has no job)."""
        jobs = read_jobs(sweep_dir)
        if not jobs:
            log.warning("search report: no job folder with results.json under %s", sweep_dir)
            return []
        swept, rows = report_rows(jobs, self.x, self.y, self.columns)
        done = [r for r in rows if r["status"] == "finished"]
        best = front(done, self.x, self.y)
        curve = best_so_far([r[self.y] if r["status"] == "finished" else None for r in rows])
        paths = [sweep_dir / f"{REPORT}.{ext}" for ext in ("csv", "json", "png")]
        with paths[0].open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        paths[1].write_text(json.dumps({"x": self.x, "y": self.y, "params": swept, "rows": rows,
                                        "front": [r["job"] for r in best], "best_so_far": curve}, indent=1))
        self._plot(rows, best, curve, paths[2])
        self._print(swept, rows, best)
        return paths

    def _plot(self, rows, best, curve, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
        series: dict[str, list[dict]] = {}
        for r in rows:
            if r["status"] == "finished" and _finite(r[self.x]) and _finite(r[self.y]):
                series.setdefault(str(r.get(self.group, "")) if self.group else "jobs", []).append(r)
        for k, (name, rs) in enumerate(sorted(series.items(), key=lambda kv: _sort_key(kv[0]))):
            rs = sorted(rs, key=lambda r: r[self.x])
            style = "o-" if self.group else "o"
            ax.plot([r[self.x] for r in rs], [r[self.y] for r in rs], style, color=f"C{k % 10}", ms=4,
                    alpha=0.8, label=f"{self.group}={name}" if self.group else name)
        if best:
            ax.step([r[self.x] for r in best], [r[self.y] for r in best], "k--", where="post", lw=1, label="front")
        ax.set_xlabel(self.x)
        ax.set_ylabel(self.y)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
        ax2.plot([r["job"] for r in rows], curve, "C0-")
        failed = [r["job"] for r in rows if r["status"] != "finished"]
        ax2.set_xlabel(f"job (trial) number; {len(failed)} failed")
        ax2.set_ylabel(f"best {self.y} so far")
        ax2.grid(alpha=0.3)
        fig.suptitle(self.title or f"{self.y} vs {self.x} ({len(rows)} jobs)")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)

    def _print(self, swept, rows, best) -> None:
        from rich.table import Table

        from .console import stdout_console

        on_front = {r["job"] for r in best}
        table = Table(title=f"search: {self.y} vs {self.x} ({len(rows)} jobs, "
                            f"{sum(r['status'] != 'finished' for r in rows)} failed; * = on the front)",
                      title_justify="left")
        names = list(dict.fromkeys([self.x, self.y, *self.columns]))
        for col in ("job", *[".".join(k.split(".")[-2:]) for k in swept], "status", *names):
            table.add_column(col, justify="right")
        for r in sorted(rows, key=lambda r: (r[self.x] if _finite(r[self.x]) else math.inf, r["job"])):
            mark = "*" if r["job"] in on_front else ""
            table.add_row(f"{r['job']}{mark}", *[str(r[k]) for k in swept], str(r["status"]),
                          *[f"{r[n]:.4g}" if _finite(r[n]) else "-" for n in names])
        stdout_console().print(table)

    def _log_to_parent(self, config, sweep_dir: Path, files: list[Path]) -> None:
        """Log the report to the MLflow parent run that ``tracking.SweepCallback`` opened (still open:
        Hydra ends callbacks in reverse order, and this one is configured after ``mlflow``)."""
        from omegaconf import OmegaConf

        from .tracking import PARENT_FILE  # the parent run's id, written when the sweep opened

        tracking = OmegaConf.to_container(config.tracking, resolve=True)
        parent = sweep_dir / PARENT_FILE
        if not tracking.get("enabled", True) or not parent.exists():
            return
        try:
            import time

            from mlflow.entities import Metric
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=tracking["uri"])
            run_id = parent.read_text().strip()
            for path in files:
                client.log_artifact(run_id, str(path))
            doc = json.loads(files[1].read_text())
            best = [v for v in doc["best_so_far"] if v is not None]
            now = int(time.time() * 1000)
            metrics = [Metric("front_size", len(doc["front"]), now, 0)]
            if best:
                metrics.append(Metric(f"best_{self.y}", float(best[-1]), now, 0))
            client.log_batch(run_id, metrics=metrics)
        except Exception as e:  # noqa: BLE001 - tracking never fails the sweep
            log.warning("search report: could not log to MLflow (%s: %s)", type(e).__name__, e)


def _sort_key(value: str):
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def mixed_precision_space(config, trial) -> None:
    """Optuna ``custom_search_space``: a format and a width for each layer in ``search.layers``.

    For each layer ``L``: ``++task.layers.L.quantizer`` from ``search.formats``,
    ``++task.layers.L.width`` from ``search.widths``, and, for ``fixed`` only, its fractional width
    ``++task.layers.L.frac_width`` in ``search.frac_widths`` ([low, high]); the parameter names are
    the job's overrides. Formats must take a ``width`` (fixed, blockfp, log, minifloat, block_log,
    block_minifloat).
    """
    s = config.search
    for layer in s.layers:
        key = f"++task.layers.{layer}"
        fmt = trial.suggest_categorical(f"{key}.quantizer", list(s.formats))
        trial.suggest_categorical(f"{key}.width", list(s.widths))
        if fmt == "fixed":
            trial.suggest_int(f"{key}.frac_width", int(s.frac_widths[0]), int(s.frac_widths[1]))
