from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.container import ErrorbarContainer

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


@pytest.mark.slow  # three fresh interpreters
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
    # a causal variant keeps its family's colour
    assert plots.arch_color("tcn:causal") == plots.arch_color("tcn:lookahead=5") == plots.ARCH_COLORS["tcn"]


# ----------------------------------------------------------- figures from known data

@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _hex(artist) -> str:
    colour = artist.get_color() if hasattr(artist, "get_color") else artist.get_facecolor()
    return to_hex(colour[0] if np.ndim(colour) == 2 else colour)


def test_palette_is_the_registry_order_with_tab10_colours() -> None:
    # independent reference: matplotlib's tab10 cycle, mlp grey, in the models registry's order
    tab10 = [to_hex(c) for c in plt.get_cmap("tab10").colors]
    assert plots.arch_palette(["lstm", "tdnn", "attention", "mlp"]) == {
        "lstm": tab10[0], "tdnn": tab10[1], "attention": tab10[2], "mlp": tab10[7]}
    from emotools.models import MODELS

    assert plots.arch_order(reversed(list(MODELS))) == [n for n in MODELS if n in plots.ARCH_COLORS]


def _history() -> pd.DataFrame:
    rows = []
    for group in ("arousal", "valence"):
        for k, arch in enumerate(("tdnn", "lstm")):
            for epoch in (1, 2, 3):
                rows.append({"group": group, "architecture": arch, "epoch": epoch,
                             "dev_loss": 1.0 - 0.1 * epoch - k / 10, "train_loss": 0.9 - 0.1 * epoch})
    return pd.DataFrame(rows)


def test_history_has_a_panel_per_group_and_a_dev_and_train_line_per_architecture() -> None:
    fig = plots.plot_history(_history(), title="curves")
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["arousal", "valence"] and fig._suptitle.get_text() == "curves"
    assert axes[0].get_xlabel() == "epoch" and axes[0].get_ylabel() == "dev 1 - CCC loss"
    lines = axes[1].get_lines()
    assert [line.get_label() for line in lines if not line.get_label().startswith("_")] == ["lstm", "tdnn"]
    assert len(lines) == 4 and [line.get_linestyle() for line in lines] == ["-", ":", "-", ":"]
    assert _hex(lines[0]) == plots.ARCH_COLORS["lstm"] and _hex(lines[1]) == plots.ARCH_COLORS["lstm"]
    np.testing.assert_allclose(lines[0].get_ydata(), [0.8, 0.7, 0.6])  # lstm: k = 1
    np.testing.assert_allclose(lines[2].get_ydata(), [0.9, 0.8, 0.7])  # tdnn: k = 0


def test_grid_history_has_a_panel_per_mode_and_target_group() -> None:
    grid = SimpleNamespace(histories=_history().assign(mode="joint"))
    fig = plots.plot_grid_history(grid, title="t")
    assert [ax.get_title() for ax in fig.axes] == ["joint · arousal", "joint · valence"]


def _results() -> pd.DataFrame:
    ccc = {("lstm", "arousal"): [0.5, 0.7], ("lstm", "valence"): [0.2, 0.2], ("mlp", "arousal"): [0.1, 0.3]}
    return pd.DataFrame([{"architecture": a, "target": t, "seed": s, "ccc": v, "dataset": "d", "label_protocol": "p"}
                         for (a, t), values in ccc.items() for s, v in enumerate(values)])


def _error_segments(ax) -> list[np.ndarray]:
    """The error bars' (2, 2) segments, per architecture in drawing order."""
    return [c.get_segments() for c in ax.collections if c.get_label() == "_error bars"]


