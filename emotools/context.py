"""The long-context study: how much temporal context each architecture uses, and what it costs.

The title of the original project is "Efficient Modeling of Long Temporal
Contexts"; it never varied context nor measured efficiency. This module does
both, on the built-in ground-truth corpus where the raters' lag and
smoothing are known (:mod:`emotools.synth`, :mod:`emotools.labels`):

* **settings** (:class:`Setting`): one context knob per family: the number
  of TDNN layers (each new layer doubles the splice offsets, Peddinti-style
  sub-sampling), the local attention window, the LSTM's training chunk
  length, the TCN / DSUS levels; the frame-wise MLP is the floor.
* **sweeps** (:func:`run_sweep`): every (rater lag, setting, seed) trained
  and scored by :func:`emotools.experiments.run_grid` (cached, resumable),
  several at once in worker processes; rows with only the *delay* step of
  the post-processing chain are added to see whether delay compensation
  substitutes for context. Labels at other lags come from the stored latent
  trajectories (:func:`lag_labels`, :func:`with_labels`): no audio is
  re-rendered, no feature re-extracted.
* **cost** (:func:`measure_costs`): inference time and peak memory against
  recording length, and training time per epoch, in a fresh interpreter
  (memory method in :func:`peak_memory`).
* **analysis**: context curves (:func:`context_curve`), where context stops
  helping (:func:`saturation`), the lag table (:func:`lag_table`), the
  efficiency frontier (:func:`frontier_table`, :func:`pareto_front`), and
  conclusions written from the numbers (:func:`conclusions`).
* **poster** helpers: :func:`collect_results` reads every notebook's results
  (missing ones are reported, not fatal); :func:`trajectory_frame` stores an
  example test trajectory in a tidy table.
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import experiments, labels, models, paths, postprocess
from .sequences import SequenceRecord

__all__ = [
    "ContextError",
    "KNOBS",
    "Setting",
    "tdnn_contexts",
    "settings_from_grid",
    "unique_settings",
    "make_plan",
    "plan_table",
    "lag_model",
    "lag_labels",
    "with_labels",
    "annotation_ceiling",
    "Sweep",
    "run_sweep",
    "delay_only_rows",
    "context_curve",
    "saturation",
    "lag_table",
    "shortfall",
    "peak_memory",
    "measure_costs",
    "pareto_front",
    "frontier_table",
    "study_lag",
    "StudyViews",
    "study_views",
    "conclusions",
    "TRAJECTORY_COLUMNS",
    "trajectory_frame",
    "ceiling_table",
    "ceilings_from_table",
    "DATASET_NOTEBOOKS",
    "RESULT_NAMES",
    "collect_results",
    "architecture_results",
]

RATE_HZ = 10.0

#: The context knob of each family: what a setting's ``value`` means.
KNOBS: dict[str, str | None] = {
    "mlp": None,  # no context: the floor
    "tdnn": "layers",  # TDNN layers, splice offsets doubling per layer
    "attention": "window",  # local attention window, frames either side
    "lstm": "chunk_s",  # training chunk length in seconds (context is unbounded at inference)
    "tcn": "levels",  # dilated residual levels (dilation 2**level)
    "dsus": "levels",  # down/up-sampling levels
}

_KNOB_LABELS = {"layers": "{v} layers", "window": "window {v}", "chunk_s": "chunk {v:g} s", "levels": "{v} levels"}


class ContextError(ValueError):
    """A bad setting, grid or table for the long-context study; ``str`` says which and why."""


# --------------------------------------------------------------------------- settings


def tdnn_contexts(layers: int) -> tuple[tuple[int, ...], ...]:
    """Splice offsets of a ``layers``-deep TDNN whose offsets double per layer.

    Layer 1 splices ``-2..2``; layer ``i > 1`` splices ``(-3 d, 0, 3 d)`` with
    ``d = 2**(i - 2)``: sparse taps (sub-sampling, Peddinti et al. 2015) so
    the receptive field grows geometrically, ``5 + 6 (2**(layers-1) - 1)``
    frames, while the cost grows by one layer. ``layers=4`` is the
    registry's default TDNN (47 frames).

    >>> tdnn_contexts(3)
    ((-2, -1, 0, 1, 2), (-3, 0, 3), (-6, 0, 6))
    """
    if int(layers) < 1:
        raise ContextError(f"a TDNN needs at least 1 layer, got {layers}")
    out: list[tuple[int, ...]] = [(-2, -1, 0, 1, 2)]
    for i in range(2, int(layers) + 1):
        d = 3 * 2 ** (i - 2)
        out.append((-d, 0, d))
    return tuple(out)


@dataclass(frozen=True)
class Setting:
    """One point of a context sweep: a family and the value of its context knob.

    Attributes:
        family: registered model name (:data:`emotools.models.MODELS`).
        knob: what is varied (:data:`KNOBS`); None: the default config.
        value: the knob's value (layers, frames, seconds, levels).
    """

    family: str
    knob: str | None = None
    value: float | int | None = None

    def __post_init__(self) -> None:
        if self.family not in models.MODELS:
            raise ContextError(f"unknown family {self.family!r}; known: {', '.join(models.MODELS)}")
        if self.knob is None:
            return
        if self.value is None:
            raise ContextError(f"{self.family}: knob {self.knob!r} needs a value")
        if self.knob == "layers" and "contexts" not in _fields(self.family):
            raise ContextError(f"{self.family}: has no TDNN layers to vary")
        if self.knob not in ("layers", "chunk_s") and self.knob not in _fields(self.family):
            raise ContextError(f"{self.family}: unknown knob {self.knob!r}; "
                               f"config fields: {sorted(_fields(self.family))}")
        if not float(self.value) > 0:
            raise ContextError(f"{self.family}: {self.knob} must be > 0, got {self.value}")

    @property
    def name(self) -> str:
        """Display name, e.g. ``"tdnn (4 layers)"``; the family alone for the default config."""
        if self.knob is None:
            return self.family
        label = _KNOB_LABELS.get(self.knob, self.knob + " {v}").format(v=self.value)
        return f"{self.family} ({label})"

    @property
    def model_options(self) -> dict[str, Any]:
        """Config overrides for :func:`emotools.models.build` / ``training.fit(model_options=...)``."""
        if self.knob is None or self.knob == "chunk_s":
            return {}
        if self.knob == "layers":
            return {"contexts": tdnn_contexts(int(self.value))}
        return {self.knob: int(self.value) if float(self.value).is_integer() else self.value}

    def chunk_s(self, default: float | None) -> float | None:
        """The training chunk length this setting trains with."""
        return float(self.value) if self.knob == "chunk_s" else default

    def receptive_field_frames(self) -> int | None:
        """Context of one output frame in input frames (None: unbounded)."""
        return models.build(self.family, **self.model_options).receptive_field

    def receptive_field_s(self, rate_hz: float = RATE_HZ) -> float:
        """:meth:`receptive_field_frames` in seconds (``inf`` if unbounded)."""
        rf = self.receptive_field_frames()
        return math.inf if rf is None else rf / rate_hz

    def context_s(self, chunk_s: float | None, rate_hz: float = RATE_HZ) -> float:
        """The study's x axis: the receptive field, or for unbounded models the training chunk length.

        A bidirectional LSTM sees the whole recording at inference but never
        learnt to use more than one training chunk of context.
        """
        rf = self.receptive_field_s(rate_hz)
        if math.isfinite(rf):
            return rf
        chunk = self.chunk_s(chunk_s)
        return math.inf if chunk is None else float(chunk)

    def config_key(self) -> str:
        """The built config as JSON: two settings with the same key build the same network."""
        return json.dumps(models.build(self.family, **self.model_options).config.to_dict(), sort_keys=True)


def _fields(family: str) -> set[str]:
    import dataclasses

    return {f.name for f in dataclasses.fields(models.MODELS[family])}


def unique_settings(settings: Iterable[Setting], *, chunk_s: float | None = None) -> list[Setting]:
    """``settings`` without repeats: the first of those that build the same network and train on the same chunks."""
    seen, out = set(), []
    for s in settings:
        key = (s.config_key(), s.chunk_s(chunk_s))
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def make_plan(settings: Sequence[Setting], *, study_lag_s: float, lags_s: Sequence[float] = (),
              lag_settings: Sequence[Setting] = ()) -> list[tuple[float, Setting]]:
    """``(lag, setting)`` pairs: every setting at the study's lag, ``lag_settings`` at every lag too.

    >>> [(lag, s.name) for lag, s in make_plan([Setting("mlp")], study_lag_s=3.0, lags_s=[0.0, 3.0],
    ...                                        lag_settings=[Setting("tdnn", "layers", 2)])]
    [(3.0, 'mlp'), (0.0, 'tdnn (2 layers)'), (3.0, 'tdnn (2 layers)')]
    """
    plan = [(float(study_lag_s), s) for s in settings]
    for lag in dict.fromkeys([float(x) for x in lags_s] + [float(study_lag_s)]):
        plan += [(lag, s) for s in lag_settings if (lag, s) not in plan]
    return plan


def plan_table(plan: Sequence[tuple[float, Setting]], *, chunk_s: float | None,
               rate_hz: float = RATE_HZ) -> pd.DataFrame:
    """The sweep's plan as a table: lag, setting, knob, value, receptive field, context, parameters."""
    rows = []
    for lag, s in plan:
        model = models.build(s.family, **s.model_options)
        rows.append({"lag_s": lag, "setting": s.name, "family": s.family, "knob": s.knob or "-",
                     "value": s.value, "receptive_field_s": s.receptive_field_s(rate_hz),
                     "context_s": s.context_s(chunk_s, rate_hz), "chunk_s": s.chunk_s(chunk_s),
                     "parameters": model.n_parameters})
    return pd.DataFrame(rows)


