"""Lossless encoders of integer code arrays (``Encoder``): one module per family."""
