"""What each label mechanism of corpus v2 demands: frame-local vs context models against the ceiling, per preset.

Issue 17's diagnostics: for each mechanism preset of the built-in corpus
(:data:`emotools.synth.PRESETS`: ``easy`` = corpus v1, one preset per
mechanism, ``default`` = all on), train the same grid (the frame-local
``mlp`` and the context architectures) and report, per preset and target,
on test:

* the annotation ceiling (:func:`emotools.study.sweep.annotation_ceiling`);
* the frame-local model, raw and after the AVEC chain (delay, smoothing,
  bias, scale tuned on dev), each with its 95% CI;
* the best context model chosen on **dev**, raw and after the chain, each
  with its CI;
* the paired CI of (best context model after the chain - frame-local model
  after the chain): the issue's first target, a fair comparison since the
  chain is open to both;
* the best system (chosen on dev among those four) minus the ceiling.

CIs come from :func:`emotools.experiments.interval_table` and
:func:`emotools.experiments.frame_local_comparison` (bootstrap over test
speakers and seeds). :func:`mechanism_study` trains (cells cached per
preset), :func:`mechanism_table` builds the table from trained grids,
:func:`mechanism_markdown` renders it and :func:`mechanism_findings`
states only the differences whose CI excludes 0.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import experiments, paths, pipeline, synth
from ..experiments import GridResult
from ..features import FeatureSpec
from ..training import FitOptions
from .settings import StudyError
from .sweep import annotation_ceiling

__all__ = ["MECHANISM_COLUMNS", "SYSTEMS", "MechanismStudy", "mechanism_study", "mechanism_table",
           "mechanism_markdown", "mechanism_findings", "target_check", "render_targets", "preset_protocol",
           "check_presets", "family_table", "family_markdown"]

log = logging.getLogger(__name__)

#: The four systems of a row: column prefix -> (which model, post-processing).
SYSTEMS: dict[str, tuple[str, str]] = {
    "frame_local_raw": ("frame_local", "none"),
    "frame_local_chain": ("frame_local", "avec"),
    "context_raw": ("context", "none"),
    "context_chain": ("context", "avec"),
}

#: Columns of :func:`mechanism_table`: one row per (preset, target).
MECHANISM_COLUMNS: list[str] = [
    "preset", "target", "ceiling", "frame_local",
    *[c for s in SYSTEMS for c in (f"{s}_model", s, f"{s}_low", f"{s}_high")],
    "difference", "diff_low", "diff_high", "excludes_zero",
    "best_system", "best_model", "best_ccc", "best_minus_ceiling",
    "level", "unit", "n_units", "n_seeds", "n_resamples",
]

def preset_protocol(preset: str) -> str:
    """The ``label_protocol`` of a preset's grid in the results tables: ``"annotation, preset <name>"``."""
    return f"annotation, preset {preset}"


def _preset_of(protocol: str) -> str:
    """The preset name of a :func:`preset_protocol` label."""
    return protocol.removeprefix(preset_protocol(""))


def check_presets(presets: Sequence[str]) -> list[str]:
    """The preset names, checked against :data:`emotools.synth.PRESETS` before any work.

    Raises:
        StudyError: no preset, a repeated one, or a name that is no preset.
    """
    presets = list(presets)
    if not presets:
        raise StudyError("presets", "no corpus preset given")
    for name in presets:
        if name not in synth.PRESETS:
            raise StudyError("presets", f"unknown corpus preset {name!r}; choose from {', '.join(synth.PRESETS)}")
    if len(set(presets)) < len(presets):
        raise StudyError("presets", f"a preset is repeated: {presets}")
    return presets


