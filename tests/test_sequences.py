"""Sequences: alignment, normalization, chunking, label shifts, batching, CCC protocols."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from emotools import metrics, sequences
from emotools.sequences import Normalizer, SequenceError, SequenceRecord


def feature_table(n: int, *, hop: float = 0.1, window: float = 0.1, n_features: int = 3, t0: float = 0.0) -> pd.DataFrame:
    start = t0 + hop * np.arange(n)
    table = {"start": start, "end": start + window}
    for j in range(n_features):
        table[f"f{j}"] = np.arange(n, dtype=float) * (j + 1)  # feature j of frame i = i * (j + 1)
    return pd.DataFrame(table)


def label_table(times) -> pd.DataFrame:
    times = np.asarray(times, dtype=float)
    return pd.DataFrame({"time": times, "arousal": np.sin(times), "valence": np.cos(times)})


def record(rid: str, T: int = 50, *, speaker: str = "s", session: str = "", offset: float = 0.0, scale: float = 1.0,
           seed: int = 0, n_features: int = 3) -> SequenceRecord:
    rng = np.random.default_rng(seed)
    x = offset + scale * rng.standard_normal((T, n_features))
    y = rng.standard_normal((T, 2))
    return SequenceRecord(rid, x=x, y=y, time=np.arange(T) / 10.0, rate_hz=10.0, speaker=speaker,
                          session=session or rid)


# --------------------------------------------------------------------------- align


def test_align_nearest_picks_the_feature_window_centred_closest():
    # features every 0.05 s with 0.2 s windows: centres at 0.1, 0.15, ...
    features = feature_table(60, hop=0.05, window=0.2)
    labels = label_table(np.arange(0, 3.0, 0.1))
    x, y, time = sequences.align(features, labels)
    centres = (features["start"] + features["end"]).to_numpy() / 2
    expected_idx = [int(np.argmin(np.abs(centres - t))) for t in time]
    np.testing.assert_array_equal(x[:, 0], features["f0"].to_numpy()[expected_idx])
    np.testing.assert_array_equal(x[:, 2], features["f2"].to_numpy()[expected_idx])
    np.testing.assert_allclose(y[:, 0], np.sin(time), rtol=1e-6)
    assert x.dtype == np.float32 and y.shape == (len(time), 2)
    # every kept label frame lies inside the features' span [0, 3.15] s
    assert time.min() >= 0.0 and time.max() <= features["end"].max()


def test_align_drops_label_frames_outside_the_feature_span():
    features = feature_table(10, hop=0.1, window=0.1, t0=1.0)  # spans [1.0, 2.0] s
    labels = label_table(np.arange(0, 3.0, 0.1).round(3))
    x, y, time = sequences.align(features, labels)
    assert time.min() == pytest.approx(1.0) and time.max() == pytest.approx(2.0)
    assert len(x) == len(y) == len(time) == 11


def test_align_linear_interpolates_between_centres():
    features = feature_table(10, hop=0.2, window=0.2)  # centres 0.1, 0.3, ...; f0 = frame index
    labels = label_table([0.2, 0.25, 0.6])
    x, _, _ = sequences.align(features, labels, method="linear")
    np.testing.assert_allclose(x[:, 0], [0.5, 0.75, 2.5], rtol=1e-6)


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda f, l: (f.drop(columns="start"), l), "no 'start' column"),
        (lambda f, l: (f, l.drop(columns="valence")), r"lack column\(s\) \['valence'\]"),
        (lambda f, l: (f, l.assign(arousal=np.where(l.index == 3, np.nan, l.arousal))), "NaN"),
        (lambda f, l: (f, l.iloc[::-1]), "label time is not strictly increasing"),
        (lambda f, l: (f.iloc[::-1], l), "feature time is not strictly increasing"),
        (lambda f, l: (f, l.assign(time=l.time + 100)), "no label frame within"),
        (lambda f, l: (f.assign(f1=np.inf), l), "features contain NaN or inf"),
    ],
)
def test_align_bad_input_names_the_problem(mutate, message):
    features, labels = mutate(feature_table(20), label_table(np.arange(0, 2.0, 0.1)))
    with pytest.raises(SequenceError, match=message) as info:
        sequences.align(features, labels, name="rec7")
    assert str(info.value).startswith("rec7: ")


def test_make_record_knows_its_rate_and_feature_names():
    rec = sequences.make_record("r1", feature_table(30), label_table(np.arange(0, 3.0, 0.1)), speaker="spk", split="train")
    assert rec.rate_hz == pytest.approx(10.0)
    assert rec.feature_names == ("f0", "f1", "f2") and rec.target_names == ("arousal", "valence")
    assert rec.speaker == "spk" and rec.split == "train" and len(rec) == len(rec.time) == 30
    unlabelled = sequences.make_record("r2", feature_table(30))
    assert unlabelled.y is None and unlabelled.rate_hz == pytest.approx(10.0)


def test_build_records_records_failures_and_goes_on():
    table = pd.DataFrame({"utterance": ["a", "b", "c"], "speaker": ["s1", "s1", "s2"], "split": ["train"] * 3})
    features = {"a": feature_table(20), "b": feature_table(20), "c": feature_table(20)}
    labels = {"a": label_table(np.arange(0, 2, 0.1)), "b": label_table(np.arange(50, 52, 0.1)),
              "c": label_table(np.arange(0, 2, 0.1))}
    records, failures = sequences.build_records(table, features, labels)
    assert [r.id for r in records] == ["a", "c"]
    assert records[1].speaker == "s2"
    assert failures == [{"id": "b", "reason": failures[0]["reason"]}] and "no label frame" in failures[0]["reason"]
    _, failures = sequences.build_records(table, lambda rid: features[rid] if rid != "c" else 1 / 0, labels)
    assert [f["id"] for f in failures] == ["b", "c"] and "ZeroDivisionError" in failures[1]["reason"]


def test_record_validation():
    with pytest.raises(SequenceError, match="r: labels have 4 frames, features 5"):
        SequenceRecord("r", x=np.zeros((5, 2)), y=np.zeros((4, 2)), time=np.arange(5), rate_hz=10)
    with pytest.raises(SequenceError, match="features contain NaN"):
        SequenceRecord("r", x=np.full((5, 2), np.nan), time=np.arange(5), rate_hz=10)
    rec = record("r")
    sub = rec.select_targets(["valence"])
    assert sub.target_names == ("valence",) and np.array_equal(sub.y[:, 0], rec.y[:, 1])
    with pytest.raises(SequenceError, match="dominance"):
        rec.select_targets(["dominance"])


# --------------------------------------------------------------------------- normalization


def test_global_normalization_uses_training_statistics_only():
    train = [record("a", seed=1, offset=5.0, scale=2.0), record("b", seed=2, offset=5.0, scale=2.0)]
    dev = [record("c", seed=3, offset=-3.0)]
    norm = Normalizer("global").fit(train)
    z = np.concatenate([r.x for r in norm.transform(train)])
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-5)
    raw = np.concatenate([r.x for r in train]).astype(np.float64)
    expected = (dev[0].x - raw.mean(0)) / raw.std(0)
    np.testing.assert_allclose(norm.transform(dev)[0].x, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode,key", [("speaker", "speaker"), ("session", "session")])
def test_group_normalization_standardizes_each_group(mode, key):
    recs = [record("a", speaker="s1", session="x", offset=10, scale=3, seed=1),
            record("b", speaker="s1", session="y", offset=10, scale=3, seed=2),
            record("c", speaker="s2", session="z", offset=-4, scale=0.5, seed=3)]
    norm = Normalizer(mode).fit(recs[:2])
    out = norm.transform(recs)
    for group in {getattr(r, key) for r in recs}:
        z = np.concatenate([o.x for o, r in zip(out, recs) if getattr(r, key) == group])
        np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)  # unseen s2 / z: their own statistics
        np.testing.assert_allclose(z.std(0), 1, atol=1e-4)


def test_normalizer_state_round_trips_through_json():
    recs = [record("a", speaker="s1", seed=1, offset=2), record("b", speaker="s2", seed=2)]
    norm = Normalizer("speaker").fit(recs)
    again = Normalizer.from_state(json.loads(json.dumps(norm.state_dict())))
    for r1, r2 in zip(norm.transform(recs), again.transform(recs)):
        np.testing.assert_array_equal(r1.x, r2.x)


def test_constant_features_stay_finite_and_bad_modes_fail():
    rec = SequenceRecord("c", x=np.ones((10, 2)), time=np.arange(10) / 10, rate_hz=10.0)
    out = Normalizer("global").fit([rec]).transform([rec])[0].x
    assert np.array_equal(out, np.zeros((10, 2), np.float32))
    with pytest.raises(SequenceError, match="unknown mode 'zscore'"):
        Normalizer("zscore")
    with pytest.raises(SequenceError, match="needs a speaker name"):
        Normalizer("speaker").fit([record("a", speaker="")])
    with pytest.raises(SequenceError, match="before fit"):
        Normalizer("global").transform([rec])


# --------------------------------------------------------------------------- chunks and shifts


def test_chunks_cover_every_frame_with_equal_lengths():
    rec = record("long", T=1000)
    chunks = sequences.chunk([rec, record("short", T=120)], length_s=30.0, hop_s=20.0)
    long_chunks = [c for c in chunks if c.id.startswith("long")]
    assert [c.offset for c in long_chunks] == [0, 200, 400, 600, 700]
    assert all(len(c) == 300 for c in long_chunks)
    covered = np.zeros(1000, bool)
    for c in long_chunks:
        np.testing.assert_array_equal(c.x, rec.x[c.offset : c.offset + 300])
        np.testing.assert_array_equal(c.y, rec.y[c.offset : c.offset + 300])
        np.testing.assert_array_equal(c.time, rec.time[c.offset : c.offset + 300])
        covered[c.offset : c.offset + 300] = True
    assert covered.all()
    assert [c.id for c in chunks if c.id.startswith("short")] == ["short"]  # shorter than a chunk: whole
    assert long_chunks[1].id == "long@200" and long_chunks[1].speaker == rec.speaker
    with pytest.raises(SequenceError, match="length_s"):
        sequences.chunk([rec], length_s=0)


def test_shift_labels_pairs_features_with_later_labels():
    rec = record("r", T=40)
    shifted = sequences.shift_labels([rec], 0.5)[0]  # 5 frames at 10 Hz
    assert len(shifted) == 35
    np.testing.assert_array_equal(shifted.x, rec.x[:35])
    np.testing.assert_array_equal(shifted.y, rec.y[5:])
    back = sequences.shift_labels([rec], -0.3)[0]
    np.testing.assert_array_equal(back.x, rec.x[3:])
    np.testing.assert_array_equal(back.y, rec.y[:37])
    with pytest.raises(SequenceError, match="longer than the record"):
        sequences.shift_labels([rec], 10.0)


# --------------------------------------------------------------------------- batching


def test_collate_pads_with_zeros_and_returns_lengths():
    recs = [record("a", T=7), record("b", T=4, seed=1)]
    loader = torch.utils.data.DataLoader(sequences.SequenceDataset(recs), batch_size=2, collate_fn=sequences.collate)
    x, lengths, y = next(iter(loader))
    assert x.shape == (2, 7, 3) and y.shape == (2, 7, 2) and lengths.tolist() == [7, 4]
    assert x.dtype == torch.float32 and lengths.dtype == torch.long
    np.testing.assert_array_equal(x[1, :4].numpy(), recs[1].x)
    assert (x[1, 4:] == 0).all() and (y[1, 4:] == 0).all()
    unlabelled = SequenceRecord("u", x=np.ones((3, 3)), time=np.arange(3), rate_hz=10)
    assert sequences.SequenceDataset([unlabelled])[0][1].shape == (3, 0)


# --------------------------------------------------------------------------- protocols


def test_the_two_protocols_against_direct_computation():
    rng = np.random.default_rng(0)
    truths = [rng.standard_normal((50, 2)) + i for i in range(3)]  # recordings differ in level
    preds = [t * 0.5 + rng.standard_normal(t.shape) * 0.3 for t in truths]
    concat = sequences.protocol_ccc(truths, preds, "concat")
    per = sequences.protocol_ccc(truths, preds, metrics.CCCProtocol.PER_RECORDING)
    T, P = np.concatenate(truths), np.concatenate(preds)
    for k in range(2):
        assert concat[k] == pytest.approx(metrics.ccc(T[:, k], P[:, k]))
        assert per[k] == pytest.approx(np.mean([metrics.ccc(t[:, k], p[:, k]) for t, p in zip(truths, preds)]))
    assert not np.allclose(concat, per)  # they measure different things
    # a constant-prediction recording: CCC 0 there (not NaN)
    assert sequences.protocol_ccc([np.arange(5.0)], [np.zeros(5)], "per_recording")[0] == 0.0
    with pytest.raises(SequenceError, match="recording 0"):
        sequences.protocol_ccc([np.zeros((5, 2))], [np.zeros((4, 2))])
