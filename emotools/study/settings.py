"""Settings of the long-context study: one context knob per model family, and the sweep's plan.

Each family has one knob (:data:`KNOBS`): the number of TDNN layers (each
new layer doubles the splice offsets, Peddinti-style sub-sampling), the
local attention window, the LSTM's training chunk length, the TCN / DSUS
levels; the frame-wise MLP is the floor. A :class:`Setting` is one value of
one knob; :func:`make_plan` pairs settings with the raters' lags to train at.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .. import models
from ..errors import EmotoolsError
from ..features import RATE_HZ  # the frame rate of the study's features and labels (Hz)

__all__ = ["RATE_HZ", "KNOBS", "StudyError", "Setting", "tdnn_contexts", "settings_from_grid", "unique_settings",
           "make_plan", "plan_table"]

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


class StudyError(EmotoolsError, ValueError):
    """A bad setting, grid or table for the long-context study: ``StudyError(subject, reason)``."""


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
        raise StudyError("tdnn_contexts", f"a TDNN needs at least 1 layer, got {layers}")
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
            raise StudyError(self.family, f"unknown family {self.family!r}; known: {', '.join(models.MODELS)}")
        if self.knob is None:
            return
        if self.value is None:
            raise StudyError(self.family, f"knob {self.knob!r} needs a value")
        if self.knob == "layers" and "contexts" not in _fields(self.family):
            raise StudyError(self.family, "has no TDNN layers to vary")
        if self.knob not in ("layers", "chunk_s") and self.knob not in _fields(self.family):
            raise StudyError(self.family, f"unknown knob {self.knob!r}; "
                               f"config fields: {sorted(_fields(self.family))}")
        if not float(self.value) > 0:
            raise StudyError(self.family, f"{self.knob} must be > 0, got {self.value}")

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
            raise StudyError(family, f"unknown family {family!r} in the grid; known: {', '.join(models.MODELS)}")
        if not values:
            out.append(Setting(family))
            continue
        knob = KNOBS.get(family)
        if knob is None:
            raise StudyError(family, "no context knob to sweep (give [] for its default config)")
        out += [Setting(family, knob, v) for v in values]
    return out
