"""Quantizers (the lossy step): one module per family."""
