"""The main job's HTML report (``results/report/index.html``): built from a real run, checked on disk and in
headless Chromium (the ``browser`` tests; ``-m "not browser"`` leaves them out)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import nbformat
import pytest

from emotools import paths, report
from emotools.__main__ import main

pytestmark = pytest.mark.slow  # the module's fixture runs the main job (Jupyter kernels)


# --------------------------------------------------------------------------- reading HTML independently


@dataclass
class Page:
    """What an HTML file holds: resource/link references, ids, tables (cell texts), text, style sheets."""

    refs: list[tuple[str, str, str]] = field(default_factory=list)  # (tag, attribute, value)
    ids: set[str] = field(default_factory=set)
    tables: list[list[list[str]]] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    styles: list[str] = field(default_factory=list)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page, self._row, self._cell, self._style = Page(), None, None, False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "srcset", "data", "poster", "action") and value is not None:
                self.page.refs.append((tag, name, value))
            if name == "id" and value:
                self.page.ids.add(value)
        if tag == "table":
            self.page.tables.append([])
        elif tag == "tr":
            self._row = []
            self.page.tables[-1].append(self._row)
        elif tag in ("td", "th"):
            self._cell = []
        self._style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        self._style = False

    def handle_data(self, data: str) -> None:
        if self._style:
            self.page.styles.append(data)
            return
        self.page.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def words(page: Page) -> str:
    """A page's text, white space collapsed."""
    return " ".join(" ".join(page.text).split())


def read_page(path: Path) -> Page:
    reader = _Reader()
    reader.feed(path.read_text(encoding="utf-8"))
    return reader.page


def broken_references(path: Path) -> list[str]:
    """References of a page that do not resolve to an existing file (or id), or that leave the file system."""
    page, problems = read_page(path), []
    for tag, attribute, value in page.refs:
        if value.startswith("data:"):
            continue
        parts = urlsplit(value)
        if parts.scheme or parts.netloc:
            problems.append(f"<{tag} {attribute}={value}>: not a relative reference")
        elif not parts.path:
            if parts.fragment and parts.fragment not in page.ids:
                problems.append(f"<{tag} {attribute}={value}>: no such id")
        elif not (path.parent / unquote(parts.path)).exists():
            problems.append(f"<{tag} {attribute}={value}>: no such file")
    for css in page.styles:  # style sheets inlined by nbconvert: comments may name sites, loads may not
        lowered = css.lower()
        if "@import" in lowered or any(f"url({q}http" in lowered.replace(" ", "") for q in ("", "'", '"')):
            problems.append("a style sheet loads from the network")
    return problems


# --------------------------------------------------------------------------- the run the tests read


@dataclass(frozen=True)
class Run:
    results: Path
    figures: Path
    first: subprocess.CompletedProcess  # run --smoke --only 00_metrics
    failed: subprocess.CompletedProcess  # run --folder <a notebook that fails>

    @property
    def index(self) -> Path:
        return self.results / "report" / "index.html"


def _main_job(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emotools", "run", "--no-progress", *args], capture_output=True,
                          text=True, cwd=paths.PROJECT_ROOT, env=env, timeout=900)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, run_dirs: dict[str, Path]) -> Run:
    """The cheapest notebook through the main job, then a notebook that fails, into one temporary results folder."""
    root = tmp_path_factory.mktemp("report")
    results, figures = root / "results", root / "figures"
    env = os.environ | {"EMOTOOLS_RESULTS_DIR": str(results), "EMOTOOLS_FIGURES_DIR": str(figures),
                        "EMOTOOLS_DATA_DIR": str(run_dirs["data"]), "EMOTOOLS_CACHE_DIR": str(run_dirs["cache"])}
    first = _main_job(["--smoke", "--only", "00_metrics"], env)
    assert first.returncode == 0, first.stderr
    assert (results / "report" / "index.html").is_file()  # written by the main job itself
    broken = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("size: int = 1  # a size")
    params.metadata["tags"] = ["parameters"]
    broken.cells = [params, nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("raise ValueError('no')")]
    (root / "bad").mkdir()
    nbformat.write(broken, root / "bad" / "broken.ipynb")
    failed = _main_job(["--folder", str(root / "bad")], env)
    return Run(results, figures, first, failed)


def _status(index: Page, notebook: str) -> tuple[str, str]:
    """(status, page cell) of a notebook's row in the report's first table."""
    rows = {row[0]: row for row in index.tables[0] if row}
    return rows[notebook][1], rows[notebook][2]


# --------------------------------------------------------------------------- on disk


