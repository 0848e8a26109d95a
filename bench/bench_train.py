"""DLRM training with a compressed embedding exchange: accuracy, wire ratio, overhead, speed-up.

Runs ``python -m compframe.run experiment=dlrm_kaggle task=train ...`` (Kaggle-shaped DLRM on the
synthetic Criteo-like data, 2 ranks on loopback), each command timed:

1. accuracy: for each seed, an uncompressed run (``compress.mode=none``) and a compressed one
   (``int8`` + ``--encoder``, the study's table-wise bounds and step schedule; ``schedule.S`` is
   scaled to the shorter training, see ``--decay-fraction``); final test AUC, its paired difference
   (compressed - none) per seed, mean and spread, and the wire compression ratio;
2. speed: the speed-up phases of ``task.speedup_iters`` (mode none vs real, at loopback and
   throttled to each B) and the overhead of ``simulate``;
3. schedules: a ``-m`` sweep over ``schedule=constant,step,linear,log`` under one MLflow parent
   (the sweep's comparison plot is drawn by ``TrainSweepCallback``), plus ``compare.png`` of
   none / a fixed bound (``constant`` with ``E=1``) / the step schedule.

    python bench/bench_train.py --out outputs/bench_train --iterations 2000 --seeds 0 1 2

Writes ``summary.json`` and prints the tables for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # last: an installed compframe or PYTHONPATH=<another tree> comes first

from compframe.training.plots import plot_comparison, sweep_runs  # noqa: E402


def cli(args: list[str], cwd: Path, log: Path) -> float:
    """Run one compframe command; returns its wall time; raises on failure (the log says why)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "1"}
    t0 = time.perf_counter()
    with open(log, "w") as f:
        f.write("python -m compframe.run " + " ".join(args) + "\n")
        f.flush()
        code = subprocess.run([sys.executable, "-m", "compframe.run", *args], cwd=cwd, stdout=f,
                              stderr=subprocess.STDOUT, env=env).returncode
    if code:
        raise RuntimeError(f"command failed ({code}); see {log}")
    return time.perf_counter() - t0


