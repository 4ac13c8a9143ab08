"""How large an image medgan agrees to read: one limit, checked before anything is allocated.

A small file can declare an enormous image: a 50 KB PNG of 20000 x 20000 zeros (a
decompression bomb), an ``.npy`` header promising a 50000^3 array, a DICOM header whose
Rows x Columns x NumberOfFrames exceed what its pixel data holds. Every reader passes the
shape the file *declares* to :func:`check_declared` right after reading the header, so a
hostile or broken file ends in one :class:`~medgan.errors.MedganError` line instead of an
allocation that takes the machine down.

Two checks, in this order:

1. **Against the file itself**, where the stored bytes are known (an uncompressed ``.npy``
   file or ``.npz`` member, DICOM native pixel data): the declared values must fit in the
   bytes stored. A header that promises more is corrupt or hostile, whatever the limit.
2. **Against the limit**: at most :data:`DEFAULT_MAX_PIXELS` values (pixels x channels, or
   voxels) per image or volume, 2**28 (about 268 million: 1 GiB as float32, a 16384 x 16384
   grey image or a 512 x 512 x 1024 CT volume). Compressed data (PNG, TIFF, JPEG, encapsulated
   DICOM, ``.nii.gz``) can only be held to this limit.

A stack of images (an ``.npz`` collection such as MedMNIST's ``train_images``) is held to
the limit per image, and as a whole to the memory available (:func:`available_memory`):
a collection of 100 000 small images is not one huge image, but it must still fit.

Raise the limit for genuine large images with the environment variable
``MEDGAN_MAX_PIXELS`` (a whole number of values, e.g. ``MEDGAN_MAX_PIXELS=1073741824``
for 2**30), read at every check. Memory needed is about 4 bytes per value for the float32
result plus the stored copy while it is converted.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

from medgan.errors import MedganError

__all__ = ["DEFAULT_MAX_PIXELS", "ENV_VAR", "available_memory", "check_declared", "format_bytes", "max_pixels"]

ENV_VAR = "MEDGAN_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 2**28  # values per image or volume: 1 GiB as float32


def max_pixels() -> int:
    """The limit in values (pixels x channels, or voxels) per image or volume.

    ``MEDGAN_MAX_PIXELS`` when set (read at each call), else :data:`DEFAULT_MAX_PIXELS`.

    Raises:
        MedganError: ``MEDGAN_MAX_PIXELS`` is set but is not a positive whole number.
    """
    text = os.environ.get(ENV_VAR, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = 0
    if value <= 0:
        raise MedganError(
            f"{ENV_VAR}={text!r} is not a positive whole number of pixels",
            hint=f"set it to e.g. {ENV_VAR}={2 * DEFAULT_MAX_PIXELS}, or unset it for the default {DEFAULT_MAX_PIXELS}",
        )
    return value


def available_memory() -> int | None:
    """Bytes this process can still take without swapping: ``MemAvailable`` of
    ``/proc/meminfo`` (Linux), lowered to what a cgroup v2 limit leaves (a container), else
    the free physical pages ``os.sysconf`` reports; ``None`` where neither is known."""
    available = None
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            return None
    try:  # a container's own limit, when it has one
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            available = min(available, max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return available


def format_bytes(n: float) -> str:
    """``"1.5 GiB"``: a byte count for messages (bytes, KiB ... TiB, PiB)."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def _count(n: int) -> str:
    """``"400 million"``: a value count for messages."""
    for size, word in ((10**12, "trillion"), (10**9, "billion"), (10**6, "million")):
        if n >= size:
            return f"{n / size:.3g} {word}"
    return str(n)


def check_declared(
    path: str | PathLike,
    shape: Sequence[int],
    *,
    itemsize: float | None = None,
    stored_bytes: int | None = None,
    what: str = "an image of",
    stack: bool = False,
) -> int:
    """Refuse a declared image before its pixels are allocated (see the module docstring).

    Args:
        path: the file, named in the message.
        shape: the declared shape, channels included (``(H, W)``, ``(F, H, W, 3)`` ...).
        itemsize: bytes per stored value (``1/8`` for 1-bit DICOM); used with ``stored_bytes``
            and for the stored size in the message.
        stored_bytes: the bytes the file really holds for these values (uncompressed data
            only); ``None`` when it cannot be known without decoding (compressed data).
        what: how the message names the thing, e.g. ``"an image of"``, ``"array 'images' of"``.
        stack: ``shape[0]`` counts images (a collection): the limit holds per image, and the
            whole stack as float32 must fit in :func:`available_memory`.

    Returns:
        The number of values (the product of ``shape``).

    Raises:
        MedganError: a negative dimension, more bytes declared than stored, more values than
            :func:`max_pixels` (the message says how to raise it), or a stack larger than
            the memory available.
    """
    dims = [int(d) for d in shape]
    text = " x ".join(map(str, dims)) or "a scalar"
    if any(d < 0 for d in dims):
        raise MedganError(f"declares {what} {text}, a negative size", path=path, hint="the file is corrupt; re-export it")
    count = math.prod(dims)
    if itemsize is not None and stored_bytes is not None:
        need = math.ceil(count * itemsize)
        if need > stored_bytes:
            raise MedganError(
                f"declares {what} {text} ({format_bytes(need)} of pixel data) but holds only {format_bytes(stored_bytes)}",
                path=path,
                hint="the file is truncated or corrupt; re-export it",
            )
    limit = max_pixels()
    per, shown = count, f"{what} {text}"
    if stack and dims:
        available = available_memory()
        if available is not None and 4 * count > available:
            raise MedganError(
                f"declares {what} {text} ({format_bytes(4 * count)} as float32), more than the "
                f"{format_bytes(available)} of memory available",
                path=path,
                hint="read a subset of the images, or use a machine with more memory",
            )
        per = math.prod(dims[1:])  # the limit is per image
        shown = f"{what} {text}, images of {' x '.join(map(str, dims[1:])) or 'a scalar'}"
    if per > limit:
        stored = f", {format_bytes(per * itemsize)} stored" if itemsize else ""
        raise MedganError(
            f"declares {shown} ({_count(per)} values{stored}, {format_bytes(4 * per)} as float32), "
            f"above medgan's limit of {_count(limit)} values per image",
            path=path,
            hint=f"if the image is genuine and memory allows, set {ENV_VAR}={per} (or more) and retry",
        )
    return count