@dataclass
class MechanismStudy:
    """A trained mechanism study.

    Attributes:
        table: :func:`mechanism_table` (:data:`MECHANISM_COLUMNS`).
        grids: ``{preset: GridResult}`` (each grid's ``label_protocol`` is
            :func:`preset_protocol`).
        ceilings: ``{preset: {target: annotation ceiling on test}}``.
        intervals: :func:`emotools.experiments.interval_table` of every grid.
        comparisons: :func:`emotools.experiments.frame_local_comparison` of every grid.
        data: ``{preset: pipeline.GroundTruth}`` (records, label frames).
        failed: ``preset, reason`` of the presets that could not be loaded or trained.
    """

    table: pd.DataFrame
    grids: dict[str, GridResult]
    ceilings: dict[str, dict[str, float]]
    intervals: pd.DataFrame
    comparisons: pd.DataFrame
    data: dict[str, pipeline.GroundTruth] = field(default_factory=dict)
    failed: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["preset", "reason"]))

    @property
    def results(self) -> pd.DataFrame:
        """Every preset's tidy grid results, one table (:data:`emotools.experiments.RESULT_COLUMNS`)."""
        return pd.concat([g.results for g in self.grids.values()], ignore_index=True)


def _one_preset(preset: str, *, corpus_size: str, corpus_seed: int, spec: FeatureSpec,
                architectures: list[str], seeds: Sequence[int], fit_options: FitOptions | None,
                run_dir: Path, jobs: int | None, scheduler: str | None, device: str | None,
                progress: bool) -> tuple[pipeline.GroundTruth, GridResult, dict[str, float]]:
    """Load one preset's corpus (rendered and extracted once, cached), train its grid, measure its ceiling."""
    data = pipeline.load_ground_truth(corpus_size, corpus_seed, spec=spec, corpus_preset=preset, jobs=jobs,
                                      scheduler=scheduler)
    grid = experiments.run_grid(data.records, dataset="ground_truth", label_protocol=preset_protocol(preset),
                                architectures=architectures, seeds=seeds, fit_options=fit_options, run_dir=run_dir,
                                jobs=jobs, scheduler=scheduler, device=device, progress=progress)
    return data, grid, annotation_ceiling(data.label_frames, data.records)


def mechanism_study(
    presets: Sequence[str],
    *,
    corpus_size: str = "default",
    corpus_seed: int = 0,
    architectures: Sequence[str] = ("mlp", "tcn"),
    seeds: Sequence[int] = (0,),
    fit_options: FitOptions | None = None,
    spec: FeatureSpec | None = None,
    frame_local: str = "mlp",
    run_root: str | os.PathLike | None = None,
    name: str = "corpus_v2",
    jobs: int | None = None,
    scheduler: str | None = None,
    device: str | None = None,
    n_resamples: int = 2000,
    progress: bool = True,
) -> MechanismStudy:
    """Train the same grid on each preset's corpus and tabulate what each mechanism demands.

    A preset that fails (rendering, extraction, every cell) is named in one
    warning and in :attr:`MechanismStudy.failed`; the others go on.

    Args:
        presets: corpus presets (:data:`emotools.synth.PRESETS`), e.g.
            ``["easy", "levels", "integration", "default"]``.
        corpus_size: built-in corpus size (``smoke``, ``default``, ``full``).
        corpus_seed: seed of every preset's rendered corpus.
        architectures: the context architectures; ``frame_local`` is added
            when missing.
        seeds: training seeds.
        fit_options: how every cell trains (default ``FitOptions()``).
        spec: features (default: eGeMAPS functionals over 1 s windows, 0.1 s hop).
        frame_local: the frame-local architecture compared against.
        run_root: folder of the per-preset run folders
            ``<name>-<size>-seed<K>-<preset>`` (default ``results/checkpoints``).
        name: prefix of the run folders.
        jobs, scheduler, device: as :func:`emotools.experiments.run_grid`.
        n_resamples: bootstrap resamples of every CI.

    Returns:
        A :class:`MechanismStudy`.

    Raises:
        StudyError: a bad preset name (before anything is rendered or
            trained), or no context architecture.
        Exception: the first preset's error when no preset could be trained.
    """
    presets = check_presets(presets)
    archs = list(dict.fromkeys([frame_local, *architectures]))
    if len(archs) < 2:
        raise StudyError("architectures", f"needs a context architecture besides {frame_local!r}")
    spec = spec or FeatureSpec("eGeMAPSv02", "windowed", window=1.0, hop=0.1)
    root = Path(run_root) if run_root is not None else paths.results_dir() / "checkpoints"
    grids, ceilings, data, failed, errors = {}, {}, {}, [], []
    for preset in presets:
        try:
            data[preset], grids[preset], ceilings[preset] = _one_preset(
                preset, corpus_size=corpus_size, corpus_seed=corpus_seed, spec=spec, architectures=archs,
                seeds=seeds, fit_options=fit_options, run_dir=root / f"{name}-{corpus_size}-seed{corpus_seed}-{preset}",
                jobs=jobs, scheduler=scheduler, device=device, progress=progress)
        except Exception as error:  # one preset never stops the study
            failed.append({"preset": preset, "reason": f"{type(error).__name__}: {error}"})
            errors.append(error)
            log.warning("corpus preset %s: left out of the mechanism study: %s", preset, failed[-1]["reason"])
    if not grids:
        raise errors[0]
    intervals = experiments.interval_table(list(grids.values()), n_resamples=n_resamples)
    comparisons = experiments.frame_local_comparison(list(grids.values()), frame_local=frame_local,
                                                     n_resamples=n_resamples)
    table = mechanism_table(grids, ceilings, frame_local=frame_local, intervals=intervals, comparisons=comparisons)
    return MechanismStudy(table, grids, ceilings, intervals, comparisons, data,
                          pd.DataFrame(failed, columns=["preset", "reason"]))


