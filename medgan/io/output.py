"""Safe output: never overwrite by accident, never leave a half-written file.

Writers write to a temporary file beside the target and rename it into place only when
the file is complete (``os.replace`` is atomic on one filesystem), so an error or an
interrupt leaves either the old file or nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from medgan.errors import MedganError


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
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
