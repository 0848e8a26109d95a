"""Wall time of one 8-job multirun: Hydra's basic launcher (one job after the other, in the sweeping
process) against the joblib launcher (``hydra/launcher=joblib``, worker processes).

    python bench/bench_launchers.py [--workers 2] [--repeat 2] [-- extra overrides]

The sweep is ``encoder=none,lz4,zstd,huffman quantizer=int8,int16`` (8 jobs) on the synthetic data
(26 tables x 3 dumps of 8192 x 64 values: each job computes for longer than a worker takes to start,
import compframe and load its numba kernels (about 15 s on the shared test machine), which every
worker pays once), run as ``python -m compframe.run ... -m`` in a fresh folder each time (sqlite
MLflow store and all, as a user would run it), alternating basic and joblib so both see the same
load. Prints each wall time and CPU time (all processes of the run), the best of each, the wall-time
ratio, and the load average; figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP = ["encoder=none,lz4,zstd,huffman", "quantizer=int8,int16", "progress=false"]
DATA = ["data.batch=8192"]   # 26 tables x 3 dumps of 8192 x 64 float32 per job (4x the default benchmark)


def timed_run(launcher: list[str], extra: list[str]) -> tuple[float, float]:
    """Wall seconds of the whole multirun (the command's start to its exit) and the CPU seconds
    (user + system) of the command and all its processes (joblib's workers are reaped with it)."""
    with tempfile.TemporaryDirectory(prefix="bench-launchers-") as folder:
        cmd = [sys.executable, "-m", "compframe.run", *SWEEP, *DATA, *extra, "-m", *launcher]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        p = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if p.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
        jobs = list(Path(folder).glob("outputs/multirun/*/*/*/results.json"))
        if len(jobs) != 8:
            sys.exit(f"expected 8 job folders, found {len(jobs)}")
        return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="joblib workers (hydra.launcher.n_jobs)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each launcher; the best counts")
    parser.add_argument("extra", nargs="*", help="more overrides for every job (after --)")
    args = parser.parse_args()
    launchers = {"basic": [], "joblib": ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.workers}"]}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in launchers}
    loads = [os.getloadavg()[0]]
    for _ in range(args.repeat):
        for name, launcher in launchers.items():
            times[name].append(timed_run(launcher, args.extra))
            loads.append(os.getloadavg()[0])
            wall, cpu = times[name][-1]
            print(f"{name:7s} {wall:7.1f} s wall {cpu:7.1f} s CPU  load {loads[-1]:.1f}", flush=True)
    best = {name: min(t) for name, t in times.items()}
    print(f"# 8 jobs ({' '.join(SWEEP[:2] + DATA + args.extra)}), {os.cpu_count()} CPUs, best of {args.repeat}")
    (basic, basic_cpu), (joblib, joblib_cpu) = best["basic"], best["joblib"]
    print(f"basic {basic:.1f} s ({basic_cpu:.1f} s CPU), "
          f"joblib x{args.workers} {joblib:.1f} s ({joblib_cpu:.1f} s CPU): ratio {basic / joblib:.2f}; "
          f"load average (1 min) {min(loads):.1f}-{max(loads):.1f}")


if __name__ == "__main__":
    main()
