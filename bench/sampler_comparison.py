"""Compare Optuna samplers on one search: best accuracy so far against the trial number, over seeds.

Each (sampler, seed) is one study of ``hparams_search=sampler_comparison`` (the digits MLP in 3-bit
fixed point, fractional width per layer, 729 points, objective: test accuracy) with the same budget,
in the Optuna storage ``outputs/sampler_comparison.db``. The search's config is composed with
Hydra's compose API (the sampler from ``hydra/sweeper/sampler``, the space from
``hydra.sweeper.params``, both built as the Optuna sweeper builds them) and the trials run in this
process through ``compframe.job.run``, the same job the command line runs, without Hydra's per-job
composition and folders (on a shared 2-core machine that overhead is most of a trial). Each study
then becomes one MLflow run (experiment ``sampler_comparison`` in ``outputs/mlflow.db``: params
sampler, seed, trials; step metrics ``value`` and ``best_so_far`` per trial; ``best_at_20``,
``best_at_<trials>``); jobs are not tracked one by one (``hparams_search=sampler_comparison`` on the
command line tracks every job). The best value so far of each study is drawn per sampler as the
mean over seeds with the min-max band; a table gives the best accuracy at 20 trials and at the full
budget.

    python bench/sampler_comparison.py                         # grid random tpe nsgaii gp, seeds 0 1 2, 50 trials
    python bench/sampler_comparison.py --samplers tpe,random --seeds 0 --trials 10
    python bench/sampler_comparison.py --plot-only             # redraw from the stored studies

Writes ``docs/searches/sampler_comparison.{png,json}`` (``--out``). Run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

STORAGE = "sqlite:///outputs/sampler_comparison.db"
# Sampler settings that differ from the sweeper's defaults: NSGA-II's default population (50) would
# spend the whole budget on its random first generation.
EXTRA = {"nsgaii": ["hydra.sweeper.sampler.population_size=10"]}


def study_name(sampler: str, seed: int) -> str:
    return f"sampler_comparison-{sampler}-s{seed}"


def compose(sampler: str, seed: int):
    """The composed config of ``hparams_search=sampler_comparison`` with this sampler and seed."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    import compframe.run  # noqa: F401 - registers the schemas, resolvers and the sweeper with Hydra

    overrides = ["hparams_search=sampler_comparison", f"hydra/sweeper/sampler={sampler}",
                 f"hydra.sweeper.sampler.seed={seed}", *EXTRA.get(sampler, [])]
    with initialize_config_module("compframe.conf", version_base=None):
        return hydra_compose("config", overrides=overrides, return_hydra_config=True)


def study_parts(cfg):
    """The job config (resolved, without ``hydra``), the search space and the sampler, as the
    Optuna sweeper builds them from ``hydra.sweeper.params`` and ``hydra.sweeper.sampler``."""
    from hydra.utils import instantiate
    from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides
    from omegaconf import OmegaConf

    sweeper = cfg.hydra.sweeper
    space, _, _ = create_params_from_overrides([f"{k}={v}" for k, v in sweeper.params.items()])
    sampler = instantiate(sweeper.sampler)
    if not hasattr(sampler, "sample_relative"):  # GridSampler comes as a partial awaiting its grid
        sampler = sampler({k: OptunaSweeperImpl._to_grid_sampler_choices(d) for k, d in space.items()})
    job_cfg = OmegaConf.to_container(cfg, resolve=False)
    job_cfg.pop("hydra")
    return OmegaConf.to_container(OmegaConf.create(job_cfg), resolve=True), space, sampler


def run_study(sampler_id: str, seed: int, trials: int, storage: str) -> float:
    """Run one study in this process (a fresh one: a stored study of that name is deleted).

    Each trial sets the sampled parameters in the search's job config and runs it with
    ``compframe.job.run``, as a sweep job does, without Hydra's per-job composition; a job that
    raises is told to the study as FAIL and the study goes on.
    """
    import copy

    import optuna

    from compframe import job

    name = study_name(sampler_id, seed)
    try:
        optuna.delete_study(study_name=name, storage=storage)
    except KeyError:
        pass
    config, space, sampler = study_parts(compose(sampler_id, seed))
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, direction="maximize")
    folder = Path("outputs/sampler_comparison") / name
    t0 = time.perf_counter()
    for _ in range(trials):
        trial = study.ask(space)
        trial_config = copy.deepcopy(config)
        for key, value in trial.params.items():
            *path, leaf = key.split(".")
            node = trial_config
            for part in path:
                node = node[part]
            node[leaf] = value
        try:
            results = job.run(trial_config, folder / str(trial.number), name=name, progress=False)
            study.tell(trial, job.objectives(results, list(config["optimized_metrics"])))
        except Exception as e:  # noqa: BLE001 - a failing trial is FAIL, the study goes on
            print(f"{name} trial {trial.number} failed: {type(e).__name__}: {e}", flush=True)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return time.perf_counter() - t0


def curves(samplers: list[str], seeds: list[int], storage: str) -> dict[str, np.ndarray]:
    """Best value so far after each trial (by trial number), ``(seeds, trials)`` per sampler."""
    import optuna

    out = {}
    for sampler in samplers:
        rows = []
        for seed in seeds:
            study = optuna.load_study(study_name=study_name(sampler, seed), storage=storage)
            values = [t.value if t.state.name == "COMPLETE" else -np.inf for t in study.trials]
            rows.append(np.maximum.accumulate(np.array(values, dtype=float)))
        n = min(len(r) for r in rows)
        out[sampler] = np.stack([r[:n] for r in rows])
    return out


