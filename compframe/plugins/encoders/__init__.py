"""Lossless encoders of integer code arrays (``Encoder``): one module per family."""

from . import entropy, general, lz, nvcomp  # noqa: F401
