"""Corpus v2 label mechanisms: each knob's effect on the labels and the cues/audio; ``easy`` stays corpus v1."""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields, replace

import numpy as np
import pandas as pd
import pytest

from emotools import labels, synth
from emotools.labels.annotation import lag_paths
from emotools.synth.corpus import _config
from emotools.synth.mechanisms import (
    PRESETS,
    Mechanisms,
    integration_gain,
    mechanisms_markdown,
    resolve,
    session_levels,
)
from emotools.synth.session import session_trajectories

RATE = 10.0  # label frames per second


def _pre(frame: pd.DataFrame, target: str = "arousal") -> np.ndarray:
    """A trajectory before ``tanh`` (the mechanisms act there)."""
    return np.arctanh(frame[target].to_numpy())


# --------------------------------------------------------------------------- easy = version 1, presets


# digests recorded from the code of version 1 (before the mechanisms existed), eSpeak NG 1.52.0:
# render_session(2, 0, minutes=0.1, seed=7) and annotate(latent, AnnotationModel(seed=7)).
V1_DIGESTS = ["af62334c97092e20", "9c220b27ffe8d16a", "775dd761a5405158"]
V1_MODEL = {"bias_sd": 0.08, "lag_mean": 3.0, "lag_spread": 1.0, "noise_sd": 0.18, "noise_tau": 5.0,
            "panel": [{"lag": 1.7091, "smoothing": 1.2202}, {"lag": 4.3935, "smoothing": 2.4861},
                      {"lag": 3.3883, "smoothing": 2.2752}, {"lag": 2.5091, "smoothing": 1.3358}],
            "raters": 4, "scale_sd": 0.1, "seed": 0, "smoothing": [1.0, 3.0]}


def _digests(session: synth.Session, frame: pd.DataFrame) -> list[str]:
    parts = [np.ascontiguousarray(session.audio, dtype=np.float32).tobytes(),
             session.units.to_csv(index=False, float_format="%.6f").encode(),
             frame.to_csv(index=False, float_format="%.6f").encode()]
    return [hashlib.sha256(p).hexdigest()[:16] for p in parts]


def test_easy_renders_version_1_bit_for_bit():
    from emotools import espeak

    for mechanisms in (None, PRESETS["easy"]):
        s = synth.render_session(2, 0, minutes=0.1, seed=7, mechanisms=mechanisms)
        frame = labels.annotate(s.latent, model=PRESETS["easy"].annotation_model(7), key=s.recording)
        if espeak.version() == "1.52.0":  # the audio digest is eSpeak's; units and labels are ours
            assert _digests(s, frame) == V1_DIGESTS
        assert _digests(s, frame)[1:] == V1_DIGESTS[1:]
        assert s.cue[["time", "arousal", "valence"]].equals(s.latent) and s.cue["evidence"].all()
        assert "evidence" not in s.units.columns
    assert labels.AnnotationModel(seed=0).to_dict() == V1_MODEL
    size = synth.SIZES["smoke"]
    config = _config(size, 0, labels.AnnotationModel(seed=0))
    assert _config(size, 0, labels.AnnotationModel(seed=0), "easy") == config
    assert "preset" not in config and "mechanisms" not in config
    assert synth.corpus_dir("smoke", 3).name == "smoke-seed3"
    assert synth.corpus_dir("smoke", 3, "default").name == "smoke-seed3-default"


def test_presets_and_knob_table():
    assert {"easy", "levels", "integration", "relative", "drift", "strong", "default"} <= set(PRESETS)
    assert PRESETS["easy"] == Mechanisms() and not Mechanisms().active
    assert all(m.active for name, m in PRESETS.items() if name != "easy")
    on = PRESETS["default"]
    assert min(on.mood_sd, on.speaker_sd, on.integration_tau, on.sparse_fraction, on.relative_window,
               on.lag_drift) > 0
    table = mechanisms_markdown().splitlines()
    assert len(table) == 2 + len(fields(Mechanisms))
    assert all(f"`{name}`" in table[0] for name in PRESETS)
    assert table[2 + [f.name for f in fields(Mechanisms)].index("integration_tau")].split("|")[3:10] == \
        [" 0 ", " 0 ", " 20 ", " 0 ", " 0 ", " 20 ", " 5 "]
    assert resolve("levels") == ("levels", PRESETS["levels"])
    assert resolve(Mechanisms(mood_sd=0.1)) == ("custom", Mechanisms(mood_sd=0.1))
    with pytest.raises(ValueError, match="unknown mechanism preset 'bogus'; choose from easy"):
        resolve("bogus")
    with pytest.raises(ValueError, match="mood_sd must be a finite number >= 0, got -1"):
        Mechanisms(mood_sd=-1)
    with pytest.raises(ValueError, match="sparse_fraction must be < 1"):
        Mechanisms(sparse_fraction=1.0)
    with pytest.raises(ValueError, match="lag_bounds must be"):
        Mechanisms(lag_bounds=(5.0, 2.0))