def test_the_main_job_writes_the_report_also_when_a_notebook_fails(run: Run) -> None:
    assert "report $EMOTOOLS_RESULTS_DIR/report/index.html" in run.first.stdout.splitlines()
    assert run.failed.returncode == 1
    assert "broken.ipynb failed in cell 2" in run.failed.stderr
    assert "report $EMOTOOLS_RESULTS_DIR/report/index.html" in run.failed.stdout.splitlines()
    index = read_page(run.index)
    started = json.loads((run.results / "manifest.json").read_text())["notebooks"]["00_metrics"]["started"]
    assert _status(index, "00_metrics") == (f"ok (earlier run, {started})", "executed notebook")
    assert _status(index, "broken")[0] == "failed in cell 2"
    assert _status(index, "broken")[1] == "executed notebook"  # the partial copy, rendered: it shows the error
    assert "ValueError" in (run.results / "report" / "notebooks" / "broken.html").read_text()
    for name in ("01_ground_truth", "long_context", "poster"):  # notebooks of notebooks/ that never ran
        assert _status(index, name) == ("not run", "-")


def test_every_link_and_image_resolves_and_nothing_comes_from_the_network(run: Run) -> None:
    pages = sorted((run.results / "report").rglob("*.html"))
    assert {p.relative_to(run.results / "report").as_posix() for p in pages} >= {
        "index.html", "notebooks/00_metrics.html", "notebooks/broken.html", "tables/00_metrics.csv.html"}
    for page in pages:
        assert broken_references(page) == [], page.name
        assert "<script" not in page.read_text(encoding="utf-8"), f"{page.name} runs a script"
    index = read_page(run.index)
    linked = {unquote(v) for _, a, v in index.refs if a == "href"}
    assert {"notebooks/00_metrics.html", "notebooks/broken.html", "tables/00_metrics.csv.html",
            "../manifest.json"} <= linked
    images = [unquote(v) for t, a, v in index.refs if t == "img"]
    figures = sorted((run.figures / "00_metrics").glob("*.png"))
    assert figures and images == [f"../../figures/00_metrics/{f.name}" for f in figures]
    assert "https://" not in run.index.read_text() and "http://" not in run.index.read_text()
    # the notebook page embeds its figures: every image is a data URI
    notebook = read_page(run.results / "report" / "notebooks" / "00_metrics.html")
    sources = [v for t, a, v in notebook.refs if t == "img"]
    assert sources and all(v.startswith("data:image/png;base64,") for v in sources)


def test_the_checker_finds_broken_references(tmp_path: Path) -> None:
    (tmp_path / "there.png").write_bytes(b"")
    page = tmp_path / "p.html"
    page.write_text('<p id="a"><img src="there.png"><img src="gone.png"><a href="#a">x</a><a href="#b">y</a>'
                    '<script src="https://cdn.example/x.js"></script><style>@import url(https://x/y.css);</style>')
    assert broken_references(page) == ["<img src=gone.png>: no such file", "<a href=#b>: no such id",
                                       "<script src=https://cdn.example/x.js>: not a relative reference",
                                       "a style sheet loads from the network"]


def test_tables_hold_the_results_files_as_written(run: Run) -> None:
    source = run.results / "00_metrics.csv"
    with source.open(newline="") as handle:
        expected = list(csv.reader(handle))
    page = read_page(run.results / "report" / "tables" / "00_metrics.csv.html")
    assert page.tables == [expected]
    for markdown in run.results.glob("*.md"):  # markdown tables: one HTML table per pipe table, header included
        rendered = read_page(run.results / "report" / "tables" / f"{markdown.name}.html")
        pipe_tables = markdown.read_text().count("\n|:") + markdown.read_text().count("\n|-")
        assert len(rendered.tables) == pipe_tables


def test_the_manifest_and_run_log_are_shown(run: Run) -> None:
    manifest = json.loads((run.results / "manifest.json").read_text())
    text = words(read_page(run.index))
    entry = manifest["notebooks"]["00_metrics"]
    facts = manifest["runs"][entry["run"]]
    if facts["git"]["revision"]:
        assert facts["git"]["revision"] in text
    for name, version in facts["packages"].items():
        assert f"{name} {version}" in text
    assert f"cpu_count {facts['machine']['cpu_count']}" in text
    row = next(r for r in read_page(run.index).tables[0] if r and r[0] == "00_metrics")
    assert row[3] == entry["started"] and float(row[4]) == entry["seconds"]
    assert row[5] == f"{'/'.join(map(str, entry['load_average']['start']))} → " \
                     f"{'/'.join(map(str, entry['load_average']['end']))}"
    assert row[6] == f"seed={entry['parameters']['seed']}"
    assert row[7].startswith(f"{len(entry['parameters'])} parameters (smoke preset)")
    for name, value in entry["parameters"].items():  # every parameter, as executed (preset included)
        assert f"{name} = {json.dumps(value)}" in row[7]
    failed_run = manifest["runs"][manifest["notebooks"]["broken"]["run"]]
    assert f"Newest run {manifest['notebooks']['broken']['run']}: 1 notebook(s)" in text
    assert json.dumps(failed_run["command"]) in text