def test_metric_bars_are_means_with_sd_error_bars_in_architecture_colours() -> None:
    fig = plots.plot_metric_bars(_results(), metric="ccc", reference={"arousal": 0.9})
    ax = fig.axes[0]
    bars = ax.patches
    assert len(bars) == 4  # 2 architectures x 2 targets (mlp has no valence: a NaN bar)
    heights = [b.get_height() for b in bars]
    np.testing.assert_allclose(heights[:2], [0.2, np.nan])  # mlp first (registry order): arousal, valence
    np.testing.assert_allclose(heights[2:], [0.6, 0.2])  # lstm
    assert {_hex(b) for b in bars[:2]} == {plots.ARCH_COLORS["mlp"]}
    assert {_hex(b) for b in bars[2:]} == {plots.ARCH_COLORS["lstm"]}
    [_mlp, lstm] = _error_segments(ax)
    sd = np.std([0.5, 0.7], ddof=1)
    np.testing.assert_allclose(lstm[0][:, 1], [0.6 - sd, 0.6 + sd])  # arousal: mean ± sd over 2 seeds
    np.testing.assert_allclose(lstm[1][:, 1], [0.2, 0.2], atol=1e-12)  # valence: two equal seeds, sd 0
    assert [t.get_text() for t in ax.get_xticklabels()] == ["arousal", "valence"]
    assert ax.get_ylabel() == plots.METRIC_LABELS["ccc"] and ax.get_title() == "CCC per architecture"
    assert ax.get_legend().get_title().get_text() == "error bars: ± sd over seeds"
    [ceiling] = [c for c in ax.collections if c.get_label() == "annotation ceiling"]
    assert ceiling.get_segments()[0][0, 1] == pytest.approx(0.9)


def _intervals(results: pd.DataFrame) -> pd.DataFrame:
    means = results.groupby(["target", "architecture"])["ccc"].mean().reset_index()
    return means.assign(ccc_low=means["ccc"] - 0.1, ccc_high=means["ccc"] + 0.05 * np.arange(1, len(means) + 1),
                        level=0.95)


def test_metric_bar_error_bars_are_the_ci_bounds_without_caps_or_vertical_grid_lines() -> None:
    plots.set_style()  # the style with a grid: its x grid lines used to cross each group
    results = _results()
    intervals = _intervals(results)
    fig = plots.plot_metric_bars(results, metric="ccc", intervals=intervals, reference={"arousal": 0.9})
    ax = fig.axes[0]
    drawn = {}
    for arch, segments in zip(["mlp", "lstm"], _error_segments(ax)):
        for target, seg in zip(["arousal", "valence"], segments):
            drawn[(target, arch)] = seg
    for _, row in intervals.iterrows():
        seg = drawn[(row["target"], row["architecture"])]
        np.testing.assert_allclose(seg[:, 1], [row["ccc_low"], row["ccc_high"]])  # from the CI's low to its high
        assert seg[0, 0] == seg[1, 0]  # vertical, at the bar's centre
    assert ax.get_legend().get_title().get_text() == "error bars: 95% CI"
    # no caps, no matplotlib errorbar containers, no line spanning the axes vertically
    assert not any(isinstance(c, ErrorbarContainer) for c in ax.containers)
    assert not [line for line in ax.get_lines() if line.get_marker() not in (None, "None", "")]
    assert not any(line.get_visible() for line in ax.get_xgridlines())
    assert all(np.ptp(np.asarray(line.get_xdata(), float)) > 0 for line in ax.get_lines())  # only the y = 0 line
    # One seed: a CI over test units is drawn, still without caps; no CI row: no error bar.
    one = results[results["seed"] == 0]
    fig = plots.plot_metric_bars(one, metric="ccc", intervals=intervals.iloc[:1])
    segments = [s for c in _error_segments(fig.axes[0]) for s in c if s.size]  # NaN: not drawn
    assert len(segments) == 1 and not any(isinstance(c, ErrorbarContainer) for c in fig.axes[0].containers)
    plt.close("all")


def test_metric_bars_draw_no_error_bar_on_a_single_seed_without_intervals() -> None:
    fig = plots.plot_metric_bars(_results().query("seed == 0"), metric="ccc")
    ax = fig.axes[0]
    assert not [s for c in _error_segments(ax) for s in c if s.size]  # NaN ends: nothing drawn
    assert ax.get_legend().get_title().get_text() == ""
    with pytest.raises(ValueError, match="more than one row"):
        plots.plot_metric_bars(_results(), intervals=pd.concat([_intervals(_results())] * 2))


def test_trajectories_draw_raters_band_latent_gold_and_each_prediction() -> None:
    time = np.arange(5) / 10
    gold = np.linspace(-1, 1, 5)
    fig = plots.plot_trajectories(time, gold, {"tdnn": gold * 0.5, "lstm": gold * 0.8}, target="arousal",
                                  raters=np.stack([gold - 0.1, gold + 0.2]), latent=gold * 0.9)
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["latent (rendered)", "gold standard", "lstm", "tdnn"]
    np.testing.assert_allclose(ax.get_lines()[2].get_ydata(), gold * 0.8)
    assert _hex(ax.get_lines()[3]) == plots.ARCH_COLORS["tdnn"]
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(-1.1) and band.max() == pytest.approx(1.2)
    assert ax.get_ylabel() == "arousal (scale -1 to 1)" and ax.get_title() == "arousal: ground truth vs prediction"


