"""Model configurations: one ``@dataclass`` per architecture, composed of its blocks' options.

Every config has the options shared by all models (:class:`ModelConfig`)
plus one *part* per kind of block it stacks: :class:`FrameFields`,
:class:`TDNNFields`, :class:`AttentionFields`, :class:`LSTMFields`,
:class:`ConvFields`. A part declares its fields, their defaults (those of
the single-block architecture) and their checks once; an architecture only
overrides a default where it differs. The fields stay flat, so
:meth:`ModelConfig.to_dict` is the same flat JSON dict checkpoints have
always carried and :meth:`ModelConfig.from_dict` reads it back.

>>> config = config_from_dict({"name": "attention_lstm", "window": 25})
>>> config.window, config.lstm_layers, config.to_dict()["heads"]
(25, 1, 4)
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from ..errors import EmotoolsError

__all__ = [
    "ModelConfigError",
    "OUTPUTS",
    "TDNN_CONTEXTS",
    "TDNN_FRONT_CONTEXTS",
    "FrameFields",
    "TDNNFields",
    "AttentionFields",
    "LSTMFields",
    "ConvFields",
    "ModelConfig",
    "MLPConfig",
    "LSTMConfig",
    "TDNNConfig",
    "AttentionConfig",
    "TDNNLSTMConfig",
    "AttentionTDNNConfig",
    "AttentionLSTMConfig",
    "AttentionTDNNLSTMConfig",
    "TCNConfig",
    "DSUSConfig",
    "MODELS",
    "parse_architecture",
    "arch_order",
    "make_config",
    "config_from_dict",
]


class ModelConfigError(EmotoolsError, ValueError):
    """An unknown model name or an invalid model option; ``str(err)`` is ``"<model>: <reason>"``.

    A ``ValueError`` too, as callers have always caught it.
    """


#: Peddinti et al. (2015)-style splicing: offsets per layer, widening with depth.
#: Context: -23..+23 frames (4.7 s at 10 Hz).
TDNN_CONTEXTS: tuple[tuple[int, ...], ...] = ((-2, -1, 0, 1, 2), (-3, 0, 3), (-6, 0, 6), (-12, 0, 12))
#: Output activations of the head: ``"linear"`` (unbounded, the default) or ``"sigmoid"`` (in (0, 1)).
OUTPUTS: tuple[str, ...] = ("linear", "sigmoid")
#: A short TDNN front-end for the hybrids: -5..+5 frames (1.1 s at 10 Hz).
TDNN_FRONT_CONTEXTS: tuple[tuple[int, ...], ...] = ((-2, -1, 0, 1, 2), (-3, 0, 3))


# --------------------------------------------------------------------------- parts


class _Part:
    """Base of configs and their parts: errors name the model; checks chain through the parts.

    Each part's ``_check`` calls ``super()._check()`` first, so a config
    checks the shared options, then its parts in field order.
    """

    name: ClassVar[str] = ""
    # ModelConfig fields every block reads; declared here for the parts' type hints.
    hidden: int
    dropout: float
    lookahead: int | None

    def _check(self) -> None:
        """Raise :class:`ModelConfigError` for an invalid value."""

    def _at_least(self, minimum: int, *keys: str) -> None:
        for key in keys:
            value = getattr(self, key)
            if int(value) < minimum:
                raise ModelConfigError(self.name, f"{key} must be >= {minimum}, got {value}")


@dataclass
class FrameFields(_Part):
    """Frame-wise MLP block: ``layers`` x (Linear, GELU, dropout)."""

    layers: int = 2

    def _check(self) -> None:
        super()._check()
        self._at_least(1, "layers")


@dataclass
class TDNNFields(_Part):
    """TDNN block: one splice offset list per layer (JSON lists are read back as tuples)."""

    contexts: tuple[tuple[int, ...], ...] = TDNN_CONTEXTS

    def _check(self) -> None:
        super()._check()
        self.contexts = tuple(tuple(int(o) for o in layer) for layer in self.contexts)
        if not self.contexts or any(len(layer) == 0 for layer in self.contexts):
            raise ModelConfigError(self.name, f"contexts must be non-empty offset lists, got {self.contexts}")


@dataclass
class AttentionFields(_Part):
    """Pre-norm transformer encoder with rotary (relative) positions.

    Attributes:
        attention_layers: number of self-attention layers.
        heads: attention heads (``hidden`` must be divisible by it).
        window: each frame attends to frames within +-``window`` frames
            (``None``: global attention, unbounded context).
        ffn_mult: width of the feed-forward layer in multiples of ``hidden``.
    """

    attention_layers: int = 2
    heads: int = 4
    window: int | None = 50
    ffn_mult: int = 2

    def _check(self) -> None:
        super()._check()
        self._at_least(1, "attention_layers", "heads", "ffn_mult")
        if self.hidden % self.heads or (self.hidden // self.heads) % 2:
            raise ModelConfigError(
                self.name,
                f"hidden ({self.hidden}) must be divisible by heads ({self.heads}) into an even "
                "head size (rotary positions rotate pairs)",
            )
        if self.window is not None and self.window < 1:
            raise ModelConfigError(self.name, f"window must be >= 1 frame or None (global), got {self.window}")


@dataclass
class LSTMFields(_Part):
    """Stacked (bi)LSTM block, ``hidden`` units per direction."""

    lstm_layers: int = 2
    bidirectional: bool = True

    def _check(self) -> None:
        super()._check()
        self._at_least(1, "lstm_layers")


@dataclass
class ConvFields(_Part):
    """Convolution blocks (TCN, DSUS): centred kernels of ``kernel`` taps over ``levels`` levels."""

    kernel: int = 3
    levels: int = 6

    def _check(self) -> None:
        super()._check()
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ModelConfigError(self.name, f"convolution kernel must be odd (centred), got {self.kernel}")
        self._at_least(0, "levels")


# --------------------------------------------------------------------------- configs


@dataclass
class ModelConfig(_Part):
    """Options shared by every model.

    A registered config lists its parts from the last block to the first
    (``class AttentionLSTMConfig(LSTMFields, AttentionFields, ModelConfig)``),
    so that its fields read shared options first, then block by block.

    Attributes:
        n_features: input features per frame (88 for eGeMAPS).
        n_targets: outputs per frame (2 for arousal and valence).
        hidden: width of every block (per direction for LSTMs).
        dropout: dropout probability inside blocks.
        output: activation after the linear head, ``"linear"`` (default) or
            ``"sigmoid"`` (outputs in (0, 1), as the original project's models).
            :meth:`to_dict` leaves it out when ``"linear"``, so configs and
            checkpoints written before the option existed read back unchanged.
        lookahead: future input frames an output frame may depend on, for the
            whole network: ``None`` (default) is the non-causal (offline)
            model; ``0`` strictly causal, ``k`` frames of lookahead (spent on
            the blocks local to global, see :mod:`emotools.models.blocks`).
            :meth:`to_dict` leaves it out when ``None``, as ``output``.
    """

    #: blocks stacked, local to global (keys of :data:`emotools.models.blocks.BLOCKS`).
    blocks: ClassVar[tuple[str, ...]] = ()

    n_features: int = 88
    n_targets: int = 2
    hidden: int = 64
    dropout: float = 0.1
    output: Literal["linear", "sigmoid"] = "linear"
    lookahead: int | None = None

    def __post_init__(self) -> None:
        self._check()

    def _check(self) -> None:
        super()._check()
        self._at_least(1, "n_features", "n_targets", "hidden")
        if not 0.0 <= self.dropout < 1.0:
            raise ModelConfigError(self.name, f"dropout must be in [0, 1), got {self.dropout}")
        if self.output not in OUTPUTS:
            raise ModelConfigError(self.name, f"unknown output {self.output!r}; use one of {list(OUTPUTS)}")
        if self.lookahead is not None:
            la = self.lookahead
            if isinstance(la, bool) or not isinstance(la, numbers.Integral) or la < 0:
                raise ModelConfigError(self.name, f"lookahead must be None or an int >= 0 (frames), got {la!r}")
            self.lookahead = int(la)

    @property
    def spec(self) -> str:
        """The architecture spec string: ``"tcn"``, ``"tcn:causal"`` (lookahead 0), ``"tcn:lookahead=3"``."""
        if self.lookahead is None:
            return self.name
        return f"{self.name}:causal" if self.lookahead == 0 else f"{self.name}:lookahead={self.lookahead}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready flat dict including ``name``; inverse of :meth:`from_dict` (``output`` only if not linear)."""
        d = dataclasses.asdict(self)
        if d["output"] == "linear":
            del d["output"]  # the dict every checkpoint has carried
        if d["lookahead"] is None:
            del d["lookahead"]
        if "contexts" in d:
            d["contexts"] = [list(layer) for layer in d["contexts"]]
        return {"name": self.name, **d}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelConfig:
        """Rebuild a config from :meth:`to_dict` (e.g. a checkpoint's JSON); its ``name`` picks the class.

        Raises:
            ModelConfigError: no or an unknown name, an unknown option, an
                invalid value, or (called on a subclass) a config of another class.
        """
        d = dict(d)
        if "name" not in d:
            raise ModelConfigError("config dict", f"has no 'name': {sorted(d)}")
        config = make_config(d.pop("name"), **d)
        if not isinstance(config, cls):
            raise ModelConfigError(config.name, f"is not a {cls.__name__}")
        return config


@dataclass
class MLPConfig(FrameFields, ModelConfig):
    """Frame-wise MLP: no temporal context at all (the control)."""

    name: ClassVar[str] = "mlp"
    blocks: ClassVar[tuple[str, ...]] = ("frame",)


@dataclass
class LSTMConfig(LSTMFields, ModelConfig):
    """Stacked (bi)LSTM, ``hidden`` units per direction."""

    name: ClassVar[str] = "lstm"
    blocks: ClassVar[tuple[str, ...]] = ("lstm",)


@dataclass
class TDNNConfig(TDNNFields, ModelConfig):
    """Time-delay network (Peddinti et al. 2015): one splice offset list per layer."""

    name: ClassVar[str] = "tdnn"
    blocks: ClassVar[tuple[str, ...]] = ("tdnn",)


@dataclass
class AttentionConfig(AttentionFields, ModelConfig):
    """Pre-norm transformer encoder with rotary (relative) positions (see :class:`AttentionFields`)."""

    name: ClassVar[str] = "attention"
    blocks: ClassVar[tuple[str, ...]] = ("attention",)


@dataclass
class TDNNLSTMConfig(LSTMFields, TDNNFields, ModelConfig):
    """TDNN front-end (local context) followed by a (bi)LSTM."""

    name: ClassVar[str] = "tdnn_lstm"
    blocks: ClassVar[tuple[str, ...]] = ("tdnn", "lstm")
    contexts: tuple[tuple[int, ...], ...] = TDNN_FRONT_CONTEXTS
    lstm_layers: int = 1


@dataclass
class AttentionTDNNConfig(AttentionFields, TDNNFields, ModelConfig):
    """TDNN front-end followed by local self-attention."""

    name: ClassVar[str] = "attention_tdnn"
    blocks: ClassVar[tuple[str, ...]] = ("tdnn", "attention")
    contexts: tuple[tuple[int, ...], ...] = TDNN_FRONT_CONTEXTS


@dataclass
class AttentionLSTMConfig(LSTMFields, AttentionFields, ModelConfig):
    """Local self-attention followed by a (bi)LSTM."""

    name: ClassVar[str] = "attention_lstm"
    blocks: ClassVar[tuple[str, ...]] = ("attention", "lstm")
    attention_layers: int = 1
    lstm_layers: int = 1


@dataclass
class AttentionTDNNLSTMConfig(LSTMFields, AttentionFields, TDNNFields, ModelConfig):
    """TDNN front-end, local self-attention, then a (bi)LSTM."""

    name: ClassVar[str] = "attention_tdnn_lstm"
    blocks: ClassVar[tuple[str, ...]] = ("tdnn", "attention", "lstm")
    contexts: tuple[tuple[int, ...], ...] = TDNN_FRONT_CONTEXTS
    attention_layers: int = 1
    lstm_layers: int = 1


@dataclass
class TCNConfig(ConvFields, ModelConfig):
    """Non-causal dilated temporal convolution network (Bai et al. 2018).

    ``levels`` residual blocks of two convolutions (``kernel``, dilation
    ``2**level``): receptive field ``1 + 2 (kernel - 1) (2**levels - 1)``
    frames, 253 frames (25.3 s at 10 Hz) by default.
    """

    name: ClassVar[str] = "tcn"
    blocks: ClassVar[tuple[str, ...]] = ("tcn",)


@dataclass
class DSUSConfig(ConvFields, ModelConfig):
    """Down-sampling / up-sampling CNN (after Khorram et al. 2017).

    ``levels`` times: a convolution (``kernel``) then average pooling by 2;
    then one convolution at the coarsest rate, and back up level by level
    (nearest up-sampling, a skip connection from the same rate, a
    convolution). Context grows geometrically at linear cost.
    """

    name: ClassVar[str] = "dsus"
    blocks: ClassVar[tuple[str, ...]] = ("dsus",)
    kernel: int = 5
    levels: int = 4


#: Registry: model name -> config class. ``build(name)`` makes the model.
MODELS: dict[str, type[ModelConfig]] = {
    c.name: c
    for c in (
        MLPConfig,
        LSTMConfig,
        TDNNConfig,
        AttentionConfig,
        TDNNLSTMConfig,
        AttentionTDNNConfig,
        AttentionLSTMConfig,
        AttentionTDNNLSTMConfig,
        TCNConfig,
        DSUSConfig,
    )
}


def parse_architecture(spec: str) -> tuple[str, dict[str, Any]]:
    """Split an architecture spec into its registered name and the options it sets.

    ``"<name>"`` is the non-causal model, ``"<name>:causal"`` sets
    ``lookahead=0`` and ``"<name>:lookahead=<frames>"`` that many frames.

    >>> parse_architecture("tcn:causal"), parse_architecture("lstm:lookahead=5")
    (('tcn', {'lookahead': 0}), ('lstm', {'lookahead': 5}))

    Raises:
        ModelConfigError: an unknown model name or a malformed suffix.
    """
    name, sep, variant = str(spec).partition(":")
    if name not in MODELS:
        raise ModelConfigError(name, f"unknown model {name!r}; known: {', '.join(MODELS)}")
    if not sep:
        return name, {}
    if variant == "causal":
        return name, {"lookahead": 0}
    key, _, frames = variant.partition("=")
    if key == "lookahead" and frames.isascii() and frames.isdigit():
        return name, {"lookahead": int(frames)}
    raise ModelConfigError(
        spec, f"unknown architecture variant {variant!r}; use '{name}:causal' or '{name}:lookahead=<frames >= 0>'"
    )


def _order_key(spec: str) -> tuple[int, int] | None:
    # (registry position, lookahead: -1 for None) of a valid spec, else None
    try:
        name, options = parse_architecture(spec)
    except ModelConfigError:
        return None
    lookahead = options.get("lookahead")
    return list(MODELS).index(name), -1 if lookahead is None else lookahead


def arch_order(names: Iterable[str]) -> list[str]:
    """Architecture specs in the registry's order (local to global), then any other names sorted.

    The variants of one architecture follow it, the non-causal model first,
    then by growing lookahead.

    >>> arch_order(["tdnn", "zeta", "lstm:causal", "lstm", "lstm:lookahead=3"])
    ['lstm', 'lstm:causal', 'lstm:lookahead=3', 'tdnn', 'zeta']
    """
    keys = {n: _order_key(n) for n in set(names)}
    known = sorted((n for n, k in keys.items() if k is not None), key=lambda n: keys[n])
    return known + sorted(n for n, k in keys.items() if k is None)


def make_config(name: str, **options: Any) -> ModelConfig:
    """The registered config ``name`` (or an architecture spec, :func:`parse_architecture`) with ``options`` applied.

    Raises:
        ModelConfigError: unknown name or option, an invalid value, or a
            ``lookahead`` option that contradicts the spec's.
    """
    spec = name
    name, implied = parse_architecture(spec)
    for key, value in implied.items():
        if options.setdefault(key, value) != value:
            raise ModelConfigError(spec, f"{key}={options[key]!r} contradicts the architecture spec {spec!r}")
    cls = MODELS[name]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ModelConfigError(name, f"unknown option(s) {unknown}; options are {sorted(known)}")
    return cls(**options)


def config_from_dict(d: Mapping[str, Any]) -> ModelConfig:
    """Rebuild a config from :meth:`ModelConfig.to_dict` (e.g. a checkpoint's JSON)."""
    return ModelConfig.from_dict(d)
