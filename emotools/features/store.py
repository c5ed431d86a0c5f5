"""The feature store: one parquet file per recording, an index, failures, a summary and audio digests.

Layout of a store folder::

    features/<utterance>.parquet  start, end (s), features...; its schema metadata holds the entry
    index.parquet                 one row per stored recording: the corpus table's columns,
                                  then path, key, checksum, frames, seconds, rate_hz
    failures.csv                  file, utterance, reason: what the last run could not extract
    summary.json                  counts, seconds of audio, wall time, spec and versions
    audio_digests.parquet         content digest of each audio file, by (inode, size, mtime, ctime)

Every file is written atomically (:func:`emotools.fileio.atomic_write` with a
hidden temporary name that names the writing machine and process), so a
killed run leaves no partial file under a visible name,
and a file whose bytes would not change is not written at all (a complete
store on read-only media serves and re-extracts without writing).

A recording's cache key hashes everything that determines its features: the
*content* of the audio file (:data:`DIGEST` of its bytes), the spec's relevant
fields, the decoding rate, the ``opensmile`` version and :data:`STORE_VERSION`.
The key travels inside each feature file, so a run that was interrupted before
it wrote the index still reuses what it finished.

Served features are verified: the index holds a checksum of each feature
file's bytes, checked on reuse and on :meth:`FeatureStore.load`; a file the
index does not know yet (an interrupted run) must decode completely with
parquet's own page checksums before it is reused.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..audio import SAMPLE_RATE
from ..fileio import atomic_write
from .smile import OPENSMILE_VERSION, FeatureError, FeatureSpec

__all__ = ["FeatureStore", "STORE_VERSION", "DIGEST", "AudioDigests", "cache_key", "file_digest"]

STORE_VERSION: int = 2
"""Bump when the stored layout or the conversion changes: every key changes with it."""

DIGEST = "sha256"
"""Content hash of audio and feature files (stdlib; 1.7 GB/s with SHA-NI, see benchmarks/bench_cache.py)."""

FEATURES_DIR = "features"
INDEX = "index.parquet"

STORE_LOG_ENV = "EMOTOOLS_STORE_LOG"
"""A file to which every opened store appends its folder (set by the notebook runner for its run manifest)."""
FAILURES = "failures.csv"
SUMMARY = "summary.json"
DIGESTS = "audio_digests.parquet"
FAILURE_COLUMNS = ["file", "utterance", "reason"]
ENTRY_COLUMNS = ["path", "key", "checksum", "frames", "seconds", "rate_hz"]
DIGEST_COLUMNS = ["file", "inode", "size", "mtime_ns", "ctime_ns", "digest"]
RACY_NS = 2_000_000_000
"""A file changed less than this before it was hashed may change again within one timestamp tick: not cached."""
STALE_PARTIAL_S = 3600.0
"""A temporary file of another machine's process counts as abandoned after this long."""
_METADATA_KEY = b"emotools"
_PARTIAL_PREFIX = ".partial-"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_HOST = _UNSAFE.sub("_", socket.gethostname())[:40] or "host"


# --------------------------------------------------------------------------- content digests


