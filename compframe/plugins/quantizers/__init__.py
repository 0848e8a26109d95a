"""Quantizers (the lossy step): one module per family."""

from . import uniform  # noqa: F401
