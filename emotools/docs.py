"""Numbers in the documentation come from committed results files, never by hand.

README.md and ``docs/*.md`` hold marked regions that ``python -m emotools docs``
fills from files under the repository (``results/*.md``, ``results/*.csv``,
``benchmarks/results/*.json``); ``--check`` changes nothing and exits 1 when
any region differs from what its file now says, so a stale number fails the
tests instead of going unnoticed. Two kinds of region::

    <!-- emotools:table results/01_ground_truth.md section="Test, raw predictions" columns="architecture,ccc" -->
    (a markdown table, written by the command)
    <!-- /emotools:table -->

    ceiling <!-- emotools:value results/c.csv column=ceiling where="lag_s=3" -->0.975<!-- /emotools:value -->

Options (all optional except ``column`` for a value):

- ``section``: in a ``.md`` source, the table under this heading (default: the first table);
- ``key``: in a ``.json`` source, a dotted path (``runs``, ``blocked_vs_whole.max_abs_diff``;
  list items by index); a list of objects is a table (nested keys as dotted columns), anything else a value;
- ``where``: ``column=value`` pairs, comma-separated, compared as text;
- ``columns``: the columns a table keeps, comma-separated, in that order;
- ``column``: the column a value is read from (exactly one row must match);
- ``format``: a format spec for numbers (default ``.3f`` in tables, as written in values).

>>> table = pd.DataFrame({"arch": ["mlp", "tdnn"], "ccc": ["0.38612", "0.5641"]})
>>> select(table, {"where": "arch=tdnn", "column": "ccc", "format": ".2f"}, "r.csv")
'0.56'
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import fileio, paths
from .errors import EmotoolsError

REGION = re.compile(r"<!-- emotools:(?P<kind>table|value) (?P<args>.*?) -->(?P<body>.*?)<!-- /emotools:(?P=kind) -->",
                    re.DOTALL)
"""A marked region: opening comment (kind, source, options), generated body, closing comment."""

OPTIONS = frozenset({"section", "key", "where", "columns", "column", "format"})


class DocsError(EmotoolsError, ValueError):
    """A marked region that cannot be filled: unknown option, missing file, no such row or column."""


@dataclass(frozen=True)
class Region:
    """One marked region of a documentation file, as found."""

    kind: str  # "table" or "value"
    source: str  # the results file, relative to the repository root
    options: dict[str, str]
    body: str
    line: int


@dataclass(frozen=True)
class Outcome:
    """What filling one documentation file found: regions, how many were stale, one line per broken region."""

    path: Path
    regions: int
    stale: int
    errors: tuple[str, ...]


def parse_regions(text: str) -> list[Region]:
    """The marked regions of ``text`` in order (options parsed, not yet checked)."""
    regions = []
    for match in REGION.finditer(text):
        words = shlex.split(match["args"])
        options = dict(word.partition("=")[::2] for word in words[1:])
        regions.append(Region(match["kind"], words[0] if words else "", options, match["body"],
                              text.count("\n", 0, match.start()) + 1))
    return regions


def markdown_table(text: str, section: str | None, subject: str) -> pd.DataFrame:
    """The first markdown table of ``text`` (under heading ``section`` if given) as text cells."""
    lines = text.splitlines()
    if section is not None:
        headings = [i for i, line in enumerate(lines) if line.startswith("#") and line.lstrip("#").strip() == section]
        if not headings:
            raise DocsError(subject, f"no section {section!r}")
        lines = lines[headings[0] + 1:]
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), None)
    if start is None:
        raise DocsError(subject, "no markdown table" + (f" under {section!r}" if section else ""))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return pd.DataFrame(rows[2:], columns=rows[0])  # rows[1] is the |---| rule


def json_at(data: object, key: str | None, subject: str) -> object:
    """The item of parsed JSON at a dotted ``key`` (list items by index)."""
    for part in key.split(".") if key else []:
        try:
            data = data[int(part)] if isinstance(data, list) else data[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise DocsError(subject, f"no key {key!r}") from None
    return data


def load_source(source: str | os.PathLike, options: dict[str, str], root: Path) -> pd.DataFrame | object:
    """A results file as a table of text cells, or (a JSON scalar at ``key``) as one value."""
    path = root / source
    subject = paths.shown(path) if path.is_relative_to(paths.PROJECT_ROOT) else os.fspath(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise DocsError(subject, f"cannot read ({error.strerror or error})") from None
    if path.suffix == ".md":
        return markdown_table(text, options.get("section"), subject)
    if path.suffix == ".csv":
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    if path.suffix == ".json":
        data = json_at(json.loads(text), options.get("key"), subject)
        if isinstance(data, list) and data and all(isinstance(item, dict) for item in data):
            return pd.json_normalize(data).astype(str)  # nested objects as dotted columns: cpu.speedup
        return data
    raise DocsError(subject, "unsupported kind of file (need .md, .csv or .json)")


def number_text(cell: object, spec: str | None) -> str:
    """``cell`` formatted with ``spec`` when it is a non-integer number; otherwise as written."""
    text = str(cell)
    if spec is None or re.fullmatch(r"[-+]?\d+", text):
        return text
    try:
        return format(float(text), spec)
    except ValueError:
        return text


def is_number(cell: object) -> bool:
    """Whether a text cell reads as a number (numbers are right-aligned in tables)."""
    try:
        float(str(cell))
    except ValueError:
        return False
    return True


def filtered(table: pd.DataFrame, options: dict[str, str], subject: str) -> pd.DataFrame:
    """The rows matching every ``where`` pair and the ``columns`` asked for."""
    pairs = [pair.partition("=")[::2] for pair in options.get("where", "").split(",") if pair.strip()]
    wanted = [c.strip() for c in options["columns"].split(",")] if "columns" in options else list(table.columns)
    missing = [c for c in [name.strip() for name, _ in pairs] + wanted if c not in table.columns]
    if missing:
        raise DocsError(subject, f"no column {missing[0]!r} (has {', '.join(map(str, table.columns))})")
    for name, value in pairs:
        table = table[table[name.strip()].astype(str) == value.strip()]
    return table[wanted]


def select(table: pd.DataFrame | object, options: dict[str, str], subject: str) -> str:
    """The one value a ``value`` region asks for, formatted."""
    if not isinstance(table, pd.DataFrame):
        return number_text(table, options.get("format"))
    if "column" not in options:
        raise DocsError(subject, "a value needs column=NAME")
    rows = filtered(table, {**options, "columns": options["column"]}, subject)
    if len(rows) != 1:
        raise DocsError(subject, f"{len(rows)} rows match where={options.get('where', '')!r}, need exactly 1")
    return number_text(rows.iloc[0, 0], options.get("format"))


def render_region(region: Region, root: Path) -> str:
    """The body a region should hold now."""
    subject = f"{region.source} (line {region.line})"
    unknown = sorted(set(region.options) - OPTIONS)
    if not region.source or unknown:
        raise DocsError(subject, f"unknown option {unknown[0]!r}" if unknown else "no source file named")
    data = load_source(region.source, region.options, root)
    if region.kind == "value":
        return select(data, region.options, subject)
    if not isinstance(data, pd.DataFrame):
        raise DocsError(subject, "a table needs a table (a .md table, a .csv, or a JSON list of objects)")
    table = filtered(data, region.options, subject)
    spec = region.options.get("format", ".3f")
    table = table.apply(lambda column: column.map(lambda cell: number_text(cell, spec)))
    align = ["right" if column.map(is_number).all() else "left" for _, column in table.items()]
    return "\n" + table.to_markdown(index=False, disable_numparse=True, colalign=align) + "\n"


def fill(text: str, root: str | os.PathLike | None = None) -> tuple[str, int, int, list[str]]:
    """``text`` with every marked region refilled; also (regions, stale regions, one line per broken region).

    A broken region keeps its body and is reported; the other regions are still filled.
    """
    root = Path(root) if root is not None else paths.PROJECT_ROOT
    pieces, errors, stale, last, count = [], [], 0, 0, 0
    for match, region in zip(REGION.finditer(text), parse_regions(text), strict=True):
        count += 1
        try:
            body = render_region(region, root)
        except DocsError as error:
            errors.append(str(error))
            body = region.body
        stale += body != region.body
        pieces += [text[last:match.start("body")], body]
        last = match.end("body")
    return "".join(pieces) + text[last:], count, stale, errors


def default_files(root: str | os.PathLike | None = None) -> list[Path]:
    """README.md and every page under docs/."""
    root = Path(root) if root is not None else paths.PROJECT_ROOT
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def update(files: Sequence[str | os.PathLike], *, root: str | os.PathLike | None = None,
           check: bool = False) -> list[Outcome]:
    """Refill the regions of ``files`` (rewriting those that changed) or, with ``check``, only compare."""
    outcomes = []
    for file in map(Path, files):
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as error:
            outcomes.append(Outcome(file, 0, 0, (f"{paths.shown(file)}: cannot read ({error.strerror or error})",)))
            continue
        new, count, stale, errors = fill(text, root)
        if new != text and not check:
            fileio.write_text(file, new)
        outcomes.append(Outcome(file, count, stale, tuple(f"{paths.shown(file)}: {e}" for e in errors)))
    return outcomes


def cli(argv: Sequence[str] | None = None) -> int:
    """``python -m emotools docs [--check] [FILE ...]``: exit 1 on a broken region or (with --check) a stale one."""
    parser = argparse.ArgumentParser(prog="python -m emotools docs",
                                     description="Fill the marked regions of README.md and docs/*.md "
                                                 "from the results files.")
    parser.add_argument("files", nargs="*", type=Path, help="documentation files (default: README.md, docs/*.md)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if any region is stale")
    parser.add_argument("--root", type=Path, metavar="DIR",
                        help="folder the results files are named from (default: the repository)")
    args = parser.parse_args(argv)
    outcomes = update(args.files or default_files(args.root), root=args.root, check=args.check)
    for outcome in outcomes:
        for line in outcome.errors:
            print(f"error: {line}", file=sys.stderr)
        if outcome.stale:
            verb = "stale" if args.check else "updated"
            print(f"{verb}: {paths.shown(outcome.path)} ({outcome.stale} of {outcome.regions} regions)")
    broken = any(o.errors for o in outcomes)
    return 1 if broken or (args.check and any(o.stale for o in outcomes)) else 0
