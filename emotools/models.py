"""Sequence-to-sequence regressors for continuous emotion, by name.

Every model maps a feature sequence to an emotion sequence::

    model(x: (batch, time, features) float32, lengths: (batch,) long) -> (batch, time, targets)

and is built from a ``@dataclass`` config by :func:`build`. A model is a
stack of *blocks* (frame-wise MLP, TDNN, local self-attention, LSTM, TCN,
down/up-sampling CNN) between a feature input and a linear output head; the
registered names fix which blocks are stacked, local to global::

    mlp                  frame            (context: 1 frame, the control)
    tdnn                 tdnn
    attention            attention
    lstm                 lstm
    tdnn_lstm            tdnn -> lstm
    attention_tdnn       tdnn -> attention
    attention_lstm       attention -> lstm
    attention_tdnn_lstm  tdnn -> attention -> lstm
    tcn                  tcn              (dilated temporal convolutions)
    dsus                 dsus             (down/up-sampling CNN, Khorram et al. 2017)

Models are non-causal (bidirectional LSTMs, centred convolutions and
attention windows): they predict offline, from past and future frames.

Padding never changes a valid output: convolutions zero padded frames before
every convolution, attention masks padded keys, LSTMs pack the batch; padded
outputs are returned as 0. No block is O(T^2) in memory: attention goes
through :func:`torch.nn.functional.scaled_dot_product_attention`, by default
within a local window (the same at training and inference) computed block by
block, so time and memory grow linearly with the sequence length.

``model.receptive_field`` is the context of one output frame in input frames
(``None`` where unbounded: LSTMs, global attention), and
``model.receptive_field_seconds(rate_hz)`` the same in seconds (``inf``).

>>> model = build("tdnn", n_features=88, n_targets=2)
>>> model.receptive_field, model.receptive_field_seconds(10.0)
(47, 4.7)
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ModelConfigError",
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
    "SequenceRegressor",
    "build",
    "config_from_dict",
    "lengths_to_mask",
    "count_parameters",
]


class ModelConfigError(ValueError):
    """An unknown model name or an invalid model option."""


# --------------------------------------------------------------------------- helpers


def lengths_to_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """Boolean ``(batch, time)`` mask, True = valid frame.

    >>> lengths_to_mask(torch.tensor([2, 3])).tolist()
    [[True, True, False], [True, True, True]]
    """
    lengths = torch.as_tensor(lengths)
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _zero_padding(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # (batch, time, dim) with padded frames set to exactly 0.
    return h.masked_fill(~mask[..., None], 0.0)


# --------------------------------------------------------------------------- configs

#: Peddinti et al. (2015)-style splicing: offsets per layer, widening with depth.
#: Context: -23..+23 frames (4.7 s at 10 Hz).
TDNN_CONTEXTS: tuple[tuple[int, ...], ...] = ((-2, -1, 0, 1, 2), (-3, 0, 3), (-6, 0, 6), (-12, 0, 12))
#: A short TDNN front-end for the hybrids: -5..+5 frames (1.1 s at 10 Hz).
TDNN_FRONT_CONTEXTS: tuple[tuple[int, ...], ...] = ((-2, -1, 0, 1, 2), (-3, 0, 3))


@dataclass
class ModelConfig:
    """Options shared by every model.

    Attributes:
        n_features: input features per frame (88 for eGeMAPS).
        n_targets: outputs per frame (2 for arousal and valence).
        hidden: width of every block (per direction for LSTMs).
        dropout: dropout probability inside blocks.
    """

    name: ClassVar[str] = ""
    blocks: ClassVar[tuple[str, ...]] = ()

    n_features: int = 88
    n_targets: int = 2
    hidden: int = 64
    dropout: float = 0.1

    def __post_init__(self) -> None:
        for key in ("n_features", "n_targets", "hidden"):
            if int(getattr(self, key)) < 1:
                raise ModelConfigError(f"{self.name}: {key} must be >= 1, got {getattr(self, key)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ModelConfigError(f"{self.name}: dropout must be in [0, 1), got {self.dropout}")
        if hasattr(self, "contexts"):
            # JSON gives lists; configs hold tuples.
            self.contexts = tuple(tuple(int(o) for o in layer) for layer in self.contexts)
            if not self.contexts or any(len(layer) == 0 for layer in self.contexts):
                raise ModelConfigError(f"{self.name}: contexts must be non-empty offset lists, got {self.contexts}")
        if hasattr(self, "heads") and (self.hidden % self.heads or (self.hidden // self.heads) % 2):
            raise ModelConfigError(
                f"{self.name}: hidden ({self.hidden}) must be divisible by heads ({self.heads}) into an even "
                "head size (rotary positions rotate pairs)"
            )
        if getattr(self, "window", None) is not None and self.window < 1:
            raise ModelConfigError(f"{self.name}: window must be >= 1 frame or None (global), got {self.window}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict including ``name``; inverse of :func:`config_from_dict`."""
        d = dataclasses.asdict(self)
        if "contexts" in d:
            d["contexts"] = [list(layer) for layer in d["contexts"]]
        return {"name": self.name, **d}


