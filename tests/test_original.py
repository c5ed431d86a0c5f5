"""The original protocol: its labels, its split, its training and the reading of its numbers."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.model_selection import train_test_split

from emotools import metrics, models
from emotools.original import (
    ORIGINAL_ARCHITECTURES,
    ORIGINAL_MODELS,
    OriginalError,
    compare_with_original,
    original_labels,
    original_options,
    original_records,
    original_results,
    original_split,
    original_values,
    read_result,
    run_original,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest


def test_labels_are_the_global_state_draws():
    state = np.random.get_state()
    try:
        np.random.seed(42)
        a = np.random.uniform(0, 1, 500)
        v = np.random.uniform(0, 1, 500)
    finally:
        np.random.set_state(state)
    arousal, valence = original_labels(500)
    assert np.array_equal(arousal, a) and np.array_equal(valence, v)
    with pytest.raises(OriginalError, match="^n: must be a positive integer"):
        original_labels(0)


@pytest.mark.parametrize("n", [2, 5, 11, 97, 500, 1001])
def test_split_is_sklearns_train_test_split(n):
    train, test = original_split(n)
    want_train, want_test = train_test_split(list(range(n)), test_size=0.2, random_state=42)
    assert train.tolist() == want_train and test.tolist() == want_test
    assert len(test) == math.ceil(0.2 * n)


def test_split_rejects_bad_sizes():
    with pytest.raises(OriginalError, match="^test_size: must be in"):
        original_split(10, test_size=1.0)
    with pytest.raises(OriginalError, match="^n: must be an integer >= 2"):
        original_split(1)


def test_options_are_the_originals():
    o = original_options()
    assert (o.loss, o.epochs, o.batch_size, o.lr, o.lr_schedule, o.warmup_steps, o.clip_norm) == (
        "mse", 70, 3, 1e-3, "constant", 0, 0.0)
    assert (o.normalization, o.chunk_s, o.model_options) == ("none", None, {"output": "sigmoid"})
    assert list(ORIGINAL_MODELS) == ["LSTM", "TDNN", "Attention", "TDNN + LSTM", "Attention + TDNN",
                                     "Attention + LSTM", "Attention + TDNN + LSTM"]


@pytest.mark.parametrize("name", ORIGINAL_ARCHITECTURES)
def test_every_architecture_takes_length_1_sequences_with_a_sigmoid_output(name):
    torch.manual_seed(0)
    model = models.build(name, 88, 1, output="sigmoid")
    x = 100 * torch.randn(4, 1, 88)  # raw eGeMAPS values are large
    y = model(x, torch.ones(4, dtype=torch.long))
    assert y.shape == (4, 1, 1) and bool(((y >= 0) & (y <= 1)).all())
    y.sum().backward()


def test_output_option_is_backward_compatible(tmp_path):
    old = models.LSTMConfig().to_dict()
    assert "output" not in old and models.config_from_dict(old).output == "linear"
    config = models.make_config("tdnn", output="sigmoid")
    assert json.loads(json.dumps(config.to_dict()))["output"] == "sigmoid"
    assert models.config_from_dict(config.to_dict()) == config
    with pytest.raises(models.ModelConfigError, match="^tdnn: unknown output 'tanh'"):
        models.make_config("tdnn", output="tanh")
    # the sigmoid is the linear head's output squashed: same weights, no extra parameters
    torch.manual_seed(0)
    linear = models.build("tdnn", 5, 1).eval()
    squashed = models.SequenceRegressor(models.make_config("tdnn", n_features=5, n_targets=1, output="sigmoid"))
    squashed.load_state_dict(linear.state_dict())
    squashed.eval()
    x = torch.randn(2, 7, 5)
    assert torch.allclose(squashed(x), torch.sigmoid(linear(x)), atol=1e-6)


def test_records_carry_labels_and_split():
    X = np.arange(20 * 3, dtype=np.float32).reshape(20, 3)
    records = original_records(X)
    train, test = original_split(20)
    assert [records[i].split for i in test] == ["test"] * 4 and [records[i].split for i in train] == ["train"] * 16
    arousal, valence = original_labels(20)
    assert np.allclose([r.y[0, 0] for r in records], arousal) and np.allclose([r.y[0, 1] for r in records], valence)
    assert records[7].x.tolist() == [[21.0, 22.0, 23.0]] and records[7].target_names == ("arousal", "valence")
    with pytest.raises(OriginalError, match="one vector per utterance"):
        original_records([records[0].replace(x=np.ones((2, 3)), time=np.arange(2.0), y=np.ones((2, 2)))])


def test_original_results_are_the_published_tables():
    table = original_results()
    assert set(table["dataset"]) == {"librispeech", "voxceleb1", "voxceleb2"} and len(table) == 2 * 14 + 7
    libri = original_results("librispeech").drop(columns="dataset")
    assert libri.equals(original_results("voxceleb1").drop(columns="dataset"))  # identical in the report
    tdnn = libri[libri["model"] == "TDNN"].set_index("target")
    assert tdnn.loc["arousal", "mse"] == 0.3584 and math.isnan(tdnn.loc["valence", "ccc"])
    assert set(original_results("voxceleb2")["target"]) == {"unspecified"}
    with pytest.raises(OriginalError, match="^iemocap: the original reported no results"):
        original_results("iemocap")


def test_reading_names_each_mechanism():
    y = np.random.RandomState(0).uniform(0, 1, 100)
    ones = {"mse": metrics.mse(y, np.ones(100)), "mse_train_mean": 1 / 12, "mse_constant_1": float(np.mean((1 - y) ** 2)),
            "pred_mean": 1.0, "constant": True}
    assert read_result(ones).startswith("saturated: predicts a constant 1") and "NaN in the original" in read_result(ones)
    assert metrics.ccc(y, np.ones(100)) == 0.0  # ours: 0 where the original printed NaN
    mean = {**ones, "mse": 0.085, "pred_mean": 0.5, "constant": False}
    assert read_result(mean) == "learns nothing: MSE = predicting the train mean (0.083)"
    assert read_result({**mean, "mse": 0.02}).startswith("MSE below predicting the train mean")


def test_run_original_on_random_features_learns_nothing(tmp_path):
    # raw (unnormalized) features on eGeMAPS-like scales, 0.01 to 1000 per column, as the original trained on;
    # standard-normal features instead let these networks memorise the random labels (test MSE ~0.14)
    rng = np.random.default_rng(1)
    scale = 10 ** rng.uniform(-2, 3, 88)
    X = (scale * (1 + 0.3 * rng.normal(size=(500, 88)))).astype(np.float32)
    results = run_original(X, architectures=["tdnn", "attention"], options=original_options(epochs=4),
                           n_resamples=200)
    assert len(results) == 4 and set(results["target"]) == {"arousal", "valence"}
    assert (results["n_test"] == 100).all() and (results["n_train"] == 400).all()
    # independent: the test labels' variance around the train mean
    arousal, valence = original_labels(500)
    train, test = original_split(500)
    for target, y in (("arousal", arousal), ("valence", valence)):
        want = np.mean((y[test] - y[train].mean()) ** 2)
        rows = results[results["target"] == target]
        assert np.allclose(rows["mse_train_mean"], want)
        assert np.allclose(rows["mse_constant_1"], np.mean((1 - y[test]) ** 2))
        assert (np.abs(rows["mse"] - want) <= 0.15 * want).all(), rows[["architecture", "mse"]]
    assert results["ccc"].notna().all() and (results["ccc"].abs() < 0.15).all()
    assert ((results["ccc_low"] <= results["ccc"]) & (results["ccc"] <= results["ccc_high"])).all()
    assert results["reading"].str.startswith("learns nothing").all()
    side = compare_with_original(results, "librispeech")
    row = side[(side["model"] == "TDNN") & (side["target"] == "arousal")].iloc[0]
    assert row["mse_original"] == 0.3584 and row["mse"] == results.iloc[0]["mse"]
    assert compare_with_original(results, "voxceleb2")["mse_original"].tolist() == [0.3277] * 2 + [0.1005] * 2


def test_values_follow_the_utterance_order_and_feed_the_seed_labels():
    from emotools import labels

    names = ["u3", "u1", "u2"]
    values = original_values(names)
    arousal, valence = original_labels(3)
    assert [values[u] for u in names] == [(a, v) for a, v in zip(arousal.tolist(), valence.tolist())]
    table = pd.DataFrame({"utterance": names, "duration": [1.0, 0.5, 2.0]})
    frames = labels.seed_labels(table, seed=42, values=values)
    assert frames["u1"]["arousal"].eq(arousal[1]).all() and frames["u2"]["valence"].eq(valence[2]).all()
    with pytest.raises(labels.LabelError, match="^u3: no 2 given label values"):
        labels.seed_labels(table, seed=42, values={"u1": (0.1, 0.2)})
    with pytest.raises(OriginalError, match="duplicate"):
        original_values(["a", "a"])


def test_records_take_a_given_split_and_refuse_a_bad_one():
    X = np.ones((6, 2), np.float32)
    records = original_records(X, splits=["train"] * 4 + ["test"] * 2, speakers=list("aabbcc"))
    assert [r.split for r in records] == ["train"] * 4 + ["test"] * 2 and records[5].speaker == "c"
    for bad in (["train"] * 6, ["train"] * 5, ["train"] * 5 + ["dev"]):
        with pytest.raises(OriginalError, match="^splits: need 'train' or 'test'"):
            original_records(X, splits=bad)


def test_run_original_caches_its_cells_in_run_dir(tmp_path):
    rng = np.random.default_rng(3)
    X = (10 ** rng.uniform(-1, 2, 8) * (1 + 0.3 * rng.normal(size=(30, 8)))).astype(np.float32)
    options = original_options(epochs=2)
    first = run_original(X, architectures=["tdnn"], options=options, n_resamples=50, run_dir=tmp_path, jobs=1)
    cells = sorted(p.name for p in tmp_path.glob("*/*"))
    assert cells == ["tdnn-separate-seed0"]  # one cell: both targets, one model each, no dev
    history = pd.read_csv(next(tmp_path.glob("*/*/history.csv")))
    assert sorted(set(history["group"])) == ["arousal", "valence"] and "dev_ccc" not in history
    finished = next(tmp_path.glob("*/*/cell.json"))
    written = finished.stat().st_mtime_ns
    again = run_original(X, architectures=["tdnn"], options=options, n_resamples=50, run_dir=tmp_path, jobs=1)
    assert finished.stat().st_mtime_ns == written  # served from the cache, not trained again
    assert again.drop(columns="reading").equals(first.drop(columns="reading"))


def test_the_original_draws_reproduce_its_published_reference_mses():
    # The original's TDNN rows are a constant-1 predictor's MSE and its other arousal rows the train mean's,
    # on its own 500 LibriSpeech labels and split: the draws here give both to the published fourth digit.
    arousal, valence = original_labels(500)
    train, test = original_split(500)
    published = original_results("librispeech").set_index(["model", "target"])["mse"]
    for target, y in (("arousal", arousal), ("valence", valence)):
        assert round(float(np.mean((1 - y[test]) ** 2)), 4) == published[("TDNN", target)]
    assert round(float(np.mean((arousal[test] - arousal[train].mean()) ** 2)), 4) == published[("LSTM", "arousal")]
    valence_rows = published.xs("valence", level="target").drop("TDNN")
    assert (valence_rows - np.mean((valence[test] - valence[train].mean()) ** 2)).abs().max() < 0.0012
