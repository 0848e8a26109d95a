"""The runs a report draws: read from an MLflow store (``mlflow.search_runs``) or a folder of results.json.

Both sources give the same ``Run`` records. From MLflow, a run's totals are its metrics (per pipeline
under ``<pipeline>.<metric>`` when a job ran several, ``tracking.JobTracker._log_results``) and its
tags say what ran (``compframe.task``, ``compframe.pipelines``); what MLflow does not hold as metrics
is read only for the runs a figure draws: the per-table results from the run's ``results.json``
artifact, and step metrics (``loss_avg``, ``auc``, ``best_so_far``) from the metric history.
Every user error (an unknown experiment or run, a store that does not exist, a bad filter, an empty
selection, a malformed results.json) raises ``DataError`` (``ValueError`` for a bad filter) naming the thing.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urlparse

from ..errors import DataError
from ..tracking import _mlflow_env, _sqlite_file, flatten, mlflow_metric_name

CURVES = ("loss_avg", "auc", "best_so_far")
"""Step metrics a report draws: training loss (interval mean) and test AUC per iteration (task=train),
best value so far per trial (a sampler comparison study, bench/sampler_comparison.py)."""


@dataclass
class Run:
    """One job (or one search study) as the figures see it.

    ``pipelines`` maps ``<quantizer>+<encoder>`` to that pipeline's totals (task=benchmark);
    ``metrics`` are the run's totals. ``by_table`` and ``curves`` are read on first use.
    """

    id: str
    name: str
    task: str
    status: str
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, float]
    pipelines: dict[str, dict[str, float]]
    _by_table: Callable[[], list[dict[str, Any]]] = field(repr=False, default=list)
    _curve: Callable[[str], list[tuple[float, float]]] = field(repr=False, default=lambda name: [])
    _cache: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def by_table(self) -> list[dict[str, Any]]:
        """``{pipeline, table, compression_ratio}`` per table (benchmark on a tabled source, train)."""
        if "by_table" not in self._cache:
            self._cache["by_table"] = self._by_table()
        return self._cache["by_table"]

    def curve(self, name: str) -> list[tuple[float, float]]:
        """``(step, value)`` of a step metric (one of ``CURVES``), by step."""
        if name not in self._cache:
            self._cache[name] = sorted(self._curve(name))
        return self._cache[name]

    @property
    def label(self) -> str:
        """What a legend or table calls this run: its name, else the start of its id."""
        return self.name or self.id[:8]

    @property
    def train_pipeline(self) -> str:
        """The pipeline that compressed a training run's exchange ('uncompressed' for mode none)."""
        if self.params.get("task.compress.mode") == "none":
            return "uncompressed"
        q = self.tags.get("compframe.quantizer") or self.params.get("quantizer.id")
        e = self.tags.get("compframe.encoder") or self.params.get("encoder.id")
        return f"{q}+{e}" if q and e else "uncompressed"


