"""emotools.corpora: scanners on real-layout fixtures, problem reports, splits, session chaining."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from fixtures_audio import (
    SR,
    annotation_frame,
    make_annotated,
    make_librispeech,
    make_voxceleb,
    tone,
    utterance_seconds,
)

from emotools.audio import audio_info, read_audio, write_audio
from emotools.corpora import (
    COLUMNS,
    CORPORA,
    SPLITS,
    AnnotationError,
    CorpusError,
    assign_speaker_splits,
    chain_sessions,
    join_segments,
    leaking_speakers,
    read_annotation,
    read_split_file,
    scan,
    write_annotation,
    write_sessions,
    write_split_file,
)
from emotools.corpora.splits import split_counts

LIBRI_LAYOUT = {
    "train-clean-100": {"19": {"198": 3, "227": 2}, "26": {"495": 2}, "32": {"21625": 2}},
    "dev-clean": {"84": {"121123": 2}, "174": {"50561": 2}},
    "test-clean": {"1089": {"134686": 2}},
}
VOX_LAYOUT = {"id10001": {"1zcIwhmdeo4": 2, "7w0IBEWc9Qw": 1}, "id10002": {"0_laIeN-Q44": 2}}


def reasons(table: pd.DataFrame) -> dict[str, str]:
    """file name -> reason of every reported problem."""
    return {Path(p["file"]).name: p["reason"] for p in table.attrs["problems"]}


@pytest.fixture(scope="module")
def libri_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_librispeech(tmp_path_factory.mktemp("libri") / "LibriSpeech", LIBRI_LAYOUT)


@pytest.fixture()
def libri_copy(libri_root: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(libri_root, tmp_path / "LibriSpeech"))


@pytest.fixture(scope="module")
def libri(libri_root: Path) -> pd.DataFrame:
    return scan("librispeech", libri_root, progress=False)


# --------------------------------------------------------------------------- registry


def test_registry_and_unknown_key(tmp_path: Path) -> None:
    assert set(CORPORA) == {"librispeech", "voxceleb1", "voxceleb2", "annotated"}
    with pytest.raises(ValueError, match="unknown corpus 'timit'; known: annotated, librispeech, voxceleb1, voxceleb2"):
        scan("timit", tmp_path)


@pytest.mark.parametrize("key", sorted(CORPORA))
def test_missing_or_empty_root_is_a_corpus_error(tmp_path: Path, key: str) -> None:
    with pytest.raises(CorpusError, match="does not exist"):
        scan(key, tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError) as caught:
        scan(key, tmp_path / "empty", progress=False)
    assert caught.value.path == str(tmp_path / "empty")


# --------------------------------------------------------------------------- LibriSpeech


def test_librispeech_table(libri: pd.DataFrame, libri_root: Path) -> None:
    assert list(libri.columns) == [*COLUMNS, "subset", "chapter", "transcript"]
    assert len(libri) == 15 and libri["speaker"].nunique() == 6
    assert libri.attrs["problems"] == []
    row = libri.set_index("utterance").loc["19-198-0002"]
    assert row["file"] == str(libri_root / "train-clean-100" / "19" / "198" / "19-198-0002.flac")
    assert (row["speaker"], row["session"], row["chapter"], row["subset"]) == ("19", "19-198", "198", "train-clean-100")
    assert row["transcript"] == "WORDS OF 19 CHAPTER 198 NUMBER 2"
    assert row["duration"] == pytest.approx(utterance_seconds(2), abs=1e-9)
    assert all(Path(f).is_absolute() and Path(f).is_file() for f in libri["file"])
    assert set(libri["split"]) == set(SPLITS)  # 6 speakers: every split gets one
    assert leaking_speakers(libri) == {}
    # rows in speaker / chapter / utterance order
    assert libri[libri["speaker"] == "19"]["utterance"].tolist() == [
        "19-198-0000", "19-198-0001", "19-198-0002", "19-227-0000", "19-227-0001"]


def test_librispeech_sanity_logging(libri_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="emotools.corpora"):
        table = scan("librispeech", libri_root, progress=False)
    hours = table["duration"].sum() / 3600
    assert f"librispeech: 6 speakers, 15 utterances, {hours:.2f} h (train 4/" in caplog.text


def test_librispeech_subset_folder_and_subset_filter(libri_root: Path) -> None:
    dev = scan("librispeech", libri_root / "dev-clean", progress=False)
    assert sorted(dev["speaker"].unique()) == ["174", "84"] and set(dev["subset"]) == {"dev-clean"}
    only = scan("librispeech", libri_root, subsets=["test-clean", "other"], progress=False)
    assert set(only["speaker"]) == {"1089"}
    assert reasons(only) == {"other": "requested subset not found"}


def test_librispeech_problems_are_reported_and_the_scan_goes_on(libri_copy: Path) -> None:
    train = libri_copy / "train-clean-100"
    chapter = train / "19" / "198"
    # a transcript line without audio, an utterance without a transcript line
    (chapter / "19-198-0001.flac").unlink()
    trans = chapter / "19-198.trans.txt"
    trans.write_text(trans.read_text().replace("19-198-0002 WORDS OF 19 CHAPTER 198 NUMBER 2\n", "")
                     + "garbage line\n")
    (train / "26" / "495" / "26-495.trans.txt").unlink()  # a chapter without transcript file
    (train / "32" / "21625" / "32-21625-0000.flac").write_bytes(b"not flac at all")  # unreadable header
    (train / "32" / "21625" / "32-21625-0001.flac").write_bytes(b"")  # 0 bytes
    shutil.copy(chapter / "19-198-0000.flac", chapter / "19-999-0007.flac")  # name from another chapter
    shutil.copy(chapter / "19-198-0000.flac", train / "19" / "stray.flac")  # wrong depth
    table = scan("librispeech", libri_copy, progress=False)
    found = reasons(table)
    assert found["19-198-0001.flac"] == "transcribed utterance has no audio file"
    assert found["19-198-0002.flac"] == "no line in 19-198.trans.txt; kept without text"
    assert found["19-198.trans.txt"] == "line 3: 'garbage' is not an utterance id of 19-198"
    assert found["26-495.trans.txt"] == "transcript file missing; 2 utterances kept without text"
    assert found["32-21625-0000.flac"] == "unreadable header (Format not recognised.); skipped"
    assert found["32-21625-0001.flac"] == "file is empty (0 bytes); skipped"
    assert found["19-999-0007.flac"] == "name is not 19-198-<utt>.flac for its folder; skipped"
    assert found["stray.flac"].startswith("outside the layout")
    assert len(table.attrs["problems"]) == 8
    # every problem names its file with the full path
    assert all(Path(p["file"]).is_absolute() for p in table.attrs["problems"])
    # the rest is scanned: 15 - 1 deleted - 2 broken
    assert len(table) == 12
    kept = table.set_index("utterance")
    assert kept.loc["19-198-0002", "transcript"] == "" and kept.loc["26-495-0000", "transcript"] == ""
    assert kept.loc["19-198-0000", "transcript"] == "WORDS OF 19 CHAPTER 198 NUMBER 0"
    assert "32" not in set(table["speaker"])


# --------------------------------------------------------------------------- VoxCeleb


def test_voxceleb1_table(tmp_path: Path) -> None:
    root = make_voxceleb(tmp_path / "vox1", 1, VOX_LAYOUT)
    header_only = root / "wav" / "id10003" / "abcdefghijk" / "00001.wav"
    header_only.parent.mkdir(parents=True)
    sf.write(header_only, np.zeros(0, dtype=np.float32), SR)  # valid header, no samples
    table = scan("voxceleb1", root, progress=False)
    assert table.attrs["problems"] == [{"file": str(header_only), "reason": "no samples (empty audio stream); skipped"}]
    assert list(table.columns) == [*COLUMNS, "subset", "video"]
    assert table["utterance"].tolist() == [
        "id10001/1zcIwhmdeo4/00001", "id10001/1zcIwhmdeo4/00002", "id10001/7w0IBEWc9Qw/00001",
        "id10002/0_laIeN-Q44/00001", "id10002/0_laIeN-Q44/00002"]
    assert table["session"].tolist()[:3] == ["id10001/1zcIwhmdeo4"] * 2 + ["id10001/7w0IBEWc9Qw"]
    assert table["file"].iat[0] == str(root / "wav" / "id10001" / "1zcIwhmdeo4" / "00001.wav")
    np.testing.assert_allclose(table["duration"], [0.2, 0.25, 0.2, 0.2, 0.25], atol=1e-9)
    assert leaking_speakers(table) == {}


def test_voxceleb2_m4a_in_every_accepted_layout(tmp_path: Path) -> None:
    root = tmp_path / "vox2"
    make_voxceleb(root, 2, {"id00012": {"21Uxsk56VDQ": 2}})
    make_voxceleb(root, 2, {"id00015": {"0fijmz4vTVU": 1}}, prefix="dev")
    make_voxceleb(root, 2, {"id00017": {"01dfn2spqyE": 2}}, prefix="test")
    (root / "test" / "aac" / "id00017" / "01dfn2spqyE" / "00003.m4a").write_text("garbage")
    (root / "aac" / "id00012" / "00009.m4a").write_bytes(b"")  # wrong depth
    (root / "aac" / "id00012" / "21Uxsk56VDQ" / "00004.wav").write_bytes(b"")  # VoxCeleb1 format in VoxCeleb2
    table = scan("voxceleb2", root, progress=False)
    assert sorted(table["utterance"]) == ["id00012/21Uxsk56VDQ/00001", "id00012/21Uxsk56VDQ/00002",
                                          "id00015/0fijmz4vTVU/00001", "id00017/01dfn2spqyE/00001",
                                          "id00017/01dfn2spqyE/00002"]
    assert dict(zip(table["speaker"], table["subset"])) == {"id00012": "", "id00015": "dev", "id00017": "test"}
    np.testing.assert_allclose(table.sort_values("utterance")["duration"], [0.2, 0.25, 0.2, 0.2, 0.25], atol=1e-6)
    found = reasons(table)
    assert found["00003.m4a"].startswith("unreadable header (") and found["00003.m4a"].endswith("; skipped")
    assert found["00009.m4a"].startswith("outside the layout <root>/[dev/|test/]aac/<id>/<video>/<nnnnn>.m4a")
    assert found["00004.wav"].startswith("outside the layout")
    assert len(found) == 3


# --------------------------------------------------------------------------- annotations


def test_read_annotation_keeps_raters_and_extras(tmp_path: Path) -> None:
    frame = annotation_frame(3.0, rate=25.0)
    path = write_annotation(tmp_path / "a.csv", frame)
    labels = read_annotation(path)
    assert list(labels.columns) == ["time", "arousal", "valence", "arousal_r1", "valence_r1", "arousal_r2",
                                    "valence_r2", "arousal_latent", "valence_latent"]
    assert labels.attrs["rate_hz"] == 25.0  # exact, not 25.000000000000533
    np.testing.assert_allclose(labels[frame.columns], frame, atol=1e-5)


def _bad_annotation(path: Path, edit) -> Path:
    frame = annotation_frame(1.0)
    frame = edit(frame)
    frame.to_csv(path, index=False)
    return path


BAD_ANNOTATIONS = {
    "nan": (lambda f: f.assign(arousal=f["arousal"].where(f.index != 3)),
            "NaN or infinite value in column 'arousal' at line 5 (1 in all)"),
    "rater nan": (lambda f: f.assign(valence_r2=np.nan), "NaN or infinite value in column 'valence_r2' at line 2"),
    "non-monotonic": (lambda f: f.assign(time=f["time"].where(f.index != 4, 0.1)),
                      "time is not strictly increasing at line 6 (0.1 s after 0.3 s)"),
    "missing column": (lambda f: f.drop(columns="valence"), "missing column(s) ['valence']"),
    "wrong columns": (lambda f: f.rename(columns={"time": "t"}), "missing column(s) ['time']"),
    "not a number": (lambda f: f.astype({"valence": object}).assign(valence=["high"] * len(f)),
                     "column 'valence' line 2: 'high' is not a number"),
    "irregular grid": (lambda f: f.assign(time=f["time"] ** 1.5), "time is not on a fixed grid"),
    "one frame": (lambda f: f.iloc[:1], "1 frame(s); at least 2 are needed"),
}


@pytest.mark.parametrize("case", list(BAD_ANNOTATIONS))
def test_read_annotation_rejects_bad_files(tmp_path: Path, case: str) -> None:
    edit, words = BAD_ANNOTATIONS[case]
    path = _bad_annotation(tmp_path / f"{case}.csv", edit)
    with pytest.raises(AnnotationError) as caught:
        read_annotation(path)
    assert caught.value.path == str(path)
    assert words in caught.value.reason
    assert str(caught.value) == f"{path}: {caught.value.reason}"


def test_read_annotation_missing_and_unreadable(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="annotation file does not exist"):
        read_annotation(tmp_path / "none.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(AnnotationError, match="not a readable CSV"):
        read_annotation(empty)


def test_write_annotation_refuses_bad_tables(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="strictly increasing"):
        write_annotation(tmp_path / "x.csv", pd.DataFrame({"time": [0, 0], "arousal": [0, 1], "valence": [1, 0]}))
    assert not any(tmp_path.iterdir())


RECORDINGS = [
    ("P16", "P16", "train"), ("P17", "P17", ""), ("P18", "P18", ""), ("P19", "P19", ""),
    ("P20", "P20", ""), ("P21a", "P21", "test"), ("P21b", "P21", ""), ("P22", "P22", ""),
]


@pytest.fixture(scope="module")
def annotated_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_annotated(tmp_path_factory.mktemp("annotated") / "corpus", RECORDINGS)


def test_annotated_table(annotated_root: Path) -> None:
    table = scan("annotated", annotated_root, progress=False)
    assert list(table.columns) == [*COLUMNS, "annotation", "label_rate"]
    assert len(table) == 8 and table.attrs["problems"] == []
    row = table.set_index("utterance").loc["P21b"]
    assert (row["speaker"], row["session"], row["split"]) == ("P21", "P21b", "test")  # the speaker's given split
    assert row["annotation"] == str(annotated_root / "annotations" / "P21b.csv")
    assert row["label_rate"] == pytest.approx(10.0) and row["duration"] == pytest.approx(2.0)
    assert table.set_index("utterance").loc["P16", "split"] == "train"
    assert leaking_speakers(table) == {} and set(table["split"]) == set(SPLITS)


def test_annotated_problems_are_reported_and_the_scan_goes_on(annotated_root: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(annotated_root, tmp_path / "corpus"))
    (root / "audio" / "P17.wav").unlink()  # annotation without audio
    (root / "annotations" / "P18.csv").unlink()  # audio without annotation
    _bad_annotation(root / "annotations" / "P19.csv", BAD_ANNOTATIONS["nan"][0])
    _bad_annotation(root / "annotations" / "P20.csv", BAD_ANNOTATIONS["non-monotonic"][0])
    (root / "outside.wav").write_bytes((root / "audio" / "P16.wav").read_bytes())
    shutil.copy(root / "annotations" / "P16.csv", root / "outside.csv")
    (root / "audio" / "extra.wav").write_bytes((root / "audio" / "P16.wav").read_bytes())
    write_audio(root / "audio" / "P22.wav", tone(0.5), SR)  # annotation (2 s) runs past the audio
    meta = pd.read_csv(root / "metadata.csv", dtype=str, keep_default_na=False)
    extra = pd.DataFrame([("../outside", "X", ""), ("/etc/passwd", "Y", ""), ("P16", "P16", ""),
                          ("P22", "P22", "holdout")], columns=meta.columns)
    pd.concat([meta, extra]).to_csv(root / "metadata.csv", index=False)
    table = scan("annotated", root, progress=False)
    meta_file = str(root / "metadata.csv")
    problems = {(p["file"], p["reason"]) for p in table.attrs["problems"]}
    assert problems == {
        (str(root / "annotations" / "P17.csv"), f"annotation without audio (no {root / 'audio' / 'P17'}.wav); skipped"),
        (str(root / "audio" / "P18.wav"), f"audio without annotation (no {root / 'annotations' / 'P18.csv'}); skipped"),
        (str(root / "annotations" / "P19.csv"),
         "NaN or infinite value in column 'arousal' at line 5 (1 in all); recording skipped"),
        (str(root / "annotations" / "P20.csv"),
         "time is not strictly increasing at line 6 (0.1 s after 0.3 s); recording skipped"),
        (f"{meta_file} line 10", "recording name '../outside' points outside the corpus folder; skipped"),
        (f"{meta_file} line 11", "recording name '/etc/passwd' points outside the corpus folder; skipped"),
        (f"{meta_file} line 12", "recording 'P16' listed again; the first row is kept"),
        (f"{meta_file} line 13", "recording 'P22' listed again; the first row is kept"),
        (str(root / "audio" / "extra.wav"), "audio not listed in metadata.csv; skipped"),
        (str(root / "annotations" / "P22.csv"), "annotation runs to 1.9 s but the audio lasts 0.5 s; kept"),
    }
    assert sorted(table["utterance"]) == ["P16", "P21a", "P21b", "P22"]


def test_annotated_metadata_problems(annotated_root: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(annotated_root, tmp_path / "corpus"))
    meta = pd.read_csv(root / "metadata.csv", dtype=str, keep_default_na=False)
    meta.loc[meta["recording"] == "P17", "split"] = "holdout"
    meta.loc[meta["recording"] == "P21b", "split"] = "dev"
    meta.to_csv(root / "metadata.csv", index=False)
    table = scan("annotated", root, progress=False)
    found = {p["reason"] for p in table.attrs["problems"]}
    assert "unknown split 'holdout' (expected train, dev, test); assigned by speaker" in found
    assert ("speaker 'P21' is given splits 'test' and 'dev'; all their recordings go to 'test' "
            "(speaker independence)") in found
    assert leaking_speakers(table) == {} and len(table) == 8
    meta.rename(columns={"speaker": "spk"}).to_csv(root / "metadata.csv", index=False)
    with pytest.raises(CorpusError, match=r"metadata.csv: missing column\(s\) \['speaker'\]"):
        scan("annotated", root, progress=False)
    (root / "metadata.csv").unlink()
    table = scan("annotated", root, progress=False)
    assert (table["speaker"] == table["utterance"]).all() and len(table) == 8
    assert reasons(table) == {"metadata.csv": "metadata.csv missing: each recording is taken as its own speaker"}


# --------------------------------------------------------------------------- splits


def _many(speakers: int, per_speaker: int = 3) -> pd.DataFrame:
    return pd.DataFrame({"speaker": [f"spk{s}" for s in range(speakers) for _ in range(per_speaker)],
                         "utterance": [f"u{i}" for i in range(speakers * per_speaker)]})


@pytest.mark.parametrize(
    ("n", "ratios", "expected"),
    [
        (3, (0.8, 0.1, 0.1), (1, 1, 1)),
        (6, (0.8, 0.1, 0.1), (4, 1, 1)),  # 4.8/0.6/0.6 would leave test empty
        (10, (0.8, 0.1, 0.1), (8, 1, 1)),
        (37, (0.8, 0.1, 0.1), (29, 4, 4)),  # largest remainders 0.7, 0.7 beat 0.6
        (251, (0.8, 0.1, 0.1), (201, 25, 25)),
        (2, (0.8, 0.1, 0.1), (1, 1, 0)),  # too few speakers: largest ratios first
        (5, (0.9, 0.1, 0.0), (4, 1, 0)),  # a zero ratio stays empty
        (0, (0.8, 0.1, 0.1), (0, 0, 0)),
    ],
)
def test_split_counts(n: int, ratios: tuple, expected: tuple) -> None:
    assert split_counts(n, ratios) == expected


def test_splits_are_speaker_independent_deterministic_and_seeded() -> None:
    table = _many(40)
    first = assign_speaker_splits(table, seed=7)
    assert leaking_speakers(first) == {}
    assert first["split"].tolist() == assign_speaker_splits(table.sample(frac=1, random_state=1), seed=7) \
        .sort_index()["split"].tolist()  # order of rows does not matter
    per_speaker = first.drop_duplicates("speaker")["split"].value_counts()
    assert (per_speaker["train"], per_speaker["dev"], per_speaker["test"]) == (32, 4, 4)
    other = assign_speaker_splits(table, seed=8)
    assert not other["split"].equals(first["split"])
    # adding a speaker keeps most assignments
    grown = assign_speaker_splits(pd.concat([table, _many(41).tail(3)]), seed=7)
    same = (grown.iloc[: len(table)]["split"].to_numpy() == first["split"].to_numpy()).mean()
    assert same > 0.8


def test_small_corpus_gets_a_speaker_in_every_split() -> None:
    for seed in range(20):
        table = assign_speaker_splits(_many(6), seed=seed)
        counts = table.drop_duplicates("speaker")["split"].value_counts()
        assert (counts["train"], counts["dev"], counts["test"]) == (4, 1, 1)


def test_split_file_overrides(tmp_path: Path) -> None:
    table = _many(10)
    split_file = tmp_path / "splits.csv"
    split_file.write_text("speaker,split\nspk0,test\nspk1,test\nspk2,dev\n")
    out = assign_speaker_splits(table, split_file=split_file, seed=3)
    per_speaker = dict(zip(out["speaker"], out["split"]))
    assert (per_speaker["spk0"], per_speaker["spk1"], per_speaker["spk2"]) == ("test", "test", "dev")
    assert leaking_speakers(out) == {}
    # the frozen assignment reproduces itself
    frozen = write_split_file(out, tmp_path / "frozen.csv")
    again = assign_speaker_splits(table, split_file=frozen, seed=99)
    assert again["split"].tolist() == out["split"].tolist()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("speaker,part\nspk0,test\n", r"lacks column\(s\) \['split'\]"),
        ("speaker,split\nspk0,holdout\n", "line 2: unknown split 'holdout'"),
        ("speaker,split\nspk0,test\nspk0,train\n", "line 3: speaker 'spk0' listed in 'test' and 'train'"),
    ],
)
def test_bad_split_file(tmp_path: Path, content: str, words: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=words):
        assign_speaker_splits(_many(3), split_file=path)


@pytest.mark.parametrize("ratios", [(0.8, 0.2), (0.5, 0.5, 0.5), (1.2, -0.1, -0.1), (0.8, float("nan"), 0.2)])
def test_bad_ratios(ratios: tuple) -> None:
    with pytest.raises(ValueError, match="ratios"):
        assign_speaker_splits(_many(3), ratios=ratios)


def test_scanners_pass_split_options(libri_root: Path, tmp_path: Path) -> None:
    split_file = tmp_path / "s.csv"
    split_file.write_text("speaker,split\n19,test\n")
    table = scan("librispeech", libri_root, split_file=split_file, ratios=(0.5, 0.25, 0.25), seed=1, progress=False)
    assert set(table.loc[table["speaker"] == "19", "split"]) == {"test"}
    # 6 speakers at 0.5/0.25/0.25 -> 3/2/1; the split file already filled test
    assert table.drop_duplicates("speaker")["split"].value_counts().to_dict() == {"train": 3, "dev": 2, "test": 1}


# --------------------------------------------------------------------------- hostile text files


def test_librispeech_transcript_with_a_byte_order_mark(libri_copy: Path) -> None:
    """A transcript saved by an editor that writes a UTF-8 BOM: its first line is read like the others."""
    path = libri_copy / "train-clean-100" / "19" / "198" / "19-198.trans.txt"
    text = path.read_text(encoding="utf-8")
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    table = scan("librispeech", libri_copy, progress=False)
    assert table.attrs["problems"] == []
    first = table.set_index("utterance").loc["19-198-0000", "transcript"]
    assert first == text.splitlines()[0].partition(" ")[2] == "WORDS OF 19 CHAPTER 198 NUMBER 0"


SEMICOLON = "the file is ';'-separated"


def test_semicolon_annotation_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "P16.csv"
    annotation_frame(2.0).to_csv(path, sep=";", index=False)
    with pytest.raises(AnnotationError) as caught:
        read_annotation(path)
    assert caught.value.path == str(path)
    assert caught.value.reason.startswith(f"{SEMICOLON} (header 'time;arousal;valence;arousal_r1;")
    assert "emotools reads comma-separated CSV" in caught.value.reason
    # decimal commas too (a spreadsheet in a German locale): the same clear reason, not a parser message
    path.write_text(annotation_frame(2.0).to_csv(sep=";", index=False, decimal=","))
    with pytest.raises(AnnotationError, match=SEMICOLON):
        read_annotation(path)
    # tabs are named too
    annotation_frame(2.0).to_csv(path, sep="\t", index=False)
    with pytest.raises(AnnotationError, match="the file is tab-separated"):
        read_annotation(path)


def test_semicolon_files_in_a_corpus_are_named_as_such(annotated_root: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(annotated_root, tmp_path / "corpus"))
    read_annotation(root / "annotations" / "P17.csv").to_csv(root / "annotations" / "P17.csv", sep=";", index=False)
    table = scan("annotated", root, progress=False)
    assert reasons(table)["P17.csv"].startswith(SEMICOLON) and "P17" not in set(table["utterance"])
    assert len(table) == len(RECORDINGS) - 1  # the scan went on
    meta = pd.read_csv(root / "metadata.csv", dtype=str, keep_default_na=False)
    meta.to_csv(root / "metadata.csv", sep=";", index=False)
    with pytest.raises(CorpusError, match=f"metadata.csv: {SEMICOLON} \\(header 'recording;speaker;split'\\)"):
        scan("annotated", root, progress=False)
    split_file = tmp_path / "splits.csv"
    split_file.write_text("speaker;split\nP16;test\n")
    with pytest.raises(ValueError, match=f"splits.csv: {SEMICOLON}"):
        read_split_file(split_file)


def test_byte_order_marks_in_corpus_csv_files(annotated_root: Path, tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" starts with a BOM: metadata, annotations and split files still read."""
    root = Path(shutil.copytree(annotated_root, tmp_path / "corpus"))
    for path in [root / "metadata.csv", *sorted((root / "annotations").glob("*.csv"))]:
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    split_file = tmp_path / "splits.csv"
    split_file.write_bytes(b"\xef\xbb\xbfspeaker,split\nP17,test\n")
    table = scan("annotated", root, split_file=split_file, progress=False)
    assert table.attrs["problems"] == [] and len(table) == len(RECORDINGS)
    assert table.set_index("utterance").loc["P17", "split"] == "test"
    pd.testing.assert_frame_equal(read_annotation(root / "annotations" / "P16.csv"),
                                  read_annotation(annotated_root / "annotations" / "P16.csv"), check_like=True)