@dataclass
class MLPConfig(ModelConfig):
    """Frame-wise MLP: no temporal context at all (the control)."""

    name: ClassVar[str] = "mlp"
    blocks: ClassVar[tuple[str, ...]] = ("frame",)
    layers: int = 2


@dataclass
class LSTMConfig(ModelConfig):
    """Stacked (bi)LSTM, ``hidden`` units per direction."""

    name: ClassVar[str] = "lstm"
    blocks: ClassVar[tuple[str, ...]] = ("lstm",)
    lstm_layers: int = 2
    bidirectional: bool = True


@dataclass
class TDNNConfig(ModelConfig):
    """Time-delay network (Peddinti et al. 2015): one splice offset list per layer."""

    name: ClassVar[str] = "tdnn"
    blocks: ClassVar[tuple[str, ...]] = ("tdnn",)
    contexts: tuple[tuple[int, ...], ...] = TDNN_CONTEXTS


@dataclass
class AttentionConfig(ModelConfig):
    """Pre-norm transformer encoder with rotary (relative) positions.

    Attributes:
        attention_layers: number of self-attention layers.
        heads: attention heads (``hidden`` must be divisible by it).
        window: each frame attends to frames within +-``window`` frames
            (``None``: global attention, unbounded context).
        ffn_mult: width of the feed-forward layer in multiples of ``hidden``.
    """

    name: ClassVar[str] = "attention"
    blocks: ClassVar[tuple[str, ...]] = ("attention",)
    attention_layers: int = 2
    heads: int = 4
    window: int | None = 50
    ffn_mult: int = 2


@dataclass
class TDNNLSTMConfig(ModelConfig):
    """TDNN front-end (local context) followed by a (bi)LSTM."""

    name: ClassVar[str] = "tdnn_lstm"
    blocks: ClassVar[tuple[str, ...]] = ("tdnn", "lstm")
    contexts: tuple[tuple[int, ...], ...] = TDNN_FRONT_CONTEXTS
    lstm_layers: int = 1
    bidirectional: bool = True


@dataclass
class AttentionTDNNConfig(ModelConfig):
    """TDNN front-end followed by local self-attention."""

    name: ClassVar[str] = "attention_tdnn"
    blocks: ClassVar[tuple[str, ...]] = ("tdnn", "attention")
    contexts: tuple[tuple[int, ...], ...] = TDNN_FRONT_CONTEXTS
    attention_layers: int = 2
    heads: int = 4
    window: int | None = 50
    ffn_mult: int = 2


