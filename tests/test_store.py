"""The feature store never serves bad or stale features.

Damaged feature files (truncated, zeroed, one flipped byte) are refused on
load and extracted again on reuse, with and without the index; audio whose
bytes changed under the same size and mtime is extracted again; a complete
store made read-only loads and re-extracts without writing a byte; two real
extraction processes on one store neither break nor repeat each other's work;
the command line fails when every recording failed; a script without a
``__main__`` guard gets one clear error instead of a broken process pool.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fixtures_bad import add_recording, emotools_env, labels, voiced

from emotools.features import FeatureError, FeatureSpec, FeatureStore, cli, extract, extract_file
from emotools.features.store import RACY_NS, AudioDigests, file_digest, partial_path, verified_entry

SPEC = FeatureSpec(level="windowed", window=1.0, hop=0.1)
NAMES = ["r0", "r1", "r2", "r3"]


def _settle(paths: list[Path]) -> None:
    """Wait until every file changed longer ago than RACY_NS, so its digest may be cached."""
    newest = max(p.stat().st_ctime_ns for p in paths)
    wait = (newest + RACY_NS - time.time_ns()) / 1e9 + 0.05
    if wait > 0:
        time.sleep(wait)


def _table(root: Path, seconds: float = 2.5) -> pd.DataFrame:
    files = [add_recording(root, name, voiced(seconds + 0.5 * k, seed=k)) for k, name in enumerate(NAMES)]
    return pd.DataFrame({"file": [str(f) for f in files], "utterance": NAMES})


@pytest.fixture()
def store(tmp_path: Path) -> tuple[pd.DataFrame, FeatureStore, dict[str, np.ndarray]]:
    table = _table(tmp_path / "corpus")
    done = extract(table, SPEC, out=tmp_path / "store", jobs=1, progress=False)
    return table, done, {u: done.load(u).to_numpy() for u in NAMES}


def _snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` with its inode, size, mtime and ctime (a rename, write or chmod changes one)."""
    out = {}
    for path in [root, *root.rglob("*")]:
        s = path.lstat()
        out[str(path.relative_to(root))] = (s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns)
    return out


# --------------------------------------------------------------------------- damaged feature files


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "zeroed":
        path.write_bytes(bytes(len(data)))
    else:  # one flipped bit in a stored value (not a min or max, which page headers repeat)
        column = pq.read_table(path).column(10).to_numpy()
        value = np.sort(column)[len(column) // 2].astype(np.float32).tobytes()
        position = bytes(data).find(value)
        assert position > 0
        data[position + 1] ^= 0x04
        path.write_bytes(bytes(data))


DAMAGE = {"r0": "truncated", "r1": "zeroed", "r2": "flipped"}  # r3 stays intact


@pytest.mark.parametrize("index_kept", [True, False], ids=["with-index", "interrupted-run"])
def test_damaged_feature_files_are_refused_and_extracted_again(store, index_kept: bool) -> None:
    table, done, expected = store
    for utterance, how in DAMAGE.items():
        _damage(done.root / done.index.set_index("utterance").loc[utterance, "path"], how)
    for utterance in DAMAGE:
        with pytest.raises(FeatureError, match=r"feature file is damaged .*rerun extract"):
            done.load(utterance)
    np.testing.assert_array_equal(done.load("r3").to_numpy(), expected["r3"])
    if not index_kept:  # what a killed run leaves: the files only; each must prove itself by its content digest
        (done.root / "index.parquet").unlink()
    again = extract(table, SPEC, out=done.root, jobs=1, progress=False)
    assert (again.summary["processed"], again.summary["reused"], again.summary["failed"]) == (3, 1, 0)
    for utterance in NAMES:
        np.testing.assert_array_equal(again.load(utterance).to_numpy(), expected[utterance])
    assert FeatureStore(done.root).summary["processed"] == 3  # summary.json is this run's


def test_a_flipped_byte_anywhere_is_caught_without_the_index(store) -> None:
    """Without the index, a file is verified by decoding it: whatever a flipped byte changes is caught.

    Parquet's page CRCs alone miss flips in column names or metadata (a
    renamed column decodes fine); the content digest inside the file covers
    those. A flip that is accepted must decode to exactly the original table.
    """
    _, done, _ = store
    path = done.root / done.index["path"].iloc[0]
    original = path.read_bytes()
    reference = pq.read_table(pa.BufferReader(original))
    assert verified_entry(path)["checksum"] == file_digest(path) == done.index["checksum"].iloc[0]
    caught = accepted = 0
    for position in range(3, len(original), 97):  # pages, schema, metadata and footer alike
        data = bytearray(original)
        data[position] ^= 0x10
        path.write_bytes(bytes(data))
        if verified_entry(path) is None:
            caught += 1
            continue
        accepted += 1  # statistics, padding, the inline copy of column metadata: nothing a reader uses
        assert pq.read_table(pa.BufferReader(bytes(data))).equals(reference, check_metadata=True), position
    path.write_bytes(original)
    assert caught > accepted > 0, (caught, accepted)


# --------------------------------------------------------------------------- content-derived keys


def test_audio_changed_under_the_same_size_and_mtime_is_extracted_again(tmp_path: Path) -> None:
    table = _table(tmp_path / "corpus")
    out = tmp_path / "store"
    _settle([Path(f) for f in table["file"]])
    first = extract(table, SPEC, out=out, jobs=1, progress=False)
    assert first.summary["audio_hashed"] == 4
    again = extract(table, SPEC, out=out, jobs=1, progress=False)
    assert (again.summary["processed"], again.summary["reused"], again.summary["audio_hashed"]) == (0, 4, 0)

    # New samples, same length, same mtime: only the (inode, size, mtime, ctime) stamp's ctime moves.
    path = Path(table["file"][1])
    old = again.load("r1").to_numpy()
    before = path.stat()
    fresh = add_recording(tmp_path / "other", "x", voiced(3.0, seed=77)).read_bytes()
    assert len(fresh) == before.st_size
    with open(path, "r+b") as file:  # in place: the inode stays too
        file.write(fresh)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)

    changed = extract(table, SPEC, out=out, jobs=1, progress=False)
    assert (changed.summary["processed"], changed.summary["reused"], changed.summary["audio_hashed"]) == (1, 3, 1)
    pd.testing.assert_frame_equal(changed.load("r1"), extract_file(path, SPEC))
    assert changed.load("r1").shape == old.shape and not np.array_equal(changed.load("r1").to_numpy(), old)


