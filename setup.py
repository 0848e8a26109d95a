"""Packaging beyond pyproject.toml's metadata: the package list, with the top-level ``conf/`` folder
shipped as the package ``compframe.conf`` (a wheel and an editable install both carry the configs,
which Hydra finds as ``pkg://compframe.conf``)."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["compframe", "compframe.*"]), "compframe.conf"],
    package_dir={"compframe.conf": "conf"},
)
