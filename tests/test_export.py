"""ONNX export (``python -m emotools export --onnx``): every architecture's graph equals torch on padded batches
of lengths the trace never saw, ``predict --onnx`` writes the torch path's CSVs, and mismatched exports are refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from emotools import models, predict, training
from emotools.__main__ import main
from emotools.audio import SAMPLE_RATE, write_audio
from emotools.export import (
    EXPORT_FILE,
    NO_STEP,
    OnnxError,
    OnnxModel,
    StepGraph,
    StepStream,
    export_model,
    export_onnx,
    export_step,
    sha256,
    stream_through,
)
from emotools.features import FeatureSpec, extract_signal
from emotools.sequences import make_record

SPEC = FeatureSpec(level="windowed", window=1.0, hop=0.1)
N_FEATURES = 12
TOLERANCE = 1e-4

# (architecture, config overrides): every registered name, plus global attention, causal forms and a sigmoid head
SMALL = {"hidden": 16}
VARIANTS = [(name, {}) for name in models.MODELS] + [
    ("attention", {"window": None}),
    ("attention", {"lookahead": 0}),
    ("attention_tdnn_lstm", {"lookahead": 4}),
    ("lstm", {"lookahead": 3}),
    ("tcn", {"lookahead": 2, "output": "sigmoid"}),
    ("dsus", {"lookahead": 1}),
]


def _small(name: str, **overrides) -> models.SequenceRegressor:
    extra = {"heads": 2, "window": 6} if "attention" in name else {}
    if name in ("tcn", "dsus"):
        extra = {"levels": 3}
    torch.manual_seed(0)
    return models.build(name, n_features=N_FEATURES, n_targets=2, **{**SMALL, **extra, **overrides}).eval()


def _batches(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Single sequences and padded batches of lengths around the attention window and dsus' 2**levels; NaN padding."""
    out = []
    for lengths in ([1], [5], [6], [8], [13, 13], [37, 20, 1], [250, 249, 7], [1001]):
        x = rng.standard_normal((len(lengths), max(lengths), N_FEATURES)).astype(np.float32)
        for row, n in enumerate(lengths):
            x[row, n:] = np.nan  # padding never reaches a valid frame, in the graph as in torch
        out.append((x, np.array(lengths, np.int64)))
    return out


@pytest.mark.parametrize("name, overrides", VARIANTS, ids=[f"{n}-{o}" if o else n for n, o in VARIANTS])
def test_every_architecture_exports_and_equals_torch(name, overrides, tmp_path: Path) -> None:
    model = _small(name, **overrides)
    path = export_model(model, tmp_path / f"{name}.onnx")
    graph = OnnxModel.load(path)
    assert (graph.n_features, graph.n_targets) == (N_FEATURES, 2)
    for x, lengths in _batches(np.random.default_rng(1)):
        with torch.inference_mode():
            expected = model(torch.from_numpy(x), torch.from_numpy(lengths)).numpy()
        got = graph(x, lengths)
        assert got.shape == expected.shape == (len(lengths), x.shape[1], 2)
        np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=0, err_msg=f"lengths {lengths.tolist()}")
        assert np.isfinite(got).all()
        for row, n in enumerate(lengths):
            assert not got[row, n:].any()  # padded frames are 0
    with pytest.raises(predict.PredictorError, match=f"expected input \\(batch, time, {N_FEATURES}\\)"):
        graph(np.zeros((1, 4, N_FEATURES + 1), np.float32))
    with pytest.raises(predict.PredictorError, match="lengths must be"):
        graph(np.zeros((1, 4, N_FEATURES), np.float32), np.array([5]))


# --------------------------------------------------------------------------- streaming-step graphs

