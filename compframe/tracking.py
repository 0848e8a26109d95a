"""MLflow tracking: one run per job; in a multirun, one parent run per sweep with a child per job.

The default store is the embedded ``sqlite:///outputs/mlflow.db`` (artifacts under
``outputs/mlartifacts``); ``tracking.uri=http://host:port`` logs to a server instead, and
``tracking.enabled=false`` switches tracking off. Tracking never loses results: they are in the
job's ``results.json`` first, and any MLflow failure is reported as a warning, not raised.

Parent runs are opened by ``SweepCallback`` (a Hydra callback) when a multirun starts; it leaves
the parent's id in ``<sweep dir>/mlflow_parent_run_id``, where each job (in this process or a
launcher's worker) finds it. When the sweep ends the parent is closed (FAILED if any child failed)
and, for an Optuna sweep, the Pareto front is printed, written and logged.

Several jobs on one sqlite store: the store is created (MLflow's schema migrations) and the
experiment looked up or created under a file lock beside the db (``mlflow.db.lock``), and every
MLflow call that meets "database is locked" is retried with exponential backoff for up to
``tracking.lock_timeout_s``. That makes concurrent jobs on one machine safe, not fast: for many
writers use PostgreSQL or a tracking server (docs/tracking.md).

Every run is tagged with its host and process (``compframe.host``, ``compframe.process``). When a
run or a sweep starts, RUNNING runs of this host whose process is gone (a killed job or sweep) are
closed as KILLED, so a resumed sweep leaves no run of the killed one RUNNING. A job's run also
records the numba threads it ran with (``compframe.threads``, see ``compframe.workers``).

A launcher that pickles the callbacks to its workers (joblib, submitit) gets ``SweepCallback``
without its parent run; each job finds the parent's id in the sweep folder.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from .dblock import schema_lock
from .dblock import sqlite_file as _sqlite_file  # noqa: F401 - compframe.report reads sqlite stores through it
from .outputs import hostname, process_alive, process_token, write_atomic

log = logging.getLogger("compframe.tracking")

PARENT_FILE = "mlflow_parent_run_id"


def _mlflow_env(tracking: dict[str, Any]) -> None:
    # Fail fast when a server is unreachable instead of MLflow's default minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(tracking.get("retries", 1)))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(tracking.get("timeout_s", 10)))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")


def _locked(error: BaseException) -> bool:
    text = str(error).lower()
    return "database is locked" in text or "database table is locked" in text


class _Retrying:
    """An MlflowClient whose calls are retried on sqlite's "database is locked", with exponential
    backoff (50 ms doubling to 2 s, jittered) for up to ``timeout_s`` seconds in all."""

    def __init__(self, client, timeout_s: float):
        self._client, self._timeout_s = client, timeout_s

    def __getattr__(self, name: str):
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args, **kwargs):
            deadline, delay = time.monotonic() + self._timeout_s, 0.05
            while True:
                try:
                    return method(*args, **kwargs)
                except Exception as e:  # noqa: BLE001 - only a locked db is retried
                    if not _locked(e) or time.monotonic() + delay > deadline:
                        raise
                    time.sleep(delay * random.uniform(0.5, 1.0))
                    delay = min(2 * delay, 2.0)

        return call


def _open_store(tracking: dict[str, Any]):
    """A (retrying) client and the experiment id; the store is created and the experiment created
    or found under ``dblock.schema_lock`` (a file lock for sqlite, an advisory lock for PostgreSQL),
    so concurrent first runs do not race MLflow's migrations."""
    _mlflow_env(tracking)
    from mlflow.tracking import MlflowClient

    uri, timeout = tracking["uri"], float(tracking.get("lock_timeout_s", 60))
    with schema_lock(uri, timeout):  # MlflowClient creates (and migrates) the store at once
        client = _Retrying(MlflowClient(tracking_uri=uri), timeout)
        return client, _experiment_id(client, tracking)


