"""One job: build the plugins from a composed config, run the task, record the results.

``run(cfg, out_dir)`` is pure of Hydra: it takes the resolved config as a dict. All plugins are
built, and the data source validated, before any data is read, so a bad parameter fails at once.
``results.json`` (``{name, status, error, config, results}``) is written into the job's folder as
the job goes and in every case, failed runs included; the job's MLflow run is opened once the
parts are built (tagged with what runs) and gets the metrics and artifacts from it at the end.
"""

from __future__ import annotations

import json
import math
import os
import traceback
from pathlib import Path
from typing import Any

from .registry import KINDS, resolve

PIPELINE_KINDS = tuple(k for k in KINDS if k != "task")


class Recorder:
    """The job's ``results.json``, rewritten atomically after each step so a crash loses nothing."""

    def __init__(self, path: Path, name: str, config: dict[str, Any], tracker=None):
        self.path, self.name, self.config = Path(path), name, config
        self.status, self.error = "running", None
        self.results: dict[str, Any] = {}
        self.tracker = tracker

    @property
    def out_dir(self) -> Path:
        """The job's folder (where results.json, plots, dumps and checkpoints go)."""
        return self.path.parent

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Log metrics at ``step`` (a training iteration) to the job's MLflow run, if tracked.

        Tasks that run for long (``task=train``) call this as they go; results.json stays the
        record of what was measured, MLflow is the dashboard.
        """
        if self.tracker is not None:
            self.tracker.log_metrics(metrics, step)

    def document(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "error": self.error, "config": self.config,
                "results": self.results}

    def flush(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.document(), indent=1, default=_json_default))
        os.replace(tmp, self.path)


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-able: {type(value).__name__}")


def build_parts(config: dict[str, Any]) -> dict[str, Any]:
    """Create every plugin of the run from its config node (validating all parameters).

    Kinds whose node is absent or null (``model`` outside ``task=compress_model``) are left out.
    """
    return {kind: resolve(kind, config[kind]) for kind in (*PIPELINE_KINDS, "task")
            if config.get(kind) is not None}


def prepare(config: dict[str, Any]) -> dict[str, Any]:
    """Build the parts and validate the data source: every configuration error is raised here,
    before any output folder, results.json or MLflow run exists."""
    parts = build_parts(config)
    if "data" in parts:
        parts["data"].validate()
    return parts


def run_tags(parts: dict[str, Any]) -> dict[str, str]:
    """MLflow tags saying what ran: ``compframe.pipelines`` (``int8+zstd,int8+ans``) for tasks that
    name their pipelines, and ``compframe.quantizer``/``compframe.encoder`` from those pipelines."""
    task = parts.get("task")
    if not hasattr(task, "pipelines"):
        return {}
    pipelines = task.pipelines(parts)
    quantizers = dict.fromkeys(p.split("+")[0] for p in pipelines)
    encoders = dict.fromkeys(p.split("+")[1] for p in pipelines)
    return {"compframe.pipelines": ",".join(pipelines), "compframe.quantizer": ",".join(quantizers),
            "compframe.encoder": ",".join(encoders)}


def objectives(results: dict[str, Any], names: list[str]) -> float | tuple[float, ...] | None:
    """The optimized metric(s) for a sweeper: one float, or a tuple for several objectives."""
    if not names:
        return None
    totals = results.get("totals", {})
    missing = [n for n in names if n not in totals]
    if missing:
        raise KeyError(f"optimized metric(s) {missing} not in the results; available: {sorted(totals)}")
    values = tuple(float(totals[n]) for n in names)
    if any(math.isnan(v) for v in values):
        raise ValueError(f"optimized metric(s) {names} are NaN: {values}")
    return values[0] if len(values) == 1 else values


def run(config: dict[str, Any], out_dir: Path, name: str = "compframe", progress: bool = True,
        tracker=None) -> dict[str, Any]:
    """Run the job described by ``config`` and return its results dict.

    The command line ``prepare``s a single run before Hydra makes its folder, so a configuration
    error leaves nothing behind; a sweep's job that fails here is recorded as failed, like any other.
    """
    out_dir = Path(out_dir)
    recorder = Recorder(out_dir / "results.json", name, config, tracker=tracker)
    recorder.flush()
    started = False
    try:
        parts = prepare(config)
        if tracker is not None:
            tracker.start(config, tags=run_tags(parts))
            started = True
        task = parts.pop("task")
        task.run(parts, recorder, progress=progress)
        recorder.status = "finished"
    except BaseException as e:
        recorder.status = "failed"
        recorder.error = f"{type(e).__name__}: {e}"
        recorder.results.setdefault("traceback", traceback.format_exc())
        raise
    finally:
        recorder.flush()
        if tracker is not None:
            if not started:
                tracker.start(config)
            tracker.finish(recorder, out_dir)
    return recorder.results
