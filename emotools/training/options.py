"""Training options, the training loss and the training error.

:class:`FitOptions` is the one way into :func:`emotools.training.fit`: every
choice that determines a fit besides the model and the data, checked when
made, serialised with :meth:`~FitOptions.to_dict` / :meth:`~FitOptions.from_dict`
and fingerprinted so that a checkpoint resumes only the run that wrote it.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from .. import metrics
from ..errors import EmotoolsError
from ..metrics import CCCProtocol
from ..models import ModelConfig
from ..sequences import Normalization

__all__ = ["TrainingError", "Loss", "LOSSES", "LRSchedule", "LR_SCHEDULES", "Precision", "PRECISIONS", "step_lr",
           "FitOptions", "resolve_precision", "fingerprint_differences", "compute_loss"]

Loss = Literal["ccc", "mse", "ccc+mse"]
LOSSES: tuple[str, ...] = ("ccc", "mse", "ccc+mse")
LRSchedule = Literal["cosine", "constant"]
LR_SCHEDULES: tuple[str, ...] = ("cosine", "constant")
Precision = Literal["auto", "float32", "bfloat16"]
PRECISIONS: tuple[str, ...] = ("auto", "float32", "bfloat16")


class TrainingError(EmotoolsError, ValueError):
    """Bad training input, options or checkpoint: ``TrainingError(subject, reason)``."""


# --------------------------------------------------------------------------- options


def _check_loss(loss: str) -> None:
    if loss not in LOSSES:
        raise TrainingError(f"unknown loss {loss!r}", "use 'ccc', 'mse' or 'ccc+mse'")


def _check_number(name: str, value: Any, low: float, *, above: bool = False, integer: bool = False,
                  optional: bool = False) -> None:
    # A finite number >= low (> low with ``above``); an integer with ``integer``; None with ``optional``.
    if optional and value is None:
        return
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if above else value >= low) and (not integer or int(value) == value)
    if not ok:
        kind = "an integer" if integer else "a number"
        bound = "" if low == -math.inf else f" {'>' if above else '>='} {low:g}"
        raise TrainingError(name, f"must be {kind}{bound}{' or None' if optional else ''}, got {value!r}")


@dataclass(frozen=True)
class FitOptions:
    """How :func:`fit` trains, besides the model and the data; checked when made, saved with checkpoints.

    Attributes:
        targets: label columns to predict jointly, e.g. ``("arousal",
            "valence")``; None: all of the training records'.
        loss: ``"ccc"`` (default), ``"mse"`` or ``"ccc+mse"``.
        epochs: maximum number of epochs.
        batch_size: chunks per step (8: twelve steps per epoch on the default
            corpus, so the model converges in a few epochs).
        lr: peak Adam learning rate, reached after ``warmup_steps`` steps of
            linear warm-up, then as ``lr_schedule`` says.
        weight_decay: Adam L2 penalty.
        clip_norm: gradient norm clipping (``0``: none).
        warmup_steps: steps of linear learning-rate warm-up (``0``: none);
            the default is one epoch of the default corpus.
        lr_schedule: after the warm-up, ``"cosine"`` (default: half a cosine
            from ``lr`` down to 0 at the last step of ``epochs``, so the last
            epochs refine and a short run converges) or ``"constant"``.
        patience: stop after this many epochs without a better dev CCC.
        chunk_s, hop_s: training chunk length and hop in seconds
            (``chunk_s=None``: whole recordings; ``hop_s=None``: half a chunk).
        normalization: ``"global"`` (fit on the training records),
            ``"speaker"``, ``"session"`` or ``"none"``.
        ccc_protocol: the dev CCC used for early stopping (``"concat"`` or
            ``"per_recording"``), averaged over targets.
        seed: initialization, dropout and shuffling.
        model_options: model config overrides, e.g. ``{"hidden": 32}``.
        precision: arithmetic of the training steps' forward and backward
            passes. ``"bfloat16"``: under :func:`torch.autocast` in bfloat16
            (weights, optimizer, loss, dev evaluation and every prediction
            stay float32); ``"float32"``: plain float32; ``"auto"`` (default):
            bfloat16 where the device computes it natively (CPUs with
            AVX512-BF16 or AMX, CUDA GPUs that support it), else float32
            (:func:`resolve_precision`). The precision a fit used is stored
            in its ``options``.

    Raises:
        TrainingError: a value out of range or an unknown choice.

    >>> FitOptions(epochs=5).replace(seed=3).to_dict()["seed"]
    3
    """

    targets: tuple[str, ...] | None = None
    loss: Loss = "ccc"
    epochs: int = 10
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 0.0
    clip_norm: float = 1.0
    warmup_steps: int = 12
    lr_schedule: LRSchedule = "cosine"
    patience: int = 4
    chunk_s: float | None = 30.0
    hop_s: float | None = None
    normalization: Normalization | str = Normalization.GLOBAL
    ccc_protocol: CCCProtocol | str = CCCProtocol.CONCAT
    seed: int = 0
    model_options: Mapping[str, Any] = field(default_factory=dict)
    precision: Precision = "auto"

    def __post_init__(self) -> None:
        _check_loss(self.loss)
        for name, low in (("epochs", 1), ("batch_size", 1), ("warmup_steps", 0), ("patience", 1), ("seed", -math.inf)):
            _check_number(name, getattr(self, name), low, integer=True)
            object.__setattr__(self, name, int(getattr(self, name)))
        for name in ("lr", "weight_decay", "clip_norm"):
            _check_number(name, getattr(self, name), 0)
        if self.lr_schedule not in LR_SCHEDULES:
            raise TrainingError("lr_schedule", f"unknown value {self.lr_schedule!r}; use one of {list(LR_SCHEDULES)}")
        if self.precision not in PRECISIONS:
            raise TrainingError("precision", f"unknown value {self.precision!r}; use one of {list(PRECISIONS)}")
        for name in ("chunk_s", "hop_s"):
            _check_number(name, getattr(self, name), 0, above=True, optional=True)
        if self.targets is not None and (isinstance(self.targets, str) or not self.targets):
            raise TrainingError("targets", f"must be a non-empty sequence of names or None, got {self.targets!r}")
        if not isinstance(self.model_options, Mapping):
            raise TrainingError("model_options", f"must be a mapping, got {type(self.model_options).__name__}")
        choices = (("normalization", Normalization), ("ccc_protocol", CCCProtocol))
        for name, enum in choices:
            try:
                object.__setattr__(self, name, enum(getattr(self, name)).value)
            except ValueError:
                raise TrainingError(name, f"unknown value {getattr(self, name)!r}; use one of "
                                          f"{[m.value for m in enum]}") from None
        object.__setattr__(self, "targets", None if self.targets is None else tuple(self.targets))
        object.__setattr__(self, "model_options", dict(self.model_options))

    def replace(self, **changes: Any) -> FitOptions:
        """A copy with some options changed (checked again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready options; inverse of :meth:`from_dict`."""
        d = dataclasses.asdict(self)
        d["targets"] = None if self.targets is None else list(self.targets)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FitOptions:
        """Options from :meth:`to_dict` (unknown keys are an error)."""
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise TrainingError("FitOptions", f"unknown option(s) {unknown}")
        return cls(**d)

    def fingerprint(self, config: ModelConfig, targets: Sequence[str],
                    device: torch.device | str = "cpu") -> dict[str, Any]:
        """What must match to resume a fit: every option, with the built config.

        ``epochs`` counts only under the cosine schedule (which spans them);
        with ``lr_schedule="constant"`` it may grow and is left out, and so is
        ``lr_schedule``: the layout (``model``, ``targets``, and ``protocol``
        for the CCC protocol) is then the one checkpoints have always stored,
        so they resume. ``precision`` counts as resolved
        (:func:`resolve_precision` on ``device``), and only when it is not
        float32, for the same reason.
        """
        d = self.to_dict()
        d.pop("model_options")  # model_options live in the built config
        if resolve_precision(self.precision, device) == "float32":
            d.pop("precision")
        else:
            d["precision"] = "bfloat16"
        if self.lr_schedule == "constant":
            d.pop("epochs")
            d.pop("lr_schedule")
        d["protocol"] = d.pop("ccc_protocol")
        return {**d, "model": config.to_dict(), "targets": list(targets)}


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> str:
    """``"float32"`` or ``"bfloat16"``: what :attr:`FitOptions.precision` means on ``device``.

    ``"auto"`` is bfloat16 where the hardware computes it natively: on CPU,
    AVX512-BF16 or AMX (there, bfloat16 autocast makes training epochs
    faster: ``benchmarks/bench_kernels.py``; without them it is emulated and
    slower); on
    CUDA, :func:`torch.cuda.is_bf16_supported`. Other devices: float32.

    >>> resolve_precision("float32"), resolve_precision("bfloat16")
    ('float32', 'bfloat16')
    """
    if precision != "auto":
        return precision
    kind = torch.device(device).type
    if kind == "cuda":
        return "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32"
    if kind == "cpu":
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        native = any(getattr(torch.cpu, name, lambda: False)() for name in probes)
        return "bfloat16" if native else "float32"
    return "float32"


def step_lr(options: FitOptions, step: int, total_steps: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based) of ``total_steps``: linear warm-up, then the schedule.

    >>> o = FitOptions(lr=1.0, warmup_steps=2)
    >>> [round(step_lr(o, s, 6), 2) for s in range(6)]
    [0.5, 1.0, 0.85, 0.5, 0.15, 0.0]
    """
    if options.warmup_steps > 0 and step < options.warmup_steps:
        return options.lr * (step + 1) / options.warmup_steps
    if options.lr_schedule == "constant":
        return options.lr
    span = max(1, total_steps - max(options.warmup_steps, 1))
    done = min(1.0, (step - max(options.warmup_steps, 1) + 1) / span)
    return options.lr * 0.5 * (1.0 + math.cos(math.pi * done))


def fingerprint_differences(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """Names of the options in which two :meth:`FitOptions.fingerprint` dicts differ (as options are named)."""
    names = {"protocol": "ccc_protocol"}  # the fingerprint keeps the name checkpoints have always stored
    return sorted(names.get(k, k) for k in set(saved) | set(now) if saved.get(k) != now.get(k))


# --------------------------------------------------------------------------- losses


def compute_loss(truth: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor, loss: Loss = "ccc") -> torch.Tensor:
    """Training loss over valid frames.

    ``ccc``: ``1 - CCC`` over the batch's frames concatenated, averaged over
    targets (:func:`emotools.metrics.ccc_loss`); ``mse``: mean squared error;
    ``ccc+mse``: their sum.
    """
    _check_loss(loss)
    total = pred.new_zeros(())
    if "ccc" in loss:
        total = total + metrics.ccc_loss(truth, pred, mask, ccc_protocol=CCCProtocol.CONCAT)
    if "mse" in loss:
        w = mask.to(pred.dtype)[..., None]
        diff = torch.where(mask[..., None], pred - truth, torch.zeros_like(pred))
        total = total + (diff**2 * w).sum() / (w.sum().clamp_min(1.0) * pred.shape[-1])
    return total


