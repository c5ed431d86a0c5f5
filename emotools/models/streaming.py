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

>>> from emotools.models import build
>>> stream = StreamingModel(build("tdnn:lookahead=3", n_features=4, hidden=8))
>>> x = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)
>>> stream.push(x[:10]).shape, stream.push(x[10:]).shape, stream.flush().shape, stream.delay_frames
((7, 2), (10, 2), (3, 2), 3)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .blocks import AttentionBlock, DSUSBlock, LSTMBlock, TCNBlock, TDNNBlock, _Block
from .config import ModelConfigError
from .network import ModelInputError, SequenceRegressor

__all__ = ["StreamingModel"]

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
        if config.lookahead is None:
            raise ModelConfigError(
                config.spec, f"is not causal (lookahead None); stream a causal model, e.g. '{config.name}:causal' "
                f"or '{config.name}:lookahead=<frames>'"
            )
        if getattr(config, "window", 0) is None:
            raise ModelConfigError(config.spec, "global attention (window None) has an unbounded past; "
                                   "streaming needs a local window")
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
