"""Scale-out on real engines (docs/scale-out.md): Hydra's joblib and submitit launchers, two sweepers
sharing one Optuna study on a real PostgreSQL, and an MLflow tracking server with a PostgreSQL
backend store and an artifact root that several jobs log to at once, and ``compframe report`` reading
from that server and logging to it.

The PostgreSQL tests start Debian's server in a temporary folder (tests/pg.py) and are skipped,
with the reason, where it is not installed or does not start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from conftest import mlflow_server as start_mlflow_server
from pg import PostgresUnavailable, postgres_server

TINY = ["data.tables=2", "data.iterations=1", "data.batch=128", "progress=false"]


@pytest.fixture(scope="module")
def postgres():
    try:
        with postgres_server() as server:
            yield server
    except PostgresUnavailable as e:
        pytest.skip(f"no PostgreSQL server: {e}")


def mlflow_runs(uri: str, experiment: str = "compframe"):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment} in {uri}"
    return client, client.search_runs([exp.experiment_id], max_results=1000)


def split_runs(runs):
    parents = [r for r in runs if r.data.tags.get("compframe.sweep") == "true"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def job_folders(folder: Path) -> dict[str, dict]:
    """Every job folder of every sweep under ``folder``/outputs/multirun: name -> results.json."""
    files = (folder / "outputs" / "multirun").glob("*/*/*/results.json")
    return {p.parent.name: json.loads(p.read_text()) for p in files}


# --- threads per job, seeds per trial (fast) ---

def test_cpu_budget_follows_the_launcher_limits(monkeypatch):
    from compframe.workers import cpu_budget

    for var in ("SLURM_CPUS_PER_TASK", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    cpus = len(os.sched_getaffinity(0))
    assert cpu_budget() == cpus
    monkeypatch.setenv("NUMBA_NUM_THREADS", "1")   # what joblib's loky gives each of CPUs workers
    assert cpu_budget() == 1
    monkeypatch.setenv("NUMBA_NUM_THREADS", str(cpus + 8))
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    assert cpu_budget() == min(cpus, 3)


def test_limit_threads_caps_numba_in_a_worker():
    code = "from compframe.workers import limit_threads; import numba; print(limit_threads(), numba.get_num_threads())"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("NUMBA_NUM_THREADS", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["1", "1"]


def test_sweepers_sharing_a_study_draw_different_parameters(tmp_path):
    """Two samplers with the same seed on one study (two sweeper processes) and a third alone.

    One stream per process drew identical parameters in both processes (seen with two real sweepers
    on PostgreSQL); seeded by trial number, trials differ and a sweep is still reproducible."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from compframe.sweeper_impl import seed_per_trial

    space = {"encoder": CategoricalDistribution(["none", "lz4", "zstd"]),
             "base": FloatDistribution(1e-4, 0.1, log=True)}

    def sampler(per_trial: bool):
        s = optuna.samplers.RandomSampler(seed=0)
        if per_trial:
            seed_per_trial(s, 0)
        return s

    def draws(studies, n):
        out = []
        for i in range(n):
            study = studies[i % len(studies)]
            trial = study.ask(space)
            study.tell(trial, 1.0)
            out.append((trial.number, trial.params["encoder"], trial.params["base"]))
        return out

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for per_trial in (False, True):
        storage = f"sqlite:///{tmp_path / f'study{per_trial}.db'}"
        a, b = (optuna.create_study(study_name="s", storage=storage, sampler=sampler(per_trial), load_if_exists=True)
                for _ in range(2))
        shared = draws([a, b], 10)
        bases = [base for _, _, base in shared]
        if per_trial:
            assert len(set(bases)) == 10
        else:  # the failure this guards against: each process repeats the other's draws
            assert bases[0::2] == bases[1::2]
    alone = draws([optuna.create_study(sampler=sampler(True))], 10)
    assert alone == shared   # the same draws, trial by trial, as the two processes together


def test_a_batch_with_gaps_in_its_trial_numbers_is_launched_by_trial_number():
    """Another sweeper asked trial 5 between this one's 4 and 6: jobs 4, 6, 7, never 4, 5, 6."""
    from types import SimpleNamespace

    from compframe.sweeper_impl import _TrialLauncher

    calls = []
    launcher = SimpleNamespace(launch=lambda overrides, initial_job_idx: calls.append((overrides, initial_job_idx))
                               or [f"job {initial_job_idx + i}" for i in range(len(overrides))])
    impl = SimpleNamespace(asked=[SimpleNamespace(number=n) for n in (4, 6, 7)], heartbeat=False)
    returns = _TrialLauncher(launcher, impl).launch([["a"], ["b"], ["c"]], initial_job_idx=0)
    assert calls == [([["a"]], 4), ([["b"], ["c"]], 6)]
    assert returns == ["job 4", "job 6", "job 7"]


