"""Annotation model, agreement helpers, and the seed / proxy label protocols."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emotools import corpora, labels, synth
from emotools.features import RATE_HZ
from emotools.metrics import ccc


@pytest.fixture(scope="module")
def smoke_table(smoke_corpus: Path) -> pd.DataFrame:
    return corpora.scan("annotated", smoke_corpus, progress=False)


def _latent(seed: int, seconds: float = 120.0) -> pd.DataFrame:
    return synth.latent_trajectory(np.random.default_rng(seed), seconds, centre=seconds)


def _best_lag(sources: list[np.ndarray], ratings: list[np.ndarray], max_frames: int = 80) -> float:
    """Lag (s) maximising the mean correlation of source(t - lag) with rating(t).

    Both are differenced first (pre-whitening): slow trajectories and the
    raters' slowly drifting noise would otherwise make the peak broad.
    """
    sources, ratings = [np.diff(s) for s in sources], [np.diff(r) for r in ratings]
    scores = [np.mean([np.corrcoef(s[: s.size - k], r[k:])[0, 1] for s, r in zip(sources, ratings)])
              for k in range(max_frames)]
    return int(np.argmax(scores)) / RATE_HZ


# --------------------------------------------------------------------------- the annotation model


def test_rater_lag_is_recoverable_from_the_stored_corpus(smoke_corpus, smoke_table):
    panel = json.loads((smoke_corpus / "corpus.json").read_text())["annotation_model"]["panel"]
    assert len(panel) == 4 and 2.0 <= np.mean([r["lag"] for r in panel]) <= 4.0
    frames = [corpora.read_annotation(path) for path in smoke_table["annotation"]]
    for k, rater in enumerate(panel, start=1):
        for target in labels.TARGETS:
            ratings = [f[f"{target}_r{k}"].to_numpy() for f in frames]
            raw = [f[f"{target}_latent"].to_numpy() for f in frames]
            # against the latent smoothed as this rater smooths: the lag itself
            smoothed = [labels.annotation._smooth(x, 0.1, rater["smoothing"]) for x in raw]
            assert _best_lag(smoothed, ratings) == pytest.approx(rater["lag"], abs=0.2)
            # against the raw latent: the lag plus part of the smoothing delay
            assert rater["lag"] - 0.2 <= _best_lag(raw, ratings) <= rater["lag"] + rater["smoothing"] + 0.3


def test_relabel_rederives_stored_labels_and_can_change_the_lag(smoke_corpus, smoke_table):
    stored = labels.annotation_labels(smoke_table)
    same = labels.relabel(smoke_table, model=labels.AnnotationModel(seed=0))
    for utterance, frame in stored.items():
        assert frame.attrs["protocol"] == "annotation"
        np.testing.assert_allclose(same[utterance][frame.columns].to_numpy(), frame.to_numpy(), atol=1e-4)
    no_lag = labels.relabel(smoke_table, model=labels.AnnotationModel(lag_mean=0.0, lag_spread=0.0, smoothing=(0.5, 0.5)))
    frames = list(no_lag.values())
    assert _best_lag([f["arousal_latent"].to_numpy() for f in frames],
                     [f["arousal_r2"].to_numpy() for f in frames]) <= 0.6
    lag4 = labels.AnnotationModel(lag_mean=4.0, lag_spread=0.0, smoothing=(0.0, 0.0), noise_sd=0.0, bias_sd=0.0,
                                  scale_sd=0.0)
    frame = labels.relabel(smoke_table, model=lag4)[smoke_table["utterance"].iat[0]]
    np.testing.assert_allclose(frame["arousal"].to_numpy()[40:], frame["arousal_latent"].to_numpy()[:-40], atol=1e-9)


def test_annotate_against_a_direct_implementation():
    latent = _latent(1, 60.0)
    model = labels.AnnotationModel(raters=3, lag_mean=2.0, lag_spread=0.5, smoothing=(1.0, 2.0), noise_sd=0.0,
                                   bias_sd=0.0, scale_sd=0.0, seed=7)
    frame = labels.annotate(latent, model=model, key="s1")
    assert list(frame.columns) == ["time", "arousal", "valence", "arousal_r1", "arousal_r2", "arousal_r3",
                                   "valence_r1", "valence_r2", "valence_r3", "arousal_latent", "valence_latent",
                                   "arousal_ceiling", "valence_ceiling"]
    time, x = latent["time"].to_numpy(), latent["valence"].to_numpy()
    for k, rater in enumerate(model.panel(), start=1):
        delayed = np.interp(time - rater.lag, time, x)
        alpha, y, expected = 1 - np.exp(-0.1 / rater.smoothing), delayed[0], []
        for value in delayed:  # the textbook recursion
            y = y + alpha * (value - y)
            expected.append(y)
        np.testing.assert_allclose(frame[f"valence_r{k}"], expected, atol=1e-12)
    # without noise, bias and scale, gold = ceiling = mean of the raters
    np.testing.assert_allclose(frame["valence"], frame["valence_ceiling"], atol=1e-12)
    np.testing.assert_allclose(frame["valence_latent"], x)
    assert frame.attrs["protocol"] == "annotation"


def test_rater_panel_traits():
    panel = labels.AnnotationModel(raters=4, lag_mean=3.0, lag_spread=1.0, seed=0).panel()
    lags = np.array([r.lag for r in panel])
    assert lags.mean() == pytest.approx(3.0, abs=1e-3) and lags.std() == pytest.approx(1.0, abs=1e-3)
    assert all(1.0 <= r.smoothing <= 3.0 for r in panel)
    assert panel == labels.AnnotationModel(seed=0).panel() != labels.AnnotationModel(seed=1).panel()
    assert [r.lag for r in labels.AnnotationModel(lag_mean=0.0, lag_spread=0.0).panel()] == [0.0] * 4
    assert labels.AnnotationModel(raters=1).panel()[0].lag == 3.0


def test_agreement_is_human_like_not_perfect():
    model = labels.AnnotationModel()
    frames = {f"s{i}": labels.annotate(_latent(i, 90.0), model=model, key=f"s{i}") for i in range(16)}
    table = labels.agreement(frames)
    per_session = table[table["utterance"] != "(all)"].groupby("target")[["rater_ccc", "gold_vs_ceiling"]].mean()
    for target in labels.TARGETS:
        assert 0.6 <= per_session.loc[target, "rater_ccc"] <= 0.8
        assert per_session.loc[target, "gold_vs_ceiling"] > 0.9  # the mean of 4 raters is close to its ceiling
    assert len(table) == 2 * (16 + 1) and table["raters"].eq(4).all()
    one = frames["s0"]
    pairs = [ccc(one[f"arousal_r{i}"], one[f"arousal_r{j}"]) for i in range(1, 5) for j in range(i + 1, 5)]
    assert labels.rater_agreement(one, "arousal") == pytest.approx(np.mean(pairs))
    assert labels.ceiling_ccc(one, "valence") == pytest.approx(ccc(one["valence"], one["valence_ceiling"]))
    frame = labels.annotate(_latent(3), model=model, key="k")
    pd.testing.assert_frame_equal(frame, labels.annotate(_latent(3), model=model, key="k"))
    assert not np.array_equal(frame["arousal"], labels.annotate(_latent(3), model=model, key="other")["arousal"])


def test_bad_input_raises_clear_errors():
    good = _latent(0, 5.0)
    with pytest.raises(labels.LabelError, match="rec: latent lacks column"):
        labels.annotate(good.drop(columns="valence"), key="rec")
    bad = good.copy()
    bad.loc[3, "arousal"] = np.nan
    with pytest.raises(labels.LabelError, match="NaN"):
        labels.annotate(bad, key="rec")
    jumpy = good.copy()
    jumpy.loc[10:, "time"] += 0.05
    with pytest.raises(labels.LabelError, match="not uniform"):
        labels.annotate(jumpy, key="rec")
    with pytest.raises(ValueError, match="raters must be a positive int"):
        labels.AnnotationModel(raters=0)
    with pytest.raises(ValueError, match="lag_mean"):
        labels.AnnotationModel(lag_mean=-1.0)
    with pytest.raises(ValueError, match="smoothing"):
        labels.AnnotationModel(smoothing=(3.0, 1.0))
    with pytest.raises(labels.LabelError, match="no 'annotation' column"):
        labels.relabel(pd.DataFrame({"utterance": ["a"]}), model=labels.AnnotationModel())


# --------------------------------------------------------------------------- seed control


def test_seed_labels_are_the_original_control():
    table = pd.DataFrame({"utterance": [f"u{i}" for i in range(400)], "duration": np.linspace(0.0, 12.0, 400)})
    frames = labels.seed_labels(table, seed=1)
    assert frames["u0"]["time"].tolist() == [0.0] and len(frames["u399"]) == 121
    values = []
    for frame in frames.values():
        assert frame.attrs["protocol"] == "seed" and list(frame.columns) == ["time", "arousal", "valence"]
        assert frame[["arousal", "valence"]].nunique().eq(1).all()  # held over the utterance
        values.append(frame[["arousal", "valence"]].iloc[0].to_numpy())
    values = np.array(values)
    assert values.min() >= 0 and values.max() < 1 and np.var(values) == pytest.approx(1 / 12, abs=0.01)
    # order does not matter; the seed does
    shuffled = labels.seed_labels(table.iloc[::-1], seed=1)
    pd.testing.assert_frame_equal(shuffled["u7"], frames["u7"])
    other = labels.seed_labels(table, seed=2)
    gold = np.concatenate([f["arousal"] for f in frames.values()])
    guess = np.concatenate([f["arousal"] for f in other.values()])
    assert abs(ccc(gold, guess)) < 0.15 and not np.isnan(ccc(gold, np.full_like(gold, 0.5)))
    with pytest.raises(labels.LabelError, match="u1: bad duration"):
        labels.seed_labels(pd.DataFrame({"utterance": ["u1"], "duration": [np.nan]}), seed=0)


# --------------------------------------------------------------------------- proxy


def test_proxy_latent_follows_its_cues():
    n = 200
    start = np.arange(n) * 0.1
    ramp = np.linspace(-1, 1, n)
    features = pd.DataFrame({"start": start, "end": start + 1.0})
    for target, cues in labels.PROXY_CUES.items():
        for name, sign in cues:
            features[name] = 10 + sign * (ramp if target == "arousal" else -ramp)
    features.loc[50:59, "F0semitoneFrom27.5Hz_sma3nz_amean"] = 0.0  # unvoiced windows: missing, filled
    proxy = labels.proxy_latent(features, duration=20.5)
    assert len(proxy) == 206 and not proxy.isna().any().any()
    assert proxy["arousal"].is_monotonic_increasing and proxy["valence"].is_monotonic_decreasing
    assert proxy[["arousal", "valence"]].abs().max().max() < 1
    with pytest.raises(labels.LabelError, match="rec: features lack column"):
        labels.proxy_latent(features.drop(columns="VoicedSegmentsPerSec"), 20.0, key="rec")


def test_proxy_labels_track_the_prosody_of_real_recordings(smoke_table):
    from emotools import audio, features

    spec = features.FeatureSpec(level="windowed", window=1.0, hop=0.1)
    table = smoke_table.iloc[:3]
    store = {row.utterance: features.extract_signal(audio.read_audio(row.file), 16000, spec)
             for row in table.itertuples()}
    frames = labels.proxy_labels(table, store)
    correlations = {t: [] for t in labels.TARGETS}
    for row in table.itertuples():
        frame = frames[row.utterance]
        assert frame.attrs["protocol"] == "proxy"
        assert len(frame) == len(labels.frame_times(row.duration)) and not frame.isna().any().any()
        truth = corpora.read_annotation(row.annotation)
        for target in labels.TARGETS:  # the proxy of the latent follows the true latent
            correlations[target].append(np.corrcoef(frame[f"{target}_latent"], truth[f"{target}_latent"])[0, 1])
    assert np.mean(correlations["arousal"]) > 0.2 and np.mean(correlations["valence"]) > 0.2


def test_chain_labels_follow_the_utterances_of_a_chain():
    from emotools.corpora.sessions import chain_sessions

    table = pd.DataFrame({"file": [f"f{i}" for i in range(5)], "utterance": [f"u{i}" for i in range(5)],
                          "speaker": ["a", "a", "a", "b", "b"], "session": ["a1", "a1", "a2", "b1", "b1"],
                          "duration": [3.0, 4.5, 2.0, 5.0, 1.25], "split": "train"})
    chains = chain_sessions(table, target_minutes=1.0, gap=0.5)
    per_utterance = labels.seed_labels(table, seed=4)
    chained = labels.chain_labels(chains, per_utterance)
    assert set(chained) == set(chains["chain"])
    for chain, segments in chains.groupby("chain"):
        frame = chained[chain]
        assert frame.attrs["protocol"] == "seed" and not frame.isna().any().any()
        assert len(frame) == len(labels.frame_times(segments["chain_duration"].iat[0]))
        for row in segments.itertuples():
            inside = (frame["time"] >= row.start) & (frame["time"] < row.end)
            assert inside.any()
            assert (frame.loc[inside, "valence"] == per_utterance[row.utterance]["valence"].iat[0]).all()
        gap = (frame["time"] >= segments["end"].iat[0]) & (frame["time"] < segments["start"].iat[1])
        assert (frame.loc[gap, "arousal"] == per_utterance[segments["utterance"].iat[0]]["arousal"].iat[0]).all()
    with pytest.raises(labels.LabelError, match="no label frames for utterance"):
        labels.chain_labels(chains, {k: v for k, v in per_utterance.items() if k != "u2"})