def results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())["results"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("outputs/bench_train"))
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--encoder", default="zstd")
    ap.add_argument("--world-size", type=int, default=2)
    ap.add_argument("--decay-fraction", type=float, default=0.18,
                    help="schedule.S as a fraction of the run (the study: S=65536 of ~357k Kaggle iterations)")
    ap.add_argument("--speed-iters", type=int, default=40)
    ap.add_argument("--bandwidths", type=float, nargs="+", default=[1.0, 5.0])
    ap.add_argument("--sweep-iterations", type=int, default=500)
    ap.add_argument("--skip", nargs="*", default=[], choices=["accuracy", "speed", "sweep"])
    ap.add_argument("--pack", choices=["auto", "slice", "destination"],
                    help="task.compress.pack of the real-mode runs (default: the task's, auto)")
    ap.add_argument("--override", nargs="*", default=[], metavar="KEY=VALUE",
                    help="further Hydra overrides for every run, e.g. encoder.level=1")
    a = ap.parse_args()
    out = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    n = a.iterations
    common = ["experiment=dlrm_kaggle", "task=train", "quantizer=int8", f"encoder={a.encoder}",
              f"task.world_size={a.world_size}", "progress=false", "task.test_batches=8",
              f"tracking.uri=sqlite:///{out}/mlflow.db", f"tracking.artifacts={out}/mlartifacts",
              *([f"task.compress.pack={a.pack}"] if a.pack else []), *a.override]
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}

    def save():
        summary_path.write_text(json.dumps(summary, indent=1))

    if "accuracy" not in a.skip:
        s = max(1, round(a.decay_fraction * n))
        rows = []
        for seed in a.seeds:
            row = {"seed": seed}
            for mode in ("none", "real"):
                folder = out / "accuracy" / f"{mode}_seed{seed}"
                wall = cli([*common, f"task.compress.mode={mode}", f"task.seed={seed}", f"task.iterations={n}",
                            f"task.eval_every={max(1, n // 5)}", "task.log_every=50", f"schedule.S={s}",
                            f"hydra.run.dir={folder}"], out, out / f"accuracy_{mode}_{seed}.log")
                t = results(folder)["totals"]
                row[mode] = {"auc": t["auc"], "logloss": t["logloss"], "accuracy": t["accuracy"],
                             "compression_ratio": t["compression_ratio"], "wall_s": wall,
                             "step_ms": t["wall_ms"], "compress_ms": t["compress_ms"], "decompress_ms": t["decompress_ms"]}
            row["auc_diff"] = row["real"]["auc"] - row["none"]["auc"]
            rows.append(row)
            summary["accuracy"] = {"iterations": n, "schedule_S": s, "encoder": a.encoder, "runs": rows}
            save()
        diffs = [r["auc_diff"] for r in rows]
        summary["accuracy"].update({
            "auc_none_mean": statistics.mean(r["none"]["auc"] for r in rows),
            "auc_real_mean": statistics.mean(r["real"]["auc"] for r in rows),
            "auc_diff_mean": statistics.mean(diffs),
            "auc_diff_std": statistics.stdev(diffs) if len(diffs) > 1 else 0.0,
            "auc_diff_range": [min(diffs), max(diffs)],
            "wire_ratio_mean": statistics.mean(r["real"]["compression_ratio"] for r in rows),
            "max_wall_s": max(r[m]["wall_s"] for r in rows for m in ("none", "real"))})
        save()
        seed0 = out / "accuracy"
        fixed = out / "fixed_seed0"
        cli([*common, "task.compress.mode=real", "schedule=constant", "schedule.E=1.0", f"task.seed={a.seeds[0]}",
             f"task.iterations={n}", f"task.eval_every={max(1, n // 5)}", "task.log_every=50",
             f"hydra.run.dir={fixed}"], out, out / "fixed.log")
        plot_comparison({"none": results(seed0 / f"none_seed{a.seeds[0]}"), "fixed bound (constant, E=1)": results(fixed),
                         "step schedule": results(seed0 / f"real_seed{a.seeds[0]}")}, out / "compare.png")
        summary["fixed_bound_auc"] = results(fixed)["totals"]["auc"]
        save()

    if "speed" not in a.skip:
        speed = {}
        for mode in ("real", "simulate"):
            folder = out / "speed" / mode
            cli([*common, f"task.compress.mode={mode}", "task.iterations=20", f"task.speedup_iters={a.speed_iters}",
                 f"task.bandwidths_gbps=[{','.join(map(str, a.bandwidths))}]", f"hydra.run.dir={folder}"],
                out, out / f"speed_{mode}.log")
            sp = results(folder)["speedup"]
            speed[mode] = sp
        base = speed["simulate"]["phases"][0]
        simp = speed["simulate"]["phases"][1]
        speed["simulate_overhead"] = {"step_none_ms": base["step_ms"], "step_simulate_ms": simp["step_ms"],
                                      "compress_ms": simp["compress_ms"],
                                      "compress_share_of_step": simp["compress_ms"] / simp["step_ms"],
                                      "step_increase": simp["step_ms"] / base["step_ms"] - 1}
        summary["speed"] = speed
        save()
        print_speed(speed)

    if "sweep" not in a.skip:
        sweep = out / "sweep"
        t0 = time.perf_counter()
        cli(["-m", *[c for c in common if not c.startswith("tracking.artifacts=")], "task.compress.mode=real", "schedule=constant,step,linear,log",
             f"task.iterations={a.sweep_iterations}", f"schedule.S={max(1, round(a.decay_fraction * a.sweep_iterations))}",
             f"task.eval_every={max(1, a.sweep_iterations // 4)}", "task.log_every=25", f"hydra.sweep.dir={sweep}"],
            out, out / "sweep.log")
        runs = sweep_runs(sweep)
        summary["sweep"] = {"wall_s": time.perf_counter() - t0, "plot": str(sweep / "train_comparison.png"),
                            "jobs": {k: {m: v["totals"][m] for m in ("auc", "logloss", "compression_ratio")}
                                     for k, v in runs.items()}}
        save()
    print(json.dumps(summary, indent=1))


def print_speed(speed: dict) -> None:
    """The per-iteration table (ms, rank 0) and the speed-up figures of docs/benchmarks.md."""
    cols = ("step", "compress", "exchange", "decompress", "exchange_bwd", "allreduce")
    for mode in ("real", "simulate"):
        for p in speed[mode]["phases"]:
            b = "loopback" if p["bandwidth_gbps"] is None else f"{p['bandwidth_gbps']:g}"
            print(f"| {mode}: {p['mode']} | {b} | " + " | ".join(f"{p.get(f'{c}_ms', 0.0):.1f}" for c in cols)
                  + f" | {p.get('throttle_target_ms', 0.0):.1f} / {p.get('throttle_ms', 0.0):.1f} | "
                  f"{p['compression_ratio']:.2f} |")
    print(json.dumps(speed["real"]["summary"], indent=1))


if __name__ == "__main__":
    main()
