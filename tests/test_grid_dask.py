"""The training grid on Dask: equal to the local grid, killed workers retried, failures recorded, TLS."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from fixtures_bad import training_records, voiced

from emotools import experiments, parallel
from emotools.features import FeatureSpec, extract
from emotools.training import FitOptions

pytestmark = pytest.mark.slow  # starts Dask clusters and worker processes

GRID = dict(dataset="toy", label_protocol="annotation", architectures=["mlp", "tcn"], progress=False,
            fit_options=FitOptions(epochs=2, chunk_s=6.0, batch_size=2), postprocess_chain=True)


@pytest.fixture(scope="module")
def records() -> list:
    """Tiny learnable records: 3 train, 1 dev, 1 test (each 12 s at 10 Hz)."""
    return (training_records(3, frames=120, features=4, seed=1) + training_records(1, frames=120, features=4, seed=2,
                                                                                  split="dev")
            + training_records(1, frames=120, features=4, seed=3, split="test"))


@pytest.fixture(scope="module")
def local_grid(records, tmp_path_factory) -> experiments.GridResult:
    """The reference: every cell trained here, in this process."""
    return experiments.run_grid(records, run_dir=tmp_path_factory.mktemp("local"), jobs=1, **GRID)


@pytest.fixture(scope="module")
def cluster() -> Iterator:
    """A Dask cluster as a user starts one: 2 worker processes, 1 thread each; a dead worker's task fails at once."""
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None, silence_logs=logging.ERROR) as running:
            yield running


def assert_same_grid(a: experiments.GridResult, b: experiments.GridResult) -> None:
    """Same results table and bit-identical test predictions, cell by cell."""
    pd.testing.assert_frame_equal(a.results, b.results)
    assert [(c.architecture, c.mode, c.seed) for c in a.cells] == [(c.architecture, c.mode, c.seed) for c in b.cells]
    for x, y in zip(a.cells, b.cells):
        for p, q in zip(x.test_predictions, y.test_predictions):
            np.testing.assert_array_equal(p, q)


def test_a_cluster_grid_equals_the_local_grid_and_a_rerun_needs_no_cluster(records, local_grid, cluster,
                                                                           tmp_path) -> None:
    grid = experiments.run_grid(records, run_dir=tmp_path, scheduler=cluster.scheduler_address, **GRID)
    assert_same_grid(grid, local_grid)
    assert grid.failed.empty and list(grid.failed.columns) == experiments.FAILED_COLUMNS
    # the workers wrote the checkpoints and finished cells under run_dir, as a local run does
    assert sorted(p.parent.name for p in tmp_path.glob("*/*/cell.json")) == ["mlp-joint-seed0", "tcn-joint-seed0"]
    assert len(list(tmp_path.glob("*/*/*/model.pt"))) == 2
    # every cell cached: a rerun trains nothing, so it does not even reach for the (unreachable) scheduler
    again = experiments.run_grid(records, run_dir=tmp_path, scheduler="tcp://127.0.0.1:9", **GRID)
    assert_same_grid(again, local_grid)


def test_a_worker_killed_while_training_a_cell_is_retried_and_the_grid_finishes(records, local_grid, cluster,
                                                                                 tmp_path, caplog) -> None:
    from distributed import Client

    killed: list[str] = []

    def kill_the_first_worker_that_trains() -> None:
        with Client(cluster.scheduler_address, timeout="20s") as watcher:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                busy = [w for w, keys in watcher.processing().items()
                        if any("_train_cell_job" in str(k) for k in keys)]
                if busy:
                    pid = watcher.run(os.getpid, workers=busy[:1])[busy[0]]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(busy[0])
                    return
                time.sleep(0.02)

    killer = threading.Thread(target=kill_the_first_worker_that_trains, daemon=True)
    killer.start()
    with caplog.at_level(logging.WARNING, logger="emotools"):
        grid = experiments.run_grid(records, run_dir=tmp_path, scheduler=cluster.scheduler_address, **GRID)
    killer.join(timeout=30)
    assert killed, "no worker was seen training a cell"
    retried = [r.getMessage() for r in caplog.records if "trying it again" in r.getMessage()]
    assert len(retried) == 1 and "KilledWorker" in retried[0] and retried[0].startswith("cell "), retried
    assert grid.failed.empty
    assert_same_grid(grid, local_grid)  # the retried cell trained anew, to the same numbers


@pytest.mark.parametrize("backend", ["in-process", "cluster"])
def test_a_cell_failing_twice_is_recorded_the_others_finish_and_a_rerun_trains_only_it(
        backend, records, local_grid, cluster, tmp_path, caplog) -> None:
    where = {"jobs": 1} if backend == "in-process" else {"scheduler": cluster.scheduler_address}
    grid_options = {**GRID, "architectures": ["mlp", "mlp:no_such_option=1", "tcn"]}
    with caplog.at_level(logging.WARNING, logger="emotools"):
        grid = experiments.run_grid(records, run_dir=tmp_path, **where, **grid_options)
    messages = [r.getMessage() for r in caplog.records]
    assert [m.split(": ")[0] for m in messages if "trying it again" in m] == ["cell mlp:no_such_option=1 joint seed 0"]
    [left_out] = [m for m in messages if "failed twice" in m]
    assert left_out.startswith("toy/annotation cell mlp:no_such_option=1 joint seed 0 failed twice")
    [failed] = grid.failed.to_dict("records")
    assert (failed["architecture"], failed["mode"], failed["seed"]) == ("mlp:no_such_option=1", "joint", 0)
    assert failed["reason"].startswith("ModelConfigError: ") and "no_such_option" in failed["reason"]
    assert_same_grid(grid, local_grid)  # the two good cells, as trained alone

    finished = sorted(tmp_path.glob("*/*/cell.json"))
    stamps = [p.stat().st_mtime_ns for p in finished]
    again = experiments.run_grid(records, run_dir=tmp_path, **where, **grid_options)
    assert [p.stat().st_mtime_ns for p in finished] == stamps  # finished cells served from the cache
    assert len(again.failed) == 1 and len(again.cells) == 2