def file_digest(path: str | os.PathLike) -> str:
    """:data:`DIGEST` of a file's bytes (32 hex digits); raises OSError if unreadable."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, DIGEST).hexdigest()[:32]


def bytes_digest(data: bytes) -> str:
    """:data:`DIGEST` of bytes in memory (32 hex digits), equal to :func:`file_digest` of a file holding them."""
    return hashlib.new(DIGEST, data).hexdigest()[:32]


def _stamp(stat: os.stat_result) -> tuple[int, int, int, int]:
    return stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


class AudioDigests:
    """Content digests of audio files, each computed once and kept in the store while the file is unchanged.

    A digest is reused while the file's (inode, size, mtime_ns, ctime_ns) stay
    the same; any write through the file system changes ``ctime``, which no
    program can set back. Files changed within :data:`RACY_NS` of being
    hashed are hashed again next run (timestamps have a coarse tick).

    Args:
        root: the store folder; its ``audio_digests.parquet`` is read if present.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.path = Path(root) / DIGESTS
        self._known: dict[str, tuple[tuple[int, int, int, int], str]] = {}
        self._racy: set[str] = set()
        self.hashed = 0  # files hashed by this object (the rest came from the cache)
        try:
            table = pd.read_parquet(self.path)
            self._known = {row[0]: (tuple(row[1:5]), row[5]) for row in table[DIGEST_COLUMNS].itertuples(index=False)}
        except Exception:  # missing or unreadable: every file is hashed again
            self._known = {}

    def digest(self, path: str | os.PathLike) -> str:
        """The content digest of ``path``; raises OSError if it cannot be read."""
        name = os.path.abspath(path)
        stamp = _stamp(os.stat(name))
        known = self._known.get(name)
        if known is not None and known[0] == stamp:
            return known[1]
        started = time.time_ns()
        digest = file_digest(name)
        self.hashed += 1
        after = _stamp(os.stat(name))
        self._known[name] = (after, digest)
        if after != stamp or after[3] >= started - RACY_NS:  # changing while read, or changed just now
            self._racy.add(name)
        else:
            self._racy.discard(name)
        return digest

    def save(self) -> bool:
        """Write the trustworthy digests into the store if they differ from its file; returns whether it wrote."""
        rows = [(name, *stamp, digest) for name, (stamp, digest) in sorted(self._known.items())
                if name not in self._racy]
        return write_if_changed(self.path, _parquet_bytes(pd.DataFrame(rows, columns=DIGEST_COLUMNS)))


