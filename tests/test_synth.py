"""The built-in corpus: bit-exact eSpeak rendering, prosody directions, corpus files."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import opensmile
import pandas as pd
import pytest

from emotools import corpora, espeak, labels, synth
from emotools.audio import SAMPLE_RATE
from emotools.corpora.splits import leaking_speakers, split_counts

TEXTS = ("The dog waited by the gate", "She folded the letter twice", "A cold wind came down",
         "We shared a pot of tea")


# --------------------------------------------------------------------------- eSpeak


def _sha(x: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()


def test_render_is_bit_exact_within_and_across_processes():
    prosody = espeak.Prosody(rate=190, volume=70, pitch=60, range=40)
    first = espeak.render(TEXTS[0], "en+f2", prosody)
    again = espeak.render(TEXTS[0], "en+f2", prosody)
    assert first.dtype == np.float32 and first.ndim == 1 and first.size > 8000
    assert np.array_equal(first, again)
    code = (
        "import hashlib, numpy as np; from emotools import espeak; "
        f"x = espeak.render({TEXTS[0]!r}, 'en+f2', espeak.Prosody(rate=190, volume=70, pitch=60, range=40)); "
        "print(hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest())"
    )
    other_process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other_process.stdout.strip() == _sha(first)
    # and it is not a constant: other prosody, other samples
    assert not np.array_equal(first[:8000], espeak.render(TEXTS[0], "en+f2", espeak.Prosody(pitch=20))[:8000])


def test_render_errors_are_clear():
    with pytest.raises(espeak.EspeakError, match="empty text"):
        espeak.render("   ", "en-us")
    with pytest.raises(espeak.EspeakError, match="no-such-voice: unknown eSpeak voice"):
        espeak.render("Hello.", "no-such-voice")
    with pytest.raises(ValueError, match="pitch=101"):
        espeak.Prosody(pitch=101)
    with pytest.raises(TypeError, match="rate must be an int"):
        espeak.Prosody(rate=175.5)
    assert espeak.native_rate() == 22050


# --------------------------------------------------------------------------- prosody directions (openSMILE)

F0, F0_SD = "F0semitoneFrom27.5Hz_sma3nz_amean", "F0semitoneFrom27.5Hz_sma3nz_stddevNorm"
LOUDNESS, VOICED_RATE = "loudness_sma3_amean", "VoicedSegmentsPerSec"
HAMMARBERG, ALPHA = "hammarbergIndexV_sma3nz_amean", "alphaRatioV_sma3nz_amean"


@pytest.fixture(scope="module")
def smile() -> opensmile.Smile:
    return opensmile.Smile(opensmile.FeatureSet.eGeMAPSv02, opensmile.FeatureLevel.Functionals)


def _measure(smile: opensmile.Smile, speaker: synth.Speaker, prosody: synth.UnitProsody) -> pd.Series:
    """Mean eGeMAPS functionals over TEXTS spoken with ``prosody``, plus seconds per text."""
    rows = []
    for text in TEXTS:
        x = synth.apply_tilt(espeak.render(text, speaker.voice, prosody.espeak()), prosody.tilt)
        row = smile.process_signal(x, SAMPLE_RATE).iloc[0]
        row["seconds"] = x.size / SAMPLE_RATE
        rows.append(row)
    return pd.DataFrame(rows).mean()


@pytest.mark.parametrize("speaker_index", [0, 5])  # en-us+m1 and en+m3 / different baselines
def test_latent_moves_opensmile_features_in_the_documented_direction(smile, speaker_index):
    speaker = synth.speaker_catalogue()[speaker_index]
    high_a, low_a = (_measure(smile, speaker, synth.unit_prosody(speaker, a, 0.0)) for a in (0.8, -0.8))
    assert high_a[F0] > low_a[F0] + 2.0  # semitones
    assert high_a[LOUDNESS] > 1.2 * low_a[LOUDNESS]
    assert high_a["seconds"] < 0.85 * low_a["seconds"]  # faster
    assert high_a[VOICED_RATE] > low_a[VOICED_RATE]
    high_v, low_v = (_measure(smile, speaker, synth.unit_prosody(speaker, 0.0, v)) for v in (0.8, -0.8))
    assert high_v[F0_SD] > low_v[F0_SD]  # wider pitch range
    assert high_v[HAMMARBERG] < low_v[HAMMARBERG] - 1.0  # brighter spectrum (dB)
    assert high_v[ALPHA] > low_v[ALPHA] + 1.0
    # valence leaves the arousal cues nearly alone: loudness within 15 %, duration within 3 %
    assert abs(high_v[LOUDNESS] / low_v[LOUDNESS] - 1) < 0.15
    assert abs(high_v["seconds"] / low_v["seconds"] - 1) < 0.03


def test_each_espeak_parameter_moves_its_feature(smile):
    speaker = synth.speaker_catalogue()[1]
    base = dict(pitch=50, range=50, volume=60, rate=170, tilt=0.0)

    def measure(**change):
        return _measure(smile, speaker, synth.UnitProsody(**{**base, **change}))

    assert measure(pitch=75)[F0] > measure(pitch=25)[F0] + 3.0
    assert measure(range=85)[F0_SD] > measure(range=15)[F0_SD] + 0.03
    assert measure(volume=90)[LOUDNESS] > 1.3 * measure(volume=40)[LOUDNESS]
    assert measure(rate=220)["seconds"] < 0.8 * measure(rate=130)["seconds"]
    assert measure(tilt=0.5)[HAMMARBERG] < measure(tilt=-0.5)[HAMMARBERG] - 2.0


# --------------------------------------------------------------------------- mapping, speakers, text


def test_mapping_table_matches_unit_prosody():
    speaker = synth.speaker_catalogue()[3]
    neutral = synth.unit_prosody(speaker, 0.0, 0.0)
    assert (neutral.pitch, neutral.range, neutral.volume, neutral.rate, neutral.tilt) == (
        round(speaker.pitch), round(speaker.range), round(speaker.volume), round(speaker.rate), 0.0)
    high = synth.unit_prosody(speaker, 0.5, 0.0)
    assert high.pitch == round(speaker.pitch + 11) and high.rate == round(speaker.rate * 1.1)
    assert high.volume == round(speaker.volume * 1.175) and high.range == round(speaker.range + 5)
    positive = synth.unit_prosody(speaker, 0.0, 0.5)
    assert positive.range == round(speaker.range * 1.3) and positive.tilt == 0.3
    assert positive.pitch == neutral.pitch and positive.volume == neutral.volume
    jittered = synth.unit_prosody(speaker, 0.0, 0.0, [1, 0, 0, 0, 0])
    assert jittered.pitch == round(speaker.pitch + 5)
    with pytest.raises(ValueError, match="one per MAPPING row"):
        synth.unit_prosody(speaker, 0.0, 0.0, [1.0])
    table = synth.mapping_markdown()
    assert table.count("\n") == 1 + len(synth.MAPPING)
    for row in synth.MAPPING:
        assert f"| {row.parameter} |" in table
    assert "+22a" in table and "x(1 + 0.6v)" in table and "+0.6v" in table


def test_speaker_catalogue():
    catalogue = synth.speaker_catalogue()
    voices = [s.voice for s in catalogue]
    assert len(catalogue) == 52 and len(set(voices)) == 52
    assert not any("whisper" in v for v in voices)
    assert {v.split("+")[0] for v in voices} == set(synth.VOICES)
    assert {s.gender for s in catalogue[:8]} == {"m", "f"}
    assert len({(s.pitch, s.rate) for s in catalogue}) == 52  # each with its own baseline
    import espeakng_loader

    variants = Path(espeakng_loader.get_data_path()) / "voices" / "!v"
    assert all((variants / v.split("+")[1]).is_file() for v in voices)  # eSpeak ignores unknown variants


def test_sentence_pool_and_units():
    pool = synth.sentences()
    assert len(pool) >= 200 and len(set(pool)) == len(pool)
    for sentence in pool:
        units = synth.split_units(sentence)
        assert " ".join(units) == sentence
        assert all(1 <= len(u.split()) <= 5 for u in units)


def test_latent_trajectory_is_bounded_smooth_and_seeded():
    make = lambda seed: synth.latent_trajectory(np.random.default_rng(seed), 600.0, centre=600.0)
    a, b = make(1), make(1)
    pd.testing.assert_frame_equal(a, b)
    assert not np.array_equal(a["arousal"], make(2)["arousal"])
    assert len(a) == 6001 and np.allclose(np.diff(a["time"]), 0.1)
    for target in labels.TARGETS:
        x = a[target].to_numpy()
        assert np.abs(x).max() < 1 and 0.35 < x.std() < 0.7 and abs(x.mean()) < 0.1
        lag1 = np.corrcoef(x[:-1], x[1:])[0, 1]
        lag10s = np.corrcoef(x[:-100], x[100:])[0, 1]
        assert lag1 > 0.98 and 0.05 < lag10s < 0.6  # time constant between ~5 and ~10 s


# --------------------------------------------------------------------------- the corpus


def test_presets_keep_enough_test_speakers():
    for name in ("default", "full"):
        size = synth.SIZES[name]
        assert size.speakers >= 24 and split_counts(size.speakers, synth.SPLIT_RATIOS)[2] >= 4
    assert 30 <= synth.SIZES["default"].total_minutes <= 40
    assert synth.SIZES["smoke"].total_minutes <= 5


def test_smoke_corpus_loads_with_the_annotated_scanner(smoke_corpus):
    table = corpora.scan("annotated", smoke_corpus, progress=False)
    assert table.attrs["problems"] == []
    assert len(table) == 6 and table["speaker"].nunique() == 6
    assert leaking_speakers(table) == {}
    assert set(table["split"]) == {"train", "dev", "test"}
    meta = pd.read_csv(smoke_corpus / "metadata.csv")
    assert dict(zip(meta["recording"], meta["split"])) == dict(zip(table["utterance"], table["split"]))
    config = json.loads((smoke_corpus / "corpus.json").read_text())
    assert config["seed"] == 0 and config["speakers"] == 6 and len(config["annotation_model"]["panel"]) == 4
    for row in table.itertuples():
        assert 30.0 <= row.duration <= 34.0 and row.label_rate == pytest.approx(10.0)
        frame = corpora.read_annotation(row.annotation)
        raters = [f"arousal_r{k}" for k in range(1, 5)]
        assert list(frame.columns[:3]) == ["time", "arousal", "valence"]
        assert {*raters, "valence_r4", "arousal_latent", "valence_latent", "arousal_ceiling",
                "valence_ceiling"} <= set(frame.columns)
        assert len(frame) == len(labels.frame_times(row.duration))
        np.testing.assert_allclose(frame["arousal"], frame[raters].mean(axis=1), atol=2e-6)
        assert frame.drop(columns="time").abs().to_numpy().max() <= 1.0
        units = pd.read_csv(smoke_corpus / "units" / f"{row.utterance}.csv")
        assert units["start"].is_monotonic_increasing and (units["end"] > units["start"]).all()
        assert units["end"].iat[-1] < row.duration and len(units) >= 15
        # each unit's prosody is the mapping of its latent values and jitter
        speaker = synth.speaker_catalogue()[int(row.speaker[3:]) - 1]
        u = units.iloc[3]
        expected = synth.unit_prosody(speaker, u.arousal, u.valence, [u[f"z_{r.parameter}"] for r in synth.MAPPING])
        assert abs(expected.pitch - u.pitch) <= 1 and abs(expected.rate - u.rate) <= 1


def test_corpus_is_idempotent_and_deterministic(smoke_corpus, tmp_path):
    root = tmp_path / "copy"
    kwargs = dict(speakers=2, sessions=1, minutes=0.1, seed=0, jobs=1, progress=False)
    synth.write_corpus(root, **kwargs)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    stamps = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}
    synth.write_corpus(root, **kwargs)  # nothing to do
    assert {p: p.stat().st_mtime_ns for p in files} == {p: s[0] for p, s in stamps.items()}
    for p in (root / "audio" / "spk02_s01.wav", root / "annotations" / "spk02_s01.csv"):
        p.unlink()
    synth.write_corpus(root, **kwargs)  # re-renders just that recording, identically
    assert {p: p.read_bytes() for p in files} == {p: s[1] for p, s in stamps.items()}
    assert not list(root.rglob("*.partial"))
    with pytest.raises(synth.SynthError, match="another configuration.*minutes"):
        synth.write_corpus(root, **{**kwargs, "minutes": 0.2})
    with pytest.raises(synth.SynthError, match="speakers: must be 1-52"):
        synth.write_corpus(tmp_path / "x", **{**kwargs, "speakers": 53})


def test_worker_processes_give_the_same_corpus(tmp_path):
    kwargs = dict(speakers=2, sessions=1, minutes=0.1, seed=3, progress=False)
    one, two = synth.write_corpus(tmp_path / "one", jobs=1, **kwargs), synth.write_corpus(tmp_path / "two", jobs=2, **kwargs)
    for path in sorted((one / "audio").iterdir()) + sorted((one / "annotations").iterdir()):
        assert path.read_bytes() == (two / path.relative_to(one)).read_bytes()
    other = synth.render_session(0, 0, minutes=0.1, seed=4)
    assert not np.array_equal(other.audio[:16000], synth.render_session(0, 0, minutes=0.1, seed=3).audio[:16000])


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    assert synth.cli(["--out", str(out), "--speakers", "2", "--sessions", "1", "--minutes", "0.1",
                      "--seed", "1", "--jobs", "1", "--no-progress"]) == 0
    assert "2 recordings, 2 speakers" in capsys.readouterr().out
    assert len(list((out / "audio").glob("*.wav"))) == 2
    with pytest.raises(SystemExit):
        synth.cli(["--speakers", "3"])  # a custom size needs --out
    assert "--out is required" in capsys.readouterr().err
    assert synth.cli(["--out", str(out), "--speakers", "3", "--minutes", "0.1", "--no-progress"]) == 1
    assert "another configuration" in capsys.readouterr().err


def test_ensure_corpus_caches_by_configuration(isolated_dirs, monkeypatch):
    monkeypatch.setitem(synth.SIZES, "smoke", synth.CorpusSize(speakers=1, sessions=1, minutes=0.1))
    root = synth.ensure_corpus("smoke", seed=5, jobs=1, progress=False)
    assert root == isolated_dirs["data"] / "ground_truth" / "smoke-seed5" == synth.corpus_dir("smoke", 5)
    audio = root / "audio" / "spk01_s01.wav"
    stamp = audio.stat().st_mtime_ns
    assert synth.ensure_corpus("smoke", seed=5, progress=False) == root and audio.stat().st_mtime_ns == stamp
    config = json.loads((root / "corpus.json").read_text())
    (root / "corpus.json").write_text(json.dumps({**config, "version": -1}))  # made by other code
    (root / "audio" / "stale.wav").write_bytes(b"old")
    assert synth.ensure_corpus("smoke", seed=5, progress=False) == root
    assert json.loads((root / "corpus.json").read_text()) == config and not (root / "audio" / "stale.wav").exists()
    with pytest.raises(ValueError, match="unknown corpus size 'huge'"):
        synth.ensure_corpus("huge")