def log_studies(samplers: list[str], seeds: list[int], storage: str, budgets: list[int], uri: str) -> None:
    """One MLflow run per study: its sampler and seed, each trial's value and the best so far by step."""
    import optuna
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("sampler_comparison")
    exp_id = exp.experiment_id if exp else client.create_experiment("sampler_comparison")
    now = int(time.time() * 1000)
    for sampler in samplers:
        for seed in seeds:
            study = optuna.load_study(study_name=study_name(sampler, seed), storage=storage)
            run = client.create_run(exp_id, run_name=study.study_name, tags={"compframe.optuna_storage": storage})
            values = [t.value if t.state.name == "COMPLETE" else None for t in study.trials]
            best = np.maximum.accumulate([-np.inf if v is None else v for v in values])
            metrics = [Metric("value", v, now, i) for i, v in enumerate(values) if v is not None]
            metrics += [Metric("best_so_far", float(b), now, i) for i, b in enumerate(best) if np.isfinite(b)]
            metrics += [Metric(f"best_at_{k}", float(best[k - 1]), now, 0) for k in budgets if k <= len(best)]
            params = [Param("sampler", sampler), Param("seed", str(seed)), Param("trials", str(len(values)))]
            for i in range(0, len(metrics), 500):
                client.log_batch(run.info.run_id, metrics=metrics[i:i + 500], params=params if i == 0 else [])
            client.set_terminated(run.info.run_id)


def summary(best: dict[str, np.ndarray], at: list[int]) -> dict[str, dict[str, dict[str, float]]]:
    """Per sampler and budget: mean, std, min and max over seeds of the best value after that many trials."""
    return {s: {str(k): {"mean": float(c[:, k - 1].mean()), "std": float(c[:, k - 1].std()),
                         "min": float(c[:, k - 1].min()), "max": float(c[:, k - 1].max())}
                for k in at if k <= c.shape[1]} for s, c in best.items()}


def plot(best: dict[str, np.ndarray], path: Path, title: str) -> None:
    """Mean best-so-far per sampler with the seeds' min-max band: the whole range, and zoomed on the top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    top = max(float(np.nanmax(np.where(np.isfinite(c), c, np.nan))) for c in best.values())
    for ax, zoom in zip(axes, (False, True)):
        for k, (sampler, c) in enumerate(best.items()):
            trials = np.arange(1, c.shape[1] + 1)
            shown = np.where(np.isfinite(c), c, np.nan)
            ax.plot(trials, np.nanmean(shown, axis=0), color=f"C{k}", label=f"{sampler} (mean of {c.shape[0]} seeds)")
            ax.fill_between(trials, np.nanmin(shown, axis=0), np.nanmax(shown, axis=0), color=f"C{k}", alpha=0.12)
        ax.set_xlabel("trial")
        ax.set_ylabel("best test accuracy so far")
        ax.grid(alpha=0.3)
        if zoom:
            ax.set_ylim(top - 0.03, top + 0.003)
            ax.set_title("zoom: the top 0.03 of accuracy", fontsize="medium")
        else:
            ax.legend(fontsize="small", loc="lower right")
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samplers", default="grid,random,tpe,nsgaii,gp")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--trials", type=int, default=50)
    p.add_argument("--storage", default=STORAGE)
    p.add_argument("--mlflow", default="sqlite:///outputs/mlflow.db")
    p.add_argument("--out", default="docs/searches")
    p.add_argument("--plot-only", action="store_true")
    a = p.parse_args()
    samplers, seeds = a.samplers.split(","), [int(s) for s in a.seeds.split(",")]
    Path("outputs").mkdir(exist_ok=True)
    seconds = {}
    if not a.plot_only:
        for sampler in samplers:
            for seed in seeds:
                seconds[f"{sampler}-s{seed}"] = run_study(sampler, seed, a.trials, a.storage)
                print(f"{sampler} seed {seed}: {seconds[f'{sampler}-s{seed}']:.0f} s", flush=True)
    best = curves(samplers, seeds, a.storage)
    budgets = sorted({min(20, a.trials), a.trials})
    if not a.plot_only:
        log_studies(samplers, seeds, a.storage, budgets, a.mlflow)
    table = summary(best, budgets)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.plot_only and (out / "sampler_comparison.json").exists():  # keep the timings of the runs
        seconds = json.loads((out / "sampler_comparison.json").read_text()).get("seconds", {})
    title = f"3-bit fixed point on mlp_digits, frac width per layer: {len(seeds)} seeds x {a.trials} trials"
    plot(best, out / "sampler_comparison.png", title)
    (out / "sampler_comparison.json").write_text(json.dumps(
        {"samplers": samplers, "seeds": seeds, "trials": a.trials, "best_at": table, "seconds": seconds,
         "best_so_far": {s: c.tolist() for s, c in best.items()}}, indent=1))
    print(f"{'sampler':8s} " + " ".join(f"{'best@' + str(k):>26s}" for k in budgets))
    for s in samplers:
        cells = [f"{t['mean']:.4f} ± {t['std']:.4f} [{t['min']:.3f}, {t['max']:.3f}]" for t in table[s].values()]
        print(f"{s:8s} " + " ".join(f"{c:>26s}" for c in cells))
    print(f"wrote {out / 'sampler_comparison.png'}")


if __name__ == "__main__":
    main()
