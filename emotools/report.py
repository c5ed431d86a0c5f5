"""The main job's report: one HTML page over everything a run left on disk.

``results/report/index.html`` links every notebook's executed copy rendered
to HTML (nbconvert, figures embedded as data URIs), every results table
(``results/*.md`` and ``results/*.csv``, each rendered to an HTML page), the
figures (thumbnails of ``figures/<notebook>/``), the run log (status, wall
time, load, parameters and seeds per notebook) and the run manifest
(command, git revision, package versions, machine). Every link is relative
and nothing is loaded from the network, so the folder opens from the file
system with no server. A notebook that failed or was not run is listed as
such. The main job rebuilds it at its end (:func:`after_run`);
``python -m emotools report`` rebuilds it alone from what is on disk.

>>> _href(Path("/r/results/report"), Path("/r/figures/a b/x.png"))
'../../figures/a%20b/x.png'
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from . import paths
from .errors import EmotoolsError
from .fileio import write_text

REPORT_FOLDER = "report"
CSV_ROWS_SHOWN = 2000  # a table page shows at most this many rows of a CSV (and links the whole file)
FIGURE_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg", ".gif")  # shown as images; other files (PDF) as links

#: nbconvert's lab template without the blocks that load scripts from CDNs (require.js, MathJax, Mermaid,
#: widgets): executed notebooks here carry static outputs only, and the page must open without a network.
_OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""

_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:80em;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0;font-size:90%}th,td{border:1px solid #ccc;padding:.2em .5em;
text-align:left;vertical-align:top}th{background:#f3f3f3}.ok{color:#17631f}.failed,.interrupted,.unreadable{
color:#b00020;font-weight:bold}.not-run{color:#777}figure{display:inline-block;margin:.5em;text-align:center}
figure img{max-width:22em;max-height:16em;border:1px solid #ddd}code{font-size:90%}
nav{font-size:90%;margin-bottom:1em}a.anchor-link{display:none}.summary h1{font-size:1.3em}ul.tables{columns:3}"""


class ReportError(EmotoolsError):
    """The report cannot be built (no such results folder)."""


@dataclass(frozen=True)
class NotebookRow:
    """One notebook's line in the report."""

    name: str
    entry: dict[str, Any]  # its run-manifest entry ({} when the manifest has none)
    page: Path | None  # its rendered HTML page (None: no executed copy, or it could not be rendered)
    problem: str | None = None  # why there is no page although there is an executed copy


# --------------------------------------------------------------------------- small HTML helpers


def _href(start: Path, target: Path) -> str:
    """``target`` relative to the folder ``start``, as a URL path (``/`` separators, quoted)."""
    return quote(Path(os.path.relpath(target, start)).as_posix())


def _e(value: Any) -> str:
    return html.escape(str(value))


def _link(start: Path, target: Path, text: str) -> str:
    return f'<a href="{_href(start, target)}">{_e(text)}</a>'


def _page(title: str, body: str, *, index: str | None = None) -> str:
    """A whole HTML page with the report's inline style (no external resources; ``index``: back link)."""
    nav = f'<nav><a href="{index}">&larr; report</a></nav>\n' if index else ""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{_e(title)}</title>\n'
            f'<link rel="icon" href="data:,">\n<style>{_CSS}</style>\n</head>\n<body>\n{nav}{body}\n</body>\n</html>\n')


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, raw: bool = False) -> str:
    """An HTML table; cells are escaped unless ``raw`` (cells that are HTML already)."""
    cell = (lambda v: str(v)) if raw else _e
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>\n" for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"


def _warn(subject: Path, reason: str) -> None:
    print(f"warning: {paths.shown(subject)}: {reason}", file=sys.stderr)


# --------------------------------------------------------------------------- pages


