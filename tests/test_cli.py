"""The command line end to end: default run, errors, multirun with MLflow, Optuna, failure handling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SMALL


def results_files(folder: Path) -> list[Path]:
    """The jobs' own results.json files (not the copies MLflow keeps as artifacts)."""
    return sorted([*folder.glob("outputs/runs/**/results.json"), *folder.glob("outputs/multirun/**/results.json")])


def mlflow_runs(folder: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'outputs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("compframe")
    return client.search_runs([exp.experiment_id])


@pytest.mark.slow
def test_default_run_writes_results_and_mlflow(cli):
    run, folder = cli
    p = run(SMALL)
    assert p.returncode == 0, p.stderr[-3000:]
    (path,) = results_files(folder)
    doc = json.loads(path.read_text())
    assert doc["status"] == "finished" and doc["error"] is None
    cfg = doc["config"]
    assert (cfg["quantizer"]["id"], cfg["encoder"]["id"], cfg["schedule"]["id"], cfg["data"]["id"]) == \
        ("int8", "lz4", "step", "synthetic")
    fields = doc["results"]["fields"]
    assert len(fields) == 2 * 2 and all(f["bound_ok"] for f in fields)
    assert {f["table"] for f in fields} == {0, 1} and {f["iteration"] for f in fields} == {0, 4096}
    # step schedule: factor E=2 at iteration 0 on a base of 1e-2
    assert fields[0]["bound"] == "rel:0.02" and fields[0]["max_rel_error"] <= 0.02
    totals = doc["results"]["totals"]
    assert totals["compression_ratio"] > 3 and "speedup@5GBps" in totals
    assert "int8+lz4" in p.stdout and "ratio" in p.stdout   # the summary table, one row per pipeline
    assert p.stdout.strip().splitlines()[-1].startswith("results: ")  # the output folder printed last
    (mlrun,) = mlflow_runs(folder)
    assert mlrun.info.status == "FINISHED"
    assert mlrun.data.tags["compframe.encoder"] == "lz4" and mlrun.data.tags["compframe.pipelines"] == "int8+lz4"
    assert mlrun.data.params["quantizer.id"] == "int8"
    assert mlrun.data.metrics["compression_ratio"] == pytest.approx(totals["compression_ratio"])
    assert "speedup_at_5GBps" in mlrun.data.metrics
    assert (path.parent / "by_table.png").stat().st_size > 1000
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'outputs' / 'mlflow.db'}")
    assert {"results.json", ".hydra", "plots"} <= {a.path for a in client.list_artifacts(mlrun.info.run_id)}


def test_unknown_encoder_lists_and_suggests(cli):
    run, _ = cli
    p = run(["encoder=zstdd"])
    assert p.returncode == 2
    assert "unknown encoder 'zstdd'" in p.stderr and "Did you mean 'zstd'" in p.stderr and "lz4" in p.stderr
    p = run(["encoder=lz4,nosuch", "-m"])
    assert p.returncode == 2 and "unknown encoder 'nosuch'" in p.stderr and "Did you mean" not in p.stderr


SLOW = pytest.mark.slow


@pytest.mark.parametrize("args,message", [
    (["schedule.base=-1"], "schedule 'step': parameter 'base' is -1.0; allowed range (0.0, inf]"),
    pytest.param(["schedule.mode=pct"], "parameter 'mode' is 'pct'; allowed: abs, rel", marks=SLOW),
    pytest.param(["data=emb_dump"], "data 'emb_dump': path is empty", marks=SLOW),
    pytest.param(["data=npy", "data.path=/nonexistent.npy"], "data 'npy': path '/nonexistent.npy' does not exist",
                 marks=SLOW),
    pytest.param(["encoder=nvcomp_lz4"], "encoder 'nvcomp_lz4'", marks=SLOW),
    pytest.param(["encoder=lz4", "encoder.acceleration=4"], "'acceleration' is 4 but has no effect unless mode=fast",
                 marks=SLOW),
    pytest.param(["encoder=zstd", "encoder.levl=3"], "Key 'levl' not in 'ZstdSchema'", marks=SLOW),
])
def test_validation_errors_are_one_line_exit_2_and_leave_nothing(cli, args, message):
    """Issue 12: one line on stderr, status 2, no traceback, no output folder, no MLflow run."""
    run, folder = cli
    p = run(args)
    errors = [line for line in p.stderr.splitlines() if line.startswith("error: ")]
    assert p.returncode == 2 and len(errors) == 1 and message in errors[0], p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    assert not (folder / "outputs").exists()  # no run folder, no mlflow.db


