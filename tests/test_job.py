"""One job end to end in-process: plugins built once through the registry, tags, totals, warm-up."""

from __future__ import annotations

import pytest

from compframe import job
from compframe.errors import ConfigError

SMALL_DATA = {"id": "synthetic", "tables": 2, "iterations": 1, "batch": 256}


def config(**task):
    return {"data": dict(SMALL_DATA), "schedule": {"id": "step"}, "quantizer": {"id": "int8"},
            "encoder": {"id": "lz4"}, "task": {"id": "benchmark", **task}}


def test_task_encoders_keep_their_parameters(tmp_path):
    cfg = config(encoders=[{"id": "zstd", "level": 19}, "zstd"])
    parts = job.prepare(cfg)
    assert [e.config.level for e in parts["task"]._encoders] == [19, 3]
    results = job.run(cfg, tmp_path, progress=False)
    by = results["by_pipeline"]
    assert list(by) == ["int8+zstd#1", "int8+zstd#2"]
    # the same codes: level 19 must write fewer bytes than level 3 (it would not if the level were dropped)
    assert by["int8+zstd#1"]["frame_bytes"] < by["int8+zstd#2"]["frame_bytes"]


def test_task_encoders_parameters_validated_before_data():
    with pytest.raises(ConfigError, match="encoder 'zstd': parameter 'level' is 99"):
        job.prepare(config(encoders=[{"id": "zstd", "level": 99}]))


def test_tags_say_what_ran():
    tags = job.run_tags(job.prepare(config(quantizers=["int8", "int16"], encoders=["zstd", "ans"])))
    assert tags == {"compframe.pipelines": "int8+zstd,int8+ans,int16+zstd,int16+ans",
                    "compframe.quantizer": "int8,int16", "compframe.encoder": "zstd,ans"}
    assert job.run_tags(job.prepare(config()))["compframe.pipelines"] == "int8+lz4"


RUN_FIELDS = """
import json, sys
from compframe import job
cfg = json.loads(sys.argv[1])
results = job.run(cfg, sys.argv[2], progress=False)
print(json.dumps([[f["pipeline"], f["field"], f["quantize_gbps"], f["encode_gbps"]] for f in results["fields"]]))
"""


def _timed_fields(tmp_path, cache, tag):
    import json
    import os
    import subprocess
    import sys

    cfg = config(encoders=["lz4", "gpulz"])
    cfg["data"].update(tables=4, iterations=2, batch=2048)  # tables 0 and 2 hold outliers (repair path)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    p = subprocess.run([sys.executable, "-c", RUN_FIELDS, json.dumps(cfg), str(tmp_path / tag)],
                       capture_output=True, text=True, env=env, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    return {(r[0], r[1]): r[2:] for r in json.loads(p.stdout.strip().splitlines()[-1])}


def _slower_than_3x(first, second):
    return [(key, stage, a, b) for key in first for stage, a, b in zip(("quantize", "encode"), first[key], second[key])
            if b > 3 * a]


@pytest.mark.slow
def test_first_run_on_a_cold_numba_cache_times_no_compilation(tmp_path):
    """Issue 12: per-field quantize and encode throughputs of a first run (fresh NUMBA_CACHE_DIR)
    within 3x of a second run's. Compilation inside a timing costs 10-1000x; a field that misses by
    scheduler noise on a shared machine is given one more cold run before the test fails."""
    first = _timed_fields(tmp_path, tmp_path / "cache", "first")
    second = _timed_fields(tmp_path, tmp_path / "cache", "second")
    misses = _slower_than_3x(first, second)
    if misses:
        again = _timed_fields(tmp_path, tmp_path / "cache2", "again")
        misses = [m for m in _slower_than_3x(again, second) if m[:2] in {n[:2] for n in misses}]
    assert not misses, misses


@pytest.mark.parametrize("size", [2048 * 64, 1 << 20])
def test_one_thread_policy_for_library_and_benchmark(monkeypatch, size):
    """cf.compress, cf.decompress and the benchmark's measure run a plugin on the same numba threads
    (gpulz used 2 threads through one and 1 through the other), decided by the field's size alone."""
    import numba
    import numpy as np

    import compframe as cf
    from compframe import pipeline, registry
    from compframe.kernels.targets import PARALLEL_MIN
    from compframe.plugins.encoders.lz import GpuLZ

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has a single thread here")
    seen = []
    for name in ("_encode", "_decode"):
        original = getattr(GpuLZ, name)
        monkeypatch.setattr(GpuLZ, name, lambda self, *a, _f=original: seen.append(numba.get_num_threads()) or _f(self, *a))
    x = np.random.default_rng(0).standard_normal(size).astype(np.float32)
    cf.decompress(cf.compress(x, quantizer="int8", encoder="gpulz", bound="rel:1e-2"))
    pipeline.measure(x, registry.create("quantizer", "int8"), registry.create("encoder", "gpulz"),
                     cf.ErrorBound("rel", 1e-2))
    expected = 1 if size < PARALLEL_MIN else numba.config.NUMBA_NUM_THREADS
    assert seen == [expected] * 4
