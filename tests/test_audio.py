"""emotools.audio: decoding real files of every format, resampling, the error taxonomy, writing."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fixtures_audio import SR, tone
from fixtures_bad import opus_bytes, pcm16, streamed_wav_bytes, voiced

from emotools.audio import (
    AudioEmptyError,
    AudioError,
    AudioFormatError,
    AudioInfo,
    AudioInvalidSamplesError,
    AudioMissingError,
    AudioTooShortError,
    AudioWriteError,
    SilentAudioWarning,
    audio_info,
    read_audio,
    write_audio,
)


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    noise = reference - estimate
    return float(10 * np.log10(np.sum(reference**2) / np.sum(noise**2)))


# --------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_lossless_round_trip_is_exact_to_16_bit(tmp_path: Path, suffix: str) -> None:
    signal = tone(0.5, freq=440)
    path = write_audio(tmp_path / f"a{suffix}", signal, SR)
    decoded = read_audio(path)
    assert decoded.dtype == np.float32 and decoded.ndim == 1
    assert decoded.shape == signal.shape
    # independent reference: soundfile's own int16 decoding of the same file
    reference = sf.read(path, dtype="int16")[0].astype(np.float64) / 32768
    np.testing.assert_allclose(decoded, reference, atol=1e-7)
    assert np.max(np.abs(decoded - signal)) <= 1 / 32768 + 1e-7


@pytest.mark.parametrize("suffix", [".ogg", ".opus", ".m4a"])
def test_lossy_round_trip_keeps_length_and_waveform(tmp_path: Path, suffix: str) -> None:
    signal = tone(1.0, freq=440)
    path = write_audio(tmp_path / f"a{suffix}", signal, SR)
    decoded = read_audio(path)
    assert decoded.dtype == np.float32 and decoded.shape == signal.shape
    # no delay (AAC priming is removed) and a faithful waveform
    assert snr_db(signal[1000:-1000], decoded[1000:-1000]) > 15


def test_m4a_is_decoded_by_pyav_and_matches_ffmpeg_stream(tmp_path: Path) -> None:
    import av

    signal = tone(0.75, freq=330)
    path = write_audio(tmp_path / "v.m4a", signal, SR)
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "aac"
        direct = np.concatenate([f.to_ndarray()[0] for f in container.decode(stream)])
    decoded = read_audio(path)
    # the same samples as FFmpeg's decoder, trimmed to the container's length
    np.testing.assert_array_equal(decoded, direct[: decoded.size])
    assert decoded.size == signal.size < direct.size


@pytest.mark.parametrize("sr", [48000, 16000])
def test_ogg_opus_from_another_encoder_is_decoded_in_time(tmp_path: Path, sr: int) -> None:
    """``.opus`` made by FFmpeg's libopus: its pre-skip is removed, so the waveform lines up sample for sample."""
    signal = voiced(2.0, sr, seed=5)
    path = tmp_path / "speech.opus"
    path.write_bytes(opus_bytes(signal, sr))
    assert audio_info(path) == AudioInfo(duration=2.0, sample_rate=sr, channels=1, frames=signal.size)
    decoded = read_audio(path, sr=sr)
    assert decoded.shape == signal.shape
    assert snr_db(signal, decoded) > 20
    skip = round(0.0065 * sr)  # Opus' usual pre-skip (312 samples at 48 kHz): left in, the waveform would lag
    assert snr_db(signal[:-skip], decoded[skip:]) < 5
    # at the default 16 kHz: the same sound as the 16 kHz rendering
    assert snr_db(voiced(2.0, seed=5)[400:-400], read_audio(path)[400:-400]) > 20


def test_cut_opus_is_reported_as_truncated(tmp_path: Path) -> None:
    path = tmp_path / "cut.opus"
    path.write_bytes(opus_bytes(voiced(1.0, 48000, seed=6), 48000)[:-200])
    with pytest.raises(AudioFormatError, match="truncated: the Ogg stream ends without an end-of-stream page"):
        read_audio(path)