# --------------------------------------------------------------------------- str and os.PathLike


@pytest.mark.parametrize("kind", [str, Path], ids=["str", "Path"])
def test_every_function_taking_a_path_accepts_str_and_pathlike(
    kind: type, libri_root: Path, annotated_root: Path, tmp_path: Path
) -> None:
    vox = make_voxceleb(tmp_path / "vox1", 1, VOX_LAYOUT)
    vox2 = make_voxceleb(tmp_path / "vox2", 2, VOX_LAYOUT)
    for key, root in (("librispeech", libri_root), ("voxceleb1", vox), ("voxceleb2", vox2),
                      ("annotated", annotated_root)):
        table = scan(key, kind(root), progress=False)
        assert table.attrs["root"] == str(root) and len(table) > 0, key
        assert (CORPORA[key](kind(root), progress=False)["file"] == table["file"]).all()
    annotation = read_annotation(kind(annotated_root / "annotations" / "P16.csv"))
    assert annotation.attrs["path"] == str(annotated_root / "annotations" / "P16.csv")
    written = write_annotation(kind(tmp_path / "out" / "P16.csv"), annotation)
    assert written == tmp_path / "out" / "P16.csv"
    table = scan("annotated", annotated_root, progress=False)
    frozen = write_split_file(table, kind(tmp_path / "splits.csv"))
    assert read_split_file(kind(frozen)) == dict(zip(table["speaker"], table["split"]))
    again = assign_speaker_splits(table.drop(columns="split"), split_file=kind(frozen), seed=5)
    assert again["split"].tolist() == table["split"].tolist()
    libri = scan("librispeech", libri_root, progress=False)
    chains = chain_sessions(libri[libri["speaker"] == "19"], target_minutes=10.0)
    out = write_sessions(chains, kind(tmp_path / "sessions"), progress=False)
    assert out.attrs["root"] == str(tmp_path / "sessions") and (tmp_path / "sessions" / "segments.csv").is_file()


