"""``mlp_digits`` and ``cnn_digits``: small classifiers trained on scikit-learn's digits, offline.

The data are the 1797 8x8 images of ``sklearn.datasets.load_digits`` (shipped with scikit-learn),
pixels scaled from 0..16 to [0, 1], split once and for all into 1347 training and 450 test images
(stratified, ``random_state=0``). A net is trained with Adam on the training images the first time
a configuration is asked for, and its weights are cached in ``cache_dir`` under the plugin id and a
hash of its configuration (``seed`` included), so every later job with the same configuration loads
the same fp32 model. The metric is ``accuracy`` (a fraction in [0, 1]) on the test images.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from ...base import ModelSource
from ...registry import register

TEST_FRACTION = 0.25
SPLIT_SEED = 0


def digits_split():
    """(x_train, y_train, x_test, y_test) as torch tensors: float32 images in [0, 1], int64 labels."""
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.images.astype("float32") / 16.0
    parts = train_test_split(x, digits.target, test_size=TEST_FRACTION, random_state=SPLIT_SEED,
                             stratify=digits.target)
    x_tr, x_te, y_tr, y_te = (torch.from_numpy(p) for p in parts)
    return x_tr, y_tr.long(), x_te, y_te.long()


class DigitsNet(ModelSource):
    """Common part of the digits nets: data, training, cache, accuracy and cross-entropy loss."""

    metric: ClassVar[str] = "accuracy"

    @dataclass
    class Config:
        """The training parameters every digits net has (the nets add their shape)."""
        epochs: int = 60
        lr: float = 1e-3
        batch_size: int = 64
        seed: int = 0
        cache_dir: str = "outputs/cache/models"

    def check(self):
        c = self.config
        self.require("epochs", low=1)
        self.require("lr", low=0.0, open_low=True)
        self.require("batch_size", low=1)
        self.require("seed", low=0)
        if not c.cache_dir:
            self.fail("cache_dir", "is empty; give a folder for the trained weights")

    def build(self):
        """A freshly initialised net of this configuration (seeded)."""
        raise NotImplementedError

    @cached_property
    def data(self):
        return digits_split()

    @property
    def cache_file(self) -> Path:
        """``<cache_dir>/<id>-<hash of the configuration without cache_dir>.pt``."""
        key = {k: v for k, v in asdict(self.config).items() if k != "cache_dir"}
        digest = hashlib.sha256(json.dumps([self.plugin_id, key], sort_keys=True).encode()).hexdigest()[:16]
        return Path(self.config.cache_dir) / f"{self.plugin_id}-{digest}.pt"

    def load(self):
        if getattr(self, "_module", None) is None:
            self._module = self._load_or_train()
        return self._module

    def _load_or_train(self):
        import torch

        torch.manual_seed(self.config.seed)
        module = self.build()
        path = self.cache_file
        if path.exists():
            module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return module.eval()
        self._train(module)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(module.state_dict(), tmp)
        os.replace(tmp, path)  # parallel jobs may train the same net; the last complete file wins
        return module.eval()

    def _train(self, module) -> None:
        import torch

        opt = torch.optim.Adam(module.parameters(), lr=self.config.lr)
        module.train()
        for epoch in range(self.config.epochs):
            for batch in self.train_batches(epoch):
                opt.zero_grad()
                self.loss(module, batch).backward()
                opt.step()

    def train_batches(self, epoch: int) -> Iterator[Any]:
        """Mini-batches ``(images, labels)`` of the training split, shuffled by (seed, epoch)."""
        import torch

        x, y = self.data[0], self.data[1]
        g = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        order = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), self.config.batch_size):
            idx = order[i:i + self.config.batch_size]
            yield x[idx], y[idx]

    def loss(self, module, batch):
        import torch.nn.functional as F

        x, y = batch
        return F.cross_entropy(module(x), y)

    def evaluate(self, module) -> dict[str, float]:
        """``accuracy`` (fraction correct) and ``test_loss`` (mean cross-entropy) on the 450 test images."""
        import torch
        import torch.nn.functional as F

        x, y = self.data[2], self.data[3]
        was_training = module.training
        module.eval()
        with torch.no_grad():
            logits = module(x)
        module.train(was_training)
        return {"accuracy": int((logits.argmax(1) == y).sum()) / len(y),
                "test_loss": float(F.cross_entropy(logits, y))}


@register("model", "mlp_digits")
class MLPDigits(DigitsNet):
    """A ReLU MLP on the 64 pixels: ``fc1`` ... ``fc<k>`` (``hidden`` widths, then 10 classes)."""

    @dataclass
    class Config(DigitsNet.Config):
        hidden: list[int] = field(default_factory=lambda: [256, 128])

    def check(self):
        super().check()
        if not self.config.hidden or min(self.config.hidden) < 1:
            self.fail("hidden", f"is {self.config.hidden}; give one or more widths >= 1")

    def build(self):
        from torch import nn

        widths = [64, *self.config.hidden, 10]
        layers: list[tuple[str, nn.Module]] = [("flatten", nn.Flatten())]
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:]), start=1):
            layers.append((f"fc{i}", nn.Linear(n_in, n_out)))
            if i < len(widths) - 1:
                layers.append((f"relu{i}", nn.ReLU()))
        return nn.Sequential(OrderedDict(layers))


@register("model", "cnn_digits")
class CNNDigits(DigitsNet):
    """Two 3x3 convolutions (``conv1``, ``conv2``, ReLU, padding 1), 2x2 max pooling, then ``fc`` to 10 classes."""

    @dataclass
    class Config(DigitsNet.Config):
        channels: list[int] = field(default_factory=lambda: [16, 32])
        epochs: int = 40
        lr: float = 2e-3

    def check(self):
        super().check()
        if len(self.config.channels) != 2 or min(self.config.channels) < 1:
            self.fail("channels", f"is {self.config.channels}; give two widths >= 1")

    def build(self):
        from torch import nn

        c1, c2 = self.config.channels
        return nn.Sequential(OrderedDict([
            ("unflatten", nn.Unflatten(1, (1, 8))),
            ("conv1", nn.Conv2d(1, c1, 3, padding=1)), ("relu1", nn.ReLU()),
            ("conv2", nn.Conv2d(c1, c2, 3, padding=1)), ("relu2", nn.ReLU()),
            ("pool", nn.MaxPool2d(2)), ("flatten", nn.Flatten()),
            ("fc", nn.Linear(c2 * 16, 10)),
        ]))
