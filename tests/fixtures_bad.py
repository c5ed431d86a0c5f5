"""Builders for the reliability tests: analytic speech-like audio at any rate, corpora with every bad input.

:func:`voiced` evaluates one continuous-time signal (a wandering F0 with
harmonics below 3.4 kHz, slow loudness changes and short pauses) at any
sample rate, so the same "recording" rendered at 8, 16, 44.1 or 96 kHz is
the same sound, and a resampled file can be compared with the 16 kHz
rendering as an independent reference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from emotools.audio import SAMPLE_RATE

SR = SAMPLE_RATE
MAX_HARMONIC_HZ = 3400.0  # below 8 kHz's Nyquist: every rate holds the same content
_PEAK_BOUND = 3.5  # above the largest peak of the unscaled sum (1.4 to 3.2 over 300 seeds)


def voiced(seconds: float, sr: int = SR, *, seed: int = 0, amplitude: float = 0.4) -> np.ndarray:
    """``round(seconds * sr)`` samples of a speech-like signal defined in continuous time.

    The scale is a constant (not the peak of these samples), so every rate
    renders the same waveform; peaks stay below ``amplitude``.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    f0_mean = rng.uniform(110, 200)
    rates = rng.uniform(0.5, 3.0, 3)  # Hz of the F0 wander
    depths = rng.uniform(5, 25, 3)  # Hz
    phases = rng.uniform(0, 2 * np.pi, 3)
    wander = list(zip(depths, rates, phases))
    f0 = f0_mean + sum(d * np.sin(2 * np.pi * r * t + p) for d, r, p in wander)
    # phase = 2 pi * integral of f0, in closed form (no dependence on the sampling grid)
    cycles = f0_mean * t - sum(d / (2 * np.pi * r) * np.cos(2 * np.pi * r * t + p) for d, r, p in wander)
    phase = 2 * np.pi * cycles
    formant = rng.uniform(500, 900)
    x = np.zeros_like(t)
    for k in range(1, int(MAX_HARMONIC_HZ // 100) + 1):
        fk = k * f0
        gain = np.exp(-0.5 * ((fk - formant) / 300) ** 2) + 0.3 * np.exp(-0.5 * ((fk - 2.5 * formant) / 400) ** 2)
        x += np.where(fk < MAX_HARMONIC_HZ, gain / np.sqrt(k), 0.0) * np.sin(k * phase)
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * t + rng.uniform(0, 2 * np.pi))
    gate = 0.5 * (1 + np.tanh(8 * np.sin(2 * np.pi * rng.uniform(0.3, 0.7) * t + rng.uniform(0, 2 * np.pi)) + 4))
    x *= envelope * gate
    return (amplitude * x / _PEAK_BOUND).astype(np.float32)


def pcm16(signal: np.ndarray) -> np.ndarray:
    """``signal`` on the 16-bit grid as int16 (written as is, read back as ``pcm / 32768`` exactly)."""
    return np.clip(np.round(np.asarray(signal, dtype=np.float64) * 32768), -32768, 32767).astype(np.int16)


def labels(seconds: float, *, rate: float = 10.0, seed: int = 0) -> pd.DataFrame:
    """A valid annotation table ``time, arousal, valence`` covering ``seconds``."""
    rng = np.random.default_rng(seed)
    time = np.round(np.arange(int(round(seconds * rate))) / rate, 6)
    return pd.DataFrame({
        "time": time,
        "arousal": np.sin(2 * np.pi * 0.3 * time + rng.uniform(0, 6)),
        "valence": np.cos(2 * np.pi * 0.2 * time + rng.uniform(0, 6)),
    })


def add_recording(root: Path, name: str, audio: np.ndarray | bytes | None, *, sr: int = SR,
                  suffix: str = ".wav", annotation: pd.DataFrame | str | None = None,
                  speaker: str | None = None, subtype: str | None = "PCM_16") -> Path:
    """Add one recording to an annotated corpus (``audio/``, ``annotations/``, ``metadata.csv``).

    ``audio``: samples (written with soundfile), raw bytes (written as they are)
    or None (no audio file). ``annotation``: a table, raw CSV text, or None (no file).
    Returns the audio path.
    """
    path = root / "audio" / f"{name}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    if isinstance(audio, bytes):
        path.write_bytes(audio)
    elif audio is not None:
        sf.write(path, audio, sr, subtype=subtype)
    if isinstance(annotation, pd.DataFrame):
        annotation.to_csv(root / "annotations" / f"{name}.csv", index=False)
    elif isinstance(annotation, str):
        (root / "annotations" / f"{name}.csv").write_text(annotation)
    meta = root / "metadata.csv"
    row = pd.DataFrame({"recording": [name], "speaker": [speaker or name], "split": [""]})
    if meta.is_file():
        row = pd.concat([pd.read_csv(meta, dtype=str, keep_default_na=False), row], ignore_index=True)
    row.to_csv(meta, index=False)
    return path


def wav_bytes(signal: np.ndarray, sr: int = SR) -> bytes:
    """A 16-bit PCM mono WAV file's bytes (44-byte canonical header)."""
    import io

    buffer = io.BytesIO()
    sf.write(buffer, signal, sr, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def emotools_env(home: Path) -> dict[str, str]:
    """This process's environment with every EMOTOOLS_*_DIR moved under ``home``."""
    import os

    env = dict(os.environ)
    for name in ("data", "results", "figures", "cache"):
        env[f"EMOTOOLS_{name.upper()}_DIR"] = str(home / name)
    env.setdefault("MPLBACKEND", "Agg")
    return env


def run_emotools(args: list[str], home: Path, *, timeout: float = 120):
    """``python -m emotools ARGS`` in a subprocess (cwd and output folders under ``home``)."""
    import subprocess
    import sys

    home.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, "-m", "emotools", *map(str, args)], capture_output=True, text=True,
                          cwd=home, env=emotools_env(home), timeout=timeout)