def render_notebook(executed: str | os.PathLike, page: str | os.PathLike, *, index: str) -> Path:
    """Render an executed notebook to one self-contained HTML page (figures as data URIs, no scripts).

    Raises:
        ReportError: the notebook cannot be read or rendered (names the file and why).
    """
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    executed, page = Path(executed), Path(page)
    exporter = HTMLExporter(template_name="lab", extra_loaders=[DictLoader({"offline.html.j2": _OFFLINE_TEMPLATE})],
                            template_file="offline.html.j2", embed_images=True)
    try:
        body, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, nbformat.ValidationError) as error:
        raise ReportError(paths.shown(executed), f"cannot render the notebook ({type(error).__name__}: {error})"
                          ) from error
    nav = f'<nav style="padding:.5em 1em"><a href="{index}">&larr; report</a></nav>'
    head, sep, rest = body.partition("<main>")
    return write_text(page, head + sep + nav + rest if sep else body)


def _markdown_page(source: Path, page: Path, index: str) -> None:
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    text = source.read_text(encoding="utf-8")
    write_text(page, _page(source.name, markdown2html_mistune(text), index=index))


def _csv_page(source: Path, page: Path, index: str) -> None:
    """The CSV as written (no reformatting of numbers), at most :data:`CSV_ROWS_SHOWN` rows."""
    with source.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise ValueError("empty file")
    header, body = rows[0], rows[1:]
    note = (f"<p>First {CSV_ROWS_SHOWN} of {len(body)} rows; the whole file: "
            f"{_link(page.parent, source, source.name)}</p>" if len(body) > CSV_ROWS_SHOWN else
            f"<p>{len(body)} rows; file: {_link(page.parent, source, source.name)}</p>")
    title = f"<h1>{_e(source.name)}</h1>\n{note}\n"
    write_text(page, _page(source.name, title + _table(header, body[:CSV_ROWS_SHOWN]), index=index))


# --------------------------------------------------------------------------- sections of the index


def _status(row: NotebookRow, newest_run: str | None) -> tuple[str, str]:
    """(CSS class, words): ok / failed in cell N / interrupted / not run / no manifest entry; earlier runs named."""
    entry = row.entry
    if not entry:
        return ("not-run", "not run") if row.page is None and row.problem is None else ("", "no manifest entry")
    status = str(entry.get("status", "unknown"))
    words = status
    if status != "ok" and entry.get("failed_cell") is not None:
        words += f" in cell {entry['failed_cell']}"
    if entry.get("run") != newest_run:
        words += f" (earlier run, {entry.get('started', '?')})"
    return status, words


def _seeds(parameters: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in parameters.items() if "seed" in k) or "-"


def _details(entry: dict[str, Any]) -> str:
    parameters = entry.get("parameters") or {}
    if not parameters and not entry.get("feature_stores"):
        return "-"
    items = [f"<li><code>{_e(k)}</code> = {_e(json.dumps(v))}</li>" for k, v in parameters.items()]
    items += [f"<li>feature store <code>{_e(store)}</code></li>" for store in entry.get("feature_stores") or []]
    smoke = " (smoke preset)" if entry.get("smoke") else ""
    return f"<details><summary>{len(parameters)} parameters{smoke}</summary><ul>{''.join(items)}</ul></details>"


def _notebooks_section(rows: list[NotebookRow], folder: Path, newest_run: str | None) -> str:
    lines = []
    for row in rows:
        css, words = _status(row, newest_run)
        entry = row.entry
        page = _link(folder, row.page, "executed notebook") if row.page else _e(row.problem or "-")
        load = entry.get("load_average") or {}
        load_text = (f"{'/'.join(map(str, load.get('start', [])))} &rarr; {'/'.join(map(str, load.get('end', [])))}"
                     if load.get("start") else "-")
        lines.append((_e(row.name), f'<span class="{css}">{_e(words)}</span>', page, _e(entry.get("started", "-")),
                      _e(entry.get("seconds", "-")), load_text, _e(_seeds(entry.get("parameters") or {})),
                      _details(entry)))
    header = ("notebook", "status", "page", "started (UTC)", "seconds", "load 1/5/15 min: start → end", "seeds",
              "parameters")
    newest = [r.entry for r in rows if r.entry.get("run") == newest_run]
    total = (f"<p>Newest run {_e(newest_run)}: {len(newest)} notebook(s), "
             f"{sum(float(e.get('seconds') or 0) for e in newest):.1f} s in total.</p>\n" if newest else "")
    return "<h2 id=\"notebooks\">Notebooks and run log</h2>\n" + total + _table(header, lines, raw=True)


