"""What kind of file is this, and read it: format detection and the one entry point.

:func:`detect_format` looks at a file's first bytes (magic numbers) and uses the name only
where the content cannot decide (gzip-compressed NIfTI, ``.npz`` zip archives).
:func:`read_image` dispatches to the format's reader; a folder is read as a DICOM series.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

from medgan.errors import MedganError, warn
from medgan.io.base import Image

__all__ = ["FORMATS", "detect_format", "find_image_files", "read_image"]

FORMATS = ("dicom", "nifti", "png", "jpeg", "tiff", "npy", "npz")

NOT_AN_IMAGE = "not a medical image file (DICOM, NIfTI, PNG/JPEG/TIFF, NPY/NPZ)"

# Suffixes of formats that are known not to be DICOM: a file named like this is never
# parsed as a preamble-less DICOM (pydicom's force=True would accept almost anything).
_NON_DICOM_SUFFIXES = {
    ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".nii", ".gz", ".hdr", ".img",
    ".npy", ".npz", ".zip", ".txt", ".csv", ".tsv", ".json", ".jsonl", ".yaml", ".yml",
    ".md", ".rst", ".html", ".xml", ".pdf", ".py", ".log", ".pt", ".pth", ".safetensors",
}


def _looks_like_bare_dicom(path: Path, head: bytes) -> bool:
    """A DICOM file without the 128-byte preamble: starts with a group 0x0002/0x0008 tag.

    The cheap byte test rules out most files before pydicom parses anything; the parse
    then has to find a SOP Class or image rows for the file to count as DICOM.
    """
    if len(head) < 8 or path.suffix.lower() in _NON_DICOM_SUFFIXES:
        return False
    group_le = struct.unpack("<H", head[:2])[0]
    group_be = struct.unpack(">H", head[:2])[0]
    if group_le not in (0x0002, 0x0008) and group_be not in (0x0002, 0x0008):
        return False
    import pydicom

    try:
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
        return "SOPClassUID" in ds or "Rows" in ds
    except Exception:  # any parse failure means "not DICOM" here; reading reports details
        return False


def detect_format(path: str | os.PathLike) -> str | None:
    """The format of an image file, from its content where possible.

    Args:
        path: a file.

    Returns:
        One of :data:`FORMATS` (``"dicom"``, ``"nifti"``, ``"png"``, ``"jpeg"``,
        ``"tiff"``, ``"npy"``, ``"npz"``) or ``None`` for anything else (including
        folders and missing files).
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(352)
    except OSError:
        return None
    name = path.name.lower()

    if head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):  # TIFF / BigTIFF
        return "tiff"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head[344:348] in (b"n+1\x00", b"ni1\x00") or head[4:8] == b"n+2\x00":  # NIfTI-1 / NIfTI-2
        return "nifti" if head[344:348] != b"ni1\x00" else None  # ni1 = .hdr/.img pair: unsupported
    if head.startswith(b"\x1f\x8b") and name.endswith(".nii.gz"):
        try:
            with gzip.open(path, "rb") as f:
                inner = f.read(348)
        except (OSError, EOFError):
            return "nifti"  # named and gzipped like NIfTI: let the reader report the corruption
        return "nifti" if inner[344:348] == b"n+1\x00" or inner[4:8] == b"n+2\x00" or len(inner) < 348 else None
    if head.startswith(b"PK") and name.endswith(".npz"):
        return "npz"
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"  # named NIfTI but the header is damaged: the reader says so
    if _looks_like_bare_dicom(path, head):
        return "dicom"
    return None


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


# Sidecar files that sit beside images in exports and datasets and are never images: skipped
# without a word. Any other file that is not a readable image is named in a warning.
_SIDECAR_SUFFIXES = {
    ".txt", ".csv", ".tsv", ".json", ".jsonl", ".yaml", ".yml", ".md", ".rst", ".html", ".htm", ".xml",
    ".pdf", ".log", ".py", ".ini", ".cfg",
}
_SKIPPED_SHOWN = 5


def find_image_files(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """All image files under ``folder``, sorted by path.

    Hidden files and folders (names starting with ``.``), DICOMDIR index files and files
    whose format is not recognised are skipped. A skipped file that could have been meant as
    an image (anything but text, table and document sidecars such as ``.csv`` or ``.json``)
    is never dropped silently: one :class:`~medgan.errors.MedganWarning` names the count and
    the first few.

    Raises:
        MedganError: ``folder`` does not exist or is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MedganError("does not exist" if not folder.exists() else "is not a folder", path=folder, hint="give a folder of images")
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    found, skipped = [], []
    for p in candidates:
        if not p.is_file() or _is_hidden(p, folder) or p.name.upper() == "DICOMDIR":
            continue
        if detect_format(p) is not None:
            found.append(p)
        elif p.suffix.lower() not in _SIDECAR_SUFFIXES:
            skipped.append(p)
    if skipped:
        names = [str(p.relative_to(folder)) for p in sorted(skipped)]
        more = f" and {len(names) - _SKIPPED_SHOWN} more" if len(names) > _SKIPPED_SHOWN else ""
        what = f"{len(names)} files that are not readable images" if len(names) > 1 else "1 file that is not a readable image"
        warn(
            f"skipped {what} ({', '.join(names[:_SKIPPED_SHOWN])}{more}): corrupt, or not DICOM, NIfTI, PNG/JPEG/TIFF or NPY/NPZ",
            path=folder, hint="fix, convert or remove them", stacklevel=2,
        )
    return sorted(found)


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
    from medgan.io.arrays import read_array
    from medgan.io.dicom import read_dicom, read_dicom_series
    from medgan.io.nifti import read_nifti
    from medgan.io.raster import read_raster

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

