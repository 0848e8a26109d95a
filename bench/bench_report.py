"""Time ``compframe report`` over 1,000 MLflow runs of benchmark jobs (goal: at most 30 s).

The runs are written straight through the MLflow client into a fresh sqlite store under a temporary
folder (``--keep DIR`` keeps it there): each is a task=benchmark job as ``compframe.tracking`` logs it
(the flattened job config as params, the tags of what ran, the totals and every pipeline's totals as
metrics, a results.json artifact with per-field, per-table and per-pipeline results), with three
pipelines (int8+zstd, int8+lz4, int16+zstd) on 26 tables and a bound from a log-spaced sweep. The
numbers follow a simple model of a uniform quantizer (bits ~ log2(range / bound), errors at the
bound, throughputs drawn around measured values); they are realistic in shape and size, not
measurements. Then ``compframe report --experiment bench_report`` runs as a user runs it (a new
process: interpreter start and imports included), ``--repeats`` times; the best and every time are
printed with the machine's load.

    python bench/bench_report.py                   # 1000 runs, 3 repeats
    python bench/bench_report.py --runs 200 --repeats 1 --keep /tmp/report_store
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PIPELINES = (("int8", "zstd"), ("int8", "lz4"), ("int16", "zstd"))
TABLES = 26
ITERATIONS = 3
BANDWIDTHS = [5.0, 50.0]
ENCODE_GBPS = {"zstd": 0.45, "lz4": 1.8}
DECODE_GBPS = {"zstd": 1.2, "lz4": 3.5}


def config(bound: float, seed: int) -> dict:
    """A benchmark job's config, as the command line composes it (what becomes the run's params)."""
    return {"data": {"id": "emb_dump", "path": "dumps/kaggle", "tables": list(range(TABLES)), "iterations": [0, 1, 2],
                     "max_fields": None, "dtype": "float32"},
            "schedule": {"id": "constant", "base": bound, "E": 1.0, "relative": True},
            "quantizer": {"id": "int8", "rounding": "nearest", "outliers": "repair", "threads": "auto"},
            "encoder": {"id": "zstd", "level": 3, "threads": 0},
            "task": {"id": "benchmark", "quantizers": ["int8", "int16"], "encoders": ["zstd", "lz4"],
                     "bandwidths_gbps": BANDWIDTHS, "plot_metrics": ["compression_ratio", "max_error_over_bound"],
                     "warmup": True, "table": "pipeline", "require_bound": True},
            "tracking": {"enabled": True, "uri": "sqlite:///outputs/mlflow.db", "artifacts": "outputs/mlartifacts",
                         "experiment": "bench_report", "retries": 1, "timeout_s": 10, "lock_timeout_s": 60},
            "optimized_metrics": [], "progress": False, "seed": seed}


def field_result(rng, quantizer: str, encoder: str, bound: float, table: int, n: int) -> dict:
    """One field's measured row, from a model of a uniform quantizer at relative bound ``bound``."""
    from compframe import metrics

    value_range = float(rng.uniform(0.5, 4.0))
    rms = value_range / 5
    levels = 2 ** (8 if quantizer == "int8" else 16)
    code_bits = min(math.log2(value_range / (2 * bound * value_range)) + 1.5, math.log2(levels))
    entropy = max(0.3, code_bits - 1.0 + 0.3 * math.sin(table))
    bits = entropy * (1.08 if encoder == "zstd" else 1.35) + 0.05
    max_abs = bound * value_range * float(rng.uniform(0.9, 1.0))
    rmse = max_abs / math.sqrt(3)
    seconds = {"quantize": 4 * n / 2.2e9, "encode": 4 * n / (ENCODE_GBPS[encoder] * 1e9),
               "decode": 4 * n / (DECODE_GBPS[encoder] * 1e9), "dequantize": 4 * n / 3.1e9}
    seconds = {k: v * float(rng.lognormal(0, 0.15)) for k, v in seconds.items()}
    out = {"n_values": n, "input_bytes": 4 * n, "frame_bytes": int(n * bits / 8) + 64,
           "code_stream_bytes": int(n * bits / 8), "entropy_bits": entropy, "max_abs_error": max_abs,
           "max_rel_error": max_abs / value_range, "rmse": rmse, "nrmse": rmse / value_range,
           "psnr": 20 * math.log10(value_range / rmse), "pearson": 1 - (rmse / rms) ** 2 / 2, "rel_l2_error": rmse / rms,
           "rms_value": rms, "value_range": value_range, "nonfinite_ok": True, "bound_ok": True,
           "abs_bound": bound * value_range, "budget_bits_per_value": None, **metrics.stage_rates(4 * n, seconds)}
    out.update(metrics.speedups(out["input_bytes"] / out["frame_bytes"], out, BANDWIDTHS))
    return out


