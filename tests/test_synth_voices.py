"""Voices closer to real speech: each channel effect measured on audio, no label leak, held-out splits, realism check."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
import pytest
from scipy.signal import lfilter, welch

from emotools import espeak, synth
from emotools.audio import SAMPLE_RATE as SR
from emotools.synth import channel
from emotools.synth.channel import RecordingConditions, VoiceRealism
from emotools.synth.corpus import HELD_OUT_VOICES, sentence_splits
from emotools.synth.realism import corpus_functionals, degenerate_features, realism_check, realism_table

# sha256 of render_session(0, 0, minutes=0.1, seed=3).audio, recorded before the realism knobs existed
TODAY_AUDIO_SHA = "29a42179861874fcac2df0c47f81ac8a56af371006052a6c729f9e5c6bb85d37"


def _pulses(f0: float, seconds: float, *, width_s: float = 0.0005) -> tuple[np.ndarray, np.ndarray]:
    """A train of narrow Gaussian pulses (a perfectly periodic 'voice') and the pulse times in samples."""
    n = int(seconds * SR)
    times = np.arange(1, int(seconds * f0) - 1) * SR / f0
    t = np.arange(n)
    x = np.zeros(n)
    for c in times:
        lo, hi = int(c) - 40, int(c) + 40
        x[lo:hi] += np.exp(-0.5 * ((t[lo:hi] - c) / (width_s * SR)) ** 2)
    return x.astype(np.float32), times


def _pulse_peaks(y: np.ndarray, times: np.ndarray, f0: float) -> tuple[np.ndarray, np.ndarray]:
    """Time (parabolic peak) and height of the pulse near each expected time."""
    half = int(0.3 * SR / f0)
    at, height = [], []
    for c in times[2:-2].astype(int):
        k = c - half + int(np.argmax(y[c - half:c + half]))
        a, b, d = y[k - 1], y[k], y[k + 1]
        at.append(k + 0.5 * (a - d) / (a - 2 * b + d))
        height.append(b)
    return np.array(at), np.array(height)


def _conditions(**change: float) -> RecordingConditions:
    flat = dict(low_hz=150.0, low_db=0.0, high_hz=4000.0, high_db=0.0, peak_hz=1500.0, peak_db=0.0, peak_q=1.0,
                rt60_s=0.4, drr_db=6.0, snr_db=20.0, noise_beta=1.0)
    return RecordingConditions(**{**flat, **change})


# --------------------------------------------------------------------------- off = today's corpus


def test_off_keeps_todays_audio_byte_identical():
    session = synth.render_session(0, 0, minutes=0.1, seed=3, realism=VoiceRealism.off())
    assert hashlib.sha256(session.audio.tobytes()).hexdigest() == TODAY_AUDIO_SHA
    assert VoiceRealism().is_off and not VoiceRealism().channel
    assert VoiceRealism.full().channel and all(getattr(VoiceRealism.full(), k) for k in channel.EFFECTS)


def test_bad_knobs_are_refused():
    with pytest.raises(ValueError, match="snr_db must be a finite"):
        VoiceRealism(snr_db=(30.0, 10.0))
    with pytest.raises(ValueError, match="eq_db must be between"):
        VoiceRealism(eq_db=-1.0)


# --------------------------------------------------------------------------- each effect does what it says


def test_noise_is_at_the_drawn_snr_and_colour():
    realism = VoiceRealism(noise=True)
    speech = espeak.render("The dog waited by the gate for a long time.", "en-us+m1", sr=SR)
    out = channel.apply_channel(speech, 0, 0, seed=5, realism=realism)
    drawn = channel.recording_conditions(5, 0, 0, realism)
    noise = out.astype(np.float64) - speech
    reference = channel.active_rms(channel._neutral_speech(0, SR))  # the level the SNR refers to
    measured = 20 * math.log10(reference / np.sqrt((noise ** 2).mean()))
    assert abs(measured - drawn.snr_db) < 1.0
    # colour: the log-log slope of the noise spectrum is -beta
    for beta in (0.0, 1.0, 2.0):
        f, p = welch(channel.coloured_noise(8 * SR, beta, np.random.default_rng(1)), fs=SR, nperseg=4096)
        band = (f > 100) & (f < 6000)
        slope = np.polyfit(np.log10(f[band]), np.log10(p[band]), 1)[0]
        assert abs(slope + beta) < 0.15


@pytest.mark.parametrize("rt60", [0.25, 0.8])
def test_reverb_tail_decays_with_the_drawn_rt60(rt60):
    ir = channel.room_impulse_response(rt60, 6.0, np.random.default_rng(2))
    tail = ir[int(0.003 * SR):]
    assert abs(10 * math.log10(1.0 / (tail ** 2).sum()) - 6.0) < 1e-6  # direct-to-reverberant ratio
    edc = 10 * np.log10(np.cumsum((tail ** 2)[::-1])[::-1] / (tail ** 2).sum())  # Schroeder backward integral
    t = np.arange(tail.size) / SR
    fit = (edc < -5) & (edc > -35)
    slope = np.polyfit(t[fit], edc[fit], 1)[0]  # dB/s
    assert abs(-60.0 / slope - rt60) < 0.1 * rt60
    # and through the chain: an impulse comes out as the direct path plus that tail, level-corrected
    x = np.zeros(SR, dtype=np.float32)
    x[100] = 0.5
    y = channel._room(x, _conditions(rt60_s=rt60), VoiceRealism(reverb=True), np.random.default_rng(2), SR)
    assert y[100] == pytest.approx(0.5) and np.allclose(y[100 + int(0.003 * SR):100 + ir.size], 0.5 * tail, atol=1e-6)


def test_microphone_eq_has_the_drawn_shelves_and_peak():
    def gain_db(conditions: RecordingConditions, hz: float) -> float:
        t = np.arange(2 * SR) / SR
        x = np.sin(2 * math.pi * hz * t)
        y = lfilter(*_sos_ba(channel.microphone_sos(conditions)), x)
        return 20 * math.log10(np.sqrt((y[SR:] ** 2).mean() / (x[SR:] ** 2).mean()))

    shelves = _conditions(low_hz=200.0, low_db=5.0, high_hz=3000.0, high_db=-4.0)
    assert gain_db(shelves, 20.0) == pytest.approx(5.0, abs=0.3)
    assert gain_db(shelves, 7800.0) == pytest.approx(-4.0, abs=0.3)
    assert gain_db(shelves, 200.0) == pytest.approx(2.5, abs=0.5)  # a shelf is half-way at its corner
    peak = _conditions(peak_hz=1200.0, peak_db=3.5, peak_q=1.5)
    assert gain_db(peak, 1200.0) == pytest.approx(3.5, abs=0.1)
    assert abs(gain_db(peak, 100.0)) < 0.2 and abs(gain_db(peak, 7000.0)) < 0.3


def _sos_ba(sos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    b, a = np.array([1.0]), np.array([1.0])
    for section in sos:
        b, a = np.convolve(b, section[:3]), np.convolve(a, section[3:])
    return b, a


def test_jitter_and_shimmer_match_the_drawn_values():
    f0 = 120.0
    x, times = _pulses(f0, 6.0)
    at, height = _pulse_peaks(x, times, f0)
    clean_jitter = np.abs(np.diff(np.diff(at))).mean() / np.diff(at).mean()
    assert clean_jitter < 1e-3
    y = channel.perturb_periods(x, 0.015, 0.04, 1 / f0, np.random.default_rng(3))
    at, height = _pulse_peaks(y, times, f0)
    periods = np.diff(at)
    jitter = np.abs(np.diff(periods)).mean() / periods.mean()
    shimmer = np.abs(np.diff(height)).mean() / height.mean()
    assert jitter == pytest.approx(0.015, rel=0.15)
    assert shimmer == pytest.approx(0.04, rel=0.15)
    assert abs(periods.mean() - SR / f0) < 0.05  # the pitch stays


def test_vocal_tract_moves_the_formant_and_keeps_the_pitch():
    f0, formant = 100.0, 1000.0
    x, _ = _pulses(f0, 2.0, width_s=0.0001)
    r = math.exp(-math.pi * 80 / SR)  # a resonance at 1 kHz, 80 Hz bandwidth
    voiced = lfilter([1.0], [1.0, -2 * r * math.cos(2 * math.pi * formant / SR), r * r], x)

    def strongest_harmonic_and_f0(y: np.ndarray) -> tuple[float, float]:
        spectrum = np.abs(np.fft.rfft(y[SR // 2: SR // 2 + SR] * np.hanning(SR)))  # 1 Hz bins
        harmonics = np.arange(1, 40) * f0
        strongest = harmonics[np.argmax(spectrum[harmonics.astype(int)])]
        lag = np.correlate(y[:SR], y[:SR], "full")[SR - 1 + 80: SR - 1 + 250]
        return float(strongest), SR / (80 + int(np.argmax(lag)))

    assert strongest_harmonic_and_f0(voiced) == (formant, pytest.approx(f0, abs=1))
    for factor in (0.85, 1.2):
        peak, pitch = strongest_harmonic_and_f0(channel.shift_formants(voiced.astype(np.float32), factor))
        assert abs(peak - factor * formant) <= f0 and pitch == pytest.approx(f0, abs=1)


def test_breath_noise_follows_the_voice_at_its_level():
    x, _ = _pulses(150.0, 2.0, width_s=0.0003)
    x[SR:] = 0.0  # a pause: no breath there
    y = channel.add_breath(x, -20.0, np.random.default_rng(4))
    breath = y.astype(np.float64) - x
    voiced = lfilter(*_sos_ba(channel.butter(4, 1000, "low", fs=SR, output="sos")), x)
    level = 20 * math.log10(np.sqrt((breath[2000:SR - 2000] ** 2).mean() / (voiced[2000:SR - 2000] ** 2).mean()))
    assert level == pytest.approx(-20.0, abs=1.0)
    assert np.sqrt((breath[SR + 2000:] ** 2).mean()) < 1e-3 * np.sqrt((breath[:SR] ** 2).mean())
    f, p = welch(breath[:SR], fs=SR, nperseg=1024)
    assert p[(f > 2000) & (f < 5000)].mean() > 30 * p[f < 500].mean()  # aspiration is high-frequency


# --------------------------------------------------------------------------- no label leak


def test_the_channel_is_the_same_whatever_the_session_says_or_feels():
    """Two different signals (other words, other prosody) get the same filters, warp and noise."""
    a = espeak.render("We shared a pot of tea.", "en-us+m1", espeak.Prosody(pitch=70, volume=80), sr=SR)
    b = espeak.render("A cold wind came down.", "en-us+m1", espeak.Prosody(pitch=30, volume=50), sr=SR)
    n = max(a.size, b.size)
    a, b = np.pad(a, (0, n - a.size)), np.pad(b, (0, n - b.size))
    linear = VoiceRealism(jitter_shimmer=True, microphone=True, reverb=True, noise=True)
    difference = channel.apply_channel(a, 0, 0, seed=9, realism=linear) - \
        channel.apply_channel(b, 0, 0, seed=9, realism=linear)
    without_noise = VoiceRealism(jitter_shimmer=True, microphone=True, reverb=True)
    assert np.allclose(difference, channel.apply_channel(a - b, 0, 0, seed=9, realism=without_noise), atol=1e-5)
    # the draws come from the seeds alone, and another session draws others
    assert channel.recording_conditions(9, 0, 0) == channel.recording_conditions(9, 0, 0)
    assert channel.recording_conditions(9, 0, 0) != channel.recording_conditions(9, 0, 1)
    qualities = synth.voices.voice_qualities()
    assert len(qualities) == len(synth.speaker_catalogue()) and len({q.vtl for q in qualities}) == len(qualities)


# --------------------------------------------------------------------------- held-out voices and sentences


def test_held_out_voices_and_sentences_are_disjoint_across_splits(tmp_path):
    splits = sentence_splits(0)
    assert sum(map(len, splits.values())) == len(synth.sentences())
    assert not (set(splits["train"]) & set(splits["dev"]) or set(splits["train"]) & set(splits["test"])
                or set(splits["dev"]) & set(splits["test"]))
    realism = VoiceRealism(held_out_voices=True, held_out_sentences=True)
    root = synth.write_corpus(tmp_path / "c", speakers=6, minutes=0.05, seed=0, realism=realism, progress=False)
    metadata = pd.read_csv(root / "metadata.csv")
    base = metadata.assign(base=metadata["voice"].str.split("+").str[0])
    voices = {split: set(group["base"]) for split, group in base.groupby("split")}
    assert set(voices) == {"train", "dev", "test"}
    assert all(voices[s] <= set(HELD_OUT_VOICES[s]) for s in voices)
    assert not (voices["train"] & (voices["dev"] | voices["test"]))
    for row in metadata.itertuples(index=False):
        read = set(pd.read_csv(root / "units" / f"{row.recording}.csv")["sentence"])
        assert read and read <= set(splits[row.split])
    # the realism check reads the corpus; a broken recording is named and left out, the rest go on
    (root / "audio" / f"{metadata['recording'][0]}.wav").write_bytes(b"not a wav")
    features = corpus_functionals(root)
    assert features.attrs["failed"][0].startswith(f"{metadata['recording'][0]}: ")
    assert set(features["recording"]) == set(metadata["recording"][1:])
    assert features["F0semitoneFrom27.5Hz_sma3nz_amean"].gt(0).any()
    whole = corpus_functionals(root, segment_s=60.0, recordings=metadata["recording"][1:2])
    assert len(whole) == 0  # no 60-s segment in a 3-s recording


# --------------------------------------------------------------------------- the realism check


def test_realism_check_lists_a_feature_constant_within_a_speaker_and_nothing_otherwise():
    rng = np.random.default_rng(0)
    speakers = np.repeat(["a", "b", "c", "d"], 30)
    offset = np.repeat([0.0, 3.0, -2.0, 5.0], 30)
    units = pd.DataFrame({
        "speaker": speakers,
        "varied": offset + rng.standard_normal(speakers.size),
        "flat_in_b": np.where(speakers == "b", 7.0, offset + rng.standard_normal(speakers.size)),
        "constant": np.full(speakers.size, 2.5),
        "no_speaker_variety": np.tile(rng.standard_normal(30), 4),  # every speaker the same spread
    })
    table, markdown = realism_check(units, title="constructed")
    assert sorted(degenerate_features(table)) == ["constant", "flat_in_b"]
    row = table.set_index("feature")
    assert row.loc["flat_in_b", "flat_speakers"] == 1 and row.loc["constant", "flat_speakers"] == 4
    assert row.loc["no_speaker_variety", "uniform"] and not row.loc["varied", "uniform"]
    q1, q3 = np.percentile(units["varied"], [25, 75])
    assert row.loc["varied", "iqr"] == pytest.approx(q3 - q1)
    assert "`flat_in_b`" in markdown and "degeneracy, not realism" in markdown
    assert degenerate_features(realism_table(units[["speaker", "varied", "no_speaker_variety"]])) == []
