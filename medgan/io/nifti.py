"""NIfTI (``.nii`` / ``.nii.gz``) through nibabel, in medgan's ``(D, H, W)`` layout.

nibabel indexes voxels ``(i, j, k)``; medgan returns ``(k, j, i)`` = ``(D, H, W)``: ``k``
(usually the slice axis) first, each slice an ``(H, W) = (j, i)`` image. The affine's
first three columns are permuted the same way, so ``affine @ (d, h, w, 1)`` gives the same
RAS+ point as nibabel's ``affine @ (i, j, k, 1)`` with ``(i, j, k) = (w, h, d)``. A 2D
image ``(i, j)`` becomes ``(H, W) = (j, i)`` and its affine maps ``(h, w, 0, 1)``.

:func:`write_nifti` applies the inverse permutation, so read -> write -> read returns the
same array and affine bit for bit (float32 data; the affine is stored as the sform).
The slices are not reoriented (no flips): what nibabel stores is what you get.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.orientations import aff2axcodes

from medgan.errors import MedganError
from medgan.io import limits
from medgan.io.arrays import CORRUPT_HINT, check_finite
from medgan.io.base import Image, ImageMeta, finite_range
from medgan.io.output import atomic_path

__all__ = ["read_nifti", "write_nifti", "ijk_to_dhw_affine"]

# Column permutations between nibabel's (i, j, k) and medgan's layout; each is its own inverse.
_PERM_3D = [2, 1, 0, 3]  # (d, h, w) = (k, j, i)
_PERM_2D = [1, 0, 2, 3]  # (h, w) = (j, i)


def ijk_to_dhw_affine(affine: np.ndarray, ndim: int) -> np.ndarray:
    """Permute an affine's columns between nibabel's ``(i, j, k)`` and medgan's layout.

    The permutation is its own inverse, so the same call converts back.

    Args:
        affine: 4x4 index-to-world matrix.
        ndim: dimensions of the medgan array (2 for ``(H, W)``, 3 for ``(D, H, W)``).
    """
    return np.asarray(affine, dtype=np.float64)[:, _PERM_3D if ndim == 3 else _PERM_2D]


def _orientation(affine: np.ndarray) -> tuple[str, ...] | None:
    try:
        return tuple(str(c) for c in aff2axcodes(affine))
    except Exception:  # a degenerate (singular) affine has no orientation
        return None


# Deflate cannot compress better than about 1032:1; a .nii.gz whose header declares more
# data than this many times its own size cannot hold it.
_MAX_GZIP_RATIO = 1100


def _gzip_holds(path: Path, need: int) -> bool:
    """True when the gzip file decompresses to at least ``need`` bytes (read, never stored)."""
    size = path.stat().st_size
    if need > _MAX_GZIP_RATIO * size + (1 << 20):
        return False
    if need >= 2**32:  # ISIZE is the length mod 2**32: the ratio bound is all we can check cheaply
        return True
    with open(path, "rb") as f:
        f.seek(max(size - 4, 0))
        isize = int.from_bytes(f.read(4), "little")  # uncompressed length of a single-member file
    if isize >= need:
        return True
    count = 0  # a multi-member file (or a short one): count what it really holds
    try:
        with gzip.open(path, "rb") as f:
            while count < need and (chunk := f.read(1 << 22)):
                count += len(chunk)
    except (OSError, EOFError, zlib.error):
        pass  # truncated: what was read is what it holds
    return count >= need


def _check_declared_size(img: nib.Nifti1Image, path: Path) -> None:
    """Refuse a header that declares more voxels than the file holds, before any allocation."""
    header = img.header
    shape = tuple(int(s) for s in header.get_data_shape())
    need = int(np.prod(shape, dtype=np.float64) * header.get_data_dtype().itemsize) + int(header["vox_offset"])
    compressed = path.name.lower().endswith(".gz")
    if (_gzip_holds(path, need) if compressed else path.stat().st_size >= need):
        return
    raise MedganError(
        f"the header declares {'x'.join(map(str, shape))} voxels of {header.get_data_dtype()} "
        f"({limits.format_bytes(need)}) but the file holds less" + (" once decompressed" if compressed else f" ({limits.format_bytes(path.stat().st_size)})"),
        path=path, hint=CORRUPT_HINT,
    )


def read_nifti(path: str | os.PathLike, volume: int | None = None) -> Image:
    """Read a NIfTI-1/2 image as ``(D, H, W)`` (or ``(H, W)`` for a single slice).

    Args:
        path: ``.nii`` or ``.nii.gz`` file.
        volume: for 4D data, the volume (time point) to read, ``0..T-1``; required when
            ``T > 1``. ``0`` is accepted for 3D data.

    Returns:
        float32 values after the header's scl_slope/scl_inter; ``meta.affine`` in the
        returned layout; ``meta.extra`` holds ``shape_ijk`` (the stored shape),
        ``zooms`` (header pixdim, stored order) and ``volume``.

    Raises:
        MedganError: unreadable/truncated file (including a header that declares more
            voxels than the file holds, or a volume above :func:`medgan.io.limits.max_pixels`,
            refused before any allocation), 4D data without (or with an out-of-range)
            ``volume``, more than 4 dimensions, non-finite values.
    """
    path = Path(path)
    try:
        img = nib.load(path)
        shape_ijk = tuple(int(s) for s in img.shape)
        zooms = tuple(float(z) for z in img.header.get_zooms())
        stored_dtype = str(img.get_data_dtype())
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise MedganError(f"is a {type(img).__name__}, not NIfTI", path=path, hint="convert it to .nii.gz")
        _check_declared_size(img, path)
        # nibabel maps the data lazily: the block read below (one volume of a 4D series) is
        # held to the limit before get_fdata / asarray allocates it.
        limits.check_declared(path, shape_ijk[:3], itemsize=img.get_data_dtype().itemsize, what="a volume of")

        # Choose the 3D block before loading, so a 4D series costs one volume of memory.
        if len(shape_ijk) > 4 or (len(shape_ijk) == 4 and shape_ijk[3] < 1):
            raise MedganError(f"NIfTI with shape {shape_ijk} is not supported", path=path, hint="give a 2D, 3D or 4D image")
        if len(shape_ijk) == 4 and shape_ijk[3] > 1:
            n = shape_ijk[3]
            if volume is None:
                raise MedganError(f"4D NIfTI with {n} volumes", path=path, hint=f"choose one with --volume N (0..{n - 1})")
            if not 0 <= volume < n:
                raise MedganError(f"volume {volume} out of range for 4D NIfTI with {n} volumes", path=path, hint=f"choose --volume N with 0 <= N <= {n - 1}")
            data = np.asarray(img.dataobj[..., volume], dtype=np.float32)
        else:
            if volume not in (None, 0):
                raise MedganError(f"volume {volume} requested but the image is {len(shape_ijk)}D", path=path, hint="drop --volume for this file")
            data = np.asarray(img.dataobj, dtype=np.float32)
            if data.ndim == 4:
                data = data[..., 0]
        affine_ijk = np.asarray(img.affine, dtype=np.float64)
    except MedganError:
        raise
    except (ImageFileError, OSError, EOFError, ValueError, zlib.error) as err:
        raise MedganError(f"cannot read the NIfTI file ({type(err).__name__})", path=path, hint=CORRUPT_HINT) from err

    if data.ndim == 3 and data.shape[2] == 1:
        data = data[:, :, 0]  # a single slice stored as (i, j, 1)
    if data.ndim == 1:
        raise MedganError(f"NIfTI with shape {shape_ijk} is not an image", path=path, hint="give a 2D or 3D image")
    array = np.ascontiguousarray(data.T)  # (i, j, k) -> (k, j, i) = (D, H, W); (i, j) -> (H, W)
    check_finite(array, path)
    affine = ijk_to_dhw_affine(affine_ijk, array.ndim)
    spacing = tuple(zooms[:3][::-1]) if array.ndim == 3 else (zooms[1], zooms[0])
    meta = ImageMeta(
        source=str(path),
        format="nifti",
        spacing=tuple(float(s) for s in spacing),
        affine=affine,
        orientation=_orientation(affine),
        dtype=stored_dtype,
        value_range=finite_range(array),
        extra={"shape_ijk": list(shape_ijk), "zooms": list(zooms), "volume": volume},
    )
    return Image(array, meta)


def write_nifti(
    path: str | os.PathLike,
    array: np.ndarray,
    *,
    affine: np.ndarray | None = None,
    meta: ImageMeta | None = None,
    overwrite: bool = False,
    dtype: Any = np.float32,
) -> Path:
    """Write a ``(D, H, W)`` volume or ``(H, W)`` image as NIfTI (float32 unless ``dtype``
    says otherwise, e.g. ``np.uint8`` for a label map), atomically.

    The inverse of :func:`read_nifti`: the array is transposed back to ``(i, j, k)`` and the
    affine's columns permuted back, so a read -> write -> read round trip is bit-identical.

    Args:
        path: output file ending in ``.nii`` or ``.nii.gz``.
        array: the image in medgan's layout.
        affine: 4x4 matrix mapping the array's indices to RAS+ mm. Default: ``meta.affine``
            if given (any reader's affine follows the same convention, so a DICOM series
            keeps its geometry), else the identity.
        meta: metadata of the image the array came from (only its affine is used).
        overwrite: replace an existing file instead of refusing.

    Returns:
        The path written.

    Raises:
        MedganError: wrong suffix or shape, bad affine, existing output, a ``meta`` whose
            slices are unevenly spaced (its affine would misplace them).
    """
    name = Path(path).name.lower()
    if not name.endswith((".nii", ".nii.gz")):
        raise MedganError("a NIfTI file name must end in .nii or .nii.gz", path=path, hint="rename the output")
    array = np.asarray(array)
    if array.ndim not in (2, 3):
        raise MedganError(f"array of shape {array.shape} cannot be written as NIfTI", path=path, hint="expected (H, W) or (D, H, W)")
    if affine is None and meta is not None and meta.affine is not None:
        if (meta.extra or {}).get("irregular_spacing"):
            raise MedganError(
                f"the source {meta.source} has unevenly spaced slices (a missing slice?); one affine cannot place them",
                path=path, hint="complete the series, or write one file per slice (DICOM)",
            )
        affine = meta.affine
    affine = np.eye(4) if affine is None else np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise MedganError(f"affine of shape {affine.shape} is not a finite 4x4 matrix", path=path, hint="pass a 4x4 affine")

    data = np.asarray(array, dtype=dtype).T  # (D, H, W) -> (i, j, k); (H, W) -> (i, j)
    img = nib.Nifti1Image(data, ijk_to_dhw_affine(affine, array.ndim))
    img.header.set_xyzt_units("mm")
    with atomic_path(path, overwrite) as tmp:
        nib.save(img, tmp)
    return Path(path)
