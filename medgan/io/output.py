"""Safe output: never overwrite by accident, never leave a half-written file.

Writers write to a temporary file beside the target and rename it into place only when
the file is complete (``os.replace`` is atomic on one filesystem), so an error or an
interrupt leaves either the old file or nothing.

``tempfile`` creates its files 0600 and its folders 0700 (private, whatever the umask),
and a rename keeps that mode; what medgan writes is meant to be shared (models, series for
a PACS uploader, reports), so before the rename the temporary file or folder gets the mode
an ordinary ``open`` / ``mkdir`` would have given it: 0666 / 0777 minus the umask.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from medgan.errors import MedganError


def current_umask() -> int:
    """The process umask (read by setting it and putting it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def publish_mode(path: str | os.PathLike) -> None:
    """Give a temporary file or folder the mode ``open`` / ``mkdir`` would have: 0666 / 0777
    minus the umask (the files inside a folder keep theirs)."""
    os.chmod(path, (0o777 if Path(path).is_dir() else 0o666) & ~current_umask())


def check_output_file(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an existing output file unless ``overwrite``; create missing parent folders."""
    path = Path(path)
    if path.is_dir():
        raise MedganError("is a folder, expected an output file path", path=path, hint="give a file name")
    if path.exists() and not overwrite:
        raise MedganError("output file already exists", path=path, hint="pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write to; move it to ``path`` only if the block succeeds.

    The temporary file keeps ``path``'s suffixes (``.nii.gz``, ``.png``) so that libraries
    that choose a format from the name write the right one.
    """
    path = check_output_file(path, overwrite)
    suffix = "".join(path.suffixes) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        publish_mode(tmp_path)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder to fill; it replaces ``path`` only if the block succeeds.

    Refuses a ``path`` that already holds files unless ``overwrite`` (an empty folder is
    fine). On failure nothing is left behind and an existing ``path`` is untouched.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise MedganError("exists and is not a folder", path=path, hint="choose another output folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise MedganError("output folder already holds data", path=path, hint="pass --overwrite to replace it or choose another folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=path.parent))
    try:
        yield tmp
        publish_mode(tmp)  # the files inside were written by atomic_path or open(): theirs are right
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# Characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A value safe to write into a CSV cell that a spreadsheet will open.

    A string starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (a file
    named ``=HYPERLINK(...).png``) gets a leading apostrophe, so Excel, LibreOffice and
    Google Sheets show it as text instead of running it as a formula (OWASP's advice on CSV
    injection). Numbers, booleans and ``None`` are returned unchanged: a negative score stays
    a number.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
