"""Streaming inference of causal models: chunked, stateful outputs equal the offline forward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emotools import models
from emotools.errors import EmotoolsError

NAMES = list(models.MODELS)
N_FEATURES = 6

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest


def causal(name: str, lookahead: int, **options) -> models.SequenceRegressor:
    """A randomly initialised causal model with its default contexts, narrow for speed."""
    torch.manual_seed(0)
    return models.build(name, N_FEATURES, 2, hidden=16, lookahead=lookahead, **options).eval()


def features(T: int, seed: int = 0) -> np.ndarray:
    """``(T, N_FEATURES)`` float32 frames, feature-like: per-feature offsets and scales, smooth in time."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((T + 4, N_FEATURES))
    smooth = (noise[:-4] + noise[1:-3] + noise[2:-2] + noise[3:-1] + noise[4:]) / 5
    return (rng.uniform(-2, 2, N_FEATURES) + rng.uniform(0.5, 3, N_FEATURES) * smooth).astype(np.float32)


def offline(model: models.SequenceRegressor, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)[None], torch.tensor([len(x)]))[0].numpy()


def chunk_sizes(schedule: int | str, T: int) -> list[int]:
    """Chunk sizes covering ``T`` frames: fixed, or random (empty chunks included)."""
    if schedule == "random":
        sizes, rng = [], np.random.default_rng(1)
        while sum(sizes) < T:
            sizes.append(min(int(rng.integers(0, 20)), T - sum(sizes)))
        return sizes
    return [schedule] * (T // schedule) + ([T % schedule] if T % schedule else [])


def stream(model: models.SequenceRegressor, x: np.ndarray, sizes: list[int]) -> tuple[np.ndarray, list[int]]:
    """The concatenated streamed outputs (pushes of ``sizes`` frames, then flush) and ``emitted`` after each push."""
    s = models.StreamingModel(model)
    outputs, emitted, start = [], [], 0
    for n in sizes:
        y = s.push(x[start : start + n])
        start += n
        assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape[1] == 2
        outputs.append(y)
        emitted.append(s.emitted)
    outputs.append(s.flush())
    assert s.emitted == s.received == len(x)
    return np.concatenate(outputs), emitted


def check_stream(model: models.SequenceRegressor, x: np.ndarray, schedules: tuple) -> None:
    """For each chunk schedule: outputs equal the offline pass within 1e-5, emitted as the lookahead says."""
    expected = offline(model, x)
    delay = models.StreamingModel(model).delay_frames
    for schedule in schedules:
        sizes = chunk_sizes(schedule, len(x))
        y, emitted = stream(model, x, sizes)
        np.testing.assert_allclose(y, expected, rtol=0, atol=1e-5, err_msg=f"chunks of {schedule}")
        assert emitted == [max(0, n - delay) for n in np.cumsum(sizes)]


@pytest.mark.parametrize("lookahead", [0, 3])
@pytest.mark.parametrize("name", NAMES)
def test_streamed_outputs_equal_the_offline_pass(name, lookahead):
    model = causal(name, lookahead)
    delay = models.StreamingModel(model).delay_frames
    assert delay == model.receptive_future == (0 if name == "mlp" else lookahead)
    check_stream(model, features(300), (1, 7, 64, "random"))


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("attention_tdnn", {"window": 7, "contexts": ((-1, 0, 1), (-4, 0, 4)), "attention_layers": 3}),
        ("tcn", {"kernel": 5, "levels": 3}),
        ("dsus", {"kernel": 3, "levels": 2}),
        ("attention_tdnn_lstm", {"window": 4, "lstm_layers": 2, "bidirectional": False}),
    ],
)
@pytest.mark.parametrize("lookahead", [2, 9])
def test_non_default_contexts_and_windows_stream_exactly(name, options, lookahead):
    model = causal(name, lookahead, **options)
    assert models.StreamingModel(model).delay_frames == model.receptive_future
    check_stream(model, features(150, seed=3), (1, 5, "random"))