# ------------------------------------------------------------------------ the table


def _dev_means(grid: GridResult, target: str) -> pd.Series:
    """Mean dev CCC over seeds per (architecture, postprocess) for one target."""
    r = grid.results
    r = r[(r["split"] == "dev") & (r["target"] == target) & (r["mode"] == grid.cells[0].mode)]
    return r.groupby(["architecture", "postprocess"])["ccc"].mean()


def _system(intervals: pd.DataFrame, arch: str, target: str, kind: str) -> dict[str, float]:
    """One system's test CCC and CI from an :func:`~emotools.experiments.interval_table`."""
    row = intervals[(intervals["architecture"] == arch) & (intervals["target"] == target)
                    & (intervals["postprocess"] == kind)]
    if row.empty:
        return {"ccc": math.nan, "low": math.nan, "high": math.nan}
    first = row.iloc[0]
    return {"ccc": float(first["ccc"]), "low": float(first["ccc_low"]), "high": float(first["ccc_high"])}


def _preset_rows(preset: str, grid: GridResult, ceiling: Mapping[str, float], *, frame_local: str,
                 intervals: pd.DataFrame, comparisons: pd.DataFrame) -> list[dict[str, Any]]:
    """The table's rows of one preset (its grid's rows of ``intervals`` and ``comparisons``): one per target."""
    protocol = grid.results["label_protocol"].iloc[0]
    intervals = intervals[intervals["label_protocol"] == protocol]
    comparisons = comparisons[comparisons["label_protocol"] == protocol]
    rows = []
    for target in grid.cells[0].targets:
        pair = comparisons[comparisons["target"] == target].set_index("postprocess")
        if not {"none", "avec"} <= set(pair.index):
            raise StudyError(preset, f"no {frame_local} and context model scored raw and after the chain on {target}")
        models = {"frame_local": frame_local, "context": None}
        row: dict[str, Any] = {"preset": preset, "target": target, "ceiling": ceiling.get(target, math.nan),
                               "frame_local": frame_local}
        dev = _dev_means(grid, target)
        for prefix, (who, kind) in SYSTEMS.items():
            arch = models[who] or str(pair.loc[kind, "context_model"])
            ci = _system(intervals, arch, target, kind)
            row |= {f"{prefix}_model": arch, prefix: ci["ccc"], f"{prefix}_low": ci["low"],
                    f"{prefix}_high": ci["high"]}
        best = max(SYSTEMS, key=lambda s: dev.get((row[f"{s}_model"], SYSTEMS[s][1]), -math.inf))
        chain = pair.loc["avec"]
        row |= {"difference": float(chain["difference"]), "diff_low": float(chain["diff_low"]),
                "diff_high": float(chain["diff_high"]), "excludes_zero": bool(chain["excludes_zero"]),
                "best_system": best, "best_model": row[f"{best}_model"], "best_ccc": row[best],
                "best_minus_ceiling": row[best] - row["ceiling"], "level": float(chain["level"]),
                "unit": chain["unit"], "n_units": int(chain["n_units"]), "n_seeds": int(chain["n_seeds"]),
                "n_resamples": int(chain["n_resamples"])}
        rows.append(row)
    return rows


