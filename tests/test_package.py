"""The wheel: built from the sources, installed into a fresh virtual environment, run from an empty
folder, and extended by a third-party plugin package (its module and its YAML) through entry points.

No download: the new environment reuses the installed dependencies (a .pth line pointing at this
interpreter's site-packages) and both packages are installed with ``--no-deps --no-build-isolation``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["data.tables=1", "data.iterations=1", "data.batch=256", "tracking.enabled=false", "progress=false"]

PLUGIN = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "compframe-zlibcodes"
        version = "0.1"

        [project.entry-points."compframe.plugins"]
        zlibcodes = "zlibcodes.plugins"

        [project.entry-points."compframe.configs"]
        zlibcodes = "zlibcodes.conf"

        [tool.setuptools]
        packages = ["zlibcodes", "zlibcodes.conf"]

        [tool.setuptools.package-data]
        "zlibcodes.conf" = ["**/*.yaml"]
        """,
    "zlibcodes/__init__.py": "",
    "zlibcodes/plugins.py": """
        import zlib
        from dataclasses import dataclass

        import numpy as np

        from compframe.base import Encoder
        from compframe.registry import register


        @register("encoder", "zlibcodes")
        class ZlibCodes(Encoder):
            \"\"\"zlib (DEFLATE) over the codes' bytes.\"\"\"

            @dataclass
            class Config:
                level: int = 6
                device: str = "cpu"

            def check(self):
                self.require("level", low=0, high=9)
                self.require("device", choices=("cpu",))

            def _encode(self, flat, shape):
                return zlib.compress(flat.tobytes(), self.config.level)

            def _decode(self, payload, dtype, count):
                return np.frombuffer(zlib.decompress(bytes(payload)), dtype, count)
        """,
    "zlibcodes/conf/__init__.py": "",
    "zlibcodes/conf/encoder/zlibcodes.yaml": """
        # python -m compframe.run encoder=zlibcodes encoder.level=9
        defaults:
          - /schema/encoder/zlibcodes@_here_
          - _self_
        """,
}


def _sh(args, cwd=None, timeout=600):
    p = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{args}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return p


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_repo_with_a_third_party_plugin(tmp_path):
    source = tmp_path / "source"  # a copy, so that building writes nothing into the repository
    for name in ("compframe", "conf"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.nb[ic]"))
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip"]
    _sh([*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "dist", source], timeout=900)
    (wheel,) = (tmp_path / "dist").glob("compframe-*.whl")

    venv = tmp_path / "venv"
    _sh([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    site = _sh([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    Path(site, "installed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _sh([*pip, "--python", python, "install", "--no-deps", "--no-index", "-q", wheel])

    empty = tmp_path / "empty"
    empty.mkdir()
    where = _sh([python, "-c", "import compframe, compframe.conf; print(compframe.__file__, compframe.conf.__file__)"],
                cwd=empty).stdout
    assert where.count(str(venv)) == 2, where  # the installed package and its configs, not the sources
    compframe = venv / "bin" / "compframe"
    p = _sh([compframe, *SMALL], cwd=empty)
    (results,) = empty.glob("outputs/runs/**/results.json")
    assert json.loads(results.read_text())["status"] == "finished" and "results: " in p.stdout

    plugin = tmp_path / "plugin"
    for name, text in PLUGIN.items():
        (plugin / name).parent.mkdir(parents=True, exist_ok=True)
        (plugin / name).write_text(textwrap.dedent(text).lstrip())
    _sh([*pip, "--python", python, "install", "--no-deps", "--no-build-isolation", "--no-index", "-q", plugin])
    p = _sh([compframe, "encoder=zlibcodes", "encoder.level=9", *SMALL, "hydra.run.dir=outputs/plugin"], cwd=empty)
    doc = json.loads((empty / "outputs" / "plugin" / "results.json").read_text())
    assert doc["config"]["encoder"] == {"id": "zlibcodes", "level": 9, "device": "cpu"}
    assert list(doc["results"]["by_pipeline"]) == ["int8+zlibcodes"] and doc["results"]["totals"]["compression_ratio"] > 1
    assert "range [0, 9]" in _sh([compframe, "plugins", "encoder/zlibcodes"], cwd=empty).stdout
    bad = subprocess.run([compframe, "encoder=zlibcodes", "encoder.level=10"], cwd=empty, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 2 and "parameter 'level' is 10" in bad.stderr