# --------------------------------------------------------------------------- levels


def test_levels_make_sessions_not_zero_mean_and_reach_the_voice():
    frames = int(60 * RATE)  # the base process is centred over the session's 60 s
    means = {}
    for name in ("easy", "levels"):
        for speaker in range(8):
            for session in range(2):
                perceived, cue = session_trajectories(speaker, session, minutes=1.0, seed=0,
                                                      mechanisms=PRESETS[name])
                level = session_levels(PRESETS[name], seed=0, speaker_index=speaker, session=session)
                for target in labels.TARGETS:
                    x = _pre(perceived, target)[:frames]
                    assert x.mean() == pytest.approx(level[target], abs=1e-9)
                np.testing.assert_allclose(cue["arousal"], perceived["arousal"])  # absolute cues: the voice shows it
                means[name, speaker, session] = perceived["arousal"][:frames].mean()
    easy = np.array([v for k, v in means.items() if k[0] == "easy"])
    levels = np.array([v for k, v in means.items() if k[0] == "levels"])
    assert np.abs(easy).max() < 0.1 and levels.std() > 0.2
    # the speaker baseline is shared by a speaker's sessions, the mood offset is not
    speaker_only = Mechanisms(speaker_sd=0.3)
    assert session_levels(speaker_only, seed=0, speaker_index=3, session=0) == \
        session_levels(speaker_only, seed=0, speaker_index=3, session=1)
    assert session_levels(speaker_only, seed=0, speaker_index=3, session=0) != \
        session_levels(speaker_only, seed=0, speaker_index=4, session=0)
    # the audio: the session with the higher arousal level is spoken with higher pitch
    strong = Mechanisms(mood_sd=1.5)
    level = {s: session_levels(strong, seed=0, speaker_index=0, session=s)["arousal"] for s in range(6)}
    high, low = max(level, key=level.get), min(level, key=level.get)
    pitch = {s: synth.render_session(0, s, minutes=0.15, seed=0, mechanisms=strong).units["pitch"].mean()
             for s in (high, low)}
    assert pitch[high] > pitch[low] + 5


# --------------------------------------------------------------------------- leaky integration, sparse evidence


def test_leaky_integration_label_integrates_the_voice_events():
    mechanisms = Mechanisms(integration_tau=20.0)
    perceived, cue = session_trajectories(1, 0, minutes=2.0, seed=3, mechanisms=mechanisms)
    events, state = _pre(cue), _pre(perceived)
    alpha, y, expected = 1 - np.exp(-0.1 / 20.0), 0.0, []
    for e in events:  # the leaky integrator, step by step
        y += alpha * (e - y)
        expected.append(y)
    gain = integration_gain(0.1, mechanisms.event_tau, 20.0)
    np.testing.assert_allclose(state, gain * np.array(expected), atol=1e-9)
    # the gain keeps the state's spread at the event process' (sd 0.8 before tanh), over many sessions
    pooled = np.concatenate([_pre(session_trajectories(s, 0, minutes=3.0, seed=1, mechanisms=mechanisms)[0])[400:]
                             for s in range(16)])
    assert 0.55 < pooled.std() < 1.05
    # the voice shows fast events, the label a slow state
    lag1s = [np.corrcoef(x[:-10], x[10:])[0, 1] for x in (events, state)]
    assert lag1s[0] < 0.6 < 0.9 < lag1s[1]
    assert abs(np.corrcoef(events, state)[0, 1]) < 0.6