def _experiment_id(client, tracking: dict[str, Any]) -> str:
    name = tracking["experiment"]
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    artifacts = None
    if not tracking["uri"].startswith(("http://", "https://")):
        artifacts = Path(tracking.get("artifacts", "outputs/mlartifacts")).resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=artifacts)
    except Exception:  # noqa: BLE001 - another process (of another machine) created it meanwhile
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def process_tags() -> dict[str, str]:
    """Host and process of the run, to tell later whether it is still alive."""
    return {"compframe.host": hostname(), "compframe.process": process_token() or str(os.getpid())}


def _numba_threads() -> int:
    import numba

    return numba.get_num_threads()


def close_orphans(client, experiment_id: str) -> int:
    """Close as KILLED the RUNNING runs of this host whose process is gone; returns how many."""
    runs = client.search_runs([experiment_id], max_results=10000,
                              filter_string=f"attributes.status = 'RUNNING' and tags.`compframe.host` = '{hostname()}'")
    closed = 0
    for run in runs:
        token = run.data.tags.get("compframe.process")
        if token and not process_alive(token):
            client.set_tag(run.info.run_id, "compframe.closed", f"process {token} was gone; closed as KILLED by {process_token()}")
            client.set_terminated(run.info.run_id, status="KILLED")
            closed += 1
    if closed:
        log.info("closed %d MLflow run(s) of killed processes as KILLED", closed)
    return closed


def flatten(config: Any, prefix: str = "") -> dict[str, str]:
    """Flatten a nested config into ``a.b.c -> str(value)`` params."""
    out: dict[str, str] = {}
    if isinstance(config, dict):
        for k, v in config.items():
            out.update(flatten(v, f"{prefix}{k}."))
    else:
        out[prefix[:-1]] = json.dumps(config) if isinstance(config, (list, tuple)) else str(config)
    return out


_NOT_IN_METRIC_NAMES = re.compile(r"[^A-Za-z0-9_\-. /:]")


def mlflow_metric_name(name: str) -> str:
    """MLflow metric names hold letters, digits and ``_-. /:`` only: ``speedup@5GBps`` is logged as
    ``speedup_at_5GBps``, the pipeline ``int8+lz4`` as ``int8_lz4``, a repeated quantizer ``lplr#2``
    as ``lplr_2`` (any other character becomes ``_``)."""
    return _NOT_IN_METRIC_NAMES.sub("_", name.replace("@", "_at_").replace("+", "_"))