def settings_from_grid(grid: Mapping[str, Sequence[float | int]]) -> list[Setting]:
    """Settings from ``{family: [knob values]}``; an empty list is the family's default config.

    >>> [s.name for s in settings_from_grid({"mlp": [], "tdnn": [2, 4]})]
    ['mlp', 'tdnn (2 layers)', 'tdnn (4 layers)']
    """
    out = []
    for family, values in grid.items():
        if family not in models.MODELS:
            raise ContextError(f"unknown family {family!r} in the grid; known: {', '.join(models.MODELS)}")
        if not values:
            out.append(Setting(family))
            continue
        knob = KNOBS.get(family)
        if knob is None:
            raise ContextError(f"{family}: no context knob to sweep (give [] for its default config)")
        out += [Setting(family, knob, v) for v in values]
    return out


# --------------------------------------------------------------------------- labels at other lags


def lag_model(lag_s: float, *, seed: int, reference: labels.AnnotationModel | None = None) -> labels.AnnotationModel:
    """The annotation model with mean rater lag ``lag_s``, all else as ``reference``.

    The raters' lag spread scales with the lag (``spread = lag * reference
    spread / reference lag``): no spread at lag 0, and ``lag_s`` equal to the
    reference lag gives the reference model itself, i.e. the corpus' own labels.
    """
    ref = reference or labels.AnnotationModel(seed=seed)
    if not (math.isfinite(lag_s) and lag_s >= 0):
        raise ContextError(f"lag must be a finite number >= 0 s, got {lag_s!r}")
    spread = lag_s * ref.lag_spread / ref.lag_mean if ref.lag_mean > 0 else ref.lag_spread
    import dataclasses

    return dataclasses.replace(ref, lag_mean=float(lag_s), lag_spread=float(spread), seed=int(seed))


def lag_labels(table: pd.DataFrame, lag_s: float, *, seed: int) -> dict[str, pd.DataFrame]:
    """Label frames of an emotools-rendered corpus as raters with mean lag ``lag_s`` would give them."""
    return labels.relabel(table, model=lag_model(lag_s, seed=seed))


def with_labels(records: Sequence[SequenceRecord], frames: Mapping[str, pd.DataFrame]) -> list[SequenceRecord]:
    """The same records (same features) with labels taken from other label frames.

    Each record's frames are matched by time (records keep the label grid's
    timestamps), so features never have to be aligned again.

    Raises:
        ContextError: a record without a label frame, or times the frame lacks.
    """
    out = []
    for rec in records:
        if rec.id not in frames:
            raise ContextError(f"{rec.id}: no label frame")
        frame = frames[rec.id]
        t = frame["time"].to_numpy(np.float64)
        idx = np.clip(np.searchsorted(t, rec.time - 1e-6), 0, len(t) - 1)
        if len(t) == 0 or np.abs(t[idx] - rec.time).max() > 1e-6:
            raise ContextError(f"{rec.id}: the label frame lacks some of the record's times")
        y = frame[list(rec.target_names)].to_numpy(np.float32)[idx]
        out.append(rec.replace(y=y))
    return out


def annotation_ceiling(frames: Mapping[str, pd.DataFrame], records: Sequence[SequenceRecord], *,
                       split: str = "test") -> dict[str, float]:
    """CCC of gold vs ceiling over ``split``'s recordings concatenated: the best any model can score."""
    ids = {r.id for r in records if r.split == split}
    if not ids:
        raise ContextError(f"no {split} records")
    table = labels.agreement({u: f for u, f in frames.items() if u in ids})
    overall = table[table["utterance"] == "(all)"].set_index("target")
    return {t: float(overall.loc[t, "gold_vs_ceiling"]) for t in overall.index}


