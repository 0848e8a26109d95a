"""The cross-job comparison printed at the end of a multirun (a Hydra callback).

Each job of a sweep prints its own small table; ``ComparisonCallback.on_multirun_end`` then reads
every job's ``results.json`` in the sweep folder and prints one table with a row per job and
pipeline (the job's overrides, its status, and the totals of ``report.summary_table``), so a
4-job sweep ends with 4 comparable rows. Jobs that wrote no pipeline totals (``task=train``,
failed jobs) appear with their status only. The table is also written as ``comparison.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from hydra.experimental.callback import Callback
from rich.table import Table

from .console import _fmt, _promise, print_table

COLUMNS = ("ratio", "bits/value", "promise", "kept", "max rel err", "rel L2 err", "quant GB/s", "enc GB/s",
           "dec GB/s", "dequant GB/s")


def comparison_rows(sweep_dir: Path) -> list[dict]:
    """One dict per (job, pipeline) from the sweep's results.json files, in job order."""
    rows = []
    files = sorted(Path(sweep_dir).glob("*/results.json"), key=lambda p: _job_number(p.parent.name))
    for path in files:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        pipelines = doc.get("results", {}).get("by_pipeline") or {"-": {}}
        for pipeline, totals in pipelines.items():
            rows.append({"job": doc.get("name") or path.parent.name, "status": doc.get("status"),
                         "pipeline": pipeline, "totals": totals})
    return rows


def _job_number(folder: str) -> tuple[int, str]:
    head = folder.split("_", 1)[0]
    return (int(head), folder) if head.isdigit() else (1 << 30, folder)


def comparison_table(rows: list[dict]) -> Table:
    speed = sorted({k for r in rows for k in r["totals"] if k.startswith("speedup@")})[:1]
    table = Table(title=f"compframe sweep: {len({r['job'] for r in rows})} jobs compared", title_justify="left")
    for key in ("job", "status", "pipeline"):
        table.add_column(key, overflow="fold")
    for col in (*COLUMNS, *speed):
        table.add_column(col, justify="right", no_wrap=True)
    for r in rows:
        t = r["totals"]
        _, promise, kept = _promise(t) if t else ("", "-", "-")
        table.add_row(r["job"], str(r["status"]), r["pipeline"], _fmt(t.get("compression_ratio")),
                      _fmt(t.get("bits_per_value")), promise, kept, _fmt(t.get("max_rel_error")),
                      _fmt(t.get("rel_l2_error")), _fmt(t.get("quantize_gbps")), _fmt(t.get("encode_gbps")),
                      _fmt(t.get("decode_gbps")), _fmt(t.get("dequantize_gbps")), *[_fmt(t.get(k)) for k in speed])
    return table


class ComparisonCallback(Callback):
    """Hydra callback: after a multirun, one table comparing every job's pipelines (and comparison.json)."""

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = comparison_rows(sweep_dir)
        if not any(r["totals"] for r in rows):
            return
        (sweep_dir / "comparison.json").write_text(json.dumps(rows, indent=1, default=str))
        print_table(comparison_table(rows))
        print(f"comparison: {(sweep_dir / 'comparison.json').resolve()}")
