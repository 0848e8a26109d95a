"""Shared fixtures: the repo root, and a way to run the command line in a scratch folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_cli(args: list[str], cwd: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m compframe.run ARGS`` in ``cwd`` (its outputs/ lands there); never raises on failure."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "compframe.run", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


@pytest.fixture
def cli(tmp_path):
    """Run the CLI in a fresh folder; returns (runner, folder)."""
    return (lambda args, **kw: run_cli(args, tmp_path, **kw)), tmp_path


# Small default data so command-line tests stay fast.
SMALL = ["data.tables=2", "data.iterations=2", "data.batch=256", "progress=false"]
