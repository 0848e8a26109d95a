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


def print_table(table: Table, console: Console | None = None) -> None:
    """Print ``table`` whole: off a terminal the console widens to the table (names are never cut);
    on a terminal, name columns fold onto a second line rather than lose characters."""
    console = console or stdout_console()
    if not console.is_terminal:
        console.width = max(console.width, console.measure(table, options=console.options.update_width(100_000)).maximum)
    console.print(table)


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float) and (math.isinf(value) or math.isnan(value)):
        return str(value)
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _promise(t: dict) -> tuple[str, str, str]:
    """(bound ok, promise, kept) of a total: error-bounded pipelines are checked against the bound;
    the others promise a bit budget, so "bound ok" is n/a and the budget is shown with whether it held."""
    kept = _fmt(t.get("bound_ok"))
    if t.get("max_error_over_bound") is not None or t.get("abs_bound") is not None:  # a total, or a field's row
        return kept, "max|e| <= bound", kept
    budget = t.get("budget_bits_per_value")
    return "n/a", "-" if budget is None else f"<= {budget:g} bits/value", kept


def _error_over_bound(t: dict) -> float | None:
    """A total's ``max_error_over_bound``; a field's row has the bound and the error it is made of."""
    if t.get("max_error_over_bound") is not None:
        return t["max_error_over_bound"]
    bound, error = t.get("abs_bound"), t.get("max_abs_error")
    return None if bound is None or error is None else error / bound if bound > 0 else math.inf


VIEWS = ("pipeline", "table", "field")


def summary_table(results: dict, bandwidths_gbps, console: Console | None = None, by: str = "pipeline") -> Table:
    """One row per pipeline (``by='pipeline'``, the default), per pipeline and table, or per field:
    ratio, bits per value, the quantizer's promise and whether it held, errors, the four throughputs
    and the modelled speed-up at the first bandwidth. Names are never cut."""
    if by not in VIEWS:
        raise ValueError(f"summary table by '{by}'; allowed: {', '.join(VIEWS)}")
    speed = speedup_key(bandwidths_gbps[0]) if bandwidths_gbps else None
    totals = results.get("by_pipeline", {})
    if by == "pipeline":
        rows = [({"pipeline": p}, t) for p, t in totals.items()]
    elif by == "table":
        rows = [({"pipeline": t["pipeline"], "table": _fmt(t["table"])}, t) for t in results.get("by_table", [])]
        rows += [({"pipeline": p, "table": "total"}, t) for p, t in totals.items()]
    else:
        rows = [({"pipeline": f["pipeline"], "field": f["field"]}, f) for f in results.get("fields", [])]
        rows += [({"pipeline": p, "field": "total"}, t) for p, t in totals.items()]
    keys = list(rows[0][0]) if rows else ["pipeline"]
    table = Table(title=f"compframe benchmark, per {by} (task.table=pipeline|table|field)", title_justify="left")
    for key in keys:
        longest = max([len(str(r[0][key])) for r in rows] + [len(key)])
        table.add_column(key, overflow="fold", min_width=min(longest, 40))
    metrics_columns = ["ratio", "bits/value", "promise", "kept", "bound ok", "max err/bound", "max rel err",
                       "rel L2 err", "quant GB/s", "enc GB/s", "dec GB/s", "dequant GB/s", *([speed] if speed else [])]
    for col in metrics_columns:
        table.add_column(col, justify="right", no_wrap=True)
    for names, t in rows:
        bound_ok, promise, kept = _promise(t)
        cells = [_fmt(t.get("compression_ratio")), _fmt(t.get("bits_per_value")), promise, kept, bound_ok,
                 _fmt(_error_over_bound(t)), _fmt(t.get("max_rel_error")), _fmt(t.get("rel_l2_error")),
                 _fmt(t.get("quantize_gbps")), _fmt(t.get("encode_gbps")), _fmt(t.get("decode_gbps")),
                 _fmt(t.get("dequantize_gbps")), *([_fmt(t.get(speed))] if speed else [])]
        style = "bold" if "total" in names.values() else None
        table.add_row(*[str(names[k]) for k in keys], *cells, style=style)
    print_table(table, console)
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