# --- launchers ---

@pytest.mark.slow
def test_joblib_launcher_runs_jobs_in_two_worker_processes(cli):
    run, folder = cli
    p = run(["encoder=lz4,zstd", *TINY, "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    jobs = job_folders(folder)
    assert sorted(name.split("_")[0] for name in jobs) == ["0", "1"]
    assert all(d["status"] == "finished" and d["results"]["totals"]["compression_ratio"] > 1 for d in jobs.values())
    _, runs = mlflow_runs(f"sqlite:///{folder / 'outputs' / 'mlflow.db'}")
    parents, children = split_runs(runs)
    assert len(parents) == 1 and len(children) == 2
    assert all(r.info.status == "FINISHED" and r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
               and "compression_ratio" in r.data.metrics for r in children)
    workers = {r.data.tags["compframe.process"] for r in children}
    assert len(workers) == 2 and parents[0].data.tags["compframe.process"] not in workers   # two worker processes
    assert {r.data.tags["compframe.threads"] for r in children} == {str(max(1, len(os.sched_getaffinity(0)) // 2))}


@pytest.mark.slow
def test_submitit_local_launcher_completes_a_multirun(cli):
    run, folder = cli
    p = run(["encoder=lz4,zstd", *TINY, "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"],
            timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    jobs = job_folders(folder)
    assert sorted(name.split("_")[0] for name in jobs) == ["0", "1"]
    assert {doc["config"]["encoder"]["id"] for doc in jobs.values()} == {"lz4", "zstd"}
    assert all(doc["status"] == "finished" for doc in jobs.values())
    assert list((folder / "outputs" / "multirun").glob("*/*/.submitit/*/*_result.pkl"))   # submitit ran them
    _, runs = mlflow_runs(f"sqlite:///{folder / 'outputs' / 'mlflow.db'}")
    parents, children = split_runs(runs)
    assert len(parents) == 1 and len(children) == 2 and all(r.info.status == "FINISHED" for r in children)


# --- PostgreSQL: a shared Optuna study, an MLflow server ---

@pytest.mark.slow
def test_two_sweepers_share_one_postgres_study(postgres, tmp_path):
    """2 sweeper processes x 10 trials on one study: 20 trials, none duplicated, none lost."""
    import optuna

    study_url, mlflow_url = postgres.create_database("optuna"), postgres.create_database("mlflow_sweeps")
    args = [sys.executable, "-m", "compframe.run", "-m", "hparams_search=pareto", "hydra.sweeper.n_trials=10",
            "hydra.sweeper.n_jobs=2", f"hydra.sweeper.storage={study_url}", "hydra.sweeper.study_name=shared", *TINY,
            f"tracking.uri={mlflow_url}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "1"}
    procs = [subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=900) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
        assert "MLflow tracking failed" not in out + err

    trials = optuna.load_study(study_name="shared", storage=study_url).trials
    assert len(trials) == 20 and sorted(t.number for t in trials) == list(range(20))
    assert all(t.state == optuna.trial.TrialState.COMPLETE and t.values is not None for t in trials)
    params = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(params)) == 20   # no trial's parameters drawn twice

    jobs = job_folders(tmp_path)
    assert len(jobs) == 20 and sorted(int(name.split("_")[0]) for name in jobs) == list(range(20))
    for t in trials:
        [(name, doc)] = [(n, d) for n, d in jobs.items() if n.split("_")[0] == str(t.number)]
        assert doc["status"] == "finished"
        assert doc["config"]["encoder"]["id"] == t.params["encoder"]
        assert doc["config"]["schedule"]["base"] == pytest.approx(t.params["schedule.base"])
        assert doc["results"]["totals"]["compression_ratio"] == pytest.approx(t.values[0])

    _, runs = mlflow_runs(mlflow_url)
    parents, children = split_runs(runs)
    assert len(parents) == 2 and all(r.info.status == "FINISHED" for r in parents)
    assert len(children) == 20 and all(r.info.status == "FINISHED" for r in children)
    assert sorted(r.info.run_name for r in children) == sorted(name.split("_", 1)[1] for name in jobs)
    per_parent = [sum(r.data.tags["mlflow.parentRunId"] == p.info.run_id for r in children) for p in parents]
    assert per_parent == [10, 10]


@pytest.fixture(scope="module")
def mlflow_server(postgres, tmp_path_factory):
    """``mlflow server`` on 127.0.0.1 with a PostgreSQL backend store and an artifact folder."""
    root = tmp_path_factory.mktemp("mlflow-server")
    with start_mlflow_server(postgres.create_database("mlflow_server"), root) as base:
        yield base, root / "artifacts"


@pytest.mark.slow
def test_jobs_log_to_an_mlflow_server_with_postgres_backend_at_once(mlflow_server, cli):
    base, artifacts = mlflow_server
    run, folder = cli
    p = run(["encoder=none,lz4,zstd", *TINY, "-m", "hydra/launcher=joblib",
             "hydra.launcher.n_jobs=3", f"tracking.uri={base}", "tracking.experiment=server_pg"], timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "MLflow tracking failed" not in p.stdout + p.stderr
    client, runs = mlflow_runs(base, "server_pg")
    parents, children = split_runs(runs)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 3 and all(r.info.status == "FINISHED" for r in children)
    assert {r.data.tags["compframe.encoder"] for r in children} == {"none", "lz4", "zstd"}
    jobs = job_folders(folder)
    for r in children:
        assert r.data.metrics["compression_ratio"] > 0
        [doc] = [d for d in jobs.values() if d["config"]["encoder"]["id"] == r.data.tags["compframe.encoder"]]
        assert r.data.metrics["compression_ratio"] == pytest.approx(doc["results"]["totals"]["compression_ratio"])
        names = {a.path for a in client.list_artifacts(r.info.run_id)}
        assert {"results.json", ".hydra"} <= names
        stored = list(artifacts.glob(f"**/{r.info.run_id}/artifacts/results.json"))
        assert len(stored) == 1 and json.loads(stored[0].read_text())["status"] == "finished"
    assert not (folder / "outputs" / "mlflow.db").exists()   # nothing went to the local store


@pytest.mark.slow
def test_report_reads_and_logs_to_an_mlflow_server(mlflow_server, tmp_path):
    """``compframe report --tracking-uri http://...`` over two real benchmark jobs (three tables, two
    pipelines each) under a sweep's parent run on the server: per-table results come from each run's
    results.json downloaded through the server, the rate-distortion numbers from the runs' metrics,
    and with ``--run`` the PNGs and the page are logged to the parent run on the server."""
    from mlflow.tracking import MlflowClient

    from compframe.report import main as report
    from compframe.tracking import PARENT_FILE, mlflow_metric_name
    from test_report_figures import BENCH_DATA, BOUNDS, Tables, benchmark_config, g4, run_job, table

    base, _ = mlflow_server
    tracking = {"enabled": True, "uri": base, "experiment": "report_remote"}
    client = MlflowClient(base)
    exp = client.create_experiment("report_remote")
    parent = client.create_run(exp, run_name="sweep", tags={"compframe.sweep": "true"}).info.run_id
    (tmp_path / PARENT_FILE).write_text(parent)
    for bound in BOUNDS:
        run_job(tracking, tmp_path, f"base={bound:g}", benchmark_config(bound), parent_dir=tmp_path)
    client.set_terminated(parent)
    _, children = split_runs(mlflow_runs(base, "report_remote")[1])
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    assert all(c.info.artifact_uri.startswith("mlflow-artifacts:") for c in children)   # served, no local path

    result = report(["--tracking-uri", base, "--run", parent, "--out", str(tmp_path / "report")])
    assert {"rate_distortion.png", "ratio_per_table.png"} <= {png.name for png in result.pngs}
    page = Tables(result.html.read_text())

    rd = {(r["run"], r["pipeline"]): r for r in table(page, "rate_distortion")}
    assert len(rd) == 4
    for child in children:
        for pipeline in ("int8+zstd", "int8+lz4"):
            row, m, key = rd[(child.info.run_name, pipeline)], child.data.metrics, mlflow_metric_name(pipeline)
            for column, metric in (("ratio", "compression_ratio"), ("bits/value", "bits_per_value"),
                                   ("max |error|", "max_abs_error"), ("rel L2", "rel_l2_error")):
                assert row[column] == g4(m[f"{key}.{metric}"])

    # ratio per table: the newest run's, against that job's own results.json in its job folder
    newest = max(children, key=lambda c: c.info.start_time).info.run_name
    by_table = json.loads((tmp_path / newest / "results.json").read_text())["results"]["by_table"]
    rows = table(page, "ratio_per_table")
    assert sorted(r["pipeline"] for r in rows) == ["int8+lz4", "int8+zstd"]
    for row in rows:
        assert row["run"] == newest
        for t in range(BENCH_DATA["tables"]):
            [want] = [b for b in by_table if b["pipeline"] == row["pipeline"] and b["table"] == t]
            assert row[f"table {t}"] == g4(want["compression_ratio"])

    logged = {a.path for a in client.list_artifacts(parent, "report")}
    assert logged == {f"report/{f.name}" for f in [result.html, *result.pngs]}
