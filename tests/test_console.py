"""What a person reads: the summary table (per pipeline by default, names never cut, the promise
shown for what it is) and the cross-job comparison at the end of a multirun."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from compframe import job
from compframe.comparison import comparison_rows, comparison_table
from compframe.console import summary_table

from test_job import config


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    cfg = config(quantizers=["int8", "fp8_e4m3", {"id": "nq", "b0": 1}], encoders=["zstd", {"id": "zstd", "level": 19}])
    cfg["task"]["warmup"] = False
    return job.run(cfg, tmp_path_factory.mktemp("job"), progress=False)


def _render(results, by="pipeline", width=60):
    console = Console(width=width, record=True, file=io.StringIO())
    summary_table(results, [5.0], console=console, by=by)
    return console.export_text()


def test_default_table_is_per_pipeline_and_never_cuts_names(results):
    text = _render(results)
    assert "…" not in text
    for pipeline in results["by_pipeline"]:
        assert sum(pipeline in line.split("│")[1] for line in text.splitlines() if "│" in line) == 1
    rows = [line for line in text.splitlines() if line.startswith("│")]
    assert len(rows) == len(results["by_pipeline"]) == 6


def test_per_table_and_per_field_views(results):
    by_table = [line for line in _render(results, "table").splitlines() if line.startswith("│")]
    assert len(by_table) == 6 * 2 + 6  # two tables, plus a total per pipeline
    by_field = [line for line in _render(results, "field").splitlines() if line.startswith("│")]
    assert len(by_field) == len(results["fields"]) + 6


def test_bound_ok_is_na_without_a_bound_and_the_promise_is_shown(results):
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:]]
            for line in _render(results, width=300).splitlines() if line.startswith("│")}
    header = ["ratio", "bits/value", "promise", "kept", "bound ok", "max err/bound", "max rel err", "rel L2 err"]
    cell = {p: dict(zip(header, cells)) for p, cells in rows.items()}
    assert cell["int8+zstd#1"]["bound ok"] == "yes" and cell["int8+zstd#1"]["promise"] == "max|e| <= bound"
    assert cell["fp8_e4m3+zstd#1"]["bound ok"] == "n/a" and cell["fp8_e4m3+zstd#1"]["promise"] == "<= 8 bits/value"
    assert float(cell["fp8_e4m3+zstd#1"]["max rel err"]) > 0.02  # it never promised the schedule's bound
    assert cell["nq+zstd#1"]["promise"].startswith("<= 1") and cell["nq+zstd#1"]["kept"] == "yes"  # configured 1 bit
    assert float(cell["nq+zstd#1"]["rel L2 err"]) > 0  # an error column for bit-budget quantizers


def test_field_rows_show_the_promise_and_their_own_error_over_bound(results):
    header = ["field", "ratio", "bits/value", "promise", "kept", "bound ok", "max err/bound"]
    rows = [dict(zip(header, [c.strip() for c in line.split("│")[2:]]), pipeline=line.split("│")[1].strip())
            for line in _render(results, "field", width=400).splitlines() if line.startswith("│")]
    fields = [r for r in rows if r["field"] != "total"]
    assert len(fields) == len(results["fields"])
    for row, f in zip(fields, results["fields"]):
        assert row["pipeline"] == f["pipeline"]
        if f["pipeline"].startswith("int8"):
            assert (row["promise"], row["bound ok"]) == ("max|e| <= bound", "yes")
            assert float(row["max err/bound"]) == pytest.approx(f["max_abs_error"] / f["abs_bound"], rel=1e-2, abs=1e-3)
        else:
            assert row["bound ok"] == "n/a" and row["max err/bound"] == "-"


def test_cross_job_comparison(results, tmp_path):
    for k, name in enumerate(["encoder=lz4", "encoder=zstd"]):
        (tmp_path / f"{k}_{name}").mkdir()
        doc = {"name": name, "status": "finished", "results": {"by_pipeline": dict(list(results["by_pipeline"].items())[:2])}}
        (tmp_path / f"{k}_{name}" / "results.json").write_text(json.dumps(doc))
    (tmp_path / "2_encoder=ans").mkdir()
    (tmp_path / "2_encoder=ans" / "results.json").write_text(json.dumps({"name": "encoder=ans", "status": "failed",
                                                                          "results": {}}))
    rows = comparison_rows(tmp_path)
    assert [(r["job"], r["pipeline"]) for r in rows] == [
        ("encoder=lz4", "int8+zstd#1"), ("encoder=lz4", "int8+zstd#2"),
        ("encoder=zstd", "int8+zstd#1"), ("encoder=zstd", "int8+zstd#2"), ("encoder=ans", "-")]
    console = Console(width=400, record=True, file=io.StringIO())
    console.print(comparison_table(rows))
    text = console.export_text()
    assert "3 jobs compared" in text and "failed" in text
