"""Crash and resume: SIGKILL a real extraction or training process at random moments, resume, get the same result.

Extraction: ``python -m emotools extract`` on two worker processes, killed
five times (seeded moments: once during start-up, then each time a random
number of recordings after the last kill, plus a random fraction of a
recording), resumed each time. The final store must equal an uninterrupted
run's byte for byte, hold no temporary file, and no recording finished
before a kill may be computed again.

Training: :func:`emotools.training.fit` with ``checkpoint_dir`` in a
subprocess, killed at a random moment after epoch k; resumed here. The
result must equal an uninterrupted fit with the same seed, weight for
weight, and the resumed fit must run only the missing epochs.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from fixtures_bad import add_recording, emotools_env, labels, training_records, voiced

from emotools import training
from emotools.corpora import scan
from emotools.features import FeatureSpec, FeatureStore, extract

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest

TESTS = Path(__file__).parent
SEED = 20240509
KILLS = 5


def _spawn(argv: list[str], *, env: dict[str, str], cwd: Path, stdout=subprocess.DEVNULL) -> subprocess.Popen:
    """A child in its own process group, so one SIGKILL reaches its worker processes too."""
    return subprocess.Popen(argv, cwd=cwd, env=env, stdout=stdout, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)


def _wait_until(condition, process: subprocess.Popen, timeout: float = 60.0) -> bool:
    """Poll ``condition`` every 5 ms; False if the process ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if process.poll() is not None:
            return condition()
        time.sleep(0.005)
    raise TimeoutError("the child made no progress")


# --------------------------------------------------------------------------- extraction


def _feature_files(out: Path) -> dict[str, tuple[int, int]]:
    """Visible feature files -> (inode, mtime_ns): a rewrite changes both."""
    folder = out / "features"
    if not folder.is_dir():
        return {}
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.glob("*.parquet")
            if not p.name.startswith(".")}  # a killed run's temporary files are hidden


# Enough recordings that five kills, each a few recordings further on, never
# reach the end even when two workers finish several files between polls.
RECORDINGS = 48


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("resume") / "corpus"
    rng = np.random.default_rng(SEED)
    for k in range(RECORDINGS):
        seconds = round(float(rng.uniform(3.0, 5.0)), 1)
        add_recording(root, f"rec{k:02d}", voiced(seconds, seed=100 + k), annotation=labels(seconds, seed=k),
                      speaker=f"spk{k % 4}")
    return root


def test_extraction_killed_five_times_ends_like_an_uninterrupted_run(small_corpus: Path, tmp_path: Path) -> None:
    spec = FeatureSpec(level="windowed", window=1.0, hop=0.1)
    reference = extract(scan("annotated", small_corpus, progress=False), spec, out=tmp_path / "reference", jobs=1,
                        progress=False)
    total = len(reference)
    assert total == RECORDINGS and reference.failures.empty

    out = tmp_path / "killed"
    argv = [sys.executable, "-m", "emotools", "extract", str(small_corpus), "--corpus", "annotated", "--level",
            "windowed", "--window", "1.0", "--hop", "0.1", "--jobs", "2", "--out", str(out), "--no-progress"]
    env = emotools_env(tmp_path / "home")
    rng = np.random.default_rng(SEED)
    finished: dict[str, tuple[int, int]] = {}  # files seen after each kill, with their identity
    log, partials = [], []  # feature files and temporary files after each kill
    for round_ in range(KILLS):
        before = len(_feature_files(out))
        child = _spawn(argv, env=env, cwd=tmp_path)
        if round_ == 0:  # during start-up, scanning or the first recordings
            time.sleep(rng.uniform(0.2, 1.5))
            wanted = before
        else:  # a random number of recordings further, then a random fraction of the next one
            wanted = min(before + int(rng.integers(1, 4)), total)
            _wait_until(lambda wanted=wanted: len(_feature_files(out)) >= wanted, child)
            time.sleep(rng.uniform(0.0, 0.12))
        exited = child.poll() is not None
        _kill(child)
        now = _feature_files(out)
        assert not exited, f"round {round_}: the run finished before the kill ({len(now)} files); use more audio"
        assert not (out / "summary.json").exists(), "a killed run must not look finished"
        for name, identity in finished.items():
            assert now.get(name) == identity, f"round {round_}: {name} was lost or rewritten after a kill"
        finished = now
        log.append(len(now))
        partials.append(len(list(out.rglob(".partial-*"))))
    assert log[-1] < total and log[-1] > log[0], f"feature files after each kill: {log}"
    print(f"feature files after each kill: {log}; temporary files left by each kill: {partials}")

    final = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    store = FeatureStore(out)
    assert (store.summary["reused"], store.summary["processed"], store.summary["failed"]) == (
        len(finished), total - len(finished), 0), f"{final.stdout} (files after each kill: {log})"
    for name, identity in finished.items():
        assert _feature_files(out)[name] == identity, f"{name} was computed again"

    # The same store as the uninterrupted run: same files, same bytes, same index; nothing else.
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == sorted(
        p.relative_to(reference.root) for p in reference.root.rglob("*"))
    for path in (reference.root / "features").iterdir():
        assert (out / "features" / path.name).read_bytes() == path.read_bytes(), path.name
    pd.testing.assert_frame_equal(store.index, reference.index)
    for utterance in reference.utterances:
        np.testing.assert_array_equal(store.load(utterance).to_numpy(), reference.load(utterance).to_numpy())
    assert store.failures.empty


