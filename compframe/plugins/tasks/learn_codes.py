"""``learn_codes``: train a classifier on compressed codes of its inputs, and on the decoded inputs.

Can a model learn directly from the codes a compressor stores, and at how many bits per sample? For
each representation (a registry quantizer with a feature kind) the whole dataset is compressed into
one frame through the pipeline with the run's encoder (the compressor is unsupervised: it sees every
sample, never a label, as a dataset stored compressed would); the codes are read back from the
frame's bytes; a classifier is trained on features of the codes of the training split and scored on
the test split, and the same classifier is trained and scored on the decoded inputs. Bits per sample
are the frame's bytes x 8 / number of samples (codes, side data such as codebooks or bases, and the
header).

How samples reach the quantizer: as one ``(n h, w)`` array of stacked images for ``vq`` (its 2 x 2
tiles are image tiles and its codes one index per tile), otherwise as an ``(n, h w)`` matrix, one row
per sample (``nq``/``fixed`` codes are quantized pixels; the first factor ``Z`` of ``lsvd``/``lplr``
holds each sample's quantized coefficients in a shared low-rank basis).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ... import codes_learning as cl
from ... import compress, pipeline
from ...base import ErrorBound, Task
from ...errors import ConfigError
from ...registry import register, resolve
from ...console import progress_bar, stdout_console

REPRESENTATION_KEYS = ("quantizer", "features", "codes", "bound", "label")


def _default_representations() -> list[dict[str, Any]]:
    pixels = [{"quantizer": {"id": "nq", "b0": b}, "features": "ordinal"} for b in (1, 2, 3, 4)]
    tiles = [{"quantizer": {"id": "vq", "bits": b}, "features": "onehot"} for b in (2, 4, 6, 8)]
    factors = [{"quantizer": {"id": q, "rank": r}, "features": "ordinal", "codes": "Z"}
               for q in ("lsvd", "lplr") for r in (4, 8, 16)]
    return pixels + tiles + factors


@register("task", "learn_codes")
class LearnCodes(Task):
    """Accuracy of a classifier on codes and on decoded inputs, against bits per sample.

    ``representations``: dicts ``{quantizer: <id or {id, params}>, features: ordinal|onehot|histogram,
    codes: <code array, default the frame's first>, bound: <'rel:1e-2', error-bounded quantizers
    only>, label: <name, default from the quantizer>}``. ``classifier``: ``logreg`` or ``mlp``.
    """

    @dataclass
    class Config:
        dataset: str = "digits"
        images: list[str] = field(default_factory=lambda: ["brick", "grass", "gravel"])
        patch: int = 16
        classifier: str = "logreg"
        test_fraction: float = 0.25
        seed: int = 0
        representations: list[Any] = field(default_factory=_default_representations)

    def check(self):
        c = self.config
        self.require("dataset", choices=cl.DATASETS)
        self.require("classifier", choices=cl.CLASSIFIERS)
        self.require("patch", low=2, high=512)
        self.require("test_fraction", low=0.0, high=0.9, open_low=True)
        self.require("seed", low=0)
        if not c.representations:
            self.fail("representations", "is empty; give at least one {quantizer: ..., features: ...}")
        self._reps = [self._representation(i, spec) for i, spec in enumerate(c.representations)]
        labels = [r["label"] for r in self._reps]
        if len(set(labels)) != len(labels):
            self.fail("representations", f"labels repeat: {labels}; set 'label' to tell them apart")

    def _representation(self, i: int, spec: Any) -> dict[str, Any]:
        where = f"entry {i}"
        if not isinstance(spec, dict) or "quantizer" not in spec:
            self.fail("representations", f"{where} is {spec!r}; give a dict with 'quantizer' and 'features'")
        unknown = sorted(set(spec) - set(REPRESENTATION_KEYS))
        if unknown:
            self.fail("representations", f"{where} has unknown key(s) {unknown}; allowed: {', '.join(REPRESENTATION_KEYS)}")
        features = spec.get("features", "ordinal")
        if features not in cl.FEATURES:
            self.fail("representations", f"{where}: features '{features}' is unknown; choose from {', '.join(cl.FEATURES)}")
        try:
            quantizer = resolve("quantizer", spec["quantizer"])
        except (TypeError, ValueError, LookupError) as e:
            self.fail("representations", f"{where}: {e}")
        bound = spec.get("bound")
        if quantizer.guarantee == "error_bound" and bound is None:
            self.fail("representations", f"{where}: quantizer '{quantizer.plugin_id}' is error-bounded; give 'bound' "
                                         "(e.g. 'rel:1e-2')")
        try:
            bound = None if bound is None else ErrorBound.parse(bound)
        except ValueError as e:
            self.fail("representations", f"{where}: {e}")
        return {"quantizer": quantizer, "features": features, "codes": spec.get("codes"), "bound": bound,
                "label": str(spec.get("label") or _label(spec["quantizer"], features))}

    def run(self, parts, recorder, progress: bool = True):
        from sklearn.model_selection import train_test_split

        c = self.config
        encoder = parts["encoder"]
        x, y, classes = cl.load(c.dataset, list(c.images), c.patch)
        n = len(x)
        train, test = train_test_split(np.arange(n), test_size=c.test_fraction, random_state=c.seed, stratify=y)

        def accuracy(feats: np.ndarray) -> float:
            model = cl.classifier(c.classifier, c.seed).fit(feats[train], y[train])
            return float(model.score(feats[test], y[test]))

        raw_bits = 8 * x[0].nbytes
        results = recorder.results
        results.update({"dataset": c.dataset, "classes": classes, "n_samples": n, "n_test": len(test),
                        "sample_shape": list(x.shape[1:]), "encoder": encoder.plugin_id,
                        "raw": {"bits_per_sample": raw_bits, "accuracy": accuracy(x.reshape(n, -1))}})
        rows = results.setdefault("representations", [])
        with progress_bar(len(self._reps), "learning on codes", enabled=progress) as advance:
            for rep in self._reps:
                rows.append(self._measure(rep, x, encoder, accuracy))
                recorder.flush()
                advance()
        results["totals"] = {"raw_accuracy": results["raw"]["accuracy"], "raw_bits_per_sample": raw_bits,
                             "best_codes_accuracy": max(r["accuracy_codes"] for r in rows),
                             "best_decoded_accuracy": max(r["accuracy_decoded"] for r in rows)}
        results["by_pipeline"] = {r["label"]: {k: r[k] for k in ("bits_per_sample", "accuracy_codes",
                                                                  "accuracy_decoded", "rmse")} for r in rows}
        recorder.flush()
        table(results)
        plot(results, recorder.out_dir / "accuracy_vs_bits.png")
        return results

    @staticmethod
    def _measure(rep: dict[str, Any], x: np.ndarray, encoder, accuracy) -> dict[str, Any]:
        quantizer, n = rep["quantizer"], len(x)
        samples = x.reshape(n * x.shape[1], -1) if quantizer.plugin_id == "vq" else x.reshape(n, -1)
        t0 = time.perf_counter()
        frame = compress(samples, quantizer=quantizer, encoder=encoder, bound=rep["bound"])
        parsed, stored_quantizer, stored_encoder = pipeline.parse(frame)
        stored = pipeline.decode_quantized(parsed, stored_encoder)
        name = rep["codes"] or next(iter(stored.codes))
        if name not in stored.codes:
            raise ConfigError("task", "learn_codes", "representations",
                              f"entry '{rep['label']}': code array '{name}' is not in the frame; "
                              f"it holds {sorted(stored.codes)}")
        codes = cl.per_sample(stored.codes[name], n, name)
        feats = cl.features(codes, rep["features"])
        x_hat = np.asarray(stored_quantizer.dequantize(stored)).reshape(n, -1)
        seconds = time.perf_counter() - t0
        streams = parsed.code_streams()
        return {
            "label": rep["label"], "quantizer": quantizer.get_config(), "features": rep["features"],
            "codes": name, "n_features": int(feats.shape[1]), "frame_bytes": len(frame),
            "bits_per_sample": 8 * len(frame) / n,
            "code_bits_per_sample": 8 * sum(len(s) for s in streams.values()) / n,
            "side_bits_per_sample": 8 * stored.side_nbytes / n,
            "rmse": float(np.sqrt(np.mean((x_hat - x.reshape(n, -1)) ** 2))),
            "accuracy_codes": accuracy(feats), "accuracy_decoded": accuracy(x_hat),
            "codec_seconds": seconds,
        }


def _label(spec: Any, features: str) -> str:
    """``vq_bits4_onehot``: the id, the parameters given in the spec, the feature kind (MLflow-safe)."""
    if not isinstance(spec, dict):
        return f"{getattr(spec, 'plugin_id', spec)}_{features}"
    parts = [str(spec["id"])]
    for k, v in spec.items():
        if k != "id":
            value = "x".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
            parts.append(f"{k}{'-' if k[-1].isdigit() else ''}{value}")
    return "_".join([*parts, features])


def table(results: dict[str, Any]) -> None:
    """Print accuracy on codes and on decoded inputs per representation, by bits per sample."""
    from rich.table import Table

    raw = results["raw"]
    t = Table(title=f"learning on codes: {results['dataset']} ({results['n_samples']} samples, "
                    f"{len(results['classes'])} classes, encoder {results['encoder']}); raw float32 "
                    f"{raw['bits_per_sample']} bits/sample: accuracy {raw['accuracy']:.3f}", title_justify="left")
    for col in ("representation", "bits/sample", "code bits", "side bits", "features", "acc. codes", "acc. decoded",
                "rmse"):
        t.add_column(col, justify="right")
    for r in sorted(results["representations"], key=lambda r: r["bits_per_sample"]):
        t.add_row(r["label"], f"{r['bits_per_sample']:.1f}", f"{r['code_bits_per_sample']:.1f}",
                  f"{r['side_bits_per_sample']:.1f}", str(r["n_features"]), f"{r['accuracy_codes']:.3f}",
                  f"{r['accuracy_decoded']:.3f}", f"{r['rmse']:.3g}")
    stdout_console().print(t)


def plot(results: dict[str, Any], path) -> None:
    """Accuracy against bits per sample (log scale): per quantizer and feature kind, codes solid,
    decoded dashed; raw float32 as a star."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups: dict[str, list[dict]] = {}
    for r in results["representations"]:
        groups.setdefault(f"{r['quantizer']['id']} ({r['features']})", []).append(r)
    for k, (name, rows) in enumerate(groups.items()):
        rows = sorted(rows, key=lambda r: r["bits_per_sample"])
        bits = [r["bits_per_sample"] for r in rows]
        color = f"C{k % 10}"
        ax.plot(bits, [r["accuracy_codes"] for r in rows], "o-", color=color, label=f"{name}: codes")
        ax.plot(bits, [r["accuracy_decoded"] for r in rows], "s--", color=color, alpha=0.7, label=f"{name}: decoded")
    raw = results["raw"]
    ax.plot([raw["bits_per_sample"]], [raw["accuracy"]], "k*", ms=12, label="raw float32")
    ax.set_xscale("log")
    ax.set_xlabel("bits per sample (frame bytes x 8 / samples)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"learning on codes: {results['dataset']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
