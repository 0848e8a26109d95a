"""Compare Optuna samplers on one search: best accuracy so far against the trial number, over seeds.

Each (sampler, seed) is one study of ``hparams_search=sampler_comparison`` (the digits MLP in 3-bit
fixed point, fractional width per layer, 729 points, objective: test accuracy), run through the
command line and the Optuna sweeper with the same budget, into MLflow (experiment
``sampler_comparison``) and the Optuna storage ``outputs/sampler_comparison.db``. Then the best value
so far of each study is read back from the storage and drawn per sampler as the mean over seeds with
the min-max band; a table gives the best accuracy at 20 trials and at the full budget.

    python bench/sampler_comparison.py                         # grid random tpe nsgaii gp, seeds 0 1 2, 50 trials
    python bench/sampler_comparison.py --samplers tpe,random --seeds 0 --trials 10
    python bench/sampler_comparison.py --plot-only             # redraw from the stored studies

Writes ``docs/searches/sampler_comparison.{png,json}`` (``--out``). Run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

STORAGE = "sqlite:///outputs/sampler_comparison.db"
# Sampler settings that differ from the sweeper's defaults: NSGA-II's default population (50) would
# spend the whole budget on its random first generation.
EXTRA = {"nsgaii": ["hydra.sweeper.sampler.population_size=10"]}


def study_name(sampler: str, seed: int) -> str:
    return f"sampler_comparison-{sampler}-s{seed}"


def run_study(sampler: str, seed: int, trials: int, storage: str) -> float:
    """Run one study through the command line (a fresh one: a stored study of that name is deleted)."""
    import optuna

    name = study_name(sampler, seed)
    try:
        optuna.delete_study(study_name=name, storage=storage)
    except KeyError:
        pass
    args = [sys.executable, "-m", "compframe.run", "-m", "hparams_search=sampler_comparison",
            f"hydra/sweeper/sampler={sampler}", f"hydra.sweeper.sampler.seed={seed}",
            f"hydra.sweeper.n_trials={trials}", f"hydra.sweeper.study_name={name}", f"hydra.sweeper.storage={storage}",
            "tracking.experiment=sampler_comparison", "progress=false",
            f"hydra.sweep.dir=outputs/sampler_comparison/{name}-{time.strftime('%Y%m%d-%H%M%S')}",
            *EXTRA.get(sampler, [])]
    t0 = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
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


def summary(best: dict[str, np.ndarray], at: list[int]) -> dict[str, dict[str, dict[str, float]]]:
    """Per sampler and budget: mean, std, min and max over seeds of the best value after that many trials."""
    return {s: {str(k): {"mean": float(c[:, k - 1].mean()), "std": float(c[:, k - 1].std()),
                         "min": float(c[:, k - 1].min()), "max": float(c[:, k - 1].max())}
                for k in at if k <= c.shape[1]} for s, c in best.items()}


def plot(best: dict[str, np.ndarray], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for k, (sampler, c) in enumerate(best.items()):
        trials = np.arange(1, c.shape[1] + 1)
        shown = np.where(np.isfinite(c), c, np.nan)
        ax.plot(trials, np.nanmean(shown, axis=0), color=f"C{k}", label=f"{sampler} (mean of {c.shape[0]} seeds)")
        ax.fill_between(trials, np.nanmin(shown, axis=0), np.nanmax(shown, axis=0), color=f"C{k}", alpha=0.15)
    ax.set_xlabel("trial")
    ax.set_ylabel("best test accuracy so far")
    ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samplers", default="grid,random,tpe,nsgaii,gp")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--trials", type=int, default=50)
    p.add_argument("--storage", default=STORAGE)
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
    table = summary(best, budgets)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
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
