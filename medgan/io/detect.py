"""Read any image file: the one entry point, dispatching to the format's reader.

:func:`read_image` picks the reader from the file's content (:func:`medgan.io.formats.detect_format`);
a folder is read as a DICOM series.
"""

from __future__ import annotations

import os
from pathlib import Path

from medgan.errors import MedganError
from medgan.io.arrays import read_array
from medgan.io.base import Image
from medgan.io.dicom import read_dicom, read_dicom_series
from medgan.io.formats import FORMATS, NOT_AN_IMAGE, detect_format, find_image_files
from medgan.io.nifti import read_nifti
from medgan.io.raster import read_raster

__all__ = ["FORMATS", "detect_format", "find_image_files", "read_image"]


def read_image(path: str | os.PathLike, *, volume: int | None = None, grey: bool = False) -> Image:
    """Read any supported image file, or a folder holding one DICOM series.

    Args:
        path: a DICOM, NIfTI, PNG/JPEG/TIFF, ``.npy`` or single-array ``.npz`` file, or a
            folder of DICOM files.
        volume: which volume of a 4D NIfTI to read (ignored by other formats).
        grey: convert colour images to grey (ITU-R 601-2 luminance).

    Returns:
        The :class:`~medgan.io.base.Image` (layout in :mod:`medgan.io.base`).

    Raises:
        MedganError: missing path, empty folder, not an image, truncated or corrupt file,
            undecodable DICOM compression, non-finite pixels, and the format-specific
            problems listed by each reader.
    """
    path = Path(path)
    if not path.exists():
        raise MedganError("does not exist", path=path, hint="check the path")
    if path.is_dir():
        entries = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
        if not entries:
            raise MedganError("folder is empty", path=path, hint="give a folder holding a DICOM series, or an image file")
        if not any(detect_format(p) == "dicom" for p in entries):
            raise MedganError(
                "folder holds no DICOM files (only a DICOM series can be read from a folder)",
                path=path,
                hint="give one image file, or use the folder as a dataset",
            )
        return read_dicom_series(path, grey=grey)

    fmt = detect_format(path)
    if fmt is None:
        raise MedganError(NOT_AN_IMAGE, path=path, hint="give a .dcm, .nii/.nii.gz, .png/.jpg/.tif or .npy/.npz file")
    if fmt == "dicom":
        return read_dicom(path, grey=grey)
    if fmt == "nifti":
        return read_nifti(path, volume=volume)
    if fmt in ("png", "jpeg", "tiff"):
        return read_raster(path, grey=grey)
    return read_array(path, grey=grey)