def mechanism_table(grids: Mapping[str, GridResult], ceilings: Mapping[str, Mapping[str, float]], *,
                    frame_local: str = "mlp", intervals: pd.DataFrame | None = None,
                    comparisons: pd.DataFrame | None = None, n_resamples: int = 2000) -> pd.DataFrame:
    """Per preset and target: ceiling, frame-local and best context model (raw, chain) with CIs, their difference.

    Every choice is made on dev (the context model per target and
    post-processing; the best of the four systems); the CCCs are test CCCs,
    mean over seeds. ``difference`` is the paired bootstrap estimate of
    (context + chain - frame-local + chain) with its CI (``diff_low``,
    ``diff_high``); ``excludes_zero`` says it is resolved. With a single
    test unit every CI is NaN.

    Args:
        grids: ``{preset: GridResult}``, each with ``frame_local`` and at least
            one other architecture, trained with the AVEC chain.
        ceilings: ``{preset: {target: annotation ceiling}}``.
        intervals, comparisons: :func:`~emotools.experiments.interval_table`
            and :func:`~emotools.experiments.frame_local_comparison` of the
            grids (each grid has its own ``label_protocol``); computed here
            with ``n_resamples`` when not given.

    Returns:
        One row per (preset, target), :data:`MECHANISM_COLUMNS`.

    Raises:
        StudyError: a grid without ``frame_local``, a context model, or the chain.
    """
    for preset, grid in grids.items():
        if not grid.cells:
            raise StudyError(preset, "the grid has no trained cell")
    protocols = [g.results["label_protocol"].iloc[0] for g in grids.values()]
    if len(set(protocols)) < len(protocols):
        raise StudyError("grids", f"each preset's grid needs its own label_protocol, got {protocols}")
    if intervals is None:
        intervals = experiments.interval_table(list(grids.values()), n_resamples=n_resamples)
    if comparisons is None:
        comparisons = experiments.frame_local_comparison(list(grids.values()), frame_local=frame_local,
                                                         n_resamples=n_resamples)
    rows = []
    for preset, grid in grids.items():
        rows += _preset_rows(preset, grid, ceilings.get(preset, {}), frame_local=frame_local, intervals=intervals,
                             comparisons=comparisons)
    return pd.DataFrame(rows, columns=MECHANISM_COLUMNS)


# ------------------------------------------------------------------------ rendering


def _ci(low: float, high: float) -> str:
    return "n/a" if np.isnan(low) or np.isnan(high) else f"[{low:.3f}, {high:.3f}]"


def _score(row: Mapping[str, Any], prefix: str, *, model: bool = False) -> str:
    name = f" ({row[f'{prefix}_model']})" if model else ""
    return f"{row[prefix]:.3f} {_ci(row[f'{prefix}_low'], row[f'{prefix}_high'])}{name}"


