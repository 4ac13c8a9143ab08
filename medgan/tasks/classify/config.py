"""The classification task's own options (the ``classify`` section of a run's config; each
field with an option is a ``medgan train classify`` flag)."""

from __future__ import annotations

from dataclasses import dataclass

from medgan.errors import MedganError
from medgan.options import option

__all__ = ["AUGMENTATIONS", "ClassifyConfig"]

AUGMENTATIONS = ("classical", "none")


@dataclass
class ClassifyConfig:
    """A ResNet-18 classifier trained with cross-entropy, with no adversary.

    Attributes:
        augmentation: ``"classical"`` (flips, small affine, brightness/contrast; see
            :func:`medgan.train.augment.classical_augment`) or ``"none"``.
        lr: Adam learning rate (betas 0.9 / 0.999; the schedule is ``--lr-decay``, cosine
            by default).
    """

    augmentation: str = option("classical", "training augmentation: classical (flips, small affine, intensity) or none",
                               choices=AUGMENTATIONS)
    lr: float = option(1e-3, "classifier learning rate (Adam)", flag="--classifier-lr")

    def __post_init__(self) -> None:
        if self.augmentation not in AUGMENTATIONS:
            raise MedganError(f"unknown augmentation {self.augmentation!r}", hint=f"use one of {', '.join(AUGMENTATIONS)}")
        if not self.lr > 0:
            raise MedganError(f"--classifier-lr {self.lr} must be positive")
