"""The blocks a model stacks, each built as ``block(d_in, config)``.

A block maps ``(h (batch, time, d_in), mask (batch, time), lengths) ->
(batch, time, d_out)`` and never lets padding reach a valid frame:
convolutions zero padded frames before every convolution, attention masks
padded keys, LSTMs run each sequence within its length. :data:`BLOCKS`
names them as configs do in ``ModelConfig.blocks``; each reads its options
from the config's part (:class:`~emotools.models.config.FrameFields`, ...)
and ``hidden``/``dropout``.

``block.receptive_field`` is its context in input frames (``None`` where
unbounded), ``block.past`` / ``block.future`` the frames before / after the
output frame it reaches (``None``: unbounded).

Causal forms: a block built with ``lookahead=k`` (an int; ``None`` is the
non-causal block) makes output frame ``t`` depend on input frames ``<= t + k``
only, exactly; :meth:`_Block.lookahead_capacity` is the most future it can
use, and :func:`share_lookahead` spends a network's budget on its blocks (and
a block's on its layers) local to global. A block built as
``block(d_in, config)`` takes the config's whole ``lookahead``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import AttentionFields, ConvFields, FrameFields, LSTMFields, TDNNFields

__all__ = [
    "share_lookahead",
    "causal_contexts",
    "lengths_to_mask",
    "dropout",
    "Dropout",
    "FrameBlock",
    "TDNNLayer",
    "TDNNBlock",
    "local_attention",
    "AttentionLayer",
    "AttentionBlock",
    "LSTMBlock",
    "TCNBlock",
    "DSUSBlock",
    "BLOCKS",
]


#: Default ``lookahead`` of a block's constructor: the config's ``lookahead``.
FROM_CONFIG: Any = object()


def share_lookahead(budget: int | None, capacities: Sequence[int | None]) -> list[int | None]:
    """Spend a lookahead budget on parts in order: each takes what it can use (``None``: any) of what is left.

    >>> share_lookahead(4, [3, 0, None]), share_lookahead(None, [3, 0])
    ([3, 0, 1], [None, None])
    """
    if budget is None:
        return [None] * len(capacities)
    shares: list[int | None] = []
    for capacity in capacities:
        take = budget if capacity is None else min(budget, capacity)
        shares.append(take)
        budget -= take
    return shares


def causal_contexts(
    contexts: tuple[tuple[int, ...], ...], lookahead: int | None
) -> tuple[tuple[int, ...], ...]:
    """TDNN offsets shifted into the past so that their total future is at most ``lookahead`` frames.

    The future goes to the first layers; each layer keeps its taps and
    span, so the past grows by what the future lost. ``None``: unchanged.

    >>> causal_contexts(((-2, 0, 2), (-3, 0, 3)), 3)
    ((-2, 0, 2), (-5, -2, 1))
    """
    if lookahead is None:
        return contexts
    futures = share_lookahead(lookahead, [max(0, max(layer)) for layer in contexts])
    return tuple(tuple(o - max(0, max(layer) - f) for o in layer) for layer, f in zip(contexts, futures))


def _budget(cfg: Any, lookahead: Any) -> int | None:
    # a block's lookahead: the config's unless the network passed its share
    return cfg.lookahead if lookahead is FROM_CONFIG else lookahead


def lengths_to_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """Boolean ``(batch, time)`` mask, True = valid frame.

    >>> lengths_to_mask(torch.tensor([2, 3])).tolist()
    [[True, True, False], [True, True, True]]
    """
    lengths = torch.as_tensor(lengths)
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted dropout: each element kept with probability ``1 - p`` and scaled by ``1 / (1 - p)``.

    The distribution of :func:`torch.nn.functional.dropout` in training mode,
    with ``p`` rounded to a multiple of 2**-16 (0.1 -> 0.100006): the keep mask
    compares 16-bit lanes of 64-bit random integers with a threshold: four
    mask elements per generator draw, cheaper than ``torch.rand`` masks and
    than torch's ``bernoulli_`` (``benchmarks/bench_kernels.py``; dropout
    masks took a fifth of an attention model's training epoch). Uses torch's
    default generator, so ``torch.manual_seed`` makes it reproducible.
    """
    if p <= 0.0:
        return x
    drop = round(p * 65536)
    if drop >= 65536:
        return x * 0.0
    n = x.numel()
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-(2**63), 2**63 - 1)
    lanes = bits.view(torch.int16)[:n].view(x.shape)  # uniform on [-32768, 32767]
    return torch.where(lanes >= drop - 32768, x * (65536 / (65536 - drop)), 0.0)