# --------------------------------------------------------------------------- sweeps


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
            raise ContextError(f"no {split} results at lag {lag_s} s for that selection")
        return str(r.groupby("setting")["ccc"].mean().idxmax())


def delay_only_rows(cell: experiments.Cell, test_records: Sequence[SequenceRecord]) -> list[dict[str, Any]]:
    """Test scores after only the delay step of the cell's post-processing chain.

    The chain's first step is the delay, tuned on dev on its own, so keeping
    that step alone is the delay-compensation-only post-processing. Rows
    have ``postprocess = "delay"`` and the chosen ``delay_s`` per target.
    """
    if not cell.postprocessor:
        return []
    chain = postprocess.PostProcessor.from_dict(cell.postprocessor)
    only = postprocess.PostProcessor(chain.targets, chain.rate_hz,
                                     [postprocess.TargetSteps(delay_frames=s.delay_frames) for s in chain.steps])
    rows = experiments.score_rows(test_records, only.apply(cell.test_predictions), cell.targets)
    delays = {t: s.delay_frames / chain.rate_hz for t, s in zip(chain.targets, chain.steps)}
    return [{"split": "test", "postprocess": "delay", **r, "delay_s": delays[r["target"]]} for r in rows]


def _sweep_task(args: tuple) -> tuple[float, Setting, experiments.GridResult, list[dict[str, Any]]]:
    """One (lag, setting): all seeds through run_grid, one torch thread (the unit of parallel work)."""
    lag, setting, records, seeds, run_dir, dataset, protocol, fit_options = args
    options = dict(fit_options)
    options["chunk_s"] = setting.chunk_s(options.get("chunk_s", 30.0))
    if setting.model_options:
        options["model_options"] = {**options.get("model_options", {}), **setting.model_options}
    grid = experiments.run_grid(records, dataset=dataset, protocol=protocol, architectures=[setting.family],
                                seeds=seeds, run_dir=run_dir, jobs=1, progress=False, **options)
    extra = []
    for cell in grid.cells:
        for row in delay_only_rows(cell, grid.test_records):
            extra.append({"dataset": dataset, "protocol": protocol, "architecture": cell.architecture,
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
    run_dir: Path | None = None,
    jobs: int | None = None,
    progress: bool = True,
    rate_hz: float = RATE_HZ,
    **fit_options: Any,
) -> Sweep:
    """Train and score every (lag, setting) of ``plan`` for every seed.

    Each point goes through :func:`emotools.experiments.run_grid` (so cells
    are cached under ``run_dir/lag<lag>`` and a rerun is instant); ``jobs``
    points train at once in fresh worker processes, one torch thread each.

    Args:
        records_by_lag: ``{lag_s: records}`` (features identical, labels by
            the raters' lag; see :func:`lag_labels` and :func:`with_labels`).
        plan: ``(lag_s, setting)`` pairs to train.
        seeds: training seeds.
        dataset: ``dataset`` column of the results.
        run_dir: checkpoint cache (default ``results/checkpoints/long_context``).
        jobs: points trained at once (default: all cores; 1: in this process).
        fit_options: passed on to :func:`emotools.training.fit` (epochs,
            chunk_s, normalization, loss, ...).

    Returns:
        A :class:`Sweep`; ``results`` has one row per (lag, setting, target,
        seed, split, postprocess) with ``protocol = "annotation, lag <lag> s"``.
    """
    from tqdm.auto import tqdm

    missing = sorted({lag for lag, _ in plan} - set(records_by_lag))
    if missing:
        raise ContextError(f"no records for lag(s) {missing} s")
    if not plan:
        raise ContextError("empty plan")
    run_dir = run_dir or paths.results_dir() / "checkpoints" / "long_context"
    tasks = []
    for lag, setting in sorted(plan, key=lambda p: -_expected_cost(p[1])):
        protocol = f"annotation, lag {lag:g} s"
        tasks.append((lag, setting, list(records_by_lag[lag]), tuple(seeds), Path(run_dir) / f"lag{lag:g}",
                      dataset, protocol, fit_options))
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
    done, failures = [], []

    def failed(task: tuple, error: BaseException) -> None:  # one bad point never stops the sweep
        failures.append({"lag_s": float(task[0]), "setting": task[1].name,
                         "reason": f"{type(error).__name__}: {error}"})

    bar = tqdm(total=len(tasks), desc="long-context sweep", unit="setting", disable=not progress)
    if jobs == 1:
        for task in tasks:
            bar.set_postfix_str(f"lag {task[0]:g} s, {task[1].name}")
            try:
                done.append(_sweep_task(task))
            except Exception as error:
                failed(task, error)
            bar.update()
    else:
        import concurrent.futures as cf
        import multiprocessing as mp

        with cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(_sweep_task, task): task for task in tasks}
            for future in cf.as_completed(futures):
                task = futures[future]
                if future.exception() is not None:
                    failed(task, future.exception())
                else:
                    done.append(future.result())
                bar.set_postfix_str(f"lag {task[0]:g} s, {task[1].name} done")
                bar.update()
    bar.close()
    failures_frame = pd.DataFrame(failures, columns=["lag_s", "setting", "reason"])
    if not done:
        raise ContextError("every point of the sweep failed: " + "; ".join(
            f"lag {f['lag_s']:g} s {f['setting']}: {f['reason']}" for f in failures))

    frames, grids = [], {}
    order = {(lag, s): i for i, (lag, s) in enumerate(plan)}
    for lag, setting, grid, extra in sorted(done, key=lambda d: order[(d[0], d[1])]):
        rows = pd.concat([grid.results, pd.DataFrame(extra)], ignore_index=True)
        seconds = {c.seed: c.seconds for c in grid.cells}
        chunk = setting.chunk_s(fit_options.get("chunk_s", 30.0))
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


# --------------------------------------------------------------------------- analysis


def context_curve(results: pd.DataFrame, *, split: str = "test", postprocess: str = "none") -> pd.DataFrame:
    """Mean and sd over seeds of CCC per (lag, family, setting, target), ordered by context.

    Columns: ``lag_s, family, setting, knob, value, context_s,
    receptive_field_s, target, ccc, ccc_sd, seeds``.
    """
    r = results[(results["split"] == split) & (results["postprocess"] == postprocess)]
    if r.empty:
        raise ContextError(f"no rows with split={split!r} and postprocess={postprocess!r}")
    keys = ["lag_s", "family", "setting", "knob", "value", "context_s", "receptive_field_s", "target"]
    g = r.assign(value=r["value"].astype(float)).groupby(keys, dropna=False)["ccc"]
    out = g.agg(ccc="mean", ccc_sd="std", seeds="count").reset_index()
    out["ccc_sd"] = out["ccc_sd"].fillna(0.0)
    return out.sort_values(["lag_s", "target", "family", "context_s"]).reset_index(drop=True)


