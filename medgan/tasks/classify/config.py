"""The classification task's own options (the ``classify`` section of a run's config; each
field with an option is a ``medgan train classify`` flag)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

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

    #: the run-wide settings a classifier run reads (see medgan.train.config.TASK_SETTINGS)
    settings: ClassVar[dict[str, str]] = {
        "data.balance_classes": "", "model.net.width": "ResNet channel width of the first stage (default 32)",
        "optim.decay": "learning-rate schedule: cosine (default), none or linear (2nd half to 0)",
    }

    augmentation: str = option("classical", "training augmentation: classical (flips, small affine, intensity) or none",
                               choices=AUGMENTATIONS)
    lr: float = option(1e-3, "classifier learning rate (Adam)", flag="--lr")

    def __post_init__(self) -> None:
        if self.augmentation not in AUGMENTATIONS:
            raise MedganError(f"unknown augmentation {self.augmentation!r}", hint=f"use one of {', '.join(AUGMENTATIONS)}")
        if not self.lr > 0:
            raise MedganError(f"--lr {self.lr} must be positive")