def test_every_cell_failing_raises_the_first_error(records, tmp_path) -> None:
    from emotools.models import ModelConfigError

    with pytest.raises(ModelConfigError, match="no_such_option") as raised:
        experiments.run_grid(records, run_dir=tmp_path, **{**GRID, "architectures": ["mlp:no_such_option=1"]})
    assert "every cell of the grid failed (1)" in "".join(getattr(raised.value, "__notes__", []))


DIE_ONCE = """
import os, signal
from pathlib import Path


def die_once(marker):
    # kill this worker process the first time (marker not yet there), return normally the next time
    if not os.path.exists(marker):
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"
"""


def test_run_each_retries_a_dead_local_worker_once_and_reports_a_second_failure(tmp_path, monkeypatch,
                                                                                 caplog) -> None:
    import importlib
    import math

    (tmp_path / "die_once_module.py").write_text(DIE_ONCE)  # a module the spawned workers import in milliseconds
    monkeypatch.syspath_prepend(str(tmp_path))
    die_once = importlib.import_module("die_once_module").die_once
    (tmp_path / "b").touch()  # two tasks (one task would run here); only the first one's worker dies
    markers = [str(tmp_path / "a"), str(tmp_path / "b")]
    with caplog.at_level(logging.WARNING, logger="emotools"):
        outcomes = list(parallel.run_each(die_once, markers, jobs=2, retries=1))
    assert sorted((t, r, e) for t, r, e in outcomes) == [(m, "survived", None) for m in markers]
    assert any(r.getMessage().startswith(f"{markers[0]}: BrokenProcessPool") for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="emotools"):
        outcomes = sorted(parallel.run_each(math.sqrt, [4.0, -1.0], jobs=2, retries=1), key=lambda o: o[0])
    assert [(t, r) for t, r, _ in outcomes] == [(-1.0, None), (4.0, 2.0)]
    assert isinstance(outcomes[0][2], ValueError)
    assert sum("-1.0: ValueError: math domain error" in r.getMessage() for r in caplog.records) == 1


def test_bad_dask_options_are_refused_before_any_work(records, tmp_path) -> None:
    for options, message in (
        ({"scheduler": "tcp://127.0.0.1:1", "dask_workers": 1}, "either scheduler"),
        ({"dask_workers": 0}, "dask_workers must be a positive integer"),
        ({"scheduler": "127.0.0.1"}, "tcp://HOST:PORT or tls://HOST:PORT"),
        ({"scheduler": "tcp://127.0.0.1:1", "security": tmp_path}, "security needs a tls:// scheduler"),
        ({"security": tmp_path}, "security is for a Dask cluster"),
    ):
        with pytest.raises(ValueError, match=message):
            experiments.run_grid(records, run_dir=tmp_path / "never", **options, **GRID)
    assert not (tmp_path / "never").exists()
    with pytest.raises(FileNotFoundError, match="lacks ca.pem, cert.pem, key.pem"):
        parallel.dask_security(tmp_path)


# ------------------------------------------------------------------------ TLS


def make_certificates(folder: Path) -> Path:
    """A CA and one certificate it signed for localhost/127.0.0.1 (the commands docs/cluster.md shows)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cert.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                     "extendedKeyUsage=serverAuth,clientAuth\n")
    commands = [
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=emotools-ca -keyout ca-key.pem -out ca.pem",
        "openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout key.pem -out cert.csr",
        "openssl x509 -req -in cert.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 -extfile cert.ext "
        "-out cert.pem",
    ]
    for command in commands:
        subprocess.run(command.split(), cwd=folder, check=True, capture_output=True)
    return folder


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed: cannot make the test's certificates")
    return make_certificates(tmp_path_factory.mktemp("tls"))


def test_a_tls_cluster_trains_the_grid_and_extracts_and_refuses_a_client_without_certificates(
        records, local_grid, certificates, tmp_path) -> None:
    from distributed import Client, LocalCluster

    wav = tmp_path / "voice.wav"
    sf.write(wav, voiced(2.0, 16000, seed=4), 16000, subtype="PCM_16")
    table = pd.DataFrame({"file": [str(wav)], "utterance": ["voice"]})
    spec = FeatureSpec("eGeMAPSv02", "windowed", window=1.0, hop=0.1)
    local_features = extract(table, spec, out=tmp_path / "local-store", jobs=1, progress=False)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, protocol="tls", host="127.0.0.1",
                      security=parallel.dask_security(certificates), dashboard_address=None,
                      silence_logs=logging.ERROR) as tls:
        assert tls.scheduler_address.startswith("tls://127.0.0.1:")
        with pytest.raises(Exception):  # noqa: B017 - Dask raises TypeError, OSError or a timeout, by version
            Client(tls.scheduler_address, timeout="5s").close()
        grid = experiments.run_grid(records, run_dir=tmp_path / "run", scheduler=tls.scheduler_address,
                                    security=str(certificates), **GRID)
        store = extract(table, spec, out=tmp_path / "tls-store", scheduler=tls.scheduler_address,
                        security=certificates, progress=False)
    assert_same_grid(grid, local_grid)
    assert store.summary["backend"] == f"dask {tls.scheduler_address}" and store.utterances == ["voice"]
    pd.testing.assert_frame_equal(store.load("voice"), local_features.load("voice"))
