"""``benchmark``: compress every field of a data source and measure ratio, speed and error.

For each field the schedule gives the bound, the quantizer runs once, and each encoder (the run's
``encoder``, or every id in ``task.encoders``) encodes the same codes; the frame is parsed back
from bytes, decoded bit-exact and dequantized. Per field: the metrics of ``compframe.metrics``;
per table, per encoder and over the run: totals (ratio of total bytes, harmonic mean of
throughputs, worst errors).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from ... import metrics
from ...base import Task
from ...pipeline import measure
from ...registry import create, plugin_class, register
from ...report import plot_by_table, progress_bar, summary_table


@register("task", "benchmark")
class Benchmark(Task):
    """Measure a quantizer and one or more encoders on every field of the data source."""

    @dataclass
    class Config:
        encoders: list[str] = field(default_factory=list)
        bandwidths_gbps: list[float] = field(default_factory=lambda: [5.0])
        warmup: bool = True
        require_bound: bool = True

    def check(self):
        for i, b in enumerate(self.config.bandwidths_gbps):
            if not b > 0:
                self.fail("bandwidths_gbps", f"entry {i} is {b}; bandwidths must be > 0 (GB/s)")
        for enc in self.config.encoders:
            plugin_class("encoder", enc)  # an unknown id fails here, before any data is read

    def run(self, parts, recorder, progress: bool = True):
        data, schedule, quantizer = parts["data"], parts["schedule"], parts["quantizer"]
        encoders = [create("encoder", e) for e in self.config.encoders] or [parts["encoder"]]
        bandwidths = list(self.config.bandwidths_gbps)
        rows = recorder.results.setdefault("fields", [])
        warmed: set[str] = set()
        with progress_bar(data.count(), "compressing", enabled=progress) as advance:
            for f in data.fields():
                bound = schedule.bound(f.table, f.iteration) if quantizer.guarantee == "error_bound" else None
                if self.config.warmup and f.data.dtype.name not in warmed:
                    # compile the kernels for this dtype outside the timed run
                    measure(_warmup_slice(f.data), quantizer, encoders, bound, bandwidths)
                    warmed.add(f.data.dtype.name)
                for result in measure(f.data, quantizer, encoders, bound, bandwidths):
                    rows.append({"field": f.name, **f.coords(), "bound": None if bound is None else str(bound), **result})
                    if self.config.require_bound and not result["bound_ok"]:
                        recorder.flush()
                        raise AssertionError(
                            f"quantizer '{quantizer.plugin_id}' broke its promise on field '{f.name}' "
                            f"(max_abs_error {result['max_abs_error']:.6g}, bound {result['abs_bound']})"
                        )
                recorder.flush()
                advance()
        recorder.results["totals"] = metrics.totals(rows, bandwidths)
        recorder.results["by_encoder"] = {
            enc: metrics.totals([r for r in rows if r["encoder"] == enc], bandwidths) for enc in [e.plugin_id for e in encoders]
        }
        recorder.results["by_table"] = [
            {"encoder": enc, "table": table, **metrics.totals(list(group), bandwidths)}
            for (enc, table), group in itertools.groupby(
                sorted(rows, key=lambda r: (r["encoder"], _sort_key(r["table"]))), key=lambda r: (r["encoder"], r["table"]))
        ]
        recorder.flush()
        summary_table(recorder.results, bandwidths)
        plot_by_table(recorder.results, recorder.path.parent / "by_table.png")
        return recorder.results


def _warmup_slice(data: np.ndarray) -> np.ndarray:
    """A small piece of a field with the same number of dimensions (matrix quantizers need 2-D)."""
    if data.ndim <= 1:
        return np.ascontiguousarray(data[:4096])
    rows = max(1, min(data.shape[0], 4096 // max(1, int(np.prod(data.shape[1:])))))
    return np.ascontiguousarray(data[:max(rows, min(data.shape[0], 8))])


def _sort_key(table):
    return (table is None, table if table is not None else 0)
