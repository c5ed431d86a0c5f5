"""Sweeps of the long-context study: every (rater lag, setting, seed) trained and scored.

Each point goes through :func:`emotools.experiments.run_grid` (cached,
resumable), several at once in worker processes or as Dask tasks on a
cluster (:mod:`emotools.parallel`; a failed point is tried once more);
rows with only the *delay* step of the post-processing chain are added to
see whether delay compensation substitutes for context. Labels at other lags
come from the stored latent trajectories (:func:`emotools.labels.lag_labels`,
:func:`emotools.sequences.with_labels`): no audio is re-rendered, no feature
re-extracted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import experiments, labels, models, parallel, paths, postprocess
from ..sequences import SequenceRecord
from ..training import FitOptions
from .analysis import trajectory_frame
from .settings import RATE_HZ, Setting, StudyError

__all__ = ["annotation_ceiling", "Sweep", "run_sweep", "delay_only_rows", "postprocessed"]


def annotation_ceiling(frames: Mapping[str, pd.DataFrame], records: Sequence[SequenceRecord], *,
                       split: str = "test") -> dict[str, float]:
    """CCC of gold vs ceiling over ``split``'s recordings concatenated: the best any model can score."""
    ids = {r.id for r in records if r.split == split}
    if not ids:
        raise StudyError("annotation_ceiling", f"no {split} records")
    table = labels.agreement({u: f for u, f in frames.items() if u in ids})
    overall = table[table["utterance"] == "(all)"].set_index("target")
    return {t: float(overall.loc[t, "gold_vs_ceiling"]) for t in overall.index}


@dataclass
class Sweep:
    """Everything the notebook shows of a sweep.

    Attributes:
        results: tidy rows of :func:`emotools.experiments.run_grid` plus
            ``family``, ``setting``, ``knob``, ``value``, ``receptive_field_s``,
            ``context_s``, ``lag_s``, ``parameters``, ``train_seconds``, and
            ``delay_s`` (rows with ``postprocess == "delay"``).
            ``architecture`` holds the setting's name.
        grids: ``{(lag_s, setting name): GridResult}``.
        failures: ``lag_s, setting, reason`` of the points that could not be
            trained (the others go on).
    """

    results: pd.DataFrame
    grids: dict[tuple[float, str], experiments.GridResult] = field(default_factory=dict)
    failures: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["lag_s", "setting", "reason"]))

    def predictions(self, lag_s: float, setting: str, *, seed: int | None = None) -> list[np.ndarray]:
        """Test predictions of one setting at one lag (first seed by default), one ``(time, targets)`` per record."""
        grid = self.grids[(float(lag_s), setting)]
        return next(iter(grid.predictions(seed=seed).values()))

    def seed_predictions(self, lag_s: float, setting: str, *, postprocess: str = "none"
                         ) -> dict[int, list[np.ndarray]]:
        """``{seed: test predictions}`` of one setting at one lag: raw (``"none"``), ``"delay"`` or ``"avec"``.

        ``"avec"`` applies each cell's own post-processing chain (tuned on dev)
        to its test predictions; ``"delay"`` only that chain's delay step.
        """
        grid = self.grids[(float(lag_s), setting)]
        return {c.seed: postprocessed(c, postprocess) for c in grid.cells if c.mode == grid.cells[0].mode}

    def interval_table(self, **kwargs: Any) -> pd.DataFrame:
        """:func:`emotools.experiments.interval_table` of every (lag, setting), rows named by setting (as in results).

        Each setting is its own grid, so each gets its CI alone (no "best"
        mark across settings: the study's paired comparisons are
        :mod:`emotools.study.intervals`). ``kwargs``: ``n_resamples``,
        ``level``, ``seed``.
        """
        frames = [experiments.interval_table(grid, **kwargs).assign(architecture=name)
                  for (_, name), grid in self.grids.items()]
        return pd.concat(frames, ignore_index=True) if frames else experiments.interval_table([], **kwargs)

    def test_records(self, lag_s: float) -> list[SequenceRecord]:
        """The test records (labels at ``lag_s``) in prediction order."""
        return next(g.test_records for (lag, _), g in self.grids.items() if lag == float(lag_s))

    def example_trajectory(self, lag_s: float, frames: Mapping[str, pd.DataFrame], *, index: int = 0,
                           floor: str = "mlp") -> pd.DataFrame:
        """:func:`trajectory_frame` of test record ``index`` with the floor and the best other setting on dev."""
        best = self.best(lag_s, exclude=floor)
        shown = [s for s in dict.fromkeys([floor, best]) if (float(lag_s), s) in self.grids]
        record = self.test_records(lag_s)[index]
        return trajectory_frame(record, {s: self.predictions(lag_s, s)[index] for s in shown},
                                frame=frames.get(record.id))

    def best(self, lag_s: float, *, split: str = "dev", family: str | None = None, exclude: str | None = None) -> str:
        """Name of the setting with the highest mean raw CCC over targets and seeds on ``split`` at ``lag_s``."""
        r = self.results
        r = r[(r["lag_s"] == float(lag_s)) & (r["split"] == split) & (r["postprocess"] == "none")]
        if family is not None:
            r = r[r["family"] == family]
        if exclude is not None:
            r = r[r["family"] != exclude]
        if r.empty:
            raise StudyError("Sweep.best", f"no {split} results at lag {lag_s} s for that selection")
        return str(r.groupby("setting")["ccc"].mean().idxmax())


