"""Sequence models: shapes, padding, receptive fields, references, overfitting."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emotools import metrics, models
from emotools.errors import EmotoolsError

NAMES = list(models.MODELS)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest


REQUIRED = ["mlp", "lstm", "tdnn", "attention", "tdnn_lstm", "attention_tdnn", "attention_lstm",
            "attention_tdnn_lstm", "tcn"]


def tiny(name: str, n_features: int = 6, n_targets: int = 2, **extra) -> models.SequenceRegressor:
    """A small, dropout-free instance of every architecture (fast tests)."""
    options = {"hidden": 16, "dropout": 0.0}
    fields = {f.name for f in dataclasses.fields(models.MODELS[name])}
    if "heads" in fields:
        options.update(heads=2, window=3)
    if "contexts" in fields:
        options.update(contexts=((-1, 0, 1), (-2, 0, 2)))
    if "levels" in fields:
        options.update(levels=3)
    options.update(extra)
    torch.manual_seed(0)
    return models.build(name, n_features, n_targets, **options).eval()


def test_registry_has_every_interface_name():
    assert set(REQUIRED) <= set(models.MODELS)
    for name, cls in models.MODELS.items():
        assert cls.name == name
        model = models.build(name)
        assert model.name == name and model.n_parameters == sum(p.numel() for p in model.parameters()) > 0


def test_unknown_name_and_option_are_refused():
    with pytest.raises(models.ModelConfigError, match="unknown model 'gru'.*lstm"):
        models.build("gru")
    with pytest.raises(models.ModelConfigError, match="unknown option.*'windw'"):
        models.build("attention", windw=3)
    with pytest.raises(models.ModelConfigError, match="divisible"):
        models.build("attention", hidden=30, heads=4)
    with pytest.raises(models.ModelConfigError, match="even head size"):
        models.build("attention", hidden=18, heads=2)
    with pytest.raises(models.ModelConfigError, match="dropout"):
        models.build("mlp", dropout=1.5)


def test_config_round_trip_through_dict():
    model = models.build("attention_tdnn_lstm", 10, 1, window=7, contexts=((-1, 0, 1),))
    d = model.config.to_dict()
    assert d["name"] == "attention_tdnn_lstm" and d["contexts"] == [[-1, 0, 1]]
    again = models.config_from_dict(json.loads(json.dumps(d)))
    assert again == model.config


#: Each registered model's default options beyond the shared ones, as checkpoints written before the
#: configs were composed of parts store them (a flat dict, in this order).
FLAT_DEFAULTS = {
    "mlp": {"layers": 2},
    "lstm": {"lstm_layers": 2, "bidirectional": True},
    "tdnn": {"contexts": [[-2, -1, 0, 1, 2], [-3, 0, 3], [-6, 0, 6], [-12, 0, 12]]},
    "attention": {"attention_layers": 2, "heads": 4, "window": 50, "ffn_mult": 2},
    "tdnn_lstm": {"contexts": [[-2, -1, 0, 1, 2], [-3, 0, 3]], "lstm_layers": 1, "bidirectional": True},
    "attention_tdnn": {"contexts": [[-2, -1, 0, 1, 2], [-3, 0, 3]], "attention_layers": 2, "heads": 4,
                       "window": 50, "ffn_mult": 2},
    "attention_lstm": {"attention_layers": 1, "heads": 4, "window": 50, "ffn_mult": 2, "lstm_layers": 1,
                       "bidirectional": True},
    "attention_tdnn_lstm": {"contexts": [[-2, -1, 0, 1, 2], [-3, 0, 3]], "attention_layers": 1, "heads": 4,
                            "window": 50, "ffn_mult": 2, "lstm_layers": 1, "bidirectional": True},
    "tcn": {"kernel": 3, "levels": 6},
    "dsus": {"kernel": 5, "levels": 4},
}


@pytest.mark.parametrize("name", NAMES)
def test_default_config_is_the_flat_checkpoint_dict(name):
    flat = {"name": name, "n_features": 88, "n_targets": 2, "hidden": 64, "dropout": 0.1, **FLAT_DEFAULTS[name]}
    config = models.MODELS[name]()
    assert list(config.to_dict().items()) == list(flat.items())  # same keys, values and order
    loaded = models.config_from_dict(json.loads(json.dumps(flat)))
    assert loaded == config and type(loaded) is models.MODELS[name]
    assert models.ModelConfig.from_dict(flat) == type(config).from_dict(flat) == config
    # every field is in the flat dict, but for ``output``, written only when not "linear" (tests/test_original.py),
    # and ``lookahead``, written only when not None (causal models)
    assert [f.name for f in dataclasses.fields(config) if f.name not in ("output", "lookahead")] == list(flat)[1:]


def test_from_dict_on_a_config_class_refuses_another_model():
    with pytest.raises(models.ModelConfigError, match="^tdnn: is not a LSTMConfig$"):
        models.LSTMConfig.from_dict({"name": "tdnn"})
    with pytest.raises(models.ModelConfigError, match="has no 'name'"):
        models.config_from_dict({"hidden": 3})


def expected_parameters(config: models.ModelConfig) -> int:
    """Trainable parameters of a model, counted from its config by formula (independent of the code)."""
    h, d = config.hidden, config.n_features
    linear = lambda i, o: i * o + o  # noqa: E731
    norm = 2 * h
    n = 0
    for kind in config.blocks:
        if kind == "frame":
            n += linear(d, h) + (config.layers - 1) * linear(h, h)
        elif kind == "tdnn":
            for i, offsets in enumerate(config.contexts):
                n += linear((d if i == 0 else h) * len(offsets), h) + norm
        elif kind == "attention":
            m = config.ffn_mult
            layer = norm + linear(h, 3 * h) + linear(h, h) + norm + linear(h, m * h) + linear(m * h, h)
            n += linear(d, h) + config.attention_layers * layer + norm
        elif kind == "lstm":
            dirs = 2 if config.bidirectional else 1
            if config.lookahead is not None:  # causal: one direction as wide as both
                h, dirs = h * dirs, 1
            n += dirs * sum(4 * h * ((d if i == 0 else dirs * h) + h) + 8 * h for i in range(config.lstm_layers))
            h = config.hidden
        elif kind == "tcn":
            n += linear(d, h) + config.levels * (norm + 2 * (h * h * config.kernel + h))
        elif kind == "dsus":
            conv = h * h * config.kernel + h
            n += linear(d, h) + (config.levels + 1) * conv + config.levels * (2 * conv - h)
        d = 2 * h if kind == "lstm" and config.bidirectional else h
    return n + linear(d, config.n_targets)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("options", [{}, {"hidden": 16, "dropout": 0.0}, {"hidden": 16, "lookahead": 2}],
                         ids=["default", "small", "causal"])
def test_each_block_is_built_from_d_in_and_the_config(name, options):
    model = models.build(name, 7, 3, **options)
    assert [type(b) for b in model.blocks] == [models.BLOCKS[k] for k in model.config.blocks]
    assert model.n_parameters == expected_parameters(model.config)
    torch.manual_seed(0)
    alone = models.BLOCKS[model.config.blocks[0]](7, model.config)
    torch.manual_seed(0)
    again = models.BLOCKS[model.config.blocks[0]](7, model.config)
    assert all(torch.equal(a, b) for a, b in zip(alone.state_dict().values(), again.state_dict().values()))
    in_model = {k.removeprefix("blocks.0.") for k in model.state_dict() if k.startswith("blocks.0.")}
    assert set(alone.state_dict()) == in_model


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("attention", {"hidden": 30, "heads": 4}, "attention: hidden (30) must be divisible by heads (4)"),
        ("attention", {"heads": 0}, "attention: heads must be >= 1, got 0"),
        ("attention_lstm", {"window": 0}, "attention_lstm: window must be >= 1 frame or None (global), got 0"),
        ("lstm", {"lstm_layers": 0}, "lstm: lstm_layers must be >= 1, got 0"),
        ("mlp", {"layers": 0}, "mlp: layers must be >= 1, got 0"),
        ("tdnn", {"contexts": [[-1, 0], []]}, "tdnn: contexts must be non-empty offset lists"),
        ("tcn", {"kernel": 4}, "tcn: convolution kernel must be odd (centred), got 4"),
        ("dsus", {"levels": -1}, "dsus: levels must be >= 0, got -1"),
        ("tdnn_lstm", {"n_features": 0}, "tdnn_lstm: n_features must be >= 1, got 0"),
        ("gru", {}, "gru: unknown model 'gru'; known: mlp, lstm"),
        ("tcn", {"heads": 2}, "tcn: unknown option(s) ['heads']"),
    ],
)
def test_config_errors_name_the_model_and_are_emotools_value_errors(name, options, message):
    with pytest.raises(models.ModelConfigError) as e:
        models.build(name, **options)
    assert str(e.value).startswith(message)
    assert e.value.subject == name and str(e.value) == f"{name}: {e.value.reason}"
    assert isinstance(e.value, EmotoolsError) and isinstance(e.value, ValueError)
    again = pickle.loads(pickle.dumps(e.value))
    assert type(again) is models.ModelConfigError and str(again) == str(e.value)


@pytest.mark.parametrize("name", NAMES)
def test_output_shape_and_zero_padding(name):
    model = tiny(name)
    x = torch.randn(3, 23, 6)
    lengths = torch.tensor([23, 17, 5])
    y = model(x, lengths)
    assert y.shape == (3, 23, 2) and y.dtype == torch.float32
    assert torch.isfinite(y).all()
    assert (y[1, 17:] == 0).all() and (y[2, 5:] == 0).all()
    assert model(x).shape == (3, 23, 2)  # lengths default to all valid


@pytest.mark.parametrize("lookahead", [None, 0, 3])
@pytest.mark.parametrize("name", NAMES)
def test_padding_never_changes_valid_outputs(name, lookahead):
    model = tiny(name, lookahead=lookahead)
    torch.manual_seed(1)
    x = torch.randn(3, 40, 6)
    lengths = torch.tensor([40, 29, 11])
    y = model(x, lengths)
    garbage = x.clone()
    for b, n in enumerate(lengths.tolist()):
        garbage[b, n:] = torch.randn(40 - n, 6) * 1e3
    garbage[2, 20] = float("nan")  # even NaN in padding must not leak
    y2 = model(garbage, lengths)
    for b, n in enumerate(lengths.tolist()):
        alone = model(x[b : b + 1, :n])[0]
        torch.testing.assert_close(y2[b, :n], y[b, :n], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(y[b, :n], alone, atol=1e-5, rtol=1e-4)


def gradient_support(model: models.SequenceRegressor, T: int, frames: range) -> tuple[int, int, int]:
    """Widest (span, past, future) of input frames with a non-zero gradient for one output frame."""
    x = torch.randn(1, T, model.config.n_features, dtype=torch.float64, requires_grad=True)
    model = model.double()
    widest = past = future = 0
    for t in frames:
        x.grad = None
        model(x)[0, t].sum().backward()
        nz = (x.grad[0].abs().sum(-1) > 0).nonzero().flatten()
        widest = max(widest, int(nz.max() - nz.min() + 1))
        past, future = max(past, t - int(nz.min())), max(future, int(nz.max()) - t)
    return widest, past, future


@pytest.mark.parametrize("lookahead", [None, 0, 3])
@pytest.mark.parametrize("name", NAMES)
def test_receptive_field_equals_gradient_support(name, lookahead):
    model = tiny(name, lookahead=lookahead)
    rf, past, future = model.receptive_field, model.receptive_past, model.receptive_future
    if lookahead is not None:  # every tiny model can spend 3 frames of lookahead but the frame-local mlp
        assert future == (0 if name == "mlp" else lookahead)
    T = 30 if rf is None else 2 * rf + 60  # a causal context lies on one side of the frame
    middle = T // 2
    # dsus: the context depends on the position modulo 2**levels
    span, measured_past, measured_future = gradient_support(model, T, range(middle, middle + (1 if rf is None else 8)))
    # unbounded (LSTMs): every frame of a short sequence on that side matters
    assert measured_past == (middle if past is None else past)
    assert measured_future == (T - 1 - middle if future is None else future)
    if rf is None:
        assert span == measured_past + measured_future + 1 and model.receptive_field_seconds(10.0) == math.inf
    else:
        assert span == rf and model.receptive_field_seconds(10.0) == pytest.approx(rf / 10.0)


@pytest.mark.parametrize("lookahead", [0, 3])
@pytest.mark.parametrize("name", NAMES)
def test_causal_outputs_do_not_depend_on_later_frames(name, lookahead):
    model = tiny(name, lookahead=lookahead).double()
    torch.manual_seed(2)
    T = 40
    x = torch.randn(2, T, 6, dtype=torch.float64)
    full = model(x)
    for t in (0, 1, 6, 13, 22, 30):
        n = t + lookahead + 1  # frames up to t + lookahead: cut off, or padded with garbage
        cut = model(x[:, :n])
        garbage = x.clone()
        garbage[:, n:] = torch.randn(T - n, 6, dtype=torch.float64) * 1e3
        padded = model(garbage, torch.tensor([n, T]))
        torch.testing.assert_close(cut[:, : t + 1], full[:, : t + 1], atol=1e-6, rtol=0)
        torch.testing.assert_close(padded[0, : t + 1], full[0, : t + 1], atol=1e-6, rtol=0)
    if name != "mlp":  # and the lookahead is used: frame t + lookahead matters
        changed = x.clone()
        changed[:, 20 + lookahead] += 1.0
        assert (model(changed)[:, 20] - full[:, 20]).abs().max() > 1e-6


def test_causal_receptive_fields_in_frames():
    # defaults: the same span (but for attention windows and dsus), shifted into the past
    assert models.build("tdnn", lookahead=0).config.to_dict()["lookahead"] == 0
    for name, past, future in [("tdnn", 46, 0), ("tcn", 252, 0), ("attention", 100, 0), ("mlp", 0, 0)]:
        model = models.build(name, lookahead=0)
        assert (model.receptive_past, model.receptive_future) == (past, future)
    model = models.build("tdnn", lookahead=5)  # the first layer's future (2) then the second's (3 of 3)
    assert [layer.offsets for layer in model.blocks[0].layers] == [
        (-2, -1, 0, 1, 2), (-3, 0, 3), (-12, -6, 0), (-24, -12, 0)]
    assert (model.receptive_past, model.receptive_future) == (41, 5)
    assert models.build("tdnn", lookahead=100).receptive_future == 23  # no more than the non-causal model's
    model = models.build("attention_tdnn_lstm", lookahead=8)  # tdnn 5, attention 3, lstm 0
    assert [b.future for b in model.blocks] == [5, 3, 0] and model.receptive_future == 8
    assert model.blocks[1].layers[0].future == 3
    model = models.build("tdnn_lstm", lookahead=9)  # the LSTM's delay line takes what the TDNN cannot use
    assert [b.future for b in model.blocks] == [5, 4] and model.blocks[1].delay == 4
    assert models.build("dsus", lookahead=50).receptive_future == 4  # the two full-rate convolutions, kernel 5


@pytest.mark.parametrize("T,window,future", [(37, 5, 0), (40, 8, 3), (40, 8, 8), (9, 30, 2), (33, None, 0),
                                             (33, None, 4), (1, 3, 0)])
def test_causal_local_attention_equals_explicit_softmax(T, window, future):
    torch.manual_seed(T)
    q, k, v = (torch.randn(2, 3, T, 4, dtype=torch.float64) for _ in range(3))
    lengths = torch.tensor([T, max(1, T - 7)])
    mask = models.lengths_to_mask(lengths, T)
    ref = naive_local_attention(q, k, v, mask, window, future)
    for dropout_p in (0.0, 1e-300):  # the inference and the training path
        out = models.local_attention(q, k, v, mask, window, dropout_p, future=future)
        for b, n in enumerate(lengths.tolist()):
            torch.testing.assert_close(out[b, :, :n], ref[b, :, :n])
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("lookahead", [0, 2])
def test_causal_lstm_is_a_forward_lstm_twice_as_wide_with_a_delay_line(lookahead):
    torch.manual_seed(0)
    config = models.LSTMConfig(hidden=4, lstm_layers=2, dropout=0.0, lookahead=lookahead)
    block = models.LSTMBlock(5, config).double().eval()
    assert block.bwd is None and block.d_out == 8
    ref = torch.nn.LSTM(5, 8, num_layers=2, batch_first=True).double()
    with torch.no_grad():
        for layer in range(2):
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(ref, f"{kind}_l{layer}").copy_(getattr(block.fwd[layer], kind + "_l0"))
    x = torch.randn(3, 15, 5, dtype=torch.float64)
    lengths = torch.tensor([15, 9, 4])
    out = block(x, models.lengths_to_mask(lengths, 15), lengths)
    for b, n in enumerate(lengths.tolist()):
        states = ref(x[b : b + 1, :n])[0][0]  # (n, 8)
        delayed = states[torch.clamp(torch.arange(n) + lookahead, max=n - 1)]  # the last valid state at the end
        torch.testing.assert_close(out[b, :n], delayed)


def test_architecture_specs_parse_into_a_name_and_a_lookahead():
    assert models.parse_architecture("tcn") == ("tcn", {})
    assert models.parse_architecture("tcn:causal") == ("tcn", {"lookahead": 0})
    assert models.parse_architecture("lstm:lookahead=5") == ("lstm", {"lookahead": 5})
    config = models.make_config("tcn:causal", hidden=8)
    assert config.name == "tcn" and config.lookahead == 0 and config.spec == "tcn:causal"
    assert models.build("lstm:lookahead=5").config.spec == "lstm:lookahead=5"
    assert models.config_from_dict({"name": "attention:causal"}) == models.AttentionConfig(lookahead=0)
    d = models.make_config("tdnn:lookahead=2").to_dict()
    assert d["name"] == "tdnn" and d["lookahead"] == 2
    assert models.config_from_dict(json.loads(json.dumps(d))).spec == "tdnn:lookahead=2"
    assert "lookahead" not in models.make_config("tdnn").to_dict() and models.make_config("tdnn").spec == "tdnn"
    assert models.make_config("tcn:causal", lookahead=0).lookahead == 0  # agreeing with the spec is fine
    assert models.arch_order(["tdnn", "tcn:causal", "zeta", "mlp:causal", "tcn", "tcn:lookahead=12",
                              "tcn:lookahead=3", "gru:causal"]) == [
        "mlp:causal", "tdnn", "tcn", "tcn:causal", "tcn:lookahead=3", "tcn:lookahead=12", "gru:causal", "zeta"]


@pytest.mark.parametrize(
    "spec, options, message",
    [
        ("tcn:causl", {}, "tcn:causl: unknown architecture variant 'causl'; use 'tcn:causal' or "
                          "'tcn:lookahead=<frames >= 0>'"),
        ("tcn:lookahead=-1", {}, "tcn:lookahead=-1: unknown architecture variant 'lookahead=-1'"),
        ("tcn:lookahead=x", {}, "tcn:lookahead=x: unknown architecture variant"),
        ("tcn:lookahead=", {}, "tcn:lookahead=: unknown architecture variant"),
        ("tcn:causal:causal", {}, "tcn:causal:causal: unknown architecture variant 'causal:causal'"),
        ("gru:causal", {}, "gru: unknown model 'gru'; known: mlp"),
        ("tcn:causal", {"lookahead": 3}, "tcn:causal: lookahead=3 contradicts the architecture spec 'tcn:causal'"),
        ("tcn", {"lookahead": -1}, "tcn: lookahead must be None or an int >= 0 (frames), got -1"),
        ("lstm", {"lookahead": 1.5}, "lstm: lookahead must be None or an int >= 0 (frames), got 1.5"),
        ("mlp", {"lookahead": True}, "mlp: lookahead must be None or an int >= 0 (frames), got True"),
    ],
)
def test_bad_architecture_specs_and_lookaheads_are_refused(spec, options, message):
    with pytest.raises(models.ModelConfigError) as e:
        models.make_config(spec, **options)
    assert str(e.value).startswith(message)


def test_fit_trains_a_causal_spec_and_its_checkpoint_loads_back(tmp_path):
    from emotools import training
    from emotools.sequences import SequenceRecord

    rng = np.random.default_rng(0)
    records = [SequenceRecord(f"r{i}", x=rng.standard_normal((50, 4)), y=rng.standard_normal((50, 2)),
                              time=np.arange(50) / 10, rate_hz=10.0, speaker=f"s{i}", session=f"r{i}", split=split)
               for i, split in enumerate(["train"] * 3 + ["dev"])]
    options = training.FitOptions(epochs=2, batch_size=2, chunk_s=2.0, warmup_steps=1,
                                  model_options={"hidden": 8, "levels": 2})
    trained = training.fit("tcn:causal", records[:3], records[3:], options, checkpoint_dir=tmp_path, progress=False)
    assert trained.model.config.lookahead == 0 and trained.model.receptive_future == 0
    assert len(trained.history) == 2
    loaded = training.load(tmp_path / "model.pt")
    assert loaded.model.config == trained.model.config and loaded.model.config.spec == "tcn:causal"
    saved = json.loads((tmp_path / "model.json").read_text())["model"]
    assert saved["name"] == "tcn" and saved["lookahead"] == 0
    for a, b in zip(loaded.predict(records[3:]), trained.predict(records[3:])):
        np.testing.assert_array_equal(a, b)


def test_default_receptive_fields_in_frames():
    assert models.build("mlp").receptive_field == 1
    assert models.build("tdnn").receptive_field == 1 + 4 + 6 + 12 + 24
    assert models.build("attention").receptive_field == 1 + 2 * 50 * 2
    assert models.build("attention_tdnn").receptive_field == 11 + 200
    assert models.build("tcn").receptive_field == 253  # 25.3 s at 10 Hz: tens of seconds
    assert models.build("attention", window=None).receptive_field is None
    for name in ("lstm", "tdnn_lstm", "attention_lstm", "attention_tdnn_lstm"):
        assert models.build(name).receptive_field is None


def naive_local_attention(q, k, v, mask, window, future=None):
    """Reference: explicit softmax(QK^T / sqrt(d)) with a band and key mask (O(T^2)); keys up to ``future`` ahead."""
    T = q.shape[2]
    pos = torch.arange(T)
    keep = mask[:, None, None, :].expand(-1, 1, T, -1)
    if window is not None:
        keep = keep & ((pos[:, None] - pos[None, :]).abs() <= window)
    if future is not None:
        keep = keep & (pos[None, :] - pos[:, None] <= future)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~keep, float("-inf"))
    return torch.softmax(scores, -1) @ v


@pytest.mark.parametrize("T,window", [(37, 5), (40, 8), (9, 4), (12, 30), (33, None), (1, 3)])
def test_local_attention_equals_explicit_softmax(T, window):
    torch.manual_seed(T)
    q, k, v = (torch.randn(2, 3, T, 4, dtype=torch.float64) for _ in range(3))
    lengths = torch.tensor([T, max(1, T - 7)])
    mask = models.lengths_to_mask(lengths, T)
    out = models.local_attention(q, k, v, mask, window)
    ref = naive_local_attention(q, k, v, mask, window)
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(out[b, :, :n], ref[b, :, :n])
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("T,window", [(37, 5), (33, None)])
def test_local_attention_with_dropout_is_the_same_attention(T, window):
    # dropout_p so small that no weight is dropped: the training path (explicit math + dropout) equals the reference
    torch.manual_seed(T)
    q, k, v = (torch.randn(2, 3, T, 4, dtype=torch.float64) for _ in range(3))
    lengths = torch.tensor([T, T - 7])
    mask = models.lengths_to_mask(lengths, T)
    out = models.local_attention(q, k, v, mask, window, dropout_p=1e-300)
    ref = naive_local_attention(q, k, v, mask, window)
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(out[b, :, :n], ref[b, :, :n])


def test_dropout_keeps_1_minus_p_scaled_and_is_seeded():
    p, x = 0.25, torch.ones(400_000, requires_grad=True)
    torch.manual_seed(0)
    y = models.dropout(x, p)
    kept = y != 0
    assert abs(kept.double().mean().item() - (1 - p)) < 0.005  # sd of the fraction ~0.0007
    assert torch.all(y[kept] == 1 / (1 - p))
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # gradient: the same mask and scale
    torch.manual_seed(0)
    assert torch.equal(models.dropout(x, p), y)
    layer = models.Dropout(p).eval()
    assert layer(x) is x and models.dropout(x, 0.0) is x


def test_dropout_masks_are_independent_across_lanes_and_shapes():
    # four mask elements come from one 64-bit draw: neighbours must still be independent, every lane fair
    torch.manual_seed(1)
    x = torch.ones(3, 100_001).t()  # odd size, non-contiguous
    kept = (models.dropout(x, 0.5) != 0).t().reshape(-1)[: 4 * 75_000].view(-1, 4).double()
    assert kept.shape[0] == 75_000
    for lane in range(4):  # sd of a lane's fraction ~0.0018
        assert abs(kept[:, lane].mean().item() - 0.5) < 0.01
    corr = torch.corrcoef(kept.t())
    assert (corr - torch.eye(4, dtype=torch.float64)).abs().max() < 0.02  # sd ~0.0037
    assert models.dropout(torch.ones(5), 0.9999999).abs().sum() == 0  # p rounds to 1: all dropped


def test_tdnn_layer_equals_dilated_convolution():
    torch.manual_seed(0)
    layer = models.TDNNLayer(5, 7, (-3, 0, 3), dropout=0.0).double()
    conv = torch.nn.Conv1d(5, 7, 3, dilation=3, padding=3).double()
    with torch.no_grad():  # splice weight (out, [x[t-3]; x[t]; x[t+3]]) -> conv weight (out, in, tap)
        conv.weight.copy_(layer.linear.weight.view(7, 3, 5).permute(0, 2, 1))
        conv.bias.copy_(layer.linear.bias)
    x = torch.randn(2, 20, 5, dtype=torch.float64)
    mask = torch.ones(2, 20, dtype=torch.bool)
    expected = layer.norm(F.relu(conv(x.transpose(1, 2)).transpose(1, 2)))
    torch.testing.assert_close(layer(x, mask), expected)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_lstm_block_equals_packed_torch_lstm(bidirectional):
    torch.manual_seed(0)
    config = models.LSTMConfig(hidden=8, lstm_layers=2, bidirectional=bidirectional, dropout=0.0)
    block = models.LSTMBlock(5, config).double().eval()
    ref = torch.nn.LSTM(5, 8, num_layers=2, bidirectional=bidirectional, batch_first=True).double()
    with torch.no_grad():
        for layer in range(2):
            for direction, lstms in ((0, block.fwd), (1, block.bwd)):
                if lstms is None:
                    continue
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(ref, kind + suffix).copy_(getattr(lstms[layer], kind + "_l0"))
    x = torch.randn(3, 15, 5, dtype=torch.float64)
    lengths = torch.tensor([15, 9, 4])
    mask = models.lengths_to_mask(lengths, 15)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    expected = torch.nn.utils.rnn.pad_packed_sequence(ref(packed)[0], batch_first=True, total_length=15)[0]
    out = block(x, mask, lengths)
    torch.testing.assert_close(out[mask], expected[mask])


def test_bad_inputs_raise_model_input_errors_not_config_errors():
    model = tiny("mlp")
    shape = r"^mlp: expected input \(batch, time, 6\), got \(2, 10, 5\)$"
    with pytest.raises(models.ModelInputError, match=shape) as e:
        model(torch.randn(2, 10, 5))
    assert not isinstance(e.value, models.ModelConfigError)
    assert isinstance(e.value, ValueError) and isinstance(e.value, EmotoolsError) and e.value.subject == "mlp"
    with pytest.raises(models.ModelInputError, match=r"^mlp: lengths must be \(batch,\) in \[1, 10\], got \[10, 11\]$"):
        model(torch.randn(2, 10, 6), torch.tensor([10, 11]))
    with pytest.raises(models.ModelInputError, match="lengths"):
        model(torch.randn(2, 10, 6), torch.tensor([10, 0]))
    with pytest.raises(models.ModelInputError, match="lengths"):
        model(torch.randn(2, 10, 6), torch.tensor([10]))


@pytest.mark.parametrize("name", NAMES)
def test_each_architecture_overfits_one_small_batch(name):
    torch.manual_seed(0)
    B, T, nf = 2, 48, 6
    x = torch.randn(B, T, nf)
    # targets: a smooth non-linear function of the features, one per output
    w = torch.randn(nf, 2)
    y = torch.tanh(x @ w)
    y = (y + y.roll(1, 1) + y.roll(-1, 1)) / 3
    lengths = torch.tensor([T, T - 10])
    mask = models.lengths_to_mask(lengths, T)
    model = tiny(name, nf, 2).train()
    optim = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(250):
        loss = metrics.ccc_loss(y, model(x, lengths), mask)
        optim.zero_grad()
        loss.backward()
        optim.step()
    model.eval()
    with torch.no_grad():
        ccc = metrics.ccc_torch(y, model(x, lengths), mask)
    assert (ccc > 0.95).all(), ccc