def _grid(protocol: str, offset: float) -> SimpleNamespace:
    time = np.arange(4) / 10
    y = np.stack([time, -time], axis=1)
    record = SimpleNamespace(id="s1", time=time, y=y, target_names=["arousal", "valence"])
    results = pd.DataFrame([{"architecture": a, "target": t, "label_protocol": protocol, "split": split,
                             "postprocess": "none", "ccc": offset, "mse": 1 - offset, "seed": 0, "mode": "joint"}
                            for a in ("mlp", "lstm") for t in ("arousal", "valence") for split in ("dev", "test")])
    return SimpleNamespace(histories=_history().assign(mode="joint"), test_records=[record], results=results,
                           predictions=lambda mode: {"mlp": [y + offset], "lstm": [y - offset]})


def test_dataset_figures_name_one_figure_per_protocol_step_then_the_bars() -> None:
    intervals = pd.DataFrame([{"label_protocol": p, "target": t, "architecture": a, "mode": "joint",
                               "postprocess": post, "ccc_low": lo, "ccc_high": lo + 0.2, "level": 0.95}
                              for p, lo in (("seed", -0.1), ("proxy", 0.4)) for t in ("arousal", "valence")
                              for a in ("mlp", "lstm") for post in ("none", "avec")])
    figures = dict(plots.dataset_figures({"seed": _grid("seed", 0.0), "proxy": _grid("proxy", 0.5)},
                                         name="VoxCeleb1", mode="joint", intervals=intervals))
    assert list(figures) == ["validation_loss_seed", "trajectory_seed_arousal", "trajectory_seed_valence",
                             "validation_loss_proxy", "trajectory_proxy_arousal", "trajectory_proxy_valence",
                             "ccc_bars", "mse_bars"]
    ax = figures["trajectory_proxy_valence"].axes[0]
    assert ax.get_title() == "VoxCeleb1, proxy labels, test session s1: valence"
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), -np.arange(4) / 10 + 0.5)  # mlp = y + offset
    bars = figures["ccc_bars"].axes[0]
    assert [t.get_text() for t in bars.get_xticklabels()] == [
        "seed · arousal", "seed · valence", "proxy · arousal", "proxy · valence"]
    np.testing.assert_allclose([b.get_height() for b in bars.patches], [0, 0, 0.5, 0.5] * 2)
    for segments in _error_segments(bars):  # the CCC bars' error bars are the given CIs, per protocol
        np.testing.assert_allclose([s[:, 1] for s in segments], [[-0.1, 0.1]] * 2 + [[0.4, 0.6]] * 2)
    assert bars.get_legend().get_title().get_text() == "error bars: 95% CI"
    assert figures["mse_bars"].axes[0].get_title() == "VoxCeleb1: test MSE per architecture and label protocol"


def _curve() -> pd.DataFrame:
    rows = [("mlp", "mlp", 0.1, 0.2, "layers"), ("tdnn", "tdnn (2)", 1.5, 0.4, "layers"),
            ("tdnn", "tdnn (4)", 4.7, 0.5, "layers"), ("lstm", "lstm (3 s)", 3.0, 0.45, "chunk_s"),
            ("lstm", "lstm (30 s)", 30.0, 0.55, "chunk_s")]
    return pd.DataFrame([{"family": f, "setting": s, "context_s": c, "ccc": v + lag / 10, "ccc_sd": 0.01, "knob": k,
                          "target": t, "lag_s": lag}
                         for f, s, c, v, k in rows for t in ("arousal", "valence") for lag in (0.0, 2.0)])


