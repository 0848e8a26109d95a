"""``compframe report``: figures from real jobs (an MLflow sweep and the same jobs' results.json
folder), the numbers behind each figure checked against the runs, the Pareto front against brute
force, bad input, and the page opened in headless Chromium (Playwright, Debian's chromium)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from compframe import cli, job, metrics
from compframe.report import figures
from compframe.report import main as report
from compframe.tracking import PARENT_FILE, JobTracker, _open_store, mlflow_metric_name

from conftest import ROOT

BENCH_DATA = {"id": "synthetic", "tables": 3, "iterations": 1, "batch": 256, "dim": 16}
BOUNDS = (1e-2, 1e-3)


def benchmark_config(base: float) -> dict:
    return {"data": BENCH_DATA, "schedule": {"id": "constant", "base": base}, "quantizer": {"id": "int8"},
            "encoder": {"id": "zstd"}, "task": {"id": "benchmark", "encoders": ["zstd", "lz4"], "bandwidths_gbps": [5.0]}}


def run_job(tracking: dict, folder: Path, name: str, config: dict, parent_dir: Path | None = None) -> dict:
    return job.run({**config, "tracking": tracking}, folder / name, name=name, progress=False,
                   tracker=JobTracker(tracking, name, parent_dir=parent_dir))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A sweep of two real benchmark jobs (two bounds, two pipelines each) under a parent run, opened
    the way ``tracking.SweepCallback`` opens it (its id left in the sweep folder for the jobs)."""
    root = tmp_path_factory.mktemp("report")
    tracking = {"enabled": True, "uri": f"sqlite:///{root}/mlflow.db", "experiment": "report-test",
                "artifacts": str(root / "mlartifacts")}
    client, exp = _open_store(tracking)
    parent = client.create_run(exp, run_name="sweep", tags={"compframe.sweep": "true"}).info.run_id
    folder = root / "sweep"
    folder.mkdir()
    (folder / PARENT_FILE).write_text(parent)
    for base in BOUNDS:
        run_job(tracking, folder, f"schedule.base={base:g}", benchmark_config(base), parent_dir=folder)
    client.set_terminated(parent)
    return {"root": root, "tracking": tracking, "client": client, "parent": parent, "folder": folder}


class Tables(HTMLParser):
    """The page's tables (``id`` -> rows of cell texts) and the ``src`` of its images."""

    def __init__(self, text: str):
        super().__init__()
        self.tables, self.images, self._rows, self._cell = {}, [], None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._rows = self.tables.setdefault(attrs["id"].removesuffix("-table"), [])
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag in ("td", "th") and self._rows is not None:
            self._cell = ""
        elif tag == "img":
            self.images.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._rows[-1].append(html.unescape(self._cell))
            self._cell = None
        elif tag == "table":
            self._rows = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def table(page: Tables, name: str) -> list[dict[str, str]]:
    head, *rows = page.tables[name]
    return [dict(zip(head, r)) for r in rows]


def g4(v: float) -> str:
    return f"{v:.4g}"