def _delay_step(chain: postprocess.PostProcessor) -> postprocess.PostProcessor:
    """The chain's first step alone: the delay, tuned on dev on its own."""
    return postprocess.PostProcessor(chain.targets, chain.rate_hz,
                                     [postprocess.TargetSteps(delay_frames=s.delay_frames) for s in chain.steps])


def postprocessed(cell: experiments.Cell, step: str = "none") -> list[np.ndarray]:
    """A cell's test predictions raw (``"none"``), after its delay step only (``"delay"``) or its whole chain.

    ``"none"`` and ``"avec"`` are :func:`emotools.experiments.cell_predictions`.

    Raises:
        StudyError: an unknown ``step``, or the delay step asked of a cell without a chain.
        TrainingError: ``"avec"`` asked of a cell without a chain.
    """
    if step not in ("none", "delay", "avec"):
        raise StudyError("postprocess", f"unknown step {step!r}: use 'none', 'delay' or 'avec'")
    if step != "delay":
        return experiments.cell_predictions(cell, step)  # raw, or the whole chain: as the results rows score them
    if not cell.postprocessor:
        raise StudyError(cell.architecture, f"seed {cell.seed} has no post-processing chain for {step!r}")
    return _delay_step(postprocess.PostProcessor.from_dict(cell.postprocessor)).apply(cell.test_predictions)


def delay_only_rows(cell: experiments.Cell, test_records: Sequence[SequenceRecord]) -> list[dict[str, Any]]:
    """Test scores after only the delay step of the cell's post-processing chain.

    The chain's first step is the delay, tuned on dev on its own, so keeping
    that step alone is the delay-compensation-only post-processing. Rows
    have ``postprocess = "delay"`` and the chosen ``delay_s`` per target.
    """
    if not cell.postprocessor:
        return []
    chain = postprocess.PostProcessor.from_dict(cell.postprocessor)
    rows = experiments.score_rows(test_records, postprocessed(cell, "delay"), cell.targets)
    delays = {t: s.delay_frames / chain.rate_hz for t, s in zip(chain.targets, chain.steps)}
    return [{"split": "test", "postprocess": "delay", **r, "delay_s": delays[r["target"]]} for r in rows]


def _sweep_task(args: tuple) -> tuple[float, Setting, experiments.GridResult, list[dict[str, Any]]]:
    """One (lag, setting): all seeds through run_grid, one torch thread (the unit of parallel work)."""
    lag, setting, records, seeds, run_dir, dataset, label_protocol, fit_options = args
    options = fit_options.replace(chunk_s=setting.chunk_s(fit_options.chunk_s),
                                  model_options={**fit_options.model_options, **setting.model_options})
    grid = experiments.run_grid(records, dataset=dataset, label_protocol=label_protocol,
                                architectures=[setting.family], seeds=seeds, fit_options=options, run_dir=run_dir,
                                jobs=1, progress=False)
    extra = []
    for cell in grid.cells:
        for row in delay_only_rows(cell, grid.test_records):
            extra.append({"dataset": dataset, "label_protocol": label_protocol, "architecture": cell.architecture,
                          "mode": cell.mode, "seed": cell.seed, **row})
    return lag, setting, grid, extra


def _expected_cost(setting: Setting) -> float:
    # Rough relative training cost, to start the longest tasks first.
    base = {"mlp": 1, "tdnn": 2, "dsus": 2, "tcn": 3, "lstm": 5, "attention": 6}.get(setting.family, 5)
    if setting.knob == "chunk_s":
        base *= 0.5 + float(setting.value) / 30.0
    return base


