"""External features: other people's feature files as the same records the package trains on.

Users often hold features already. Three layouts become lists of
:class:`emotools.sequences.SequenceRecord` (what :func:`emotools.training.fit`
and :func:`emotools.experiments.run_grid` train on):

* :func:`from_arrays`: the original project's ``X.npy`` (utterances x 88)
  with one label array per target: one length-1 record per utterance;
* :func:`read_frames`: MuSe / AVEC-style frame-level CSVs (``timestamp``,
  ``segment_id``, feature columns; MuSe timestamps are in milliseconds) with
  label CSVs on the same time grid;
* :func:`read_table`: a plain CSV or parquet table with an id column, one row
  per utterance, or several rows per recording with a time column.

Utterance-level records have one frame at time 0 and a nominal rate of
:data:`UTTERANCE_RATE_HZ` (train them with ``FitOptions(chunk_s=None)``).

Validation: the feature columns of every file agree, NaN / inf are reported
with their row (0-based data row of the file) and column, ids must match the
labels', timestamps must increase on a regular grid, and label times must be
feature times. :func:`from_arrays` raises :class:`ExternalFeatureError`;
the table readers record a bad file or recording as a failure
(``{"id", "file", "reason"}``, one log line each) and go on with the rest
(``strict=True``: raise the first), and raise only when nothing is left.

>>> import numpy as np
>>> records = from_arrays(np.ones((3, 2)), {"arousal": [0.1, 0.2, 0.3]})
>>> len(records), records[0].x.shape, records[2].y.tolist()
(3, (1, 2), [[0.30000001192092896]])
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from ..errors import EmotoolsError

if TYPE_CHECKING:  # sequences -> labels -> features: imported where records are made
    from ..sequences import SequenceRecord
from ..timing import exact_rate

__all__ = ["ExternalFeatureError", "UTTERANCE_RATE_HZ", "from_arrays", "read_frames", "read_table"]

log = logging.getLogger(__name__)


def _record_class() -> type[SequenceRecord]:
    from ..sequences import SequenceRecord

    return SequenceRecord

#: Nominal frame rate of utterance-level (one vector per utterance) records.
UTTERANCE_RATE_HZ: float = 1.0
#: Seconds per unit of a time column.
TIME_UNITS: dict[str, float] = {"s": 1.0, "ms": 1e-3}
#: Columns of a table that describe a recording, not features.
META_COLUMNS: tuple[str, ...] = ("speaker", "session", "split")
#: Relative tolerance of time steps on a grid (CSV times are rounded).
GRID_TOLERANCE: float = 1e-3

PathLike = str | os.PathLike
Table = PathLike | pd.DataFrame
Failures = list[dict[str, str]]


class ExternalFeatureError(EmotoolsError, ValueError):
    """External features or labels that cannot become records: ``ExternalFeatureError(file, reason)``."""


# --------------------------------------------------------------------------- shared checks


def _first_non_finite(values: np.ndarray, columns: Sequence[str], rows: np.ndarray | None = None) -> str | None:
    """``"NaN at row r, column c; n non-finite value(s)"`` for the first NaN/inf of a 2-D array, else None."""
    bad = ~np.isfinite(values)
    if not bad.any():
        return None
    r, c = np.argwhere(bad)[0]
    kind = "NaN" if np.isnan(values[r, c]) else "inf"
    row = int(r if rows is None else rows[r])
    return f"{kind} at row {row}, column {columns[c]!r} ({int(bad.sum())} non-finite value(s) in all)"


def _load_array(value: PathLike | np.ndarray | Sequence[float], what: str) -> tuple[np.ndarray, str]:
    """An array and its name in messages (the file for a ``.npy`` path)."""
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        try:
            return np.load(path, allow_pickle=False), path
        except (OSError, ValueError) as error:
            raise ExternalFeatureError(path, f"cannot read {what} ({type(error).__name__}: {error})") from None
    try:
        return np.asarray(value, dtype=np.float64), what
    except (TypeError, ValueError) as error:
        raise ExternalFeatureError(what, f"not numeric ({error})") from None


# --------------------------------------------------------------------------- arrays


def from_arrays(
    features: PathLike | np.ndarray,
    labels: Mapping[str, PathLike | np.ndarray | Sequence[float]] | None = None,
    *,
    ids: Sequence[str] | None = None,
    feature_names: Sequence[str] | None = None,
    speakers: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
) -> list[SequenceRecord]:
    """One length-1 record per row of a ``(utterances, features)`` matrix, e.g. the original's ``X.npy``.

    Args:
        features: the matrix or the path of a ``.npy`` file holding it.
        labels: target name -> one value per utterance (array or ``.npy``
            path), e.g. ``{"arousal": a, "valence": v}``; None: unlabelled.
        ids: one id per utterance (default ``"0"``, ``"1"``, ...).
        feature_names: one name per column (default ``"f0"``, ``"f1"``, ...).
        speakers, splits: optional per-utterance speaker and split names.

    Returns:
        Records with ``x`` of shape ``(1, features)`` at time 0.

    Raises:
        ExternalFeatureError: not a 2-D matrix, NaN/inf (row and column named),
            label arrays or id lists of another length, duplicate ids.
    """
    x, name = _load_array(features, "features")
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ExternalFeatureError(name, f"features must be a non-empty (utterances, features) matrix, got {x.shape}")
    n, f = x.shape
    names = tuple(feature_names) if feature_names is not None else tuple(f"f{i}" for i in range(f))
    if len(names) != f:
        raise ExternalFeatureError(name, f"{len(names)} feature names for {f} feature columns")
    problem = _first_non_finite(x, names)
    if problem:
        raise ExternalFeatureError(name, problem)
    per_row = {"ids": ids, "speakers": speakers, "splits": splits}
    for what, values in per_row.items():
        if values is not None and len(values) != n:
            raise ExternalFeatureError(name, f"{len(values)} {what} for {n} utterances")
    ids = [str(i) for i in (ids if ids is not None else range(n))]
    if len(set(ids)) != n:
        duplicated = sorted({i for i in ids if ids.count(i) > 1})[:3]
        raise ExternalFeatureError(name, f"duplicate ids, e.g. {duplicated}")
    y, targets = _label_matrix(labels, n)
    return [
        _record_class()(
            id=ids[i], x=x[i : i + 1], time=np.zeros(1), rate_hz=UTTERANCE_RATE_HZ,
            y=None if y is None else y[i : i + 1], speaker="" if speakers is None else str(speakers[i]),
            split="" if splits is None else str(splits[i]), feature_names=names,
            **({"target_names": targets} if targets else {}),
        )
        for i in range(n)
    ]


def _label_matrix(labels: Mapping[str, PathLike | np.ndarray | Sequence[float]] | None,
                  n: int) -> tuple[np.ndarray | None, tuple[str, ...]]:
    """``(utterances, targets)`` labels from one array per target, checked."""
    if labels is None:
        return None, ()
    if not isinstance(labels, Mapping) or not labels:
        raise ExternalFeatureError("labels", "must be a non-empty mapping of target name -> values")
    columns = []
    for target, values in labels.items():
        y, name = _load_array(values, f"labels {target!r}")
        if y.ndim != 1 or len(y) != n:
            raise ExternalFeatureError(name, f"labels {target!r} must be one value per utterance ({n}), got {y.shape}")
        columns.append(y)
    y = np.stack(columns, axis=1)
    problem = _first_non_finite(y, list(labels))
    if problem:
        raise ExternalFeatureError("labels", problem)
    return y, tuple(labels)


# --------------------------------------------------------------------------- tables


def _read(table: Table) -> tuple[pd.DataFrame, str]:
    """A DataFrame from a CSV / parquet path (by suffix) or a DataFrame, and its name in messages."""
    if isinstance(table, pd.DataFrame):
        return table.reset_index(drop=True), "table"
    path = os.fspath(table)
    try:
        if Path(path).suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path), path
        return pd.read_csv(path), path
    except Exception as error:  # any unreadable file is one failure, not a crash
        raise ExternalFeatureError(path, f"cannot read ({type(error).__name__}: {error})") from None


def _as_list(tables: Table | Sequence[Table]) -> list[Table]:
    if isinstance(tables, (str, os.PathLike, pd.DataFrame)):
        return [tables]
    return list(tables)


class _Collector:
    """Failures of a batch: logged as one line each, recorded, raised at once under ``strict``."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.failures: Failures = []

    def add(self, file: str, reason: str, id: str = "") -> None:
        if self.strict:
            raise ExternalFeatureError(file, reason)
        log.warning("skipping %s: %s", file, reason)
        self.failures.append({"id": id, "file": file, "reason": reason})