@dataclass
class AttentionLSTMConfig(ModelConfig):
    """Local self-attention followed by a (bi)LSTM."""

    name: ClassVar[str] = "attention_lstm"
    blocks: ClassVar[tuple[str, ...]] = ("attention", "lstm")
    attention_layers: int = 1
    heads: int = 4
    window: int | None = 50
    ffn_mult: int = 2
    lstm_layers: int = 1
    bidirectional: bool = True


@dataclass
class AttentionTDNNLSTMConfig(ModelConfig):
    """TDNN front-end, local self-attention, then a (bi)LSTM."""

    name: ClassVar[str] = "attention_tdnn_lstm"
    blocks: ClassVar[tuple[str, ...]] = ("tdnn", "attention", "lstm")
    contexts: tuple[tuple[int, ...], ...] = TDNN_FRONT_CONTEXTS
    attention_layers: int = 1
    heads: int = 4
    window: int | None = 50
    ffn_mult: int = 2
    lstm_layers: int = 1
    bidirectional: bool = True


@dataclass
class TCNConfig(ModelConfig):
    """Non-causal dilated temporal convolution network (Bai et al. 2018).

    ``levels`` residual blocks of two convolutions (``kernel``, dilation
    ``2**level``): receptive field ``1 + 2 (kernel - 1) (2**levels - 1)``
    frames, 253 frames (25.3 s at 10 Hz) by default.
    """

    name: ClassVar[str] = "tcn"
    blocks: ClassVar[tuple[str, ...]] = ("tcn",)
    kernel: int = 3
    levels: int = 6


@dataclass
class DSUSConfig(ModelConfig):
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


def _config(name: str, **options: Any) -> ModelConfig:
    if name not in MODELS:
        raise ModelConfigError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    cls = MODELS[name]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ModelConfigError(f"{name}: unknown option(s) {unknown}; options are {sorted(known)}")
    return cls(**options)


def config_from_dict(d: dict[str, Any]) -> ModelConfig:
    """Rebuild a config from :meth:`ModelConfig.to_dict` (e.g. a checkpoint's JSON)."""
    d = dict(d)
    if "name" not in d:
        raise ModelConfigError(f"config dict has no 'name': {sorted(d)}")
    return _config(d.pop("name"), **d)


def build(name: str, n_features: int = 88, n_targets: int = 2, **overrides: Any) -> "SequenceRegressor":
    """Build a registered model with its default config, ``overrides`` applied.

    Args:
        name: a key of :data:`MODELS` (``"lstm"``, ``"attention"``, ...).
        n_features: input features per frame.
        n_targets: outputs per frame.
        **overrides: config fields, e.g. ``hidden=32, window=25``.

    Raises:
        ModelConfigError: unknown name or option, or an invalid value.
    """
    return SequenceRegressor(_config(name, n_features=n_features, n_targets=n_targets, **overrides))


# --------------------------------------------------------------------------- blocks


class _Block(nn.Module):
    """``forward(h (batch, time, d_in), mask (batch, time), lengths) -> (batch, time, d_out)``."""

    d_out: int
    #: context in input frames; None = unbounded.
    receptive_field: int | None = 1