def test_context_curves_draw_a_floor_level_an_errorbar_line_per_family_and_the_ceiling() -> None:
    curve = _curve()
    fig = plots.plot_context_curves(curve[curve["lag_s"] == 0.0], ceilings={"arousal": 0.8, "valence": 0.7},
                                    title="ctx")
    ax = fig.axes[0]
    assert [ax.get_title() for ax in fig.axes] == ["arousal: CCC against context", "valence: CCC against context"]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "receptive field (s, log scale)"
    labels = ax.get_legend_handles_labels()[1]
    assert sorted(labels) == ["annotation ceiling", "lstm (x: training chunk)", "mlp (frame-local floor)", "tdnn"]
    errorbars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(errorbars) == 2  # lstm and tdnn
    tdnn = errorbars[1].lines[0]
    np.testing.assert_allclose(np.asarray(tdnn.get_xdata(), float), [1.5, 4.7])
    np.testing.assert_allclose(np.asarray(tdnn.get_ydata(), float), [0.4, 0.5])
    assert _hex(tdnn) == plots.ARCH_COLORS["tdnn"]
    levels = {line.get_label(): line.get_ydata()[0] for line in ax.get_lines() if "floor" in line.get_label()
              or line.get_label() == "annotation ceiling"}
    assert levels == {"mlp (frame-local floor)": pytest.approx(0.2), "annotation ceiling": pytest.approx(0.8)}


def test_lag_curves_draw_each_setting_over_lags_with_delay_and_chain_variants() -> None:
    curve = _curve()
    fig = plots.plot_lag_curves(curve, delay_curve=curve.assign(ccc=curve["ccc"] + 0.05), chain_curve=curve,
                                ceilings={0.0: {"arousal": 0.9}, 2.0: {"arousal": 0.8}})
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels.count("tdnn (4), 4.7 s") == 1 and "tdnn (4) + delay compensation" in labels
    assert [label for label in labels if "AVEC" in label] == ["mlp + AVEC chain (delay, smoothing, bias, scale)"]
    assert len(labels) == 5 * 2 + 1 + 1  # settings and their delay copies, the mlp chain, the ceiling
    ceiling = ax.get_lines()[-1]
    np.testing.assert_allclose(ceiling.get_xdata(), [0.0, 2.0])
    np.testing.assert_allclose(ceiling.get_ydata(), [0.9, 0.8])
    assert ax.get_xlabel() == "raters' mean lag (s)"


def test_costs_have_a_log_log_panel_per_measured_column_and_skip_failed_rows() -> None:
    costs = pd.DataFrame([{"family": "tdnn", "setting": "tdnn (2)", "minutes": m, "infer_seconds": m / 10,
                           "infer_peak_mb": 5 * m, "train_epoch_seconds": np.nan, "error": err}
                          for m, err in ((1.0, None), (10.0, None), (30.0, "out of memory"))])
    fig = plots.plot_costs(costs)
    assert [ax.get_title() for ax in fig.axes] == ["inference time", "peak extra memory at inference"]
    time_ax, memory_ax = fig.axes
    assert (time_ax.get_xscale(), time_ax.get_yscale(), memory_ax.get_yscale()) == ("log", "log", "linear")
    [line] = time_ax.get_lines()
    np.testing.assert_allclose(line.get_xdata(), [1.0, 10.0])
    np.testing.assert_allclose(memory_ax.get_lines()[0].get_ydata(), [5.0, 50.0])


def _frontier() -> pd.DataFrame:
    return pd.DataFrame({"family": ["mlp", "tdnn", "tdnn", "lstm"], "setting": ["mlp", "tdnn (2)", "tdnn (4)", "lstm"],
                         "infer_seconds_per_hour": [1.0, 2.0, 4.0, 50.0], "ccc": [0.2, 0.5, 0.45, 0.6],
                         "on_front": [True, True, False, True]})


def test_frontier_scatters_each_family_and_steps_along_the_front() -> None:
    fig = plots.plot_frontier(_frontier(), title="front")
    ax = fig.axes[0]
    assert ax.get_title() == "front" and ax.get_xscale() == "log"
    scatters = {c.get_label(): c for c in ax.collections}
    assert set(scatters) == {"mlp", "tdnn", "lstm"}
    np.testing.assert_allclose(scatters["tdnn"].get_offsets(), [[2.0, 0.5], [4.0, 0.45]])
    assert list(scatters["tdnn"].get_linewidths()) == [1.8, 0.3]  # thick edge: on the front
    [step] = [line for line in ax.get_lines() if line.get_label() == "efficiency frontier"]
    assert list(step.get_xdata()) == [1.0, 2.0, 50.0]
    assert [t.get_text() for t in ax.texts] == ["mlp", "lstm", "2", "4"]


