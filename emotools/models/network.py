"""The model: a stack of blocks and a linear head, built by name with :func:`build`."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..errors import EmotoolsError
from .blocks import BLOCKS, _Block, _zero_padding, lengths_to_mask, share_lookahead
from .config import ModelConfig, make_config

__all__ = ["ModelInputError", "SequenceRegressor", "build", "count_parameters"]


class ModelInputError(EmotoolsError, ValueError):
    """Input a model cannot take at call time (shape, lengths); ``str(err)`` is ``"<model>: <reason>"``."""


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def build(name: str, n_features: int = 88, n_targets: int = 2, **overrides: Any) -> SequenceRegressor:
    """Build a registered model with its default config, ``overrides`` applied.

    Args:
        name: a key of :data:`~emotools.models.MODELS` (``"lstm"``, ``"attention"``, ...)
            or an architecture spec (``"tcn:causal"``, ``"lstm:lookahead=5"``).
        n_features: input features per frame.
        n_targets: outputs per frame.
        **overrides: config fields, e.g. ``hidden=32, window=25``.

    Raises:
        ModelConfigError: unknown name or option, or an invalid value.
    """
    return SequenceRegressor(make_config(name, n_features=n_features, n_targets=n_targets, **overrides))


class SequenceRegressor(nn.Module):
    """A stack of blocks and a linear head: ``(x, lengths) -> (batch, time, n_targets)``.

    With ``config.output == "sigmoid"`` the head's output goes through a
    sigmoid (no parameters, so the weights are those of a linear head).

    With ``config.lookahead`` k (an int), output frame ``t`` depends on input
    frames ``<= t + k`` only: the budget goes to the blocks local to global,
    each taking what its causal form can use
    (:meth:`~emotools.models.blocks._Block.lookahead_capacity`).

    Attributes:
        config: the dataclass config it was built from.
        name: the registry name.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.name = config.name
        blocks: list[_Block] = []
        d = config.n_features
        kinds = [BLOCKS[kind] for kind in config.blocks]
        shares = share_lookahead(config.lookahead, [cls.lookahead_capacity(config) for cls in kinds])
        for cls, share in zip(kinds, shares):
            blocks.append(cls(d, config, lookahead=share))
            d = blocks[-1].d_out
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(d, config.n_targets)

    @property
    def receptive_field(self) -> int | None:
        """Context of one output frame in input frames; None where unbounded."""
        total = 1
        for block in self.blocks:
            if block.receptive_field is None:
                return None
            total += block.receptive_field - 1
        return total

    @property
    def receptive_past(self) -> int | None:
        """Input frames before an output frame that it depends on (widest); None where unbounded."""
        return self._sum_support("past")

    @property
    def receptive_future(self) -> int | None:
        """Input frames after an output frame that it depends on (widest): at most ``config.lookahead``."""
        return self._sum_support("future")

    def _sum_support(self, side: str) -> int | None:
        values = [getattr(block, side) for block in self.blocks]
        return None if None in values else sum(values)

    def receptive_field_seconds(self, rate_hz: float) -> float:
        """:attr:`receptive_field` in seconds at ``rate_hz`` frames per second (``inf`` if unbounded)."""
        rf = self.receptive_field
        return math.inf if rf is None else rf / rate_hz

    @property
    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return count_parameters(self)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Predict every frame.

        Args:
            x: ``(batch, time, n_features)`` float.
            lengths: ``(batch,)`` valid frames per sequence; None = all valid.

        Returns:
            ``(batch, time, n_targets)``; padded frames are 0.

        Raises:
            ModelInputError: ``x`` is not ``(batch, time, n_features)`` or
                ``lengths`` not ``(batch,)`` within ``[1, time]``.
        """
        if x.dim() != 3 or x.shape[-1] != self.config.n_features:
            raise ModelInputError(
                self.name, f"expected input (batch, time, {self.config.n_features}), got {tuple(x.shape)}"
            )
        B, T, _ = x.shape
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long, device=x.device)
        lengths = torch.as_tensor(lengths, device=x.device)
        if lengths.shape != (B,) or bool((lengths < 1).any()) or bool((lengths > T).any()):
            raise ModelInputError(self.name, f"lengths must be (batch,) in [1, {T}], got {lengths.tolist()}")
        mask = lengths_to_mask(lengths, T)  # (batch, time)
        h = _zero_padding(x, mask)  # NaN/inf in padding cannot leak
        for block in self.blocks:
            h = block(h, mask, lengths)
        out = self.head(h)
        if self.config.output == "sigmoid":
            out = torch.sigmoid(out)
        return _zero_padding(out, mask)  # (batch, time, n_targets)

    def extra_repr(self) -> str:
        return f"name={self.config.spec!r}, receptive_field={self.receptive_field}, parameters={self.n_parameters}"
