"""The report's HTML page: one self-contained file (images as base64 data URIs, inline CSS, no
script, no external resource), a section per figure with the table of its numbers."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

from .figures import Figure

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
img { max-width: 100%; height: auto; display: block; margin: 0.5em 0; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ddd; padding: 2px 8px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td:first-child, td:nth-child(2) { text-align: left; }
details { margin-bottom: 1em; } .numbers { overflow-x: auto; } .caption { color: #555; } .skipped li { color: #555; }
"""


def fmt(value: Any) -> str:
    """A table cell: 4 significant digits for floats, '-' for missing values."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return str(value) if math.isinf(value) or math.isnan(value) else f"{value:.4g}"
    return str(value)


def _table(figure: Figure) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in figure.columns)
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in row) + "</tr>" for row in figure.rows)
    return f'<table id="{figure.name}-table"><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>'


def write(path: Path, title: str, source: str, figures: list[tuple[Figure, Path]], skipped: dict[str, str],
          n_runs: int) -> Path:
    """Write the page to ``path``: each figure's PNG (read from its file) inline, then its table."""
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>{n_runs} run(s) from {html.escape(source)}; {len(figures)} figure(s).</p>"]
    if figures:
        parts.append("<ul>" + "".join(f'<li><a href="#{f.name}">{html.escape(f.title)}</a></li>' for f, _ in figures)
                     + "</ul>")
    for figure, png in figures:
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        parts += [f'<h2 id="{figure.name}">{html.escape(figure.title)}</h2>',
                  f'<img src="data:image/png;base64,{data}" alt="{html.escape(figure.title)}">',
                  f'<p class="caption">{html.escape(figure.caption)} ({png.name})</p>',
                  f"<details open><summary>the numbers ({len(figure.rows)} rows)</summary>"
                  f'<div class="numbers">{_table(figure)}</div></details>']
    if skipped:
        parts.append('<h2 id="skipped">Figures not drawn</h2><ul class="skipped">'
                     + "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in skipped.items())
                     + "</ul>")
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<link rel="icon" href="data:,">'
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")
    path.write_text(page, encoding="utf-8")
    return path