def test_report_of_a_parent_run_draws_the_benchmark_figures_from_the_runs_metrics(sweep, tmp_path, capsys):
    client, parent = sweep["client"], sweep["parent"]
    result = report(["--tracking-uri", sweep["tracking"]["uri"], "--run", parent, "--out", str(tmp_path)])
    assert sorted(p.name for p in result.pngs) == ["pareto_front.png", "rate_distortion.png", "ratio_per_table.png",
                                                  "speedup_vs_bandwidth.png"]
    assert sorted(result.skipped) == ["accuracy vs bits", "sampler comparison", "training"]
    assert "task=compress_model" in result.skipped["accuracy vs bits"]
    out = capsys.readouterr().out
    assert "4 figures from 2 runs" in out and "skipped training: no task=train run" in out

    page = Tables(result.html.read_text())
    assert len(page.images) == 4 and all(src.startswith("data:image/png;base64,") for src in page.images)
    children = client.search_runs([client.get_run(parent).info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    assert len(children) == 2
    rd = {(r["run"], r["pipeline"]): r for r in table(page, "rate_distortion")}
    assert len(rd) == 4
    for child in children:
        m = child.data.metrics
        for p in ("int8+zstd", "int8+lz4"):
            row, key = rd[(child.info.run_name, p)], mlflow_metric_name(p)
            assert row["ratio"] == g4(m[f"{key}.compression_ratio"])
            assert row["bits/value"] == g4(m[f"{key}.bits_per_value"])
            assert row["max |error|"] == g4(m[f"{key}.max_abs_error"])
            assert row["PSNR (dB)"] == g4(m[f"{key}.psnr"])
            assert row["rel L2"] == g4(m[f"{key}.rel_l2_error"])

    # the speed-up at 1 GB/s: the median over the two runs of the DLRM study's model from their metrics
    speed = {r["pipeline"]: r for r in table(page, "speedup_vs_bandwidth")}
    for p in ("int8+zstd", "int8+lz4"):
        key = mlflow_metric_name(p)
        at1 = [metrics.speedups(c.data.metrics[f"{key}.compression_ratio"],
                                {k: c.data.metrics[f"{key}.{k}"] for k in metrics.THROUGHPUTS}, [1.0])["speedup@1GBps"]
               for c in children]
        assert speed[p]["runs"] == "2" and speed[p]["speed-up @1 GB/s"] == g4(float(np.median(at1)))

    # ratio per table: the newest run's per-table ratios from its results.json
    newest = max(children, key=lambda c: c.info.start_time).info.run_name
    by_table = json.loads((sweep["folder"] / newest / "results.json").read_text())["results"]["by_table"]
    for row in table(page, "ratio_per_table"):
        assert row["run"] == newest and row["task"] == "benchmark"
        for t in range(BENCH_DATA["tables"]):
            want = next(b for b in by_table if b["pipeline"] == row["pipeline"] and b["table"] == t)
            assert row[f"table {t}"] == g4(want["compression_ratio"])

    # the Pareto front's rows are the non-dominated (bits, rel L2) points of the rate-distortion table
    pts = [(float(r["bits/value"]), float(r["rel L2"])) for r in rd.values()]
    front = [r for r in table(page, "pareto_front")]
    assert {(r["bits/value"], r["rel_l2_error"]) for r in front} == \
        {(g4(x), g4(y)) for x, y in (pts[i] for i in figures.pareto_front(pts))}

    logged = {a.path for a in client.list_artifacts(parent, "report")}
    assert logged == {f"report/{p.name}" for p in [result.html, *result.pngs]}


def test_a_results_folder_gives_the_same_numbers_as_mlflow(sweep, tmp_path):
    from_mlflow = report(["--tracking-uri", sweep["tracking"]["uri"], "--experiment", "report-test",
                          "--out", str(tmp_path / "mlflow")])
    from_folder = report(["--results", str(sweep["folder"]), "--out", str(tmp_path / "folder")])
    assert [p.name for p in from_folder.pngs] == [p.name for p in from_mlflow.pngs]
    a, b = Tables(from_mlflow.html.read_text()), Tables(from_folder.html.read_text())
    for name in ("rate_distortion", "pareto_front", "speedup_vs_bandwidth", "ratio_per_table"):
        assert sorted(map(tuple, a.tables[name])) == sorted(map(tuple, b.tables[name])), name


def brute_force_front(points):
    return {i for i, (x, y) in enumerate(points)
            if not any(u <= x and v <= y and (u, v) != (x, y) for u, v in points)}


def test_pareto_front_is_the_set_of_non_dominated_points():
    points = [(1, 5), (2, 3), (2, 4), (3, 3), (4, 1), (4, 1), (5, 0.5), (6, 2), (0.5, 9), (1, 5)]
    front = figures.pareto_front(points)
    assert [points[i] for i in front] == [(0.5, 9), (1, 5), (1, 5), (2, 3), (4, 1), (4, 1), (5, 0.5)]
    rng = np.random.default_rng(0)
    for _ in range(50):
        pts = [tuple(p) for p in rng.integers(0, 8, size=(int(rng.integers(1, 30)), 2)).tolist()]
        assert set(figures.pareto_front(pts)) == brute_force_front(pts)


def bad(args, capsys) -> str:
    with pytest.raises(SystemExit) as e:
        cli.main(["report", *args])
    assert e.value.code == cli.USAGE_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_bad_mlflow_input_is_one_line_naming_it(sweep, tmp_path, capsys):
    uri = sweep["tracking"]["uri"]
    assert "experiment 'nosuch' not found" in bad(["--tracking-uri", uri, "--experiment", "nosuch"], capsys)
    assert "report-test" in bad(["--tracking-uri", uri, "--experiment", "nosuch"], capsys)  # what exists
    assert "run 'deadbeef' not found" in bad(["--tracking-uri", uri, "--run", "deadbeef"], capsys)
    assert "no runs found for filter" in bad(["--tracking-uri", uri, "--filter", "tags.compframe.task = 'train'"], capsys)
    assert "MLflow search" in bad(["--tracking-uri", uri, "--filter", "nonsense ==="], capsys)
    missing = tmp_path / "none.db"
    assert f"no MLflow store at '{missing}'" in bad(["--tracking-uri", f"sqlite:///{missing}"], capsys)
    assert not missing.exists()  # reading never creates a store
    assert "MLflow at http://127.0.0.1:9 failed" in bad(["--tracking-uri", "http://127.0.0.1:9"], capsys)  # no server
    assert "cannot be combined" in bad(["--results", str(tmp_path), "--run", "x"], capsys)


def test_bad_results_folder_is_one_line_naming_the_file(sweep, tmp_path, capsys):
    assert f"no results.json under '{tmp_path}'" in bad(["--results", str(tmp_path)], capsys)
    assert "does not exist" in bad(["--results", str(tmp_path / "nope")], capsys)
    folder = tmp_path / "runs"
    shutil.copytree(sweep["folder"], folder)
    broken = folder / "schedule.base=0.01" / "results.json"
    broken.write_text('{"status": "finished",\n "config": {}, "results": {"totals": }}')
    assert re.search(rf"'{re.escape(str(broken))}' is not valid JSON: .* line 2, column", bad(["--results", str(folder)], capsys))
    broken.write_text('{"status": "finished", "config": {}}')
    assert f"'{broken}': field 'results' is missing" in bad(["--results", str(folder)], capsys)


def test_python_dash_m_compframe_report(tmp_path):
    res = subprocess.run([sys.executable, "-m", "compframe.report", "--results", str(tmp_path)], capture_output=True,
                         text=True, timeout=120, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 2 and res.stderr.strip() == f"error: no results.json under '{tmp_path}'"


# -- every figure, and the page in a browser ---------------------------------------------------------

TRAIN = {"data": {"id": "criteo_synthetic", "max_ind_range": 200, "train_samples": 8192, "test_samples": 4096},
         "schedule": {"id": "step", "base": 0.02, "S": 64}, "quantizer": {"id": "int8"}, "encoder": {"id": "zstd"},
         "task": {"id": "train", "world_size": 1, "iterations": 8, "dim": 8, "bottom_mlp": [16, 8], "top_mlp": [16, 1],
                  "batch_size": 64, "test_batches": 2, "test_batch_size": 256, "log_every": 2, "eval_every": 4}}
SAMPLER_VALUES = {("tpe", 0): [0.2, 0.5, 0.4, 0.9], ("tpe", 1): [0.3, 0.3, 0.8, 0.7],
                  ("random", 0): [0.1, 0.6, 0.2, 0.6], ("random", 1): [0.5, 0.4, 0.45, 0.7]}


def compress_model_config(width: int, cache: Path) -> dict:
    return {"model": {"id": "mlp_digits", "hidden": [16], "epochs": 5, "cache_dir": str(cache)},
            "quantizer": {"id": "fixed", "width": width, "frac_width": width - 1}, "encoder": {"id": "zstd"},
            "schedule": {"id": "constant", "base": 1e-2}, "task": {"id": "compress_model"}, "optimized_metrics": ["metric"]}


def log_sampler_studies(client, experiment_id: str) -> None:
    """Study runs as bench/sampler_comparison.py logs them: params sampler, seed; step metric best_so_far."""
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    for (sampler, seed), values in SAMPLER_VALUES.items():
        run = client.create_run(experiment_id, run_name=f"sampler_comparison-{sampler}-s{seed}")
        best = np.maximum.accumulate(values)
        client.log_batch(run.info.run_id, params=[Param("sampler", sampler), Param("seed", str(seed))],
                         metrics=[Metric("value", v, now, i) for i, v in enumerate(values)]
                         + [Metric("best_so_far", float(b), now, i) for i, b in enumerate(best)])
        client.set_terminated(run.info.run_id)


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.slow
def test_every_figure_from_real_jobs_and_the_page_in_headless_chromium(sweep, tmp_path):
    tracking, client = {**sweep["tracking"], "experiment": "report-all"}, sweep["client"]
    jobs = tmp_path / "jobs"
    for base in BOUNDS:
        run_job(tracking, jobs, f"bench-{base:g}", benchmark_config(base))
    run_job(tracking, jobs, "train", TRAIN)
    exp = client.get_experiment_by_name("report-all").experiment_id
    # the model compressions as a command-line Optuna sweep would run them: a parent naming its sampler
    overrides = "hparams_search=sampler_comparison hydra/sweeper/sampler=qmc hydra.sweeper.sampler.seed=3"
    parent = client.create_run(exp, run_name="sweep", tags={"compframe.sweep": "true", "compframe.overrides": overrides})
    (jobs / PARENT_FILE).write_text(parent.info.run_id)
    for width in (3, 6):
        run_job(tracking, jobs, f"fixed{width}", compress_model_config(width, tmp_path / "cache"), parent_dir=jobs)
    client.set_terminated(parent.info.run_id)
    log_sampler_studies(client, exp)
    result = report(["--tracking-uri", tracking["uri"], "--experiment", "report-all", "--out", str(tmp_path / "out")])
    assert len(result.pngs) == len(figures.BUILDERS) and not result.skipped
    page = Tables(result.html.read_text())

    runs = {r.info.run_name: r for r in client.search_runs([exp])}
    train = runs["train"].data.metrics
    (row,) = table(page, "training_curves")
    assert row["pipeline"] == "int8+zstd" and row["last iteration"] == "8" and row["last AUC"] == g4(train["auc"])
    # logged every 2 iterations, evaluated at 4 and 8; the totals' auc is logged at the last step (8), not at 0
    assert row["loss points"] == "4" and row["AUC points"] == "2"
    history = client.get_metric_history(runs["train"].info.run_id, "auc")
    assert sorted(m.step for m in history) == [4, 8, 8]
    assert max(history, key=lambda m: (m.step, m.timestamp)).value == train["auc"]
    acc = {r["run"]: r for r in table(page, "accuracy_vs_bits")}
    for width in (3, 6):
        m = runs[f"fixed{width}"].data.metrics
        assert acc[f"fixed{width}"]["bits/weight"] == g4(m["bits_per_weight"]) == g4(float(width))
        assert acc[f"fixed{width}"]["accuracy"] == g4(m["accuracy"])
    samplers = table(page, "sampler_comparison")
    for r in samplers:
        if r["sampler"] == "qmc":  # the sweep: the best metric of its two jobs, in the order they ran
            first = runs["fixed3"].data.metrics["metric"]
            best = max(first, runs["fixed6"].data.metrics["metric"]) if r["after trials"] == "2" else first
            assert r["seeds"] == "1" and r["mean best"] == r["min"] == r["max"] == g4(best)
            continue
        curves = np.array([np.maximum.accumulate(v) for (s, _), v in SAMPLER_VALUES.items() if s == r["sampler"]])
        k = int(r["after trials"])
        assert (r["mean best"], r["min"], r["max"]) == tuple(g4(f(curves[:, k - 1])) for f in (np.mean, np.min, np.max))
    assert {r["sampler"] for r in samplers} == {"qmc", "random", "tpe"}
    assert {r["task"] for r in table(page, "ratio_per_table")} == {"benchmark", "train"}
    folder = Tables(report(["--results", str(jobs), "--out", str(tmp_path / "folder")]).html.read_text())
    for name in ("rate_distortion", "ratio_per_table", "training_curves", "accuracy_vs_bits"):
        assert sorted(map(tuple, folder.tables[name])) == sorted(map(tuple, page.tables[name])), name

    executable = chromium()
    if executable is None:
        pytest.skip("no Chromium found (Debian package 'chromium'; .ci/run installs it)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra pins it)")
    problems, requests = [], []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--disable-gpu", "--no-first-run"])
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 900})
            tab.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
            tab.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            tab.on("request", lambda r: requests.append(r.url))
            tab.goto(result.html.as_uri(), wait_until="load")
            images = tab.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight])")
            tab.screenshot(path=str(tmp_path / "report_screenshot.png"), full_page=True)
        finally:
            browser.close()
    assert len(images) == len(figures.BUILDERS)
    assert all(done and w > 0 and h > 0 for done, w, h in images), images
    assert problems == []
    assert requests == [result.html.as_uri()]  # nothing fetched beyond the page itself
    assert (tmp_path / "report_screenshot.png").stat().st_size > 10_000