def _resolved(row: Mapping[str, Any]) -> str:
    if not row["n_resamples"]:
        return "no CI"
    return "yes" if row["excludes_zero"] else "not resolved"


def mechanism_markdown(table: pd.DataFrame) -> str:
    """The table as markdown (test CCC with its 95% CI) and a line saying how the CIs were made."""
    if table.empty:
        return ""
    fl = table["frame_local"].iloc[0]
    rows = [{"preset": r["preset"], "target": r["target"], "ceiling": f"{r['ceiling']:.3f}",
             f"{fl} raw": _score(r, "frame_local_raw"), f"{fl} + chain": _score(r, "frame_local_chain"),
             "context raw (dev choice)": _score(r, "context_raw", model=True),
             "context + chain (dev choice)": _score(r, "context_chain", model=True),
             f"context + chain - {fl} + chain": f"{r['difference']:.3f} {_ci(r['diff_low'], r['diff_high'])}",
             "resolved": _resolved(r), "best (dev) - ceiling": f"{r['best_minus_ceiling']:.3f}"}
            for r in table.to_dict("records")]
    first = table.iloc[0]
    low, high = int(table["n_units"].min()), int(table["n_units"].max())  # presets may differ (held-out voices)
    units = f"{low}" if low == high else f"{low}-{high} (per preset)"
    how = (f"{first['level']:.0%} CIs: bootstrap over the {units} test {first['unit']}s"
           f"{' and the ' + str(first['n_seeds']) + ' seeds' if first['n_seeds'] > 1 else ''}, "
           f"{first['n_resamples']} resamples" if first["n_resamples"] else
           f"no CIs: only {first['n_units']} test {first['unit']}")
    return (pd.DataFrame(rows).to_markdown(index=False) +
            f"\n\nTest CCC (one CCC over the test recordings concatenated, mean over seeds) [{how}]. "
            "\"chain\": the AVEC post-processing chain (delay, smoothing, bias, scale) tuned on dev. The context "
            "model is the best on dev per target and post-processing; the difference is paired (same resampled "
            "test units) and \"resolved\" when its CI excludes 0. \"best (dev) - ceiling\": the test CCC of the "
            "best of the four systems on dev minus the annotation ceiling (a point estimate).\n")


def _finding(row: Mapping[str, Any]) -> str | None:
    """One sentence for a resolved difference of one (preset, target); None when not resolved."""
    if not row["excludes_zero"]:
        return None
    verb = "beats" if row["difference"] > 0 else "falls behind"
    return (f"`{row['preset']}`, {row['target']}: the best context model after the chain "
            f"(`{row['context_chain_model']}`, {row['context_chain']:.3f}) {verb} `{row['frame_local']}` + chain "
            f"({row['frame_local_chain']:.3f}) by {abs(row['difference']):.3f} CCC "
            f"{_ci(row['diff_low'], row['diff_high'])}; it stays {row['ceiling'] - row['context_chain']:.3f} "
            f"below the annotation ceiling ({row['ceiling']:.3f}).")


def mechanism_findings(table: pd.DataFrame) -> str:
    """Markdown bullets stating only the differences whose CI excludes 0, then which were not resolved."""
    stated = [f"- {s}" for r in table.to_dict("records") if (s := _finding(r))]
    open_ = [f"`{r['preset']}` {r['target']}" for r in table.to_dict("records") if not r["excludes_zero"]]
    if open_:
        stated.append("- Not resolved (the CI of context + chain minus frame-local + chain includes 0, or there "
                      f"is no CI): {', '.join(open_)}.")
    return "\n".join(stated)