STEP_VARIANTS = [
    ("mlp", {"lookahead": 0}),
    ("tdnn", {"lookahead": 0}),
    ("tdnn", {"lookahead": 3}),
    ("tcn", {"lookahead": 0}),
    ("tcn", {"lookahead": 2, "output": "sigmoid"}),
    ("lstm", {"lookahead": 0}),
    ("lstm", {"lookahead": 3}),
    ("attention", {"lookahead": 0}),
    ("attention", {"lookahead": 4}),
    ("attention_tdnn_lstm", {"lookahead": 4}),  # the LSTM sees frames 4 late: a warm-up split
    ("tdnn_lstm", {"lookahead": 0}),
]


@pytest.mark.parametrize("name, overrides", STEP_VARIANTS, ids=[f"{n}-{o['lookahead']}" for n, o in STEP_VARIANTS])
def test_step_graphs_streamed_in_chunks_equal_torch(name, overrides, tmp_path: Path) -> None:
    model = _small(name, **overrides)
    graph = StepGraph.load(export_step(model, tmp_path / f"{name}.step.onnx"))
    assert graph.delay_frames == model.receptive_future == models.StreamingModel(model).delay_frames
    assert all(isinstance(d, int) for _, shape in graph.state for d in shape)  # fixed shapes
    x = np.random.default_rng(2).standard_normal((91, N_FEATURES)).astype(np.float32)
    expected = _offline(model, x)
    torch_stream = models.StreamingModel(model)
    for sizes in ([1], [4, 0, 11, 2], [91]):
        stream = StepStream(graph)
        pushed = [stream.push(x[i : i + sizes[k % len(sizes)]])
                  for k, i in enumerate(_starts(len(x), sizes))]
        # each output as soon as it is final: the push that brings frame t + delay returns output t
        assert sum(len(p) for p in pushed) == len(x) - graph.delay_frames
        got = np.concatenate([*pushed, stream.flush()])
        np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=0, err_msg=f"chunks {sizes}")
        assert stream.state_size == sum(int(np.prod(shape)) for _, shape in graph.state)
    torch_stream.reset()
    np.testing.assert_allclose(stream_through(torch_stream, x, [4, 0, 11, 2]), expected, atol=1e-5, rtol=0)
    short = x[:2]  # a stream shorter than the lookahead
    np.testing.assert_allclose(stream_through(StepStream(graph), short, [1]), _offline(model, short), atol=TOLERANCE)
    with pytest.raises(OnnxError, match="the stream was flushed"):
        stream.push(x[:1])
    with pytest.raises(OnnxError, match=f"expected frames \\(n, {N_FEATURES}\\)"):
        StepStream(graph).push(x[:, :3])


def _starts(total: int, sizes: list[int]) -> list[int]:
    starts, i, k = [], 0, 0
    while i < total:
        starts.append(i)
        i, k = i + sizes[k % len(sizes)], k + 1
    return starts


def _offline(model: models.SequenceRegressor, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(x)[None])[0].numpy()


@pytest.mark.parametrize("name, overrides, why", [
    ("lstm", {}, "is not causal"), ("tcn", {}, "is not causal"),
    ("attention", {"window": None, "lookahead": 0}, "global attention"),
    ("dsus", {"lookahead": 0}, "dsus pools frames in pairs"),
])
def test_models_without_a_step_form_are_refused_in_one_line(name, overrides, why, tmp_path: Path) -> None:
    with pytest.raises(OnnxError, match=f"has no streaming-step graph: .*{why}") as info:
        export_step(_small(name, **overrides), tmp_path / "m.step.onnx")
    assert "\n" not in str(info.value) and not (tmp_path / "m.step.onnx").exists()
    with pytest.raises(OnnxError, match="expected \\['x', 't'\\]"):  # a whole-sequence graph is not a step graph
        StepGraph.load(export_model(_small("mlp"), tmp_path / "mlp.onnx"))


# --------------------------------------------------------------------------- a predictor as the package writes it


