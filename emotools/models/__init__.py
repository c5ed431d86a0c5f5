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

By default models are non-causal (bidirectional LSTMs, centred convolutions
and attention windows): they predict offline, from past and future frames.
With ``lookahead=k`` (frames; ``0`` strictly causal), or the architecture
spec ``"<name>:causal"`` / ``"<name>:lookahead=<k>"`` wherever a name is
accepted (:func:`parse_architecture`), output frame ``t`` depends on input
frames ``<= t + k`` only: forward LSTMs with a delay line, convolutions and
TDNN contexts shifted into the past, attention masked to the past window and
the lookahead.

Padding never changes a valid output: convolutions zero padded frames before
every convolution, attention masks padded keys, LSTMs pack the batch; padded
outputs are returned as 0. No block is O(T^2) in memory: attention goes
through :func:`torch.nn.functional.scaled_dot_product_attention`, by default
within a local window (the same at training and inference) computed block by
block, so time and memory grow linearly with the sequence length.

``model.receptive_field`` is the context of one output frame in input frames
(``None`` where unbounded: LSTMs, global attention), and
``model.receptive_field_seconds(rate_hz)`` the same in seconds (``inf``);
``model.receptive_past`` / ``model.receptive_future`` its two sides.

>>> model = build("tdnn", n_features=88, n_targets=2)
>>> model.receptive_field, model.receptive_field_seconds(10.0)
(47, 4.7)

The package: :mod:`~emotools.models.config` (the configs, their parts and
the registry :data:`MODELS`), :mod:`~emotools.models.blocks` (the blocks,
each built as ``block(d_in, config)``), :mod:`~emotools.models.network`
(:class:`SequenceRegressor` and :func:`build`), :mod:`~emotools.models.streaming`
(:class:`StreamingModel`: stateful, frame-by-frame inference of a causal
model); every name is re-exported here.
"""

from __future__ import annotations

from . import blocks, config, network, streaming
from .blocks import *  # noqa: F403
from .config import *  # noqa: F403
from .network import *  # noqa: F403
from .streaming import *  # noqa: F403

__all__ = [*config.__all__, *blocks.__all__, *network.__all__, *streaming.__all__]