def _manifest_section(manifest: dict[str, Any], folder: Path, manifest_file: Path) -> str:
    runs = manifest.get("runs") or {}
    if not runs:
        return '<h2 id="manifest">Run manifest</h2>\n<p class="not-run">No run manifest.</p>'
    rows = []
    for run_id, run in sorted(runs.items(), key=lambda item: str(item[1].get("started", "")), reverse=True):
        git = run.get("git") or {}
        revision = f"{git.get('revision') or 'unknown'}{' (uncommitted changes)' if git.get('dirty') else ''}"
        rows.append((run_id, run.get("started", "-"), json.dumps(run.get("command", {})), revision,
                     ", ".join(f"{k} {v}" for k, v in (run.get("packages") or {}).items()),
                     ", ".join(f"{k} {v}" for k, v in (run.get("machine") or {}).items())))
    header = ("run", "started (UTC)", "command", "git revision", "versions", "machine")
    return (f'<h2 id="manifest">Run manifest</h2>\n<p>Updated {_e(manifest.get("updated", "?"))}; the file: '
            f'{_link(folder, manifest_file, manifest_file.name)}.</p>\n' + _table(header, rows))


def _tables_section(pages: dict[Path, Path | str], folder: Path, summary: str) -> str:
    """The summary table inline, then every results table: its page, or why it has none."""
    items = []
    for source, page in pages.items():
        shown = (_link(folder, page, source.name) if isinstance(page, Path)
                 else f'{_e(source.name)} <span class="unreadable">unreadable: {_e(page)}</span>')
        items.append(f"<li>{shown} (file: {_link(folder, source, 'raw')})</li>")
    listing = ('<ul class="tables">\n' + "\n".join(items) + "\n</ul>" if items
               else '<p class="not-run">No results tables.</p>')
    if summary:
        summary = f'<details open class="summary"><summary>results/summary.md</summary>\n{summary}\n</details>'
    return f'<h2 id="tables">Tables</h2>\n{listing}\n{summary}'


def _figures_section(figures: Path, folder: Path) -> str:
    parts = ['<h2 id="figures">Figures</h2>']
    groups = sorted(p for p in figures.iterdir() if p.is_dir()) if figures.is_dir() else []
    for group in groups:
        files = sorted(p for p in group.iterdir() if p.is_file() and not p.name.startswith("."))
        images = [p for p in files if p.suffix.lower() in FIGURE_SUFFIXES]
        others = [p for p in files if p not in images]
        shown = "".join(f'<figure><a href="{_href(folder, p)}"><img src="{_href(folder, p)}" alt="{_e(p.stem)}"></a>'
                        f"<figcaption>{_e(p.name)}</figcaption></figure>" for p in images)
        more = ", ".join(_link(folder, p, p.name) for p in others)
        parts.append(f"<h3>{_e(group.name)}</h3>\n<div>{shown}</div>" + (f"<p>Also: {more}</p>" if more else ""))
    if not groups:
        parts.append('<p class="not-run">No figures.</p>')
    return "\n".join(parts)


# --------------------------------------------------------------------------- building


def _notebook_names(manifest: dict[str, Any], executed: Path) -> list[str]:
    """The project's notebooks in name order, then any other the manifest or the executed copies name."""
    from .notebooks import list_notebooks

    names = [p.stem for p in list_notebooks()]
    others = set(manifest.get("notebooks") or {}) | {p.stem for p in executed.glob("*.ipynb")}
    return names + sorted(others - set(names))


def _notebook_rows(manifest: dict[str, Any], results: Path, folder: Path) -> list[NotebookRow]:
    rows = []
    for name in _notebook_names(manifest, results / "notebooks"):
        entry = (manifest.get("notebooks") or {}).get(name) or {}
        executed = results / "notebooks" / f"{name}.ipynb"
        page, problem = folder / "notebooks" / f"{name}.html", None
        if not executed.is_file():
            page, problem = None, ("executed copy missing" if entry else None)
        else:
            try:
                render_notebook(executed, page, index="../index.html")
            except ReportError as error:
                _warn(executed, error.reason)
                page, problem = None, f"unreadable: {error.reason}"
        rows.append(NotebookRow(name, entry, page, problem))
    return rows