def training_records(n: int, *, frames: int = 240, features: int = 10, seed: int = 0, split: str = "train"):
    """Labelled :class:`~emotools.sequences.SequenceRecord` s at 10 Hz whose targets follow the features
    through a smoothed nonlinear map (learnable, so the loss moves), identical in every process."""
    from emotools.sequences import SequenceRecord

    rng = np.random.default_rng(seed)
    weights = np.random.default_rng(1234).standard_normal((features, 2)) / np.sqrt(features)
    kernel = np.ones(9) / 9
    records = []
    for i in range(n):
        x = rng.standard_normal((frames, features))
        drive = np.stack([np.convolve(c, kernel, mode="same") for c in (x @ weights).T], axis=1)
        y = np.tanh(2 * drive)
        records.append(SequenceRecord(id=f"{split}{i}", x=x, y=y, time=np.arange(frames) / 10.0, rate_hz=10.0,
                                      speaker=f"{split}-s{i}", split=split))
    return records


def streamed_wav_bytes(pcm: np.ndarray, sr: int = SR, *, data_size: int = 0, list_chunk: bool = False) -> bytes:
    """A 16-bit PCM WAV as a writer that cannot seek back leaves it: RIFF and ``data`` sizes unknown.

    Built by hand (not by soundfile): ``data_size`` is what the header states
    (0 or 0xFFFFFFFF), the samples ``pcm`` (int16, ``(frames,)`` or
    ``(frames, channels)``) follow to the end of the file. ``list_chunk`` puts
    a ``LIST`` chunk between ``fmt `` and ``data``, as many recorders do.
    """
    import struct

    samples = np.asarray(pcm, dtype="<i2")
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    fmt = struct.pack("<HHIIHH", 1, channels, sr, sr * 2 * channels, 2 * channels, 16)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if list_chunk:
        info = b"INFOISFT" + struct.pack("<I", 8) + b"streamer"
        chunks += b"LIST" + struct.pack("<I", len(info)) + info
    riff_size = 0 if data_size == 0 else 0xFFFFFFFF
    return (b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + chunks + b"data" + struct.pack("<I", data_size)
            + samples.tobytes())


def opus_bytes(signal: np.ndarray, sr: int) -> bytes:
    """An Ogg Opus file encoded by FFmpeg's libopus (through PyAV), not by libsndfile: an outside encoder."""
    import io

    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=sr)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.asarray(signal, np.float32)[None, :], format="flt", layout="mono")
        frame.sample_rate, frame.pts = sr, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return buffer.getvalue()