class Dropout(nn.Module):
    """:func:`dropout` as a module, active in training mode only (a drop-in for :class:`torch.nn.Dropout`)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p) if self.training else x

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor,
            dropout_p: float) -> torch.Tensor:
    # Scaled dot-product attention with a boolean mask (True = attend). Without dropout: torch's fused kernel.
    # With dropout: the same math spelled out (as torch's own math path, which dropout forces anyway), the
    # mask added as a 0 / -inf bias (much cheaper than masked_fill_ on the scores, and no backward), and
    # :func:`dropout` on the attention weights. Every query row keeps at least one key (callers ensure it).
    if dropout_p <= 0.0:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
    bias = torch.zeros(keep.shape, dtype=q.dtype, device=q.device).masked_fill_(~keep, float("-inf"))
    scores = ((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)).add_(bias)  # (batch, heads, queries, keys)
    # softmax in the scores' dtype, also under bfloat16 autocast (which would run it on a float32 copy and
    # cast the weights back for the product with v); torch accumulates it in float32 either way
    with torch.autocast(scores.device.type, enabled=False):
        weights = torch.softmax(scores, dim=-1)
    return dropout(weights, dropout_p) @ v


def _zero_padding(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # (batch, time, dim) with padded frames set to exactly 0, whatever they held (NaN and inf too).
    return h.masked_fill(~mask[..., None], 0.0)


def _zero_finite_padding(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # The same for finite values (inside a network whose input padding was zeroed by
    # _zero_padding), by multiplication: cheaper than masked_fill, forward and backward.
    return h * mask[..., None].to(h.dtype)


class _Block(nn.Module):
    """A block: ``cls(d_in, config)``, then ``forward(h, mask, lengths)``.

    ``h (batch, time, d_in)``, ``mask (batch, time)``, ``lengths (batch,)``
    -> ``(batch, time, d_out)``.
    """

    d_out: int
    #: context in input frames; None = unbounded.
    receptive_field: int | None = 1
    #: input frames before / after an output frame that it depends on; None = unbounded.
    past: int | None = 0
    future: int | None = 0

    @classmethod
    def lookahead_capacity(cls, cfg: Any) -> int | None:
        """The most future frames the causal form of this block can use (``None``: any)."""
        return 0

    def _set_support(self, past: int | None, future: int | None) -> None:
        self.past, self.future = past, future
        self.receptive_field = None if past is None or future is None else 1 + past + future


class FrameBlock(_Block):
    """Frame-wise MLP: ``layers`` x (Linear, GELU, dropout)."""

    def __init__(self, d_in: int, cfg: FrameFields, lookahead: int | None = FROM_CONFIG) -> None:
        super().__init__()  # frame-local: causal whatever the lookahead
        mods: list[nn.Module] = []
        for i in range(cfg.layers):
            mods += [nn.Linear(d_in if i == 0 else cfg.hidden, cfg.hidden), nn.GELU(), Dropout(cfg.dropout)]
        self.net = nn.Sequential(*mods)
        self.d_out = cfg.hidden
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
        self.dropout = Dropout(dropout)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        T = h.shape[1]
        h = F.pad(_zero_finite_padding(h, mask), (0, 0, self.left, self.right))  # (batch, left + time + right, d)
        spliced = torch.cat([h[:, self.left + o : self.left + o + T] for o in self.offsets], dim=-1)
        return self.dropout(self.norm(F.relu(self.linear(spliced))))


class TDNNBlock(_Block):
    """Time-delay layers, one per splice offset list in ``cfg.contexts``.

    Causal form: the offsets shifted into the past (:func:`causal_contexts`).
    """

    def __init__(self, d_in: int, cfg: TDNNFields, lookahead: int | None = FROM_CONFIG) -> None:
        super().__init__()
        h = cfg.hidden
        contexts = causal_contexts(cfg.contexts, _budget(cfg, lookahead))
        self.layers = nn.ModuleList(
            TDNNLayer(d_in if i == 0 else h, h, offsets, cfg.dropout) for i, offsets in enumerate(contexts)
        )
        self.d_out = h
        self._set_support(-sum(min(o) for o in contexts), sum(max(o) for o in contexts))

    @classmethod
    def lookahead_capacity(cls, cfg: TDNNFields) -> int:
        return sum(max(0, max(layer)) for layer in cfg.contexts)

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


def _three_block_windows(x: torch.Tensor, b: int, n: int, pad: int) -> torch.Tensor:
    # (batch, heads, time, dim) -> (batch * n, heads, 3 b, dim): padded by one block on each side (and by
    # ``pad`` to whole blocks), cut into overlapping windows of blocks (i-1, i, i+1). Built by concatenating
    # shifted block views in (batch, time, heads, dim) order: cheaper than unfold, backward included.
    B, H, T, D = x.shape
    blocks = F.pad(x.transpose(1, 2), (0, 0, 0, 0, b, b + pad)).reshape(B, n + 2, b, H, D)
    windows = torch.cat([blocks[:, :n], blocks[:, 1 : n + 1], blocks[:, 2:]], dim=2)  # (batch, n, 3 b, heads, dim)
    return windows.permute(0, 1, 3, 2, 4).reshape(B * n, H, 3 * b, D)


def local_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, window: int | None, dropout_p: float = 0.0,
    *, future: int | None = None,
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

    ``future`` (causal attention): query ``i`` attends keys
    ``i - window <= j <= i + future`` only (``future`` at most ``window``).
    Global causal attention (``window=None``) builds a ``(time, time)`` mask.
    """
    B, H, T, D = q.shape
    if future is not None and (window is None or window >= T):
        j = torch.arange(T, device=q.device)
        keep = mask[:, None, None, :] & (j[None, :] - j[:, None] <= future)  # (batch, 1, time, time)
        return _attend(q, k, v, keep, dropout_p)
    if window is None or window >= T:
        # Key mask only, (batch, 1, 1, time): never a (time, time) tensor. Every
        # query sees at least one valid key (lengths >= 1, window >= time), so no NaN.
        keep = mask[:, None, None, :]
        return _attend(q, k, v, keep, dropout_p)
    b = window
    n = (T + b - 1) // b  # blocks (not -(-T // b): the ONNX exporter truncates negative floor division)
    pad = n * b - T
    # Blocks go into the batch dimension, (batch * blocks, heads, frames, head_dim):
    # 4-d inputs let torch use its fused (flash) CPU kernel, 16x less memory than 5-d here.
    q = F.pad(q, (0, 0, 0, pad)).view(B, H, n, b, D).transpose(1, 2).reshape(B * n, H, b, D)
    k, v = _three_block_windows(k, b, n, pad), _three_block_windows(v, b, n, pad)
    valid = F.pad(mask, (b, b + pad), value=False).view(B, n + 2, b)  # unfold(1, 3b, b) without unfold,
    valid = torch.cat([valid[:, :n], valid[:, 1 : n + 1], valid[:, 2:]], dim=2)  # which ONNX cannot export
    r = torch.arange(b, device=q.device)
    c = torch.arange(3 * b, device=q.device)
    offset = c[None, :] - b - r[:, None]  # key - query position, (b, 3b), the same for every block
    band = (offset >= -window) & (offset <= (window if future is None else min(future, window)))
    qvalid = F.pad(mask, (0, pad), value=False).view(B, n, b)
    keep = band & (valid[:, :, None, :] | ~qvalid[:, :, :, None])  # (batch, blocks, b, 3b)
    out = _attend(q, k, v, keep.reshape(B * n, 1, b, 3 * b), dropout_p)
    return out.view(B, n, H, b, D).transpose(1, 2).reshape(B, H, n * b, D)[:, :, :T]


