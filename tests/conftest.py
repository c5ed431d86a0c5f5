"""Shared fixtures: every test writes into temporary folders, never the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

#: node ids (or their prefixes: a module, a test) of the tests ``pytest -m "not slow"`` leaves out.
SLOW_TESTS: tuple[str, ...] = (
    # whole modules that start notebooks, servers, worker processes or the smoke main job
    "tests/test_determinism.py",
    "tests/test_jupyter.py",
    "tests/test_predict.py",
    "tests/test_resume.py",
    "tests/test_experiments.py",
    "tests/test_bad_inputs.py",
    "tests/test_store.py",
    # single tests over a few seconds each (pytest --durations)
    "tests/test_study.py::test_cost_harness",
    "tests/test_study.py::test_run_sweep",
    "tests/test_study.py::test_measure_costs",
    "tests/test_models.py::test_each_architecture_overfits_one_small_batch",
    "tests/test_features.py::test_dask",
    "tests/test_features.py::test_a_dask_cluster",
    "tests/test_plots.py::test_architecture_colours_are_distinct_and_stable",
    "tests/test_synth.py::test_each_espeak_parameter",
    "tests/test_synth.py::test_worker_processes",
    "tests/test_original.py::test_run_original_on_random_features_learns_nothing",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests listed in :data:`SLOW_TESTS` as ``slow`` (one list, not a decorator per module)."""
    for item in items:
        if item.nodeid.startswith(SLOW_TESTS):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def run_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Session-wide data/results/figures/cache folders for runs of notebooks and CLIs."""
    root = tmp_path_factory.mktemp("emotools-run")
    return {name: root / name for name in ("data", "results", "figures", "cache")}


@pytest.fixture(scope="session", autouse=True)
def temporary_cache(run_dirs: dict[str, Path]):
    """Disposable caches (e.g. openSMILE's frame-mode includes) go to the session's folder, not the repository."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMOTOOLS_CACHE_DIR", str(run_dirs["cache"]))
        yield


@pytest.fixture()
def isolated_dirs(run_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Point EMOTOOLS_*_DIR at the session's temporary folders (inherited by kernels)."""
    for name, path in run_dirs.items():
        monkeypatch.setenv(f"EMOTOOLS_{name.upper()}_DIR", str(path))
    return run_dirs


@pytest.fixture(scope="module")
def smoke_corpus(run_dirs: dict[str, Path]) -> Path:
    """The built-in corpus' smoke preset, rendered once per test session into the session's data folder."""
    from emotools import synth

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMOTOOLS_DATA_DIR", str(run_dirs["data"]))
        return synth.ensure_corpus("smoke", seed=0, jobs=1, progress=False)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small models train faster (and identically run to run) on one thread; restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
