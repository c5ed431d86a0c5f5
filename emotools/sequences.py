"""Sequences: align features with labels, normalize, chunk, batch, score.

A :class:`SequenceRecord` is one recording as the models see it: features
``x`` ``(time, features)`` and labels ``y`` ``(time, targets)`` on the label
time grid, with the time of every frame, the frame rate, and who / where it
came from (speaker, session, split). Everything downstream (normalization,
chunking, batching, training, post-processing, scoring) works on lists of
records.

>>> import pandas as pd
>>> features = pd.DataFrame({"start": [0.0, 0.1, 0.2], "end": [0.1, 0.2, 0.3], "f0": [1.0, 2.0, 3.0]})
>>> labels = pd.DataFrame({"time": [0.05, 0.15, 0.25], "arousal": [0.1, 0.2, 0.3], "valence": [0.0, 0.0, 0.1]})
>>> x, y, time = align(features, labels)
>>> x[:, 0].tolist(), y.shape
([1.0, 2.0, 3.0], (3, 2))
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from . import metrics
from .errors import EmotoolsError
from .labels import TARGETS
from .metrics import CCCProtocol
from .timing import exact_rate

__all__ = [
    "SequenceError",
    "SequenceRecord",
    "align",
    "make_record",
    "build_records",
    "Normalization",
    "Normalizer",
    "chunk",
    "shift_labels",
    "with_labels",
    "SequenceDataset",
    "pad",
    "collate",
    "protocol_ccc",
]

log = logging.getLogger(__name__)


class SequenceError(EmotoolsError, ValueError):
    """Features or labels that cannot form a sequence: ``SequenceError(recording, reason)``."""


# --------------------------------------------------------------------------- records


@dataclass
class SequenceRecord:
    """One recording (or a chunk of one) on its label time grid.

    Attributes:
        id: recording id (chunks: ``"<id>@<first frame>"``).
        x: features ``(time, features)`` float32.
        time: time of each frame in seconds ``(time,)``.
        rate_hz: frames per second.
        y: labels ``(time, targets)`` float32, or None (unlabelled).
        speaker, session, split: provenance, used by normalization and splits.
        feature_names: names of the columns of ``x``.
        target_names: names of the columns of ``y``.
        offset: first frame within the parent recording (chunks; 0 otherwise).
    """

    id: str
    x: np.ndarray
    time: np.ndarray
    rate_hz: float
    y: np.ndarray | None = None
    speaker: str = ""
    session: str = ""
    split: str = ""
    feature_names: tuple[str, ...] = ()
    target_names: tuple[str, ...] = TARGETS
    offset: int = 0

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, dtype=np.float32)
        self.time = np.asarray(self.time, dtype=np.float64)
        if self.x.ndim != 2 or len(self.x) == 0:
            raise SequenceError(self.id, f"features must be a non-empty (time, features) array, got {self.x.shape}")
        if self.time.shape != (len(self.x),):
            raise SequenceError(self.id, f"time has shape {self.time.shape}, features have {len(self.x)} frames")
        if not np.isfinite(self.x).all():
            raise SequenceError(self.id, "features contain NaN or inf")
        if not self.rate_hz > 0:
            raise SequenceError(self.id, f"rate_hz must be > 0, got {self.rate_hz}")
        if self.y is not None:
            self.y = np.asarray(self.y, dtype=np.float32)
            if self.y.ndim == 1:
                self.y = self.y[:, None]
            if self.y.shape[0] != len(self.x):
                raise SequenceError(self.id, f"labels have {self.y.shape[0]} frames, features {len(self.x)}")
            if self.y.shape[1] != len(self.target_names):
                raise SequenceError(self.id, f"labels have {self.y.shape[1]} columns, target_names {self.target_names}")
            if not np.isfinite(self.y).all():
                raise SequenceError(self.id, "labels contain NaN or inf")
        self.feature_names = tuple(self.feature_names)
        self.target_names = tuple(self.target_names)

    def __len__(self) -> int:
        return len(self.x)

    @property
    def duration(self) -> float:
        """Length in seconds (frames / rate)."""
        return len(self) / self.rate_hz

    def replace(self, **changes: Any) -> SequenceRecord:
        """A copy with some fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)

    def select_targets(self, targets: Sequence[str]) -> SequenceRecord:
        """The same record with only ``targets`` as label columns, in that order."""
        targets = tuple(targets)
        if self.y is None or targets == self.target_names:
            return self
        missing = [t for t in targets if t not in self.target_names]
        if missing:
            raise SequenceError(self.id, f"targets {missing} not among labels {self.target_names}")
        cols = [self.target_names.index(t) for t in targets]
        return self.replace(y=self.y[:, cols], target_names=targets)