def test_digests_are_cached_only_for_files_that_settled(tmp_path: Path) -> None:
    path = add_recording(tmp_path / "corpus", "a", voiced(1.0))
    digests = AudioDigests(tmp_path)
    assert digests.digest(path) == file_digest(path) and digests.hashed == 1
    assert digests.digest(path) == file_digest(path) and digests.hashed == 1  # once per run
    digests.save()
    assert len(pd.read_parquet(tmp_path / "audio_digests.parquet")) == 0  # changed just now: not trusted yet
    _settle([path])
    later = AudioDigests(tmp_path)
    later.digest(path)
    assert later.hashed == 1 and later.save()
    cached = AudioDigests(tmp_path)
    assert cached.digest(path) == file_digest(path) and cached.hashed == 0
    assert not cached.save()  # nothing new: nothing written


# --------------------------------------------------------------------------- read-only media


def test_a_complete_read_only_store_loads_and_reextracts_without_writing(tmp_path: Path) -> None:
    table = _table(tmp_path / "corpus")
    out = tmp_path / "store"
    _settle([Path(f) for f in table["file"]])  # so the store keeps every audio digest: complete
    extract(table, SPEC, out=out, jobs=1, progress=False)
    expected = {u: extract_file(f, SPEC).to_numpy() for f, u in zip(table["file"], table["utterance"])}
    modes = {p: p.stat().st_mode for p in [out, *out.rglob("*")]}
    for path in modes:
        path.chmod(stat.S_IMODE(modes[path]) & ~0o222)
    try:
        before = _snapshot(out)
        # As root, chmod does not stop writes (CI runs as root): "wrote nothing" is checked on the tree itself.
        # As another user, any attempted write would also raise PermissionError here.
        store = FeatureStore(out)
        for utterance in NAMES:
            np.testing.assert_array_equal(store.load(utterance).to_numpy(), expected[utterance])
        again = extract(table, SPEC, out=out, jobs=2, progress=False)
        assert (again.summary["processed"], again.summary["reused"], again.summary["failed"]) == (0, 4, 0)
        assert again.summary["audio_hashed"] == 0
        assert _snapshot(out) == before, "a run with nothing to do wrote into the store"
    finally:
        for path, mode in modes.items():
            path.chmod(stat.S_IMODE(mode))


# --------------------------------------------------------------------------- two processes, temporary files


