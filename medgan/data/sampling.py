"""Which training images each epoch visits, for one process of a (possibly distributed) run.

:class:`BalancedSampler` is the class-balanced alternative to torch's
``DistributedSampler``: on a labelled set where one class has 10x the images of another, a
GAN (or a classifier) trained on uniform draws learns the rare class from a tenth of the
batches. It draws each epoch's indices with replacement, every class equally likely and
every image of a class equally likely within it, seeded by ``seed + epoch``, and gives each
of ``num_replicas`` processes its own stride of the same draw (so a DDP run sees what one
process would). torch's ``WeightedRandomSampler`` does the drawing part but knows neither
epochs nor replicas, hence this small class.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

__all__ = ["BalancedSampler", "class_counts"]


def class_counts(labels: np.ndarray) -> dict[int, int]:
    """Images per class label, in label order."""
    values, counts = np.unique(np.asarray(labels), return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts)}


class BalancedSampler(Sampler[int]):
    """Class-balanced indices, ``len(labels) // num_replicas`` per process and epoch.

    Args:
        labels: ``(N,)`` integer class of every image.
        num_replicas, rank: the process count and this process's index.
        seed: with the epoch (:meth:`set_epoch`), fixes the draw: exact resume.

    Raises:
        ValueError: no labels.
    """

    def __init__(self, labels: np.ndarray, num_replicas: int = 1, rank: int = 0, seed: int = 0):
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) == 0:
            raise ValueError("a class-balanced sampler needs one label per image")
        counts = class_counts(labels)
        self.weights = torch.tensor([1.0 / counts[int(y)] for y in labels], dtype=torch.float64)
        self.num_replicas, self.rank, self.seed, self.epoch = num_replicas, rank, seed, 0
        self.per_replica = len(labels) // num_replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        total = self.per_replica * self.num_replicas
        drawn = torch.multinomial(self.weights, total, replacement=True, generator=gen)
        return iter(drawn[self.rank :: self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.per_replica
