"""The long-context study: how much temporal context each architecture uses, and what it costs.

The title of the original project is "Efficient Modeling of Long Temporal
Contexts"; it never varied context nor measured efficiency. This package
does both, on the built-in ground-truth corpus where the raters' lag and
smoothing are known (:mod:`emotools.synth`, :mod:`emotools.labels`):

* :mod:`~emotools.study.settings`: one context knob per family, the plan;
* :mod:`~emotools.study.sweep`: every (rater lag, setting, seed) trained and scored;
* :mod:`~emotools.study.cost`: time and peak memory against recording length
  (the cost harness ``benchmarks/bench_models.py`` shares);
* :mod:`~emotools.study.analysis`: context curves, saturation, lag table,
  efficiency frontier, the tables the poster draws;
* :mod:`~emotools.study.intervals`: paired bootstrap CIs (test speakers, seeds) of the comparisons;
* :mod:`~emotools.study.findings`: the findings table and the prose rendered from it;
* :mod:`~emotools.study.poster`: every notebook's results, read for the poster.

Labels at other lags: :func:`emotools.labels.lag_labels`; the same records
with those labels: :func:`emotools.sequences.with_labels`.
"""

from .analysis import (
                       TRAJECTORY_COLUMNS,
                       StudyViews,
                       ceiling_table,
                       ceilings_from_table,
                       context_curve,
                       frontier_table,
                       lag_table,
                       pareto_front,
                       saturation,
                       shortfall,
                       study_lag,
                       study_views,
                       trajectory_frame,
)
from .cost import measure_costs, peak_memory
from .findings import FINDING_COLUMNS, conclusions, findings_table, render_findings
from .intervals import INTERVAL_COLUMNS, Comparison, comparisons, study_intervals, with_intervals
from .poster import architecture_results, collect_results
from .settings import (
                       KNOBS,
                       RATE_HZ,
                       Setting,
                       StudyError,
                       make_plan,
                       plan_table,
                       settings_from_grid,
                       tdnn_contexts,
                       unique_settings,
)
from .sweep import Sweep, annotation_ceiling, delay_only_rows, postprocessed, run_sweep

__all__ = [
    "StudyError", "KNOBS", "RATE_HZ", "Setting", "tdnn_contexts", "settings_from_grid", "unique_settings",
    "make_plan", "plan_table",
    "annotation_ceiling", "Sweep", "run_sweep", "delay_only_rows", "postprocessed",
    "peak_memory", "measure_costs",
    "context_curve", "saturation", "lag_table", "shortfall", "pareto_front", "frontier_table", "study_lag",
    "StudyViews", "study_views", "ceiling_table", "ceilings_from_table", "TRAJECTORY_COLUMNS", "trajectory_frame",
    "FINDING_COLUMNS", "findings_table", "render_findings", "conclusions",
    "INTERVAL_COLUMNS", "Comparison", "comparisons", "study_intervals", "with_intervals",
    "collect_results", "architecture_results",
]
