"""Training: losses, fit, determinism, checkpoints, resume, prediction and both CCC protocols."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import numpy as np
import pytest
import torch

from emotools import metrics, models, training
from emotools.sequences import SequenceRecord

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest


FAST = {"epochs": 3, "batch_size": 4, "chunk_s": 6.0, "warmup_steps": 2}


def small(name: str, **extra) -> training.FitOptions:
    """FitOptions for a small, fast instance of ``name`` (``extra``: model options)."""
    fields = {f.name for f in dataclasses.fields(models.MODELS[name])}
    options = {"hidden": 16}
    if "contexts" in fields:
        options["contexts"] = ((-1, 0, 1), (-2, 0, 2))
    if "window" in fields:
        options["window"] = 5
    if "levels" in fields:
        options["levels"] = 2
    options.update(extra)
    return training.FitOptions(**FAST, model_options=options)


def toy_records(n: int, *, T: int = 120, n_features: int = 8, seed: int = 0, split: str = "train") -> list[SequenceRecord]:
    """Learnable toy recordings at 10 Hz: labels are a smoothed linear read-out of noisy features."""
    rng = np.random.default_rng(seed)
    w = np.random.default_rng(99).standard_normal((n_features, 2))
    records = []
    for i in range(n):
        x = rng.standard_normal((T, n_features)) + rng.standard_normal(n_features)
        z = np.tanh(x @ w / 3)
        y = np.stack([np.convolve(z[:, k], np.ones(5) / 5, mode="same") for k in range(2)], axis=1)
        records.append(SequenceRecord(f"{split}{i}", x=x, y=y, time=np.arange(T) / 10, rate_hz=10.0,
                                      speaker=f"spk{i % 3}", session=f"{split}{i}", split=split))
    return records


@pytest.fixture(scope="module")
def data() -> dict[str, list[SequenceRecord]]:
    return {"train": toy_records(8, seed=0), "dev": toy_records(3, seed=1, split="dev"),
            "test": toy_records(3, seed=2, split="test")}


def history_without_time(trained: training.TrainedModel) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in trained.history]


# --------------------------------------------------------------------------- losses


def test_losses_match_their_definitions():
    torch.manual_seed(0)
    pred, target = torch.randn(3, 10, 2), torch.randn(3, 10, 2)
    mask = models.lengths_to_mask(torch.tensor([10, 7, 3]), 10)
    ccc = training.compute_loss(target, pred, mask, "ccc")
    assert ccc == pytest.approx(float(metrics.ccc_loss(target, pred, mask)))
    p, t = pred[mask].numpy(), target[mask].numpy()
    assert ccc == pytest.approx(1 - np.mean([metrics.ccc(t[:, k], p[:, k]) for k in range(2)]), abs=1e-5)
    mse = training.compute_loss(target, pred, mask, "mse")
    assert mse == pytest.approx(metrics.mse(t, p), rel=1e-5)
    pred_garbage = pred.clone()
    pred_garbage[~mask] = float("nan")
    assert training.compute_loss(target, pred_garbage, mask, "ccc+mse") == pytest.approx(float(ccc + mse), rel=1e-5)
    with pytest.raises(training.TrainingError, match="unknown loss 'mae'"):
        training.compute_loss(target, pred, mask, "mae")


# --------------------------------------------------------------------------- fit


@pytest.mark.parametrize("bad, message", [
    ({"epochs": 0}, "epochs: must be an integer >= 1, got 0"),
    ({"batch_size": 2.5}, "batch_size: must be an integer >= 1, got 2.5"),
    ({"loss": "mae"}, "unknown loss 'mae': use 'ccc', 'mse' or 'ccc+mse'"),
    ({"lr": -1.0}, "lr: must be a number >= 0, got -1.0"),
    ({"lr_schedule": "linear"}, "lr_schedule: unknown value 'linear'; use one of ['cosine', 'constant']"),
    ({"chunk_s": 0}, "chunk_s: must be a number > 0 or None, got 0"),
    ({"normalization": "z"}, "normalization: unknown value 'z'"),
    ({"ccc_protocol": "sequence"}, "ccc_protocol: unknown value 'sequence'"),
    ({"targets": "arousal"}, "targets: must be a non-empty sequence"),
])
def test_fit_options_are_checked_when_made(bad, message):
    with pytest.raises(training.TrainingError, match=re.escape(message)):
        training.FitOptions(**bad)


def test_learning_rate_warms_up_then_follows_half_a_cosine_to_zero():
    o = training.FitOptions(lr=0.4, warmup_steps=4)
    total = 20
    lrs = [training.step_lr(o, s, total) for s in range(total)]
    assert lrs[:4] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    expected = [0.2 * (1 + math.cos(math.pi * (s - 3) / 16)) for s in range(4, total)]  # 16 steps after the warm-up
    assert lrs[4:] == pytest.approx(expected) and lrs[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))
    constant = o.replace(lr_schedule="constant")
    assert [training.step_lr(constant, s, total) for s in range(4, total)] == pytest.approx([0.4] * 16)
    assert training.step_lr(o.replace(warmup_steps=0), 0, total) == pytest.approx(0.4)


def test_fit_options_round_trip_and_keep_the_checkpoint_fingerprint():
    options = training.FitOptions(targets=["arousal"], epochs=5, seed=np.int64(3), model_options={"hidden": 8})
    assert options.targets == ("arousal",) and type(options.seed) is int
    assert training.FitOptions.from_dict(json.loads(json.dumps(options.to_dict()))) == options
    with pytest.raises(training.TrainingError, match=r"unknown option\(s\) \['protocol'\]"):
        training.FitOptions.from_dict({"protocol": "concat"})
    # the layout checkpoints written before FitOptions became the way in have stored: they still resume
    config = models.make_config("mlp", n_features=8, n_targets=1, hidden=8)
    old = options.replace(epochs=9, batch_size=16, warmup_steps=50, patience=8, lr_schedule="constant",
                          precision="float32")
    assert old.fingerprint(config, ("arousal",)) == {
        "model": config.to_dict(), "targets": ["arousal"], "loss": "ccc", "batch_size": 16, "lr": 2e-3,
        "weight_decay": 0.0, "clip_norm": 1.0, "warmup_steps": 50, "patience": 8, "chunk_s": 30.0, "hop_s": None,
        "normalization": "global", "protocol": "concat", "seed": 3}
    # the cosine schedule spans `epochs`: a run with other epochs is another run
    cosine = options.fingerprint(config, ("arousal",))
    assert cosine["epochs"] == 5 and cosine["lr_schedule"] == "cosine"
    assert training.fingerprint_differences(cosine, options.replace(epochs=9).fingerprint(config, ("arousal",))) \
        == ["epochs"]
    assert training.fingerprint_differences({"protocol": "concat", "lr": 1}, {"protocol": "per_recording", "lr": 1}) \
        == ["ccc_protocol"]
    with pytest.raises(training.TrainingError, match="options: must be a FitOptions, got dict"):
        training.fit("mlp", [], None, {"epochs": 1})
    # precision counts as resolved, and only when it is not float32 (which those checkpoints were)
    assert old.replace(precision="bfloat16").fingerprint(config, ("arousal",))["precision"] == "bfloat16"
    auto = old.replace(precision="auto").fingerprint(config, ("arousal",))
    assert auto.get("precision", "float32") == training.resolve_precision("auto", "cpu")


def test_precision_auto_follows_the_cpu_and_bfloat16_trains_in_float32_weights(data):
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert training.resolve_precision("auto", "cpu") == ("bfloat16" if native else "float32")
    assert training.resolve_precision("auto", "meta") == "float32"
    with pytest.raises(training.TrainingError, match=r"precision: unknown value 'fp16'"):
        training.FitOptions(precision="fp16")
    train, dev = data["train"], data["dev"]
    runs = {p: training.fit("tdnn", train, dev, small("tdnn").replace(epochs=2, precision=p), progress=False)
            for p in ("float32", "bfloat16")}
    for p, trained in runs.items():
        assert trained.options["precision"] == p
        assert all(v.dtype == torch.float32 for v in trained.model.state_dict().values())
        out = training.predict(trained, dev)[0]
        assert out.dtype == np.float32 and np.isfinite(out).all()
    # the same run in another arithmetic: close, not equal
    a, b = (runs[p].history[-1]["train_loss"] for p in ("float32", "bfloat16"))
    assert a != b and abs(a - b) < 0.05


def test_fit_learns_and_keeps_history(data):
    trained = training.fit("tdnn", data["train"], data["dev"], small("tdnn").replace(epochs=12, lr=1e-2), progress=False)
    frame = trained.history_frame
    assert list(frame["epoch"]) == list(range(1, len(frame) + 1))
    for column in ("train_loss", "train_ccc", "dev_loss", "dev_ccc", "train_ccc_arousal", "dev_ccc_valence", "lr"):
        assert column in frame and frame[column].notna().all()
    best = frame.iloc[trained.best_epoch - 1]
    assert best["dev_ccc"] == frame["dev_ccc"].max() > 0.6
    assert frame["train_loss"].iloc[-1] < frame["train_loss"].iloc[0]
    assert trained.model.config.n_features == 8 and trained.targets == ("arousal", "valence")
    scores = training.evaluate(trained, data["test"])
    assert list(scores["target"]) == ["arousal", "valence"] and (scores["ccc_concat"] > 0.5).all()
    # label statistics for post-processing come from the training labels
    y = np.concatenate([r.y for r in data["train"]])
    assert trained.label_stats["valence"]["mean"] == pytest.approx(float(y[:, 1].mean()), abs=1e-6)


def test_same_seed_same_metrics_different_seed_different(data):
    runs = [training.fit("attention_tdnn_lstm", data["train"], data["dev"], small("attention_tdnn_lstm").replace(seed=s),
                         progress=False) for s in (3, 3, 4)]
    assert history_without_time(runs[0]) == history_without_time(runs[1])
    preds = [r.predict(data["test"]) for r in runs]
    for a, b in zip(preds[0], preds[1]):
        np.testing.assert_array_equal(a, b)
    assert history_without_time(runs[0]) != history_without_time(runs[2])
    # fit leaves the caller's random state alone
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    training.fit("mlp", data["train"], data["dev"], small("mlp").replace(epochs=1), progress=False)
    assert torch.equal(torch.rand(3), expected)


def test_early_stopping_keeps_the_best_epoch(data):
    # lr=0: the dev CCC never improves on epoch 1, so training stops after `patience` more epochs
    trained = training.fit("mlp", data["train"], data["dev"], small("mlp").replace(epochs=20, lr=0.0, patience=2),
                           progress=False)
    assert len(trained.history) == 3 and trained.best_epoch == 1


def test_single_target_and_one_model_per_target(data):
    trained = training.fit("lstm", data["train"], data["dev"], small("lstm").replace(targets=["valence"]), progress=False)
    assert trained.model.config.n_targets == 1 and trained.targets == ("valence",)
    pred = trained.predict(data["test"])
    assert [p.shape for p in pred] == [(120, 1)] * 3
    assert list(training.evaluate(trained, data["test"])["target"]) == ["valence"]
    each = training.fit_each_target("mlp", data["train"], data["dev"], small("mlp").replace(epochs=1), progress=False)
    assert sorted(each) == ["arousal", "valence"] and each["arousal"].targets == ("arousal",)


@pytest.mark.parametrize("loss", ["mse", "ccc+mse"])
def test_other_losses_train(data, loss):
    trained = training.fit("tcn", data["train"], data["dev"], small("tcn").replace(loss=loss), progress=False)
    assert trained.options["loss"] == loss and np.isfinite(trained.history_frame["dev_loss"]).all()


def test_fit_refuses_bad_input(data):
    with pytest.raises(training.TrainingError, match="no train records"):
        training.fit("mlp", [], data["dev"])
    unlabelled = data["train"][0].replace(y=None)
    with pytest.raises(training.TrainingError, match="train record train0 has no labels"):
        training.fit("mlp", [unlabelled], progress=False)
    with pytest.raises(training.TrainingError, match=r"lacks target\(s\) \['dominance'\]"):
        training.fit("mlp", data["train"], None, training.FitOptions(targets=["dominance"]), progress=False)
    with pytest.raises(models.ModelConfigError, match="unknown model"):
        training.fit("transformer", data["train"], progress=False)


# --------------------------------------------------------------------------- predict and evaluate


def test_predict_full_sequences_in_input_order(data):
    trained = training.fit("attention", data["train"], data["dev"], small("attention", window=4).replace(epochs=1),
                           progress=False)
    records = [data["test"][0], data["test"][1].replace(x=data["test"][1].x[:37], y=data["test"][1].y[:37],
                                                        time=data["test"][1].time[:37])]
    together = trained.predict(records, batch_size=2)
    alone = [trained.predict([r], batch_size=1)[0] for r in records]
    assert [p.shape for p in together] == [(120, 2), (37, 2)]
    for a, b in zip(together, alone):
        np.testing.assert_allclose(a, b, atol=1e-5)
    bad = data["test"][0].replace(x=data["test"][0].x[:, :5])
    with pytest.raises(training.TrainingError, match="test0: 5 features, the model expects 8"):
        trained.predict([bad])


def test_evaluate_reports_both_named_protocols(data):
    rng = np.random.default_rng(0)
    preds = [r.y * 0.8 + 0.3 * rng.standard_normal(r.y.shape) + i for i, r in enumerate(data["test"])]
    scores = training.evaluate(preds, data["test"])
    truths = [r.y for r in data["test"]]
    for k, row in scores.iterrows():
        T, P = np.concatenate([t[:, k] for t in truths]), np.concatenate([p[:, k] for p in preds])
        assert row["ccc_concat"] == pytest.approx(metrics.ccc(T, P))
        assert row["ccc_per_recording"] == pytest.approx(np.mean([metrics.ccc(t[:, k], p[:, k]) for t, p in zip(truths, preds)]))
        assert row["n_recordings"] == 3 and row["n_frames"] == 360
    assert "AVEC 2019" in scores.attrs["ccc_protocols"]["ccc_concat"]
    assert "AVEC 2018" in scores.attrs["ccc_protocols"]["ccc_per_recording"]


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip(data, tmp_path):
    trained = training.fit("attention_lstm", data["train"], data["dev"],
                           small("attention_lstm").replace(normalization="speaker"), checkpoint_dir=tmp_path,
                           progress=False)
    path = trained.save(tmp_path / "copy" / "model.pt")
    raw = torch.load(path, weights_only=True)  # plain tensors and strings only
    assert set(raw) == {"format", "config", "meta", "normalization", "state_dict"}
    assert json.loads(raw["config"])["window"] == 5 and json.loads(raw["normalization"])["mode"] == "speaker"
    config = json.loads((tmp_path / "copy" / "model.json").read_text())
    assert config["model"]["name"] == "attention_lstm" and config["targets"] == ["arousal", "valence"]
    for source in (path, tmp_path / "model.pt"):  # explicit save and the best model written by fit
        loaded = training.load(source)
        assert loaded.model.config == trained.model.config and loaded.best_epoch == trained.best_epoch
        assert loaded.history == trained.history and loaded.label_stats == trained.label_stats
        for a, b in zip(loaded.predict(data["test"]), trained.predict(data["test"])):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(training.TrainingError, match="no such checkpoint"):
        training.load(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(training.TrainingError, match="junk.pt: not a loadable checkpoint"):
        training.load(tmp_path / "junk.pt")


class Interrupt(Exception):
    pass


def test_interrupted_fit_resumes_to_the_same_result(data, tmp_path):
    options = small("attention_tdnn").replace(epochs=4, seed=7)
    straight = training.fit("attention_tdnn", data["train"], data["dev"], options, progress=False)

    def stop_after_two(row):
        if row["epoch"] == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        training.fit("attention_tdnn", data["train"], data["dev"], options, checkpoint_dir=tmp_path,
                     callback=stop_after_two, progress=False)
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert state["state"]["epoch"] == 2 and "optimizer" in state and "rng" in state
    resumed = training.fit("attention_tdnn", data["train"], data["dev"], options, checkpoint_dir=tmp_path, progress=False)
    assert history_without_time(resumed) == history_without_time(straight)
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    # a different run must not silently continue this one
    with pytest.raises(training.TrainingError, match=r"different run \(differs in \['lr'\]\)"):
        training.fit("attention_tdnn", data["train"], data["dev"], options.replace(lr=0.1), checkpoint_dir=tmp_path,
                     progress=False)
    fresh = training.fit("attention_tdnn", data["train"], data["dev"], options.replace(epochs=1),
                         checkpoint_dir=tmp_path, resume=False, progress=False)
    assert len(fresh.history) == 1


def test_equal_length_chunks_are_stacked_once_and_batched_like_pad():
    from emotools.sequences import pad
    from emotools.training.trainer import _Batches

    rng = np.random.default_rng(0)
    same = [SequenceRecord(id=str(i), x=rng.normal(size=(1, 5)).astype(np.float32),
                           y=rng.uniform(size=(1, 2)).astype(np.float32), time=np.zeros(1), rate_hz=10.0)
            for i in range(7)]
    batches = _Batches(same, torch.device("cpu"))
    assert batches.stacked is not None
    for index in ([3, 0, 6], [5], [1, 2]):
        x, lengths, y = batches.batch(index)
        want_x, want_lengths = pad([same[i].x for i in index])
        want_y, _ = pad([same[i].y for i in index])
        assert torch.equal(x, want_x) and torch.equal(lengths, want_lengths) and torch.equal(y, want_y)
    mixed = same[:2] + [SequenceRecord(id="long", x=np.ones((3, 5), np.float32), y=np.ones((3, 2), np.float32),
                                       time=np.arange(3) / 10.0, rate_hz=10.0)]
    padded = _Batches(mixed, torch.device("cpu"))
    assert padded.stacked is None
    x, lengths, _ = padded.batch([2, 0])
    assert x.shape == (2, 3, 5) and lengths.tolist() == [3, 1] and not x[1, 1:].any()
