"""Progress bars that fit where the code runs, and where that is.

One home for tqdm so every bar of the package behaves the same in three worlds:

- a terminal (or any process outside a Jupyter kernel): tqdm's text bar;
- an interactive Jupyter kernel (JupyterLab): tqdm's ipywidgets bar;
- a headless batch run (``python -m emotools run`` executing notebooks with
  papermill; the runner sets :data:`BATCH_ENV` for its kernels): one plain
  line per bar, written when the bar closes, so executed copies stay short
  (one stream line per bar instead of one per update, no widget state).
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from tqdm import std

#: Environment variable the notebook runner sets for the kernels it starts.
BATCH_ENV = "EMOTOOLS_BATCH"


def ipython_shell() -> Any | None:
    """The running IPython shell (terminal or kernel), or None; never imports IPython."""
    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython is not None else None


def in_kernel() -> bool:
    """Whether this process is a Jupyter (IPython) kernel."""
    return getattr(ipython_shell(), "kernel", None) is not None


def batch_run() -> bool:
    """Whether this process runs under the headless notebook runner."""
    return os.environ.get(BATCH_ENV, "") not in ("", "0")


class FinishedLines:
    """A text stream that passes on only finished lines, each as its last redraw.

    A bar redraws itself as ``"\\r" + state``; only what follows the last
    carriage return before a newline reaches ``stream``, in one write.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.pending = ""

    @property
    def encoding(self) -> str | None:
        """The wrapped stream's encoding (tqdm draws unicode bars when it is UTF-8)."""
        return getattr(self.stream, "encoding", None)

    def write(self, text: str) -> int:
        """Keep ``text``; forward every line it finishes."""
        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            self.stream.write(line.rsplit("\r", 1)[-1].rstrip() + "\n")
            self.stream.flush()
        self.pending = self.pending.rsplit("\r", 1)[-1]
        return len(text)

    def flush(self) -> None:
        """Nothing to do: unfinished lines are not shown."""


class ClosingLineTqdm(std.tqdm):
    """A text bar that shows one line, its final state, when it closes.

    Transient bars (``leave=False``) show nothing.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["file"] = FinishedLines(kwargs.get("file") or sys.stdout)
        if kwargs.get("leave") is False:
            kwargs["disable"] = True
        super().__init__(*args, **kwargs)


def _bar_class() -> type[std.tqdm]:
    if not in_kernel():
        return std.tqdm
    if batch_run():
        return ClosingLineTqdm
    try:
        import ipywidgets  # noqa: F401  (tqdm.notebook needs it; without it, fall back quietly)
        from tqdm.notebook import tqdm as notebook_tqdm
    except ImportError:
        return std.tqdm
    return notebook_tqdm


def tqdm(*args: Any, **kwargs: Any) -> std.tqdm:
    """A tqdm bar for the current world; takes tqdm's arguments.

    Use it like the class: ``for x in tqdm(items, desc="work"): ...`` or
    ``with tqdm(total=n) as bar: bar.update()``.
    """
    return _bar_class()(*args, **kwargs)
