"""What kind of file is this: format detection and folder listing, with no reader imported.

:func:`detect_format` looks at a file's first bytes (magic numbers) and uses the name only
where the content cannot decide (gzip-compressed NIfTI, ``.npz`` zip archives);
:func:`find_image_files` lists a folder's images. The readers import this module (a DICOM
series lists its folder with it); :mod:`medgan.io.detect` imports the readers, so no cycle.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

from medgan.errors import MedganError, warn

__all__ = ["FORMATS", "NOT_AN_IMAGE", "detect_format", "find_image_files"]

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


