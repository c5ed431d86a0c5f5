"""The one exception base of the package.

Every error emotools raises on purpose is an :class:`EmotoolsError` carrying
the *subject* (a file, a parameter, a model, a recording) and the *reason*
in words; ``str(err)`` is ``"<subject>: <reason>"``. Both values live in
``args``, so errors pickle across worker processes intact. Command-line
entry points catch this one class and print one line.

>>> err = EmotoolsError("talk.wav", "not audio")
>>> str(err), err.subject, err.reason
('talk.wav: not audio', 'talk.wav', 'not audio')
"""

from __future__ import annotations

import os


class EmotoolsError(Exception):
    """Something emotools cannot do with a given subject; ``str(err)`` is ``"<subject>: <reason>"``.

    Args:
        subject: what the error is about (a path, a parameter name, ...).
        reason: what is wrong with it, in words.
    """

    def __init__(self, subject: str | os.PathLike, reason: str) -> None:
        super().__init__(os.fspath(subject) if isinstance(subject, os.PathLike) else str(subject), str(reason))
        self.subject: str = self.args[0]
        self.reason: str = self.args[1]

    @property
    def path(self) -> str:
        """The subject, under the name the file-oriented errors have always used."""
        return self.subject

    @property
    def what(self) -> str:
        """The subject, under the name the label and synthesis errors have always used."""
        return self.subject

    def __str__(self) -> str:
        return f"{self.subject}: {self.reason}"

    def __reduce__(self):  # subclasses with extra args still rebuild from (subject, reason)
        return (type(self), (self.subject, self.reason))