def test_temporary_files_of_a_live_process_are_kept_and_a_dead_ones_removed(store) -> None:
    table, done, _ = store
    target = done.root / "features" / "r0.parquet"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        live = partial_path(target, pid=sleeper.pid)
        gone = partial_path(target, pid=int(dead.stdout))
        for partial in (live, gone):
            partial.write_bytes(b"half a file")
        extract(table, SPEC, out=done.root, jobs=1, progress=False)
        assert live.exists(), "deleted the temporary file of a running process"
        assert not gone.exists(), "kept the temporary file of a dead process"
    finally:
        sleeper.kill()
        sleeper.wait()
    extract(table, SPEC, out=done.root, jobs=1, progress=False)
    assert not live.exists()


def test_two_extract_processes_on_one_store_share_the_work(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    for k in range(8):
        add_recording(root, f"rec{k}", voiced(3.0 + 0.2 * k, seed=k), annotation=labels(3.0 + 0.2 * k, seed=k))
    out = tmp_path / "store"
    argv = [sys.executable, "-m", "emotools", "extract", str(root), "--corpus", "annotated", "--jobs", "2",
            "--out", str(out), "--no-progress"]
    env = emotools_env(tmp_path / "home")
    both = [subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    results = [process.communicate(timeout=300) for process in both]
    assert [process.returncode for process in both] == [0, 0], [err for _, err in results]
    counts = sorted(tuple(map(int, re.search(r"(\d+) extracted, (\d+) reused", out_).groups())) for out_, _ in results)
    assert counts == [(0, 8), (8, 0)], results  # one extracted everything, the other waited and reused it all
    store = FeatureStore(out)
    assert store.failures.empty and len(store) == 8
    assert not [p for p in out.rglob("*") if p.name.startswith(".")], "temporary files left behind"
    for row in store.index.itertuples():
        pd.testing.assert_frame_equal(store.load(row.utterance), extract_file(row.file, SPEC))


# --------------------------------------------------------------------------- exit status and the main guard


def test_the_command_line_fails_when_every_recording_failed(tmp_path: Path, isolated_dirs, capsys) -> None:
    root = tmp_path / "corpus"
    for k in range(2):
        add_recording(root, f"rec{k}", voiced(2.0, seed=k), annotation=labels(2.0, seed=k))
    argv = [str(root), "--corpus", "annotated", "--window", "3.0", "--jobs", "1", "--out", str(tmp_path / "s"),
            "--no-progress"]
    assert cli(argv) == 1
    captured = capsys.readouterr()
    assert "0 extracted, 0 reused from cache, 2 failed" in captured.out
    assert f"error: every recording failed; the reasons are in {tmp_path / 's' / 'failures.csv'}" in captured.err
    assert cli([*argv[:4], "1.0", *argv[5:]]) == 0  # a window they fit: stored, exit status 0
    assert "2 extracted, 0 reused from cache, 0 failed" in capsys.readouterr().out


_SCRIPT = """
import pandas as pd
from emotools.features import FeatureSpec, extract

table = pd.DataFrame({{"file": {files!r}, "utterance": ["a", "b"]}})
{call}
"""


@pytest.mark.parametrize("guarded", [False, True], ids=["no-guard", "guard"])
def test_a_script_without_a_main_guard_gets_a_clear_message(tmp_path: Path, guarded: bool) -> None:
    files = [str(add_recording(tmp_path / "corpus", name, voiced(2.0, seed=k))) for k, name in enumerate("ab")]
    call = f"store = extract(table, FeatureSpec(), out={str(tmp_path / 'store')!r}, jobs=2, progress=False)"
    if guarded:
        call = 'if __name__ == "__main__":\n' + textwrap.indent(call, "    ")
    script = tmp_path / "run_extract.py"
    script.write_text(_SCRIPT.format(files=files, call=call))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=180,
                            env=emotools_env(tmp_path / "home"))
    if guarded:
        assert result.returncode == 0, result.stderr
        assert len(FeatureStore(tmp_path / "store")) == 2
        return
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    line = script.read_text().splitlines().index(call) + 1
    assert last == (f"RuntimeError: {script}, line {line}: extract with jobs=2 starts worker processes, which import "
                    "this script again and would run this line again; put the script's top-level code under "
                    '`if __name__ == "__main__":` (or pass jobs=1)'), result.stderr
    assert "BrokenProcessPool" not in result.stderr