@pytest.mark.slow
def test_traceback_on_request(cli):
    run, _ = cli
    p = run(["schedule.base=-1"], env={"COMPFRAME_TRACEBACK": "1"})
    assert p.returncode == 2 and "Traceback" in p.stderr and "ConfigError" in p.stderr
    p = run(["schedule.base=-1", "hydra.verbose=true"])
    assert p.returncode == 2 and "Traceback" in p.stderr


def test_help_lists_groups_with_ids_and_plugins_command(cli):
    run, _ = cli
    p = run(["--help"])
    assert p.returncode == 0 and "compframe plugins encoder/zstd" in p.stdout
    lines = {line.split()[0]: line.split()[1:] for line in p.stdout.splitlines() if line.startswith("  ") and
             len(line.split()) > 1}
    assert "[lz4]" in lines["encoder"] and "zstd" in lines["encoder"] and "pareto" in lines["hparams_search"]
    assert "[int8]" in lines["quantizer"] and "lplr_phantom" in lines["experiment"]
    assert "schema" not in p.stdout and "nvcomp_lz4*" in lines["encoder"]  # * = cannot run here


@pytest.mark.slow
def test_failed_job_keeps_partial_results_and_failed_status(cli, tmp_path):
    """A failure found only while running (a float16 array the int8 quantizer refuses, after a good
    float32 one) leaves the fields measured so far, a failed status and a FAILED MLflow run."""
    import numpy as np

    run, folder = cli
    arrays = tmp_path / "arrays.npz"
    np.savez(arrays, a=np.ones((64, 8), np.float32), b=np.ones((64, 8), np.float16))
    p = run(["data=npy", f"data.path={arrays}", "progress=false"])
    assert p.returncode != 0 and "float16" in p.stderr
    (path,) = results_files(folder)
    doc = json.loads(path.read_text())
    assert doc["status"] == "failed" and "float16" in doc["error"]
    assert [f["field"] for f in doc["results"]["fields"]] == ["arrays/a"]
    (mlrun,) = mlflow_runs(folder)
    assert mlrun.info.status == "FAILED"


