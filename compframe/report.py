"""What a person sees: a progress bar on stderr while a job works, a summary table at the end."""

from __future__ import annotations

import math
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .metrics import speedup_key


@contextmanager
def progress_bar(total: int | None, description: str, enabled: bool = True):
    """Yield an ``advance()`` callable; the bar is drawn on stderr, and only on a terminal."""
    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=not (enabled and console.is_terminal), transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)


def stdout_console() -> Console:
    """A console on stdout, 132 columns wide when not a terminal (logs, CI) so tables stay legible."""
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 132)
    return console


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float) and (math.isinf(value) or math.isnan(value)):
        return str(value)
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def summary_table(results: dict, bandwidths_gbps, console: Console | None = None) -> Table:
    """Per table (and pipeline): ratio, bits per value, max error over bound, throughputs; then totals."""
    console = console or stdout_console()
    pipelines = list(results.get("by_pipeline", {}))
    several = len(pipelines) > 1
    speed = speedup_key(bandwidths_gbps[0]) if bandwidths_gbps else None
    table = Table(title=f"compframe benchmark ({', '.join(pipelines)})", title_justify="left")
    for col in (*(["pipeline"] if several else []), "table", "ratio", "bits/value", "max err/bound", "bound ok",
                "quant GB/s", "enc GB/s", "dec GB/s", "dequant GB/s", *([speed] if speed else [])):
        table.add_column(col, justify="right")

    def row(pipeline, name, t, style=None):
        cells = [name, _fmt(t.get("compression_ratio")), _fmt(t.get("bits_per_value")),
                 _fmt(t.get("max_error_over_bound")), _fmt(t.get("bound_ok")), _fmt(t.get("quantize_gbps")),
                 _fmt(t.get("encode_gbps")), _fmt(t.get("decode_gbps")), _fmt(t.get("dequantize_gbps"))]
        if speed:
            cells.append(_fmt(t.get(speed)))
        table.add_row(*([pipeline] if several else []), *cells, style=style)

    for t in results.get("by_table", []):
        row(t["pipeline"], _fmt(t["table"]), t)
    for pipeline, t in results.get("by_pipeline", {}).items():
        row(pipeline, "total", t, style="bold")
    console.print(table)
    return table


PLOT_LABELS = {"compression_ratio": "compression ratio", "max_error_over_bound": "max error / bound",
               "rel_l2_error": "relative L2 (Frobenius) error", "bits_per_value": "frame bits per value",
               "budget_bits_per_value": "declared bits per value"}


def plot_by_table(results: dict, path, metric_names=("compression_ratio", "max_error_over_bound")) -> None:
    """Bar charts per table, one bar per pipeline, one panel per metric (e.g. ratio, error / bound)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results.get("by_table", [])
    if not rows:
        return
    names = list(metric_names)
    pipelines = list(dict.fromkeys(r["pipeline"] for r in rows))
    tables = list(dict.fromkeys(r["table"] for r in rows))
    width = 0.8 / len(pipelines)
    fig, axes = plt.subplots(len(names), 1, squeeze=False, sharex=True,
                             figsize=(max(6, 0.35 * len(tables) * len(pipelines) + 2), 3 * len(names)))
    axes = axes[:, 0]
    for k, pipeline in enumerate(pipelines):
        by = {r["table"]: r for r in rows if r["pipeline"] == pipeline}
        xs = [i + k * width for i in range(len(tables))]
        for ax, name in zip(axes, names):
            ax.bar(xs, [(by[t].get(name) or 0) if t in by else 0 for t in tables], width, label=pipeline)
    for ax, name in zip(axes, names):
        ax.set_ylabel(PLOT_LABELS.get(name, name))
        if name == "max_error_over_bound":
            ax.axhline(1.0, color="k", lw=0.8, ls="--")
    axes[-1].set_xticks([i + 0.4 - width / 2 for i in range(len(tables))],
                        ["all" if t is None else str(t) for t in tables])
    axes[-1].set_xlabel("table")
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