def _numbers(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


# -- a folder of results.json ------------------------------------------------------------------------

def from_folder(folder: Path) -> list[Run]:
    """Every ``results.json`` under ``folder`` (newest first), finished or failed alike."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"results folder '{folder}' does not exist or is not a folder")
    paths = sorted(folder.rglob("results.json"), key=lambda p: (-p.stat().st_mtime, str(p)))
    if not paths:
        raise DataError(f"no results.json under '{folder}'")
    return [_from_doc(_read_results(p), _name(p.parent, folder), str(p)) for p in paths]


def _name(job_dir: Path, folder: Path) -> str:
    """A folder run's name: its job folder relative to ``folder`` (the folder's own name at the top)."""
    relative = job_dir.relative_to(folder)
    return job_dir.name if relative == Path(".") else str(relative)


def _read_results(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"'{path}' is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"'{path}' cannot be read: {e}") from None
    if not isinstance(doc, dict):
        raise DataError(f"'{path}' holds a JSON {type(doc).__name__}, not a compframe results object")
    for key, kind in (("config", dict), ("results", dict), ("status", str)):
        if not isinstance(doc.get(key), kind):
            raise DataError(f"'{path}': field '{key}' is missing or not a {kind.__name__} "
                            "(a results.json has status, error, name, config, results)")
    return doc


def _from_doc(doc: dict[str, Any], name: str, where: str) -> Run:
    """A ``Run`` from a results.json document (``where`` names it in errors)."""
    config, results = doc["config"], doc["results"]
    task = str((config.get("task") or {}).get("id", ""))
    totals = results.get("totals") or {}
    by_pipeline = results.get("by_pipeline") or {}
    if not isinstance(totals, dict) or not isinstance(by_pipeline, dict):
        raise DataError(f"'{where}': results.totals and results.by_pipeline must be objects")
    run = Run(id=where, name=name, task=task, status=doc["status"], params=flatten(config), tags={},
              metrics=_numbers(totals), pipelines={p: _numbers(t) for p, t in by_pipeline.items() if isinstance(t, dict)})
    run._by_table = lambda: _tables_of(results, run)
    history = {"loss_avg": [(r.get("iteration"), r.get("loss_avg")) for r in results.get("history", [])],
               "auc": [(r.get("iteration"), r.get("auc")) for r in results.get("evals", [])]}
    run._curve = lambda key: [(float(s), float(v)) for s, v in history.get(key, []) if _finite(s) and _finite(v)]
    return run


def _tables_of(results: dict[str, Any], run: Run) -> list[dict[str, Any]]:
    rows = []
    for r in results.get("by_table") or []:
        if isinstance(r, dict) and r.get("table") is not None and _finite(r.get("compression_ratio")):
            pipeline = r.get("pipeline") or run.train_pipeline
            rows.append({"pipeline": pipeline, "table": r["table"], "compression_ratio": float(r["compression_ratio"])})
    return rows


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# -- an MLflow store ---------------------------------------------------------------------------------

def from_mlflow(uri: str, experiments: list[str] = (), run_id: str | None = None,
                filter_string: str = "") -> list[Run]:
    """The runs of ``experiments`` (names or ids), the children of ``run_id`` (the run itself when it
    has none) and/or those matching ``filter_string`` (MLflow's search syntax), newest first.
    Sweep parent runs (tag ``compframe.sweep``) are left out: their children are the jobs; a sweep
    run with an explicit ``hydra/sweeper/sampler=<id>`` in its overrides adds one search study
    (``sweep_study``). Any other MLflow failure (a server that does not answer) is a ``DataError``
    too; a server is given one retry and 10 s per request, as jobs give it (``tracking``)."""
    from mlflow.exceptions import MlflowException

    _mlflow_env({})
    try:
        return _search(uri, experiments, run_id, filter_string)
    except MlflowException as e:
        raise DataError(f"MLflow at {uri} failed: {' '.join(e.message.split())[:500]}") from None


def _search(uri: str, experiments: list[str], run_id: str | None, filter_string: str) -> list[Run]:
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    db = _sqlite_file(uri)
    if db is not None and not db.is_file():
        raise DataError(f"no MLflow store at '{db}' (tracking URI {uri})")
    client = MlflowClient(tracking_uri=uri)
    ids = [_experiment_id(client, e, uri) for e in experiments]
    filters = [filter_string] if filter_string else []
    parent = None
    if run_id:
        try:
            parent = client.get_run(run_id)
        except MlflowException:
            raise DataError(f"MLflow run '{run_id}' not found in {uri}") from None
        ids = ids or [parent.info.experiment_id]
        filters.append(f"tags.mlflow.parentRunId = '{run_id}'")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        with _collector_paused():
            found = mlflow.search_runs(experiment_ids=ids or None, filter_string=" and ".join(filters),
                                       search_all_experiments=not ids, output_format="list")
    except MlflowException as e:
        raise ValueError(f"MLflow search (filter {' and '.join(filters)!r}) failed: {e.message}") from None
    finally:
        mlflow.set_tracking_uri(previous)
    if parent is not None and not found and not filter_string:
        found = [parent]  # a single job: the run itself
    runs = [_from_mlflow(client, r) for r in found if r.data.tags.get("compframe.sweep") != "true"]
    started = {r.info.run_id: r.info.start_time or 0 for r in found}
    parents = {r.info.run_id: r for r in [*found, *([parent] if parent is not None else [])]
               if r.data.tags.get("compframe.sweep") == "true"}
    runs += [s for s in (sweep_study(p, [r for r in runs if r.tags.get("mlflow.parentRunId") == i], started)
                         for i, p in parents.items()) if s is not None]
    if not runs:
        what = ", ".join([*(f"experiment '{e}'" for e in experiments), *([f"run '{run_id}'"] if run_id else []),
                          *([f"filter {filter_string!r}"] if filter_string else [])]) or "every experiment"
        raise DataError(f"no runs found for {what} in {uri}")
    return runs


@contextlib.contextmanager
def _collector_paused():
    """Python's cyclic garbage collector off: a search builds ~200 ORM objects per run (metrics,
    params, tags) and no cycles to collect, and the collector's passes over them cost more than half
    of the search (measured: 5.7 s of CPU for 1,000 runs with it, 2.2 s without)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


SAMPLER_OVERRIDE = re.compile(r"(?:^|\s)hydra/sweeper/sampler=(\S+)")
SEED_OVERRIDE = re.compile(r"(?:^|\s)hydra\.sweeper\.sampler\.seed=(\S+)")


