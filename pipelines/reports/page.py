"""A report as data (`Report` of `Section`s of `Figure`s and HTML tables), rendered to one plain HTML page
and committed as reports/<id>/index.html + PNGs under an `OutputCommit`, so a half-written report is never
complete. No scripts but a table sorter, no server, no network: the page opens from a file."""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd

from pipelines.naming import validate_name
from pipelines.storage.layout import REPORT_INDEX, report_uri



@dataclass
class Figure:
    name: str  # file name beside index.html, e.g. "loss.png"
    png: bytes
    caption: str


@dataclass
class Section:
    title: str
    text: str = ""
    figures: list[Figure] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)  # HTML from `html_table`


@dataclass
class Report:
    id: str
    title: str
    facts: dict[str, str]
    sections: list[Section]
    command: str  # the `vaepipe report ...` that rebuilds it


def html_table(frame: pd.DataFrame, sortable: bool = False, float_format: str = "{:.4g}") -> str:
    """An escaped HTML table; `sortable` ones sort by a column when its header is clicked."""
    def cell(value) -> str:
        if isinstance(value, float):
            return "" if pd.isna(value) else float_format.format(value)
        return html.escape("" if value is None else str(value))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "\n".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
                     for row in frame.itertuples(index=False))
    opening = '<table class="sortable">' if sortable else "<table>"
    return f"{opening}<thead><tr>{head}</tr></thead>\n<tbody>{body}</tbody></table>"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; font-family: monospace; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9em; max-width: 60em; }
table { border-collapse: collapse; font-size: .85em; margin: 1em 0; }
th, td { border: 1px solid #ddd; padding: .25em .5em; text-align: right; }
th { background: #f4f4f4; } table.sortable th { cursor: pointer; }
"""

# Sorts a table.sortable by the clicked column: numerically when both cells are numbers, else as text.
_SORTER = """
document.querySelectorAll("table.sortable th").forEach(function (th, column) {
  th.title = "click to sort";
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0];
    var ascending = th.dataset.order !== "asc";
    th.dataset.order = ascending ? "asc" : "desc";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[column].textContent, y = b.cells[column].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var order = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""


def render_html(report: Report) -> str:
    """The page: title, facts, then each section's text, figures (by file name) and tables."""
    parts = [f"<h1>{html.escape(report.title)}</h1>", '<dl class="facts">']
    facts = {**report.facts, "rebuild with": report.command}
    parts += [f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts.items()]
    parts.append("</dl>")
    for section in report.sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.text:
            parts.append(f"<p>{html.escape(section.text)}</p>")
        for figure in section.figures:
            parts.append(f'<figure><img src="{html.escape(figure.name)}" alt="{html.escape(figure.caption)}">'
                         f"<figcaption>{html.escape(figure.caption)}</figcaption></figure>")
        parts.extend(section.tables)
    sorter = f"<script>{_SORTER}</script>" if any("sortable" in t for s in report.sections for t in s.tables) else ""
    # the empty icon keeps the browser from asking for a favicon.ico that is not there
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(report.title)}'
            f'</title><link rel="icon" href="data:,"><style>{_STYLE}</style></head>\n<body>\n'
            + "\n".join(parts) + f"\n{sorter}</body></html>\n")


def write_report(root: str, report: Report) -> str:
    """Write the PNGs, then index.html, and commit reports/<id>/; returns the URI of index.html.

    A report is a view of outputs that are already committed, so writing it again replaces it."""
    from pipelines.storage.commit import OutputCommit

    prefix = report_uri(root, report.id)
    figures = [figure for section in report.sections for figure in section.figures]
    names = [figure.name for figure in figures]
    if len(set(names)) != len(names):
        raise ValueError(f"report {report.id} names a figure file twice: {sorted(names)}")
    with OutputCommit(prefix, job="report", overwrite=True) as commit:
        for figure in figures:
            commit.write(figure.name, figure.png)
        commit.write(REPORT_INDEX, render_html(report).encode())
        commit.commit(expected_rows=None, metadata={"report": report.id, "title": report.title})
    return f"{prefix}/{REPORT_INDEX}"


def copy_report(index_uri: str, local_dir: str) -> Path:
    """Download a committed report to <local_dir>/<id>/ (its listed files only); returns the local index.html.

    Every file lands inside that folder: `read_success` refuses a manifest whose keys are not plain
    file names, and each destination is checked again after resolving links."""
    from pipelines.storage.commit import read_success
    from pipelines.storage.objects import StorageError, read_bytes

    prefix = index_uri.rsplit("/", 1)[0]
    target = Path(local_dir).expanduser().resolve() / validate_name(prefix.rsplit("/", 1)[1], "report id")
    parts = read_success(prefix)["parts"]
    target.mkdir(parents=True, exist_ok=True)
    for part in parts:
        destination = (target / part["key"]).resolve()
        if destination.parent != target:
            raise StorageError(f"{prefix}/_SUCCESS lists {part['key']!r}, which would be written outside {target}; "
                               "nothing more was copied")
        destination.write_bytes(read_bytes(f"{prefix}/{part['key']}"))
    return target / REPORT_INDEX


def where_to_open(index_uri: str, command: str, local_copy: Optional[Path] = None) -> str:
    """The line that tells a person how to open a report (`command` rebuilds it)."""
    from pipelines.storage.objects import resolve

    if local_copy is not None:
        return f"open {local_copy.as_uri()}"
    location = resolve(index_uri)
    if not location.is_s3:
        return f"open {Path(location.path).resolve().as_uri()}"
    return f"report at {index_uri}; `{command} --local-dir DIR` also copies it to DIR for a browser"