def results(rng, bound: float) -> dict:
    """results.json's ``results`` of one job: fields, totals, by_pipeline, by_table."""
    from compframe import metrics

    fields = []
    for t in range(TABLES):
        n = int(rng.integers(2048, 8192)) * 64
        for it in range(ITERATIONS):
            for q, e in PIPELINES:
                fields.append({"field": f"table{t}_it{it}", "table": t, "iteration": it, "quantizer": q,
                               "pipeline": f"{q}+{e}", "encoder": e, "bound": str(bound),
                               **field_result(rng, q, e, bound, t, n)})
    pipelines = [f"{q}+{e}" for q, e in PIPELINES]
    return {"fields": fields, "totals": metrics.totals(fields, BANDWIDTHS),
            "by_pipeline": {p: metrics.totals([f for f in fields if f["pipeline"] == p], BANDWIDTHS) for p in pipelines},
            "by_table": [{"pipeline": p, "table": t, **metrics.totals([f for f in fields if f["pipeline"] == p
                                                                          and f["table"] == t], BANDWIDTHS)}
                         for p in pipelines for t in range(TABLES)]}


def create_runs(uri: str, artifacts: Path, n: int, seed: int = 0) -> float:
    """``n`` finished benchmark runs in experiment ``bench_report``; returns the seconds it took."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from compframe.job import Recorder
    from compframe.tracking import flatten, mlflow_metric_name

    rng = np.random.default_rng(seed)
    client = MlflowClient(uri)
    exp = client.create_experiment("bench_report", artifact_location=artifacts.resolve().as_uri())
    bounds = np.geomspace(1e-4, 1e-1, 25)
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench_report_job_"))
    for i in range(n):
        bound = float(bounds[i % len(bounds)])
        cfg, res = config(bound, i), results(rng, bound)
        name = f"schedule.base={bound:.3g},seed={i}"
        pipelines = ",".join(res["by_pipeline"])
        tags = {"compframe.data": "emb_dump", "compframe.schedule": "constant", "compframe.task": "benchmark",
                "compframe.pipelines": pipelines, "compframe.quantizer": "int8,int16", "compframe.encoder": "zstd,lz4",
                "compframe.host": "bench", "compframe.process": str(os.getpid())}
        run = client.create_run(exp, run_name=name, tags=tags)
        now = int(time.time() * 1000)
        ms = [Metric(mlflow_metric_name(k), float(v), now, 0) for k, v in res["totals"].items()
              if isinstance(v, (int, float)) and v is not None]
        ms += [Metric(mlflow_metric_name(f"{p}.{k}"), float(v), now, 0) for p, t in res["by_pipeline"].items()
               for k, v in t.items() if isinstance(v, (int, float)) and v is not None]
        params = [Param(k, v) for k, v in flatten(cfg).items()]
        for j in range(0, max(len(ms), len(params)), 500):
            client.log_batch(run.info.run_id, metrics=ms[j:j + 500], params=params[j:j + 100])
        for j in range(100, len(params), 100):
            client.log_batch(run.info.run_id, params=params[j:j + 100])
        recorder = Recorder(work / "results.json", name, cfg)
        recorder.status, recorder.results = "finished", res
        recorder.flush()
        client.log_artifact(run.info.run_id, str(work / "results.json"))
        client.set_terminated(run.info.run_id)
        if (i + 1) % 100 == 0:
            print(f"  {i + 1} runs created ({time.perf_counter() - t0:.0f} s)", flush=True)
    return time.perf_counter() - t0


def time_report(uri: str, out: Path) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of ``python -m compframe.report`` over the experiment, as
    a new process: the CPU time holds on a shared machine, where the wall time grows with the load."""
    before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run([sys.executable, "-m", "compframe.report", "--tracking-uri", uri, "--experiment", "bench_report",
                    "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
    wall, after = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--keep", type=Path, help="build the store in this folder and keep it (default: a temporary one)")
    a = p.parse_args()
    root = a.keep or Path(tempfile.mkdtemp(prefix="bench_report_"))
    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{root.resolve()}/mlflow.db"
    store_exists = (root / "mlflow.db").exists()
    if not store_exists:
        seconds = create_runs(uri, root / "mlartifacts", a.runs)
        print(f"created {a.runs} runs in {seconds:.0f} s under {root}")
    times, cpu = [], []
    for _ in range(a.repeats):
        wall, used = time_report(uri, root / "report")
        times.append(wall)
        cpu.append(used)
        print(f"compframe report: {wall:.1f} s wall, {used:.1f} s CPU (load {os.getloadavg()[0]:.1f})", flush=True)
    summary = {"runs": a.runs, "best_s": min(times), "times_s": times, "cpu_s": cpu, "load_1min": os.getloadavg()[0],
               "figures": sorted(f.name for f in (root / "report").glob("*.png"))}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
