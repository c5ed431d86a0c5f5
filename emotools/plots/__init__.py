"""Figures: one style, one colour per architecture, one ``savefig``.

Every figure of the project goes through :func:`savefig`, which writes PNG
and PDF into ``figures/<notebook>/`` and, inside a Jupyter kernel, shows the
figure inline (interactive sessions and papermill's executed copies alike).
Colours come from :func:`arch_color` so an architecture looks the same in
every figure.

- :mod:`.style`: backend choice, colours, ``set_style``, ``savefig``;
- :mod:`.standard`: learning curves, trajectories, metric bars (every notebook);
- :mod:`.study`: the long-context study's and the poster's panels;
- :mod:`.realtime`: the real-time study's figures (CCC against lookahead, a live session);
- :mod:`.mechanisms`: the corpus-v2 mechanism study (frame-local vs context models per preset).
"""

# isort: skip_file
# ruff: noqa: F401  (this module only re-exports)
# .style first: it chooses the matplotlib backend before anything imports pyplot.
from .style import ARCH_COLORS, SERIES_COLORS, SavedFigure, arch_color, arch_palette, savefig, set_style, show_inline
from ..models import arch_order
from .standard import (
    METRIC_LABELS,
    dataset_figures,
    plot_grid_history,
    plot_flaw_steps,
    plot_history,
    plot_metric_bars,
    plot_trajectories,
)
from .study import (
    draw_arch_bars,
    draw_context_curve,
    draw_cost,
    draw_frontier,
    draw_lag_curves,
    draw_metric_demo,
    draw_missing,
    draw_trajectory,
    plot_architecture_panels,
    plot_context_curves,
    plot_costs,
    plot_frontier,
    plot_lag_curves,
    plot_long_context_summary,
    plot_poster_overview,
    plot_trajectory_panels,
)
from .realtime import draw_lookahead_curve, plot_live_session, plot_lookahead_curves
from .mechanisms import plot_mechanisms
