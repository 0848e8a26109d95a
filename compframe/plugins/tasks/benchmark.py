"""``benchmark``: compress every field of a data source and measure ratio, speed and error.

For each field the schedule gives the bound, the quantizer runs once, and each encoder (the run's
``encoder``, or every id in ``task.encoders``) encodes the same codes; the frame is parsed back
from bytes, decoded bit-exact and dequantized. Per field: the metrics of ``compframe.metrics``;
per table, per pipeline and over the run: totals (ratio of total bytes, throughput = total bytes /
total time, worst errors).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ... import metrics
from ...base import Task
from ...kernels.targets import PARALLEL_MIN, compilations
from ...pipeline import measure
from ...registry import register, resolve
from ...console import VIEWS, plot_by_table, progress_bar, summary_table


@register("task", "benchmark")
class Benchmark(Task):
    """Measure one or more quantizers and encoders on every field of the data source.

    ``quantizers`` and ``encoders`` (ids, or config dicts ``{id: ..., <params>}``, built through
    ``registry.resolve`` and validated before any data is read) replace the run's single quantizer
    and encoder, so several pipelines see the same fields in one job: each
    field is quantized once per quantizer and every encoder encodes those same codes. Results are
    grouped per pipeline ``<quantizer>+<encoder>`` (``by_pipeline``) and per pipeline and table.
    """

    @dataclass
    class Config:
        quantizers: list[Any] = field(default_factory=list)
        encoders: list[Any] = field(default_factory=list)
        bandwidths_gbps: list[float] = field(default_factory=lambda: [5.0])
        plot_metrics: list[str] = field(default_factory=lambda: ["compression_ratio", "max_error_over_bound"])
        warmup: bool = True  # time no compilation: warm-up per pipeline, re-time a field if numba compiled
        table: str = "pipeline"  # the summary printed at the end: one row per pipeline, per table or per field
        require_bound: bool = True

    def check(self):
        self.require("table", choices=VIEWS)
        for i, b in enumerate(self.config.bandwidths_gbps):
            if not b > 0:
                self.fail("bandwidths_gbps", f"entry {i} is {b}; bandwidths must be > 0 (GB/s)")
        self._quantizers = self._resolve_all("quantizer", self.config.quantizers)
        self._encoders = self._resolve_all("encoder", self.config.encoders)

    def _resolve_all(self, kind: str, specs: list[Any]) -> list:
        """Ids or ``{id: ..., params}`` dicts, built now (parameters validated before any data)."""
        try:
            return [resolve(kind, spec) for spec in specs]
        except TypeError as e:
            self.fail(f"{kind}s", str(e))

    def pipelines(self, parts) -> list[str]:
        """The ``<quantizer>+<encoder>`` labels this task will run with ``parts`` (MLflow tags)."""
        return [f"{q}+{e}" for q, _ in _labelled(self._quantizers or [parts["quantizer"]])
                for e, _ in _labelled(self._encoders or [parts["encoder"]])]

    def run(self, parts, recorder, progress: bool = True):
        data, schedule = parts["data"], parts["schedule"]
        quantizers = _labelled(self._quantizers or [parts["quantizer"]])
        encoder_labels, encoders = zip(*_labelled(self._encoders or [parts["encoder"]]))
        bandwidths = list(self.config.bandwidths_gbps)
        rows = recorder.results.setdefault("fields", [])
        warmed: set[tuple[str, str]] = set()
        with progress_bar(data.count(), "compressing", enabled=progress) as advance:
            for f in data.fields():
                for label, quantizer in quantizers:
                    bound = schedule.bound(f.table, f.iteration) if quantizer.guarantee == "error_bound" else None
                    results = self._measure(f.data, quantizer, encoders, bound, bandwidths, warmed, label)
                    for encoder_label, result in zip(encoder_labels, results):
                        result["encoder"] = encoder_label
                        rows.append({"field": f.name, **f.coords(), "quantizer": label,
                                     "pipeline": f"{label}+{encoder_label}",
                                     "bound": None if bound is None else str(bound), **result})
                        if self.config.require_bound and not result["bound_ok"]:
                            recorder.flush()
                            raise AssertionError(
                                f"quantizer '{label}' broke its promise on field '{f.name}' "
                                f"(max_abs_error {result['max_abs_error']:.6g}, bound {result['abs_bound']})"
                            )
                recorder.flush()
                advance()
        pipelines = list(dict.fromkeys(r["pipeline"] for r in rows))
        recorder.results["totals"] = metrics.totals(rows, bandwidths)
        recorder.results["by_pipeline"] = {
            p: metrics.totals([r for r in rows if r["pipeline"] == p], bandwidths) for p in pipelines
        }
        recorder.results["by_table"] = [
            {"pipeline": p, "table": table, **metrics.totals(list(group), bandwidths)}
            for (p, table), group in itertools.groupby(
                sorted(rows, key=lambda r: (pipelines.index(r["pipeline"]), _sort_key(r["table"]))),
                key=lambda r: (r["pipeline"], r["table"]))
        ]
        recorder.flush()
        summary_table(recorder.results, bandwidths, by=self.config.table)
        plot_by_table(recorder.results, recorder.path.parent / "by_table.png", self.config.plot_metrics)
        return recorder.results


    def _measure(self, x, quantizer, encoders, bound, bandwidths, warmed: set, label: str) -> list[dict]:
        """``pipeline.measure`` with no compilation inside the timings (``warmup``, the default).

        The first field of each class (pipeline, dtype, dimensions, parallel or not) is preceded by
        an untimed run on a slice of it, under the same thread policy. Kernels that only some fields
        reach (the outlier repair of a uniform quantizer, an encoder's dedup or block-table path) are
        compiled, or loaded from numba's cache, when first met; a measurement during which numba
        compiled anything is therefore discarded and taken again (``targets.compilations``).
        """
        if not self.config.warmup:
            return measure(x, quantizer, encoders, bound, bandwidths)
        key = (label, x.dtype.name, x.ndim, x.size >= PARALLEL_MIN)
        if key not in warmed:
            measure(_warmup_slice(x), quantizer, encoders, bound, bandwidths, work=x.size)
            warmed.add(key)
        for _ in range(MAX_RETIMES):
            with compilations() as compiled:
                results = measure(x, quantizer, encoders, bound, bandwidths)
            if not compiled:
                break
        return results


MAX_RETIMES = 4
"""Times a field is measured at most while numba keeps compiling (each compiles what it met first)."""


def _labelled(plugins):
    """(label, plugin) pairs: the id, with ``#k`` added where one id appears more than once."""
    ids = [p.plugin_id for p in plugins]
    return [(pid if ids.count(pid) == 1 else f"{pid}#{ids[:k].count(pid) + 1}", p) for k, (pid, p) in enumerate(zip(ids, plugins))]


def _warmup_slice(data: np.ndarray) -> np.ndarray:
    """A small piece of a field with the same number of dimensions (matrix quantizers need 2-D)."""
    if data.ndim <= 1:
        return np.ascontiguousarray(data[:4096])
    rows = max(1, min(data.shape[0], 4096 // max(1, int(np.prod(data.shape[1:])))))
    return np.ascontiguousarray(data[:max(rows, min(data.shape[0], 8))])


def _sort_key(table):
    return (table is None, table if table is not None else 0)
