"""Runs under an unlucky cluster: jobs started together, one sqlite MLflow store written by several
processes, a full disk or a read-only folder, and a killed Optuna sweep resumed (issue 10)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compframe import job, outputs
from compframe.tracking import JobTracker, _Retrying, close_orphans, process_tags
from conftest import ROOT, SMALL, run_cli

CONFIG = {"data": {"id": "synthetic", "tables": 2, "iterations": 1, "batch": 256}, "schedule": {"id": "step"},
          "quantizer": {"id": "int8"}, "encoder": {"id": "lz4"}, "task": {"id": "benchmark"}}


def tracking(folder: Path) -> dict:
    return {"enabled": True, "uri": f"sqlite:///{folder / 'mlflow.db'}", "artifacts": str(folder / "mlartifacts"),
            "experiment": "compframe", "lock_timeout_s": 60}


def mlflow_runs(folder: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    return client.search_runs([client.get_experiment_by_name("compframe").experiment_id], max_results=1000)


def leftovers(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.tmp"))


# --- folders and concurrent MLflow ---

@pytest.mark.slow
def test_jobs_started_together_get_their_own_folders(cli):
    """Two command-line jobs at once: two folders, two FINISHED runs in one new sqlite store."""
    run, folder = cli
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "1"}
    cmd = [sys.executable, "-m", "compframe.run", *SMALL]
    procs = [subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    results = sorted(folder.glob("outputs/runs/*/*/results.json"))
    assert len(results) == 2 and all(json.loads(r.read_text())["status"] == "finished" for r in results)
    runs = mlflow_runs(folder / "outputs")
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]
    assert not leftovers(folder / "outputs")


TRACK = """
import sys
from compframe.tracking import JobTracker
t = JobTracker({"enabled": True, "uri": sys.argv[1], "experiment": "compframe", "artifacts": sys.argv[2]}, sys.argv[3])
t.start({"task": {"id": "benchmark"}, "values": list(range(200))})
for step in range(20):
    t.log_metrics({"loss": float(step)}, step)
