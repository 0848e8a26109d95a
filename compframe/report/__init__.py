"""``compframe report`` (also ``python -m compframe.report``): figures comparing runs, as PNGs and one
self-contained HTML page.

    compframe report                                   # the default experiment of the default store
    compframe report --experiment sampler_comparison   # an experiment, by name or id (repeatable)
    compframe report --run <parent run id>             # a sweep's jobs (logged back to that run)
    compframe report --filter "tags.compframe.task = 'benchmark'"
    compframe report --results outputs/multirun/...    # a folder of results.json instead of MLflow

Figures (drawn when the runs hold their data; the others are listed with the reason): rate-distortion
per pipeline, the Pareto front, ratio per table, speed-up against bandwidth (1-400 GB/s), the sampler
comparison, training curves, accuracy against bits. Writes ``<name>.png`` per figure and
``report.html`` into ``--out``; with ``--run`` the files are also logged to that run under ``report/``.
A bad input (unknown experiment or run, nothing found, a malformed results.json) is one line on
stderr and exit status 2, like every compframe command.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from . import figures, page
from .runs import Run, from_folder, from_mlflow

__all__ = ["Report", "build", "main", "Run", "from_folder", "from_mlflow"]


@dataclass
class Report:
    html: Path
    pngs: list[Path]
    skipped: dict[str, str]


def build(runs: list[Run], out_dir: Path, title: str = "compframe report", source: str = "") -> Report:
    """Draw every figure the runs have data for into ``out_dir`` and write ``report.html`` there."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    colour = figures.colours(figures.series_names(runs))
    plt = figures.plt()
    drawn, skipped = [], {}
    for builder in figures.BUILDERS:
        result = builder(runs, colour)
        if isinstance(result, str):
            skipped[builder.__name__.replace("_", " ")] = result
            continue
        png = out_dir / f"{result.name}.png"
        result.fig.savefig(png, dpi=100)
        plt.close(result.fig)
        drawn.append((result, png))
    html = page.write(out_dir / "report.html", title, source, drawn, skipped, len(runs))
    return Report(html, [png for _, png in drawn], skipped)


def default_tracking() -> dict[str, str]:
    """``tracking.uri`` and ``tracking.experiment`` of conf/config.yaml (what a job logs to by default)."""
    from omegaconf import OmegaConf

    text = resources.files("compframe.conf").joinpath("config.yaml").read_text(encoding="utf-8")
    tracking = OmegaConf.create(text).tracking
    return {"uri": str(tracking.uri), "experiment": str(tracking.experiment)}


def parser() -> argparse.ArgumentParser:
    defaults = default_tracking()
    examples = textwrap.dedent(__doc__.split("\n\n")[1])
    p = argparse.ArgumentParser(prog="compframe report", formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Figures comparing runs (from MLflow or results.json files): a PNG "
                                            "per figure and one self-contained HTML page. Docs: docs/report.md.",
                                epilog=f"examples:\n{examples}")
    p.add_argument("--experiment", action="append", default=[], metavar="NAME|ID",
                   help=f"MLflow experiment (repeatable); default '{defaults['experiment']}' when no input is given")
    p.add_argument("--run", metavar="RUN_ID", help="a parent (sweep) run: report its child runs, log the report to it")
    p.add_argument("--filter", default="", metavar="EXPR", help="an MLflow search filter, e.g. \"tags.compframe.task = 'train'\"")
    p.add_argument("--results", type=Path, metavar="DIR", help="a folder of results.json files instead of MLflow")
    p.add_argument("--tracking-uri", default=defaults["uri"], help=f"MLflow tracking URI (default {defaults['uri']})")
    p.add_argument("--out", type=Path, default=Path("outputs/report"), help="output folder (default outputs/report)")
    p.add_argument("--title", default="compframe report")
    return p


def main(argv: list[str] | None = None) -> Report:
    """Parse ``argv``, read the runs, write the report; print what was written and what was skipped."""
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.results is not None:
        if args.experiment or args.run or args.filter:
            raise ValueError("--results reads a folder; it cannot be combined with --experiment, --run or --filter")
        runs, source = from_folder(args.results), f"results folder {args.results}"
    else:
        experiments = args.experiment or ([] if args.run or args.filter else [default_tracking()["experiment"]])
        runs = from_mlflow(args.tracking_uri, experiments, args.run, args.filter)
        source = f"MLflow {args.tracking_uri}" + "".join(f", experiment {e}" for e in experiments) \
            + (f", children of run {args.run}" if args.run else "") + (f", filter {args.filter}" if args.filter else "")
    report = build(runs, args.out, args.title, source)
    if args.run:
        _log_to_run(args.tracking_uri, args.run, report)
    print(f"report: {report.html} ({len(report.pngs)} figures from {len(runs)} runs)")
    for name, reason in report.skipped.items():
        print(f"  skipped {name}: {reason}")
    return report


def _log_to_run(uri: str, run_id: str, report: Report) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    for path in [report.html, *report.pngs]:
        client.log_artifact(run_id, str(path), artifact_path="report")
