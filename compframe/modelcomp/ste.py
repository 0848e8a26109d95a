"""Straight-through estimators: quantized activations through forward hooks, and compression-aware
fine-tuning of the fp32 weights.

The straight-through estimator (Bengio, Léonard & Courville 2013; the backward pass of every
quantizer in DeepWok/mase, src/chop/nn/quantizers) uses the quantized value forward and passes the
gradient unchanged to the value before quantization: ``x + (q(x) - x).detach()`` for activations; for weights, the forward
and backward passes run on the compressed weights and the optimizer step updates the fp32 master
weights, which are compressed again at the next step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .weights import fake_quantize


def quantize_inputs(module, name: str, quantizer, bound) -> Any:
    """Quantize the float input of ``module`` on every forward (STE); returns the hook handle."""
    import torch

    def hook(_, args):
        x = args[0]
        x_hat = fake_quantize(f"{name} (input)", x.detach().cpu().numpy(), quantizer, bound)
        return (x + (torch.from_numpy(x_hat).to(x.device) - x).detach(), *args[1:])

    return module.register_forward_pre_hook(hook)


class CompressedWeights:
    """Swaps the layers' weights for their compressed values and back, keeping the fp32 masters.

    ``compress(masters) -> {name: compressed array}`` receives the fp32 weights as numpy arrays.
    """

    def __init__(self, layers: dict[str, Any], compress: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]):
        self.layers, self.compress = layers, compress
        self.masters: dict[str, Any] = {}

    def __enter__(self):
        import torch

        self.masters = {n: m.weight.data for n, m in self.layers.items()}
        hats = self.compress({n: w.detach().cpu().numpy() for n, w in self.masters.items()})
        for n, m in self.layers.items():
            m.weight.data = torch.from_numpy(hats[n]).to(self.masters[n].device)
        return self

    def __exit__(self, *exc):
        for n, m in self.layers.items():
            m.weight.data = self.masters[n]
        return False


def finetune(model, layers: dict[str, Any], compress, source, epochs: int, lr: float,
             log: Callable[[dict[str, float], int], None]) -> list[dict[str, float]]:
    """Compression-aware training of ``model`` for ``epochs`` epochs of ``source.train_batches`` (Adam).

    Each step compresses the layers' fp32 weights, runs forward and backward on the compressed
    ones, restores the fp32 weights and lets the optimizer update them (STE). Returns and logs, per
    epoch, the mean training loss and the source's metrics of the compressed model.
    """
    import torch

    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    history = []
    for epoch in range(epochs):
        model.train()
        losses = []
        for batch in source.train_batches(epoch):
            with CompressedWeights(layers, compress):
                opt.zero_grad()
                loss = source.loss(model, batch)
                loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        with CompressedWeights(layers, compress):
            scores = source.evaluate(model)
        row = {"epoch": epoch + 1, "finetune_loss": float(np.mean(losses)), **scores}
        history.append(row)
        log({k: v for k, v in row.items() if k != "epoch"}, epoch + 1)
    return history
