"""features/smile.py: the windowed level against direct computations from the LLDs, the frame-mode include
in the cache folder, frame ends, errors, and the spec's to_dict/from_dict pair."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import opensmile
import pytest
from fixtures_bad import voiced

from emotools import features
from emotools.errors import EmotoolsError
from emotools.features import (
    RATE_HZ,
    SAMPLE_RATE,
    FeatureError,
    FeatureSet,
    FeatureSpec,
    extract_signal,
    frame_mode_config,
    smile_for,
)

SR = SAMPLE_RATE


@pytest.fixture(scope="module")
def signal() -> np.ndarray:
    # Loudness that moves (a slow tremolo) so window statistics differ from window to window.
    x = voiced(5.0, seed=3)
    return (x * (0.55 + 0.45 * np.sin(2 * np.pi * 0.7 * np.arange(x.size) / SR))).astype(np.float32)


@pytest.mark.parametrize("window, hop", [(1.0, 0.1), (2.0, 0.3)])
def test_windowed_functionals_are_statistics_of_the_lld_frames_in_each_window(signal, window, hop) -> None:
    # Independent of how the windows are computed: numpy over the LLD level's own frames that start in
    # [start, end). An opensmile upgrade that changes the frame mode or its window edges fails here.
    lld = extract_signal(signal, SR, FeatureSpec(level="lld"))
    frames = extract_signal(signal, SR, FeatureSpec(level="windowed", window=window, hop=hop))
    assert len(frames) >= 10
    expected = {name: [] for name in ("amean", "stddevNorm", "percentile20.0", "percentile50.0", "percentile80.0")}
    for start, end in zip(frames["start"], frames["end"]):
        inside = lld["Loudness_sma3"][(lld["start"] >= start - 1e-9) & (lld["start"] < end - 1e-9)].to_numpy(float)
        assert inside.size == round(window / 0.01)
        expected["amean"].append(inside.mean())
        expected["stddevNorm"].append(inside.std() / inside.mean())
        for q in (20, 50, 80):
            expected[f"percentile{q}.0"].append(np.percentile(inside, q))
    for name, values in expected.items():
        np.testing.assert_allclose(frames[f"loudness_sma3_{name}"], values, rtol=1e-5, atol=1e-6, err_msg=name)
    assert np.ptp(expected["amean"]) > 0.1 * np.mean(expected["amean"])  # the windows really differ


def test_windowed_level_is_the_public_functionals_extractor_with_one_option() -> None:
    spec = FeatureSpec(level="windowed", window=1.5, hop=0.2)
    smile = smile_for(spec)
    assert isinstance(smile, opensmile.Smile)
    assert (smile.feature_set, smile.feature_level) == (opensmile.FeatureSet.eGeMAPSv02,
                                                         opensmile.FeatureLevel.Functionals)
    assert smile.options == {"frameModeFunctionalsConf": str(frame_mode_config(1.5, 0.2))}
    assert smile_for(spec) is smile  # built once per process and spec
    assert smile_for(FeatureSpec(level="functionals")).options == {}


def test_frame_mode_include_lives_in_the_cache_folder_and_is_rewritten_when_damaged(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("EMOTOOLS_CACHE_DIR", str(tmp_path / "cache"))
    path = frame_mode_config(1.0, 0.1)
    assert path.parent == tmp_path / "cache" / "opensmile"
    text = path.read_text()
    assert "frameMode = fixed\nframeSize = 1.000000\nframeStep = 0.100000\n" in text
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind
    path.write_text("frameMode = full\n")
    spec = FeatureSpec(level="windowed", window=1.0, hop=0.1)
    assert len(extract_signal(voiced(2.0), SR, spec)) == 10  # the damaged include was rewritten first
    assert path.read_text() == text
    path.unlink()
    assert len(extract_signal(voiced(2.0), SR, spec)) == 10  # and a deleted one written again
    assert path.read_text() == text


@pytest.mark.parametrize("feature_set, frame_s", [(FeatureSet.eGeMAPSv02, 0.02), (FeatureSet.ComParE_2016, 0.06)])
def test_lld_frames_end_where_opensmile_frames_end(signal, feature_set, frame_s) -> None:
    # opensmile's process_signal stretches the last frame to the signal's end; ours keep openSMILE's length.
    for seconds in (5.0, 0.06):  # 0.06 s: two frames, the last one stretched to 0.05 s by opensmile
        frames = extract_signal(signal[: int(seconds * SR)], SR, FeatureSpec(feature_set, "lld"))
        assert len(frames) >= 2 and frames["start"].is_monotonic_increasing
        np.testing.assert_allclose(frames["end"] - frames["start"], frame_s, atol=1e-9)


def test_too_short_signals_raise_one_error_and_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # opensmile's own "Segment too short" warning must not leak
        with pytest.raises(FeatureError, match=r"^short\.wav: too short for the 2 s window: 1\.500 s"):
            extract_signal(voiced(1.5), SR, FeatureSpec(window=2.0), path=Path("short.wav"))
        with pytest.raises(FeatureError, match="too short for one openSMILE frame"):
            extract_signal(voiced(0.01), SR, FeatureSpec(level="functionals"))


def test_an_opensmile_failure_is_a_feature_error() -> None:
    with pytest.raises(FeatureError, match=r"^<signal>: openSMILE failed"):
        extract_signal(voiced(1.0), 1, FeatureSpec(level="lld"))


def test_feature_error_is_an_emotools_error_that_keeps_its_path() -> None:
    error = FeatureError(Path("a") / "b.wav", "no frame")
    assert isinstance(error, EmotoolsError) and not isinstance(error, ValueError)
    assert (error.path, error.reason, str(error)) == ("a/b.wav", "no frame", "a/b.wav: no frame")
    copy = pickle.loads(pickle.dumps(error))  # crosses worker processes intact
    assert type(copy) is FeatureError and (copy.path, copy.reason) == (error.path, error.reason)


@pytest.mark.parametrize("spec", [FeatureSpec(), FeatureSpec("ComParE_2016", "lld"),
                                  FeatureSpec("GeMAPSv01b", "windowed", window=3.0, hop=0.5)])
def test_spec_round_trips_through_to_dict(spec) -> None:
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
    assert FeatureSpec.from_dict({"level": "lld"}) == FeatureSpec(level="lld")
    with pytest.raises(ValueError, match="unknown feature spec field.*'rate'"):
        FeatureSpec.from_dict({**spec.to_dict(), "rate": 10})
    with pytest.raises(ValueError, match="unknown level 'frames'"):
        FeatureSpec.from_dict({"level": "frames"})


def test_default_frame_rate_is_the_default_hops() -> None:
    assert RATE_HZ == FeatureSpec().rate_hz == 10.0 and features.DEFAULT_HOP == FeatureSpec().hop
    assert features.SAMPLE_RATE == 16000