def saturation(curve: pd.DataFrame, *, tolerance: float = 0.02) -> pd.DataFrame:
    """Where context stops helping, per (lag, family, target) of a :func:`context_curve`.

    ``saturation_s`` is the smallest context whose CCC is within
    ``tolerance`` of the family's best; ``gain`` the best CCC minus the CCC
    at the smallest context tried. Families with one setting have gain 0.
    """
    rows = []
    for (lag, family, target), part in curve.groupby(["lag_s", "family", "target"], sort=False):
        part = part.sort_values("context_s")
        best = part.loc[part["ccc"].idxmax()]
        enough = part[part["ccc"] >= best["ccc"] - tolerance].iloc[0]
        rows.append({
            "lag_s": lag, "family": family, "target": target, "settings": len(part),
            "smallest_context_s": float(part["context_s"].iloc[0]), "ccc_smallest": float(part["ccc"].iloc[0]),
            "largest_context_s": float(part["context_s"].iloc[-1]),
            "best_setting": best["setting"], "best_context_s": float(best["context_s"]), "best_ccc": float(best["ccc"]),
            "saturation_s": float(enough["context_s"]), "saturation_setting": enough["setting"],
            "gain": float(best["ccc"] - part["ccc"].iloc[0]),
        })
    return pd.DataFrame(rows)