# --------------------------------------------------------------------------- sessions


def _toy(durations: dict[tuple[str, str], list[float]], split: str = "train") -> pd.DataFrame:
    rows = []
    for (speaker, session), lengths in durations.items():
        for i, length in enumerate(lengths):
            rows.append({"file": f"{speaker}-{session}-{i}.flac", "utterance": f"{speaker}-{session}-{i}",
                         "speaker": speaker, "session": session, "duration": length, "split": split})
    return pd.DataFrame(rows)


def test_chaining_keeps_order_and_timestamps() -> None:
    # chapter "9" precedes chapter "10"; utterance 2 precedes utterance 10 (natural order)
    table = _toy({("a", "10"): [40.0] * 11, ("a", "9"): [50.0, 70.0], ("b", "1"): [30.0, 30.0]})
    table = table.sample(frac=1, random_state=0)  # the input order does not matter
    chains = chain_sessions(table, target_minutes=2.0)
    a = chains[chains["speaker"] == "a"]
    assert a["utterance"].tolist() == ["a-9-0", "a-9-1", *[f"a-10-{i}" for i in range(11)]]
    for _, chain in chains.groupby("chain"):
        chain = chain.sort_values("position")
        assert chain["position"].tolist() == list(range(len(chain)))
        assert chain["start"].iat[0] == 0.0
        np.testing.assert_allclose(chain["end"] - chain["start"], chain["duration"])
        np.testing.assert_allclose(chain["start"].to_numpy()[1:], chain["end"].to_numpy()[:-1])
        assert chain["chain_duration"].iat[0] == chain["end"].iat[-1]
        assert chain["speaker"].nunique() == 1 and chain["split"].nunique() == 1
    sizes = a.groupby("chain")["duration"].sum()
    # 50+70 | 40*3 | 40*3 | 40*3 | 40*2 (80 s >= 60 s: kept as its own chain)
    assert sizes.tolist() == [120.0, 120.0, 120.0, 120.0, 80.0]
    assert chains[chains["speaker"] == "b"]["chain"].unique().tolist() == ["b#000"]