def _check_increasing(values: np.ndarray, name: str, what: str) -> None:
    if len(values) > 1 and not (np.diff(values) > 0).all():
        raise SequenceError(name, f"{what} is not strictly increasing")


def align(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    targets: Sequence[str] = TARGETS,
    method: Literal["nearest", "linear"] = "nearest",
    name: str = "sequence",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Put features on the label time grid, using timestamps.

    A feature frame's time is its window centre, ``(start + end) / 2``. Label
    frames whose time lies outside every feature window (before the first
    ``start`` or after the last ``end``) are dropped; every other label frame
    takes the feature frame with the nearest centre (``"nearest"``) or the
    interpolation between the two neighbouring centres (``"linear"``).

    Args:
        features: ``start``, ``end`` (seconds) and numeric feature columns.
        labels: ``time`` (seconds) and the ``targets`` columns.
        targets: label columns to return, in order.
        method: ``"nearest"`` or ``"linear"``.
        name: used in error messages (e.g. the recording id).

    Returns:
        ``x`` ``(time, features)`` float32, ``y`` ``(time, targets)`` float32,
        ``time`` ``(time,)`` float64 seconds.

    Raises:
        SequenceError: missing columns, NaN, unsorted times, no overlap.
    """
    for col in ("start", "end"):
        if col not in features.columns:
            raise SequenceError(name, f"features have no {col!r} column (columns: {list(features.columns)[:5]}...)")
    missing = [c for c in ("time", *targets) if c not in labels.columns]
    if missing:
        raise SequenceError(name, f"labels lack column(s) {missing}")
    fcols = [c for c in features.columns if c not in ("start", "end") and pd.api.types.is_numeric_dtype(features[c])]
    if not fcols or len(features) == 0:
        raise SequenceError(name, "features are empty")
    if len(labels) == 0:
        raise SequenceError(name, "labels are empty")
    start = features["start"].to_numpy(np.float64)
    end = features["end"].to_numpy(np.float64)
    centre = (start + end) / 2
    _check_increasing(centre, name, "feature time")
    t = labels["time"].to_numpy(np.float64)
    _check_increasing(t, name, "label time")
    y = labels[list(targets)].to_numpy(np.float32)
    if not np.isfinite(y).all():
        raise SequenceError(name, "labels contain NaN or inf")
    feats = features[fcols].to_numpy(np.float32)
    if not np.isfinite(feats).all():
        raise SequenceError(name, "features contain NaN or inf")
    keep = (t >= start.min()) & (t <= end.max())
    if not keep.any():
        raise SequenceError(
            name, f"no label frame within the features' time span [{start.min():.3f}, {end.max():.3f}] s"
        )
    t, y = t[keep], y[keep]
    right = np.clip(np.searchsorted(centre, t), 0, len(centre) - 1)
    left = np.clip(right - 1, 0, len(centre) - 1)
    if method == "nearest":
        idx = np.where(np.abs(centre[left] - t) <= np.abs(centre[right] - t), left, right)
        x = feats[idx]
    elif method == "linear":
        span = centre[right] - centre[left]
        w = np.where(span > 0, (t - centre[left]) / np.where(span > 0, span, 1.0), 0.0)
        w = np.clip(w, 0.0, 1.0)[:, None].astype(np.float32)
        x = (1 - w) * feats[left] + w * feats[right]
    else:
        raise SequenceError(name, f"unknown align method {method!r}: use 'nearest' or 'linear'")
    return x.astype(np.float32), y, t


def _rate(time: np.ndarray, name: str) -> float:
    """Frames per second of a label time grid (median step, made exact by :func:`emotools.timing.exact_rate`)."""
    if len(time) < 2:
        raise SequenceError(name, "need at least 2 label frames to know the frame rate")
    step = float(np.median(np.diff(time)))
    if not step > 0:
        raise SequenceError(name, f"time steps must be > 0, the median is {step}")
    return exact_rate(step)


def make_record(
    id: str,
    features: pd.DataFrame,
    labels: pd.DataFrame | None = None,
    *,
    targets: Sequence[str] = TARGETS,
    speaker: str = "",
    session: str = "",
    split: str = "",
    rate_hz: float | None = None,
    method: Literal["nearest", "linear"] = "nearest",
) -> SequenceRecord:
    """One :class:`SequenceRecord` from a feature table and (optionally) label frames.

    Without labels the record keeps the feature frames as they are (time =
    window centres), e.g. for prediction on new audio.
    """
    if labels is not None:
        x, y, time = align(features, labels, targets=targets, method=method, name=id)
        rate = rate_hz or _rate(labels["time"].to_numpy(np.float64), id)
    else:
        for col in ("start", "end"):
            if col not in features.columns:
                raise SequenceError(id, f"features have no {col!r} column")
        time = ((features["start"] + features["end"]) / 2).to_numpy(np.float64)
        _check_increasing(time, id, "feature time")
        x, y = None, None
        rate = rate_hz or _rate(time, id)
    fcols = [c for c in features.columns if c not in ("start", "end") and pd.api.types.is_numeric_dtype(features[c])]
    if x is None:
        x = features[fcols].to_numpy(np.float32)
    return SequenceRecord(
        id=str(id), x=x, y=y, time=time, rate_hz=float(rate), speaker=str(speaker), session=str(session),
        split=str(split), feature_names=tuple(fcols), target_names=tuple(targets),
    )


def build_records(
    table: pd.DataFrame,
    features: Callable[[str], pd.DataFrame] | Mapping[str, pd.DataFrame],
    labels: Callable[[str], pd.DataFrame] | Mapping[str, pd.DataFrame] | None = None,
    *,
    id_column: str = "utterance",
    targets: Sequence[str] = TARGETS,
    method: Literal["nearest", "linear"] = "nearest",
    progress: bool = False,
) -> tuple[list[SequenceRecord], list[dict[str, str]]]:
    """Records for every row of a corpus table; failures are recorded, not raised.

    Args:
        table: one row per recording with ``id_column`` and optionally
            ``speaker``, ``session``, ``split``.
        features: id -> feature table (e.g. ``FeatureStore(out).load``) or a mapping.
        labels: id -> label frames, a mapping, or None for unlabelled records.
        id_column: the column holding the recording id.

    Returns:
        ``(records, failures)``, failures as ``{"id", "reason"}`` dicts.
    """
    from .progress import tqdm

    get_f = features.__getitem__ if isinstance(features, Mapping) else features
    get_l = None if labels is None else (labels.__getitem__ if isinstance(labels, Mapping) else labels)
    if id_column not in table.columns:
        raise SequenceError("table", f"no {id_column!r} column (columns: {list(table.columns)})")
    records, failures = [], []
    for row in tqdm(table.to_dict("records"), desc="sequences", disable=not progress):
        rid = str(row[id_column])
        try:
            rec = make_record(
                rid, get_f(rid), None if get_l is None else get_l(rid), targets=targets,
                speaker=row.get("speaker", ""), session=row.get("session", ""), split=row.get("split", ""),
                method=method,
            )
        except Exception as error:  # one bad recording never stops the batch
            reason = error.reason if isinstance(error, SequenceError) else f"{type(error).__name__}: {error}"
            log.warning("skipping %s: %s", rid, reason)
            failures.append({"id": rid, "reason": reason})
            continue
        records.append(rec)
    return records, failures


# --------------------------------------------------------------------------- normalization


class Normalization(str, Enum):
    """How features are z-normalized."""

    GLOBAL = "global"  #: one mean/std for all, fit on the training split only
    SPEAKER = "speaker"  #: each recording by its speaker's statistics
    SESSION = "session"  #: each recording by its session's statistics
    NONE = "none"


class Normalizer:
    """Feature z-normalization whose state travels with the model.

    ``global``: statistics of all training frames. ``speaker`` / ``session``:
    every recording is standardized with the statistics of all frames of its
    speaker / session (unsupervised, so a test speaker's own features may be
    used, as is common for speaker normalization in this field). Groups seen
    in :meth:`fit` keep their fitted statistics; a group first seen in
    :meth:`transform` gets the statistics of its records passed in that call.
    Standard deviations below ``eps`` count as 1 (constant features stay 0).

    >>> import numpy as np
    >>> rec = SequenceRecord("a", x=np.array([[1.0], [3.0]]), time=np.array([0.0, 0.1]), rate_hz=10.0)
    >>> Normalizer("global").fit([rec]).transform([rec])[0].x[:, 0].tolist()
    [-1.0, 1.0]
    """

    def __init__(self, mode: Normalization | str = Normalization.GLOBAL, *, eps: float = 1e-6) -> None:
        try:
            self.mode = Normalization(mode)
        except ValueError:
            raise SequenceError(
                "normalizer", f"unknown mode {mode!r}; use one of {[m.value for m in Normalization]}"
            ) from None
        self.eps = eps
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.groups: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _key(self, rec: SequenceRecord) -> str:
        key = rec.speaker if self.mode is Normalization.SPEAKER else rec.session
        if not key:
            raise SequenceError(rec.id, f"{self.mode.value} normalization needs a {self.mode.value} name")
        return key

    def _stats(self, xs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        x = np.concatenate(xs).astype(np.float64)
        mean, std = x.mean(0), x.std(0)
        std = np.where(std < self.eps, 1.0, std)
        return mean.astype(np.float32), std.astype(np.float32)

    def _by_group(self, records: Iterable[SequenceRecord]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        groups: dict[str, list[np.ndarray]] = {}
        for rec in records:
            groups.setdefault(self._key(rec), []).append(rec.x)
        return {k: self._stats(v) for k, v in groups.items()}

    def fit(self, records: Sequence[SequenceRecord]) -> Normalizer:
        """Fit on the training records (never on dev or test for ``global``)."""
        if not records:
            raise SequenceError("normalizer", "cannot fit on no records")
        self.mean, self.std = self._stats([r.x for r in records])
        if self.mode in (Normalization.SPEAKER, Normalization.SESSION):
            self.groups = self._by_group(records)
        return self

    def transform(self, records: Sequence[SequenceRecord]) -> list[SequenceRecord]:
        """Normalized copies of ``records``."""
        if self.mode is Normalization.NONE:
            return list(records)
        if self.mean is None:
            raise SequenceError("normalizer", "transform before fit")
        if self.mode is Normalization.GLOBAL:
            return [r.replace(x=(r.x - self.mean) / self.std) for r in records]
        new = self._by_group(r for r in records if self._key(r) not in self.groups)
        stats = {**new, **self.groups}
        return [r.replace(x=(r.x - stats[self._key(r)][0]) / stats[self._key(r)][1]) for r in records]

    def state_dict(self) -> dict[str, Any]:
        """Plain lists and numbers (JSON- and ``torch.load(weights_only=True)``-safe)."""

        def lst(a: np.ndarray | None) -> list[float] | None:
            return None if a is None else [float(v) for v in a]

        return {
            "mode": self.mode.value,
            "eps": self.eps,
            "mean": lst(self.mean),
            "std": lst(self.std),
            "groups": {k: [lst(m), lst(s)] for k, (m, s) in self.groups.items()},
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Normalizer:
        """Inverse of :meth:`state_dict`."""
        norm = cls(state["mode"], eps=state["eps"])

        def arr(v: list[float] | None) -> np.ndarray | None:
            return None if v is None else np.asarray(v, dtype=np.float32)

        norm.mean, norm.std = arr(state["mean"]), arr(state["std"])
        norm.groups = {k: (arr(m), arr(s)) for k, (m, s) in state["groups"].items()}
        return norm


# --------------------------------------------------------------------------- chunks, shifts


def chunk(records: Sequence[SequenceRecord], *, length_s: float = 30.0,
          hop_s: float | None = None) -> list[SequenceRecord]:
    """Cut long records into overlapping chunks for training.

    Chunks of ``length_s`` seconds start every ``hop_s`` seconds (default:
    half the length); the last chunk is aligned to the end so every frame is
    covered and every chunk of a long record has the same length. Records no
    longer than ``length_s`` are kept whole.
    """
    if length_s <= 0:
        raise SequenceError("chunk", f"length_s must be > 0, got {length_s}")
    hop_s = length_s / 2 if hop_s is None else hop_s
    if hop_s <= 0:
        raise SequenceError("chunk", f"hop_s must be > 0, got {hop_s}")
    out = []
    for rec in records:
        n, T = max(1, round(length_s * rec.rate_hz)), len(rec)
        hop = max(1, round(hop_s * rec.rate_hz))
        if T <= n:
            out.append(rec)
            continue
        starts = list(range(0, T - n, hop)) + [T - n]
        for s in starts:
            out.append(rec.replace(
                id=f"{rec.id}@{rec.offset + s}", x=rec.x[s : s + n], time=rec.time[s : s + n],
                y=None if rec.y is None else rec.y[s : s + n], offset=rec.offset + s,
            ))
    return out


def shift_labels(records: Sequence[SequenceRecord], delay_s: float) -> list[SequenceRecord]:
    """Compensate an annotation delay for training: pair features at ``t`` with labels at ``t + delay``.

    Raters react late, so the label at ``t`` describes the speech at about
    ``t - delay``. The shifted records end ``delay`` earlier (the last labels
    have no features). A model trained on them predicts ``delay`` ahead;
    :func:`emotools.postprocess.delay` with the same frames shifts its
    predictions back onto the label grid.
    """
    out = []
    for rec in records:
        k = round(delay_s * rec.rate_hz)
        if rec.y is None or k == 0:
            out.append(rec)
            continue
        if abs(k) >= len(rec):
            raise SequenceError(rec.id, f"delay of {k} frames is longer than the record ({len(rec)} frames)")
        if k > 0:
            out.append(rec.replace(x=rec.x[:-k], time=rec.time[:-k], y=rec.y[k:]))
        else:
            out.append(rec.replace(x=rec.x[-k:], time=rec.time[-k:], y=rec.y[:k]))
    return out


# --------------------------------------------------------------------------- torch


class SequenceDataset(torch.utils.data.Dataset):
    """Records as ``(x (time, features), y (time, targets))`` float32 tensors.

    Unlabelled records give ``y`` of shape ``(time, 0)``.
    """

    def __init__(self, records: Sequence[SequenceRecord]) -> None:
        self.records = list(records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rec = self.records[i]
        y = np.zeros((len(rec), 0), np.float32) if rec.y is None else rec.y
        return torch.from_numpy(rec.x), torch.from_numpy(y)


def pad(arrays: Sequence[torch.Tensor | np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad ``(time_i, dim)`` arrays to ``(batch, max time, dim)``; returns ``(padded, lengths)``."""
    tensors = [torch.as_tensor(a) for a in arrays]
    lengths = torch.tensor([len(t) for t in tensors], dtype=torch.long)
    return torch.nn.utils.rnn.pad_sequence(tensors, batch_first=True), lengths


def collate(batch: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DataLoader ``collate_fn``: pairs -> ``(x (B, T, F), lengths (B,), y (B, T, K))``, zero padded."""
    x, lengths = pad([b[0] for b in batch])
    y, _ = pad([b[1] for b in batch])
    return x, lengths, y


# --------------------------------------------------------------------------- scoring protocols


def protocol_ccc(
    y_true: Sequence[np.ndarray], y_pred: Sequence[np.ndarray], ccc_protocol: CCCProtocol | str = CCCProtocol.CONCAT
) -> np.ndarray:
    """CCC per target column over a list of recordings, by ``ccc_protocol``.

    Args:
        y_true: ``(time_i, targets)`` (or ``(time_i,)``) per recording.
        y_pred: same shapes.
        ccc_protocol: :class:`emotools.metrics.CCCProtocol` (``"concat"`` or
            ``"per_recording"``).

    Returns:
        ``(targets,)`` CCC values (per-recording: NaN-ignoring mean; a
        recording with an undefined CCC is skipped).
    """
    ccc_protocol = CCCProtocol(ccc_protocol)
    if len(y_true) != len(y_pred) or not y_true:
        raise SequenceError("scores", f"need equally many recordings, got {len(y_true)} and {len(y_pred)}")
    t = [np.asarray(a, np.float64).reshape(len(a), -1) for a in y_true]
    p = [np.asarray(a, np.float64).reshape(len(a), -1) for a in y_pred]
    for i, (a, b) in enumerate(zip(t, p)):
        if a.shape != b.shape:
            raise SequenceError("scores", f"recording {i}: labels {a.shape} vs predictions {b.shape}")
    K = t[0].shape[1]
    if ccc_protocol is CCCProtocol.CONCAT:
        T, P = np.concatenate(t), np.concatenate(p)
        return np.array([metrics.ccc(T[:, k], P[:, k]) for k in range(K)])
    per = np.array([[metrics.ccc(a[:, k], b[:, k]) for k in range(K)] for a, b in zip(t, p)])
    with np.errstate(all="ignore"):
        return np.array([np.nanmean(per[:, k]) if np.isfinite(per[:, k]).any() else np.nan for k in range(K)])


def with_labels(records: Sequence[SequenceRecord], frames: Mapping[str, pd.DataFrame]) -> list[SequenceRecord]:
    """The same records (same features) with labels taken from other label frames.

    Each record's frames are matched by time (records keep the label grid's
    timestamps), so features never have to be aligned again; e.g. labels at
    another raters' lag (:func:`emotools.labels.lag_labels`).

    Raises:
        SequenceError: a record without a label frame, or times the frame lacks.
    """
    out = []
    for rec in records:
        if rec.id not in frames:
            raise SequenceError(rec.id, "no label frame")
        frame = frames[rec.id]
        t = frame["time"].to_numpy(np.float64)
        idx = np.clip(np.searchsorted(t, rec.time - 1e-6), 0, len(t) - 1)
        if len(t) == 0 or np.abs(t[idx] - rec.time).max() > 1e-6:
            raise SequenceError(rec.id, "the label frame lacks some of the record's times")
        y = frame[list(rec.target_names)].to_numpy(np.float32)[idx]
        out.append(rec.replace(y=y))
    return out
