"""Lossless encoders of integer code arrays (``Encoder``): one module per family."""

from . import general  # noqa: F401
