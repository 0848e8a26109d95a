"""Wall time of one 8-job multirun: Hydra's basic launcher (one job after the other, in the sweeping
process) against the joblib launcher (``hydra/launcher=joblib``, worker processes).

    python bench/bench_launchers.py [--workers 2] [--repeat 2] [-- extra overrides]

The sweep is ``encoder=none,lz4,zstd,huffman quantizer=int8,int16`` (8 jobs) on the synthetic data
(13 tables x 3 dumps: each job does seconds of work, so that a worker's start-up does not dominate),
run as ``python -m compframe.run ... -m`` in a fresh folder each time (sqlite MLflow store and all,
as a user would run it), alternating basic and joblib so both see the same load. Prints each wall
time, the best of each, their ratio, and the load average; figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP = ["encoder=none,lz4,zstd,huffman", "quantizer=int8,int16", "progress=false"]
DATA = ["data.tables=13"]   # half the default benchmark: 39 fields of 2048 x 64 per job


def wall_time(launcher: list[str], extra: list[str]) -> float:
    """Seconds for the whole multirun, from the command's start to its exit."""
    with tempfile.TemporaryDirectory(prefix="bench-launchers-") as folder:
        cmd = [sys.executable, "-m", "compframe.run", *SWEEP, *DATA, *extra, "-m", *launcher]
        start = time.perf_counter()
        p = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if p.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
        jobs = list(Path(folder).glob("outputs/multirun/*/*/*/results.json"))
        if len(jobs) != 8:
            sys.exit(f"expected 8 job folders, found {len(jobs)}")
        return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="joblib workers (hydra.launcher.n_jobs)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each launcher; the best counts")
    parser.add_argument("extra", nargs="*", help="more overrides for every job (after --)")
    args = parser.parse_args()
    launchers = {"basic": [], "joblib": ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.workers}"]}
    times: dict[str, list[float]] = {name: [] for name in launchers}
    loads = [os.getloadavg()[0]]
    for _ in range(args.repeat):
        for name, launcher in launchers.items():
            times[name].append(wall_time(launcher, args.extra))
            loads.append(os.getloadavg()[0])
            print(f"{name:7s} {times[name][-1]:7.1f} s", flush=True)
    best = {name: min(t) for name, t in times.items()}
    print(f"# 8 jobs ({' '.join(SWEEP[:2] + DATA + args.extra)}), {os.cpu_count()} CPUs, best of {args.repeat}")
    print(f"basic {best['basic']:.1f} s, joblib x{args.workers} {best['joblib']:.1f} s: "
          f"ratio {best['basic'] / best['joblib']:.2f}; load average (1 min) {min(loads):.1f}-{max(loads):.1f}")


if __name__ == "__main__":
    main()
