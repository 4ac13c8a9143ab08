"""A PyTorch ``Dataset`` over any source medgan reads.

Items are dicts so that every task takes what it needs::

    {"image": (C, H, W) float32 in [-1, 1], "label": int64 (if labelled),
     "mask": (H, W) int64 (if masks), "index": int}

The :class:`IntensityMap` used to reach [-1, 1] is kept on the dataset (and goes into a
run's config) so that outputs can be mapped back to the data's units.

Memory: the dataset holds the set's images twice (in the data's units, ``data.images``, and
mapped to [-1, 1]); the mapping runs a chunk of images at a time, since its float64
arithmetic would otherwise take several copies of the whole set at once, and masks stay in
their small integer type until a batch asks for them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from medgan.data.imageset import ImageSet
from medgan.data.intensity import IntensityMap
from medgan.data.sources import SourceOptions, load_source
from medgan.data.splits import split_by_group


_CHUNK_BYTES = 16 << 20  # images mapped to [-1, 1] at a time


class MedicalImageDataset(Dataset):
    """Images of an :class:`ImageSet` mapped to [-1, 1] as ``(C, H, W)`` tensors.

    Args:
        data: the images (see :func:`medgan.data.load_source` to get them from a source).
        intensity: map from the data's units to [-1, 1]; default: the set's ``value_range``.
    """

    def __init__(self, data: ImageSet, intensity: IntensityMap | None = None):
        self.data = data
        low, high = data.value_range or (float(data.images.min()), float(data.images.max()))
        self.intensity = intensity or IntensityMap(low, high if high > low else low + 1.0, data.units)
        images = np.empty(data.images.shape, np.float32)
        step = max(1, _CHUNK_BYTES // max(1, images[:1].nbytes))
        for start in range(0, len(images), step):  # elementwise: the same values as one call on the whole set
            images[start : start + step] = self.intensity.forward(data.images[start : start + step])
        self._images = torch.from_numpy(images if images.ndim == 4 else images[:, None])  # (N, C, H, W)
        self._labels = None if data.labels is None else torch.from_numpy(np.asarray(data.labels, dtype=np.int64))
        # uint8 / uint16 label maps as stored (int64 would take 8 times the memory); int64 per batch
        self._masks = None if data.masks is None else torch.from_numpy(data.masks.astype(np.int32 if data.masks.dtype == np.uint16 else data.masks.dtype))

    @classmethod
    def from_source(
        cls, source: str | Path | list, options: SourceOptions | None = None, split: str | None = None,
        fractions: tuple[float, ...] = (0.8, 0.1, 0.1), seed: int = 0, **option_fields,
    ) -> "MedicalImageDataset":
        """Read ``source`` (see :func:`load_source`) and optionally keep one patient-level split.

        Example:
            >>> train = MedicalImageDataset.from_source("brain-mri", split="train", size=64)
        """
        options = options or SourceOptions(**option_fields)
        data = load_source(source, options)
        if split is not None:
            data = data.subset(split_by_group(data.groups, fractions, seed)[split])
        return cls(data)

    def __len__(self) -> int:
        return len(self._images)

    @property
    def channels(self) -> int:
        return int(self._images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self._images.shape[-2:])

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """Items ``index`` stacked into one batch (what a DataLoader would collate, without
        the per-item Python overhead; the data are already tensors in memory)."""
        out = {"image": self._images[index], "index": index}
        if self._labels is not None:
            out["label"] = self._labels[index]
        if self._masks is not None:
            out["mask"] = self._masks[index].long()
        return out

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        item: dict[str, torch.Tensor | int] = {"image": self._images[index], "index": index}
        if self._labels is not None:
            item["label"] = self._labels[index]
        if self._masks is not None:
            item["mask"] = self._masks[index].long()
        return item
