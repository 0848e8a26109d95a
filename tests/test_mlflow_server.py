"""A multirun logged to a real MLflow server (sqlite backend on 127.0.0.1), read back over REST."""

from __future__ import annotations

import json
import urllib.request

import pytest

from conftest import SMALL, mlflow_server


def rest(url: str, payload: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@pytest.mark.slow
def test_multirun_to_mlflow_server(cli, tmp_path):
    run, folder = cli
    with mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path) as base:
        p = run(["encoder=lz4,zstd", *SMALL, f"tracking.uri={base}", "-m"])
        assert p.returncode == 0, p.stderr[-3000:]
        assert "MLflow tracking failed" not in p.stderr
        with urllib.request.urlopen(f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=compframe") as r:
            exp = json.loads(r.read())["experiment"]
        runs = rest(f"{base}/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]]})["runs"]
        tags = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs]
        parents = [r for r, t in zip(runs, tags) if t.get("compframe.sweep") == "true"]
        children = [t for t in tags if "mlflow.parentRunId" in t]
        assert len(parents) == 1 and len(children) == 2
        assert {t["mlflow.parentRunId"] for t in children} == {parents[0]["info"]["run_id"]}
        assert {t["compframe.encoder"] for t in children} == {"lz4", "zstd"}
        metrics = [{m["key"] for m in r["data"].get("metrics", [])} for r in runs if r is not parents[0]]
        assert all("compression_ratio" in m for m in metrics)
        assert not (folder / "outputs" / "mlflow.db").exists()  # nothing went to the local store
