"""One job: build the plugins from a composed config, run the task, record the results.

``run(cfg, out_dir)`` is pure of Hydra: it takes the resolved config as a dict. All plugins are
built, and the data source validated, before any data is read, so a bad parameter fails at once.
``results.json`` (``{status, error, name, config, results}``) is written into the job's folder as
the job goes and in every case, failed runs included (atomically; on a full disk or a read-only
folder the job still ends ``failed`` wherever that can be recorded, see ``Recorder.fail``); the
job's MLflow run is opened once the parts are built (tagged with what runs) and gets the metrics
and artifacts from it at the end.
"""

from __future__ import annotations

import json
import logging
import math
import os
import traceback
from pathlib import Path
from typing import Any

from .outputs import write_atomic
from .registry import KINDS, resolve

log = logging.getLogger("compframe.job")

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

    def flush(self) -> None:
        """Write results.json atomically (a temporary file of this process's own, then a rename).

        Its first line, padded to ``HEAD_BYTES``, holds status and error, so that ``fail`` can still
        mark the file failed in place when the disk takes no new bytes.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"name": self.name, "config": self.config, "results": self.results}, indent=1,
                          default=_json_default)
        write_atomic(self.path, _head(self.status, self.error) + body[1:].encode())

    def fail(self, error: BaseException) -> None:
        """Record the failure: status ``failed``, a one-line error, the traceback in the results.

        If results.json cannot be rewritten (a full disk, a read-only folder), the first line of the
        last complete results.json is overwritten in place (same length, no new disk blocks) with
        the failed status and the error; where even that fails, MLflow alone records the failure.
        """
        self.status = "failed"
        self.error = one_line(error)
        self.results.setdefault("traceback", traceback.format_exc())
        try:
            self.flush()
        except OSError as e:
            try:
                self._mark_failed_in_place()
            except OSError as again:
                log.error("results.json could not record the failure (%s; then %s)", one_line(e), one_line(again))

    def _mark_failed_in_place(self) -> None:
        fd = os.open(self.path, os.O_RDWR)
        try:
            first = os.pread(fd, HEAD_BYTES, 0)
            if len(first) != HEAD_BYTES or not first.startswith(b'{"status": ') or first[-1:] != b"\n":
                raise OSError(f"'{self.path}' does not start with a status line")
            os.pwrite(fd, _head(self.status, self.error), 0)
        finally:
            os.close(fd)


HEAD_BYTES = 1024


def _head(status: str, error: str | None) -> bytes:
    """``{"status": ..., "error": ...,`` padded with spaces to ``HEAD_BYTES`` (newline included)."""
    text = error
    while True:
        head = f'{{"status": {json.dumps(status)}, "error": {json.dumps(text)},'.encode()
        if len(head) < HEAD_BYTES:
            return head.ljust(HEAD_BYTES - 1) + b"\n"
        text = text[:max(len(text) - (len(head) - HEAD_BYTES) - 8, 0)] + "..."


def one_line(error: BaseException) -> str:
    """``Type: message`` on one line (newlines in the message become ``; ``)."""
    message = "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return f"{type(error).__name__}: {message}"


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
    started = False
    try:
        recorder.flush()
        parts = prepare(config)
        if tracker is not None:
            tracker.start(config, tags=run_tags(parts))
            started = True
        task = parts.pop("task")
        task.run(parts, recorder, progress=progress)
        recorder.status = "finished"
        recorder.flush()
    except BaseException as e:
        recorder.fail(e)
        raise
    finally:
        if tracker is not None:
            if not started:
                tracker.start(config)
            tracker.finish(recorder, out_dir)
    return recorder.results
