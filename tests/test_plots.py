from __future__ import annotations

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
    plt.close(fig)


def test_savefig_rejects_paths_as_names() -> None:
    fig = plt.figure()
    with pytest.raises(ValueError, match="plain file stem"):
        plots.savefig(fig, "../escape", notebook="x")
    plt.close(fig)


def test_architecture_colours_are_distinct_and_stable() -> None:
    colours = list(plots.ARCH_COLORS.values())
    assert len(set(colours)) == len(colours)
    assert plots.arch_color("lstm") == plots.ARCH_COLORS["lstm"]
    assert plots.arch_color("new_model") == plots.arch_color("new_model")
    assert plots.arch_order(["tdnn", "zeta", "lstm"]) == ["lstm", "tdnn", "zeta"]
