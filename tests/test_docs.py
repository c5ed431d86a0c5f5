"""The documentation's numbers come from the committed results files, and the tree is clean under ruff."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from emotools import docs, paths

CSV = "lag_s,target,ceiling\n3,arousal,0.974593\n3,valence,0.980562\n0,arousal,0.976673\n"
MD = """# nb

## Raw

| architecture | ccc arousal |
|:--|--:|
| mlp | 0.386 |
| tcn | 0.893 |

## Post

| architecture | ccc arousal |
|:--|--:|
| mlp | 0.914 |
"""


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "c.csv").write_text(CSV)
    (tmp_path / "results" / "t.md").write_text(MD)
    (tmp_path / "results" / "b.json").write_text(json.dumps(
        {"runs": [{"hours": 1.0, "mb": {"peak": 701.23}}, {"hours": 3.0, "mb": {"peak": 703.9}}], "diff": 5.84e-6}))
    return tmp_path


def region(kind: str, args: str, body: str = "") -> str:
    return f"<!-- emotools:{kind} {args} -->{body}<!-- /emotools:{kind} -->"


def test_value_from_a_csv_is_the_matching_cell_formatted(root: Path) -> None:
    text = "ceiling " + region("value", 'results/c.csv column=ceiling where="lag_s=3,target=valence" format=.3f', "?")
    new, count, stale, errors = docs.fill(text, root)
    expected = pd.read_csv(root / "results/c.csv").query("lag_s == 3 and target == 'valence'")["ceiling"].item()
    assert new == "ceiling " + region("value", 'results/c.csv column=ceiling where="lag_s=3,target=valence" '
                                      "format=.3f", f"{expected:.3f}")
    assert (count, stale, errors) == (1, 1, [])
    assert docs.fill(new, root)[2] == 0  # filled once, no longer stale


def test_table_from_a_markdown_section_keeps_the_asked_columns(root: Path) -> None:
    new, *_ = docs.fill("x\n" + region("table", 'results/t.md section=Post columns="architecture,ccc arousal"') + "\n",
                        root)
    body = docs.parse_regions(new)[0].body
    lines = body.strip().splitlines()
    assert lines[0].split("|")[1:3] == [" architecture   ", "   ccc arousal "]
    assert [line.split("|")[2].strip() for line in lines[2:]] == ["0.914"]  # the Post section, not the Raw one


def test_table_from_json_flattens_nested_keys_and_formats_numbers(root: Path) -> None:
    new, *_ = docs.fill(region("table", 'results/b.json key=runs columns="hours,mb.peak" format=.1f'), root)
    rows = [[cell.strip() for cell in line.strip("|").split("|")]
            for line in docs.parse_regions(new)[0].body.strip().splitlines()]
    assert rows[0] == ["hours", "mb.peak"]
    assert rows[2:] == [["1.0", "701.2"], ["3.0", "703.9"]]
    assert docs.fill(region("value", "results/b.json key=diff format=.1e"), root)[0].count("5.8e-06") == 1


@pytest.mark.parametrize(("args", "message"), [
    ("results/missing.csv column=ceiling", "results/missing.csv: cannot read"),
    ('results/c.csv column=nope where="lag_s=3,target=arousal"', "no column 'nope'"),
    ("results/c.csv column=ceiling where=lag_s=3", "2 rows match"),
    ("results/c.csv column=ceiling colour=red", "unknown option 'colour'"),
    ("results/t.md section=Nowhere column=architecture", "no section 'Nowhere'"),
    ("results/b.json key=runs.7.hours", "no key 'runs.7.hours'"),
])
def test_a_broken_region_is_reported_in_one_line_and_the_others_still_fill(root: Path, args: str,
                                                                         message: str) -> None:
    good = region("value", 'results/c.csv column=ceiling where="lag_s=0,target=arousal"', "old")
    bad = region("value", args, "kept")
    new, count, stale, errors = docs.fill(f"{bad}\n{good}\n", root)
    assert count == 2 and len(errors) == 1 and message in errors[0], errors
    assert "-->kept<!--" in new and "-->0.976673<!--" in new


def test_cli_check_fails_on_a_stale_file_and_fill_fixes_it(root: Path, capsys: pytest.CaptureFixture) -> None:
    page = root / "page.md"
    page.write_text("# p\n" + region("value", "results/b.json key=runs.0.hours", "2.0") + "\n")
    assert docs.cli(["--check", "--root", str(root), str(page)]) == 1
    assert "stale:" in capsys.readouterr().out and "2.0" in page.read_text()  # --check changes nothing
    outcomes = docs.update([page], root=root)
    assert outcomes[0].stale == 1 and "-->1.0<!--" in page.read_text()
    assert docs.update([page], root=root, check=True)[0].stale == 0


def test_committed_docs_are_up_to_date_with_the_committed_results() -> None:
    """`python -m emotools docs --check` on the repository: every marked region says what its file says."""
    result = subprocess.run([sys.executable, "-m", "emotools", "docs", "--check"], cwd=paths.PROJECT_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    readme = (paths.PROJECT_ROOT / "README.md").read_text()
    assert len(readme.encode()) < 16_000
    first = readme.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    commands = [line.split("#", 1)[0].strip() for line in first]
    assert commands == ["pip install -r requirements.txt && python -m emotools run",
                        "pip install -r requirements.txt && python -m pytest"]
    ci = (paths.PROJECT_ROOT / ".ci" / "run").read_text()
    assert f"\n{commands[1]}\n" in ci  # CI runs the README's test command literally
    for page in docs.default_files()[1:]:
        assert f"(docs/{page.name})" in readme, f"README does not link {page.name}"


def test_tree_is_clean_under_ruff() -> None:
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed (pinned in requirements.txt)")
    result = subprocess.run([ruff, "check", "emotools", "tests", "benchmarks"], cwd=paths.PROJECT_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:]