def _table_pages(results: Path, folder: Path) -> dict[Path, Path | str]:
    """Render every ``results/*.md`` and ``results/*.csv``; source -> its page, or the reason it has none."""
    pages: dict[Path, Path | str] = {}
    for source in sorted(results.glob("*.md")) + sorted(results.glob("*.csv")):
        page = folder / "tables" / f"{source.name}.html"
        try:
            (_markdown_page if source.suffix == ".md" else _csv_page)(source, page, "../index.html")
            pages[source] = page
        except (OSError, ValueError, csv.Error) as error:  # UnicodeDecodeError is a ValueError
            _warn(source, f"unreadable table ({error})")
            pages[source] = str(error)
    return pages


def _remove_stale(folder: Path, written: set[Path]) -> None:
    """Delete pages of an earlier build whose source is gone."""
    for sub in ("notebooks", "tables"):
        for page in (folder / sub).glob("*.html"):
            if page not in written:
                page.unlink()


def build(results: str | os.PathLike | None = None, *, figures: str | os.PathLike | None = None) -> Path:
    """Write ``<results>/report/index.html`` and its pages from what is on disk; return the index's path.

    Args:
        results: the results folder (default :func:`emotools.paths.results_dir`).
        figures: the figures folder (default :func:`emotools.paths.figures_dir`).

    A notebook or table that cannot be read gets one warning line on stderr
    and is listed as unreadable; the rest of the report is written.

    Raises:
        ReportError: ``results`` is not a folder.
    """
    from .notebooks import read_manifest

    results = Path(results) if results is not None else paths.results_dir()
    figures = Path(figures) if figures is not None else paths.figures_dir()
    if not results.is_dir():
        raise ReportError(paths.shown(results), "no such results folder")
    folder = results / REPORT_FOLDER
    manifest_file = results / "manifest.json"
    manifest = read_manifest(manifest_file)
    runs = manifest.get("runs") or {}
    newest = max(runs, key=lambda r: str(runs[r].get("started", "")), default=None)
    rows = _notebook_rows(manifest, results, folder)
    tables = _table_pages(results, folder)
    summary_file = results / "summary.md"
    summary = ""
    if isinstance(tables.get(summary_file), Path):
        from nbconvert.filters.markdown_mistune import markdown2html_mistune

        summary = markdown2html_mistune(summary_file.read_text(encoding="utf-8"))
    body = "\n".join([
        "<h1>emotools: the main job's report</h1>",
        '<p><a href="#notebooks">Notebooks and run log</a> · <a href="#tables">Tables</a> · '
        '<a href="#figures">Figures</a> · <a href="#manifest">Run manifest</a></p>',
        _notebooks_section(rows, folder, newest),
        _tables_section(tables, folder, summary),
        _figures_section(figures, folder),
        _manifest_section(manifest, folder, manifest_file),
    ])
    _remove_stale(folder, {r.page for r in rows if r.page} | {p for p in tables.values() if isinstance(p, Path)})
    return write_text(folder / "index.html", _page("emotools report", body))


def after_run() -> None:
    """The main job's last step: rebuild the report; a report that cannot be written is one line, not a failure."""
    try:
        index = build()
    except (EmotoolsError, OSError) as error:
        print(f"warning: report not written: {error}", file=sys.stderr)
        return
    print(f"report {paths.shown(index)}")


def cli(argv: Sequence[str]) -> int:
    """``python -m emotools report [--results DIR] [--figures DIR]``."""
    parser = argparse.ArgumentParser(
        prog="python -m emotools report",
        description="Rebuild results/report/index.html (executed notebooks, tables, figures, run log, manifest) "
                    "from what is on disk. Open it in a browser from the file system; no server needed.")
    parser.add_argument("--results", type=Path, metavar="DIR", help="results folder (default: results/)")
    parser.add_argument("--figures", type=Path, metavar="DIR", help="figures folder (default: figures/)")
    args = parser.parse_args(argv)
    index = build(args.results, figures=args.figures)
    print(f"report {paths.shown(index)}")
    return 0
