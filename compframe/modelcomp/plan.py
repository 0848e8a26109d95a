"""Which layers get which quantizer and how much pruning: the plan of a ``compress_model`` run.

A layer is a module of the model that holds a ``weight`` of a ``Linear``, ``Conv1d/2d/3d``,
``Embedding`` or ``EmbeddingBag``; its name is the module's name in ``named_modules()`` (``fc1``,
``0.model.encoder.layer.3.attention.self.query``). Patterns are ``fnmatch`` globs over those names;
the first matching pattern (in the order given) decides a layer; a pattern that matches no layer is
an error naming it and listing the model's layers.

An entry is ``null`` or ``{quantizer: none}`` (the layer stays fp32) or ``{quantizer: <id>,
<params...>, prune: {sparsity: s, mode: magnitude|random}}``; without ``quantizer`` the run's
quantizer config is used, with the entry's params on top. Pruning composes before the quantizer
through the ``prune`` quantizer (``then`` = the layer's quantizer), so its mask is in the frame.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..registry import resolve

PRUNE_MODES = ("magnitude", "random")
PRUNE_KEYS = ("sparsity", "mode")
LAYER_TYPES = ("Linear", "Conv1d", "Conv2d", "Conv3d", "Embedding", "EmbeddingBag")


def eligible_layers(module) -> dict[str, Any]:
    """``{name: submodule}`` of every Linear/Conv/Embedding layer with a weight, in model order."""
    from torch import nn

    kinds = tuple(getattr(nn, t) for t in LAYER_TYPES)
    return {name: m for name, m in module.named_modules()
            if name and isinstance(m, kinds) and isinstance(getattr(m, "weight", None), nn.Parameter)}


def match(patterns: list[str], names: list[str], what: str) -> dict[str, str]:
    """``{name: first matching pattern}``; a pattern matching nothing raises ``ConfigError``."""
    chosen: dict[str, str] = {}
    for name in names:
        for pattern in patterns:
            if fnmatch.fnmatchcase(name, pattern):
                chosen[name] = pattern
                break
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(name, pattern) for name in names):
            raise ConfigError("task", "compress_model", what,
                              f"pattern '{pattern}' matches no layer; the model's layers are: {', '.join(names)}")
    return chosen


@dataclass(frozen=True)
class LayerSpec:
    """A layer's treatment: ``quantizer`` config dict (``{id, params}``; None = fp32) and pruning."""

    quantizer: dict[str, Any] | None
    sparsity: float = 0.0
    mode: str = "magnitude"

    def config(self, fraction: float | None = None, seed: int = 0) -> dict[str, Any]:
        """The quantizer config of the layer: the quantizer itself, or ``prune`` around it."""
        fraction = self.sparsity if fraction is None else fraction
        if self.sparsity <= 0:
            return dict(self.quantizer)
        q = dict(self.quantizer)
        then = q.pop("id")
        return {"id": "prune", "fraction": float(fraction), "mode": self.mode, "seed": int(seed),
                "then": then, "then_params": q}


def parse_entry(where: str, entry: Any, default: dict[str, Any] | None, no_prune: str | None = None) -> LayerSpec:
    """A ``LayerSpec`` from one entry, named ``where`` in errors (``layers['fc*']``); ``no_prune`` is
    the reason a ``prune`` key is refused here, None where it is allowed."""
    if entry is None:
        return LayerSpec(None)
    if not isinstance(entry, dict):
        raise ConfigError("task", "compress_model", where, f"must be null or a dict, got {entry!r}")
    params = dict(entry)
    qid = params.pop("quantizer", None)
    prune = params.pop("prune", None)
    if qid == "none":
        if prune or params:
            raise ConfigError("task", "compress_model", where, "is 'quantizer: none' (fp32) and takes no other keys")
        return LayerSpec(None)
    if qid is None:
        if default is None:
            raise ConfigError("task", "compress_model", where, "names no quantizer and the run has none")
        quantizer = {**default, **params}
    else:
        quantizer = {"id": qid, **params}
    if not prune:
        return LayerSpec(quantizer)
    if no_prune:
        raise ConfigError("task", "compress_model", f"{where}.prune", no_prune)
    return LayerSpec(quantizer, *check_prune(f"{where}.prune", prune))


def check_prune(where: str, prune: Any) -> tuple[float, str]:
    """``(sparsity, mode)`` from a prune dict, with the offending key named on bad input."""
    if not isinstance(prune, dict) or set(prune) - set(PRUNE_KEYS):
        raise ConfigError("task", "compress_model", where, f"must be a dict with keys {PRUNE_KEYS}, got {prune!r}")
    sparsity, mode = prune.get("sparsity", 0.0), prune.get("mode", "magnitude")
    if not isinstance(sparsity, (int, float)) or not 0 <= sparsity <= 1:
        raise ConfigError("task", "compress_model", f"{where}.sparsity", f"is {sparsity!r}; allowed range [0, 1]")
    if mode not in PRUNE_MODES:
        raise ConfigError("task", "compress_model", f"{where}.mode", f"is {mode!r}; allowed: {', '.join(PRUNE_MODES)}")
    return float(sparsity), mode


def validate(spec: LayerSpec, where: str) -> None:
    """Build the layer's quantizer once so that bad parameters fail before any model is loaded."""
    if spec.quantizer is None:
        return
    try:
        resolve("quantizer", spec.config(seed=0))
    except (ConfigError, LookupError, TypeError) as e:
        raise ConfigError("task", "compress_model", where, f"has an invalid quantizer: {e}") from None


def global_fractions(weights: dict[str, np.ndarray], sparsity: float, mode: str, seed: int) -> dict[str, float]:
    """Per-layer pruning fractions that prune exactly ``round(sparsity * N)`` of all ``N`` weights.

    ``magnitude``: the globally smallest magnitudes (Han et al. 2015, global ranking, as
    ``torch.nn.utils.prune.global_unstructured``); ``random``: a seeded uniform subset. A layer's
    fraction ``k/n`` makes the ``prune`` quantizer drop exactly its ``k`` (``round(k/n * n) = k``).
    """
    names = list(weights)
    sizes = np.array([weights[n].size for n in names])
    total = int(sizes.sum())
    drop = int(round(sparsity * total))
    if drop == 0:
        return {n: 0.0 for n in names}
    if mode == "random":
        chosen = np.random.default_rng(seed).permutation(total)[:drop]
    else:
        magnitude = np.concatenate([np.abs(weights[n].reshape(-1)) for n in names])
        chosen = np.argpartition(magnitude, drop - 1)[:drop] if drop < total else np.arange(total)
    counts = np.bincount(np.searchsorted(np.cumsum(sizes), chosen, side="right"), minlength=len(names))
    return {n: int(k) / int(s) for n, k, s in zip(names, counts, sizes)}