class AttentionLayer(nn.Module):
    """Pre-norm transformer layer: local multi-head self-attention (rotary positions) + FFN."""

    def __init__(self, d: int, heads: int, window: int | None, ffn_mult: int, dropout: float,
                 future: int | None = None) -> None:
        super().__init__()  # future: keys at most this many frames ahead (None: window)
        self.heads, self.window, self.future, self.dropout_p = heads, window, future, dropout
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, ffn_mult * d), nn.GELU(), nn.Linear(ffn_mult * d, d))
        self.dropout = Dropout(dropout)

    def forward(self, h: torch.Tensor, mask: torch.Tensor, *, start: int = 0) -> torch.Tensor:
        # start: the position of frame 0 (a streaming window keeps the rotary angles of the whole sequence)
        B, T, D = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        pos = torch.arange(T, device=h.device)
        if start:
            pos = pos + start
        q, k = _rotary(q, pos), _rotary(k, pos)  # (batch, heads, time, head_dim)
        a = local_attention(q, k, v, mask, self.window, self.dropout_p if self.training else 0.0, future=self.future)
        h = h + self.dropout(self.proj(a.transpose(1, 2).reshape(B, T, D)))
        h = h + self.dropout(self.ffn(self.norm2(h)))
        return _zero_finite_padding(h, mask)


