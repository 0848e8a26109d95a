"""``dlrm``: a DLRM checkpoint written by ``task=train``, scored by its test AUC.

``checkpoint`` names the ``checkpoint.pt`` (format ``compframe.dlrm/1``, docs/training.md) or the
``task=train`` run folder holding it. The click data are the training run's own (``config.data`` of
the ``results.json`` beside the checkpoint) unless ``data`` gives a click-source config; a source
whose table sizes differ from the checkpoint's is refused. The metric ``auc`` (and ``logloss``,
``accuracy``) is measured as the training task measures it: the first ``test_batches`` test batches
of ``test_batch_size`` samples (0 = the training run's values), scikit-learn's ``roc_auc_score``.
Fine-tuning reads ``finetune_batches`` training batches per epoch, epoch ``k`` starting at batch
``k · finetune_batches``, with the binary cross-entropy of the logits. The embedding tables are
ordinary ``nn.EmbeddingBag`` layers (sum), so ``layers`` patterns such as ``emb.*`` or ``top.*``
choose them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar

from ...base import ModelSource
from ...errors import DataError
from ...registry import register, resolve

CHECKPOINT_FILE = "checkpoint.pt"


@register("model", "dlrm")
class DLRMCheckpoint(ModelSource):
    """The DLRM of a ``task=train`` checkpoint; metric ``auc`` on its test split."""

    metric: ClassVar[str] = "auc"

    @dataclass
    class Config:
        checkpoint: str = ""
        data: dict[str, Any] = field(default_factory=dict)
        test_batches: int = 0
        test_batch_size: int = 0
        finetune_batches: int = 50
        batch_size: int = 0

    def check(self):
        for param in ("test_batches", "test_batch_size", "batch_size"):
            self.require(param, low=0)
        self.require("finetune_batches", low=1)

    @cached_property
    def _path(self) -> Path:
        if not self.config.checkpoint:
            raise DataError("model 'dlrm': set model.checkpoint=<checkpoint.pt or the task=train run folder>")
        path = Path(self.config.checkpoint)
        path = path / CHECKPOINT_FILE if path.is_dir() else path
        if not path.is_file():
            raise DataError(f"model 'dlrm': no checkpoint at '{path}'")
        return path

    @cached_property
    def _state(self) -> dict[str, Any]:
        from ...training import checkpoint

        try:
            return checkpoint.load(self._path)
        except ValueError as e:
            raise DataError(f"model 'dlrm': {e}") from None

    @cached_property
    def _data(self):
        """The click source, checked against the checkpoint's table sizes."""
        config = self.config.data
        if not config:
            record = self._path.parent / "results.json"
            if not record.is_file():
                raise DataError(f"model 'dlrm': '{record}' is missing, so the training data is unknown; "
                                "set model.data={id: criteo_synthetic, ...}")
            config = json.loads(record.read_text())["config"]["data"]
        data = resolve("data", config)
        data.validate()
        want = self._state["config"].get("data_rows") or []
        if want and list(data.table_rows()) != list(want):
            raise DataError(f"model 'dlrm': data '{data.plugin_id}' has tables of {list(data.table_rows())} rows, "
                            f"the checkpoint was trained on {list(want)}")
        return data

    def _task(self, key: str, own: int) -> int:
        """``own`` if set, else the training run's ``task.<key>`` (the preset's batch size if null)."""
        if own:
            return own
        value = self._state.get("task", {}).get(key)
        if value is None and key == "batch_size":
            from ...training.dlrm import PRESETS

            value = PRESETS[self._state["task"].get("preset", "kaggle")]["batch_size"]
        return int(value)

    def load(self):
        if getattr(self, "_module", None) is None:
            from ...training.dlrm import DLRM, ModelConfig

            module = DLRM(ModelConfig(**self._state["config"]))
            module.load_state_dict(self._state["model"])
            for bag in module.emb.values():
                bag.sparse = False  # dense gradients, so that any optimizer can fine-tune the tables
            self._module = module.eval()
        return self._module

    @staticmethod
    def _tensors(batch):
        import torch

        return (torch.from_numpy(batch.dense), [torch.from_numpy(i) for i in batch.indices],
                [torch.from_numpy(o) for o in batch.offsets], torch.from_numpy(batch.label))

    def evaluate(self, module) -> dict[str, float]:
        """``auc``, ``logloss`` and ``accuracy`` (threshold 0.5) on the test batches."""
        import numpy as np
        import torch
        from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

        size, count = self._task("test_batch_size", self.config.test_batch_size), self._task("test_batches", self.config.test_batches)
        preds, labels = [], []
        module.eval()
        with torch.no_grad():
            for batch in islice(self._data.batches("test", size, 0), count):
                dense, idx, off, label = self._tensors(batch)
                preds.append(torch.sigmoid(module(dense, idx, off)).double().numpy())
                labels.append(label.numpy())
        p, y = np.concatenate(preds), np.concatenate(labels).astype(np.int64)
        return {"auc": float(roc_auc_score(y, p)), "logloss": float(log_loss(y, p, labels=[0, 1])),
                "accuracy": float(accuracy_score(y, p > 0.5))}

    def train_batches(self, epoch: int):
        """``finetune_batches`` training batches, from batch ``epoch · finetune_batches`` on."""
        n = self.config.finetune_batches
        size = self._task("batch_size", self.config.batch_size)
        for batch in islice(self._data.batches("train", size, epoch * n), n):
            yield self._tensors(batch)

    def loss(self, module, batch):
        import torch.nn.functional as F

        dense, idx, off, label = batch
        return F.binary_cross_entropy_with_logits(module(dense, idx, off), label)