def sweep_study(parent, jobs: list[Run], started: dict[str, int]) -> Run | None:
    """A command-line Optuna sweep as one search study (params sampler and seed from the parent's
    overrides; step metric ``best_so_far``: the running maximum of the jobs' single optimized metric,
    by start time; compframe's single-objective searches all maximize). None when the sweep names no
    sampler on its command line or has not one optimized metric."""
    overrides = parent.data.tags.get("compframe.overrides", "")
    sampler, seed = SAMPLER_OVERRIDE.search(overrides), SEED_OVERRIDE.search(overrides)
    try:
        objective = json.loads(jobs[0].params.get("optimized_metrics", "[]")) if jobs else []
    except ValueError:
        return None
    if sampler is None or not isinstance(objective, list) or len(objective) != 1:
        return None
    best, curve = -math.inf, []
    for step, job in enumerate(sorted(jobs, key=lambda j: (started[j.id], j.id))):
        best = max(best, job.metrics.get(objective[0], -math.inf) if job.status == "FINISHED" else -math.inf)
        if math.isfinite(best):
            curve.append((float(step), best))
    study = Run(id=parent.info.run_id, name=parent.info.run_name or "", task="search", status=parent.info.status,
                params={"sampler": sampler.group(1), "seed": seed.group(1) if seed else "default"},
                tags=dict(parent.data.tags), metrics={}, pipelines={})
    study._curve = lambda key: curve if key == "best_so_far" else []
    return study


def _experiment_id(client, name_or_id: str, uri: str) -> str:
    exp = client.get_experiment_by_name(name_or_id)
    if exp is None and name_or_id.isdigit():
        try:
            exp = client.get_experiment(name_or_id)
        except Exception:  # noqa: BLE001 - MLflow raises its own error for an unknown id
            exp = None
    if exp is None:
        known = sorted(e.name for e in client.search_experiments())
        raise DataError(f"MLflow experiment '{name_or_id}' not found in {uri}; experiments: {', '.join(known) or 'none'}")
    return exp.experiment_id


def _from_mlflow(client, r) -> Run:
    tags, metrics, params = dict(r.data.tags), _numbers(dict(r.data.metrics)), dict(r.data.params)
    task = tags.get("compframe.task") or params.get("task.id", "")
    names = [p for p in tags.get("compframe.pipelines", "").split(",") if p]
    quantizer, encoder = tags.get("compframe.quantizer"), tags.get("compframe.encoder")
    if not names and task == "benchmark" and quantizer and encoder:  # a job tagged before compframe.pipelines
        names = [f"{quantizer}+{encoder}"]
    if len(names) == 1:
        pipelines = {names[0]: metrics}
    else:
        pipelines = {p: {k[len(mlflow_metric_name(p)) + 1:]: v for k, v in metrics.items()
                         if k.startswith(mlflow_metric_name(p) + ".")} for p in names}
    run = Run(id=r.info.run_id, name=r.info.run_name or "", task=task, status=r.info.status, params=params,
              tags=tags, metrics=metrics, pipelines={p: t for p, t in pipelines.items() if t})
    run._by_table = lambda: _artifact_tables(client, r, run)
    run._curve = lambda key: _history(client, r.info.run_id, key)
    return run


def _history(client, run_id: str, key: str) -> list[tuple[float, float]]:
    """A step metric's ``(step, value)`` points, one per step (the last logged). A job's totals are
    logged after its steps under the same names as step metrics (``auc``), at its last step
    (``tracking.JobTracker._log_results``), where the total is the value kept; runs logged before
    that put them at step 0: a step-0 point logged after every other point of a curve that has later
    steps is the final value again, not a measurement at step 0, and is left out."""
    points = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.timestamp, m.step == 0))
    if (len(points) > 1 and points[-1].step == 0 and any(m.step > 0 for m in points)
            and points[-1].timestamp > max(m.timestamp for m in points[:-1])):
        points = points[:-1]
    last = {m.step: m.value for m in points}  # in logging order: the last value at each step stays
    return [(float(step), float(value)) for step, value in sorted(last.items()) if math.isfinite(value)]


def _artifact_tables(client, r, run: Run) -> list[dict[str, Any]]:
    """The per-table rows of the run's results.json artifact ([] when the run has none): read in
    place from a local artifact store (a path or a ``file:`` URI), else downloaded into a temporary folder
    (a server's ``mlflow-artifacts:/...``, which has no ``//``, or any other scheme). A remote run is
    asked for its artifact list first, so that a failing server is an error, not a run without rows."""
    uri = r.info.artifact_uri or ""
    scheme = urlparse(uri).scheme
    if scheme in ("", "file"):
        path = Path(unquote(urlparse(uri).path) if scheme == "file" else uri) / "results.json"
        return _tables_of(_read_results(path)["results"], run) if path.is_file() else []
    from mlflow.exceptions import MlflowException

    try:
        if "results.json" not in {a.path for a in client.list_artifacts(r.info.run_id)}:
            return []
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(client.download_artifacts(r.info.run_id, "results.json", tmp))
            return _tables_of(_read_results(path)["results"], run)
    except (MlflowException, OSError) as e:
        message = e.message if isinstance(e, MlflowException) else str(e)
        raise DataError(f"results.json of MLflow run '{r.info.run_id}' ({uri}) could not be read: "
                        f"{' '.join(message.split())[:500]}") from None
