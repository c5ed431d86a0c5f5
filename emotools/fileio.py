"""Atomic file writes: the one helper every module uses to write a file.

A file is written under a unique hidden temporary name in the destination's
folder and renamed over the destination only when complete, so no reader
ever sees a half-written file, a failed or interrupted write leaves any older
file in place, and two processes writing the same file never share a
temporary name.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> with atomic_write(folder / "a.txt") as tmp:
...     _ = tmp.write_text("hello")
>>> (folder / "a.txt").read_text(), sorted(p.name for p in folder.iterdir())
('hello', ['a.txt'])
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

PARTIAL_SUFFIX = ".partial"
"""Suffix of every temporary file; ``.<name>.<random>.partial`` in the destination's folder."""


def temporary_name(path: str | os.PathLike) -> Path:
    """A unique hidden temporary name beside ``path`` (same folder, so the rename is atomic)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{PARTIAL_SUFFIX}")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, *, mkdir: bool = True,
                 temporary: str | os.PathLike | None = None) -> Iterator[Path]:
    """Yield a temporary path to write; on success rename it to ``path``, on any error remove it.

    Args:
        path: the destination file.
        mkdir: create the destination's folder first.
        temporary: a unique name in the destination's folder to use instead of
            :func:`temporary_name` (e.g. one that names the writing process).

    Yields:
        The temporary path (the caller writes the whole file there).
    """
    path = Path(path)
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_name(path) if temporary is None else Path(temporary)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_write(path) as temporary:
        temporary.write_text(text, encoding=encoding)
    return Path(path)