@pytest.mark.parametrize("name", ["tdnn", "attention_lstm", "dsus"])
@pytest.mark.parametrize("T", [1, 2, 5])
def test_streams_shorter_than_the_lookahead_give_every_frame_at_flush(name, T):
    model = causal(name, 4)
    x = features(T, seed=T)
    s = models.StreamingModel(model)
    assert s.push(x).shape == (max(0, T - s.delay_frames), 2)
    rest = s.flush()
    assert rest.shape == (min(T, s.delay_frames), 2)
    check_stream(model, x, (1, T))


def test_an_empty_stream_flushes_nothing_and_empty_pushes_are_allowed():
    s = models.StreamingModel(causal("attention_tdnn_lstm", 3))
    assert s.push(np.zeros((0, N_FEATURES), np.float32)).shape == (0, 2)
    assert s.flush().shape == (0, 2) and s.emitted == 0


def test_sigmoid_outputs_stream_too():
    model = causal("tcn", 3, output="sigmoid")
    x = features(200)
    y, _ = stream(model, x, chunk_sizes(7, 200))
    assert ((y > 0) & (y < 1)).all()
    np.testing.assert_allclose(y, offline(model, x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_state_is_bounded_and_long_streams_stay_exact(name):
    # 320 and 3200 frames: the same phase for dsus's pooling (2**levels divides both); rotary positions
    # in the thousands must match the offline pass's absolute positions
    model = causal(name, 3)
    x = features(3200, seed=5)
    s = models.StreamingModel(model)
    outputs, sizes = [], {}
    for start in range(0, 3200, 16):
        outputs.append(s.push(x[start : start + 16]))
        sizes[start + 16] = s.state_size
    outputs.append(s.flush())
    assert sizes[320] == sizes[3200] and max(sizes.values()) == max(v for k, v in sizes.items() if k <= 320)
    assert (sizes[320] == 0) == (name == "mlp")  # the frame-wise control needs no state
    np.testing.assert_allclose(np.concatenate(outputs), offline(model, x), rtol=0, atol=1e-5)


def test_reset_starts_a_new_stream_and_tensors_are_accepted():
    model = causal("attention_lstm", 3)
    x = features(40)
    s = models.StreamingModel(model)
    first = np.concatenate([s.push(torch.from_numpy(x[:25])), s.push(x[25:]), s.flush()])
    s.reset()
    assert s.emitted == s.received == 0 and s.state_size == 0
    again = np.concatenate([s.push(x[:25].astype(np.float64)), s.push(x[25:]), s.flush()])  # cast to float32
    np.testing.assert_array_equal(again, first)


def test_non_causal_and_global_attention_models_are_refused():
    with pytest.raises(models.ModelConfigError, match=r"^tcn: is not causal .*'tcn:causal'"):
        models.StreamingModel(models.build("tcn", N_FEATURES, hidden=16))
    with pytest.raises(models.ModelConfigError, match=r"attention:causal: global attention .* unbounded past"):
        models.StreamingModel(causal("attention", 0, window=None))


def test_bad_frames_raise_model_input_errors_naming_the_model():
    s = models.StreamingModel(causal("tdnn", 3))
    for bad in (np.zeros((4, N_FEATURES + 1)), np.zeros(N_FEATURES), np.zeros((2, 3, N_FEATURES))):
        with pytest.raises(models.ModelInputError, match=rf"^tdnn:lookahead=3: expected frames \(n, {N_FEATURES}\)"):
            s.push(bad)
    assert s.received == 0
    s.push(features(5))
    s.flush()
    with pytest.raises(EmotoolsError, match="flushed; call reset"):
        s.push(features(1))


def test_attention_windows_keep_the_absolute_rotary_positions():
    # 40,000 frames in: rotary angles of window-relative positions would differ from the offline pass's by
    # float32 rounding (~1e-6 in the outputs); the absolute ones give the offline arithmetic
    model = causal("attention", 3)
    x = features(40_000, seed=7)
    y, _ = stream(model, x, chunk_sizes(997, len(x)))
    np.testing.assert_allclose(y, offline(model, x), rtol=0, atol=1e-7)
