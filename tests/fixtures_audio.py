"""Builders of tiny corpora laid out exactly like the real ones (used by test_audio / test_corpora).

Every utterance is a short tone with its own frequency and length, so tests
can tell utterances apart in rendered audio and check durations exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from emotools.audio import SAMPLE_RATE, write_audio

SR = SAMPLE_RATE


def tone(seconds: float, *, sr: int = SR, freq: float = 220.0, channels: int = 1, amplitude: float = 0.3) -> np.ndarray:
    """A sine of ``round(seconds * sr)`` samples; channels differ in phase."""
    t = np.arange(int(round(seconds * sr))) / sr
    columns = [amplitude * np.sin(2 * np.pi * freq * t + k * np.pi / 3) for k in range(channels)]
    signal = np.stack(columns, axis=1) if channels > 1 else columns[0]
    return signal.astype(np.float32)


def utterance_seconds(index: int) -> float:
    """Length of the index-th utterance of a folder: 0.20, 0.25, 0.30, ... s (exact at 16 kHz)."""
    return 0.2 + 0.05 * index


def make_librispeech(root: Path, layout: dict[str, dict[str, dict[str, int]]]) -> Path:
    """``layout``: subset -> speaker -> chapter -> number of utterances. Returns ``root``."""
    for subset, speakers in layout.items():
        for speaker, chapters in speakers.items():
            for chapter, count in chapters.items():
                folder = root / subset / speaker / chapter
                lines = []
                for i in range(count):
                    uid = f"{speaker}-{chapter}-{i:04d}"
                    write_audio(folder / f"{uid}.flac", tone(utterance_seconds(i), freq=200 + 37 * i), SR)
                    lines.append(f"{uid} WORDS OF {speaker} CHAPTER {chapter} NUMBER {i}")
                (folder / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    return root


def make_voxceleb(root: Path, version: int, layout: dict[str, dict[str, int]], *, prefix: str = "") -> Path:
    """``layout``: speaker id -> video -> number of segments; VoxCeleb2 files are AAC ``.m4a``."""
    folder, suffix = {1: ("wav", ".wav"), 2: ("aac", ".m4a")}[version]
    base = root / prefix / folder if prefix else root / folder
    for speaker, videos in layout.items():
        for video, count in videos.items():
            for i in range(count):
                write_audio(base / speaker / video / f"{i + 1:05d}{suffix}",
                            tone(utterance_seconds(i), freq=300 + 50 * i), SR)
    return root


def annotation_frame(seconds: float, *, rate: float = 10.0, raters: int = 2, seed: int = 0) -> pd.DataFrame:
    """A valid annotation table: gold, per-rater traces and a latent extra column."""
    rng = np.random.default_rng(seed)
    time = np.arange(int(round(seconds * rate))) / rate
    latent_a = np.sin(2 * np.pi * 0.3 * time)
    latent_v = np.cos(2 * np.pi * 0.2 * time)
    frame = {"time": time}
    rater_a = [latent_a + 0.1 * rng.standard_normal(time.size) for _ in range(raters)]
    rater_v = [latent_v + 0.1 * rng.standard_normal(time.size) for _ in range(raters)]
    frame["arousal"] = np.mean(rater_a, axis=0)
    frame["valence"] = np.mean(rater_v, axis=0)
    for k in range(raters):
        frame[f"arousal_r{k + 1}"] = rater_a[k]
        frame[f"valence_r{k + 1}"] = rater_v[k]
    frame["arousal_latent"] = latent_a
    frame["valence_latent"] = latent_v
    return pd.DataFrame(frame)


def make_annotated(root: Path, recordings: list[tuple[str, str, str]], *, seconds: float = 2.0,
                   rate: float = 10.0) -> Path:
    """``recordings``: (recording, speaker, split or ""). Writes audio, annotations, metadata.csv."""
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for i, (name, _, _) in enumerate(recordings):
        write_audio(root / "audio" / f"{name}.wav", tone(seconds, freq=150 + 20 * i), SR)
        annotation_frame(seconds, rate=rate, seed=i).to_csv(root / "annotations" / f"{name}.csv", index=False)
    pd.DataFrame(recordings, columns=["recording", "speaker", "split"]).to_csv(root / "metadata.csv", index=False)
    return root