def cache_key(path: str | os.PathLike, spec: FeatureSpec, *, digest: str | None = None) -> str:
    """Hash of everything that determines a recording's features (32 hex digits).

    Args:
        path: the audio file; its bytes are hashed unless ``digest`` is given.
        spec: the feature spec; only the fields that change the features count.
        digest: the file's :func:`file_digest`, if already known (:class:`AudioDigests`).

    Raises:
        OSError: the file cannot be read.
    """
    payload = {
        "audio": digest if digest is not None else file_digest(path),
        "spec": spec.to_dict(),
        "sample_rate": SAMPLE_RATE,
        "opensmile": OPENSMILE_VERSION,
        "store": STORE_VERSION,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


# --------------------------------------------------------------------------- writing


def entry_name(utterance: str) -> str:
    """File name of an utterance's features: the id itself when safe, else a sanitised id plus a hash."""
    if not _UNSAFE.search(utterance) and utterance and not utterance.startswith(".") and len(utterance) <= 150:
        return f"{utterance}.parquet"
    digest = hashlib.sha1(utterance.encode()).hexdigest()[:10]
    return f"{_UNSAFE.sub('_', utterance).lstrip('.')[:100]}~{digest}.parquet"


def partial_path(path: Path, pid: int | None = None) -> Path:
    """A hidden temporary name beside ``path`` that names this machine and process ``pid`` (default: this one).

    So a process cleaning up (:func:`remove_stale_partials`) can tell a live
    writer's files from those a killed run left behind.
    """
    pid = os.getpid() if pid is None else pid
    return path.with_name(f"{_PARTIAL_PREFIX}{_HOST}.{pid}.{uuid.uuid4().hex[:8]}-{path.name}")


def write_store_file(path: Path, data: bytes) -> None:
    """Write ``data`` atomically under a :func:`partial_path` name, so a cleanup can tell whose it is."""
    with atomic_write(path, temporary=partial_path(path)) as partial:
        partial.write_bytes(data)


def write_if_changed(path: Path, data: bytes) -> bool:
    """Atomically write ``data`` unless ``path`` already holds exactly these bytes; returns whether it wrote."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except OSError:
        pass
    write_store_file(path, data)
    return True


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (a zombie, killed but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _abandoned(partial: Path) -> bool:
    """A temporary file whose writer is gone: a dead process of this machine, or older than an hour."""
    host, _, rest = partial.name.removeprefix(_PARTIAL_PREFIX).partition(".")
    pid = rest.partition(".")[0]
    if host == _HOST and pid.isdigit():
        return not process_alive(int(pid))
    try:
        return time.time() - partial.stat().st_mtime > STALE_PARTIAL_S
    except OSError:
        return False


def remove_stale_partials(root: Path) -> int:
    """Delete temporary files left by killed runs, never those of a live process; returns how many."""
    count = 0
    for folder in (root, root / FEATURES_DIR):
        if folder.is_dir():
            for partial in folder.glob(f"{_PARTIAL_PREFIX}*"):
                if _abandoned(partial):
                    try:
                        partial.unlink()
                        count += 1
                    except OSError:  # gone meanwhile, or read-only media
                        pass
    return count


def _content_digest(table: pa.Table, entry: dict[str, Any]) -> str:
    """Digest of what a feature file means: the entry, the schema metadata, every column's name, type and values."""
    digest = hashlib.new(DIGEST, json.dumps(entry, sort_keys=True).encode())
    for key, value in sorted((table.schema.metadata or {}).items()):
        if key != _METADATA_KEY:
            digest.update(b"%d:%s%d:%s" % (len(key), key, len(value), value))
    for field, column in zip(table.schema, table.columns):
        digest.update(f"{len(field.name)}:{field.name}:{field.type}:{column.null_count}:".encode())
        digest.update(column.to_numpy().tobytes())
    return digest.hexdigest()[:32]


def write_entry(root: Path, entry: dict[str, Any], frame: pd.DataFrame) -> dict[str, Any]:
    """Store one recording's features atomically; returns the entry with its ``path`` and ``checksum``.

    ``entry`` holds utterance, file, key, spec, rate_hz, frames and seconds; it
    is written into the parquet schema metadata with a ``content`` digest of
    the whole table (so a file can be verified without the index). Pages
    carry parquet's CRC; ``checksum`` is the digest of the file's bytes.
    """
    entry = {**entry, "path": f"{FEATURES_DIR}/{entry_name(entry['utterance'])}"}
    plain = frame.copy(deep=False)
    plain.attrs = {}  # pandas deep-copies attrs on every column access
    table = pa.Table.from_pandas(plain, preserve_index=False)
    entry["content"] = _content_digest(table, entry)
    metadata = {**(table.schema.metadata or {}), _METADATA_KEY: json.dumps(entry).encode()}
    sink = pa.BufferOutputStream()
    pq.write_table(table.replace_schema_metadata(metadata), sink, write_page_checksum=True)
    data = sink.getvalue().to_pybytes()
    write_store_file(root / entry["path"], data)
    return {**entry, "checksum": bytes_digest(data)}


def _decode(data: bytes) -> pa.Table:
    """A feature file's table, with every page's CRC checked; raises on any damage."""
    return pq.read_table(pa.BufferReader(data), page_checksum_verification=True)


def verified_entry(path: Path) -> dict[str, Any] | None:
    """The entry of a feature file that decodes and matches its ``content`` digest, with its checksum; else None.

    For files the index does not know yet (written by an interrupted run).
    """
    try:
        data = path.read_bytes()
        table = _decode(data)
        entry = json.loads((table.schema.metadata or {})[_METADATA_KEY])
        content = entry.pop("content")
        if content != _content_digest(table, entry):
            return None
        return {**entry, "content": content, "checksum": bytes_digest(data)}
    except (OSError, KeyError, ValueError, TypeError, AttributeError, pa.ArrowException):
        return None


def intact(path: Path, checksum: object) -> bool:
    """Whether the file's bytes still have the checksum the index recorded."""
    try:
        return isinstance(checksum, str) and file_digest(path) == checksum
    except OSError:
        return False


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def write_table(path: Path, frame: pd.DataFrame) -> bool:
    """Parquet (``.parquet``) or CSV (``.csv``) of a table, written only if its bytes change."""
    frame = frame.copy()
    frame.attrs = {}
    data = frame.to_csv(index=False).encode() if path.suffix == ".csv" else _parquet_bytes(frame)
    return write_if_changed(path, data)


def write_json(path: Path, data: dict[str, Any]) -> bool:
    """Indented JSON, written only if it changes."""
    return write_if_changed(path, (json.dumps(data, indent=2) + "\n").encode())


class FeatureStore:
    """Read access to a feature store folder written by :func:`emotools.features.extract`.

    Args:
        root: the store folder.

    >>> store = FeatureStore("data/features/annotated-eGeMAPSv02-windowed-w1.00-h0.10")  # doctest: +SKIP
    >>> store.load(store.utterances[0]).columns[:3].tolist()  # doctest: +SKIP
    ['start', 'end', 'F0semitoneFrom27.5Hz_sma3nz_amean']
    """

    def __init__(self, root: str | os.PathLike, *, run: dict[str, Any] | None = None) -> None:
        self.root = Path(root)
        self._run = run  # the summary of the extract call that returned this store
        if os.environ.get(STORE_LOG_ENV):  # the runner's manifest lists the stores each notebook used
            with open(os.environ[STORE_LOG_ENV], "a", encoding="utf-8") as log:
                log.write(f"{self.root.absolute()}\n")
        self._cached: tuple[tuple[int, int], pd.DataFrame, dict[str, tuple[str, Any]]] | None = None

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.root)!r})"

    def _read_index(self) -> tuple[pd.DataFrame, dict[str, tuple[str, Any]]]:
        path = self.root / INDEX
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.root}: no {INDEX}; run emotools.features.extract into it first") from None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._cached is None or self._cached[0] != stamp:  # re-read after a new run
            index = pd.read_parquet(path)
            checksums = index["checksum"] if "checksum" in index else [None] * len(index)  # older stores have none
            self._cached = (stamp, index, dict(zip(index["utterance"], zip(index["path"], checksums))))
        return self._cached[1], self._cached[2]

    @property
    def index(self) -> pd.DataFrame:
        """One row per stored recording (corpus columns, then path, key, checksum, frames, seconds, rate_hz).

        Raises:
            FileNotFoundError: no completed extraction wrote this folder.
        """
        return self._read_index()[0].copy()

    @property
    def failures(self) -> pd.DataFrame:
        """Recordings the last run could not extract: file, utterance, reason."""
        path = self.root / FAILURES
        if not path.is_file():
            return pd.DataFrame(columns=FAILURE_COLUMNS)
        return pd.read_csv(path, dtype=str, keep_default_na=False)

    @property
    def summary(self) -> dict[str, Any]:
        """Processed, reused, failed, seconds of audio, wall time, spec, ...

        Of the :func:`~emotools.features.extract` call that returned this
        object; otherwise ``summary.json``, written by the last run that
        changed the store (a run with nothing to do writes nothing).
        """
        if self._run is not None:
            return dict(self._run)
        path = self.root / SUMMARY
        if not path.is_file():
            raise FileNotFoundError(f"{self.root}: no {SUMMARY}; run emotools.features.extract into it first")
        return json.loads(path.read_text())

    @property
    def spec(self) -> FeatureSpec:
        """The spec the store was extracted with."""
        return FeatureSpec.from_dict(self.summary["spec"])

    @property
    def utterances(self) -> list[str]:
        """Stored utterance ids in corpus-table order."""
        return self._read_index()[0]["utterance"].tolist()

    def __len__(self) -> int:
        return len(self._read_index()[0])

    def __contains__(self, utterance: object) -> bool:
        return utterance in self._read_index()[1]

    def load(self, utterance: str) -> pd.DataFrame:
        """Features of one recording: ``start``, ``end`` (s), then feature columns.

        ``df.attrs`` holds utterance, file, key, rate_hz and spec. The file's
        bytes are checked against the checksum in the index first.

        Raises:
            KeyError: the utterance is not in the store.
            FeatureError: the feature file is missing, damaged or changed since
                it was written (rerun extract: it re-extracts such files).
        """
        found = self._read_index()[1].get(utterance)
        if found is None:
            raise KeyError(f"{utterance!r} is not in the feature store {self.root}")
        relative, checksum = found
        path = self.root / relative
        try:
            data = path.read_bytes()
        except OSError as error:
            raise FeatureError(path, f"feature file unreadable ({error.strerror or error}); rerun extract") from None
        if isinstance(checksum, str) and bytes_digest(data) != checksum:
            raise FeatureError(path, "feature file is damaged or was changed after extraction (checksum differs "
                                     f"from {INDEX}); rerun extract to re-extract it")
        try:
            table = _decode(data)
        except (OSError, pa.ArrowException) as error:
            raise FeatureError(path, f"feature file is damaged ({error}); rerun extract to re-extract it") from None
        entry = json.loads((table.schema.metadata or {}).get(_METADATA_KEY, b"{}"))
        frame = table.to_pandas()
        frame.attrs = {name: entry.get(name) for name in ("utterance", "file", "key", "rate_hz", "spec")}
        return frame
