"""``compress_model``: compress a model's layers with any registered quantizer, prune them, measure the
task metric and the model's size.

The model comes from the run's ``model`` source (kind ``model``). Every Linear/Conv/Embedding weight
chosen by ``layers`` (or all of them, with the run's ``quantizer``, when ``layers`` is empty) goes
through ``cf.compress`` and ``cf.decompress``; the compressed copy's metric is compared with the fp32
model's. Optionally the inputs of chosen layers are quantized too (forward hooks), and the model is
fine-tuned compression-aware (straight-through estimators) before the final compression. See
docs/model_compression.md for the configuration and the result names.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ... import metrics
from ...base import Task
from ...errors import ConfigError
from ...modelcomp import plan as P
from ...modelcomp import ste
from ...modelcomp.weights import as_matrix, build, compress_weight, fake_quantize, format_bits, pruned_fraction
from ...registry import register
from ...console import progress_bar, stdout_console

FP32_BITS = 32


@register("task", "compress_model")
class CompressModel(Task):
    """Per-layer quantization and pruning of a model source's model, with its metric and size.

    ``layers``: ``{glob: entry}`` in order, first match wins (entries: see ``modelcomp.plan``);
    empty = every layer with the run's quantizer. ``sparsity``/``prune_mode``: pruning of layers
    without a ``prune`` entry (``prune_scope: layer``: each layer exactly ``round(sparsity n)``;
    ``global``: exactly ``round(sparsity N)`` over all compressed layers together, chosen by global
    magnitude or at random). ``activations``: ``{glob: {quantizer: id, params}}`` quantizes the
    inputs of the matching Linear/Conv layers. ``finetune_epochs`` > 0: compression-aware training
    with Adam at ``finetune_lr`` before the final compression.
    """

    @dataclass
    class Config:
        layers: dict[str, Any] = field(default_factory=dict)
        prune_scope: str = "layer"
        sparsity: float = 0.0
        prune_mode: str = "magnitude"
        prune_seed: int = 0
        activations: dict[str, Any] = field(default_factory=dict)
        finetune_epochs: int = 0
        finetune_lr: float = 1e-4

    def check(self):
        c = self.config
        self.require("prune_scope", choices=("layer", "global"))
        self.require("sparsity", low=0.0, high=1.0)
        self.require("prune_mode", choices=P.PRUNE_MODES)
        self.require("prune_seed", low=0)
        self.require("finetune_epochs", low=0)
        self.require("finetune_lr", low=0.0, open_low=True)
        for group, entries in (("layers", c.layers), ("activations", c.activations)):
            for key, entry in entries.items():  # the structure, and the entries that name their quantizer
                if isinstance(entry, dict) and entry.get("quantizer") not in (None, "none"):
                    where = f"{group}['{key}']"
                    P.validate(P.parse_entry(where, entry, None, self._no_prune(group)), where)

    def _no_prune(self, group: str) -> str | None:
        """Why a ``prune`` key is refused in ``group``'s entries, or None where it is allowed."""
        if group == "activations":
            return "is not allowed: pruning is for weights"
        if self.config.prune_scope == "global":
            return "is per layer, but prune_scope is 'global': use task.sparsity and task.prune_mode"
        return None

    # -- the plan ---------------------------------------------------------------------------------

    def _specs(self, default: dict[str, Any] | None) -> dict[str, P.LayerSpec]:
        """``{pattern: LayerSpec}``; layers without their own ``prune`` get ``sparsity``/``prune_mode``."""
        c = self.config
        entries = c.layers or {"*": {}}
        specs = {}
        for key, entry in entries.items():
            where = f"layers['{key}']"
            spec = P.parse_entry(where, entry, default, self._no_prune("layers"))
            has_own = isinstance(entry, dict) and entry.get("prune")
            if spec.quantizer is not None and not has_own and c.sparsity > 0:
                spec = P.LayerSpec(spec.quantizer, c.sparsity, c.prune_mode)
            P.validate(spec, where)
            specs[key] = spec
        return specs

    def _activation_specs(self, default):
        specs = {}
        for key, entry in self.config.activations.items():
            where = f"activations['{key}']"
            specs[key] = P.parse_entry(where, entry, default, self._no_prune("activations"))
            P.validate(specs[key], where)
        return specs

    def _configs(self, specs: dict[str, P.LayerSpec], weights: dict[str, np.ndarray],
                 seeds: dict[str, int]) -> dict[str, dict[str, Any]]:
        """Each compressed layer's quantizer config for these weights (global pruning depends on them)."""
        c = self.config
        fractions = {}
        if c.prune_scope == "global" and c.sparsity > 0:
            fractions = P.global_fractions(weights, c.sparsity, c.prune_mode, c.prune_seed)
        return {n: specs[n].config(fractions.get(n), seeds[n]) for n in weights}

    # -- the run ----------------------------------------------------------------------------------

    def run(self, parts, recorder, progress: bool = True):
        self.compressed_model(parts, recorder, progress)
        _summary(recorder.results, parts["model"].metric)
        return recorder.results

    def compressed_model(self, parts, recorder, progress: bool = True):
        """Build, measure and return the compressed copy of the model (results in ``recorder``)."""
        source = parts.get("model")
        if source is None:
            raise ConfigError("task", "compress_model", "model",
                              "is not set; choose a model source, e.g. model=mlp_digits (ids: see conf/model/)")
        default = parts["quantizer"].get_config() if "quantizer" in parts else None
        encoder, schedule = parts["encoder"], parts["schedule"]
        patterns = self._specs(default)
        act_patterns = self._activation_specs(default)

        fp32 = source.load()
        layers = P.eligible_layers(fp32)
        names = list(layers)
        chosen = P.match(list(patterns), names, "layers")
        specs = {n: patterns[p] for n, p in chosen.items() if patterns[p].quantizer is not None}
        seeds = {n: self.config.prune_seed + names.index(n) for n in specs}
        linear_names = [n for n, m in layers.items() if type(m).__name__.startswith(("Linear", "Conv"))]
        act_chosen = P.match(list(act_patterns), linear_names, "activations")

        results = recorder.results
        results["model"] = source.get_config()
        fp32_scores = source.evaluate(fp32)
        results["fp32"] = fp32_scores
        recorder.flush()

        model = copy.deepcopy(fp32)
        model_layers = P.eligible_layers(model)
        compressed = {n: model_layers[n] for n in specs}
        activations = []
        for n, p in act_chosen.items():
            if act_patterns[p].quantizer is None:
                continue
            quantizer, bound = build(act_patterns[p].quantizer, schedule)
            ste.quantize_inputs(model_layers[n], n, quantizer, bound)
            activations.append({"name": n, "quantizer": quantizer.get_config()})
        results["activations"] = activations

        def fake(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            configs = self._configs(specs, weights, seeds)
            return {n: fake_quantize(n, as_matrix(w), *build(configs[n], schedule)).reshape(w.shape)
                    for n, w in weights.items()}

        if self.config.finetune_epochs:
            with ste.CompressedWeights(compressed, fake):
                results["metric_before_finetune"] = source.evaluate(model)[source.metric]
            results["finetune"] = ste.finetune(model, compressed, fake, source, self.config.finetune_epochs,
                                               self.config.finetune_lr, recorder.log_metrics)
            recorder.flush()

        rows = self._compress(compressed, specs, seeds, encoder, schedule, recorder, progress)
        scores = source.evaluate(model)
        results["totals"] = _totals(source, scores, fp32_scores, rows, model, results.get("metric_before_finetune"))
        recorder.flush()
        return model

    def _compress(self, compressed, specs, seeds, encoder, schedule, recorder, progress):
        """Write each layer's weight, compressed and rebuilt from its frame, into the layer (the
        model's own module); one result row per layer."""
        import torch

        weights = {n: m.weight.detach().cpu().numpy().copy() for n, m in compressed.items()}
        configs = self._configs(specs, weights, seeds)
        rows = recorder.results.setdefault("layers", [])
        with progress_bar(len(weights), "compressing layers", enabled=progress) as advance:
            for n, w in weights.items():
                quantizer, bound = build(configs[n], schedule)
                frame, w_hat = compress_weight(n, w, quantizer, bound, encoder)
                with torch.no_grad():
                    compressed[n].weight.copy_(torch.from_numpy(np.ascontiguousarray(w_hat, dtype=w.dtype)))
                bits = format_bits(frame)
                stats = metrics.error_stats(w, w_hat)
                rows.append({
                    "name": n, "type": type(compressed[n]).__name__, "shape": list(w.shape),
                    "quantizer": quantizer.get_config(), "bound": None if bound is None else str(bound),
                    "n_weights": int(w.size), "frame_bytes": len(frame), "format_bits": bits,
                    "bits_per_weight": bits / w.size, "frame_bits_per_weight": 8 * len(frame) / w.size,
                    "sparsity": pruned_fraction(frame), "zeros": float(np.mean(w_hat == 0)),
                    **{k: v for k, v in stats.items() if k != "nonfinite_ok"},
                })
                recorder.flush()
                advance()
        return rows


def _totals(source, scores, fp32_scores, rows, model, before_finetune) -> dict[str, Any]:
    """The run's totals: metric (under ``metric`` and its own name), fp32 metric and drop, sizes."""
    name = source.metric
    n_params = sum(p.numel() for p in model.parameters())
    n_weights = sum(r["n_weights"] for r in rows)
    fmt_bits = sum(r["format_bits"] for r in rows)
    frame_bits = 8 * sum(r["frame_bytes"] for r in rows)
    other = FP32_BITS * (n_params - n_weights)
    drop = fp32_scores[name] - scores[name] if source.higher_is_better else scores[name] - fp32_scores[name]
    totals = {
        "metric": scores[name], **scores, **{f"fp32_{k}": v for k, v in fp32_scores.items()},
        "fp32_metric": fp32_scores[name], "metric_drop": drop,
        "bits_per_weight": fmt_bits / n_weights if n_weights else float(FP32_BITS),
        "frame_bits_per_weight": frame_bits / n_weights if n_weights else float(FP32_BITS),
        "model_bits": fmt_bits + other, "model_frame_bits": frame_bits + other,
        "fp32_model_bits": FP32_BITS * n_params,
        "compression_ratio": FP32_BITS * n_params / (frame_bits + other),
        "compressed_layers": len(rows), "compressed_weights": n_weights, "model_params": n_params,
        "sparsity": sum(r["sparsity"] * r["n_weights"] for r in rows) / n_weights if n_weights else 0.0,
    }
    if before_finetune is not None:
        totals["metric_before_finetune"] = before_finetune
    return totals


def _summary(results: dict[str, Any], metric: str) -> None:
    from rich.table import Table

    t = results["totals"]
    table = Table(title=f"compress_model: {metric} {t['metric']:.4f} (fp32 {t['fp32_metric']:.4f}), "
                        f"{t['bits_per_weight']:.3f} bits/weight, model {t['model_bits'] / 8e6:.3f} MB "
                        f"({t['model_frame_bits'] / 8e6:.3f} MB in frames)")
    for col in ("layer", "quantizer", "bits/weight", "frame bits/weight", "sparsity", "rel_l2_error"):
        table.add_column(col, justify="right" if col != "layer" else "left")
    for r in results["layers"]:
        q = r["quantizer"]
        label = q["id"] if q["id"] != "prune" else f"prune({q['fraction']:.3g})+{q['then']}"
        table.add_row(r["name"], label, f"{r['bits_per_weight']:.3f}", f"{r['frame_bits_per_weight']:.3f}",
                      f"{r['sparsity']:.3f}", f"{r['rel_l2_error']:.4g}")
    stdout_console().print(table)