class AttentionBlock(_Block):
    """Input projection, ``cfg.attention_layers`` attention layers, final LayerNorm.

    Causal form: each layer's keys masked to its past ``window`` and its share
    of the lookahead (the first layers first).
    """

    def __init__(self, d_in: int, cfg: AttentionFields, lookahead: int | None = FROM_CONFIG) -> None:
        super().__init__()
        d, window, n = cfg.hidden, cfg.window, cfg.attention_layers
        futures = share_lookahead(_budget(cfg, lookahead), [window] * n)
        self.inp = nn.Linear(d_in, d)
        self.layers = nn.ModuleList(
            AttentionLayer(d, cfg.heads, window, cfg.ffn_mult, cfg.dropout, future) for future in futures
        )
        self.norm = nn.LayerNorm(d)
        self.d_out = d
        past = None if window is None else window * n
        self._set_support(past, past if futures[0] is None else sum(futures))

    @classmethod
    def lookahead_capacity(cls, cfg: AttentionFields) -> int | None:
        return None if cfg.window is None else cfg.window * cfg.attention_layers

    def forward(self, h: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor, *, start: int = 0) -> torch.Tensor:
        """``start``: the position of frame 0 in the stream (rotary angles), for streaming windows."""
        h = _zero_finite_padding(self.inp(h), mask)
        for layer in self.layers:
            h = layer(h, mask, start=start)
        return self.norm(h)


class LSTMBlock(_Block):
    """Stacked (bi)LSTM in which padding never reaches a valid frame.

    Equivalent to packing the batch, but faster on CPU (packed sequences
    leave the fused kernel: 6x slower per training step here). The forward
    direction runs over the padded batch as is: padding comes after every
    valid frame. The backward direction runs forward over each sequence
    reversed *within its length* (padding stays at the end), and its output
    is reversed back.

    Causal form (``lookahead`` k): forward only, ``hidden`` x 2 units if
    ``bidirectional`` (the output width of the non-causal block), and the
    output at frame ``t`` is the state at ``min(t + k, length - 1)``: a delay
    line that never reads padding.
    """

    def __init__(self, d_in: int, cfg: LSTMFields, lookahead: int | None = FROM_CONFIG) -> None:
        super().__init__()
        hidden, directions = cfg.hidden, 2 if cfg.bidirectional else 1
        self.delay = _budget(cfg, lookahead)
        if self.delay is not None:
            hidden, directions = hidden * directions, 1

        def stack() -> nn.ModuleList:
            return nn.ModuleList(
                nn.LSTM(d_in if i == 0 else hidden * directions, hidden, batch_first=True)
                for i in range(cfg.lstm_layers)
            )

        self.fwd = stack()
        self.bwd = stack() if directions == 2 else None
        self.dropout = Dropout(cfg.dropout)
        self.d_out = hidden * directions
        self._set_support(None, None if self.bwd is not None else self.delay or 0)

    @classmethod
    def lookahead_capacity(cls, cfg: LSTMFields) -> None:
        return None  # a delay line: any

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
        if self.delay:
            t = torch.arange(T, device=h.device)[None, :]
            index = torch.where(t < lengths[:, None], torch.minimum(t + self.delay, lengths[:, None] - 1), t)
            h = torch.gather(h, 1, index[..., None].expand(-1, -1, h.shape[-1]))  # (batch, time, hidden)
        return h


