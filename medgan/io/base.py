"""The reader contract shared by every format.

Every reader returns an :class:`Image`: a float32 pixel array plus :class:`ImageMeta`.

Array layout (the same for every format, so that nothing downstream cares where an
image came from):

- 2D grey image: ``(H, W)``, row-major, row 0 at the top of the displayed image.
- 2D colour image: ``(H, W, 3)`` (only when the caller did not ask for grey).
- Volume: ``(D, H, W)``: ``D`` indexes slices (DICOM instances sorted by position, or
  the NIfTI third voxel axis), each slice ``(H, W)`` as above.

``meta.affine`` (when known) maps the returned array's indices ``(d, h, w, 1)`` (volume)
or ``(h, w, 0, 1)`` (2D) to world millimetres in RAS+ (NIfTI convention; DICOM's LPS is
converted), so geometry survives any round trip through medgan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ImageMeta:
    """What a reader knows about an image besides its pixels.

    Attributes:
        source: path of the file (or folder, for a DICOM series) read.
        format: ``"dicom"``, ``"nifti"``, ``"png"``, ``"jpeg"``, ``"tiff"``, ``"npy"`` or ``"npz"``.
        modality: DICOM modality (``"CT"``, ``"MR"``, ``"CR"`` ...) or ``None`` if unknown.
        spacing: voxel size in mm per array axis (same order as the array), or ``None``.
        affine: 4x4 index-to-RAS+ matrix for the returned array layout, or ``None``.
        orientation: axis codes of the affine, e.g. ``("S", "A", "R")``, or ``None``.
        dtype: the stored pixel dtype before conversion to float32, e.g. ``"int16"``.
        value_range: ``(min, max)`` of the returned array (finite values).
        units: physical units of the values (``"HU"`` for rescaled CT), or ``None``.
        extra: format-specific details (DICOM window centre/width, NIfTI header fields,
            the chosen 4D volume, ...). JSON-serialisable values only.
    """

    source: str
    format: str
    modality: str | None = None
    spacing: tuple[float, ...] | None = None
    affine: np.ndarray | None = None
    orientation: tuple[str, ...] | None = None
    dtype: str = "float32"
    value_range: tuple[float, float] = (0.0, 0.0)
    units: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Image:
    """Pixels (float32, layout in the module docstring) and their metadata."""

    array: np.ndarray
    meta: ImageMeta

    @property
    def is_colour(self) -> bool:
        """True for an ``(H, W, 3)`` colour image (readers set ``meta.extra["colour"]``)."""
        return self.array.ndim == 3 and bool(self.meta.extra.get("colour", False))

    @property
    def is_volume(self) -> bool:
        """True for a ``(D, H, W)`` volume, False for a 2D image."""
        return self.array.ndim == 3 and not self.is_colour


RASTER_FORMATS = ("png", "jpeg", "tiff")


def finite_range(array: np.ndarray) -> tuple[float, float]:
    """``(min, max)`` over finite values (``(0, 0)`` for an array with none)."""
    finite = array[np.isfinite(array)]
    if finite.size == 0:
        return (0.0, 0.0)
    return (float(finite.min()), float(finite.max()))