def target_check(table: pd.DataFrame, *, preset: str = "default", min_gain: float = 0.10,
                 min_headroom: float = 0.05) -> dict[str, Any]:
    """Issue 17's targets on one preset's rows.

    ``gain``: the best context model (after the chain) beats the frame-local
    model + chain by at least ``min_gain`` on every target, with the CI
    excluding 0. ``headroom``: the best system (dev choice) stays at least
    ``min_headroom`` below the ceiling on at least one target.

    Raises:
        StudyError: the table has no row of ``preset``.
    """
    part = table[table["preset"] == preset]
    if part.empty:
        raise StudyError(preset, f"no rows in the mechanism table (presets: {sorted(set(table['preset']))})")
    gain = bool(((part["difference"] >= min_gain) & part["excludes_zero"]).all())
    headroom = bool((part["best_minus_ceiling"] <= -min_headroom).any())
    return {"preset": preset, "gain_met": gain, "headroom_met": headroom, "min_gain": min_gain,
            "min_headroom": min_headroom, "rows": part.to_dict("records")}


def render_targets(check: Mapping[str, Any]) -> str:
    """Two markdown bullets: each of :func:`target_check`'s targets, met or not, with the numbers behind it."""
    rows = check["rows"]
    gains = "; ".join(f"{r['target']} {r['difference']:.3f} {_ci(r['diff_low'], r['diff_high'])}" for r in rows)
    gaps = "; ".join(f"{r['target']} {r['best_minus_ceiling']:.3f} (`{r['best_model']}` "
                     f"{'raw' if SYSTEMS[r['best_system']][1] == 'none' else '+ chain'})" for r in rows)
    return (f"- Target 1 (`{check['preset']}`: best context model + chain beats `{rows[0]['frame_local']}` + chain by "
            f">= {check['min_gain']:.2f} CCC on every target, CI excluding 0): "
            f"**{'met' if check['gain_met'] else 'not met'}**: {gains}.\n"
            f"- Target 2 (the best system on dev stays >= {check['min_headroom']:.2f} below the annotation ceiling "
            f"on at least one target): **{'met' if check['headroom_met'] else 'not met'}**: best - ceiling {gaps}.")


# ------------------------------------------------------------------------ every family per preset


def family_table(intervals: pd.DataFrame, *, postprocess: str = "avec") -> pd.DataFrame:
    """Every architecture's test CCC (mean over seeds) with its CI, per preset and target: who copes with what.

    From the study's :func:`~emotools.experiments.interval_table` rows of one
    post-processing (``"avec"``: after the chain, ``"none"``: raw).
    ``tied_best`` marks the architectures whose paired CI of (best - it)
    includes 0, the best included: a description of test, not a selection
    (the mechanism table's context model is the one chosen on dev).

    Returns:
        Columns ``preset, target, architecture, ccc, ccc_low, ccc_high, tied_best``.
    """
    part = intervals[intervals["postprocess"] == postprocess]
    table = pd.DataFrame({
        "preset": part["label_protocol"].map(_preset_of), "target": part["target"],
        "architecture": part["architecture"], "ccc": part["ccc"], "ccc_low": part["ccc_low"],
        "ccc_high": part["ccc_high"],
        "tied_best": part["diff_to_best"].eq(0) | part["separable_from_best"].eq(False),
    })
    return table.reset_index(drop=True)


def family_markdown(table: pd.DataFrame) -> str:
    """:func:`family_table` as markdown: one row per (preset, target), one column per architecture, ties in bold."""
    if table.empty:
        return ""
    cells = table.assign(cell=[f"{'**' if t else ''}{c:.3f}{'**' if t else ''} {_ci(lo, hi)}" for c, lo, hi, t in
                               zip(table["ccc"], table["ccc_low"], table["ccc_high"], table["tied_best"])])
    wide = cells.pivot(index=["preset", "target"], columns="architecture", values="cell")
    order = list(dict.fromkeys(table["preset"]))
    wide = wide.reindex(sorted(wide.index, key=lambda k: (order.index(k[0]), k[1])))
    return (wide.reset_index().to_markdown(index=False) +
            "\n\nTest CCC (mean over seeds) [95% CI, as in the table above]; **bold**: the best on test and every "
            "architecture whose paired CI of (best - it) includes 0.\n")