@pytest.mark.slow
def test_tracking_off_and_unreachable_server(cli):
    run, folder = cli
    p = run([*SMALL, "tracking.enabled=false"])
    assert p.returncode == 0 and not (folder / "outputs" / "mlflow.db").exists()
    p = run([*SMALL, "tracking.uri=http://127.0.0.1:9", "tracking.timeout_s=2"], timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "MLflow tracking failed" in p.stdout + p.stderr  # Hydra's logging goes to stdout
    assert len(results_files(folder)) == 2


@pytest.mark.slow
def test_multirun_four_children_under_one_parent(cli):
    run, folder = cli
    p = run(["encoder=lz4,zstd", "quantizer=int8,int16", *SMALL, "-m"])
    assert p.returncode == 0, p.stderr[-3000:]
    assert len(results_files(folder)) == 4
    assert "compframe sweep: 4 jobs compared" in p.stdout  # the cross-job comparison at the end
    (comparison,) = folder.glob("outputs/multirun/**/comparison.json")
    assert len(json.loads(comparison.read_text())) == 4
    runs = mlflow_runs(folder)
    parents = [r for r in runs if r.data.tags.get("compframe.sweep") == "true"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 4
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert {(c.data.tags["compframe.encoder"], c.data.tags["compframe.quantizer"]) for c in children} == \
        {("lz4", "int8"), ("lz4", "int16"), ("zstd", "int8"), ("zstd", "int16")}
    assert parents[0].info.status == "FINISHED"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'outputs' / 'mlflow.db'}")
    arts = {a.path for a in client.list_artifacts(children[0].info.run_id)}
    assert {"results.json", ".hydra"} <= arts


@pytest.mark.slow
def test_several_encoders_in_one_job(cli):
    run, folder = cli
    p = run([*SMALL, "task.encoders=[none,lz4,zstd,{id:zstd,level:19}]"])
    assert p.returncode == 0, p.stderr[-2000:]
    doc = json.loads(results_files(folder)[0].read_text())
    by = doc["results"]["by_pipeline"]
    assert set(by) == {"int8+none", "int8+lz4", "int8+zstd#1", "int8+zstd#2"}
    assert by["int8+zstd#2"]["frame_bytes"] < by["int8+zstd#1"]["frame_bytes"]  # encoder.level kept
    (mlrun,) = mlflow_runs(folder)
    assert mlrun.data.tags["compframe.pipelines"] == "int8+none,int8+lz4,int8+zstd#1,int8+zstd#2"
    assert mlrun.data.tags["compframe.encoder"] == "none,lz4,zstd#1,zstd#2"
    assert by["int8+zstd#1"]["compression_ratio"] > by["int8+none"]["compression_ratio"]
    for enc in by.values():
        assert 0 < enc["entropy_efficiency"] and enc["entropy_bits"] > 0


@pytest.mark.slow
def test_optuna_pareto_sweep_survives_a_failing_trial(cli):
    run, folder = cli
    # a negative bound in the search space makes some trials fail in the schedule's check
    p = run(["-m", "hparams_search=pareto", "hydra.sweeper.n_trials=3", *SMALL,
             "schedule.base=choice(0.02,-1.0)", "encoder=choice(lz4,zstd)", "hydra.sweeper.sampler.seed=1",
             "hydra.sweeper.sampler.n_startup_trials=3"], timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    import optuna

    study = optuna.load_study(study_name="compframe_pareto", storage=f"sqlite:///{folder / 'outputs' / 'optuna.db'}")
    states = [t.state.name for t in study.trials]
    assert len(states) == 3 and "FAIL" in states and "COMPLETE" in states, states
    front = json.loads(next(folder.glob("outputs/multirun/**/pareto_front.json")).read_text())
    assert front and all(set(r["values"]) == {"compression_ratio", "max_rel_error"} for r in front)
    assert p.stdout.count("Pareto front") == 1 and "Number of Pareto solutions" not in p.stdout + p.stderr
    assert f"pareto front: {next(folder.glob('outputs/multirun/**/pareto_front.json'))}" in p.stdout
    runs = mlflow_runs(folder)
    parent = next(r for r in runs if r.data.tags.get("compframe.sweep") == "true")
    assert parent.info.status == "FAILED"  # one child failed
    assert sum(r.info.status == "FAILED" for r in runs if "mlflow.parentRunId" in r.data.tags) == states.count("FAIL")
    # the same command (same search space) resumes the stored study
    p = run(["-m", "hparams_search=pareto", "hydra.sweeper.n_trials=1", *SMALL, "schedule.base=choice(0.02,-1.0)",
             "encoder=choice(lz4,zstd)"], timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    study = optuna.load_study(study_name="compframe_pareto", storage=f"sqlite:///{folder / 'outputs' / 'optuna.db'}")
    assert len(study.trials) == 4


@pytest.mark.slow
def test_several_quantizers_in_one_job_lplr_phantom(cli):
    """experiment=lplr_phantom on a 300 x 300 phantom: four methods side by side in one job."""
    run, folder = cli
    p = run(["experiment=lplr_phantom", "data.size=300", "progress=false"], env={"OPENBLAS_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stderr[-3000:]
    (path,) = results_files(folder)
    doc = json.loads(path.read_text())
    by = doc["results"]["by_pipeline"]
    assert list(by) == ["lplr+none", "lsvd+none", "dsvd+none", "nq+none"]
    err = {k.split("+")[0]: v["rel_l2_error"] for k, v in by.items()}
    assert max(v for k, v in err.items() if k != "nq") < err["nq"], err  # 300 x 300 (rank 25): 0.26-0.36 < 0.53
    assert (path.parent / "by_table.png").exists()
    (mlrun,) = mlflow_runs(folder)
    assert mlrun.data.metrics["nq_none.rel_l2_error"] == pytest.approx(err["nq"])