def test_report_command_rebuilds_the_same_page(run: Run, capsys: pytest.CaptureFixture) -> None:
    before = run.index.read_bytes()
    run.index.unlink()
    assert main(["report", "--results", str(run.results), "--figures", str(run.figures)]) == 0
    assert run.index.read_bytes() == before
    assert capsys.readouterr().out.startswith("report ")


def test_bad_files_are_one_line_each_and_the_rest_is_written(run: Run, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    results = tmp_path / "results"
    shutil.copytree(run.results, results, ignore=shutil.ignore_patterns("report"))
    (results / "notebooks" / "00_metrics.ipynb").write_text("{not json")
    (results / "bad.csv").write_bytes(b"\xff\xfe\x00 not utf-8")
    index = report.build(results, figures=run.figures)  # a Path
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2, err
    assert "00_metrics.ipynb: cannot render the notebook" in err[0] and "bad.csv: unreadable table" in err[1]
    page = read_page(index)
    status, cell = _status(page, "00_metrics")
    assert status.startswith("ok") and cell.startswith("unreadable: cannot render the notebook")
    assert "bad.csv unreadable:" in words(page)
    assert (results / "report" / "notebooks" / "broken.html").is_file()  # the other notebook still rendered
    assert broken_references(index) == []
    assert report.build(str(results), figures=str(run.figures)) == index  # a str too


def test_report_of_no_results_folder_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", "--results", str(tmp_path / "nothing")]) == 1
    err = capsys.readouterr().err
    assert err.strip().endswith("nothing: no such results folder") and err.count("\n") == 1


# --------------------------------------------------------------------------- in headless Chromium

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")
SETUP_HINT = "`bash setup.sh` installs Debian's chromium and chromium-driver (as root)"


def _missing(reason: str) -> None:
    """Skip locally; in CI (CI=true), which installs the browser, fail."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} in CI; {SETUP_HINT}")
    pytest.skip(f"{reason}; {SETUP_HINT}")


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven by selenium through Debian's chromedriver (no driver download)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed")
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        _missing("chromium or chromedriver is not installed")
    profile = tempfile.mkdtemp(prefix="emotools-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


_BROKEN_IMAGES = "return [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
_LINKS = "return [...document.querySelectorAll('a[href]')].map(a => a.href)"


@dataclass
class Seen:
    broken_images: list[str]
    missing_links: list[str]
    tables: int
    console_errors: list[str]


def look_at(driver, page: Path) -> Seen:
    """Open ``page`` from the file system; what did not load, which links go nowhere, and the console's errors."""
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(page.as_uri())
    missing = []
    for href in driver.execute_script(_LINKS):
        parts = urlsplit(href)
        if parts.scheme != "file":
            missing.append(href)
        elif not Path(url2pathname(parts.path)).exists():
            missing.append(href)
        elif parts.fragment and Path(url2pathname(parts.path)) == page and not driver.execute_script(
                "return arguments.length && [...arguments].some(i => document.getElementById(i) !== null)",
                parts.fragment, unquote(parts.fragment)):  # the HTML spec tries the id as written, then decoded
            missing.append(href)
    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    return Seen(driver.execute_script(_BROKEN_IMAGES), missing,
                driver.execute_script("return document.querySelectorAll('table').length"), errors)


@pytest.mark.browser
def test_every_page_loads_cleanly_in_chromium(run: Run, browser) -> None:
    folder = run.results / "report"
    index = look_at(browser, folder / "index.html")
    assert index == Seen([], [], index.tables, []) and index.tables >= 2  # run log and manifest tables
    images = browser.execute_script("return document.images.length")
    assert images == len(list((run.figures / "00_metrics").glob("*.png")))
    for page in sorted(folder.glob("*/*.html")):
        seen = look_at(browser, page)
        assert seen.broken_images == [] and seen.missing_links == [] and seen.console_errors == [], page.name
        if page.parent.name == "tables":
            assert seen.tables >= 1, page.name
    notebook = look_at(browser, folder / "notebooks" / "00_metrics.html")
    assert browser.execute_script("return document.images.length") >= 1 and notebook.broken_images == []


@pytest.mark.browser
def test_chromium_check_sees_a_broken_page(browser, tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>'
                    '<img src="gone.png"><a href="nowhere.html">x</a><table><tr><td>1</td></tr></table>'
                    "<script>console.error('boom')</script></body></html>")
    seen = look_at(browser, page)
    assert seen.broken_images == [(tmp_path / "gone.png").as_uri()]
    assert seen.missing_links == [(tmp_path / "nowhere.html").as_uri()]
    assert seen.tables == 1
    assert any("gone.png" in m for m in seen.console_errors) and any("boom" in m for m in seen.console_errors)
