"""NumPy files (``.npy``, ``.npz``) and the small array helpers every reader shares.

Two ways to read arrays:

- :func:`read_array`: one image (or volume) from a ``.npy`` file or one array of an
  ``.npz`` archive, returned as an :class:`~medgan.io.base.Image` like every other reader.
- :func:`read_npz_collection`: a labelled collection in the MedMNIST layout
  (``train_images`` / ``train_labels`` ...), returned as plain arrays.

Pickled objects are never loaded (``allow_pickle=False`` everywhere): an ``.npy`` file
holding Python objects can run arbitrary code when unpickled. Nor is an array allocated
before its ``.npy`` header (shape, dtype) has been read on its own and checked against the
bytes stored and the limit of :mod:`medgan.io.limits`: a small file declaring a 50000^3
array ends in one error line.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import IO

import numpy as np

from medgan.errors import MedganError
from medgan.io import limits
from medgan.io.base import Image, ImageMeta, finite_range
from medgan.io.output import atomic_path

__all__ = ["read_array", "read_npz_collection", "npz_array", "write_npz", "rgb_to_grey", "check_finite", "stack_layout"]

# ITU-R 601-2 luma weights, the ones Pillow's ``convert("L")`` uses; applied in float
# (Pillow rounds to uint8) so 16-bit and rescaled colour data keep their precision.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)

CORRUPT_HINT = "the file is truncated or corrupt; re-export it"
PICKLE_HINT = "save plain numeric arrays with np.save / np.savez"


def rgb_to_grey(array: np.ndarray) -> np.ndarray:
    """Luminance of a ``(..., 3)`` colour array as float32 ``(...)`` (ITU-R 601-2 weights)."""
    return np.asarray(array[..., :3], dtype=np.float32) @ LUMA_WEIGHTS


def check_finite(array: np.ndarray, path: str | os.PathLike) -> None:
    """Raise a :class:`MedganError` naming ``path`` if ``array`` holds NaN or Inf values."""
    if array.dtype.kind != "f":
        return
    bad = int(array.size - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise MedganError(
            f"{bad} non-finite pixel values (NaN or Inf) out of {array.size}",
            path=path,
            hint="fix or remove the file",
        )


def stack_layout(images: np.ndarray, path: str | os.PathLike, name: str = "images") -> np.ndarray:
    """A stack of images as ``(N, H, W)`` grey or ``(N, H, W, 3)`` colour.

    Accepted: ``(N, H, W)``; ``(N, H, W, 1)`` / ``(N, 1, H, W)`` (a singleton channel axis,
    e.g. the PyTorch layout); ``(N, H, W, 3)`` and the channels-first ``(N, 3, H, W)``.

    Raises:
        MedganError: a non-numeric array, another shape, or no images at all.
    """
    shape = images.shape
    if images.dtype.kind not in "biuf":
        raise MedganError(f"{name!r} has dtype {images.dtype}, not numeric pixels", path=path, hint="save a numeric array")
    if images.ndim == 4 and shape[1] == 1:
        images = images[:, 0]  # (N, 1, H, W) -> (N, H, W)
    elif images.ndim == 4 and shape[-1] == 1:
        images = images[..., 0]  # (N, H, W, 1) -> (N, H, W)
    elif images.ndim == 4 and shape[1] == 3 and shape[-1] != 3:
        images = np.moveaxis(images, 1, -1)  # (N, 3, H, W) -> (N, H, W, 3)
    if not (images.ndim == 3 or (images.ndim == 4 and images.shape[-1] == 3)):
        raise MedganError(
            f"{name!r} has shape {shape}", path=path,
            hint="expected (N, H, W), (N, 1, H, W), (N, H, W, 1), (N, H, W, 3) or (N, 3, H, W) images",
        )
    if min(images.shape[:3]) == 0:
        raise MedganError(f"{name!r} holds no images (shape {shape})", path=path, hint="save at least one non-empty image")
    return images


def _check_npy(f: IO[bytes], path: Path, stored: int, what: str, stack: bool = False) -> None:
    """Read the ``.npy`` header at ``f``'s position (not the data) and refuse, before any
    allocation, object arrays and a shape that the ``stored`` bytes (header included) cannot
    hold or that exceeds :func:`medgan.io.limits.max_pixels`."""
    npy = np.lib.format
    start = f.tell()
    try:
        version = npy.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = npy.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = npy.read_array_header_2_0(f)
        else:  # 3.0 only exists for structured dtypes with non-Latin-1 field names
            raise MedganError(f"{what} is in .npy format {version[0]}.{version[1]} (named fields), not an image", path=path, hint=PICKLE_HINT)
    except (ValueError, SyntaxError, EOFError) as err:  # a missing or garbled header
        raise MedganError(f"{what} has no readable .npy header", path=path, hint=CORRUPT_HINT) from err
    if dtype.hasobject:
        raise MedganError(f"{what} holds pickled Python objects, which medgan never loads (they can run code)", path=path, hint=PICKLE_HINT)
    if dtype.subdtype is not None:  # e.g. "(3,)<f4": each item holds a sub-array
        dtype, inner = dtype.subdtype
        shape = (*shape, *inner)
    limits.check_declared(path, shape, itemsize=dtype.itemsize, stored_bytes=stored - (f.tell() - start), what=f"{what} of", stack=stack)


def _load(path: Path):
    """``np.load`` with pickles refused, the header of a ``.npy`` file checked first and
    library errors turned into MedganError."""
    try:
        with open(path, "rb") as f:
            if f.read(len(np.lib.format.MAGIC_PREFIX)) == np.lib.format.MAGIC_PREFIX:
                f.seek(0)
                _check_npy(f, path, path.stat().st_size, "an array")
        return np.load(path, allow_pickle=False)
    except ValueError as err:
        if "pickle" in str(err).lower():
            raise MedganError(
                "holds pickled Python objects, which medgan never loads (they can run code)",
                path=path,
                hint=PICKLE_HINT,
            ) from err
        raise MedganError("cannot read the array", path=path, hint=CORRUPT_HINT) from err
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise MedganError("cannot read the array", path=path, hint=CORRUPT_HINT) from err


def _check_npz_member(npz, name: str, path: Path, stack: bool = False) -> None:
    """:func:`_check_npy` on the archive member behind ``npz[name]``, read from the zip
    without loading it; its stored bytes are the member's uncompressed size, the most the
    zip will ever hand over."""
    member = name if name in npz.zip.namelist() else f"{name}.npy"  # the lookup np.lib.npyio.NpzFile does
    what = f"array {name!r}"
    try:
        info = npz.zip.getinfo(member)
        with npz.zip.open(member) as f:
            if f.read(len(np.lib.format.MAGIC_PREFIX)) != np.lib.format.MAGIC_PREFIX:
                raise MedganError(f"{what} is not a .npy array", path=path, hint="save the archive with np.savez")
        with npz.zip.open(member) as f:
            _check_npy(f, path, info.file_size, what, stack)
    except (OSError, EOFError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as err:  # RuntimeError: encrypted
        raise MedganError(f"cannot read array {name!r}", path=path, hint=CORRUPT_HINT) from err


def npz_array(npz: np.lib.npyio.NpzFile, name: str, path: str | os.PathLike, *, stack: bool = False) -> np.ndarray:
    """``npz[name]``, its ``.npy`` header checked first (objects, stored bytes, the limit of
    :mod:`medgan.io.limits`), so that no member is allocated before it has passed.

    Args:
        npz: an archive opened with ``np.load(path, allow_pickle=False)``.
        name: the array's key (a name in ``npz.files``).
        path: the archive's path, named in messages.
        stack: the array is a stack of images (a collection's ``images``): the limit holds
            per image, and the whole stack must fit in the memory available.

    Raises:
        MedganError: a member that is not a ``.npy`` array, holds objects, is shorter than
            its header says or declares more values than the limit; a corrupt archive.
    """
    path = Path(path)
    _check_npz_member(npz, name, path, stack)
    try:
        return npz[name]
    except ValueError as err:  # object arrays inside the archive
        raise MedganError(
            f"array {name!r} holds pickled Python objects, which medgan never loads",
            path=path,
            hint="save plain numeric arrays with np.savez",
        ) from err
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise MedganError(f"cannot read array {name!r}", path=path, hint=CORRUPT_HINT) from err


def read_array(path: str | os.PathLike, key: str | None = None, *, grey: bool = False) -> Image:
    """Read one image or volume stored as a NumPy array.

    Shapes are taken as: ``(H, W)`` a grey image; ``(H, W, 3)`` or ``(H, W, 4)`` a colour
    image (alpha dropped) when the last axis is 3 or 4 and the first is larger; any other
    3D shape a ``(D, H, W)`` volume (or stack); ``(D, 1, H, W)`` (the PyTorch layout of a
    grey stack) the same ``(D, H, W)``.

    Args:
        path: a ``.npy`` file or an ``.npz`` archive.
        key: which array of an ``.npz`` archive to read; may be omitted when it holds one.
        grey: convert a colour image to grey (ITU-R 601-2 luminance).

    Returns:
        The image, float32, with ``meta.dtype`` the stored dtype.

    Raises:
        MedganError: unreadable or pickled file, unknown or ambiguous key, a shape or
            dtype that is not an image, non-finite values.
    """
    path = Path(path)
    loaded = _load(path)
    fmt = "npy"
    if isinstance(loaded, np.lib.npyio.NpzFile):
        fmt = "npz"
        with loaded as npz:
            names = list(npz.files)
            if key is None:
                if len(names) != 1:
                    raise MedganError(
                        f"archive holds {len(names)} arrays ({', '.join(names) or 'none'}), expected one",
                        path=path,
                        hint="choose one with key=NAME",
                    )
                key = names[0]
            elif key not in names:
                raise MedganError(
                    f"no array {key!r} in the archive (found: {', '.join(names) or 'none'})",
                    path=path,
                    hint="pass one of the names found",
                )
            raw = npz_array(npz, key, path)
    else:
        raw = loaded
        if key is not None:
            raise MedganError(f"key={key!r} given but a .npy file holds a single array", path=path, hint="drop the key")

    if raw.dtype.kind not in "biuf":
        raise MedganError(f"array of dtype {raw.dtype} is not an image", path=path, hint="save a numeric array")
    if raw.size == 0:
        raise MedganError(f"array of shape {raw.shape} holds no images", path=path, hint="save at least one non-empty image")
    array = raw.astype(np.float32)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]  # (D, 1, H, W) -> (D, H, W)
    colour = False
    if array.ndim == 3 and array.shape[-1] in (3, 4) and array.shape[0] > array.shape[-1]:
        colour = not grey
        array = array[..., :3]  # (H, W, 3), alpha dropped
        if grey:
            array = rgb_to_grey(array)  # (H, W)
    elif array.ndim not in (2, 3):
        raise MedganError(
            f"array of shape {raw.shape} is not an image",
            path=path,
            hint="expected (H, W), (H, W, 3), (D, H, W) or (D, 1, H, W); for a labelled stack use an npz with images/labels",
        )
    check_finite(array, path)
    meta = ImageMeta(
        source=str(path),
        format=fmt,
        dtype=str(raw.dtype),
        value_range=finite_range(array),
        extra={"colour": colour, **({"key": key} if key is not None else {})},
    )
    return Image(np.ascontiguousarray(array), meta)


def read_npz_collection(path: str | os.PathLike, split: str = "train") -> tuple[np.ndarray, np.ndarray | None]:
    """Read a labelled image collection in the MedMNIST ``.npz`` layout.

    Looks for ``{split}_images`` / ``{split}_labels`` first, then plain ``images`` /
    ``labels``. Labels are optional.

    Args:
        path: the ``.npz`` archive.
        split: ``"train"``, ``"val"``, ``"test"`` or any prefix used in the archive.

    Returns:
        ``(images, labels)``: images in their stored dtype (usually uint8; the caller
        converts, so a large collection is not copied to float here), laid out as
        ``(N, H, W)`` or ``(N, H, W, 3)`` (see :func:`stack_layout` for what is accepted);
        labels as ``(N,)`` int64 for single-label data, ``(N, K)`` int64 for multi-label,
        or ``None`` if the archive has none.

    Raises:
        MedganError: no images key (naming the keys found and expected), bad shapes, no
            images, label count not matching the image count, non-finite values.
    """
    path = Path(path)
    loaded = _load(path)
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise MedganError("is a .npy file, expected an .npz archive of images and labels", path=path, hint="save with np.savez")
    with loaded as npz:
        names = list(npz.files)
        for images_key, labels_key in ((f"{split}_images", f"{split}_labels"), ("images", "labels")):
            if images_key in names:
                break
        else:
            raise MedganError(
                f"no images in the archive (found keys: {', '.join(names) or 'none'}; "
                f"expected '{split}_images' [+ '{split}_labels'] or 'images' [+ 'labels'])",
                path=path,
                hint="save the arrays under the expected names",
            )
        images = npz_array(npz, images_key, path, stack=True)
        labels = npz_array(npz, labels_key, path) if labels_key in names else None

    images = stack_layout(images, path, images_key)
    check_finite(images, path)
    if labels is not None:
        if labels.dtype.kind not in "biuf" or labels.ndim not in (1, 2) or len(labels) != len(images):
            raise MedganError(
                f"'{labels_key}' has shape {labels.shape} for {len(images)} images",
                path=path,
                hint="expected (N,), (N, 1) or (N, K) integer labels",
            )
        if labels.dtype.kind == "f" and not np.all(np.isfinite(labels) & (labels == np.round(labels))):
            raise MedganError(f"'{labels_key}' holds non-integer values", path=path, hint="store class indices")
        labels = labels.astype(np.int64)
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]  # (N, 1) -> (N,)
    return images, labels


def write_npz(path: str | os.PathLike, *, overwrite: bool = False, **arrays: np.ndarray) -> Path:
    """Write named arrays to a compressed ``.npz`` archive, atomically.

    Args:
        path: output file; ``.npz`` is the conventional suffix.
        overwrite: replace an existing file instead of refusing.
        arrays: the arrays, by name (e.g. ``train_images=..., train_labels=...``).

    Returns:
        The path written.

    Raises:
        MedganError: the file exists and ``overwrite`` is False, no arrays given, or an
            array holds Python objects (which could only be stored as a pickle).
    """
    if not arrays:
        raise MedganError("no arrays to write", path=path, hint="pass arrays as keyword arguments")
    for name, value in arrays.items():
        if np.asarray(value).dtype.kind == "O":
            raise MedganError(f"array {name!r} holds Python objects", path=path, hint="convert it to a numeric array")
    with atomic_path(path, overwrite) as tmp:
        # Write through a file object: np.savez_compressed appends ".npz" to a bare name.
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **{k: np.asarray(v) for k, v in arrays.items()})
    return Path(path)