def _speech_like(seconds: float, seed: int) -> np.ndarray:
    """Amplitude- and pitch-modulated harmonics with noise: features that move over time."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.15 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 0.4 * t) ** 2
    voice = sum(np.sin(k * phase) / k for k in range(1, 6))
    return (0.1 * envelope * voice + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def predictor_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two models trained by ``training.fit`` (an LSTM for arousal, local attention for valence), saved by
    ``predict.save_predictor`` as the notebooks save theirs."""
    home = tmp_path_factory.mktemp("onnx-predictor")
    records = []
    for k in range(3):
        features = extract_signal(_speech_like(20.0, k), SAMPLE_RATE, SPEC)
        time = (features["start"] + features["end"]).to_numpy() / 2
        labels = pd.DataFrame({"time": time, "arousal": np.sin(0.3 * time + k), "valence": np.cos(0.2 * time)})
        records.append(make_record(f"r{k}", features, labels, session=f"s{k}", speaker=f"p{k}"))
    paths = {}
    for target, arch in (("arousal", "lstm"), ("valence", "attention")):
        options = training.FitOptions(targets=(target,), epochs=2, chunk_s=None, normalization="session",
                                      model_options={"hidden": 16, **({"window": 20} if arch == "attention" else {})})
        trained = training.fit(arch, records[:2], records[2:], options, progress=False, device="cpu")
        paths[target] = trained.save(home / f"{target}.pt")
    return predict.save_predictor(home / "predictor", SPEC, paths, None, architecture="mixed")


