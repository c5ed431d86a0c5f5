"""The feature store: one parquet file per recording, an index, failures and a summary.

Layout of a store folder::

    features/<utterance>.parquet  start, end (s), features...; its schema metadata holds the entry
    index.parquet                 one row per stored recording: the corpus table's columns,
                                  then path, key, frames, seconds, rate_hz
    failures.csv                  file, utterance, reason: what the last run could not extract
    summary.json                  counts, seconds of audio, wall time, spec and versions

Every file is written atomically (a hidden temporary file, then ``os.replace``),
so a killed run leaves no partial file under a visible name.

A recording's cache key hashes everything that determines its features: the
audio file's identity (resolved path, size, modification time in ns), the
spec's relevant fields, the decoding rate, the ``opensmile`` version and
:data:`STORE_VERSION`. The key travels inside each feature file, so a run that
was interrupted before it wrote the index still reuses what it finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .smile import OPENSMILE_VERSION, SAMPLE_RATE, FeatureSpec

__all__ = ["FeatureStore", "STORE_VERSION", "cache_key", "audio_identity"]

STORE_VERSION: int = 1
"""Bump when the stored layout or the conversion changes: every key changes with it."""

FEATURES_DIR = "features"
INDEX = "index.parquet"
FAILURES = "failures.csv"
SUMMARY = "summary.json"
FAILURE_COLUMNS = ["file", "utterance", "reason"]
ENTRY_COLUMNS = ["path", "key", "frames", "seconds", "rate_hz"]
_METADATA_KEY = b"emotools"
_PARTIAL_PREFIX = ".partial-"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def audio_identity(path: str | os.PathLike) -> dict[str, Any]:
    """Resolved path, size and modification time (ns) of a file; raises OSError if missing."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    return {"path": str(resolved), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def cache_key(path: str | os.PathLike, spec: FeatureSpec) -> str:
    """Hash of everything that determines a recording's features (32 hex digits).

    Raises:
        OSError: the file cannot be stat'ed.
    """
    payload = {
        "audio": audio_identity(path),
        "spec": spec.as_dict(),
        "sample_rate": SAMPLE_RATE,
        "opensmile": OPENSMILE_VERSION,
        "store": STORE_VERSION,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def entry_name(utterance: str) -> str:
    """File name of an utterance's features: the id itself when safe, else a sanitised id plus a hash."""
    if not _UNSAFE.search(utterance) and utterance and not utterance.startswith(".") and len(utterance) <= 150:
        return f"{utterance}.parquet"
    digest = hashlib.sha1(utterance.encode()).hexdigest()[:10]
    return f"{_UNSAFE.sub('_', utterance).lstrip('.')[:100]}~{digest}.parquet"


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary)`` then rename onto ``path``; a failure leaves no file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{_PARTIAL_PREFIX}{uuid.uuid4().hex[:12]}-{path.name}")
    try:
        write(partial)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def remove_partials(root: Path) -> int:
    """Delete temporary files left by a killed run; returns how many."""
    count = 0
    for folder in (root, root / FEATURES_DIR):
        if folder.is_dir():
            for partial in folder.glob(f"{_PARTIAL_PREFIX}*"):
                partial.unlink(missing_ok=True)
                count += 1
    return count


def write_entry(root: Path, entry: dict[str, Any], frame: pd.DataFrame) -> dict[str, Any]:
    """Store one recording's features atomically; returns the entry with its ``path``.

    ``entry`` holds utterance, file, key, spec, rate_hz, frames and seconds; it
    is written into the parquet schema metadata.
    """
    entry = {**entry, "path": f"{FEATURES_DIR}/{entry_name(entry['utterance'])}"}
    plain = frame.copy(deep=False)
    plain.attrs = {}  # pandas deep-copies attrs on every column access
    table = pa.Table.from_pandas(plain, preserve_index=False)
    metadata = {**(table.schema.metadata or {}), _METADATA_KEY: json.dumps(entry).encode()}
    table = table.replace_schema_metadata(metadata)
    atomic_write(root / entry["path"], lambda partial: pq.write_table(table, partial))
    return entry


def read_entry(path: Path) -> dict[str, Any] | None:
    """The entry stored in a feature file, or None when it is missing or unreadable."""
    try:
        metadata = pq.read_schema(path).metadata or {}
        return json.loads(metadata[_METADATA_KEY])
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return None


def write_table(path: Path, frame: pd.DataFrame) -> Path:
    """Atomic parquet (``.parquet``) or CSV (``.csv``) of a table."""
    frame = frame.copy()
    frame.attrs = {}
    if path.suffix == ".csv":
        return atomic_write(path, lambda partial: frame.to_csv(partial, index=False))
    return atomic_write(path, lambda partial: frame.to_parquet(partial, index=False))


def write_json(path: Path, data: dict[str, Any]) -> Path:
    """Atomic, indented JSON."""
    return atomic_write(path, lambda partial: partial.write_text(json.dumps(data, indent=2) + "\n"))


class FeatureStore:
    """Read access to a feature store folder written by :func:`emotools.features.extract`.

    Args:
        root: the store folder.

    >>> store = FeatureStore("data/features/annotated-eGeMAPSv02-windowed-w1.00-h0.10")  # doctest: +SKIP
    >>> store.load(store.utterances[0]).columns[:3].tolist()  # doctest: +SKIP
    ['start', 'end', 'F0semitoneFrom27.5Hz_sma3nz_amean']
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self._cached: tuple[tuple[int, int], pd.DataFrame, dict[str, str]] | None = None

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.root)!r})"

    def _read_index(self) -> tuple[pd.DataFrame, dict[str, str]]:
        path = self.root / INDEX
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.root}: no {INDEX}; run emotools.features.extract into it first") from None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._cached is None or self._cached[0] != stamp:  # re-read after a new run
            index = pd.read_parquet(path)
            self._cached = (stamp, index, dict(zip(index["utterance"], index["path"])))
        return self._cached[1], self._cached[2]

    @property
    def index(self) -> pd.DataFrame:
        """One row per stored recording (corpus columns, then path, key, frames, seconds, rate_hz).

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
        """The last run's summary.json (processed, reused, failed, seconds of audio, wall time, spec)."""
        path = self.root / SUMMARY
        if not path.is_file():
            raise FileNotFoundError(f"{self.root}: no {SUMMARY}; run emotools.features.extract into it first")
        return json.loads(path.read_text())

    @property
    def spec(self) -> FeatureSpec:
        """The spec the store was extracted with."""
        return FeatureSpec(**self.summary["spec"])

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

        ``df.attrs`` holds utterance, file, key, rate_hz and spec.

        Raises:
            KeyError: the utterance is not in the store.
        """
        relative = self._read_index()[1].get(utterance)
        if relative is None:
            raise KeyError(f"{utterance!r} is not in the feature store {self.root}")
        table = pq.read_table(self.root / relative)
        entry = json.loads((table.schema.metadata or {}).get(_METADATA_KEY, b"{}"))
        frame = table.to_pandas()
        frame.attrs = {name: entry.get(name) for name in ("utterance", "file", "key", "rate_hz", "spec")}
        return frame
