"""A multirun logged to a real MLflow server (sqlite backend on 127.0.0.1), read back over REST."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import SMALL


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rest(url: str, payload: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@pytest.mark.slow
def test_multirun_to_mlflow_server(cli, tmp_path):
    run, folder = cli
    port = free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    cmd = [str(mlflow_bin) if mlflow_bin.exists() else shutil.which("mlflow"), "server", "--host", "127.0.0.1",
           "--port", str(port), "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
           "--artifacts-destination", str(tmp_path / "server-artifacts"), "--workers", "1"]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2):
                    break
            except OSError:
                time.sleep(1)
        else:
            pytest.fail("mlflow server did not come up in 120 s")
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
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