@pytest.mark.parametrize(
    ("data_size", "list_chunk", "channels"),
    [(0, False, 1), (0xFFFFFFFF, False, 1), (0, True, 1), (0, False, 2)],
    ids=["size-0", "size-ffffffff", "size-0-after-LIST", "size-0-stereo"],
)
def test_streamed_wav_is_decoded_to_the_end_of_the_file(tmp_path: Path, data_size: int, list_chunk: bool,
                                                        channels: int) -> None:
    """A WAV written to a pipe states no data size; its samples run to the end of the file."""
    pcm = pcm16(voiced(1.5, seed=7))
    if channels == 2:
        pcm = np.stack([pcm, pcm16(voiced(1.5, seed=8))], axis=1)
    path = tmp_path / "streamed.wav"
    path.write_bytes(streamed_wav_bytes(pcm, data_size=data_size, list_chunk=list_chunk))
    assert audio_info(path) == AudioInfo(duration=1.5, sample_rate=SR, channels=channels, frames=24000)
    expected = pcm / 32768 if channels == 1 else (pcm / 32768).mean(axis=1)
    np.testing.assert_allclose(read_audio(path), expected, atol=1e-7)
    # a frame cut in half at the end is left out, not decoded as noise
    path.write_bytes(path.read_bytes()[:-1])
    assert read_audio(path).size == 24000 - 1


def test_streamed_wav_without_samples_is_empty_and_a_cut_wav_still_truncated(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(streamed_wav_bytes(np.zeros(0, np.int16)))
    with pytest.raises(AudioEmptyError, match="no samples"):
        read_audio(empty)
    assert audio_info(empty).frames == 0
    # a data size that is stated (not 0) and larger than the file is still a cut, not a stream
    whole = streamed_wav_bytes(pcm16(voiced(1.0, seed=9)), data_size=32000)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole[: len(whole) - 1000])
    with pytest.raises(AudioFormatError, match="truncated: header declares 32000 data bytes, file holds 31000"):
        read_audio(cut)


@pytest.mark.parametrize("kind", [str, Path], ids=["str", "Path"])
def test_every_function_taking_a_path_accepts_str_and_pathlike(tmp_path: Path, kind: type) -> None:
    signal = tone(0.25)
    written = write_audio(kind(tmp_path / "sub" / "a.flac"), signal, SR)
    assert written == tmp_path / "sub" / "a.flac"
    assert audio_info(kind(written)).frames == signal.size
    np.testing.assert_allclose(read_audio(kind(written)), signal, atol=1 / 32768 + 1e-7)
    with pytest.raises(AudioMissingError) as caught:
        read_audio(kind(tmp_path / "missing.wav"))
    assert caught.value.path == str(tmp_path / "missing.wav")


def test_stereo_is_averaged_to_mono(tmp_path: Path) -> None:
    stereo = tone(0.3, channels=2)
    path = write_audio(tmp_path / "s.wav", stereo, SR, subtype="FLOAT")
    np.testing.assert_allclose(read_audio(path), stereo.mean(axis=1), atol=1e-7)


def test_resampling_matches_the_analytic_signal(tmp_path: Path) -> None:
    # a 1 kHz sine at 44.1 kHz, resampled to 16 kHz, equals the sine sampled at 16 kHz
    n = 44100
    t = np.arange(n) / 44100
    path = write_audio(tmp_path / "r.wav", (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), 44100,
                       subtype="FLOAT")
    decoded = read_audio(path, sr=16000)
    assert decoded.size == int(np.ceil(n * 16000 / 44100))
    expected = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(decoded.size) / 16000)
    np.testing.assert_allclose(decoded[200:-200], expected[200:-200], atol=2e-3)


def test_resampling_removes_content_above_the_new_nyquist(tmp_path: Path) -> None:
    # 12 kHz at 48 kHz would alias to 4 kHz under naive decimation; a proper resampler removes it
    t = np.arange(48000) / 48000
    path = write_audio(tmp_path / "alias.wav", (0.5 * np.sin(2 * np.pi * 12000 * t)).astype(np.float32), 48000,
                       subtype="FLOAT")
    decoded = read_audio(path, sr=16000)
    naive = (0.5 * np.sin(2 * np.pi * 12000 * t))[::3]
    assert np.sqrt(np.mean(naive**2)) > 0.3
    assert np.sqrt(np.mean(decoded[100:-100] ** 2)) < 0.005


