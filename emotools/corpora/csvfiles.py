"""The small CSV files of a corpus (metadata, annotations, split files), read with errors that say what to fix.

emotools reads comma-separated CSV. Files converted from other tools are
often ``;``-separated (RECOLA's annotations, spreadsheets in locales with a
decimal comma) or tab-separated; read with commas, such a file has one
column named after its whole header line, and the only symptom would be
"missing columns". These helpers name the separator instead.

>>> _separator_of("time;arousal;valence")
';'
>>> _separator_of("time,arousal,valence") is None
True
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

__all__ = ["read_csv", "check_separator"]

_FOREIGN_SEPARATORS = {";": "';'", "\t": "tab"}

ErrorFactory = Callable[[Path, str], Exception]
"""Builds the caller's exception from the file and the reason."""


def _separator_of(header: str) -> str | None:
    """The separator a header line uses instead of commas (``;`` or tab), else None."""
    for separator in _FOREIGN_SEPARATORS:
        if header.count(separator) > header.count(","):
            return separator
    return None


def _header_line(path: Path) -> str:
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as handle:
            return handle.readline().rstrip("\r\n")
    except OSError:
        return ""


def _separator_reason(path: Path) -> str | None:
    """Why a file cannot be read as comma-separated, when its header uses another separator."""
    header = _header_line(path)
    separator = _separator_of(header)
    if separator is None:
        return None
    return (
        f"the file is {_FOREIGN_SEPARATORS[separator]}-separated (header {header[:80]!r}), but emotools reads "
        f"comma-separated CSV; save it with commas, e.g. "
        f"pandas.read_csv(path, sep={separator!r}).to_csv(path, index=False)"
    )


def read_csv(path: str | os.PathLike, error: ErrorFactory, **options) -> pd.DataFrame:
    """``pandas.read_csv`` with header names stripped; an unparsable file raises ``error(path, reason)``.

    A UTF-8 byte order mark is skipped (pandas does). A file that cannot be
    parsed and whose header uses ``;`` or tabs gets a reason naming that
    separator.

    Raises:
        the exception ``error`` builds: the file is not parsable CSV.
        FileNotFoundError: the file does not exist.
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path, **options)
    except ValueError as error_:  # ParserError, EmptyDataError and UnicodeDecodeError are ValueErrors
        reason = _separator_reason(path) or f"not a readable CSV ({str(error_).strip()})"
        raise error(path, reason) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def check_separator(path: str | os.PathLike, frame: pd.DataFrame, required: Sequence[str],
                    error: ErrorFactory) -> None:
    """Raise ``error(path, reason)`` naming the separator when ``required`` columns are
    missing because the file is ``;``- or tab-separated; otherwise do nothing (the
    caller reports missing columns in its own words)."""
    if all(column in frame.columns for column in required):
        return
    reason = _separator_reason(Path(path))
    if reason is not None:
        raise error(Path(path), reason)
