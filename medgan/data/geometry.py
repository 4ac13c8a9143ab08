"""Geometry: volumes to 2D slices, images to one square size, and bicubic upsampling.

Resizing uses ``torch.nn.functional.interpolate`` with anti-aliasing for images (so
downsampled slices do not alias) and nearest neighbour for label masks (so labels stay
labels); both are deterministic on CPU.

:func:`bicubic_upsample` is the one bicubic interpolator of the project: the classical
super-resolution baseline, the bicubic skip of the SR network and the upsampled residual
of out-of-range pixels at inference all call it, so "gain over bicubic" is measured
against exactly what the network starts from.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from medgan.data.intensity import percentiles
from medgan.errors import MedganError


def bicubic_upsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """``(B, C, h, w) -> (B, C, h*scale, w*scale)``: Keys cubic convolution (a = -0.75, as
    OpenCV's ``INTER_CUBIC``), pixel centres aligned as ``align_corners=False``, no
    anti-aliasing (it only enlarges). Differentiable; any device and dtype."""
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)


# Anatomical plane -> the pair of axis codes its normal points along.
PLANES = {"axial": ("S", "I"), "coronal": ("A", "P"), "sagittal": ("L", "R")}

# Radiological display of each plane, as the axis codes of a (D, H, W) array (a code names
# the direction in which the index grows): axial and coronal show the patient's right on
# the image's left; axial has anterior at the top, coronal and sagittal superior at the
# top, and sagittal anterior on the left.
DISPLAY = {"axial": ("S", "P", "L"), "coronal": ("A", "I", "L"), "sagittal": ("R", "I", "P")}


def plane_axis(orientation: tuple[str, ...] | None, plane: str) -> int:
    """Index of the volume axis normal to an anatomical ``plane``.

    Args:
        orientation: axis codes of the volume's affine, e.g. ``("S", "A", "R")``.
        plane: ``"axial"``, ``"coronal"`` or ``"sagittal"``.

    Raises:
        MedganError: unknown plane, or a volume without orientation.
    """
    if plane not in PLANES:
        raise MedganError(f"unknown plane {plane!r}", hint="use axial, coronal, sagittal or an axis number 0, 1, 2")
    if orientation is None:
        raise MedganError(f"the volume has no orientation, so the {plane} plane is unknown", hint="give the slice axis as a number (0, 1 or 2)")
    for axis, code in enumerate(orientation):
        if code in PLANES[plane]:
            return axis
    raise MedganError(f"no {plane} axis in orientation {''.join(orientation)}", hint="give the slice axis as a number (0, 1 or 2)")


def orient_for_display(volume: np.ndarray, orientation: tuple[str, ...] | None, plane: str) -> np.ndarray:
    """Permute and flip a ``(D, H, W)`` volume so that its slices along axis 0 are ``plane``
    slices shown the radiological way (see :data:`DISPLAY`). Only axis swaps and flips:
    no resampling, so every voxel value is kept.

    Raises:
        MedganError: unknown plane, or a volume without orientation.
    """
    import nibabel.orientations as ornt

    plane_axis(orientation, plane)  # validates the plane and the orientation
    transform = ornt.ornt_transform(ornt.axcodes2ornt(orientation), ornt.axcodes2ornt(DISPLAY[plane]))
    return np.ascontiguousarray(ornt.apply_orientation(volume, transform))


def display_spacing(spacing: tuple[float, ...], orientation: tuple[str, ...] | None, plane: str) -> tuple[float, float, float]:
    """The voxel size, per axis, of the volume :func:`orient_for_display` returns (its axes
    permuted the same way; flips leave sizes alone)."""
    import nibabel.orientations as ornt

    transform = ornt.ornt_transform(ornt.axcodes2ornt(orientation), ornt.axcodes2ornt(DISPLAY[plane]))
    out = [0.0, 0.0, 0.0]
    for source_axis, (target_axis, _flip) in enumerate(transform):
        out[int(target_axis)] = float(spacing[source_axis])
    return tuple(out)


def fitted_shape(shape: tuple[int, int], size: int, mode: str) -> tuple[int, int]:
    """The ``(rows, columns)`` :func:`fit_square` resizes an image of ``shape`` to, before it
    pads (``pad``) or crops (``crop``) to ``size`` x ``size``."""
    h, w = int(shape[0]), int(shape[1])
    if mode == "stretch":
        return size, size
    scale = size / max(h, w) if mode == "pad" else size / min(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def resized_spacing(spacing: tuple[float, float], shape: tuple[int, int], size: int, mode: str) -> tuple[float, float]:
    """Pixel size (rows, columns) after :func:`fit_square` turned an image of ``shape`` into
    ``size`` x ``size`` (the same scale on both axes unless ``mode`` is ``stretch``)."""
    nh, nw = fitted_shape(shape, size, mode)
    return (spacing[0] * shape[0] / nh, spacing[1] * shape[1] / nw)


def resize_image(image: np.ndarray, shape: tuple[int, int], labels: bool = False) -> np.ndarray:
    """A 2D ``(H, W)`` or ``(C, H, W)`` float image resized to ``shape`` the way
    :func:`fit_square` resizes (antialiased bilinear; nearest for ``labels``), float32."""
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    x = x[None, None] if image.ndim == 2 else x[None]  # (1, C, H, W)
    out = x if tuple(x.shape[-2:]) == tuple(shape) else _resize(x, tuple(int(v) for v in shape), labels)
    return (out[0, 0] if image.ndim == 2 else out[0]).numpy()


def slicing_axis(orientation: tuple[str, ...] | None, axis: int | str) -> int | str:
    """The axis ``--axis`` slices a volume along: a plane name (``"axial"`` ...) or a raw
    array axis; ``"auto"`` is axial when the volume's orientation is known, else axis 0."""
    if axis == "auto":
        return "axial" if orientation else 0
    return axis if isinstance(axis, str) else int(axis)


def foreground_slices(
    volume: np.ndarray, axis: int = 0, min_foreground: float = 0.05, threshold: float | None = None
) -> np.ndarray:
    """Indices of the slices along ``axis`` that :func:`volume_to_slices` keeps, without
    copying them (the threshold is explained there): the caller can take and shrink one
    slice at a time."""
    if volume.ndim != 3:
        raise ValueError(f"expected a (D, H, W) volume, got shape {volume.shape}")
    if axis not in (0, 1, 2):
        raise MedganError(f"slice axis must be 0, 1 or 2, got {axis}", hint="choose --axis 0, 1, 2 or a plane name")
    stack = np.moveaxis(volume, axis, 0).astype(np.float32, copy=False)  # (N, h, w), a view when float32
    if threshold is None:  # percentiles ignore order: taken on the volume as stored, without a sorted copy
        lo, hi = percentiles(volume if volume.dtype == np.float32 else stack, [1.0, 99.0])
        threshold = lo + 0.1 * (hi - lo)
    fraction = (stack > threshold).mean(axis=(1, 2))  # counts of 0/1: exact in any order
    return np.flatnonzero(fraction >= min_foreground)


def volume_to_slices(
    volume: np.ndarray, axis: int = 0, min_foreground: float = 0.05, threshold: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cut a ``(D, H, W)`` volume into 2D slices along ``axis``, skipping empty ones.

    A pixel is foreground if it exceeds ``threshold`` (default: 10% of the way from the
    volume's 1st to 99th percentile, which separates air or MRI background from tissue);
    a slice is kept if at least ``min_foreground`` of its pixels are foreground.

    Returns:
        ``(slices, indices)``: ``(N, h, w)`` float32 slices and their ``(N,)`` indices.
    """
    keep = foreground_slices(volume, axis, min_foreground, threshold)
    return np.ascontiguousarray(np.moveaxis(volume, axis, 0)[keep], dtype=np.float32), keep


def _resize(batch: torch.Tensor, size: tuple[int, int], labels: bool) -> torch.Tensor:
    if labels:
        return F.interpolate(batch, size=size, mode="nearest-exact")
    # Antialiased bilinear: a proper low-pass when shrinking, plain bilinear when growing.
    return F.interpolate(batch, size=size, mode="bilinear", align_corners=False, antialias=True)


def fit_square(
    image: np.ndarray, size: int, mode: str = "pad", labels: bool = False, fill: float | None = None
) -> np.ndarray:
    """Resize a 2D ``(H, W)`` or ``(C, H, W)`` image to ``size`` x ``size``.

    Args:
        image: the image.
        size: output side in pixels.
        mode: ``"pad"`` keeps the aspect ratio and the whole image (scale the long side to
            ``size``, pad the short one); ``"crop"`` keeps the aspect ratio and fills the
            square (scale the short side, centre-crop the long one); ``"stretch"`` ignores
            the aspect ratio.
        labels: the image is a label mask: nearest-neighbour, and padding with 0.
        fill: padding value (default: the image minimum, i.e. background; 0 for labels).

    Returns:
        the ``(size, size)`` or ``(C, size, size)`` image, same dtype as the input.
    """
    if mode not in ("pad", "crop", "stretch"):
        raise MedganError(f"unknown resize mode {mode!r}", hint="use pad, crop or stretch")
    squeeze = image.ndim == 2
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    x = x[None, None] if squeeze else x[None]  # (1, C, H, W)
    h, w = x.shape[-2:]
    if mode == "stretch":
        out = _resize(x, (size, size), labels)
    else:
        nh, nw = fitted_shape((h, w), size, mode)
        if (nh, nw) != (h, w):
            x = _resize(x, (nh, nw), labels)
        if mode == "pad":
            value = 0.0 if labels else (float(image.min()) if fill is None else fill)
            top, left = (size - nh) // 2, (size - nw) // 2
            out = F.pad(x, (left, size - nw - left, top, size - nh - top), value=value)
        else:
            top, left = (nh - size) // 2, (nw - size) // 2
            out = x[..., top : top + size, left : left + size]
    out = out[0, 0] if squeeze else out[0]
    result = out.numpy()
    if labels or np.issubdtype(image.dtype, np.integer):
        result = np.rint(result)
    return result.astype(image.dtype, copy=False)


def unfit_square(image: np.ndarray, shape: tuple[int, int], mode: str = "pad", fill: float = 0.0) -> np.ndarray:
    """The inverse of :func:`fit_square` for maps computed on the square: a ``(size, size)``
    map back to the original image's ``shape`` ``(H, W)`` (bilinear).

    ``pad``: the padding is cut off and the rest resized; ``crop``: the map is put back in
    the middle of the resized image, ``fill`` where the crop cut the image off (nothing was
    computed there); ``stretch``: resized.
    """
    if mode not in ("pad", "crop", "stretch"):
        raise MedganError(f"unknown resize mode {mode!r}", hint="use pad, crop or stretch")
    size = image.shape[-1]
    if mode == "stretch":
        return resize_image(image.astype(np.float32), shape)
    nh, nw = fitted_shape(shape, size, mode)
    if mode == "pad":
        top, left = (size - nh) // 2, (size - nw) // 2
        inner = image[top : top + nh, left : left + nw]
    else:
        inner = np.full((nh, nw), fill, np.float32)
        top, left = (nh - size) // 2, (nw - size) // 2
        inner[top : top + size, left : left + size] = image
    return inner.astype(np.float32) if (nh, nw) == tuple(shape) else resize_image(inner.astype(np.float32), shape)
