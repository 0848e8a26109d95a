"""DLRM training with a compressed embedding all-to-all (``task=train``; docs/training.md).

``dlrm`` (the model and the study's presets), ``exchange`` (the compressed all-to-all of the pooled
lookups), ``loop`` (one rank's training loop), ``launch`` and ``worker`` (ranks on loopback, their
supervision), ``checkpoint`` (one file holding the whole model: the format is in its docstring),
``plots``. Nothing here is imported by ``import compframe``; the task imports it when it runs.
"""