def _stack(tables: list[Table], required: Sequence[str], kind: str, failures: _Collector) -> pd.DataFrame:
    """Readable tables with the required columns and the first one's columns, with ``_file`` and ``_row``."""
    frames, columns = [], None
    for table in tables:
        try:
            df, name = _read(table)
        except ExternalFeatureError as error:
            failures.add(error.subject, error.reason)
            continue
        missing = [c for c in required if c not in df.columns]
        if missing:
            failures.add(name, f"{kind} lack column(s) {missing} (columns: {list(df.columns)[:6]})")
            continue
        if columns is None:
            columns, first = list(df.columns), name
        elif set(df.columns) != set(columns):
            extra, lacking = sorted(set(df.columns) - set(columns)), sorted(set(columns) - set(df.columns))
            failures.add(name, f"inconsistent {kind}: {len(df.columns)} columns, {first} has {len(columns)} "
                               f"(extra {extra[:3]}, missing {lacking[:3]})")
            continue
        frames.append(df[columns].assign(_file=name, _row=np.arange(len(df))))
    if not frames:
        return pd.DataFrame(columns=[*required, "_file", "_row"])
    return pd.concat(frames, ignore_index=True)


def _numeric_columns(df: pd.DataFrame, columns: Sequence[str], failures: _Collector) -> bool:
    """True when every column is numeric; else one failure per file naming the first bad column."""
    bad = [c for c in columns if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        for file in df["_file"].unique():
            failures.add(file, f"column {bad[0]!r} is not numeric")
    return not bad


def _grid_problem(t: np.ndarray, rows: np.ndarray) -> str | None:
    """Why times ``t`` (seconds) are not strictly increasing on a regular grid, or None."""
    if len(t) < 2:
        return "one frame only: the frame rate is unknown"
    steps = np.diff(t)
    if (steps <= 0).any():
        i = int(np.argmax(steps <= 0)) + 1
        return f"timestamps not increasing at row {int(rows[i])} ({t[i]:g} s after {t[i - 1]:g} s)"
    step = float(np.median(steps))
    off = np.abs(steps - step) > GRID_TOLERANCE * step
    if off.any():
        i = int(np.argmax(off)) + 1
        return f"timestamps not on a {step:g} s grid at row {int(rows[i])} (step {steps[i - 1]:g} s)"
    return None


def _meta(group: pd.DataFrame) -> dict[str, str]:
    return {c: str(group[c].iloc[0]) for c in META_COLUMNS if c in group.columns}


def _record(rid: str, feats: pd.DataFrame, labs: pd.DataFrame | None, *, fcols: list[str], targets: tuple[str, ...],
            time_column: str | None, scale: float) -> SequenceRecord:
    """One record of one id's feature rows and label rows; ExternalFeatureError naming the file otherwise."""
    file = str(feats["_file"].iloc[0])
    x = feats[fcols].to_numpy(np.float64)
    problem = _first_non_finite(x, fcols, feats["_row"].to_numpy())
    if problem:
        raise ExternalFeatureError(file, f"recording {rid}: {problem}")
    if time_column is None:
        if len(feats) != 1:
            raise ExternalFeatureError(file, f"recording {rid}: {len(feats)} rows for one id; "
                                             "frame-level tables need a time column")
        time, rate = np.zeros(1), UTTERANCE_RATE_HZ
    else:
        time = feats[time_column].to_numpy(np.float64) * scale
        problem = _grid_problem(time, feats["_row"].to_numpy())
        if problem:
            raise ExternalFeatureError(file, f"recording {rid}: {problem}")
        rate = exact_rate(float(np.median(np.diff(time))))
    y = None
    if labs is not None:
        x, time, y = _on_label_grid(rid, x, time, labs, targets=targets, time_column=time_column, scale=scale)
    named = {"target_names": targets} if y is not None else {}
    return _record_class()(id=rid, x=x, time=time, rate_hz=rate, y=y, feature_names=tuple(fcols),
                          **named, **_meta(feats))


def _on_label_grid(rid: str, x: np.ndarray, time: np.ndarray, labs: pd.DataFrame, *, targets: tuple[str, ...],
                   time_column: str | None, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features at the label frames' times (which must be feature times) and the labels."""
    file = str(labs["_file"].iloc[0])
    y = labs[list(targets)].to_numpy(np.float64)
    problem = _first_non_finite(y, targets, labs["_row"].to_numpy())
    if problem:
        raise ExternalFeatureError(file, f"recording {rid}: {problem}")
    if time_column is None:
        if len(labs) != 1:
            raise ExternalFeatureError(file, f"recording {rid}: {len(labs)} label rows for one utterance")
        return x, time, y
    t = labs[time_column].to_numpy(np.float64) * scale
    if len(t) > 1 and (np.diff(t) <= 0).any():
        i = int(np.argmax(np.diff(t) <= 0)) + 1
        raise ExternalFeatureError(file, f"recording {rid}: label timestamps not increasing at row "
                                         f"{int(labs['_row'].iloc[i])}")
    step = float(np.median(np.diff(time)))
    idx = np.clip(np.searchsorted(time, t - GRID_TOLERANCE * step), 0, len(time) - 1)
    off = np.abs(time[idx] - t) > GRID_TOLERANCE * step
    if off.any():
        i = int(np.argmax(off))
        raise ExternalFeatureError(file, f"recording {rid}: labels not on the features' grid: {int(off.sum())} "
                                         f"label time(s) without a feature frame, first {t[i]:g} s at row "
                                         f"{int(labs['_row'].iloc[i])}")
    return x[idx], time[idx], y


def _records(features: pd.DataFrame, labels: pd.DataFrame | None, *, id_column: str, time_column: str | None,
             time_unit: str, targets: tuple[str, ...], failures: _Collector) -> list[SequenceRecord]:
    """Records of every id of stacked feature (and label) tables; bad ids become failures."""
    if time_unit not in TIME_UNITS:
        raise ExternalFeatureError("time_unit", f"unknown unit {time_unit!r}; use one of {list(TIME_UNITS)}")
    skip = {id_column, "_file", "_row", *META_COLUMNS, *([time_column] if time_column else [])}
    fcols = [c for c in features.columns if c not in skip]
    if not fcols or not _numeric_columns(features, fcols, failures):
        if not fcols and len(features):
            failures.add(str(features["_file"].iloc[0]), "no feature columns")
        return []
    label_groups = {} if labels is None else {str(k): g for k, g in labels.groupby(id_column, sort=False)}
    records = []
    for rid, group in features.groupby(id_column, sort=False):
        rid = str(rid)
        if labels is not None and rid not in label_groups:
            failures.add(str(group["_file"].iloc[0]), f"recording {rid}: no labels for this id", rid)
            continue
        try:
            records.append(_record(rid, group, label_groups.get(rid), fcols=fcols, targets=targets,
                                   time_column=time_column, scale=TIME_UNITS[time_unit]))
        except ExternalFeatureError as error:
            failures.add(error.subject, error.reason, rid)
    known = {str(i) for i in features[id_column].unique()}
    for rid, group in label_groups.items():
        if rid not in known:
            failures.add(str(group["_file"].iloc[0]), f"recording {rid}: labels but no features for this id", rid)
    return records


def _finish(records: list[SequenceRecord], failures: _Collector,
            what: str) -> tuple[list[SequenceRecord], Failures]:
    if not records:
        first = failures.failures[0] if failures.failures else {"file": what, "reason": "no rows"}
        raise ExternalFeatureError(first["file"], f"no usable recording ({first['reason']})")
    return records, failures.failures


def _label_table(labels: Table | Sequence[Table] | Mapping[str, Table | Sequence[Table]], required: list[str],
                 targets: tuple[str, ...] | None, failures: _Collector) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """One label table: target columns from one set of files, or one ``value`` file set per target (MuSe)."""
    if isinstance(labels, Mapping):
        merged = None
        for target, tables in labels.items():
            part = _stack(_as_list(tables), [*required, "value"], f"labels {target!r}", failures)
            part = part.rename(columns={"value": target})[[*required, target, "_file", "_row"]]
            merged = part if merged is None else merged.merge(part.drop(columns=["_file", "_row"]), on=required,
                                                              how="inner")
        return merged, tuple(labels)
    table = _stack(_as_list(labels), required, "labels", failures)
    if targets is None:
        targets = tuple(c for c in table.columns if c not in {*required, "_file", "_row"})
    missing = [t for t in targets if t not in table.columns]
    if missing or not targets:
        raise ExternalFeatureError("labels", f"no target column(s) {list(missing) or 'at all'} "
                                             f"(columns: {list(table.columns)})")
    return table, targets


def read_frames(
    features: Table | Sequence[Table],
    labels: Table | Sequence[Table] | Mapping[str, Table | Sequence[Table]] | None = None,
    *,
    id_column: str = "segment_id",
    time_column: str = "timestamp",
    time_unit: Literal["s", "ms"] = "ms",
    targets: Sequence[str] | None = None,
    strict: bool = False,
) -> tuple[list[SequenceRecord], Failures]:
    """Records from MuSe / AVEC-style frame-level feature CSVs and label CSVs on the same grid.

    Args:
        features: one or several CSV / parquet files (or DataFrames) with
            ``time_column``, ``id_column`` and feature columns (optional
            ``speaker``, ``session``, ``split`` columns describe the recording).
        labels: files with ``time_column``, ``id_column`` and target columns,
            or (MuSe) ``{target: files}`` with a ``value`` column each; None:
            unlabelled records.
        id_column: the recording id column.
        time_column: the frame time column.
        time_unit: ``"ms"`` (MuSe) or ``"s"``.
        targets: label columns to keep (default: all but id and time).
        strict: raise at the first bad file or recording instead of recording it.

    Returns:
        ``(records, failures)``: one record per id on the label frames, and
        ``{"id", "file", "reason"}`` per file or recording left out.

    Raises:
        ExternalFeatureError: under ``strict`` any problem; else when no
            recording is usable or the labels lack the targets.
    """
    failures = _Collector(strict)
    required = [id_column, time_column]
    feats = _stack(_as_list(features), required, "features", failures)
    labs, names = (None, tuple(targets or ())) if labels is None else _label_table(
        labels, required, None if targets is None else tuple(targets), failures)
    records = _records(feats, labs, id_column=id_column, time_column=time_column, time_unit=time_unit,
                       targets=names, failures=failures)
    return _finish(records, failures, "features")


def read_table(
    features: Table,
    labels: Table | None = None,
    *,
    id_column: str = "id",
    time_column: str | None = None,
    time_unit: Literal["s", "ms"] = "s",
    targets: Sequence[str] | None = None,
    strict: bool = False,
) -> tuple[list[SequenceRecord], Failures]:
    """Records from a plain CSV or parquet table with an id column.

    Without ``time_column`` every id is one utterance (one row, a length-1
    record); with it, every id's rows are frames on a regular grid, as
    :func:`read_frames`. Labels: a table with the id (and time) column and the
    target columns; or the target columns inside ``features`` itself
    (``labels=None`` and ``targets`` named).

    Returns:
        ``(records, failures)`` as :func:`read_frames`.

    Raises:
        ExternalFeatureError: as :func:`read_frames`.
    """
    failures = _Collector(strict)
    required = [id_column, *([time_column] if time_column else [])]
    feats = _stack([features], required, "features", failures)
    labs, names = None, tuple(targets or ())
    if labels is not None:
        labs, names = _label_table(labels, required, None if targets is None else tuple(targets), failures)
    elif targets:
        missing = [t for t in targets if t not in feats.columns]
        if missing:
            raise ExternalFeatureError(str(feats["_file"].iloc[0]) if len(feats) else "features",
                                       f"no target column(s) {missing}")
        labs, feats = feats[[*required, *names, "_file", "_row"]], feats.drop(columns=list(names))
    records = _records(feats, labs, id_column=id_column, time_column=time_column, time_unit=time_unit,
                       targets=names, failures=failures)
    return _finish(records, failures, "features")
