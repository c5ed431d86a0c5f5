"""Built-in samples: tiny LibriSpeech / VoxCeleb1 / VoxCeleb2 corpora in the real layouts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emotools import audio, corpora, samples

SIZE = samples.SampleSize(speakers=2, sessions=2, minutes=0.3)


@pytest.fixture(scope="module")
def sample_roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return samples.write_samples(tmp_path_factory.mktemp("samples"), size=SIZE, progress=False)


def test_layouts_match_the_real_corpora(sample_roots):
    libri = sample_roots["librispeech"]
    flacs = sorted(libri.glob("dev-clean/*/*/*.flac"))
    assert flacs and all(f.name.startswith(f"{f.parent.parent.name}-{f.parent.name}-") for f in flacs)
    for chapter in {f.parent for f in flacs}:
        transcript = chapter / f"{chapter.parent.name}-{chapter.name}.trans.txt"
        lines = transcript.read_text().splitlines()
        assert [line.split(" ", 1)[0] for line in lines] == sorted(f.stem for f in chapter.glob("*.flac"))
        assert all(line.split(" ", 1)[1].replace("'", "").replace(" ", "").isupper() for line in lines)
    wavs = sorted(sample_roots["voxceleb1"].glob("wav/id1*/*/*.wav"))
    m4as = sorted(sample_roots["voxceleb2"].glob("dev/aac/id0*/*/*.m4a"))
    assert wavs and m4as
    assert all(len(f.parent.name) == 11 and len(f.stem) == 5 and f.stem.isdigit() for f in wavs + m4as)
    for path in (flacs[0], wavs[0], m4as[0]):
        info = audio.audio_info(path)
        assert info.sample_rate == 16000 and info.channels == 1 and 2.0 < info.duration < 15.0
    assert audio.read_audio(m4as[0]).size > 16000  # AAC decodes


@pytest.mark.parametrize("corpus", samples.SAMPLE_CORPORA)
def test_samples_scan_cleanly(sample_roots, corpus):
    table = corpora.scan(corpus, sample_roots[corpus], progress=False)
    assert table.attrs["problems"] == []
    assert table["speaker"].nunique() == SIZE.speakers
    assert table["session"].nunique() == SIZE.speakers * SIZE.sessions
    assert table.groupby("session").size().min() >= 2  # sessions can be chained
    assert corpora.leaking_speakers(table) == {}
    if corpus == "librispeech":
        assert table["transcript"].str.len().min() > 10


def test_samples_are_idempotent_and_refuse_other_configurations(sample_roots, tmp_path):
    files = sorted(p for p in sample_roots["voxceleb1"].rglob("*") if p.is_file())
    stamps = [p.stat().st_mtime_ns for p in files]
    again = samples.write_samples(sample_roots["voxceleb1"].parent, corpora=["voxceleb1"], size=SIZE, progress=False)
    assert again["voxceleb1"] == sample_roots["voxceleb1"]
    assert [p.stat().st_mtime_ns for p in files] == stamps
    assert json.loads((sample_roots["voxceleb1"] / ".complete").read_text())["speakers"] == SIZE.speakers
    with pytest.raises(ValueError, match="another configuration"):
        samples.write_samples(sample_roots["voxceleb1"].parent, corpora=["voxceleb1"],
                              size=samples.SampleSize(speakers=3, sessions=2, minutes=0.3), progress=False)
    with pytest.raises(ValueError, match="unknown sample corpus"):
        samples.write_samples(tmp_path, corpora=["timit"], progress=False)


def test_cli_and_default_location(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EMOTOOLS_DATA_DIR", str(tmp_path))  # its own: notebooks render default samples
    assert samples.cli(["--corpus", "voxceleb2", "--speakers", "1", "--sessions", "1", "--minutes", "0.1",
                        "--no-progress"]) == 0
    root = tmp_path / "samples" / "voxceleb2"
    assert f"voxceleb2: {root}" in capsys.readouterr().out
    assert samples.sample_root("voxceleb2") == root and list(root.glob("dev/aac/*/*/*.m4a"))
    assert samples.cli(["--corpus", "voxceleb2", "--speakers", "2", "--no-progress"]) == 1
    assert "another configuration" in capsys.readouterr().err