def test_sparse_evidence_stretches_carry_no_cue_while_the_label_goes_on():
    mechanisms = PRESETS["integration"]
    off, stretches, inside = [], [], []
    for speaker in range(10):
        perceived, cue = session_trajectories(speaker, 0, minutes=3.0, seed=2, mechanisms=mechanisms)
        mask = cue["evidence"].to_numpy()
        assert (cue.loc[~mask, ["arousal", "valence"]] == 0).all().all() and (cue.loc[mask, "arousal"] != 0).all()
        off.append(1 - mask.mean())
        edges = np.flatnonzero(np.diff(mask.astype(int)))
        stretches += [b - a for a, b in zip(edges[:-1], edges[1:]) if not mask[a + 1]]
        inside.append(perceived["arousal"][~mask].std())
    assert 0.2 < np.mean(off) < 0.4
    assert 4.0 < np.mean(stretches) / RATE < 8.0
    assert min(inside) > 0.05  # the perceived emotion keeps moving where the voice is neutral
    # the audio: units in evidence-free stretches are delivered with the speaker's neutral prosody
    session = synth.render_session(1, 0, minutes=0.5, seed=2, mechanisms=mechanisms)
    units, speaker = session.units, session.speaker
    assert set(units["evidence"]) == {0, 1}
    for _, unit in units[units["evidence"] == 0].iterrows():
        assert unit["arousal"] == unit["valence"] == 0.0
        z = [unit[f"z_{row.parameter}"] for row in synth.MAPPING]
        neutral = synth.unit_prosody(speaker, 0.0, 0.0, z)
        assert abs(unit["pitch"] - neutral.pitch) <= 1 and abs(unit["tilt"] - neutral.tilt) < 1e-3
    during = [session.latent["arousal"][int(u.start * RATE):int(u.end * RATE)].mean()
              for u in units[units["evidence"] == 0].itertuples()]
    assert np.ptp(during) > 0.05 or len(during) == 1


# --------------------------------------------------------------------------- relative cues


def test_relative_cues_are_contrasts_with_the_recent_baseline():
    mechanisms = Mechanisms(relative_window=20.0, mood_sd=1.0)
    frames, levels, cue_means = 200, [], []
    for session in range(12):
        perceived, cue = session_trajectories(4, session, minutes=2.0, seed=5, mechanisms=mechanisms)
        x, c = _pre(perceived), _pre(cue)
        expected = np.array([x[i] - x[max(0, i - frames + 1):i + 1].mean() for i in range(x.size)])
        np.testing.assert_allclose(c, expected, atol=1e-9)
        levels.append(session_levels(mechanisms, seed=5, speaker_index=4, session=session)["arousal"])
        assert x[:1200].mean() == pytest.approx(levels[-1], abs=1e-9)  # the label keeps the level ...
        cue_means.append(c[frames:1200].mean())  # ... the cue, a contrast with the last 20 s, does not
        assert 0.3 < np.corrcoef(x, c)[0, 1] < 0.95
    assert np.std(levels) > 0.6 and max(np.abs(cue_means)) < 0.3
    assert abs(np.corrcoef(levels, cue_means)[0, 1]) < 0.7


# --------------------------------------------------------------------------- drifting raters


def _lag_by_xcorr(rating: np.ndarray, latent: np.ndarray, max_frames: int = 70) -> float:
    """Lag (s) maximising the correlation of the differenced rating and latent."""
    dr, dl = np.diff(rating), np.diff(latent)
    scores = [np.corrcoef(dr[k:], dl[: dl.size - k])[0, 1] for k in range(max_frames)]
    return int(np.argmax(scores)) / RATE


