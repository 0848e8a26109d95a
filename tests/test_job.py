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