@pytest.fixture(scope="module")
def exported(predictor_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The predictor folder with its ONNX export, made by the command line."""
    folder = Path(shutil.copytree(predictor_folder, tmp_path_factory.mktemp("exported") / "predictor"))
    assert main(["export", "--onnx", "--checkpoint", str(folder)]) == 0
    return folder


def test_export_writes_every_model_and_a_record(predictor_folder: Path, exported: Path, tmp_path: Path) -> None:
    meta = json.loads((exported / EXPORT_FILE).read_text())
    assert meta["opset"] >= 17 and meta["inputs"].keys() == {"x", "lengths"} and list(meta["outputs"]) == ["y"]
    assert {"torch", "onnx", "onnxruntime"} <= meta["versions"].keys()
    assert set(meta["models"]) == {"arousal", "valence"}
    assert meta["step"]["not_exported"] == NO_STEP and {"x", "t", "end"} <= meta["step"]["inputs"].keys()
    for entry in meta["models"].values():  # non-causal models: no step graph, and why
        assert entry["step"] is None and "is not causal" in entry["no_step"]
    for group, entry in meta["models"].items():
        assert entry["onnx"] == f"{group}.onnx" and entry["checkpoint"] == f"{group}.pt"
        assert entry["checkpoint_sha256"] == sha256(exported / f"{group}.pt")
        assert entry["onnx_sha256"] == sha256(exported / entry["onnx"])
    # a str predictor folder and another output folder
    paths = export_onnx(str(predictor_folder), tmp_path / "elsewhere")
    assert [p.name for p in paths] == ["arousal.onnx", "valence.onnx"]
    assert (tmp_path / "elsewhere" / EXPORT_FILE).is_file() and not (predictor_folder / EXPORT_FILE).exists()


def test_predict_onnx_writes_the_torch_csvs(exported: Path, tmp_path: Path) -> None:
    audio = [write_audio(tmp_path / "audio" / "long.wav", _speech_like(31.0, 7), SAMPLE_RATE),
             write_audio(tmp_path / "audio" / "short.wav", _speech_like(2.5, 8), SAMPLE_RATE)]
    for engine, extra in (("torch", []), ("onnx", ["--onnx"])):
        # 7 s blocks: the graphs run on blocks of lengths the export never saw
        code = predict.cli([*map(str, audio), "--checkpoint", str(exported), "--out", str(tmp_path / engine),
                            "--block-s", "7", "--no-progress", *extra])
        assert code == 0
    for name in ("long", "short"):
        with_torch = pd.read_csv(tmp_path / "torch" / f"{name}.csv")
        with_onnx = pd.read_csv(tmp_path / "onnx" / f"{name}.csv")
        assert list(with_onnx.columns) == ["time", "arousal", "valence"] and len(with_onnx) == len(with_torch)
        np.testing.assert_array_equal(with_onnx["time"], with_torch["time"])
        np.testing.assert_allclose(with_onnx[["arousal", "valence"]], with_torch[["arousal", "valence"]],
                                   atol=TOLERANCE, rtol=0)
        assert with_onnx[["arousal", "valence"]].std().min() > 0  # not a constant
        assert json.loads((tmp_path / "onnx" / f"{name}.json").read_text())["engine"] == "onnxruntime"
        assert json.loads((tmp_path / "torch" / f"{name}.json").read_text())["engine"] == "torch"


# --------------------------------------------------------------------------- refused, one line, exit 2


def _refused(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def _predict_onnx(folder: Path, tmp_path: Path) -> list[str]:
    return ["predict", "x.wav", "--checkpoint", str(folder), "--out", str(tmp_path / "out"), "--onnx"]


def _record(folder: Path, group: str, **changes) -> None:
    meta = json.loads((folder / EXPORT_FILE).read_text())
    meta["models"][group].update(changes)
    (folder / EXPORT_FILE).write_text(json.dumps(meta))


def test_export_refuses_a_folder_that_is_not_a_predictor(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    err = _refused(["export", "--onnx", "--checkpoint", str(tmp_path / "empty")], capsys)
    assert "not a predictor folder" in err and "predictor.json" in err
    assert "choose a format" in _refused(["export", "--checkpoint", str(tmp_path / "empty")], capsys)


def test_predict_onnx_requires_the_export(predictor_folder: Path, tmp_path: Path, capsys) -> None:
    err = _refused(_predict_onnx(predictor_folder, tmp_path), capsys)
    assert "no ONNX export" in err and "emotools export --onnx" in err


def test_a_swapped_graph_is_refused(exported: Path, tmp_path: Path, capsys) -> None:
    folder = Path(shutil.copytree(exported, tmp_path / "copy"))
    shutil.copyfile(folder / "valence.onnx", folder / "arousal.onnx")
    err = _refused(_predict_onnx(folder, tmp_path), capsys)
    assert "'arousal'" in err and "does not match its export record" in err


def test_a_checkpoint_changed_since_the_export_is_refused(exported: Path, tmp_path: Path, capsys) -> None:
    folder = Path(shutil.copytree(exported, tmp_path / "copy"))
    ckpt = torch.load(folder / "valence.pt", weights_only=True)
    ckpt["state_dict"]["head.bias"] += 0.5
    torch.save(ckpt, folder / "valence.pt")
    assert "valence.pt changed since it was exported" in _refused(_predict_onnx(folder, tmp_path), capsys)


def test_a_graph_that_is_not_onnx_is_refused(exported: Path, tmp_path: Path, capsys) -> None:
    folder = Path(shutil.copytree(exported, tmp_path / "copy"))
    (folder / "arousal.onnx").write_bytes(b"not a graph")
    _record(folder, "arousal", onnx_sha256=sha256(folder / "arousal.onnx"))
    assert "arousal.onnx is not a loadable ONNX model" in _refused(_predict_onnx(folder, tmp_path), capsys)


def test_a_graph_of_another_feature_count_is_refused(exported: Path, tmp_path: Path, capsys) -> None:
    folder = Path(shutil.copytree(exported, tmp_path / "copy"))
    export_model(_small("mlp"), folder / "arousal.onnx")  # N_FEATURES, not eGeMAPS' 88
    _record(folder, "arousal", onnx_sha256=sha256(folder / "arousal.onnx"))
    err = _refused(_predict_onnx(folder, tmp_path), capsys)
    assert f"maps {N_FEATURES} features to 2 targets, the checkpoint 88 to 1" in err