def run_sweep(
    records_by_lag: Mapping[float, Sequence[SequenceRecord]],
    plan: Sequence[tuple[float, Setting]],
    *,
    seeds: Sequence[int] = (0,),
    dataset: str = "ground_truth",
    fit_options: FitOptions | None = None,
    run_dir: Path | None = None,
    jobs: int | None = None,
    scheduler: str | None = None,
    dask_workers: int | None = None,
    security: str | os.PathLike | Any | None = None,
    progress: bool = True,
    rate_hz: float = RATE_HZ,
) -> Sweep:
    """Train and score every (lag, setting) of ``plan`` for every seed.

    Each point goes through :func:`emotools.experiments.run_grid` (so cells
    are cached under ``run_dir/lag<lag>`` and a rerun is instant); ``jobs``
    points train at once in fresh worker processes, one torch thread each.

    Args:
        records_by_lag: ``{lag_s: records}`` (features identical, labels by
            the raters' lag; see :func:`emotools.labels.lag_labels` and
            :func:`emotools.sequences.with_labels`).
        plan: ``(lag_s, setting)`` pairs to train.
        seeds: training seeds.
        dataset: ``dataset`` column of the results.
        fit_options: how every point trains (:class:`emotools.training.FitOptions`;
            default ``FitOptions()``); a setting's knob overrides its
            ``chunk_s`` or ``model_options``.
        run_dir: checkpoint cache (default ``results/checkpoints/long_context``).
        jobs: points trained at once (default: all cores; 1: in this process).
        scheduler, dask_workers, security: train each point as one Dask task
            instead, as :func:`emotools.experiments.run_grid` (``run_dir`` on
            a file system every worker sees).

    Returns:
        A :class:`Sweep`; ``results`` has one row per (lag, setting, target,
        seed, split, postprocess) with ``label_protocol = "annotation, lag <lag> s"``.
    """
    from ..progress import tqdm

    missing = sorted({lag for lag, _ in plan} - set(records_by_lag))
    if missing:
        raise StudyError("run_sweep", f"no records for lag(s) {missing} s")
    if not plan:
        raise StudyError("run_sweep", "empty plan")
    fit_options = fit_options if fit_options is not None else FitOptions()
    run_dir = run_dir or paths.results_dir() / "checkpoints" / "long_context"
    tasks = []
    for lag, setting in sorted(plan, key=lambda p: -_expected_cost(p[1])):
        tasks.append((lag, setting, list(records_by_lag[lag]), tuple(seeds), Path(run_dir) / f"lag{lag:g}",
                      dataset, f"annotation, lag {lag:g} s", fit_options))
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
    done, failures = [], []
    bar = tqdm(total=len(tasks), desc="long-context sweep", unit="setting", disable=not progress)
    for task, result, error in parallel.run_each(_sweep_task, tasks, jobs=jobs, scheduler=scheduler,
                                                 dask_workers=dask_workers, security=security, retries=1,
                                                 name=lambda t: f"lag {t[0]:g} s {t[1].name}"):
        if error is not None:  # one bad point never stops the sweep
            failures.append({"lag_s": float(task[0]), "setting": task[1].name, "reason": parallel.reason(error)})
        else:
            done.append(result)
            failures += [{"lag_s": float(task[0]), "setting": task[1].name,
                          "reason": f"seed {f['seed']}: {f['reason']}"} for f in result[2].failed.to_dict("records")]
        bar.set_postfix_str(f"lag {task[0]:g} s, {task[1].name} done")
        bar.update()
    bar.close()
    failures_frame = pd.DataFrame(failures, columns=["lag_s", "setting", "reason"])
    if not done:
        raise StudyError("run_sweep", "every point of the sweep failed: " + "; ".join(
            f"lag {f['lag_s']:g} s {f['setting']}: {f['reason']}" for f in failures))

    frames, grids = [], {}
    order = {(lag, s): i for i, (lag, s) in enumerate(plan)}
    for lag, setting, grid, extra in sorted(done, key=lambda d: order[(d[0], d[1])]):
        rows = pd.concat([grid.results, pd.DataFrame(extra)], ignore_index=True)
        seconds = {c.seed: c.seconds for c in grid.cells}
        chunk = setting.chunk_s(fit_options.chunk_s)
        rows = rows.assign(
            family=setting.family, setting=setting.name, knob=setting.knob or "", value=setting.value,
            receptive_field_s=setting.receptive_field_s(rate_hz), context_s=setting.context_s(chunk, rate_hz),
            lag_s=float(lag), parameters=models.build(setting.family, **setting.model_options).n_parameters,
            train_seconds=rows["seed"].map(seconds),
        )
        rows["architecture"] = setting.name
        frames.append(rows)
        grids[(float(lag), setting.name)] = grid
    return Sweep(pd.concat(frames, ignore_index=True), grids, failures_frame)
