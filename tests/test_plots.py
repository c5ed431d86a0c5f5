from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from emotools import plots


def test_savefig_writes_png_and_pdf_under_notebook_folder(isolated_dirs: dict[str, Path]) -> None:
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    written = plots.savefig(fig, "line", notebook="nb_test")
    assert sorted(p.name for p in written) == ["line.pdf", "line.png"]
    assert all(p.parent == isolated_dirs["figures"] / "nb_test" and p.stat().st_size > 0 for p in written)
    first = (isolated_dirs["figures"] / "nb_test" / "line.pdf").read_bytes()
    plots.savefig(fig, "line", notebook="nb_test")
    assert (isolated_dirs["figures"] / "nb_test" / "line.pdf").read_bytes() == first, "PDF output not reproducible"
    assert plt.fignum_exists(fig.number), "outside a kernel savefig must leave the figure open"
    assert repr(written) == ("saved $EMOTOOLS_FIGURES_DIR/nb_test/line.png, "
                             "$EMOTOOLS_FIGURES_DIR/nb_test/line.pdf")
    plt.close(fig)


def _backend_in_fresh_process(code: str, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"} | env
    result = subprocess.run([sys.executable, "-c", code + "; import matplotlib; print(matplotlib.get_backend())"],
                            capture_output=True, text=True, env=environment, timeout=120, check=True)
    return result.stdout.strip().splitlines()[-1].lower()


def test_headless_backend_only_where_nobody_chose_one() -> None:
    assert _backend_in_fresh_process("import emotools.plots") == "agg"
    assert _backend_in_fresh_process("import emotools.plots", MPLBACKEND="pdf") == "pdf"
    assert _backend_in_fresh_process(
        "import matplotlib; matplotlib.use('svg'); import emotools.plots") == "svg"


def test_savefig_rejects_paths_as_names() -> None:
    fig = plt.figure()
    with pytest.raises(ValueError, match="plain file stem"):
        plots.savefig(fig, "../escape", notebook="x")
    plt.close(fig)


def test_architecture_colours_are_distinct_and_stable() -> None:
    colours = list(plots.ARCH_COLORS.values())
    assert len(set(colours)) == len(colours)
    assert plots.arch_color("lstm") == plots.ARCH_COLORS["lstm"]
    grey = plots.arch_color("new_model")
    r, g, b = (int(grey[i:i + 2], 16) for i in (1, 3, 5))
    assert r == g == b and 0x40 <= r < 0xC0 and grey not in colours
    assert plots.arch_color("other_model") != grey
    # stable across interpreter runs (string hashing is randomized per process)
    again = subprocess.run([sys.executable, "-c", "from emotools import plots; print(plots.arch_color('new_model'))"],
                           capture_output=True, text=True, timeout=120, check=True,
                           env=os.environ | {"PYTHONHASHSEED": "random"})
    assert again.stdout.strip() == grey
    assert plots.arch_order(["tdnn", "zeta", "lstm"]) == ["lstm", "tdnn", "zeta"]