def _trajectory() -> pd.DataFrame:
    time = np.arange(3) / 10.0
    return pd.concat([pd.DataFrame({"recording": "r", "speaker": "s", "time": time, "target": t, "gold": time,
                                    "raters_min": time - 0.1, "raters_max": time + 0.1, "latent": time,
                                    "tdnn (4)": time * 2, "mlp": -time}) for t in ("arousal", "valence")])


def test_trajectory_panels_stack_targets_and_colour_predictions_by_architecture() -> None:
    fig = plots.plot_trajectory_panels(_trajectory(), title="ex")
    assert [ax.get_title() for ax in fig.axes] == ["arousal: ground truth and predictions",
                                                   "valence: ground truth and predictions"]
    lines = {line.get_label(): line for line in fig.axes[1].get_lines()}
    assert list(lines) == ["latent (rendered)", "gold standard", "tdnn (4)", "mlp"]
    assert _hex(lines["tdnn (4)"]) == plots.ARCH_COLORS["tdnn"] and _hex(lines["mlp"]) == plots.ARCH_COLORS["mlp"]
    np.testing.assert_allclose(lines["tdnn (4)"].get_ydata(), [0.0, 0.2, 0.4])


def test_architecture_panels_one_per_dataset_and_label_protocol_with_one_legend() -> None:
    results = pd.concat([_results(), _results().assign(label_protocol="q"), _results().assign(dataset="e")])
    fig = plots.plot_architecture_panels(results, ncols=2, references={("d", "p"): {"arousal": 0.9}})
    titles = [ax.get_title() for ax in fig.axes if ax.axison]
    assert titles == ["d · p", "d · q", "e · p"] and len(fig.axes) == 4  # 2 x 2 grid, the last one off
    [legend] = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["mlp", "lstm", "annotation ceiling"]


def test_metric_demo_has_a_bar_per_prediction_and_metric() -> None:
    table = pd.DataFrame({"prediction": ["perfect", "constant"], "ccc": [1.0, 0.0], "pearson": [1.0, 0.0],
                          "mse": [0.0, 0.25]})
    fig, ax = plt.subplots()
    plots.draw_metric_demo(ax, table)
    np.testing.assert_allclose([b.get_height() for b in ax.patches], [1, 0, 1, 0, 0, 0.25])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["CCC", "PEARSON", "MSE"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["perfect", "constant"]


def test_poster_pages_leave_a_note_on_every_panel_without_data() -> None:
    fig = plots.plot_poster_overview(notes={"metrics": "run 00_metrics"})
    notes = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert len(fig.axes) == 6 and not any(ax.axison for ax in fig.axes)
    assert notes[0] == "run 00_metrics" and notes.count("long-context study not run yet") == 2
    curve = _curve()
    summary = plots.plot_long_context_summary(curve[curve["lag_s"] == 0.0], ceilings={"arousal": 0.8})
    texts = [t.get_text() for ax in summary.axes for t in ax.texts]
    assert texts == ["no lag sweep in the results", "no cost measurements in the results"]
    full = plots.plot_poster_overview(metrics_table=pd.DataFrame({"prediction": ["p"], "ccc": [1.0], "pearson": [1.0],
                                                                  "mse": [0.0]}),
                                      architectures=_results(), curve=curve[curve["lag_s"] == 0.0],
                                      frontier=_frontier(), trajectory=_trajectory())
    assert not [t for ax in full.axes for t in ax.texts if "yet" in t.get_text()]
    assert full.axes[1].get_title() == "Architectures on d (p), test"


def test_savefig_writes_real_png_and_pdf_files_atomically(isolated_dirs: dict[str, Path]) -> None:
    fig, ax = plt.subplots(figsize=(2, 1))
    ax.bar([0, 1], [1, 2])
    written = plots.savefig(fig, "bars", notebook="nb_atomic", formats=("png", "pdf", "svg"))
    folder = isolated_dirs["figures"] / "nb_atomic"
    assert written == [folder / "bars.png", folder / "bars.pdf", folder / "bars.svg"]
    assert written[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and written[1].read_bytes()[:5] == b"%PDF-"
    assert b"<svg" in written[2].read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == ["bars.pdf", "bars.png", "bars.svg"], "a temporary was left"