# --------------------------------------------------------------------------- training

FIT = training.FitOptions(epochs=6, batch_size=4, chunk_s=8.0, lr=3e-3, warmup_steps=4, patience=100, seed=7,
                          model_options={"hidden": 24, "dropout": 0.2})
ARCH = "lstm"


def _data() -> tuple[list, list]:
    return training_records(8, seed=1), training_records(2, seed=2, split="dev")


def _fit(checkpoint_dir: Path | None, *, resume: bool = True, callback=None, **options) -> training.TrainedModel:
    """``fit`` with :data:`FIT`, some of its options replaced by ``options``."""
    train, dev = _data()
    return training.fit(ARCH, train, dev, FIT.replace(**options), checkpoint_dir=checkpoint_dir, resume=resume,
                        callback=callback, progress=False)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    folder = tmp_path_factory.mktemp("uninterrupted")
    trained = _fit(folder)
    return SimpleNamespace(trained=trained, folder=folder)


def _same_run(resumed: training.TrainedModel, reference: training.TrainedModel) -> None:
    a, b = resumed.model.state_dict(), reference.model.state_dict()
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs"
    strip = lambda history: [{k: v for k, v in row.items() if k != "seconds"} for row in history]  # noqa: E731
    assert strip(resumed.history) == strip(reference.history)
    assert resumed.best_epoch == reference.best_epoch


def _same_checkpoints(folder: Path, reference: Path) -> None:
    a, b = training.load(folder / "model.pt"), training.load(reference / "model.pt")
    for name, tensor in a.model.state_dict().items():
        assert torch.equal(tensor, b.model.state_dict()[name]), name
    assert a.best_epoch == b.best_epoch
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")], "temporary checkpoint left behind"


def test_uninterrupted_fit_learns_and_is_repeatable(uninterrupted: SimpleNamespace, tmp_path: Path) -> None:
    history = uninterrupted.trained.history
    assert len(history) == FIT.epochs and history[-1]["train_loss"] < history[0]["train_loss"]
    assert math.isfinite(history[-1]["dev_ccc"])
    _same_run(_fit(None), uninterrupted.trained)  # the baseline of the tests below is deterministic


class _Crash(RuntimeError):
    pass


@pytest.mark.parametrize("crash_after", [1, 4])
def test_fit_crashing_after_epoch_k_resumes_to_the_same_result(
    uninterrupted: SimpleNamespace, tmp_path: Path, crash_after: int
) -> None:
    def crash(row: dict) -> None:
        if row["epoch"] == crash_after:
            raise _Crash(f"after epoch {crash_after}")

    with pytest.raises(_Crash):
        _fit(tmp_path, callback=crash)
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert state["state"]["epoch"] == crash_after
    epochs_run = []
    resumed = _fit(tmp_path, callback=lambda row: epochs_run.append(row["epoch"]))
    assert epochs_run == list(range(crash_after + 1, FIT.epochs + 1)), "resume must run only the missing epochs"
    _same_run(resumed, uninterrupted.trained)
    _same_checkpoints(tmp_path, uninterrupted.folder)


def test_a_checkpoint_of_another_run_is_not_resumed(uninterrupted: SimpleNamespace, tmp_path: Path) -> None:
    import shutil

    shutil.copy(uninterrupted.folder / "last.pt", tmp_path / "last.pt")
    with pytest.raises(training.TrainingError, match=r"written by a different run \(differs in \['seed'\]\)"):
        _fit(tmp_path, seed=8)
    # resume=False starts over and overwrites
    assert len(_fit(tmp_path, seed=8, resume=False, epochs=1).history) == 1


_CHILD = textwrap.dedent("""
    import json, sys
    import torch
    sys.path.insert(0, sys.argv[1])
    torch.set_num_threads(int(sys.argv[3]))
    import test_resume as t

    def report(row):
        print(json.dumps({"epoch": row["epoch"], "seconds": row["seconds"]}), flush=True)

    t._fit(__import__("pathlib").Path(sys.argv[2]), callback=report)
    print("done", flush=True)
""")


def test_fit_killed_in_a_subprocess_resumes_from_its_last_checkpoint(
    uninterrupted: SimpleNamespace, tmp_path: Path
) -> None:
    rng = np.random.default_rng(SEED)
    kill_after = int(rng.integers(2, 4))  # after epoch 2 or 3 of 6 (the first one is slower: warm-up)
    folder = tmp_path / "ck"
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    child = _spawn([sys.executable, str(script), str(TESTS), str(folder), "1"],
                   env=emotools_env(tmp_path / "home"), cwd=tmp_path, stdout=subprocess.PIPE)
    seen = []
    for line in child.stdout:
        row = json.loads(line)
        seen.append(row["epoch"])
        if row["epoch"] == kill_after:
            # somewhere inside the next epoch, or its checkpoint write
            time.sleep(rng.uniform(0.0, 0.9) * row["seconds"])
            break
    _kill(child)
    assert seen == list(range(1, kill_after + 1)), child.stderr.read()
    done = torch.load(folder / "last.pt", weights_only=True)["state"]["epoch"]
    assert kill_after <= done < FIT.epochs, "the child finished before the kill"

    epochs_run = []
    resumed = _fit(folder, callback=lambda row: epochs_run.append(row["epoch"]))
    assert epochs_run == list(range(done + 1, FIT.epochs + 1))
    _same_run(resumed, uninterrupted.trained)
    _same_checkpoints(folder, uninterrupted.folder)