class _MaskedConv(nn.Module):
    """Centred 1-d convolution over ``(batch, time, d)`` that zeroes padded frames first.

    With ``future`` (frames, at most the centred ``span // 2``) the kernel is
    shifted into the past: output ``t`` reads ``t - span + future .. t + future``.
    """

    def __init__(self, d_in: int, d_out: int, kernel: int, dilation: int = 1, future: int | None = None) -> None:
        super().__init__()  # kernel: odd, as ConvFields checks
        self.span = dilation * (kernel - 1)
        self.future = self.span // 2 if future is None else future
        self.pads = None if future is None else (self.span - future, future)  # (left, right) for F.pad
        self.conv = nn.Conv1d(d_in, d_out, kernel, dilation=dilation, padding=self.span // 2 if future is None else 0)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # contiguous (batch, time, d) out: elementwise ops on the transposed view (GELU's backward
        # above all) are several times slower than on contiguous memory (benchmarks/bench_kernels.py)
        h = _zero_finite_padding(h, mask).transpose(1, 2)  # (batch, d, time)
        if self.pads is not None:
            h = F.pad(h, self.pads)
        return self.conv(h).transpose(1, 2).contiguous()


class TCNBlock(_Block):
    """Residual blocks of two dilated convolutions, dilation doubling per level.

    Causal form: left-padded convolutions, the lookahead spent on the first ones.
    """

    def __init__(self, d_in: int, cfg: ConvFields, lookahead: int | None = FROM_CONFIG) -> None:
        super().__init__()
        hidden, kernel, levels = cfg.hidden, cfg.kernel, cfg.levels
        futures = iter(share_lookahead(_budget(cfg, lookahead), self._capacities(cfg)))
        self.inp = nn.Linear(d_in, hidden)
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(levels))
        self.convs = nn.ModuleList(
            nn.ModuleList([_MaskedConv(hidden, hidden, kernel, 2**i, next(futures)) for _ in range(2)])
            for i in range(levels)
        )
        self.dropout = Dropout(cfg.dropout)
        self.d_out = hidden
        convs = [c for pair in self.convs for c in pair]
        self._set_support(sum(c.span - c.future for c in convs), sum(c.future for c in convs))

    @staticmethod
    def _capacities(cfg: ConvFields) -> list[int]:
        # each convolution's centred future, in order
        return [2**i * (cfg.kernel - 1) // 2 for i in range(cfg.levels) for _ in range(2)]

    @classmethod
    def lookahead_capacity(cls, cfg: ConvFields) -> int:
        return sum(cls._capacities(cfg))

    def level(self, i: int, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Residual level ``i`` on ``(batch, time, hidden)``: one stage of a streaming pass."""
        c1, c2 = self.convs[i]
        return h + self.dropout(c2(F.gelu(c1(self.norms[i](h), mask)), mask))

    def forward(self, h: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.inp(h)
        for i in range(len(self.convs)):
            h = self.level(i, h, mask)
        return h


class DSUSBlock(_Block):
    """Down-sampling / up-sampling CNN with skip connections (U-Net shaped).

    Lengths at each rate are ``ceil(length / 2**level)``; frames beyond are
    zeroed, so padding never leaks. Because pooling groups frames in pairs
    from the start, the context of a frame depends on its position modulo
    ``2**levels``; :attr:`receptive_field`, :attr:`past` and :attr:`future`
    are the widest.

    Causal form: left-padded convolutions, and up-sampling delayed by one
    frame, so that a pooled pair (frames ``2t, 2t+1``) reaches frames
    ``>= 2t+1`` only. The lookahead is spent on the two full-rate
    convolutions (the first and the last, at most ``kernel // 2`` each);
    the coarser ones stay strictly causal.
    """

    def __init__(self, d_in: int, cfg: ConvFields, lookahead: int | None = FROM_CONFIG) -> None:
        super().__init__()
        hidden, kernel, levels = cfg.hidden, cfg.kernel, cfg.levels
        futures = share_lookahead(_budget(cfg, lookahead), self._capacities(cfg))  # down..., bottom, up...
        self.levels = levels
        self.causal = futures[0] is not None
        self.inp = nn.Linear(d_in, hidden)
        self.down = nn.ModuleList(_MaskedConv(hidden, hidden, kernel, future=f) for f in futures[:levels])
        self.bottom = _MaskedConv(hidden, hidden, kernel, future=futures[levels])
        self.up = nn.ModuleList(_MaskedConv(2 * hidden, hidden, kernel, future=f) for f in futures[levels + 1 :])
        self.dropout = Dropout(cfg.dropout)
        self.d_out = hidden
        self.receptive_field, self.past, self.future = self._support(
            kernel, levels, None if not self.causal else tuple(futures)
        )

    @staticmethod
    def _capacities(cfg: ConvFields) -> list[int]:
        # the convolutions down..., bottom, up...: only those at the full rate may look ahead
        full_rate = {0, 2 * cfg.levels}
        return [cfg.kernel // 2 if i in full_rate else 0 for i in range(2 * cfg.levels + 1)]

    @classmethod
    def lookahead_capacity(cls, cfg: ConvFields) -> int:
        return sum(cls._capacities(cfg))

    @staticmethod
    @functools.cache
    def _support(kernel: int, levels: int, futures: tuple[int, ...] | None) -> tuple[int, int, int]:
        # Exact widest (receptive field, past, future), from the support [lo, hi] (in input frames) of
        # each output frame t, propagated through the network by interval arithmetic over one period
        # of 2**levels output positions. futures: per convolution (down..., bottom, up...); None: centred.
        span = kernel - 1
        shifts = iter(futures or [span // 2] * (2 * levels + 1))
        empty = (math.inf, -math.inf)  # the delayed up-sampling's first frame reads nothing

        def conv(sup: list[tuple[float, float]]) -> list[tuple[float, float]]:
            # sup[t] for t in a long enough range; neighbours t - (span - future) .. t + future
            future, n = next(shifts), len(sup)
            near = [range(max(0, t - span + future), min(n, t + future + 1)) for t in range(n)]
            return [(min(sup[j][0] for j in js), max(sup[j][1] for j in js)) for js in near]

        n = 2**levels * (2 * kernel + 8) * (levels + 2)
        sup: list[tuple[float, float]] = [(t, t) for t in range(n)]
        skips = []
        for _ in range(levels):
            sup = conv(sup)
            skips.append(sup)
            sup = [(min(sup[2 * t][0], sup[2 * t + 1][0]), max(sup[2 * t][1], sup[2 * t + 1][1]))
                   for t in range(len(sup) // 2)]
        sup = conv(sup)
        for skip in reversed(skips):
            sup = [sup[t // 2] for t in range(2 * len(sup))]
            if futures is not None:
                sup = [empty, *sup[:-1]]
            sup = [(min(a[0], b[0]), max(a[1], b[1])) for a, b in zip(sup, skip)]
            sup = conv(sup)
        # widest support among frames far from both ends of the sequence
        middle = range(n // 3, 2 * n // 3)
        return (int(max(sup[t][1] - sup[t][0] + 1 for t in middle)), int(max(t - sup[t][0] for t in middle)),
                int(max(sup[t][1] - t for t in middle)))

    def forward(self, h: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.inp(h)
        skips = []
        for conv in self.down:
            h = F.gelu(conv(h, mask))
            skips.append((h, mask))
            if h.shape[1] % 2:
                h, mask = F.pad(h, (0, 0, 0, 1)), F.pad(mask, (0, 1), value=False)
            h = _zero_finite_padding(h, mask)
            h = 0.5 * (h[:, 0::2] + h[:, 1::2])  # average pooling by 2
            mask = mask[:, 0::2] | mask[:, 1::2]
        h = F.gelu(self.bottom(h, mask))
        for conv, (skip, skip_mask) in zip(self.up, reversed(skips)):
            h = h.repeat_interleave(2, dim=1)[:, : skip.shape[1]]  # nearest up-sampling
            if self.causal:  # a pooled pair is complete at its second frame
                h = F.pad(h, (0, 0, 1, 0))[:, : skip.shape[1]]
            h = self.dropout(F.gelu(conv(torch.cat([h, skip], dim=-1), skip_mask)))
            mask = skip_mask
        return h


#: Block kinds as configs name them in ``ModelConfig.blocks`` -> block class, built as ``cls(d_in, config)``.
BLOCKS: dict[str, type[_Block]] = {
    "frame": FrameBlock,
    "tdnn": TDNNBlock,
    "attention": AttentionBlock,
    "lstm": LSTMBlock,
    "tcn": TCNBlock,
    "dsus": DSUSBlock,
}
