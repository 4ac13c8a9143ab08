"""The one exception type users see, and the one warning type.

Every mistake a user can make (a wrong path, a corrupt file, a bad option) is raised as a
:class:`MedganError` whose message is one line naming the file or value and the remedy.
The command line prints it without a traceback and exits non-zero; anything else that
escapes is a bug in medgan and keeps its traceback.

What the user must hear about but that need not stop the work (files skipped in a folder,
a gap in a DICOM series) is a :class:`MedganWarning`, issued by :func:`warn`: a standard
Python warning (filterable, catchable in tests), printed by the command line as one line
``medgan: warning: <file>: <what>; <remedy>``.
"""

from __future__ import annotations

import warnings
from os import PathLike


def one_line(message: str, path: str | PathLike | None = None, hint: str | None = None) -> str:
    """``"<path>: <message>; <hint>"`` on one line (the shape of every error and warning)."""
    text = f"{path}: {message}" if path else message
    if hint:
        text = f"{text.rstrip('.')}; {hint}"
    return " ".join(text.split())


class MedganError(Exception):
    """A user-facing error: what went wrong, where, and how to fix it.

    Args:
        message: what is wrong, e.g. ``"not a DICOM file (no DICM preamble)"``.
        path: the file or folder concerned, if any; printed first.
        hint: the remedy, e.g. ``"pass --overwrite to replace it"``.
    """

    def __init__(self, message: str, *, path: str | PathLike | None = None, hint: str | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        return one_line(self.message, self.path, self.hint)


class MedganWarning(UserWarning):
    """Something the user must know that does not stop the work (see the module docstring)."""


def warn(message: str, *, path: str | PathLike | None = None, hint: str | None = None, stacklevel: int = 2) -> None:
    """Issue a :class:`MedganWarning` worded like a :class:`MedganError`."""
    warnings.warn(MedganWarning(one_line(message, path, hint)), stacklevel=stacklevel + 1)
