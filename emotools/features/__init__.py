"""openSMILE features: specs, one-pass windowed functionals, the feature store, parallel and Dask.

* :mod:`~emotools.features.smile`: :class:`FeatureSet`, :class:`Level`,
  :class:`FeatureSpec`, :func:`extract_signal`, :func:`extract_file` (one signal);
* :mod:`~emotools.features.store`: :class:`FeatureStore` and the cache key;
* :mod:`~emotools.features.stream`: :class:`StreamingExtractor` (windowed
  functionals of a stream, chunk by chunk), :func:`max_lookahead`,
  :func:`measure_lookahead`;
* :mod:`~emotools.features.batch`: :func:`extract` of a corpus table on local
  processes or a Dask cluster;
* :mod:`~emotools.features.cli`: ``python -m emotools extract``;
* :mod:`~emotools.features.external`: features computed elsewhere as records:
  :func:`from_arrays` (the original's ``X.npy``), :func:`read_frames`
  (MuSe / AVEC CSVs), :func:`read_table` (CSV / parquet with an id column).

>>> spec = FeatureSpec(level="windowed", window=1.0, hop=0.1)  # doctest: +SKIP
>>> store = extract(corpora.scan("annotated", root), spec, out="data/features/x")  # doctest: +SKIP
>>> store.load(store.utterances[0])  # start, end, 88 eGeMAPS functionals per window  # doctest: +SKIP
"""

from .batch import available_cores, extract
from .cli import cli
from .external import ExternalFeatureError, from_arrays, read_frames, read_table
from .smile import (
    DEFAULT_HOP,
    LLD_HOP,
    OPENSMILE_VERSION,
    RATE_HZ,
    SAMPLE_RATE,
    FeatureError,
    FeatureSet,
    FeatureSpec,
    Level,
    extract_file,
    extract_signal,
    feature_names,
    frame_mode_config,
    smile_for,
    to_int16,
)
from .store import FeatureStore, cache_key
from .stream import StreamingExtractor, max_lookahead, measure_lookahead

__all__ = [
    "FeatureSet",
    "Level",
    "FeatureSpec",
    "FeatureError",
    "ExternalFeatureError",
    "FeatureStore",
    "StreamingExtractor",
    "SAMPLE_RATE",
    "RATE_HZ",
    "DEFAULT_HOP",
    "LLD_HOP",
    "OPENSMILE_VERSION",
    "available_cores",
    "cache_key",
    "cli",
    "extract",
    "extract_file",
    "extract_signal",
    "feature_names",
    "frame_mode_config",
    "max_lookahead",
    "measure_lookahead",
    "from_arrays",
    "read_frames",
    "read_table",
    "smile_for",
    "to_int16",
]
