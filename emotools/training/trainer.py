"""The training loop, the trained model, its checkpoints, prediction and evaluation."""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import metrics
from ..fileio import atomic_write, write_text
from ..metrics import CCC_PROTOCOL_NAMES, CCCProtocol
from ..models import ModelConfig, SequenceRegressor, config_from_dict, lengths_to_mask
from ..sequences import Normalizer, SequenceRecord, chunk, pad, protocol_ccc
from .options import FitOptions, TrainingError, compute_loss, fingerprint_differences, resolve_precision, step_lr

__all__ = ["CHECKPOINT_FORMAT", "TrainedModel", "fit", "fit_each_target", "predict", "evaluate", "load"]

CHECKPOINT_FORMAT = "emotools-checkpoint/1"

# --------------------------------------------------------------------------- the trained model


@dataclass
class TrainedModel:
    """A model ready to predict: weights, config, normalization, targets, history.

    Attributes:
        model: the network (best epoch's weights), in eval mode.
        normalizer: the feature normalization fit on the training records.
        targets: names of the output columns.
        rate_hz: frame rate of the training records.
        options: the :class:`FitOptions` as a dict.
        history: one dict per epoch (``epoch``, ``train_loss``, ``train_ccc``,
            ``dev_loss``, ``dev_ccc``, per-target ``train_ccc_<t>`` /
            ``dev_ccc_<t>``, ``lr``, ``seconds``).
        best_epoch: the epoch whose weights were kept (1-based).
        label_stats: mean and std of each target over the training labels
            (for :mod:`emotools.postprocess`).
    """

    model: SequenceRegressor
    normalizer: Normalizer
    targets: tuple[str, ...]
    rate_hz: float
    options: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    label_stats: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def history_frame(self) -> pd.DataFrame:
        """:attr:`history` as a DataFrame (one row per epoch)."""
        return pd.DataFrame(self.history)

    def predict(self, records: Sequence[SequenceRecord], **kwargs: Any) -> list[np.ndarray]:
        """See :func:`predict`."""
        return predict(self, records, **kwargs)

    def evaluate(self, records: Sequence[SequenceRecord], **kwargs: Any) -> pd.DataFrame:
        """See :func:`evaluate`."""
        return evaluate(self, records, **kwargs)

    def _meta(self) -> dict[str, Any]:
        return {
            "targets": list(self.targets), "rate_hz": self.rate_hz, "options": self.options,
            "history": self.history, "best_epoch": self.best_epoch, "label_stats": self.label_stats,
        }

    def save(self, path: str | Path) -> Path:
        """Write one checkpoint (state_dict + config JSON + normalization) and a readable ``<stem>.json`` beside it.

        Both files are written atomically (:func:`emotools.fileio.atomic_write`).
        """
        path = Path(path)
        _atomic_save({
            "format": CHECKPOINT_FORMAT,
            "config": json.dumps(self.model.config.to_dict()),
            "meta": json.dumps(self._meta()),
            "normalization": json.dumps(self.normalizer.state_dict()),
            "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
        }, path)
        write_text(path.with_suffix(".json"),
                   json.dumps({"model": self.model.config.to_dict(), **self._meta()}, indent=2, default=float))
        return path