def test_upsampling_m4a_at_8k(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "n.m4a", tone(0.5, sr=8000, freq=300), 8000)
    decoded = read_audio(path, sr=16000)
    assert decoded.size == 16000 // 2
    assert snr_db(tone(0.5, freq=300)[800:-800], decoded[800:-800]) > 15


def test_audio_info_reads_headers(tmp_path: Path) -> None:
    wav = write_audio(tmp_path / "a.wav", tone(0.5, sr=22050, channels=2), 22050)
    assert audio_info(wav) == AudioInfo(duration=0.5, sample_rate=22050, channels=2, frames=11025)
    flac = write_audio(tmp_path / "a.flac", tone(0.25), SR)
    assert audio_info(flac) == AudioInfo(duration=0.25, sample_rate=SR, channels=1, frames=4000)
    m4a = write_audio(tmp_path / "a.m4a", tone(0.6, channels=2), SR)
    info = audio_info(m4a)
    assert (info.sample_rate, info.channels, info.frames) == (SR, 2, 9600)
    assert info.duration == pytest.approx(0.6)
    # headers only: samples that read_audio refuses (NaN) do not bother audio_info
    nan = write_audio(tmp_path / "nan.wav", np.zeros(800), SR, subtype="FLOAT")
    data = bytearray(nan.read_bytes())
    data[-4:] = np.array([np.nan], dtype=np.float32).tobytes()
    nan.write_bytes(bytes(data))
    assert audio_info(nan).frames == 800


# --------------------------------------------------------------------------- bad input


def _garbage(path: Path) -> Path:
    path.write_bytes(b"this is a text file, not audio\n" * 20)
    return path


def _truncate(path: Path, fraction: float = 0.6) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


BAD_INPUTS = {
    "missing": (lambda d: d / "nope.wav", AudioMissingError, "does not exist"),
    "empty": (lambda d: (d / "empty.wav").write_bytes(b"") or d / "empty.wav", AudioEmptyError, "0 bytes"),
    "directory": (lambda d: (d / "dir.wav").mkdir() or d / "dir.wav", AudioFormatError, "not a regular file"),
    "text as wav": (lambda d: _garbage(d / "t.wav"), AudioFormatError, "not readable audio"),
    "text as flac": (lambda d: _garbage(d / "t.flac"), AudioFormatError, "not readable audio"),
    "text as m4a": (lambda d: _garbage(d / "t.m4a"), AudioFormatError, "not readable audio"),
    "unknown suffix": (lambda d: _garbage(d / "t.txt"), AudioFormatError, "unsupported suffix"),
    "truncated wav": (lambda d: _truncate(write_audio(d / "c.wav", tone(1.0), SR)), AudioFormatError, "truncated"),
    "truncated flac": (lambda d: _truncate(write_audio(d / "c.flac", tone(1.0), SR)), AudioFormatError, ""),
    "truncated ogg": (lambda d: _truncate(write_audio(d / "c.ogg", tone(1.0), SR), 0.9), AudioFormatError,
                      "truncated"),
    "truncated m4a": (lambda d: _truncate(write_audio(d / "c.m4a", tone(1.0), SR)), AudioFormatError, ""),
    "zero samples": (lambda d: _zero_frames(d / "z.wav"), AudioEmptyError, "no samples"),
    "nan samples": (lambda d: _nan_wav(d / "n.wav"), AudioInvalidSamplesError, "2 NaN or infinite"),
}


def _zero_frames(path: Path) -> Path:
    sf.write(path, np.zeros(0, dtype=np.float32), SR)  # a valid 44-byte header, no data
    return path