class FrameBlock(_Block):
    """Frame-wise MLP: ``layers`` x (Linear, GELU, dropout)."""

    def __init__(self, d_in: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        for i in range(layers):
            mods += [nn.Linear(d_in if i == 0 else hidden, hidden), nn.GELU(), nn.Dropout(dropout)]
        self.net = nn.Sequential(*mods)
        self.d_out = hidden
        self.receptive_field = 1

    def forward(self, h: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class TDNNLayer(nn.Module):
    """One time-delay layer: ``out[t] = relu(W [h[t+o_1]; ...; h[t+o_n]])``.

    Splicing at sparse offsets (e.g. ``(-3, 0, 3)``) is what Peddinti et al.
    (2015) call sub-sampling: wide context at the cost of a few taps. Frames
    outside the sequence (and padded frames) read as 0.
    """

    def __init__(self, d_in: int, d_out: int, offsets: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        self.offsets = tuple(sorted(set(offsets)))
        self.left, self.right = max(0, -self.offsets[0]), max(0, self.offsets[-1])
        self.linear = nn.Linear(d_in * len(self.offsets), d_out)
        self.norm = nn.LayerNorm(d_out)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        T = h.shape[1]
        h = F.pad(_zero_padding(h, mask), (0, 0, self.left, self.right))  # (batch, left + time + right, d)
        spliced = torch.cat([h[:, self.left + o : self.left + o + T] for o in self.offsets], dim=-1)
        return self.dropout(self.norm(F.relu(self.linear(spliced))))


class TDNNBlock(_Block):
    def __init__(self, d_in: int, hidden: int, contexts: tuple[tuple[int, ...], ...], dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TDNNLayer(d_in if i == 0 else hidden, hidden, offsets, dropout) for i, offsets in enumerate(contexts)
        )
        self.d_out = hidden
        self.receptive_field = 1 + sum(max(o) - min(o) for o in contexts)

    def forward(self, h: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            h = layer(h, mask)
        return h


def _rotary(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding (Su et al. 2021) of ``(..., time, head_dim)``.

    Rotating queries and keys by their position makes ``q . k`` depend on
    the positions only through their difference: relative positions, the
    same for a frame at second 5 of a training chunk and at minute 50 of a
    full recording.
    """
    half = x.shape[-1] // 2
    freq = 10000.0 ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angle = positions.to(torch.float32)[:, None] * freq[None, :]  # (time, half)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def local_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, window: int | None, dropout_p: float = 0.0
) -> torch.Tensor:
    """Self-attention of ``(batch, heads, time, head_dim)`` within +-``window`` frames.

    The sequence is cut into blocks of ``window`` frames; each block's queries
    attend to the keys of the previous, same and next block (``3 window``
    keys), masked to ``|i - j| <= window`` and to valid keys. The result is
    exactly sliding-window attention, with time and memory linear in the
    length; the window does not depend on where a sequence was cut, so a
    model behaves the same on training chunks and full recordings.
    ``window=None`` is global attention (keys masked by ``mask``).
    Padded queries attend to their window and are discarded by the caller.
    """
    B, H, T, D = q.shape
    if window is None or window >= T:
        # Key mask only, (batch, 1, 1, time): never a (time, time) tensor. Every
        # query sees at least one valid key (lengths >= 1, window >= time), so no NaN.
        keep = mask[:, None, None, :]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=dropout_p)
    b = window
    n = -(-T // b)  # blocks
    pad = n * b - T
    # Blocks go into the batch dimension, (batch * blocks, heads, frames, head_dim):
    # 4-d inputs let torch use its fused (flash) CPU kernel, 16x less memory than 5-d here.
    q = F.pad(q, (0, 0, 0, pad)).view(B, H, n, b, D).transpose(1, 2).reshape(B * n, H, b, D)
    # keys/values padded by one block on each side, then cut in overlapping 3-block windows
    k = F.pad(k, (0, 0, b, b + pad)).unfold(2, 3 * b, b).permute(0, 2, 1, 4, 3).reshape(B * n, H, 3 * b, D)
    v = F.pad(v, (0, 0, b, b + pad)).unfold(2, 3 * b, b).permute(0, 2, 1, 4, 3).reshape(B * n, H, 3 * b, D)
    valid = F.pad(mask, (b, b + pad), value=False).unfold(1, 3 * b, b)  # (batch, blocks, 3b)
    r = torch.arange(b, device=q.device)
    c = torch.arange(3 * b, device=q.device)
    band = (r[:, None] + b - c[None, :]).abs() <= window  # (b, 3b), the same for every block
    qvalid = F.pad(mask, (0, pad), value=False).view(B, n, b)
    keep = band & (valid[:, :, None, :] | ~qvalid[:, :, :, None])  # (batch, blocks, b, 3b)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep.reshape(B * n, 1, b, 3 * b), dropout_p=dropout_p)
    return out.view(B, n, H, b, D).transpose(1, 2).reshape(B, H, n * b, D)[:, :, :T]


class AttentionLayer(nn.Module):
    """Pre-norm transformer layer: local multi-head self-attention (rotary positions) + FFN."""

    def __init__(self, d: int, heads: int, window: int | None, ffn_mult: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.window, self.dropout_p = heads, window, dropout
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, ffn_mult * d), nn.GELU(), nn.Linear(ffn_mult * d, d))
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, D = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        pos = torch.arange(T, device=h.device)
        q, k = _rotary(q, pos), _rotary(k, pos)  # (batch, heads, time, head_dim)
        a = local_attention(q, k, v, mask, self.window, self.dropout_p if self.training else 0.0)
        h = h + self.dropout(self.proj(a.transpose(1, 2).reshape(B, T, D)))
        h = h + self.dropout(self.ffn(self.norm2(h)))
        return _zero_padding(h, mask)


class AttentionBlock(_Block):
    def __init__(self, d_in: int, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.hidden
        self.inp = nn.Linear(d_in, d)
        self.layers = nn.ModuleList(
            AttentionLayer(d, cfg.heads, cfg.window, cfg.ffn_mult, cfg.dropout) for _ in range(cfg.attention_layers)
        )
        self.norm = nn.LayerNorm(d)
        self.d_out = d
        self.receptive_field = None if cfg.window is None else 1 + 2 * cfg.window * cfg.attention_layers

    def forward(self, h: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = _zero_padding(self.inp(h), mask)
        for layer in self.layers:
            h = layer(h, mask)
        return self.norm(h)


class LSTMBlock(_Block):
    """Stacked (bi)LSTM in which padding never reaches a valid frame.

    Equivalent to packing the batch, but faster on CPU (packed sequences
    leave the fused kernel: 6x slower per training step here). The forward
    direction runs over the padded batch as is: padding comes after every
    valid frame. The backward direction runs forward over each sequence
    reversed *within its length* (padding stays at the end), and its output
    is reversed back.
    """

    def __init__(self, d_in: int, hidden: int, layers: int, bidirectional: bool, dropout: float) -> None:
        super().__init__()
        directions = 2 if bidirectional else 1
        self.fwd = nn.ModuleList(
            nn.LSTM(d_in if i == 0 else hidden * directions, hidden, batch_first=True) for i in range(layers)
        )
        self.bwd = nn.ModuleList(
            nn.LSTM(d_in if i == 0 else hidden * directions, hidden, batch_first=True) for i in range(layers)
        ) if bidirectional else None
        self.dropout = nn.Dropout(dropout)
        self.d_out = hidden * directions
        self.receptive_field = None

    @staticmethod
    def _reverse_index(lengths: torch.Tensor, T: int) -> torch.Tensor:
        # (batch, time) index reversing the first lengths[b] frames, leaving padding in place.
        t = torch.arange(T, device=lengths.device)[None, :]
        return torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)

    def forward(self, h: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        B, T, _ = h.shape
        if self.bwd is not None:
            index = self._reverse_index(lengths, T)

            def reverse(z: torch.Tensor) -> torch.Tensor:
                return torch.gather(z, 1, index[..., None].expand(-1, -1, z.shape[-1]))

        for i in range(len(self.fwd)):
            if i > 0:
                h = self.dropout(h)
            out = self.fwd[i](h)[0]  # (batch, time, hidden)
            if self.bwd is not None:
                out = torch.cat([out, reverse(self.bwd[i](reverse(h))[0])], dim=-1)
            h = out
        return h


class _MaskedConv(nn.Module):
    """Centred 1-d convolution over ``(batch, time, d)`` that zeroes padded frames first."""

    def __init__(self, d_in: int, d_out: int, kernel: int, dilation: int = 1) -> None:
        super().__init__()
        if kernel % 2 == 0:
            raise ModelConfigError(f"convolution kernel must be odd (centred), got {kernel}")
        self.conv = nn.Conv1d(d_in, d_out, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2)
        self.span = dilation * (kernel - 1)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.conv(_zero_padding(h, mask).transpose(1, 2)).transpose(1, 2)


class TCNBlock(_Block):
    """Residual blocks of two dilated convolutions, dilation doubling per level."""

    def __init__(self, d_in: int, hidden: int, kernel: int, levels: int, dropout: float) -> None:
        super().__init__()
        self.inp = nn.Linear(d_in, hidden)
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(levels))
        self.convs = nn.ModuleList(
            nn.ModuleList([_MaskedConv(hidden, hidden, kernel, 2**i), _MaskedConv(hidden, hidden, kernel, 2**i)])
            for i in range(levels)
        )
        self.dropout = nn.Dropout(dropout)
        self.d_out = hidden
        self.receptive_field = 1 + 2 * (kernel - 1) * (2**levels - 1)

    def forward(self, h: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.inp(h)
        for norm, (c1, c2) in zip(self.norms, self.convs):
            h = h + self.dropout(c2(F.gelu(c1(norm(h), mask)), mask))
        return h


class DSUSBlock(_Block):
    """Down-sampling / up-sampling CNN with skip connections (U-Net shaped).

    Lengths at each rate are ``ceil(length / 2**level)``; frames beyond are
    zeroed, so padding never leaks. Because pooling groups frames in pairs
    from the start, the context of a frame depends on its position modulo
    ``2**levels``; :attr:`receptive_field` is the widest.
    """

    def __init__(self, d_in: int, hidden: int, kernel: int, levels: int, dropout: float) -> None:
        super().__init__()
        self.levels = levels
        self.inp = nn.Linear(d_in, hidden)
        self.down = nn.ModuleList(_MaskedConv(hidden, hidden, kernel) for _ in range(levels))
        self.bottom = _MaskedConv(hidden, hidden, kernel)
        self.up = nn.ModuleList(_MaskedConv(2 * hidden, hidden, kernel) for _ in range(levels))
        self.dropout = nn.Dropout(dropout)
        self.d_out = hidden
        self.receptive_field = self._receptive_field(kernel, levels)

    @staticmethod
    @functools.lru_cache(maxsize=None)
    def _receptive_field(kernel: int, levels: int) -> int:
        # Exact widest context, from the support [lo, hi] (in input frames) of
        # each output frame t, propagated through the network by interval
        # arithmetic over one period of 2**levels output positions.
        r = (kernel - 1) // 2

        def conv(sup: list[tuple[int, int]]) -> list[tuple[int, int]]:
            # sup[t] for t in a long enough range; neighbours t-r..t+r
            n = len(sup)
            return [
                (min(sup[j][0] for j in range(max(0, t - r), min(n, t + r + 1))),
                 max(sup[j][1] for j in range(max(0, t - r), min(n, t + r + 1))))
                for t in range(n)
            ]

        n = 2**levels * (2 * kernel + 8) * (levels + 2)
        sup = [(t, t) for t in range(n)]
        skips = []
        for _ in range(levels):
            sup = conv(sup)
            skips.append(sup)
            sup = [(min(sup[2 * t][0], sup[2 * t + 1][0]), max(sup[2 * t][1], sup[2 * t + 1][1]))
                   for t in range(len(sup) // 2)]
        sup = conv(sup)
        for skip in reversed(skips):
            sup = [sup[t // 2] for t in range(2 * len(sup))]
            sup = [(min(a[0], b[0]), max(a[1], b[1])) for a, b in zip(sup, skip)]
            sup = conv(sup)
        # widest support among frames far from both ends of the sequence
        middle = sup[len(sup) // 3 : 2 * len(sup) // 3]
        return max(hi - lo + 1 for lo, hi in middle)

    def forward(self, h: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.inp(h)
        skips = []
        for conv in self.down:
            h = F.gelu(conv(h, mask))
            skips.append((h, mask))
            if h.shape[1] % 2:
                h, mask = F.pad(h, (0, 0, 0, 1)), F.pad(mask, (0, 1), value=False)
            h = _zero_padding(h, mask)
            h = 0.5 * (h[:, 0::2] + h[:, 1::2])  # average pooling by 2
            mask = mask[:, 0::2] | mask[:, 1::2]
        h = F.gelu(self.bottom(h, mask))
        for conv, (skip, skip_mask) in zip(self.up, reversed(skips)):
            h = h.repeat_interleave(2, dim=1)[:, : skip.shape[1]]  # nearest up-sampling
            h = self.dropout(F.gelu(conv(torch.cat([h, skip], dim=-1), skip_mask)))
            mask = skip_mask
        return h


# --------------------------------------------------------------------------- the model


class SequenceRegressor(nn.Module):
    """A stack of blocks and a linear head: ``(x, lengths) -> (batch, time, n_targets)``.

    Attributes:
        config: the dataclass config it was built from.
        name: the registry name.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.name = config.name
        c = config
        blocks: list[_Block] = []
        d = c.n_features
        for kind in c.blocks:
            if kind == "frame":
                block: _Block = FrameBlock(d, c.hidden, c.layers, c.dropout)
            elif kind == "tdnn":
                block = TDNNBlock(d, c.hidden, c.contexts, c.dropout)
            elif kind == "attention":
                block = AttentionBlock(d, c)
            elif kind == "lstm":
                block = LSTMBlock(d, c.hidden, c.lstm_layers, c.bidirectional, c.dropout)
            elif kind == "tcn":
                block = TCNBlock(d, c.hidden, c.kernel, c.levels, c.dropout)
            elif kind == "dsus":
                block = DSUSBlock(d, c.hidden, c.kernel, c.levels, c.dropout)
            else:  # pragma: no cover - configs name known blocks only
                raise ModelConfigError(f"unknown block {kind!r}")
            blocks.append(block)
            d = block.d_out
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(d, c.n_targets)

    @property
    def receptive_field(self) -> int | None:
        """Context of one output frame in input frames; None where unbounded."""
        total = 1
        for block in self.blocks:
            if block.receptive_field is None:
                return None
            total += block.receptive_field - 1
        return total

    def receptive_field_seconds(self, rate_hz: float) -> float:
        """:attr:`receptive_field` in seconds at ``rate_hz`` frames per second (``inf`` if unbounded)."""
        rf = self.receptive_field
        return math.inf if rf is None else rf / rate_hz

    @property
    def n_parameters(self) -> int:
        return count_parameters(self)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Predict every frame.

        Args:
            x: ``(batch, time, n_features)`` float.
            lengths: ``(batch,)`` valid frames per sequence; None = all valid.

        Returns:
            ``(batch, time, n_targets)``; padded frames are 0.
        """
        if x.dim() != 3 or x.shape[-1] != self.config.n_features:
            raise ModelConfigError(
                f"{self.name}: expected input (batch, time, {self.config.n_features}), got {tuple(x.shape)}"
            )
        B, T, _ = x.shape
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long, device=x.device)
        lengths = torch.as_tensor(lengths, device=x.device)
        if lengths.shape != (B,) or bool((lengths < 1).any()) or bool((lengths > T).any()):
            raise ModelConfigError(f"{self.name}: lengths must be (batch,) in [1, {T}], got {lengths.tolist()}")
        mask = lengths_to_mask(lengths, T)  # (batch, time)
        h = _zero_padding(x, mask)  # NaN/inf in padding cannot leak
        for block in self.blocks:
            h = block(h, mask, lengths)
        return _zero_padding(self.head(h), mask)  # (batch, time, n_targets)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, receptive_field={self.receptive_field}, parameters={self.n_parameters}"
