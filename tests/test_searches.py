"""The hparams_search configs on task=compress_model: each kind end to end into MLflow, a failing trial."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from compframe.search import best_so_far, front


def test_front_is_the_set_of_undominated_points():
    rng = np.random.default_rng(0)
    rows = [{"job": i, "x": float(x), "y": float(y)} for i, (x, y) in enumerate(rng.integers(0, 8, (60, 2)))]
    rows.append({"job": 99, "x": None, "y": 1.0})  # a failed job has no values
    got = {r["job"] for r in front(rows, "x", "y")}
    valid = rows[:-1]
    dominated = {a["job"] for a in valid for b in valid
                 if b["x"] <= a["x"] and b["y"] >= a["y"] and (b["x"], b["y"]) != (a["x"], a["y"])}
    undominated_pairs = {(r["x"], r["y"]) for r in valid if r["job"] not in dominated}
    assert {(r["x"], r["y"]) for r in valid if r["job"] in got} == undominated_pairs
    assert len(got) == len(undominated_pairs)  # one job per undominated point
    assert best_so_far([0.2, None, 0.1, 0.5, math.nan]) == [0.2, 0.2, 0.2, 0.5, 0.5]


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    """One folder for the digits MLP's weights, so that the net is trained once for all searches."""
    return tmp_path_factory.mktemp("models")


def search(cli, model_cache, name: str, *overrides: str):
    run, folder = cli
    p = run(["-m", f"hparams_search={name}", "hydra.sweeper.n_trials=3", "progress=false",
             "model.epochs=3", f"model.cache_dir={model_cache}", *overrides], timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    import optuna
    from mlflow.tracking import MlflowClient

    study = optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'outputs' / 'optuna.db'}")
    client = MlflowClient(f"sqlite:///{folder / 'outputs' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("compframe").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("compframe.sweep") == "true"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    sweep = next(folder.glob("outputs/multirun/*/*/search_report.csv")).parent
    with (sweep / "search_report.csv").open() as f:
        rows = list(csv.DictReader(f))
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"search_report.csv", "search_report.json", "search_report.png"} <= artifacts
    return study, parent, children, rows, sweep, p.stdout


KINDS = {
    "lab1_grid": ["quantizer.width=choice(4,8,16)", "task.sparsity=choice(0.5)"],
    "sampler_comparison": ["hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=3"],
    "compression_aware": ["task.finetune_epochs=1", "hydra.sweeper.sampler.seed=1"],
    "mixed_precision": ["hydra.sweeper.sampler.seed=2"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(KINDS))
def test_search_runs_end_to_end_into_mlflow(cli, model_cache, name):
    study, parent, children, rows, sweep, stdout = search(cli, model_cache, name, *KINDS[name])
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert len(children) == 3 and all(c.info.status == "FINISHED" for c in children)
    assert parent.info.status == "FINISHED" and "best_metric" in parent.data.metrics
    assert len(rows) == 3 and all(r["status"] == "finished" for r in rows)
    values = {t.number: t.values for t in study.trials}
    for r in rows:  # the report holds what the sweeper was told
        assert float(r["metric"]) == pytest.approx(values[int(r["job"])][0])
    bits = sorted(float(r["bits_per_weight"]) for r in rows)
    if name == "lab1_grid":  # 1-bit mask + half the weights at the width
        assert bits == pytest.approx([1 + 0.5 * 4, 1 + 0.5 * 8, 1 + 0.5 * 16])
        assert "search: metric vs bits_per_weight" in stdout
    if name == "sampler_comparison":
        assert bits == [3.0, 3.0, 3.0]
    if name in ("compression_aware", "mixed_precision"):
        pareto = json.loads((sweep / "pareto_front.json").read_text())
        assert pareto and all(set(p["values"]) == {"metric", "bits_per_weight"} for p in pareto)
        assert all(v[1] == pytest.approx(float(r["bits_per_weight"])) for r in rows
                   for n, v in values.items() if n == int(r["job"]))
    if name == "compression_aware":
        assert all(r["metric_before_finetune"] for r in rows)
    if name == "mixed_precision":
        formats = {t.params[f"++task.layers.{layer}.quantizer"] for t in study.trials for layer in ("fc1", "fc2", "fc3")}
        assert formats <= {"fixed", "blockfp", "log"}


@pytest.mark.slow
def test_grid_sweep_survives_failing_last_point(cli, model_cache):
    """The grid's last point fails (sparsity 2.0, out of range): it is FAIL and the sweep exits 0.

    hydra-optuna-sweeper 1.4.0rc3 alone ends such a sweep with a RuntimeError from GridSampler's
    ``study.stop()``; compframe's sweeper tolerates it (``sweeper_impl._tolerate_grid_stop``).
    """
    run, folder = cli
    p = run(["-m", "hparams_search=lab1_grid", "progress=false", "model.epochs=3", f"model.cache_dir={model_cache}",
             "quantizer.width=choice(4)", "task.sparsity=choice(0.5,2.0)", "hydra.sweeper.sampler.seed=1"], timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    import optuna

    study = optuna.load_study(study_name="lab1_grid", storage=f"sqlite:///{folder / 'outputs' / 'optuna.db'}")
    assert [(t.params["task.sparsity"], t.state.name) for t in study.trials] == [(0.5, "COMPLETE"), (2.0, "FAIL")]


@pytest.mark.slow
def test_failing_trial_is_recorded_and_the_search_goes_on(cli, model_cache):
    """A fractional width of 5000 fails in the task's check: those trials are FAIL, the others complete.

    (The grid's case is ``test_grid_sweep_survives_failing_last_point``.)
    """
    study, parent, children, rows, _, _ = search(cli, model_cache, "sampler_comparison",
                                                 "hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=1",
                                                 "task.layers.fc1.frac_width=choice(3,5000)")
    states = {t.number: t.state.name for t in study.trials}
    assert len(states) == 3 and {"FAIL", "COMPLETE"} <= set(states.values()), states
    assert {int(r["job"]): r["status"] for r in rows} == \
        {n: "finished" if s == "COMPLETE" else "failed" for n, s in states.items()}
    assert parent.info.status == "FAILED"
    assert sorted(c.info.status for c in children) == sorted("FINISHED" if s == "COMPLETE" else "FAILED"
                                                             for s in states.values())
    failed = [json.loads(p.read_text()) for p in Path(cli[1]).glob("outputs/multirun/**/results.json")]
    errors = [d["error"] for d in failed if d["status"] == "failed"]
    assert errors and all("frac_width" in e and "5000" in e for e in errors)
