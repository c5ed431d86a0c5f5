"""Stateful streaming inference for causal models: feature frames in as they come, final outputs out.

A causal model (``lookahead`` k, :mod:`emotools.models.config`) gives output
frame ``t`` from input frames ``<= t + k``; :class:`StreamingModel` returns
it as soon as frame ``t + k`` has arrived, equal to the offline forward pass
of the whole sequence (within float rounding), with bounded state:

- LSTM blocks carry ``(h, c)`` per layer; the delay line emits the top
  layer's state of frame ``t + k`` as output ``t``;
- every other block (or each layer of it: TDNN layers, TCN residual
  levels) keeps the last ``past + future`` frames of its *input* and runs its
  own offline forward on them and the new frames, keeping the outputs that
  became final. A window that starts at frame 0 is zero padded there as the
  offline pass is; attention windows keep their absolute rotary positions;
  ``dsus`` windows start at multiples of ``2**levels``, the pooling phase.

At the end of a stream, :meth:`StreamingModel.flush` gives the pending
outputs as the offline pass does at the end of the sequence (zero padded
convolutions, fewer keys, the LSTM delay line held at the last frame).

:class:`StepModel` is the same streaming with *fixed-size* state, as one
traceable call per chunk (the ONNX streaming-step graph of
:func:`emotools.export.export_step`): caches of the last ``span`` inputs of
every convolution and time-delay layer, of ``window + future`` rotated keys
and values per attention layer, LSTM ``(h, c)``; rows before frame 0 and
from the stream's end on are zeroed where the offline pass zero pads.

>>> from emotools.models import build
>>> stream = StreamingModel(build("tdnn:lookahead=3", n_features=4, hidden=8))
>>> x = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)
>>> stream.push(x[:10]).shape, stream.push(x[10:]).shape, stream.flush().shape, stream.delay_frames
((7, 2), (10, 2), (3, 2), 3)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .blocks import (
    AttentionBlock,
    AttentionLayer,
    DSUSBlock,
    FrameBlock,
    LSTMBlock,
    TCNBlock,
    TDNNBlock,
    TDNNLayer,
    _Block,
    _MaskedConv,
    _rotary,
)
from .config import ModelConfig, ModelConfigError
from .network import ModelInputError, SequenceRegressor

__all__ = ["StreamingModel", "StepModel", "StateSpec", "check_streamable"]

#: ``fn(h (1, time, d_in), start) -> (1, time, d_out)``: a block's offline forward on a window from frame ``start``.
WindowFn = Callable[[torch.Tensor, int], torch.Tensor]


def _valid(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # (mask (1, time), lengths (1,)) of a window whose frames are all valid
    T = h.shape[1]
    return torch.ones(1, T, dtype=torch.bool, device=h.device), torch.tensor([T], device=h.device)


class _WindowStage:
    """Output ``t`` depends on inputs ``t - past .. t + future``: recompute it on a window of cached inputs.

    The cache holds the inputs from ``past`` frames before the first pending
    output (rounded down to a multiple of ``period``, where pooling groups
    frames from the start of the sequence): at most
    ``past + future + period - 1`` frames between pushes.
    """

    def __init__(self, fn: WindowFn, d_in: int, d_out: int, past: int, future: int, period: int = 1) -> None:
        self.fn, self.d_in, self.d_out = fn, d_in, d_out
        self.past, self.future, self.period = past, future, period

    def reset(self, like: torch.Tensor) -> None:
        self.buffer = like.new_zeros(0, self.d_in)  # inputs from frame `begin` on, (frames, d_in)
        self.begin = self.received = self.emitted = 0

    def _first_needed(self, t: int) -> int:
        return max(0, t - self.past) // self.period * self.period

    def _emit(self, upto: int) -> torch.Tensor:
        # outputs emitted .. upto - 1 from the window of cached inputs; then drop the inputs no longer needed
        if upto <= self.emitted:
            return self.buffer.new_zeros(0, self.d_out)
        start = self._first_needed(self.emitted)
        out = self.fn(self.buffer[start - self.begin :][None], start)[0]  # (received - start, d_out)
        new = out[self.emitted - start : upto - start]
        self.emitted, keep = upto, self._first_needed(upto)
        self.buffer, self.begin = self.buffer[keep - self.begin :].clone(), keep
        return new

    def push(self, x: torch.Tensor) -> torch.Tensor:
        self.buffer = torch.cat([self.buffer, x])
        self.received += x.shape[0]
        return self._emit(self.received - self.future)

    def flush(self) -> torch.Tensor:
        return self._emit(self.received)  # the window ends where the sequence does, as offline

    def state(self) -> list[torch.Tensor]:
        return [self.buffer]


class _LSTMStage:
    """A causal :class:`LSTMBlock`: ``(h, c)`` carried per layer; output ``t`` is the top state at ``t + delay``."""

    def __init__(self, block: LSTMBlock) -> None:
        self.block, self.future, self.d_out = block, block.delay or 0, block.d_out

    def reset(self, like: torch.Tensor) -> None:
        self.states: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(self.block.fwd)
        self.last = like.new_zeros(0, self.d_out)  # the top state of the latest frame, (1, d_out)
        self.received = self.emitted = 0

    def push(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 0:
            return self.last.new_zeros(0, self.d_out)
        h = x[None]  # (1, frames, d_in)
        for i, lstm in enumerate(self.block.fwd):
            if i > 0:
                h = self.block.dropout(h)
            h, self.states[i] = lstm(h, self.states[i])
        h = h[0]
        self.last = h[-1:]
        new = h[max(0, self.future - self.received) :]  # top frame j is output j - delay
        self.received += x.shape[0]
        self.emitted += new.shape[0]
        return new

    def flush(self) -> torch.Tensor:
        # the delay line at the end of a sequence reads its last frame
        return self.last.expand(self.received - self.emitted, -1)

    def state(self) -> list[torch.Tensor]:
        return [self.last, *(t for s in self.states if s is not None for t in s)]


_Stage = _WindowStage | _LSTMStage


def _block_stage(block: _Block, d_in: int, *, period: int = 1) -> _WindowStage:
    # the whole block on a window; attention blocks get the window's start for their rotary positions
    def fn(h: torch.Tensor, start: int) -> torch.Tensor:
        if isinstance(block, AttentionBlock):
            return block(h, *_valid(h), start=start)
        return block(h, *_valid(h))

    return _WindowStage(fn, d_in, block.d_out, block.past, block.future, period)


def _tdnn_stages(block: TDNNBlock, d_in: int) -> list[_Stage]:
    # one stage per time-delay layer: each caches its own splice context
    stages: list[_Stage] = []
    for layer in block.layers:
        stages.append(_WindowStage(lambda h, start, layer=layer: layer(h, _valid(h)[0]),
                                   d_in, block.d_out, layer.left, layer.right))
        d_in = block.d_out
    return stages


def _tcn_stages(block: TCNBlock, d_in: int) -> list[_Stage]:
    # the input projection, then one stage per residual level (two convolutions)
    stages: list[_Stage] = [_WindowStage(lambda h, start: block.inp(h), d_in, block.d_out, 0, 0)]
    for i, pair in enumerate(block.convs):
        past, future = sum(c.span - c.future for c in pair), sum(c.future for c in pair)
        stages.append(_WindowStage(lambda h, start, i=i: block.level(i, h, _valid(h)[0]),
                                   block.d_out, block.d_out, past, future))
    return stages


def _stages(block: _Block, d_in: int) -> list[_Stage]:
    """The streaming stages of one block of a causal model."""
    if isinstance(block, LSTMBlock):
        return [_LSTMStage(block)]
    if isinstance(block, TDNNBlock):
        return _tdnn_stages(block, d_in)
    if isinstance(block, TCNBlock):
        return _tcn_stages(block, d_in)
    if isinstance(block, DSUSBlock):
        return [_block_stage(block, d_in, period=2**block.levels)]
    return [_block_stage(block, d_in)]


class StreamingModel:
    """Stateful inference of a causal :class:`SequenceRegressor`, one stream (batch 1) at a time.

    Output frame ``t`` is returned by the :meth:`push` that brings frame
    ``t + delay_frames``; :meth:`flush` ends the stream with the rest. The
    outputs, concatenated, equal ``model(x[None])[0]`` of the whole stream.
    The model is put in eval mode (dropout off), as the offline prediction.

    Attributes:
        model: the wrapped model.
        delay_frames: frames of lookahead the network uses (``model.receptive_future``;
            at most ``config.lookahead``).
        received: input frames pushed since the last :meth:`reset`.
        emitted: output frames returned since the last :meth:`reset`.

    Raises:
        ModelConfigError: a non-causal model (``lookahead`` None) or global
            attention (``window`` None: an unbounded past to cache).
    """

    def __init__(self, model: SequenceRegressor) -> None:
        config = model.config
        check_streamable(config)
        self.model = model.eval()
        d_in, self._stages = config.n_features, []
        for block in model.blocks:
            self._stages += _stages(block, d_in)
            d_in = block.d_out
        self.delay_frames: int = sum(stage.future for stage in self._stages)
        self.reset()

    def reset(self) -> None:
        """Start a new stream: drop every cached frame and state."""
        like = next(self.model.parameters())
        for stage in self._stages:
            stage.reset(like)
        self.received = self.emitted = 0
        self._ended = False

    @property
    def state_size(self) -> int:
        """Elements of every cached tensor (frames and recurrent states): bounded, whatever the stream's length."""
        return sum(t.numel() for stage in self._stages for t in stage.state())

    def push(self, frames: np.ndarray | torch.Tensor) -> np.ndarray:
        """Consume ``(n, n_features)`` new frames (``n >= 0``); return the ``(m, n_targets)`` outputs now final.

        Raises:
            ModelInputError: frames not ``(n, n_features)``, or a stream already flushed.
        """
        x = self._frames(frames)
        with torch.inference_mode():
            for stage in self._stages:
                x = stage.push(x)
            return self._output(x)

    def flush(self) -> np.ndarray:
        """End the stream: the outputs still pending, as the offline pass gives the last frames of a sequence."""
        self._ended = True
        like = next(self.model.parameters())
        with torch.inference_mode():
            x = like.new_zeros(0, self.model.config.n_features)
            for stage in self._stages:
                x = torch.cat([stage.push(x), stage.flush()])
            return self._output(x)

    def _frames(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        # (n, n_features) as the model's dtype and device, or a ModelInputError naming the problem
        config = self.model.config
        if self._ended:
            raise ModelInputError(config.spec, "the stream was flushed; call reset() to start a new one")
        like = next(self.model.parameters())
        x = torch.as_tensor(frames).to(device=like.device, dtype=like.dtype)
        if x.dim() != 2 or x.shape[1] != config.n_features:
            raise ModelInputError(config.spec, f"expected frames (n, {config.n_features}), got {tuple(x.shape)}")
        self.received += x.shape[0]
        return x

    def _output(self, h: torch.Tensor) -> np.ndarray:
        # the head and output activation, frame by frame (as SequenceRegressor.forward)
        out = self.model.head(h)
        if self.model.config.output == "sigmoid":
            out = torch.sigmoid(out)
        self.emitted += out.shape[0]
        return out.float().cpu().numpy()  # (frames, n_targets)


# --------------------------------------------------------------------------- the fixed-state step (traceable)


def check_streamable(config: ModelConfig) -> None:
    """Raise :class:`ModelConfigError` unless the model streams with bounded state (causal, local attention)."""
    if config.lookahead is None:
        raise ModelConfigError(
            config.spec, f"is not causal (lookahead None); stream a causal model, e.g. '{config.name}:causal' "
            f"or '{config.name}:lookahead=<frames>'"
        )
    if getattr(config, "window", 0) is None:
        raise ModelConfigError(config.spec, "global attention (window None) has an unbounded past; "
                               "streaming needs a local window")


@dataclass(frozen=True)
class StateSpec:
    """One state tensor of a :class:`StepModel`: its name, fixed shape (batch 1) and what it holds."""

    name: str
    shape: tuple[int, ...]
    what: str


class _Ctx:
    """One step's frame positions: input rows are frames ``t .. t + n - 1``; frames ``>= end`` are padding.

    A tensor ``lag`` frames behind the input holds frames ``t - lag + j``;
    rows of frames before 0 (warm-up) or from ``end`` on are zeroed where
    the offline pass zero pads (:meth:`mask`).
    """

    def __init__(self, x: torch.Tensor, t: torch.Tensor, end: torch.Tensor) -> None:
        self.t, self.end = t, end  # (1,) int64 each
        self.j = torch.arange(x.shape[1], device=x.device)  # (n,) row index, dynamic in a trace

    def positions(self, lag: int) -> torch.Tensor:
        return self.t + self.j - lag  # (n,)

    def mask(self, lag: int) -> torch.Tensor:
        pos = self.positions(lag)
        return ((pos >= 0) & (pos < self.end)).to(torch.float32)[None, :, None]  # (1, n, 1)


class _Op:
    """A streaming operation with fixed state: ``op(h, ctx, state) -> (h, new state)``, rows ``lag`` -> ``lag_out``."""

    lag: int = 0
    lag_out: int = 0
    specs: tuple[StateSpec, ...] = ()

    def __call__(self, h: torch.Tensor, ctx: _Ctx,
                 state: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        raise NotImplementedError


class _FrameOp(_Op):
    """Frame-wise (no state, no delay); ``masked``: padding rows zeroed after, as the offline block does."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], lag: int, masked: bool = False) -> None:
        self.fn, self.lag, self.lag_out, self.masked = fn, lag, lag, masked

    def __call__(self, h, ctx, state):
        h = self.fn(h)
        return (h * ctx.mask(self.lag) if self.masked else h), []


class _DelayOp(_Op):
    """Rows delayed by ``k`` frames: a cache of the last ``k``."""

    def __init__(self, name: str, k: int, d: int, lag: int) -> None:
        self.k, self.lag, self.lag_out = k, lag, lag + k
        self.specs = (StateSpec(name, (1, k, d), f"the last {k} frames (a delay line)"),) if k else ()

    def __call__(self, h, ctx, state):
        if not self.k:
            return h, []
        buffer = torch.cat([state[0], h], dim=1)  # (1, k + n, d)
        return buffer[:, : -self.k], [buffer[:, -self.k :]]


class _ConvOp(_Op):
    """A causal :class:`_MaskedConv`: a cache of its last ``span`` inputs (zeros at first), output ``future`` late."""

    def __init__(self, name: str, conv: _MaskedConv, d_in: int, lag: int) -> None:
        self.conv, self.span, self.lag, self.lag_out = conv.conv, conv.span, lag, lag + conv.future
        self.specs = (StateSpec(name, (1, conv.span, d_in), f"the last {conv.span} inputs of a convolution"),) \
            if conv.span else ()

    def __call__(self, h, ctx, state):
        h = h * ctx.mask(self.lag)
        buffer = torch.cat([state[0], h], dim=1) if self.span else h  # (1, span + n, d_in)
        out = self.conv(buffer.transpose(1, 2)).transpose(1, 2)  # (1, n, d_out)
        return out, [buffer[:, -self.span :]] if self.span else []


class _TDNNOp(_Op):
    """A :class:`TDNNLayer`: a cache of its last ``left + right`` inputs, output ``right`` frames late."""

    def __init__(self, name: str, layer: TDNNLayer, d_in: int, lag: int) -> None:
        self.layer, self.span = layer, layer.left + layer.right
        self.lag, self.lag_out = lag, lag + layer.right
        self.specs = (StateSpec(name, (1, self.span, d_in), f"the last {self.span} inputs of a time-delay layer"),) \
            if self.span else ()

    def __call__(self, h, ctx, state):
        h = h * ctx.mask(self.lag)
        buffer = torch.cat([state[0], h], dim=1) if self.span else h  # (1, span + n, d_in)
        starts = [o + self.layer.left for o in self.layer.offsets]  # row j reads buffer[j + start]
        spliced = torch.cat([buffer[:, s : s - self.span if s < self.span else None] for s in starts], dim=-1)
        out = self.layer.norm(F.relu(self.layer.linear(spliced)))
        return out, [buffer[:, -self.span :]] if self.span else []


class _AttentionOp(_Op):
    """An :class:`AttentionLayer` with keys ``window`` back and ``future`` ahead: caches of the last
    ``window + future`` rotated keys and values, and of ``future`` inputs (its queries and residual)."""

    def __init__(self, name: str, layer: AttentionLayer, d: int, lag: int) -> None:
        self.layer, self.d, self.heads = layer, d, layer.heads
        self.window, self.future = int(layer.window), int(layer.future)
        self.keys = self.window + self.future
        self.lag, self.lag_out = lag, lag + self.future
        kv = (1, self.heads, self.keys, d // self.heads)
        self.delay = _DelayOp(f"{name}.input", self.future, d, lag)
        self.specs = (StateSpec(f"{name}.keys", kv, f"the last {self.keys} rotated keys"),
                      StateSpec(f"{name}.values", kv, f"the last {self.keys} values"), *self.delay.specs)

    def _heads(self, h: torch.Tensor, part: slice) -> torch.Tensor:
        qkv = self.layer.qkv(self.layer.norm1(h))[..., part]  # (1, n, parts * d)
        return qkv.reshape(1, -1, qkv.shape[-1] // (self.d // self.heads), self.d // self.heads).transpose(1, 2)

    def __call__(self, h, ctx, state):
        layer, d = self.layer, self.d
        kv = self._heads(h, slice(d, 3 * d))  # (1, 2 heads, n, head_dim)
        k = _rotary(kv[:, : self.heads], ctx.positions(self.lag))
        keys, values = torch.cat([state[0], k], dim=2), torch.cat([state[1], kv[:, self.heads :]], dim=2)
        hq, delayed = self.delay(h, ctx, state[2:])  # the queries' frames: lag + future
        q = _rotary(self._heads(hq, slice(0, d)), ctx.positions(self.lag_out))  # (1, heads, n, head_dim)
        i = torch.arange(keys.shape[2], device=h.device)[None, :]  # key row: frame t - lag - keys + i
        j = ctx.j[:, None]  # query row: frame t - lag - future + j
        key_pos = ctx.t - self.lag - self.keys + i
        keep = (i >= j) & (i <= j + self.keys) & (key_pos >= 0) & (key_pos < ctx.end)
        keep = keep | (i == j + self.window)  # a padding query attends itself (no NaN); its row is zeroed
        scores = (q * (d // self.heads) ** -0.5) @ keys.transpose(-2, -1)  # (1, heads, n, keys + n)
        a = torch.softmax(scores.masked_fill(~keep, float("-inf")), dim=-1) @ values
        out = hq + layer.proj(a.transpose(1, 2).reshape(1, -1, d))
        out = out + layer.ffn(layer.norm2(out))
        return out * ctx.mask(self.lag_out), [keys[:, :, -self.keys :], values[:, :, -self.keys :], *delayed]


class _LSTMOp(_Op):
    """A causal :class:`LSTMBlock`: ``(h, c)`` per layer and the top state of the latest frame (the delay line).

    Row ``j`` is the top state of input frame ``t - lag + j`` (output frame
    ``delay`` earlier); from ``end`` on, the last frame's, as offline. Rows
    before frame 0 (a lookahead block below) must come in calls of their own
    (:attr:`StepModel.warmup_frames`): the state stays zero through them.
    """

    def __init__(self, name: str, block: LSTMBlock, lag: int) -> None:
        self.block, self.lag, self.lag_out = block, lag, lag + (block.delay or 0)
        self.specs = tuple(StateSpec(f"{name}.layer{i}.{s}", (1, 1, lstm.hidden_size), f"LSTM layer {i} {s} state")
                           for i, lstm in enumerate(block.fwd) for s in "hc")
        self.specs += (StateSpec(f"{name}.last", (1, 1, block.d_out), "the top state of the latest frame"),)

    def __call__(self, h, ctx, state):
        warm = (ctx.t >= self.lag)[:, None, None]  # (1, 1, 1): this call's rows are frames >= 0
        new = []
        for i, lstm in enumerate(self.block.fwd):
            h0, c0 = state[2 * i], state[2 * i + 1]
            h, (hn, cn) = lstm(h, (h0, c0))
            new += [torch.where(warm, hn, h0), torch.where(warm, cn, c0)]
        rows = torch.cat([state[-1], h], dim=1)  # (1, 1 + n, d): the latest frame's state, then the new ones
        last_row = ctx.end - 1 - (ctx.t - self.lag)  # row j (from 0) of the stream's last frame
        out = rows.index_select(1, torch.minimum(ctx.j, last_row).clamp(min=-1) + 1)  # (1, n, d)
        return out, [*new, torch.where(warm, out[:, -1:], state[-1])]


def _block_ops(k: int, block: _Block, d_in: int, lag: int) -> list[_Op]:
    """The step operations of block ``k`` of a causal model, its input ``lag`` frames behind the stream."""
    name = f"b{k}"
    if isinstance(block, FrameBlock):
        return [_FrameOp(block.net, lag)]
    if isinstance(block, LSTMBlock):
        return [_LSTMOp(f"{name}.lstm", block, lag)]
    ops: list[_Op] = []
    if isinstance(block, TDNNBlock):
        for i, layer in enumerate(block.layers):
            ops.append(_TDNNOp(f"{name}.tdnn{i}", layer, d_in if i == 0 else block.d_out, lag))
            lag = ops[-1].lag_out
        return ops
    if isinstance(block, TCNBlock):
        ops.append(_FrameOp(block.inp, lag))
        for i in range(len(block.convs)):
            ops.append(_TCNLevelOp(f"{name}.tcn{i}", block, i, lag))
            lag = ops[-1].lag_out
        return ops
    if isinstance(block, AttentionBlock):
        ops.append(_FrameOp(block.inp, lag, masked=True))
        for i, layer in enumerate(block.layers):
            ops.append(_AttentionOp(f"{name}.attention{i}", layer, block.d_out, lag))
            lag = ops[-1].lag_out
        return [*ops, _FrameOp(block.norm, lag)]
    raise ModelConfigError(type(block).__name__, "no fixed-state streaming step yet")


class _TCNLevelOp(_Op):
    """Residual level ``i`` of a :class:`TCNBlock`: two convolutions and the residual delayed to meet them."""

    def __init__(self, name: str, block: TCNBlock, i: int, lag: int) -> None:
        c1, c2 = block.convs[i]
        self.norm = block.norms[i]
        self.c1 = _ConvOp(f"{name}.conv0", c1, block.d_out, lag)
        self.c2 = _ConvOp(f"{name}.conv1", c2, block.d_out, self.c1.lag_out)
        self.residual = _DelayOp(f"{name}.residual", c1.future + c2.future, block.d_out, lag)
        self.lag, self.lag_out = lag, self.c2.lag_out
        self.specs = (*self.c1.specs, *self.c2.specs, *self.residual.specs)

    def __call__(self, h, ctx, state):
        n1, n2 = len(self.c1.specs), len(self.c1.specs) + len(self.c2.specs)
        a, s1 = self.c1(self.norm(h), ctx, state[:n1])
        b, s2 = self.c2(F.gelu(a), ctx, state[n1:n2])
        r, s3 = self.residual(h, ctx, state[n2:])
        return r + b, [*s1, *s2, *s3]


class StepModel(nn.Module):
    """A causal model's streaming form with fixed-size state, traceable (ONNX): one call per chunk of frames.

    ``forward(x (1, n, n_features), t (1,), end (1,), *state) -> (y (1, n, n_targets), t + n, *state')``:
    ``x`` are frames ``t .. t + n - 1``; row ``j`` of ``y`` is output frame
    ``t + j - delay_frames`` (rows of frames before 0 are meaningless: drop
    them). ``end`` is the stream's length where known (frames from it on are
    padding, zero frames pushed to flush the last outputs), else any larger
    number. ``state`` starts as :meth:`initial_state` (zeros; shapes
    :attr:`specs`). Calls must not cross a frame count in
    :attr:`warmup_frames` (split the chunk there). Equal to the offline
    forward, as :class:`StreamingModel` is; ``dsus`` has no step form yet.

    Raises:
        ModelConfigError: a model that cannot stream (see :func:`check_streamable`), or ``dsus``.
    """

    def __init__(self, model: SequenceRegressor) -> None:
        super().__init__()
        check_streamable(model.config)
        if "dsus" in model.config.blocks:
            raise ModelConfigError(model.config.spec, "dsus pools frames in pairs from the start of the stream: "
                                   "no fixed-state streaming step yet")
        self.model = model.eval()
        ops: list[_Op] = []
        d_in, lag = model.config.n_features, 0
        for k, block in enumerate(model.blocks):
            ops += _block_ops(k, block, d_in, lag)
            d_in, lag = block.d_out, ops[-1].lag_out
        self._ops = ops
        self.delay_frames: int = lag
        self.specs: tuple[StateSpec, ...] = tuple(s for op in ops for s in op.specs)
        lstm_lags = {op.lag for op in ops if isinstance(op, _LSTMOp) and op.lag}
        self.warmup_frames: tuple[int, ...] = tuple(sorted(lstm_lags))
        self.eval()  # dropout off, as offline; a traced export restores this mode

    def initial_state(self) -> list[torch.Tensor]:
        """The state at the start of a stream: zeros of :attr:`specs`' shapes."""
        like = next(self.model.parameters())
        return [like.new_zeros(s.shape) for s in self.specs]

    def forward(self, x: torch.Tensor, t: torch.Tensor, end: torch.Tensor,
                *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ctx, h, new, k = _Ctx(x, t, end), x, [], 0
        for op in self._ops:
            h, s = op(h, ctx, list(state[k : k + len(op.specs)]))
            new += s
            k += len(op.specs)
        y = self.model.head(h)
        if self.model.config.output == "sigmoid":
            y = torch.sigmoid(y)
        return (y, t + ctx.j.shape[0], *new)
