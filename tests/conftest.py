"""Shared fixtures: the repo root, a way to run the command line in a scratch folder, and a real
MLflow tracking server on loopback."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_cli(args: list[str], cwd: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m compframe.run ARGS`` in ``cwd`` (its outputs/ lands there); never raises on failure."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "compframe.run", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def run_on_generic_cpu(script: str, cache: Path) -> subprocess.CompletedProcess:
    """``python -c SCRIPT`` with numba compiling for a generic CPU (``NUMBA_CPU_NAME=generic``, its
    setting for caches shared between machines: no x86 intrinsic may be emitted) and its own cache
    folder ``cache``; never raises on failure."""
    env = {**os.environ, "NUMBA_CPU_NAME": "generic", "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture
def cli(tmp_path):
    """Run the CLI in a fresh folder; returns (runner, folder)."""
    return (lambda args, **kw: run_cli(args, tmp_path, **kw)), tmp_path


# Small default data so command-line tests stay fast.
SMALL = ["data.tables=2", "data.iterations=2", "data.batch=256", "progress=false"]


@contextlib.contextmanager
def mlflow_server(backend_store_uri: str, root: Path, wait_s: int = 180):
    """``mlflow server`` on 127.0.0.1 (one worker) with ``backend_store_uri``, its artifacts in
    ``root/artifacts`` and its log in ``root/server.log``; yields the base URL once ``/health``
    answers (the test fails with the log's tail if it dies or never answers), stopped afterwards."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    cmd = [str(mlflow_bin) if mlflow_bin.exists() else shutil.which("mlflow"), "server", "--host", "127.0.0.1",
           "--port", str(port), "--backend-store-uri", backend_store_uri,
           "--artifacts-destination", str(root / "artifacts"), "--workers", "1"]
    log = open(root / "server.log", "w")
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(wait_s):
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, (root / "server.log").read_text()[-3000:]
                time.sleep(1)
        else:
            pytest.fail(f"mlflow server did not come up in {wait_s} s")
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