def load(path: str | Path, *, device: str | None = None) -> TrainedModel:
    """Load a :class:`TrainedModel` written by :meth:`TrainedModel.save` (``weights_only=True``).

    Raises:
        TrainingError: missing file or not an emotools checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise TrainingError(path, "no such checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise TrainingError(path, f"not a loadable checkpoint ({type(error).__name__}: {error})") from error
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(path, "not an emotools model checkpoint")
    model = SequenceRegressor(config_from_dict(json.loads(ckpt["config"])))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, KeyError, TypeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TrainingError(path, f"the weights do not fit the model config ({first})") from None
    model.to(_device(device)).eval()
    meta = json.loads(ckpt["meta"])
    return TrainedModel(
        model=model, normalizer=Normalizer.from_state(json.loads(ckpt["normalization"])),
        targets=tuple(meta["targets"]), rate_hz=meta["rate_hz"], options=meta["options"],
        history=meta["history"], best_epoch=meta["best_epoch"], label_stats=meta["label_stats"],
    )


def _atomic_save(obj: Any, path: Path) -> None:
    with atomic_write(path) as temporary:
        torch.save(obj, temporary)


def _device(device: str | None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


# --------------------------------------------------------------------------- prediction


def _forward(model: SequenceRegressor, xs: Sequence[np.ndarray], batch_size: int,
             device: torch.device) -> list[np.ndarray]:
    # Full-sequence prediction, batched by similar length; results in input order.
    order = sorted(range(len(xs)), key=lambda i: len(xs[i]))
    out: list[np.ndarray | None] = [None] * len(xs)
    model.eval()
    with torch.inference_mode():
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            x, lengths = pad([xs[i] for i in idx])
            pred = model(x.to(device), lengths.to(device)).float().cpu().numpy()
            for j, i in enumerate(idx):
                out[i] = pred[j, : len(xs[i])]
    return out  # type: ignore[return-value]


def predict(
    trained: TrainedModel, records: Sequence[SequenceRecord], *, batch_size: int = 8, device: str | None = None
) -> list[np.ndarray]:
    """Predict full recordings (never chunked), after the model's own normalization.

    Returns:
        One ``(time_i, targets)`` float32 array per record, columns ``trained.targets``.
    """
    if not records:
        return []
    n_features = trained.model.config.n_features
    for rec in records:
        if rec.x.shape[1] != n_features:
            raise TrainingError(rec.id, f"{rec.x.shape[1]} features, the model expects {n_features}")
    dev = _device(device) if device else next(trained.model.parameters()).device
    trained.model.to(dev)
    normed = trained.normalizer.transform(records)
    return _forward(trained.model, [r.x for r in normed], batch_size, dev)


def evaluate(
    trained: TrainedModel | Sequence[np.ndarray], records: Sequence[SequenceRecord], *,
    targets: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Scores per target under both CCC protocols, each named.

    Args:
        trained: a :class:`TrainedModel` (predicts ``records``) or predictions,
            one ``(time_i, targets)`` array per record (e.g. post-processed).
        records: labelled records.
        targets: names of the prediction columns (default: the model's, or
            the records' target names).

    Returns:
        One row per target: ``ccc_concat`` (CCC over all recordings
        concatenated: AVEC 2019 / MuSe), ``ccc_per_recording`` (mean of the
        per-recording CCC: AVEC 2018), ``pearson``, ``rmse`` (concatenated),
        ``n_recordings``, ``n_frames``. ``df.attrs["ccc_protocols"]`` names the protocols.
    """
    if isinstance(trained, TrainedModel):
        targets = trained.targets if targets is None else tuple(targets)
        preds = predict(trained, records)
    else:
        preds = list(trained)
    if targets is None:
        targets = records[0].target_names if records else ()
    if len(preds) != len(records):
        raise TrainingError("evaluate", f"{len(preds)} predictions for {len(records)} records")
    truths = []
    for rec in records:
        if rec.y is None:
            raise TrainingError(rec.id, "cannot evaluate an unlabelled record")
        truths.append(rec.select_targets(targets).y)
    concat = protocol_ccc(truths, preds, CCCProtocol.CONCAT)
    per_rec = protocol_ccc(truths, preds, CCCProtocol.PER_RECORDING)
    T, P = np.concatenate(truths), np.concatenate([np.asarray(p).reshape(len(p), -1) for p in preds])
    rows = [
        {
            "target": t, "ccc_concat": concat[k], "ccc_per_recording": per_rec[k],
            "pearson": metrics.pearson(T[:, k], P[:, k]), "rmse": metrics.rmse(T[:, k], P[:, k]),
            "n_recordings": len(records), "n_frames": len(T),
        }
        for k, t in enumerate(targets)
    ]
    df = pd.DataFrame(rows)
    df.attrs["ccc_protocols"] = {
        "ccc_concat": CCC_PROTOCOL_NAMES[CCCProtocol.CONCAT],
        "ccc_per_recording": CCC_PROTOCOL_NAMES[CCCProtocol.PER_RECORDING],
    }
    return df


# --------------------------------------------------------------------------- fit


def _data_fingerprint(*record_lists: Sequence[SequenceRecord]) -> str:
    h = hashlib.sha1()
    for records in record_lists:
        for r in records:
            h.update(r.id.encode())
            h.update(r.x.tobytes())
            if r.y is not None:
                h.update(r.y.tobytes())
        h.update(b"|")
    return h.hexdigest()


