"""PNG, JPEG and TIFF through Pillow: 8- and 16-bit grey, colour, and writing PNG.

Reading keeps the stored values (0..255 for 8-bit, 0..65535 for 16-bit) as float32;
``meta.dtype`` and ``meta.extra["bit_depth"]`` record what was stored so that downstream
code can choose a value range. Colour images are ``(H, W, 3)`` (alpha dropped, palettes
expanded) unless ``grey=True``, which takes the ITU-R 601-2 luminance
(:func:`medgan.io.arrays.rgb_to_grey`). EXIF orientation (photographs) is applied.

The size a file declares is checked against :mod:`medgan.io.limits` from the header alone,
before Pillow decodes a pixel, so a decompression bomb (a small PNG of 20000 x 20000 zeros)
ends in one :class:`~medgan.errors.MedganError` line.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from medgan.errors import MedganError
from medgan.io import limits
from medgan.io.arrays import CORRUPT_HINT, check_finite, rgb_to_grey
from medgan.io.base import Image, ImageMeta, finite_range
from medgan.io.output import atomic_path

__all__ = ["read_raster", "write_png"]

_PIL_FORMATS = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "TIFF": "tiff"}
_GREY16_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
_GREY_MODES = ("1", "L", "LA", "I", "F", *_GREY16_MODES)  # read as (H, W); every other mode as (H, W, 3)
_PILLOW_GUARD = threading.Lock()


@contextmanager
def _pillow_guard() -> Iterator[None]:
    """Pillow's own decompression-bomb guard handed to medgan for one read, then restored.

    Pillow warns above ``MAX_IMAGE_PIXELS`` (89 million by default) and refuses above twice
    that inside ``open``, before the size can be seen, with a traceback and a limit that
    ``MEDGAN_MAX_PIXELS`` would not move. medgan's check of the declared size decides
    instead: the guard is off while the header is read (nothing is decoded), and
    :func:`read_raster` sets it to medgan's limit once the header has passed, so a frame or
    tile declaring more than the header still stops Pillow. Pillow's warning is silenced;
    the lock keeps concurrent reads from interleaving the change.
    """
    with _PILLOW_GUARD, warnings.catch_warnings():
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        saved = PILImage.MAX_IMAGE_PIXELS
        PILImage.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            PILImage.MAX_IMAGE_PIXELS = saved


def _to_array(img: PILImage.Image) -> tuple[np.ndarray, int]:
    """Pixels of a Pillow image as ``(H, W)`` or ``(H, W, 3)`` plus the stored bit depth."""
    mode = img.mode
    if mode == "1":
        return np.asarray(img.convert("L")), 8  # bilevel as 0 / 255
    if mode in ("L", "RGB"):
        return np.asarray(img), 8
    if mode == "LA":
        return np.asarray(img)[..., 0], 8
    if mode == "RGBA":
        return np.asarray(img)[..., :3], 8
    if mode in ("P", "PA"):
        return np.asarray(img.convert("RGB")), 8
    if mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa"):
        return np.asarray(img.convert("RGB")), 8
    if mode in _GREY16_MODES:
        return np.asarray(img).astype(np.uint16), 16
    if mode == "I":
        arr = np.asarray(img)
        # Pillow opens some 16-bit files as 32-bit "I"; the TIFF tag or PNG says what was stored.
        bits = 32
        tags = getattr(img, "tag_v2", None)
        if tags is not None and 258 in tags:
            bits = int(np.max(tags[258]))
        elif img.format == "PNG":
            bits = 16
        if bits <= 16 and arr.size and arr.min() >= 0 and arr.max() <= 65535:
            return arr.astype(np.uint16), 16
        return arr.astype(np.int32), 32
    if mode == "F":
        return np.asarray(img).astype(np.float32), 32
    raise MedganError(f"unsupported image mode {mode!r}", path=img.filename or None, hint="convert it to 8/16-bit grey or RGB")


def read_raster(path: str | os.PathLike, grey: bool = False) -> Image:
    """Read a PNG, JPEG or TIFF image.

    Args:
        path: the image file.
        grey: convert colour to grey (ITU-R 601-2 luminance, computed in float).

    Returns:
        ``(H, W)`` float32 for grey images (or ``grey=True``), ``(H, W, 3)`` for colour;
        ``meta.dtype`` is ``"uint8"``/``"uint16"`` (``"int32"``/``"float32"`` for 32-bit
        TIFF), ``meta.extra`` holds ``bit_depth`` and the Pillow ``mode``.

    Raises:
        MedganError: unreadable, truncated or corrupt file, a declared size above
            :func:`medgan.io.limits.max_pixels` (refused before decoding), multi-page TIFF,
            an unusual pixel mode, non-finite values (float TIFF).
    """
    path = Path(path)
    limit = limits.max_pixels()
    try:
        with _pillow_guard(), PILImage.open(path) as img:  # lazy: the header only
            width, height = img.size
            limits.check_declared(path, (height, width) if img.mode in _GREY_MODES else (height, width, 3))
            PILImage.MAX_IMAGE_PIXELS = limit  # from here Pillow refuses what the header hid
            n_frames = getattr(img, "n_frames", 1)
            if n_frames > 1 and img.format == "TIFF":
                raise MedganError(
                    f"multi-page TIFF with {n_frames} pages; medgan reads single images",
                    path=path,
                    hint="split the pages into separate files or convert the stack to NIfTI",
                )
            img.load()
            fmt = _PIL_FORMATS.get(img.format or "", (img.format or "unknown").lower())
            mode = img.mode
            img = ImageOps.exif_transpose(img)
            raw, bits = _to_array(img)
    except MedganError:
        raise
    except UnidentifiedImageError as err:
        raise MedganError("not a readable PNG/JPEG/TIFF image", path=path, hint=CORRUPT_HINT) from err
    except PILImage.DecompressionBombError as err:  # a frame or tile larger than the header said
        raise MedganError(
            f"a frame declares more pixels than medgan's limit of {limit} per image allows", path=path,
            hint=f"if the image is genuine and memory allows, raise {limits.ENV_VAR} and retry",
        ) from err
    except (OSError, SyntaxError, ValueError, EOFError) as err:  # Pillow's truncated/corrupt errors
        raise MedganError(f"cannot decode the image ({err})", path=path, hint=CORRUPT_HINT) from err

    array = raw.astype(np.float32)
    if array.ndim == 3 and grey:
        array = rgb_to_grey(array)  # (H, W, 3) -> (H, W)
    check_finite(array, path)
    meta = ImageMeta(
        source=str(path),
        format=fmt,
        dtype=str(raw.dtype),
        value_range=finite_range(array),
        extra={"bit_depth": bits, "mode": mode, "colour": array.ndim == 3},
    )
    return Image(np.ascontiguousarray(array), meta)


def write_png(
    path: str | os.PathLike,
    array: np.ndarray,
    *,
    bits: int = 8,
    value_range: tuple[float, float] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a grey or colour image as PNG, mapping ``value_range`` linearly to the full bit range.

    Args:
        path: output file.
        array: ``(H, W)`` grey or ``(H, W, 3)`` colour.
        bits: 8 (0..255) or 16 (0..65535, grey only: Pillow writes 16-bit grey as ``I;16``).
        value_range: the ``(low, high)`` values mapped to 0 and the maximum; values outside
            are clipped. Default: the array's own min and max (a constant image -> zeros).
        overwrite: replace an existing file instead of refusing.

    Returns:
        The path written.

    Raises:
        MedganError: bad shape or bit depth, non-finite values, existing output.
    """
    array = np.asarray(array)
    if bits not in (8, 16):
        raise MedganError(f"bits={bits} is not supported", path=path, hint="use bits=8 or bits=16")
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 3)):
        raise MedganError(f"array of shape {array.shape} is not an image", path=path, hint="expected (H, W) or (H, W, 3)")
    if array.ndim == 3 and bits == 16:
        raise MedganError("16-bit colour PNG is not supported", path=path, hint="use bits=8 for colour images")
    data = array.astype(np.float64)
    check_finite(data, path)
    low, high = value_range if value_range is not None else (float(data.min()), float(data.max()))
    top = 255 if bits == 8 else 65535
    if high > low:
        scaled = np.rint(np.clip((data - low) / (high - low), 0.0, 1.0) * top)
    else:
        scaled = np.zeros_like(data)
    pixels = scaled.astype(np.uint8 if bits == 8 else np.uint16)
    img = PILImage.fromarray(pixels)  # uint8 -> "L"/"RGB", uint16 (H, W) -> "I;16"
    with atomic_path(path, overwrite) as tmp:
        img.save(tmp, format="PNG")
    return Path(path)