def test_chaining_options() -> None:
    table = _toy({("a", "1"): [50.0, 50.0, 50.0], ("a", "2"): [50.0]})
    assert chain_sessions(table, target_minutes=1.0)["chain"].tolist() == ["a#000", "a#000", "a#001", "a#001"]
    per_session = chain_sessions(table, target_minutes=10.0, within="session")
    assert per_session["chain"].tolist() == ["1#000", "1#000", "1#000", "2#000"]
    gapped = chain_sessions(table, target_minutes=10.0, gap=0.5)
    assert gapped["start"].tolist() == [0.0, 50.5, 101.0, 151.5]
    assert gapped["chain_duration"].iat[0] == 201.5
    short_tail = chain_sessions(_toy({("a", "1"): [60.0, 10.0]}), target_minutes=1.0)
    assert short_tail["chain"].nunique() == 1  # a 10 s leftover joins the previous chain
    with pytest.raises(ValueError, match="without a positive duration"):
        chain_sessions(table.assign(duration=[1.0, np.nan, 1.0, 1.0]))
    with pytest.raises(ValueError, match="lacks column"):
        chain_sessions(table.drop(columns="session"))


def test_rendered_session_holds_every_utterance_at_its_time(libri: pd.DataFrame, tmp_path: Path) -> None:
    speaker = libri[libri["speaker"] == "19"]
    chains = chain_sessions(speaker, target_minutes=10.0, gap=0.1)
    assert chains["chain"].nunique() == 1
    signal = join_segments(chains, sr=SR)
    assert signal.dtype == np.float32 and signal.size == round(chains["chain_duration"].iat[0] * SR)
    for _, row in chains.iterrows():
        a, b = round(row["start"] * SR), round(row["end"] * SR)
        np.testing.assert_array_equal(signal[a:b], read_audio(row["file"], sr=SR))
        gap_end = round((row["end"] + 0.1) * SR)
        assert not signal[b:gap_end].any()  # silence between utterances
    # at another rate the times still hold
    low = join_segments(chains, sr=8000)
    first = chains.iloc[1]
    np.testing.assert_allclose(low[round(first["start"] * 8000): round(first["end"] * 8000)],
                               read_audio(first["file"], sr=8000))