def _check_records(records: Sequence[SequenceRecord], what: str, targets: tuple[str, ...]) -> None:
    if not records:
        raise TrainingError("fit", f"no {what} records")
    nf = records[0].x.shape[1]
    for r in records:
        if r.y is None:
            raise TrainingError("fit", f"{what} record {r.id} has no labels")
        if r.x.shape[1] != nf:
            raise TrainingError("fit", f"{what} record {r.id} has {r.x.shape[1]} features, {records[0].id} has {nf}")
        missing = [t for t in targets if t not in r.target_names]
        if missing:
            raise TrainingError("fit", f"{what} record {r.id} lacks target(s) {missing} (has {r.target_names})")


def _rng_state(gen: torch.Generator) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "shuffle": gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    gen.set_state(state["shuffle"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def fit(
    model: str | ModelConfig,
    train: Sequence[SequenceRecord],
    dev: Sequence[SequenceRecord] | None = None,
    options: FitOptions | None = None,
    *,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = True,
    progress: bool = True,
    callback: Callable[[dict[str, float]], None] | None = None,
    device: str | None = None,
) -> TrainedModel:
    """Train a sequence model; keep the epoch with the best dev CCC.

    What to train is ``model`` and ``options``; the keyword arguments only
    say where and how to run it (``device`` decides what
    ``options.precision="auto"`` means there: :func:`resolve_precision`).

    Args:
        model: a registered name (``"lstm"``, ...) or a :class:`ModelConfig`
            (its ``n_features`` / ``n_targets`` are set from the data).
        train: labelled training records (full recordings; chunked here).
        dev: labelled dev records for early stopping (full recordings).
            Without dev, the last epoch is kept.
        options: a :class:`FitOptions` (default: ``FitOptions()``); one
            model per target: :func:`fit_each_target`.
        checkpoint_dir: write ``last.pt`` every epoch and ``model.pt`` /
            ``model.json`` for the best model; with ``resume`` an existing
            ``last.pt`` of the same run is continued.
        resume: continue from ``checkpoint_dir/last.pt`` if present.
        progress: tqdm bar over epochs.
        callback: called with each epoch's history row (after checkpointing).
        device: ``"cuda"`` / ``"cpu"``; default cuda when available.

    Returns:
        The :class:`TrainedModel` (best epoch's weights).

    Raises:
        TrainingError: empty / unlabelled records, unknown targets, options
            that are not :class:`FitOptions`, or a checkpoint of a different
            run in ``checkpoint_dir``.
    """
    from ..progress import tqdm

    if options is None:
        options = FitOptions()
    if not isinstance(options, FitOptions):
        raise TrainingError("options", f"must be a FitOptions, got {type(options).__name__}")
    if isinstance(dev, FitOptions):
        raise TrainingError("dev", "got FitOptions: pass them after dev (None for no dev) or as options=")
    targets = options.targets or (tuple(train[0].target_names) if train else ())
    _check_records(train, "train", targets)
    if dev:
        _check_records(dev, "dev", targets)
    n_features = train[0].x.shape[1]
    if isinstance(model, ModelConfig):
        config_dict = {**model.to_dict(), **options.model_options}
    else:
        config_dict = {"name": model, **options.model_options}
    config_dict.update(n_features=n_features, n_targets=len(targets))
    config = config_from_dict(config_dict)
    o = options
    rate_hz = float(train[0].rate_hz)
    dev_t = _device(device)

    train = [r.select_targets(targets) for r in train]
    dev = [r.select_targets(targets) for r in dev] if dev else []
    normalizer = Normalizer(o.normalization).fit(train)
    train_n = normalizer.transform(train)
    dev_n = normalizer.transform(dev) if dev else []
    chunks = chunk(train_n, length_s=o.chunk_s, hop_s=o.hop_s) if o.chunk_s else train_n
    y_train = np.concatenate([r.y for r in train])
    label_stats = {t: {"mean": float(y_train[:, k].mean()), "std": float(y_train[:, k].std())}
                   for k, t in enumerate(targets)}
    precision = resolve_precision(o.precision, dev_t)
    fingerprint = {"options": o.fingerprint(config, targets, dev_t), "data": _data_fingerprint(train, dev)}
    saved_options = {"model": config.to_dict(), **o.replace(targets=targets, precision=precision).to_dict()}

    with torch.random.fork_rng(devices=[dev_t.index or 0] if dev_t.type == "cuda" else []):
        torch.manual_seed(o.seed)
        net = SequenceRegressor(config).to(dev_t)
        # foreach: one multi-tensor update instead of a Python loop over parameters; bit-identical to it on CPU,
        # and the default on CUDA already. It matters where steps are tiny (batches of 3 length-1 vectors).
        optim = torch.optim.Adam(net.parameters(), lr=o.lr, weight_decay=o.weight_decay, foreach=True)
        gen = torch.Generator().manual_seed(o.seed)
        state = {"epoch": 0, "step": 0, "history": [], "best_score": -math.inf, "best_epoch": 0,
                 "best_state": None, "bad_epochs": 0, "stopped": False}

        ckdir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        if ckdir is not None:
            ckdir.mkdir(parents=True, exist_ok=True)
            last = ckdir / "last.pt"
            if resume and last.is_file():
                state = _resume(last, fingerprint, net, optim, gen)

        def trained_model() -> TrainedModel:
            return TrainedModel(
                model=net, normalizer=normalizer, targets=targets, rate_hz=rate_hz, options=saved_options,
                history=list(state["history"]), best_epoch=state["best_epoch"], label_stats=label_stats,
            )

        total_steps = o.epochs * math.ceil(len(chunks) / o.batch_size)  # the cosine schedule spans them
        batches = _Batches(chunks, dev_t)
        bar = tqdm(range(state["epoch"], o.epochs), desc=f"fit {config.name}", disable=not progress,
                   initial=state["epoch"], total=o.epochs)
        for epoch in bar:
            if state["stopped"]:
                break
            started = time.perf_counter()
            net.train()
            perm = torch.randperm(len(chunks), generator=gen).tolist()
            losses, preds, truths = [], [], []  # kept on the device: one host copy per epoch, not per step
            for s in range(0, len(perm), o.batch_size):
                x, lengths, y = batches.batch(perm[s : s + o.batch_size])
                lr = step_lr(o, state["step"], total_steps)
                for group in optim.param_groups:
                    group["lr"] = lr
                mask = lengths_to_mask(lengths, x.shape[1])
                with torch.autocast(dev_t.type, dtype=torch.bfloat16, enabled=precision == "bfloat16"):
                    pred = net(x, lengths)
                pred = pred.float()  # the loss in float32
                batch_loss = compute_loss(y, pred, mask, o.loss)
                optim.zero_grad(set_to_none=True)
                batch_loss.backward()
                if o.clip_norm:
                    torch.nn.utils.clip_grad_norm_(net.parameters(), o.clip_norm)
                optim.step()
                state["step"] += 1
                losses.append(batch_loss.detach() * len(x))
                preds.append(pred.detach()[mask])
                truths.append(y[mask])
            train_ccc = protocol_ccc([torch.cat(truths).float().cpu().numpy()],
                                     [torch.cat(preds).float().cpu().numpy()], CCCProtocol.CONCAT)
            row: dict[str, float] = {"epoch": epoch + 1, "train_loss": float(torch.stack(losses).sum()) / len(chunks),
                                     "train_ccc": float(np.mean(train_ccc))}
            row.update({f"train_ccc_{t}": float(train_ccc[k]) for k, t in enumerate(targets)})
            if dev_n:
                dpred = _forward(net, [r.x for r in dev_n], o.batch_size, dev_t)
                dtrue = [r.y for r in dev_n]
                dev_ccc = protocol_ccc(dtrue, dpred, o.ccc_protocol)
                P = torch.from_numpy(np.concatenate(dpred))[None]
                Y = torch.from_numpy(np.concatenate(dtrue))[None]
                row["dev_loss"] = float(compute_loss(Y, P, torch.ones(P.shape[:2], dtype=torch.bool), o.loss))
                row["dev_ccc"] = float(np.mean(dev_ccc))
                row.update({f"dev_ccc_{t}": float(dev_ccc[k]) for k, t in enumerate(targets)})
                score = row["dev_ccc"] if math.isfinite(row["dev_ccc"]) else -math.inf
            else:
                score = float(epoch)  # no dev: the last epoch is the best
            row["lr"] = optim.param_groups[0]["lr"]
            row["seconds"] = time.perf_counter() - started
            state["history"].append(row)
            state["epoch"] = epoch + 1
            if score > state["best_score"]:
                state.update(best_score=score, best_epoch=epoch + 1, bad_epochs=0,
                             best_state={k: v.detach().cpu().clone() for k, v in net.state_dict().items()})
                if ckdir is not None:
                    trained_model().save(ckdir / "model.pt")
            else:
                state["bad_epochs"] += 1
                if dev_n and state["bad_epochs"] >= o.patience:
                    state["stopped"] = True
            if ckdir is not None:
                _atomic_save({
                    "format": CHECKPOINT_FORMAT + "+resume", "fingerprint": json.dumps(fingerprint),
                    "model": net.state_dict(), "optimizer": optim.state_dict(), "rng": _rng_state(gen),
                    "state": {**state, "history": json.dumps(state["history"])},
                }, ckdir / "last.pt")
            bar.set_postfix(loss=f"{row['train_loss']:.3f}", dev_ccc=f"{row.get('dev_ccc', float('nan')):.3f}")
            if callback is not None:
                callback(row)
            if state["stopped"]:
                break
        bar.close()

    if state["best_state"] is not None:
        net.load_state_dict(state["best_state"])
    net.eval()
    return trained_model()


class _Batches:
    """Training batches ``(x, lengths, y)`` on the device, by chunk index.

    Chunks of one length (length-1 utterance vectors, fixed-length chunks)
    are stacked on the device once and indexed per step: the same tensors
    :func:`~emotools.sequences.pad` would build, without its per-step cost,
    which dominates steps of tiny batches (the original protocol's batch of
    3 length-1 vectors). Mixed lengths are zero-padded per batch.
    """

    def __init__(self, chunks: Sequence[SequenceRecord], device: torch.device) -> None:
        self.chunks, self.device = chunks, device
        self.stacked: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        if chunks and len({len(r) for r in chunks}) == 1:
            x, lengths = pad([r.x for r in chunks])
            y, _ = pad([r.y for r in chunks])
            self.stacked = (x.to(device), lengths.to(device), y.to(device))

    def batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.stacked is not None:
            index = torch.as_tensor(indices, dtype=torch.long, device=self.device)
            return tuple(t.index_select(0, index) for t in self.stacked)  # type: ignore[return-value]
        batch = [self.chunks[i] for i in indices]
        x, lengths = pad([r.x for r in batch])
        y, _ = pad([r.y for r in batch])
        return x.to(self.device), lengths.to(self.device), y.to(self.device)


def _resume(path: Path, fingerprint: dict[str, Any], net: torch.nn.Module, optim: torch.optim.Optimizer,
            gen: torch.Generator) -> dict[str, Any]:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise TrainingError(path, f"cannot resume, unreadable checkpoint ({type(error).__name__}: {error})") from error
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT + "+resume":
        raise TrainingError(path, "not an emotools resume checkpoint")
    saved, now = json.loads(ckpt["fingerprint"]), json.loads(json.dumps(fingerprint))
    if saved != now:
        diff = fingerprint_differences(saved["options"], now["options"])
        if saved["data"] != now["data"]:
            diff.append("data")
        raise TrainingError(
            path, f"written by a different run (differs in {diff}); "
            "use another checkpoint_dir or resume=False to start over"
        )
    net.load_state_dict(ckpt["model"])
    optim.load_state_dict(ckpt["optimizer"])
    _set_rng_state(ckpt["rng"], gen)
    state = dict(ckpt["state"])
    state["history"] = json.loads(state["history"])
    return state


def fit_each_target(
    model: str | ModelConfig, train: Sequence[SequenceRecord], dev: Sequence[SequenceRecord] | None = None,
    options: FitOptions | None = None, *, checkpoint_dir: str | os.PathLike | None = None, **runtime: Any,
) -> dict[str, TrainedModel]:
    """One model per target (as the original project trained them): ``{target: TrainedModel}``.

    Each target is trained as :func:`fit` with ``options`` restricted to it
    (``options.targets``, default: all of the records'); ``runtime`` are
    :func:`fit`'s keyword arguments; checkpoints go to ``checkpoint_dir/<target>/``.
    """
    options = options or FitOptions()
    targets = options.targets or tuple(train[0].target_names)
    return {
        t: fit(model, train, dev, options.replace(targets=(t,)),
               checkpoint_dir=None if checkpoint_dir is None else Path(checkpoint_dir) / t, **runtime)
        for t in targets
    }