print(t.error)
"""


@pytest.mark.slow
def test_processes_creating_and_writing_one_sqlite_store_all_succeed(tmp_path):
    """Three processes open the same new store at once (MLflow's schema migrations would race:
    'table experiments already exists', 'duplicate column name: step'), then log concurrently."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path / "art")]
    procs = [subprocess.Popen([sys.executable, "-c", TRACK, *args, f"job{i}"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(3)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0 and out.strip() == "None", err[-2000:]
    runs = mlflow_runs(tmp_path)
    assert len(runs) == 3
    from mlflow.tracking import MlflowClient

    client = MlflowClient(args[0])
    assert all(len(client.get_metric_history(r.info.run_id, "loss")) == 20 for r in runs)


def test_locked_database_is_retried_with_backoff():
    calls = []

    class Flaky:
        def log_batch(self, value):
            calls.append(time.monotonic())
            if len(calls) < 4:
                raise RuntimeError("(sqlite3.OperationalError) database is locked")
            return value

        def create_run(self):
            raise RuntimeError("no such table: runs")

    client = _Retrying(Flaky(), timeout_s=10)
    assert client.log_batch(7) == 7 and len(calls) == 4
    assert calls[1] - calls[0] >= 0.025 and calls[3] - calls[2] >= 0.1  # waits of 25-50 ms, then 100-200 ms
    with pytest.raises(RuntimeError, match="no such table"):  # anything else is raised at once
        client.create_run()

    class Locked:
        def log_batch(self, value):
            raise RuntimeError("database is locked")

    start = time.monotonic()
    with pytest.raises(RuntimeError, match="database is locked"):  # until the timeout, then raised
        _Retrying(Locked(), timeout_s=0.3).log_batch(1)
    assert 0.1 < time.monotonic() - start < 5.0


# --- disk faults ---

@pytest.fixture
def disk_fault(monkeypatch):
    """Make writes under one folder fail at the OS-call level, in this process: ``os.write`` of a
    file there raises ``ENOSPC`` once ``full`` is set (a full disk: files can be opened, bytes
    cannot be added; rewriting bytes already on disk with ``pwrite`` still works, as on ext4 or
    XFS), and ``os.open`` of a new file there raises ``EROFS`` when ``read_only`` is set. A tiny
    tmpfs would be the real thing; it needs privileges this machine's test runs do not have."""
    state = {"folder": None, "full": False, "read_only": False}
    real_write, real_open = os.write, os.open

    def inside(path) -> bool:
        return state["folder"] is not None and Path(path).resolve().is_relative_to(state["folder"])

    def write(fd, data):
        if state["full"] and inside(os.readlink(f"/proc/self/fd/{fd}")):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    def open_(path, flags, *args, **kwargs):
        if state["read_only"] and flags & os.O_CREAT and inside(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "open", open_)
    return state


def test_write_atomic_on_a_full_disk_keeps_the_old_file_and_no_tmp(tmp_path, disk_fault):
    target = tmp_path / "results.json"
    outputs.write_atomic(target, b'{"old": 1}')
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~outputs._UMASK)
    disk_fault.update(folder=tmp_path.resolve(), full=True)
    with pytest.raises(OSError) as e:
        outputs.write_atomic(target, b'{"new": 2}' * 1000)
    assert e.value.errno == errno.ENOSPC
    assert target.read_bytes() == b'{"old": 1}' and not leftovers(tmp_path)


def test_full_disk_ends_the_job_failed(tmp_path, disk_fault, monkeypatch):
    """The disk fills while the job runs: its last results.json write fails. results.json still says
    'failed' with a one-line error (rewritten in place), no .tmp is left, and MLflow says FAILED."""
    out = tmp_path / "job"
    out.mkdir()
    disk_fault["folder"] = out.resolve()
    real_prepare = job.prepare

    def prepare_then_fill(config):  # the first results.json is written; then the disk is full
        disk_fault["full"] = True
        return real_prepare(config)

    monkeypatch.setattr(job, "prepare", prepare_then_fill)
    tracker = JobTracker(tracking(tmp_path / "mlflow"), "full-disk")
    with pytest.raises(OSError, match="No space left on device"):
        job.run(CONFIG, out, progress=False, tracker=tracker)
    doc = json.loads((out / "results.json").read_text())
    assert doc["status"] == "failed" and doc["error"] == "OSError: [Errno 28] No space left on device"
    assert "\n" not in doc["error"] and not leftovers(out)
    (run,) = mlflow_runs(tmp_path / "mlflow")
    assert run.info.status == "FAILED" and run.data.tags["compframe.error"] == doc["error"]


def test_read_only_folder_ends_the_job_failed(tmp_path, disk_fault):
    """Nothing can be created in the job's folder: no results.json, no .tmp, and MLflow (elsewhere)
    holds the FAILED status and the one-line error. A real chmod is used when not running as root
    (root writes through permissions), else the EROFS of a read-only mount is simulated."""
    out = tmp_path / "job"
    out.mkdir()
    if os.geteuid() == 0:
        disk_fault.update(folder=out.resolve(), read_only=True)
    else:
        out.chmod(0o555)
    tracker = JobTracker(tracking(tmp_path / "mlflow"), "read-only")
    try:
        with pytest.raises(OSError) as e:
            job.run(CONFIG, out, progress=False, tracker=tracker)
    finally:
        out.chmod(0o755)
    assert e.value.errno in (errno.EROFS, errno.EACCES)
    assert not list(out.iterdir())
    (run,) = mlflow_runs(tmp_path / "mlflow")
    assert run.info.status == "FAILED"
    error = run.data.tags["compframe.error"]
    assert error.startswith("PermissionError: " if e.value.errno == errno.EACCES else "OSError: [Errno 30]")
    assert "\n" not in error


def test_runs_of_dead_processes_are_closed_as_killed(tmp_path):
    from mlflow.tracking import MlflowClient

    from compframe.tracking import _open_store

    client, exp = _open_store(tracking(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "from compframe.outputs import process_token; print(process_token())"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout.strip()
    assert dead and not outputs.process_alive(dead) and outputs.process_alive(outputs.process_token())
    orphan = client.create_run(exp, tags={**process_tags(), "compframe.process": dead}).info.run_id
    live = client.create_run(exp, tags=process_tags()).info.run_id
    other_host = client.create_run(exp, tags={"compframe.host": "elsewhere", "compframe.process": dead}).info.run_id
    assert close_orphans(client, exp) == 1
    status = {r: MlflowClient(tracking(tmp_path)["uri"]).get_run(r).info.status for r in (orphan, live, other_host)}
    assert status == {orphan: "KILLED", live: "RUNNING", other_host: "RUNNING"}


# --- sweep resume ---

def test_resumed_seed():
    from compframe.sweeper_impl import resumed_seed

    assert resumed_seed(0, 0) == 0 and resumed_seed(None, 5) is None
    assert len({resumed_seed(0, n) for n in range(1, 50)} | {0}) == 50 and resumed_seed(0, 3) == resumed_seed(0, 3)


def _study(folder: Path):
    import optuna

    return optuna.load_study(study_name="compframe_pareto", storage=f"sqlite:///{folder / 'outputs' / 'optuna.db'}")


@pytest.mark.slow
def test_killed_sweep_resumes_cleanly(tmp_path):
    """A real Optuna sweep is killed (SIGKILL) while a trial runs, then the same command resumes it."""
    import optuna

    args = ["-m", "hparams_search=pareto", "hydra.sweep.dir=outputs/sweep", "hydra.sweeper.heartbeat_interval=1",
            "hydra.sweeper.grace_period=3", "hydra.sweeper.sampler.n_startup_trials=50", "data.tables=2",
            "data.iterations=2", "data.batch=2048", "progress=false"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "1"}
    first = subprocess.Popen([sys.executable, "-m", "compframe.run", *args, "hydra.sweeper.n_trials=100"], cwd=tmp_path,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while True:
        assert first.poll() is None and time.monotonic() < deadline, "the sweep ended before it could be killed"
        time.sleep(0.3)
        try:
            states = [t.state for t in _study(tmp_path).trials]
        except Exception:  # noqa: BLE001 - the study is not created yet
            continue
        if states.count(optuna.trial.TrialState.COMPLETE) >= 2 and states[-1] == optuna.trial.TrialState.RUNNING:
            current = list((tmp_path / "outputs" / "sweep").glob(f"{len(states) - 1}_*/results.json"))
            if current and json.loads(current[0].read_text())["status"] == "running":
                break
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    before = _study(tmp_path).trials
    killed = before[-1].number
    assert before[-1].state == optuna.trial.TrialState.RUNNING
    folders = {p.parent.name: p.read_bytes() for p in (tmp_path / "outputs" / "sweep").glob("*/results.json")}
    running_runs = [r.info.run_id for r in mlflow_runs(tmp_path / "outputs") if r.info.status == "RUNNING"]
    assert running_runs  # the killed sweep's parent (and its running child, if it had opened its run)
    time.sleep(4)  # past the grace period: the killed trial's heartbeat is stale

    p = run_cli([*args, "hydra.sweeper.n_trials=2"], tmp_path, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    after = _study(tmp_path).trials
    assert after[killed].state == optuna.trial.TrialState.FAIL
    assert len(after) == len(before) + 2 and all(t.state.name == "COMPLETE" for t in after[len(before):])
    old = [t.params for t in before]
    new = [t.params for t in after[len(before):]]
    assert all(n not in old for n in new) and new != old[:2]   # no replay of the first run's draws
    # earlier trials' folders untouched; the new ones are named by their trial number
    now = {p.parent.name: p.read_bytes() for p in (tmp_path / "outputs" / "sweep").glob("*/results.json")}
    assert all(now[name] == content for name, content in folders.items())
    assert sorted(int(n.split("_")[0]) for n in set(now) - set(folders)) == [t.number for t in after[len(before):]]
    runs = {r.info.run_id: r.info.status for r in mlflow_runs(tmp_path / "outputs")}
    assert all(runs[r] == "KILLED" for r in running_runs)
    assert "RUNNING" not in runs.values()


def test_a_repeated_quantizer_is_tracked_under_an_mlflow_safe_name(tmp_path):
    """``int8`` twice gets the labels ``int8#1`` and ``int8#2``; MLflow refuses '#', which once
    dropped the job's whole MLflow record. Every pipeline's metrics are there, as ``int8_1_lz4.*``."""
    config = {**CONFIG, "task": {"id": "benchmark", "quantizers": ["int8", "int8"]}}
    tracker = JobTracker(tracking(tmp_path / "mlflow"), "repeated")
    job.run(config, tmp_path / "job", progress=False, tracker=tracker)
    assert tracker.error is None
    (run,) = mlflow_runs(tmp_path / "mlflow")
    assert run.info.status == "FINISHED"
    for pipeline in ("int8_1_lz4", "int8_2_lz4"):
        assert run.data.metrics[f"{pipeline}.compression_ratio"] > 1


def test_job_folder_names_stay_within_the_file_systems_limit():
    short = "data.seed=1,quantizer=int8"
    assert outputs.dirname(short) == short and outputs.dirname("data.path=/a/b") == "data.path=_a_b"
    long = ",".join(f"data.parameter_{i}={i}" for i in range(40))
    names = {outputs.dirname(long), outputs.dirname(long.replace("=39", "=38"))}
    assert len(names) == 2  # the hash tells apart overrides that differ only past the cut
    for name in names:
        assert len(name.encode()) <= outputs.DIRNAME_BYTES and name.startswith("data.parameter_0=0,")
        assert name.split("~")[0].endswith(("=", *"0123456789")) and "/" not in name
    assert len(outputs.dirname("x=" + "é" * 300).encode()) <= outputs.DIRNAME_BYTES  # cut on a character


def test_multirun_with_many_overrides_runs(tmp_path):
    """Twenty overrides made Hydra's job folder name longer than 255 bytes (OSError: File name too long)."""
    many = ["data.max_rows=1000", "data.bag_size=3", "data.zipf=1.2", "data.dump_interval=4096", "data.drift=0.02",
            "schedule.base=0.02", "schedule.loose=0.04", "schedule.loose_tables=[0]", "schedule.E=3.0", "schedule.S=1000", "encoder.mode=fast", "encoder.acceleration=2",
            "encoder.block=65536", "encoder.threads=1", "task.bandwidths_gbps=[5.0,10.0,25.0]",
            "task.warmup=false", "data.seed=1,2"]
    p = run_cli([*SMALL, "data.tables=1", "tracking.enabled=false", *many, "-m"], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    jobs = sorted(tmp_path.glob("outputs/multirun/*/*/*/results.json"))
    assert len(jobs) == 2 and all("~" in j.parent.name and len(j.parent.name.encode()) < 255 for j in jobs)
