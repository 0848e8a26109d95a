"""Threads per job when a launcher runs several jobs on one machine or node.

A job's CPU budget is the smallest of: the CPUs it may run on (``os.sched_getaffinity``: the
cpuset a SLURM allocation or ``taskset`` grants), ``SLURM_CPUS_PER_TASK`` inside a SLURM job,
and the thread limit a launcher puts in the environment (``NUMBA_NUM_THREADS`` or
``OMP_NUM_THREADS``: joblib's loky workers get ``CPUs // n_jobs``, so 2 workers on 2 cores get 1
each). ``limit_threads()``, called when a job starts, caps numba's threads (the pipeline's thread
policy then works within that) and torch's to the budget; with the basic launcher on a laptop the
budget is every CPU and nothing changes.
"""

from __future__ import annotations

import os
import sys


def cpu_budget() -> int:
    """How many CPUs this job may keep busy (at least 1)."""
    counts = [len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1]
    for var in ("SLURM_CPUS_PER_TASK", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            counts.append(int(value))
    return max(1, min(counts))


def limit_threads() -> int:
    """Cap numba's and torch's thread counts to ``cpu_budget()`` when it is below the machine's CPU
    count (nothing changes otherwise); returns the budget.

    torch is capped if it is already imported, and ``OMP_NUM_THREADS`` is set (if unset) so that a
    torch imported later by the job starts with the budget too."""
    budget = cpu_budget()
    if budget >= (os.cpu_count() or 1):
        return budget
    import numba

    numba.set_num_threads(min(budget, numba.config.NUMBA_NUM_THREADS))
    os.environ.setdefault("OMP_NUM_THREADS", str(budget))
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.set_num_threads(min(budget, torch.get_num_threads()))
    return budget