def test_write_sessions_renders_a_corpus_and_skips_broken_chains(libri_copy: Path, tmp_path: Path) -> None:
    table = scan("librispeech", libri_copy, progress=False)
    (libri_copy / "train-clean-100" / "26" / "495" / "26-495-0001.flac").write_bytes(b"broken after the scan")
    chains = chain_sessions(table, target_minutes=10.0)
    out = write_sessions(chains, tmp_path / "sessions", sr=SR, progress=False)
    assert sorted(out["utterance"]) == sorted(set(chains["chain"]) - {"26#000"})
    assert [p["reason"].endswith("chain '26#000' skipped") for p in out.attrs["problems"]] == [True]
    assert leaking_speakers(out) == {}
    for _, row in out.iterrows():
        assert audio_info(row["file"]).duration == pytest.approx(row["duration"], abs=1 / SR)
        chain = chains[chains["chain"] == row["utterance"]]
        assert row["n_utterances"] == len(chain)
        assert row["duration"] == pytest.approx(chain["chain_duration"].iat[0], abs=1 / SR)
    segments = pd.read_csv(tmp_path / "sessions" / "segments.csv")
    assert len(segments) == len(chains)


def test_chained_tone_is_findable_by_frequency(tmp_path: Path) -> None:
    # independent check of placement: each utterance's dominant frequency at its timestamps
    root = tmp_path / "c"
    files, rows = [], []
    for i, freq in enumerate([300.0, 700.0, 1100.0]):
        path = root / f"u{i}.wav"
        write_audio(path, tone(0.5 + 0.25 * i, freq=freq), SR)
        rows.append({"file": str(path), "utterance": f"u{i}", "speaker": "s", "session": "v",
                     "duration": 0.5 + 0.25 * i})
        files.append(freq)
    chains = chain_sessions(pd.DataFrame(rows), target_minutes=1.0)
    signal = join_segments(chains, sr=SR)
    for (_, row), freq in zip(chains.iterrows(), files):
        part = signal[round(row["start"] * SR): round(row["end"] * SR)]
        spectrum = np.abs(np.fft.rfft(part))
        assert np.fft.rfftfreq(part.size, 1 / SR)[spectrum.argmax()] == pytest.approx(freq, abs=2)