def _nan_wav(path: Path) -> Path:
    sf.write(path, np.array([0.1, np.nan, 0.2, np.inf], dtype=np.float32), SR, subtype="FLOAT")
    return path


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_raises_a_clear_audio_error(tmp_path: Path, case: str) -> None:
    make, error_type, words = BAD_INPUTS[case]
    path = make(tmp_path)
    with pytest.raises(error_type) as caught:
        read_audio(path)
    error = caught.value
    assert isinstance(error, AudioError)
    assert error.path == str(path)
    assert words in error.reason
    assert str(error) == f"{path}: {error.reason}"
    # survives a trip to a worker process and back
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is error_type and (clone.path, clone.reason) == (error.path, error.reason)


@pytest.mark.parametrize("case", ["missing", "empty", "text as wav", "text as m4a", "unknown suffix"])
def test_audio_info_raises_the_same_errors(tmp_path: Path, case: str) -> None:
    make, error_type, _ = BAD_INPUTS[case]
    path = make(tmp_path)
    with pytest.raises(error_type) as caught:
        audio_info(path)
    assert caught.value.path == str(path)


def test_too_short(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "s.flac", tone(0.2), SR)
    assert read_audio(path, min_duration=0.2).size == 3200
    with pytest.raises(AudioTooShortError, match=r"0\.200 s is shorter than the minimum 0\.5 s"):
        read_audio(path, min_duration=0.5)


def test_silent_audio_is_returned_with_a_warning(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "quiet.wav", np.zeros(1600), SR)
    with pytest.warns(SilentAudioWarning, match="quiet.wav: silent"):
        signal = read_audio(path)
    assert signal.shape == (1600,) and not signal.any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_audio(write_audio(tmp_path / "loud.wav", tone(0.1), SR))  # no warning for speech-like audio


def test_bad_rate_is_refused(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "a.wav", tone(0.1), SR)
    for sr in (0, -16000, 16000.0, True):
        with pytest.raises(ValueError, match="sr must be a positive integer"):
            read_audio(path, sr=sr)


# --------------------------------------------------------------------------- writing


def test_write_audio_is_atomic_and_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "deep" / "er" / "a.m4a", tone(0.3), SR)
    before = path.read_bytes()
    with pytest.raises(AudioWriteError, match="encoder failed"):
        write_audio(path, tone(0.3, sr=12345), 12345)  # a rate AAC cannot encode
    with pytest.raises(ValueError, match="NaN or infinite"):
        write_audio(path, np.array([0.0, np.nan]), SR)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.m4a"]  # no temporary left behind


@pytest.mark.parametrize(
    ("name", "signal", "words"),
    [
        ("a.mp3", np.zeros(10), "cannot write '.mp3'"),
        ("a.wav", np.zeros(0), "empty signal"),
        ("a.wav", np.zeros((2, 2, 2)), "must be \\(samples,\\)"),
    ],
)
def test_write_audio_refuses_bad_requests(tmp_path: Path, name: str, signal: np.ndarray, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        write_audio(tmp_path / name, signal, SR)
    assert not any(tmp_path.iterdir())


def test_write_audio_refuses_an_opus_rate(tmp_path: Path) -> None:
    with pytest.raises(AudioWriteError, match="Opus only supports sample rates"):
        write_audio(tmp_path / "a.opus", tone(0.2, sr=44100), 44100)
    assert not any(tmp_path.iterdir())


def test_write_audio_clips_pcm_and_returns_the_path(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "loud.flac", np.array([1.5, -2.0, 0.5] * 100), SR)
    assert path == tmp_path / "loud.flac"
    decoded = sf.read(path)[0]
    assert decoded.max() <= 1.0 and decoded.min() >= -1.0


def test_m4a_cut_at_a_packet_boundary_is_reported_as_truncated(tmp_path: Path) -> None:
    # moov first ("faststart"), then cut the file where the last packets begin: the
    # demuxer sees a clean end, only the container's length reveals the loss
    import av

    path = tmp_path / "fast.m4a"
    signal = tone(1.0)
    with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("aac", rate=SR)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(signal[None, :], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = SR, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    assert read_audio(path).size == signal.size
    with av.open(str(path)) as container:
        positions = [p.pos for p in container.demux(audio=0) if p.size]
    path.write_bytes(path.read_bytes()[: positions[-3]])
    with pytest.raises(AudioFormatError, match=r"truncated: header declares 16000 frames, decoded \d+"):
        read_audio(path)
