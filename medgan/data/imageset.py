"""An in-memory set of 2D images with their labels, masks and groups.

This is what every data source resolves to (a folder, a DICOM series, a NIfTI volume, a
MedMNIST npz, the embedded ``brain-mri`` slices, ``phantom`` draws) and what the
``Dataset``, the splits and ``medgan data show`` consume. Small medical datasets fit in
memory comfortably (10 000 slices of 256x256 float32 are 2.6 GB; 64x64 are 160 MB): a set
costs its images at the size kept, since :func:`medgan.data.load_source` fits each volume
to that size as it reads it, and refuses up front a set larger than the memory available.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ImageSet:
    """2D images of one size, in their native units, with optional annotations.

    Attributes:
        images: ``(N, H, W)`` float32 grey images (or ``(N, C, H, W)`` multi-channel), in
            the data's own units (HU for CT, raw intensity for MRI, 0..255 for 8-bit PNG).
        labels: ``(N,)`` int64 class indices, or ``None``.
        class_names: name of each class index (``labels`` values index this list).
        masks: ``(N, H, W)`` label maps (``uint8``, ``uint16`` past 255) paired with the images, or ``None``.
        mask_names: name of each mask value, e.g. ``["background", "grey", "white"]``.
        annotated: ``(N,)`` bool, which images' masks are annotations (a partly labelled
            scan read with ``partial_masks``: the others hold all-zero masks that mean "not
            labelled", not "background"); ``None``: every mask is one.
        groups: ``(N,)`` int64 id of the volume / patient each image comes from; splits
            never put one group on both sides. ``None`` means every image is its own group.
        sources: ``N`` strings saying where each image came from (file, slice index).
        spacing: ``(N, 2)`` float64 pixel size in mm (rows, columns) of each image as stored
            here (after slicing and resizing), or ``None`` when the files do not say (PNG,
            the embedded sets); segmentation distances are in pixels then.
        value_range: the nominal ``(low, high)`` of the data's units, used to map to
            [-1, 1] and back (e.g. ``(0, 255)`` for 8-bit PNG, a window for CT).
        units: physical units of the values, e.g. ``"HU"``, or ``None``.
        name: short human name of the source, e.g. ``"brain-mri"``.
        extra: anything else worth showing in a summary (JSON-serialisable).
    """

    images: np.ndarray
    labels: np.ndarray | None = None
    class_names: list[str] | None = None
    masks: np.ndarray | None = None
    mask_names: list[str] | None = None
    annotated: np.ndarray | None = None
    groups: np.ndarray | None = None
    sources: list[str] | None = None
    spacing: np.ndarray | None = None
    value_range: tuple[float, float] | None = None
    units: str | None = None
    name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.images)
        for attr in ("labels", "masks", "annotated", "groups", "sources", "spacing"):
            value = getattr(self, attr)
            if value is not None and len(value) != n:
                raise ValueError(f"ImageSet.{attr} has {len(value)} entries for {n} images")

    def __len__(self) -> int:
        return len(self.images)

    def save_npz(self, path, overwrite: bool = False):
        """Write the images in the MedMNIST layout, read back identically by medgan (``train_images``
        in the data's units, ``train_labels``, and ``class_names``, ``groups``, ``value_range`` and
        ``units`` where known; masks and sources are not kept)."""
        from medgan.io import write_npz

        arrays = {"train_images": self.images.astype(np.float32)}
        if self.labels is not None:
            arrays["train_labels"] = np.asarray(self.labels, np.int64)[:, None]
        if self.class_names is not None:
            arrays["class_names"] = np.asarray(self.class_names, dtype=str)
        if self.groups is not None:
            arrays["groups"] = np.asarray(self.groups, np.int64)
        if self.value_range is not None:
            arrays["value_range"] = np.asarray(self.value_range, np.float64)
        if self.units is not None:
            arrays["units"] = np.asarray(self.units, dtype=str)
        return write_npz(path, overwrite=overwrite, **arrays)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one image, ``(H, W)`` or ``(C, H, W)``."""
        return tuple(self.images.shape[1:])

    def labelled_index(self) -> np.ndarray:
        """Indices of the images whose masks are annotations (all, unless ``annotated`` says)."""
        if self.masks is None:
            return np.zeros(0, np.int64)
        return np.arange(len(self)) if self.annotated is None else np.flatnonzero(self.annotated)

    def subset(self, index: np.ndarray | list[int]) -> "ImageSet":
        """A new set holding the images at ``index`` (annotations follow)."""
        index = np.asarray(index, dtype=np.int64)
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        return ImageSet(
            images=self.images[index],
            labels=pick(self.labels),
            class_names=self.class_names,
            masks=pick(self.masks),
            mask_names=self.mask_names,
            annotated=pick(self.annotated),
            groups=pick(self.groups),
            sources=None if self.sources is None else [self.sources[i] for i in index],
            spacing=pick(self.spacing),
            value_range=self.value_range,
            units=self.units,
            name=self.name,
            extra=dict(self.extra),
        )
