"""The one exception type users see.

Every mistake a user can make (a wrong path, a corrupt file, a bad option) is raised as a
:class:`MedganError` whose message is one line naming the file or value and the remedy.
The command line prints it without a traceback and exits non-zero; anything else that
escapes is a bug in medgan and keeps its traceback.
"""

from __future__ import annotations

from os import PathLike


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
        text = f"{self.path}: {self.message}" if self.path else self.message
        if self.hint:
            text = f"{text.rstrip('.')}; {self.hint}"
        return " ".join(text.split())  # always one line