def lag_table(results: pd.DataFrame, *, floor: str = "mlp", ceilings: Mapping[float, Mapping[str, float]] | None = None,
              split: str = "test") -> pd.DataFrame:
    """Per (lag, target): the floor and the best context model, raw and post-processed.

    Columns: ``floor_raw``, ``floor_delay`` (the frame-local model with the
    delay step only), ``floor_delay_s`` (the delay it chose, seconds),
    ``floor_avec`` (with the whole AVEC chain: delay, smoothing, bias,
    scale); ``best_setting`` / ``best_raw`` (best raw CCC among the other
    settings), ``best_delay`` and ``best_avec`` (that setting post-processed),
    ``best_delay_any`` and ``best_avec_any`` (best post-processed CCC among
    the context models); ``ceiling``. Means over seeds; a column is NaN where
    its rows are missing.
    """
    r = results[results["split"] == split]
    m = r.groupby(["lag_s", "target", "postprocess", "setting", "family"])["ccc"].mean().reset_index()
    delays = r[r["postprocess"] == "delay"].groupby(["lag_s", "target", "family"])["delay_s"].mean() \
        if "delay_s" in r else pd.Series(dtype=float)
    rows = []
    for (lag, target), part in m.groupby(["lag_s", "target"]):
        by = {post: part[part["postprocess"] == post].set_index("setting") for post in ("none", "delay", "avec")}
        raw = by["none"]
        floors, others = raw[raw["family"] == floor], raw[raw["family"] != floor]
        row: dict[str, Any] = {"lag_s": lag, "target": target}
        if not floors.empty:
            name = floors["ccc"].idxmax()
            row.update(floor_raw=floors.loc[name, "ccc"], floor_delay=by["delay"]["ccc"].get(name, np.nan),
                       floor_delay_s=delays.get((lag, target, floor), np.nan),
                       floor_avec=by["avec"]["ccc"].get(name, np.nan))
        if not others.empty:
            name = others["ccc"].idxmax()
            row.update(best_setting=name, best_raw=others.loc[name, "ccc"])
            for post in ("delay", "avec"):
                table = by[post]
                ctx = table[table["family"] != floor]
                row[f"best_{post}"] = table["ccc"].get(name, np.nan)
                row[f"best_{post}_any"] = ctx["ccc"].max() if not ctx.empty else np.nan
        if ceilings is not None and lag in ceilings:
            row["ceiling"] = ceilings[lag].get(target, np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def shortfall(curve: pd.DataFrame, *, floor: str = "mlp") -> pd.DataFrame:
    """How far each smaller context falls short of its family's largest, per lag.

    Only settings trained at more than one lag count (the lag sweep). If the
    context a model needs grows with the raters' lag, a short context's
    shortfall grows with the lag.

    Returns:
        ``family, target, setting, context_s, reference, reference_context_s,
        lag_s, shortfall`` (CCC of the reference minus CCC of the setting).
    """
    swept = curve.groupby("setting")["lag_s"].nunique()
    part = curve[curve["setting"].isin(swept[swept > 1].index) & (curve["family"] != floor)]
    rows = []
    for (family, target), fam in part.groupby(["family", "target"], sort=False):
        finite = fam[np.isfinite(fam["context_s"].astype(float))]
        if finite["setting"].nunique() < 2:
            continue
        ref = finite.loc[finite["context_s"].idxmax()]
        ref_ccc = finite[finite["setting"] == ref["setting"]].set_index("lag_s")["ccc"]
        for setting, rows_s in finite[finite["setting"] != ref["setting"]].groupby("setting", sort=False):
            for _, r in rows_s.iterrows():
                if r["lag_s"] in ref_ccc.index:
                    rows.append({"family": family, "target": target, "setting": setting,
                                 "context_s": float(r["context_s"]), "reference": ref["setting"],
                                 "reference_context_s": float(ref["context_s"]), "lag_s": float(r["lag_s"]),
                                 "shortfall": float(ref_ccc[r["lag_s"]] - r["ccc"])})
    return pd.DataFrame(rows, columns=["family", "target", "setting", "context_s", "reference",
                                       "reference_context_s", "lag_s", "shortfall"])


# --------------------------------------------------------------------------- cost


def _proc_status_kib(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    # Linux >= 4.0: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS.
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _proc_status_kib("VmHWM") is not None


def peak_memory(fn: Callable[[], Any]) -> tuple[Any, dict[str, float | str]]:
    """Run ``fn()`` and measure its wall time, CPU time and peak extra resident memory.

    Method (Linux): the process' peak resident set (``VmHWM``) is reset to
    the current resident set just before the call (``/proc/self/clear_refs``),
    so ``VmHWM`` after the call minus ``VmRSS`` before it is the most memory
    the call held at once beyond what was already resident: activations,
    temporaries, allocator slack. Where the reset is unavailable the
    fallback is the growth of ``ru_maxrss`` (a lower bound if the process
    had peaked higher before). torch's CPU allocations go through malloc,
    which ``tracemalloc`` cannot see, so it is not used.

    Returns:
        ``(fn's result, {"seconds", "cpu_seconds", "peak_bytes", "memory_method"})``.
    """
    exact = _reset_peak()
    before = (_proc_status_kib("VmRSS") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) or 0
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    after = (_proc_status_kib("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) or 0
    return result, {"seconds": seconds, "cpu_seconds": cpu, "peak_bytes": float(max(0, after - before) * 1024),
                    "memory_method": "VmHWM reset" if exact else "ru_maxrss growth"}


def _measure_one(job: dict[str, Any]) -> dict[str, Any]:
    """One (setting, length) cost measurement; runs inside the worker process."""
    import torch

    from . import training

    torch.set_num_threads(int(job["threads"]))
    setting = Setting(job["family"], job["knob"], job["value"])
    T = max(2, int(round(job["minutes"] * 60 * job["rate_hz"])))
    F, K = int(job["n_features"]), int(job["n_targets"])
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = models.build(setting.family, F, K, **setting.model_options).eval()
    x = torch.randn(1, T, F, generator=gen)
    row: dict[str, Any] = {"frames": T, "parameters": model.n_parameters}
    with torch.inference_mode():
        model(x[:, : min(T, 100)])  # warm-up: kernels, thread pool, lazily loaded code
        times, cpus = [], []
        for i in range(int(job["repeats"])):
            out, m = peak_memory(lambda: model(x))
            del out
            times.append(m["seconds"])
            cpus.append(m["cpu_seconds"])
            if i == 0:
                row["infer_peak_bytes"] = m["peak_bytes"]
                row["memory_method"] = m["memory_method"]
    row["infer_seconds"], row["infer_cpu_seconds"] = min(times), min(cpus)
    del x, model
    if job["train"]:
        rng = np.random.default_rng(0)
        rec = SequenceRecord(id="random", x=rng.standard_normal((T, F)).astype(np.float32),
                             time=np.arange(T) / job["rate_hz"], rate_hz=job["rate_hz"],
                             y=rng.uniform(-1, 1, (T, K)).astype(np.float32), split="train")
        trained, m = peak_memory(lambda: training.fit(
            setting.family, [rec], None, epochs=int(job["train_epochs"]), chunk_s=setting.chunk_s(job["chunk_s"]),
            batch_size=int(job["batch_size"]), progress=False, model_options=setting.model_options,
            normalization="global", seed=0))
        row["train_epoch_seconds"] = min(h["seconds"] for h in trained.history)
        row["train_peak_bytes"] = m["peak_bytes"]
    return row


def _warm_up(job: dict[str, Any]) -> None:
    """Pay the one-time costs (lazy imports, thread pools, first autograd pass) before any measurement."""
    small = {**job, "minutes": 20 / 60 / job["rate_hz"], "repeats": 1, "train_epochs": 1,
             "family": "mlp", "knob": None, "value": None}
    _measure_one(small)


def _cost_worker() -> None:
    """Measure the jobs read from stdin (JSON list), one JSON line per job on stdout."""
    jobs = json.loads(sys.stdin.read())
    if jobs:
        try:
            _warm_up(jobs[0])
        except Exception:  # the measurements themselves will report what is wrong
            pass
    for job in jobs:
        try:
            row = _measure_one(job)
        except Exception as error:  # one failing measurement never stops the others
            row = {"error": f"{type(error).__name__}: {error}"}
        row["loadavg"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(json.dumps({"id": job["id"], **row}), flush=True)


def measure_costs(
    settings: Sequence[Setting],
    minutes: Sequence[float],
    *,
    threads: int = 1,
    repeats: int = 3,
    train: bool = True,
    train_epochs: int = 1,
    chunk_s: float = 30.0,
    batch_size: int = 16,
    n_features: int = 88,
    n_targets: int = 2,
    rate_hz: float = RATE_HZ,
    progress: bool = True,
) -> pd.DataFrame:
    """Inference time and peak memory against recording length, and training time per epoch.

    Every setting and length is measured in one fresh Python process (so no
    earlier work of the caller inflates the memory figures), on random
    features (cost does not depend on the values): a forward pass over one
    recording of ``minutes`` at ``rate_hz`` (batch 1, ``torch.inference_mode``,
    after a 100-frame warm-up; time = fastest of ``repeats`` passes), and
    ``train_epochs`` epochs of :func:`emotools.training.fit` on a recording of
    that length cut into ``chunk_s`` chunks (the fastest epoch counts).
    Memory: :func:`peak_memory`; the worker runs with a fixed glibc mmap
    threshold (``MALLOC_MMAP_THRESHOLD_``) so freed tensors return to the
    system and each measurement starts from the same resident set. A
    measurement that fails gets an ``error`` and the rest go on; if the
    worker dies, the next one continues with the remaining measurements.

    Returns:
        One row per (setting, minutes): ``family, setting, knob, value,
        receptive_field_s, parameters, minutes, frames, infer_seconds,
        infer_cpu_seconds, infer_peak_mb, train_epoch_seconds, train_peak_mb,
        infer_seconds_per_hour, threads, memory_method, loadavg, error``.
    """
    from tqdm.auto import tqdm

    if not settings or not minutes:
        raise ContextError("measure_costs needs at least one setting and one length")
    if any(not m > 0 for m in minutes):
        raise ContextError(f"recording lengths must be > 0 minutes, got {list(minutes)}")
    jobs = []
    for s in settings:
        for m in sorted(minutes):
            jobs.append({"id": len(jobs), "family": s.family, "knob": s.knob, "value": s.value, "minutes": float(m),
                         "threads": threads, "repeats": repeats, "train": train, "train_epochs": train_epochs,
                         "chunk_s": chunk_s, "batch_size": batch_size, "n_features": n_features,
                         "n_targets": n_targets, "rate_hz": rate_hz})
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": str(threads)}
    results: dict[int, dict[str, Any]] = {}
    bar = tqdm(total=len(jobs), desc="cost", unit="measurement", disable=not progress)
    remaining = list(jobs)
    while remaining:
        proc = subprocess.Popen([sys.executable, "-c", "from emotools.context import _cost_worker; _cost_worker()"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(remaining))
        proc.stdin.close()
        for line in proc.stdout:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            results[row.pop("id")] = row
            bar.update()
        stderr = proc.stderr.read() if proc.stderr else ""
        proc.wait()
        left = [j for j in remaining if j["id"] not in results]
        if left:  # the worker died: blame the measurement in flight, go on with the rest
            reason = stderr.strip().splitlines()[-1] if stderr.strip() else f"worker exited with {proc.returncode}"
            results[left[0]["id"]] = {"error": reason}
            bar.update()
            left = left[1:]
        remaining = left
    bar.close()
    rows = []
    for job in jobs:
        s = Setting(job["family"], job["knob"], job["value"])
        r = results[job["id"]]
        rows.append({
            "family": s.family, "setting": s.name, "knob": s.knob or "", "value": s.value,
            "receptive_field_s": _receptive_field_or_nan(s, rate_hz), "parameters": r.get("parameters"),
            "minutes": job["minutes"], "frames": r.get("frames"),
            "infer_seconds": r.get("infer_seconds"), "infer_cpu_seconds": r.get("infer_cpu_seconds"),
            "infer_peak_mb": _mb(r.get("infer_peak_bytes")), "train_epoch_seconds": r.get("train_epoch_seconds"),
            "train_peak_mb": _mb(r.get("train_peak_bytes")), "threads": threads,
            "memory_method": r.get("memory_method", ""), "loadavg": r.get("loadavg", float("nan")),
            "error": r.get("error", ""),
        })
    out = pd.DataFrame(rows)
    out["infer_seconds_per_hour"] = out["infer_seconds"].astype(float) * 60.0 / out["minutes"]
    return out


def _receptive_field_or_nan(setting: Setting, rate_hz: float) -> float:
    try:
        return setting.receptive_field_s(rate_hz)
    except models.ModelConfigError:  # the measurement's error says why
        return float("nan")


def _no_error(costs: pd.DataFrame) -> pd.Series:
    """Rows of a cost table whose measurement succeeded (``error`` empty or missing)."""
    if "error" not in costs:
        return pd.Series(True, index=costs.index)
    return costs["error"].isna() | (costs["error"].astype(str) == "")


def _mb(value: float | None) -> float:
    return float("nan") if value is None else float(value) / 2**20


# --------------------------------------------------------------------------- efficiency frontier


def pareto_front(cost: Sequence[float], score: Sequence[float]) -> np.ndarray:
    """Boolean mask of the points no other point beats: cheaper-or-equal *and* better-or-equal, one strictly.

    NaN points are never on the front.

    >>> pareto_front([1, 2, 3, 2], [0.5, 0.4, 0.9, 0.6]).tolist()
    [True, False, True, True]
    """
    c, s = np.asarray(cost, float), np.asarray(score, float)
    if c.shape != s.shape:
        raise ContextError(f"cost and score differ in length: {c.shape} vs {s.shape}")
    ok = np.isfinite(c) & np.isfinite(s)
    front = np.zeros(len(c), bool)
    for i in np.flatnonzero(ok):
        dominated = ok & (c <= c[i]) & (s >= s[i]) & ((c < c[i]) | (s > s[i]))
        front[i] = not dominated.any()
    return front


def frontier_table(results: pd.DataFrame, costs: pd.DataFrame, *, lag_s: float | None = None,
                   split: str = "test", postprocess: str = "none") -> pd.DataFrame:
    """Test CCC against inference cost per setting, with the Pareto front marked.

    Args:
        results: :attr:`Sweep.results`.
        costs: :func:`measure_costs` output; the longest measured length of
            each setting gives its cost, scaled to one hour of audio.
        lag_s: the lag whose results count (default: the lag with most settings).

    Returns:
        One row per setting: ``family, setting, context_s, ccc`` (mean over
        targets and seeds), ``ccc_<target>``, ``infer_seconds_per_hour``,
        ``infer_peak_mb`` and ``train_epoch_seconds_per_hour`` at the longest
        length, ``minutes``, ``parameters``, ``on_front``; sorted by cost.
    """
    r = results[(results["split"] == split) & (results["postprocess"] == postprocess)]
    if lag_s is None:
        lag_s = float(r.groupby("lag_s")["setting"].nunique().idxmax())
    r = r[r["lag_s"] == lag_s]
    if r.empty:
        raise ContextError(f"no results at lag {lag_s} s")
    per_target = r.groupby(["family", "setting", "context_s", "target"])["ccc"].mean().unstack("target")
    per_target.columns = [f"ccc_{t}" for t in per_target.columns]
    score = per_target.mean(axis=1).rename("ccc")
    ok = costs[_no_error(costs)]
    longest = ok.sort_values("minutes").groupby("setting").tail(1).set_index("setting")
    table = pd.concat([score, per_target], axis=1).reset_index()
    table = table.join(longest[["minutes", "infer_seconds_per_hour", "infer_peak_mb", "train_epoch_seconds",
                                "parameters"]], on="setting")
    table["train_epoch_seconds_per_hour"] = table.pop("train_epoch_seconds") * 60.0 / table["minutes"]
    table["on_front"] = pareto_front(table["infer_seconds_per_hour"], table["ccc"])
    table.insert(0, "lag_s", lag_s)
    return table.sort_values("infer_seconds_per_hour").reset_index(drop=True)


def study_lag(results: pd.DataFrame) -> float:
    """The lag of the context sweep: the lag at which most settings were trained."""
    return float(results.groupby("lag_s")["setting"].nunique().idxmax())


@dataclass
class StudyViews:
    """The tables the figures of a finished study are drawn from (see :func:`study_views`)."""

    study_lag_s: float
    curve: pd.DataFrame  #: context curve at the study's lag
    lag_curve: pd.DataFrame  #: context curve of the settings trained at several lags
    delay_curve: pd.DataFrame  #: the same after delay compensation only
    chain_curve: pd.DataFrame  #: the same after the whole AVEC post-processing chain
    frontier: pd.DataFrame | None  #: efficiency frontier (None without costs)
    ceilings: dict[str, float]  #: annotation ceiling per target at the study's lag
    lag_ceilings: dict[float, dict[str, float]]  #: the ceiling per lag and target


def study_views(results: pd.DataFrame, *, costs: pd.DataFrame | None = None,
                ceilings: pd.DataFrame | None = None) -> StudyViews:
    """Everything the poster draws from a saved study (``long_context.csv`` and its companions)."""
    lag = study_lag(results)
    full = context_curve(results)
    swept = results.groupby("setting")["lag_s"].nunique()
    delay = results[results["postprocess"] == "delay"]
    lag_ceilings = ceilings_from_table(ceilings) if ceilings is not None else {}
    return StudyViews(
        study_lag_s=lag, curve=full[full["lag_s"] == lag],
        lag_curve=full[full["setting"].isin(swept[swept > 1].index)],
        delay_curve=context_curve(results, postprocess="delay") if len(delay) else full.iloc[:0],
        chain_curve=context_curve(results, postprocess="avec") if (results["postprocess"] == "avec").any()
        else full.iloc[:0],
        frontier=frontier_table(results, costs, lag_s=lag) if costs is not None else None,
        ceilings=lag_ceilings.get(lag, {}), lag_ceilings=lag_ceilings,
    )


# --------------------------------------------------------------------------- conclusions


def _fmt_s(x: float) -> str:
    return "unbounded" if not math.isfinite(x) else f"{x:g} s"


def conclusions(
    curve: pd.DataFrame,
    saturated: pd.DataFrame,
    lags: pd.DataFrame,
    frontier: pd.DataFrame,
    *,
    ceilings: Mapping[str, float],
    study_lag_s: float,
    tolerance: float = 0.02,
    floor: str = "mlp",
) -> str:
    """Markdown conclusions written from the study's own numbers.

    Args:
        curve: :func:`context_curve` (raw test CCC).
        saturated: :func:`saturation` of that curve.
        lags: :func:`lag_table`.
        frontier: :func:`frontier_table`.
        ceilings: annotation ceiling per target at ``study_lag_s``.
        study_lag_s: the lag of the context sweep (the corpus' own labels).
        tolerance: the CCC margin used for "stops helping" and "as good as".
    """
    lines: list[str] = []
    at = curve[curve["lag_s"] == study_lag_s]
    sat = saturated[saturated["lag_s"] == study_lag_s]
    # 1. best model per target against floor and ceiling
    for target, part in at.groupby("target"):
        best = part.loc[part["ccc"].idxmax()]
        floor_rows = part[part["family"] == floor]
        floor_txt = f"; the frame-local {floor} scores {floor_rows['ccc'].max():.3f}" if not floor_rows.empty else ""
        ceil = ceilings.get(target, float("nan"))
        lines.append(f"- **{target}** (raters' lag {study_lag_s:g} s): best test CCC {best['ccc']:.3f} by "
                     f"`{best['setting']}` (context {_fmt_s(best['context_s'])}){floor_txt}; the annotation "
                     f"ceiling is {ceil:.3f}, so {ceil - best['ccc']:.3f} remains.")
    # 2. where context stops helping
    for family, part in sat[sat["settings"] > 1].groupby("family"):
        bits = []
        for _, r in part.iterrows():
            span = f"{_fmt_s(r['smallest_context_s'])} to {_fmt_s(r['largest_context_s'])}"
            if r["gain"] <= tolerance:
                bits.append(f"{r['target']}: no gain above {tolerance:g} CCC from {span} "
                            f"({r['ccc_smallest']:.3f} -> best {r['best_ccc']:.3f})")
            elif r["saturation_s"] >= r["largest_context_s"]:
                bits.append(f"{r['target']}: +{r['gain']:.3f} CCC from {span}, "
                            "still rising at the largest context tried")
            else:
                bits.append(f"{r['target']}: +{r['gain']:.3f} CCC from {_fmt_s(r['smallest_context_s'])} to "
                            f"{_fmt_s(r['saturation_s'])}; beyond it, up to {_fmt_s(r['largest_context_s'])}, "
                            f"less than {tolerance:g} more")
        knob = "training chunk" if family == "lstm" else "receptive field"
        lines.append(f"- **{family}** ({knob}): " + "; ".join(bits) + ".")
    # 3. lags: does the needed context grow, does delay compensation substitute?
    if not lags.empty and "floor_raw" in lags:
        for target, part in lags.groupby("target"):
            part = part.sort_values("lag_s")
            cells = []
            for _, r in part.iterrows():
                txt = f"lag {r['lag_s']:g} s: {floor} {r['floor_raw']:.3f}"
                if math.isfinite(r.get("floor_delay", float("nan"))):
                    txt += f" -> {r['floor_delay']:.3f} with delay compensation ({r['floor_delay_s']:g} s)"
                if isinstance(r.get("best_setting"), str):
                    txt += f", best context model `{r['best_setting']}` {r['best_raw']:.3f}"
                cells.append(txt)
            lines.append(f"- **{target} against the raters' lag**: " + "; ".join(cells) + ".")
        both = lags.dropna(subset=["floor_delay", "best_raw"]) if "best_raw" in lags else pd.DataFrame()
        if not both.empty:
            gap = (both["best_raw"] - both["floor_delay"])
            verdict = ("does not substitute for context" if (gap > tolerance).all() else
                       "substitutes for context" if (gap <= tolerance).all() else
                       "substitutes for context only in part")
            lines.append(f"- Delay compensation {verdict}: the best context model beats the delay-compensated "
                         f"frame-local model by {gap.min():+.3f} to {gap.max():+.3f} CCC across lags and targets.")
        chain = lags.dropna(subset=["floor_avec", "best_raw", "best_avec_any"]) \
            if {"floor_avec", "best_avec_any"} <= set(lags.columns) else pd.DataFrame()
        if not chain.empty:
            raw_gap = chain["best_raw"] - chain["floor_avec"]
            gap = chain["best_avec_any"] - chain["floor_avec"]
            verdict = ("does not substitute for learnt context" if (gap > tolerance).all() else
                       "substitutes for learnt context" if (gap <= tolerance).all() else
                       "substitutes for most of the learnt context")
            worst = chain.loc[gap.idxmax()]
            lines.append(
                f"- The whole AVEC chain (delay, then smoothing, bias and scale, all tuned on dev; the smoothing is "
                f"itself a fixed temporal context) {verdict}: it lifts the frame-local model to "
                f"{chain['floor_avec'].min():.3f}-{chain['floor_avec'].max():.3f}, which the best context model's raw "
                f"predictions beat by {raw_gap.min():+.3f} to {raw_gap.max():+.3f} CCC; with the same chain the "
                f"context models stay ahead by {gap.min():+.3f} to {gap.max():+.3f} (most at lag "
                f"{worst['lag_s']:g} s, {worst['target']}).")
        short = shortfall(curve, floor=floor)
        if not short.empty:
            swept = saturation(curve[curve["setting"].isin(set(short["setting"]) | set(short["reference"]))],
                               tolerance=tolerance)
            growth = []
            for (family, target), part in short.groupby(["family", "target"], sort=False):
                sat_t = swept[(swept["family"] == family) & (swept["target"] == target)].sort_values("lag_s")
                needed = ", ".join(f"{_fmt_s(s)} at lag {l:g} s" for l, s in zip(sat_t["lag_s"], sat_t["saturation_s"]))
                ends = part.sort_values("lag_s").groupby("setting", sort=False)["shortfall"].agg(["first", "last"])
                ends = ends.assign(rise=ends["last"] - ends["first"])
                worst = ends["rise"].idxmax()
                w = part[part["setting"] == worst].sort_values("lag_s")
                grows = (ends["rise"].max() > tolerance) or (
                    sat_t["saturation_s"].iloc[-1] > sat_t["saturation_s"].iloc[0])
                growth.append(
                    f"{family}/{target}: {needed}; `{worst}` ({_fmt_s(w['context_s'].iloc[0])}) falls short of "
                    f"`{w['reference'].iloc[0]}` ({_fmt_s(w['reference_context_s'].iloc[0])}) by "
                    f"{w['shortfall'].iloc[0]:.3f} at lag {w['lag_s'].iloc[0]:g} s and "
                    f"{w['shortfall'].iloc[-1]:.3f} at "
                    f"{w['lag_s'].iloc[-1]:g} s -> " + ("the context needed grows with the lag" if grows else
                                                       "no clear growth of the context needed with the lag"))
            lines.append(f"- **Context needed against the raters' lag** (shortest context within {tolerance:g} CCC "
                         "of the family's best): " + "; ".join(growth) + ".")
    # 4. efficiency
    if not frontier.empty and frontier["infer_seconds_per_hour"].notna().any():
        f = frontier.dropna(subset=["infer_seconds_per_hour", "ccc"])
        best = f.loc[f["ccc"].idxmax()]
        good = f[f["ccc"] >= best["ccc"] - tolerance].sort_values("infer_seconds_per_hour").iloc[0]
        front = ", ".join(f"`{s}`" for s in f[f["on_front"]]["setting"])
        lines.append(f"- **Efficiency** (mean CCC over targets; inference seconds per hour of audio, measured at "
                     f"{f['minutes'].max():g} min): the best is `{best['setting']}` ({best['ccc']:.3f}, "
                     f"{best['infer_seconds_per_hour']:.3g} s/h); the cheapest within {tolerance:g} CCC of it is "
                     f"`{good['setting']}` ({good['ccc']:.3f}, {good['infer_seconds_per_hour']:.3g} s/h). "
                     f"On the efficiency frontier: {front}.")
        fl = f[f["family"] == floor]
        if not fl.empty:
            base = fl["ccc"].max()
            gain = f[f["family"] != floor].assign(
                per_cost=lambda d: (d["ccc"] - base) / d["infer_seconds_per_hour"])
            if not gain.empty:
                top = gain.loc[gain["per_cost"].idxmax()]
                lines.append(f"- Best CCC per unit of cost: `{top['setting']}` gains {top['ccc'] - base:+.3f} CCC over "
                             f"the frame-local floor for {top['infer_seconds_per_hour']:.3g} s of inference per hour "
                             f"of audio ({top['per_cost']:.3g} CCC per s/h).")
    return "\n".join(lines)


# --------------------------------------------------------------------------- poster helpers


#: Columns of a trajectory table that are not model predictions.
TRAJECTORY_COLUMNS: tuple[str, ...] = ("recording", "speaker", "time", "target", "gold", "raters_min", "raters_max",
                                       "latent")


def trajectory_frame(record: SequenceRecord, predictions: Mapping[str, np.ndarray], *,
                     frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """One test recording's gold standard, raters' band, latent and predictions, one row per (time, target).

    Columns ``recording, speaker, time, target, gold``, then ``raters_min``,
    ``raters_max`` and ``latent`` where ``frame`` (the recording's label
    frame) holds rater and latent columns, then one column per model.
    """
    if record.y is None:
        raise ContextError(f"{record.id}: an unlabelled record has no trajectory to show")
    idx = None
    if frame is not None:
        idx = np.clip(np.searchsorted(frame["time"].to_numpy(), record.time - 1e-6), 0, len(frame) - 1)
    parts = []
    for k, target in enumerate(record.target_names):
        columns: dict[str, Any] = {"recording": record.id, "speaker": record.speaker, "time": record.time,
                                   "target": target, "gold": record.y[:, k]}
        if frame is not None:
            raters = [c for c in frame.columns if c.startswith(f"{target}_r") and c[len(target) + 2:].isdigit()]
            if raters:
                r = frame[raters].to_numpy()[idx]
                columns.update(raters_min=r.min(axis=1), raters_max=r.max(axis=1))
            if f"{target}_latent" in frame:
                columns["latent"] = frame[f"{target}_latent"].to_numpy()[idx]
        for name, pred in predictions.items():
            columns[name] = np.asarray(pred).reshape(len(record), -1)[:, k]
        parts.append(pd.DataFrame(columns))
    return pd.concat(parts, ignore_index=True)


def ceiling_table(ceilings: Mapping[float, Mapping[str, float]]) -> pd.DataFrame:
    """``{lag_s: {target: ceiling}}`` as a table (``lag_s, target, ceiling``) for saving."""
    return pd.DataFrame([{"lag_s": float(lag), "target": t, "ceiling": float(c)}
                         for lag, per in ceilings.items() for t, c in per.items()])


def ceilings_from_table(table: pd.DataFrame) -> dict[float, dict[str, float]]:
    """Inverse of :func:`ceiling_table`."""
    out: dict[float, dict[str, float]] = {}
    for row in table.to_dict("records"):
        out.setdefault(float(row["lag_s"]), {})[str(row["target"])] = float(row["ceiling"])
    return out


#: Notebooks whose results tables compare architectures per dataset and protocol.
DATASET_NOTEBOOKS: tuple[str, ...] = ("01_ground_truth", "LibriSpeech", "VoxCeleb1", "VoxCeleb2")

#: Results tables the poster collects, in display order.
RESULT_NAMES: tuple[str, ...] = ("00_metrics", *DATASET_NOTEBOOKS, "long_context", "long_context_costs",
                                 "long_context_ceilings", "long_context_trajectories")


def collect_results(names: Iterable[str] = RESULT_NAMES, *, folder: Path | None = None
                    ) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Read ``results/<name>.csv`` for each name; missing or unreadable ones are noted, not raised.

    Returns:
        ``({name: table}, notes)``, one note per table that was not found or
        could not be read.
    """
    folder = folder or paths.results_dir()
    found, notes = {}, []
    for name in names:
        path = folder / f"{name}.csv"
        if not path.is_file():
            notes.append(f"{name}: no results/{name}.csv yet (run its notebook); its panels are skipped")
            continue
        try:
            found[name] = pd.read_csv(path)
        except (OSError, ValueError) as error:
            notes.append(f"{name}: results/{name}.csv is unreadable ({type(error).__name__}: {error}); skipped")
    return found, notes


def architecture_results(found: Mapping[str, pd.DataFrame], *, split: str = "test", postprocess: str = "none",
                         names: Sequence[str] = DATASET_NOTEBOOKS) -> pd.DataFrame:
    """Test rows of the dataset notebooks' tables, one training mode per (dataset, protocol).

    Where a notebook trained both modes, ``joint`` is kept (``separate``
    otherwise), so each architecture has one bar per target. Tables without
    the tidy results columns are skipped.
    """
    frames = [found[n] for n in names if n in found and set(experiments.RESULT_COLUMNS) <= set(found[n].columns)]
    if not frames:
        return pd.DataFrame(columns=experiments.RESULT_COLUMNS)
    r = pd.concat(frames, ignore_index=True)
    r = r[(r["split"] == split) & (r["postprocess"] == postprocess)]
    keep = []
    for _, part in r.groupby(["dataset", "protocol"], sort=False):
        mode = "joint" if (part["mode"] == "joint").any() else part["mode"].iloc[0]
        keep.append(part[part["mode"] == mode])
    return pd.concat(keep, ignore_index=True) if keep else r