def test_rater_lags_drift_within_bounds():
    time = labels.frame_times(600.0)
    model = labels.AnnotationModel(seed=0, lag_drift=PRESETS["drift"].lag_drift)
    paths = lag_paths(model, "spk01_s01", time)
    assert paths.shape == (4, time.size)
    assert paths.min() >= 2.0 and paths.max() <= 5.0 and np.ptp(paths, axis=1).min() > 1.0
    assert np.abs(np.diff(paths, axis=1)).max() < 0.03  # smooth (unsmoothed steps would reach ~0.14 s)
    fixed = lag_paths(labels.AnnotationModel(seed=0), "spk01_s01", time)
    assert np.array_equal(fixed, np.array([[r.lag] * time.size for r in labels.AnnotationModel(seed=0).panel()]))
    assert model.to_dict()["lag_drift"] == 0.1 and model.to_dict()["lag_bounds"] == [2.0, 5.0]
    # one noise-free rater: the lag estimated by cross-correlation in 30-s windows follows the drifting lag
    clean = labels.AnnotationModel(raters=1, lag_mean=3.0, smoothing=(0.0, 0.0), noise_sd=0.0, bias_sd=0.0,
                                   scale_sd=0.0, seed=0, lag_drift=PRESETS["drift"].lag_drift)
    latent = synth.latent_trajectory(np.random.default_rng(11), 600.0, tau=(1.0, 1.0))
    frame = labels.annotate(latent, model=clean, key="drift")
    truth = lag_paths(clean, "drift", time)[0]
    estimates, window = [], int(20 * RATE)
    for start in range(0, time.size - window, window):
        part = slice(start, start + window)
        estimates.append(_lag_by_xcorr(frame["arousal"].to_numpy()[part], latent["arousal"].to_numpy()[part]))
        assert truth[part].min() - 0.3 <= estimates[-1] <= truth[part].max() + 0.3
        assert estimates[-1] == pytest.approx(truth[part].mean(), abs=0.5)
    assert min(estimates) >= 1.8 and max(estimates) <= 5.2 and np.ptp(estimates) > 1.0
    assert frame.equals(labels.annotate(latent, model=clean, key="drift"))  # seeded
    with pytest.raises(ValueError, match="lag_drift must be a finite number >= 0"):
        labels.AnnotationModel(lag_drift=-0.1)


# --------------------------------------------------------------------------- corpus and CLI


def test_corpus_records_the_preset_and_the_cli_chooses_it(tmp_path, capsys):
    out = tmp_path / "levels"
    assert synth.cli(["--out", str(out), "--speakers", "2", "--minutes", "0.1", "--seed", "1",
                      "--preset", "default", "--jobs", "1", "--no-progress"]) == 0
    assert "2 recordings" in capsys.readouterr().out
    config = json.loads((out / "corpus.json").read_text())
    assert config["preset"] == "default" and config["mechanisms"] == PRESETS["default"].to_dict()
    assert config["annotation_model"]["lag_drift"] == PRESETS["default"].lag_drift
    units = pd.read_csv(out / "units" / "spk01_s01.csv")
    annotation = pd.read_csv(out / "annotations" / "spk01_s01.csv")
    assert set(units["evidence"]) <= {0, 1} and {"arousal_r1", "arousal_latent"} <= set(annotation.columns)
    assert config["realism"] == synth.VoiceRealism.full().to_dict()  # corpus v2: the voice knobs too
    split = pd.read_csv(out / "metadata.csv").set_index("recording").loc["spk01_s01", "split"]
    expected = synth.render_session(0, 0, minutes=0.1, seed=1, mechanisms=PRESETS["default"],
                                    realism=synth.preset_realism("default"),
                                    sentence_pool=synth.corpus.sentence_splits(1)[split])
    np.testing.assert_allclose(annotation["arousal_latent"], expected.latent["arousal"], atol=1e-5)
    assert synth.cli(["--out", str(out), "--speakers", "2", "--minutes", "0.1", "--seed", "1",
                      "--preset", "levels", "--no-progress"]) == 1
    assert "differs in annotation_model, mechanisms, preset" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        synth.cli(["--out", str(out), "--preset", "bogus"])
    with pytest.raises(synth.SynthError, match="unknown mechanism preset 'bogus'"):
        synth.write_corpus(tmp_path / "x", speakers=1, minutes=0.1, preset="bogus", progress=False)
    custom = replace(PRESETS["levels"], mood_sd=0.9)
    assert _config(synth.SIZES["smoke"], 0, custom.annotation_model(0), custom)["preset"] == "custom"


def test_docs_show_the_knob_table():
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[1] / "docs" / "builtin-corpus.md").read_text(encoding="utf-8")
    assert mechanisms_markdown() in docs
