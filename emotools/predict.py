"""Using a trained model: arousal and valence over time for any audio file.

A *predictor* folder holds what prediction needs besides the audio: the
feature spec the model was trained on, one checkpoint per target group
(``model.pt`` from :func:`emotools.training.fit`, loaded with
``weights_only=True``), and the post-processing chain tuned on dev. The
notebooks write one per dataset with :func:`save_predictor`;
``python -m emotools predict AUDIO... --checkpoint DIR`` reads it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from . import training
from .audio import AudioError, read_audio
from .features import FeatureError, FeatureSpec, extract_signal
from .postprocess import PostProcessor
from .sequences import SequenceError, make_record

PREDICTOR_FILE = "predictor.json"


class PredictorError(ValueError):
    """A predictor folder is missing or malformed; names the folder."""


@dataclass
class Predictor:
    """A feature spec, trained models per target group, and an optional post-processing chain."""

    spec: FeatureSpec
    models: dict[str, training.TrainedModel]  # "arousal+valence" or "arousal", "valence" -> model
    postprocessor: PostProcessor | None
    info: dict[str, Any]

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(t for m in self.models.values() for t in m.targets)

    def predict_signal(self, signal: np.ndarray, sr: int, *, name: str = "<signal>") -> pd.DataFrame:
        """``time`` (s, window centres) and one column per target for one mono signal."""
        features = extract_signal(signal, sr, self.spec, path=name)
        record = make_record(name, features, rate_hz=self.spec.rate_hz)
        pred = np.concatenate([m.predict([record])[0] for m in self.models.values()], axis=1)
        if self.postprocessor is not None:
            pred = self.postprocessor.apply([pred])[0]
        return pd.DataFrame({"time": record.time, **{t: pred[:, k] for k, t in enumerate(self.targets)}})

    def predict_file(self, path: str | Path) -> pd.DataFrame:
        """As :meth:`predict_signal`, for any file :func:`emotools.audio.read_audio` reads."""
        return self.predict_signal(read_audio(path), 16000, name=str(path))


def save_predictor(folder: Path, spec: FeatureSpec, model_paths: dict[str, str],
                   postprocessor: dict[str, Any] | None = None, **info: Any) -> Path:
    """Copy the checkpoints into ``folder`` and write ``predictor.json``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    models = {}
    for group, src in model_paths.items():
        name = f"{group.replace('+', '_')}.pt"
        shutil.copyfile(src, folder / name)
        models[group] = name
    meta = {"feature_spec": spec.as_dict(), "models": models, "postprocess": postprocessor, "info": info}
    tmp = folder / (PREDICTOR_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1, default=str))
    tmp.replace(folder / PREDICTOR_FILE)
    return folder


def load_predictor(folder: str | Path) -> Predictor:
    """Read a predictor folder written by :func:`save_predictor`."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / PREDICTOR_FILE).read_text())
        spec = FeatureSpec(**meta["feature_spec"])
        models = {group: training.load(folder / name) for group, name in meta["models"].items()}
    except FileNotFoundError as error:
        raise PredictorError(f"{folder}: not a predictor folder ({error.filename} missing)") from None
    except (ValueError, KeyError, TypeError, training.TrainingError) as error:
        raise PredictorError(f"{folder}: malformed predictor ({error})") from None
    post = PostProcessor.from_dict(meta["postprocess"]) if meta.get("postprocess") else None
    return Predictor(spec, models, post, meta.get("info", {}))


def plot_prediction(frame: pd.DataFrame, *, title: str):
    """Arousal and valence over time, one line per target."""
    import matplotlib.pyplot as plt

    from .plots import SERIES_COLORS

    fig, ax = plt.subplots(figsize=(12, 4))
    for target in [c for c in frame.columns if c != "time"]:
        ax.plot(frame["time"], frame[target], lw=1.8, label=target, color=SERIES_COLORS.get(target))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("predicted value (scale -1 to 1)")
    ax.set_title(title)
    ax.axhline(0, color="black", lw=0.6)
    ax.legend()
    fig.tight_layout()
    return fig


def output_names(files: Sequence[str | Path]) -> list[Path]:
    """Output stems for input files: the file stem, or, when stems repeat (VoxCeleb's
    ``<id>/<video>/00001.wav``), the path relative to the inputs' common folder."""
    stems = [Path(f).stem for f in files]
    if len(set(stems)) == len(stems):
        return [Path(s) for s in stems]
    resolved = [Path(f).resolve() for f in files]
    common = Path(os.path.commonpath([p.parent for p in resolved]))
    return [p.relative_to(common).with_suffix("") for p in resolved]


def cli(argv: Sequence[str]) -> int:
    """``python -m emotools predict AUDIO... --checkpoint DIR [--out DIR]``."""
    import matplotlib.pyplot as plt
    from tqdm.auto import tqdm

    parser = argparse.ArgumentParser(prog="python -m emotools predict",
                                     description="Arousal and valence over time for audio files (CSV + PNG per file).")
    parser.add_argument("audio", nargs="+", help="audio files (WAV, FLAC, OGG, m4a)")
    parser.add_argument("--checkpoint", required=True, help="predictor folder written by a notebook")
    parser.add_argument("--out", default="predictions", help="output folder (default: ./predictions)")
    args = parser.parse_args(argv)
    try:
        predictor = load_predictor(args.checkpoint)
    except PredictorError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failures = []
    for path, name in tqdm(list(zip(args.audio, output_names(args.audio))), desc="predict", unit="file"):
        try:
            frame = predictor.predict_file(path)
        except (AudioError, FeatureError, SequenceError) as error:
            print(f"error: {error}", file=sys.stderr)
            failures.append({"file": str(path), "reason": str(error)})
            continue
        csv = out / name.with_name(name.name + ".csv")
        csv.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(csv, index=False, float_format="%.5f")
        fig = plot_prediction(frame, title=f"{Path(path).name}: predicted emotion over time")
        fig.savefig(csv.with_suffix(".png"), dpi=120)
        plt.close(fig)
        print(f"wrote {csv}")
    if failures:
        pd.DataFrame(failures).to_csv(out / "failures.csv", index=False)
        print(f"{len(failures)} of {len(args.audio)} file(s) failed; see {out / 'failures.csv'}", file=sys.stderr)
        return 1
    return 0