class JobTracker:
    """Tracks one job; every MLflow error is turned into a warning and tracking is dropped."""

    def __init__(self, tracking: dict[str, Any], run_name: str, parent_dir: Path | None = None):
        self.tracking = tracking
        self.run_name = run_name
        self.parent_dir = parent_dir
        self.client = self.run_id = None
        self.error: str | None = None
        self.last_step = 0  # the totals are logged at the last step a step metric was logged at

    def _guard(self, what: str, fn, *args, after_error: bool = False):
        """Run ``fn``; after a first MLflow error nothing more is tried, unless ``after_error``."""
        if (self.error is not None and not after_error) or not self.tracking.get("enabled", True):
            return None
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 - tracking must never lose a job
            self.error = f"{type(e).__name__}: {e}"
            log.warning("MLflow tracking failed while %s (%s); results stay in the job's folder only",
                        what, self.error.splitlines()[0][:300])
            return None

    def start(self, config: dict[str, Any], tags: dict[str, str] | None = None) -> None:
        """Open the run; ``tags`` (what ran, e.g. ``compframe.pipelines``) override the config's ids."""
        self._guard("starting the run", self._start, config, tags or {})

    def _start(self, config: dict[str, Any], extra_tags: dict[str, str]) -> None:
        self.client, exp = _open_store(self.tracking)
        if self.parent_dir is None:  # a sweep's callback does this once for all its jobs
            close_orphans(self.client, exp)
        tags = {f"compframe.{k}": str(config[k]["id"]) for k in ("data", "schedule", "quantizer", "encoder", "model", "task")
                if isinstance(config.get(k), dict) and "id" in config[k]}
        tags.update(extra_tags)
        tags.update(process_tags())
        tags["compframe.threads"] = str(_numba_threads())  # the job's share of the CPUs (compframe.workers)
        parent = None
        if self.parent_dir is not None and (self.parent_dir / PARENT_FILE).exists():
            parent = (self.parent_dir / PARENT_FILE).read_text().strip()
            tags["mlflow.parentRunId"] = parent
        run = self.client.create_run(exp, run_name=self.run_name, tags=tags)
        self.run_id = run.info.run_id
        from mlflow.entities import Param

        params = [Param(k, v[:6000]) for k, v in flatten(config).items()]
        for i in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[i:i + 100])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Log numeric ``metrics`` at ``step`` (names made MLflow-safe); a failure drops tracking."""
        if self.run_id is None:
            return
        self._guard("logging step metrics", self._log_metrics, metrics, step)

    def _log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.last_step = max(self.last_step, int(step))
        batch = [Metric(mlflow_metric_name(k), float(v), now, int(step)) for k, v in metrics.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)]
        for i in range(0, len(batch), 500):
            self.client.log_batch(self.run_id, metrics=batch[i:i + 500])

    def finish(self, recorder, out_dir: Path) -> None:
        """Log the results and close the run: FINISHED, or FAILED (with the job's one-line error in
        the tag ``compframe.error``) if the job failed or its MLflow record is incomplete. The run is
        closed even after an MLflow error (a full disk under the artifacts), never left RUNNING."""
        if self.run_id is None:
            return
        self._guard("logging the results", self._log_results, recorder, Path(out_dir))
        self._guard("closing the run", self._close, recorder, after_error=True)
        if self.error is not None:
            log.warning("results are in %s", Path(out_dir) / "results.json")

    def _close(self, recorder) -> None:
        if recorder.error:
            self.client.set_tag(self.run_id, "compframe.error", recorder.error[:5000])
        if self.error:
            self.client.set_tag(self.run_id, "compframe.tracking_error", self.error.splitlines()[0][:5000])
        ok = recorder.status == "finished" and self.error is None
        self.client.set_terminated(self.run_id, status="FINISHED" if ok else "FAILED")

    def _log_results(self, recorder, out_dir: Path) -> None:
        """The totals (and per-pipeline totals) as metrics at the job's last step (0 for a job
        without step metrics: a total named like a step metric, ``auc``, is its curve's last point,
        not a measurement at step 0), then results.json, the Hydra config and the plots."""
        from mlflow.entities import Metric

        now, step = int(time.time() * 1000), self.last_step
        totals = recorder.results.get("totals", {})
        metrics = [Metric(mlflow_metric_name(k), float(v), now, step) for k, v in totals.items()
                   if isinstance(v, (int, float)) and v is not None]
        by_pipeline = recorder.results.get("by_pipeline", {})
        if len(by_pipeline) > 1:
            for pipeline, t in by_pipeline.items():
                metrics += [Metric(mlflow_metric_name(f"{pipeline}.{k}"), float(v), now, step) for k, v in t.items()
                            if isinstance(v, (int, float)) and v is not None]
        for i in range(0, len(metrics), 500):
            self.client.log_batch(self.run_id, metrics=metrics[i:i + 500])
        if (out_dir / "results.json").exists():  # not when the folder could not be written
            self.client.log_artifact(self.run_id, str(out_dir / "results.json"))
        if (out_dir / ".hydra").is_dir():
            self.client.log_artifacts(self.run_id, str(out_dir / ".hydra"), artifact_path=".hydra")
        for plot in out_dir.glob("*.png"):
            self.client.log_artifact(self.run_id, str(plot), artifact_path="plots")


class SweepCallback(Callback):
    """Hydra callback: a parent MLflow run around a multirun, and the Pareto front of Optuna sweeps."""

    def __init__(self) -> None:
        self.parent: JobTracker | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the parent run: a launcher's workers (joblib, submitit) receive the
        callbacks with each job, and a job finds its parent through the sweep folder, not a client."""
        return {**self.__dict__, "parent": None}

    @staticmethod
    def _tracking(config) -> dict[str, Any]:
        from omegaconf import OmegaConf

        return OmegaConf.to_container(config.tracking, resolve=True)

    def on_multirun_start(self, config, **kwargs) -> None:
        # The Optuna sweeper logs the Pareto front line by line; pareto_front() prints it once, as a table.
        logging.getLogger("hydra_plugins.hydra_optuna_sweeper._impl").addFilter(_not_the_front)
        tracking = self._tracking(config)
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / PARENT_FILE).unlink(missing_ok=True)
        self.parent = JobTracker(tracking, run_name=f"sweep {sweep_dir.name}")
        self.parent._guard("opening the sweep's parent run", self._open, config, sweep_dir)

    def _open(self, config, sweep_dir: Path) -> None:
        from omegaconf import OmegaConf

        p = self.parent
        p.client, exp = _open_store(p.tracking)
        close_orphans(p.client, exp)  # a resumed sweep closes the killed sweep's runs
        sweeper = str(OmegaConf.select(config, "hydra.sweeper._target_", default="")).rsplit(".", 1)[-1]
        overrides = " ".join(OmegaConf.to_container(config.hydra.overrides.task, resolve=False))
        tags = {"compframe.sweep": "true", "compframe.sweeper": sweeper, "compframe.overrides": overrides[:5000],
                **process_tags()}
        study = OmegaConf.select(config, "hydra.sweeper.study_name", default=None)
        if study:
            tags["compframe.study"] = str(study)
        run = p.client.create_run(exp, run_name=p.run_name, tags=tags)
        p.run_id = run.info.run_id
        write_atomic(sweep_dir / PARENT_FILE, p.run_id.encode())

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        front = pareto_front(config, sweep_dir)
        if self.parent is None or self.parent.run_id is None:
            return
        self.parent._guard("closing the sweep's parent run", self._close, sweep_dir, front)

    def _close(self, sweep_dir: Path, front) -> None:
        p = self.parent
        children = p.client.search_runs(
            [p.client.get_run(p.run_id).info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{p.run_id}'", max_results=10000)
        failed = sum(r.info.status != "FINISHED" for r in children)
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        p.client.log_batch(p.run_id, metrics=[Metric("n_jobs", len(children), now, 0),
                                              Metric("n_failed_jobs", failed, now, 0)])
        for name in ("multirun.yaml", "optimization_results.yaml", "pareto_front.json"):
            if (sweep_dir / name).exists():
                p.client.log_artifact(p.run_id, str(sweep_dir / name))
        p.client.set_terminated(p.run_id, status="FAILED" if failed else "FINISHED")


def _not_the_front(record: logging.LogRecord) -> bool:
    message = str(record.msg)
    return not (message.startswith("Number of Pareto solutions") or message.startswith("    Values: "))


def pareto_front(config, sweep_dir: Path) -> list[dict[str, Any]] | None:
    """For an Optuna sweep with several objectives: print, save and return its Pareto front."""
    from omegaconf import OmegaConf

    sweeper = OmegaConf.select(config, "hydra.sweeper", default=None)
    if sweeper is None or "optuna" not in str(sweeper.get("_target_", "")).lower():
        return None
    storage, study_name = sweeper.get("storage"), sweeper.get("study_name")
    if not storage or not study_name:
        return None
    try:
        import optuna

        study = optuna.load_study(study_name=study_name, storage=storage)
        if len(study.directions) < 2:
            return None
        names = list(OmegaConf.select(config, "optimized_metrics", default=[]))
        front = [{"trial": t.number, "params": t.params, "values": dict(zip(names, t.values))} for t in study.best_trials]
    except Exception as e:  # noqa: BLE001 - a report, never a reason to fail the sweep
        log.warning("could not read the Optuna study for the Pareto front: %s", e)
        return None
    (sweep_dir / "pareto_front.json").write_text(json.dumps(front, indent=1))
    from rich.table import Table

    from .console import stdout_console

    states = [t.state.name for t in study.trials]
    table = Table(title=f"Pareto front of study '{study_name}' ({len(front)} of {len(states)} trials; "
                        f"{states.count('FAIL')} failed)")
    keys = sorted({k for row in front for k in row["params"]})
    for col in ("trial", *keys, *names):
        table.add_column(col, justify="right")
    for row in sorted(front, key=lambda r: r["trial"]):
        table.add_row(str(row["trial"]), *[str(row["params"].get(k, "")) for k in keys],
                      *[f"{row['values'][n]:.4g}" for n in names])
    stdout_console().print(table)
    print(f"pareto front: {(sweep_dir / 'pareto_front.json').resolve()}")
    return front
