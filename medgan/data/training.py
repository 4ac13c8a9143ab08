"""The images a run trains on and the patients it holds out, from one :class:`DataConfig`.

Training, evaluation and the memorisation audit all call :func:`load_training_data`, so they
see exactly the same split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from medgan.data.source_options import SourceOptions
from medgan.options import option

if TYPE_CHECKING:  # readers and the torch Dataset, imported when training data is loaded
    from medgan.data.dataset import MedicalImageDataset
    from medgan.data.imageset import ImageSet

__all__ = ["DataConfig", "load_training_data"]


@dataclass
class DataConfig:
    """Where the training images come from.

    Attributes:
        source: any source ``medgan data show`` reads (folder, file, brain-mri, phantom, MedMNIST name).
        options: how to read it (size, window, slicing axis, ...).
        holdout: fraction of patients/volumes kept out of training for evaluation.
        split_seed: seed of the patient-level train/hold-out split.
        balance_classes: draw every class equally often in training (labelled data; see
            :class:`medgan.data.sampling.BalancedSampler`) instead of every image equally often.
    """

    source: str = option("brain-mri", "training data: folder, file, brain-mri, phantom or a MedMNIST name", flag="--data")
    options: SourceOptions = field(default_factory=lambda: SourceOptions(size=64))
    holdout: float = option(0.1, "fraction of patients/volumes held out for evaluation")
    split_seed: int = 0
    balance_classes: bool = option(False, "draw every class equally often in training batches (labelled data with unequal classes)")


def load_training_data(config: DataConfig) -> tuple[MedicalImageDataset, ImageSet | None]:
    """The training images and the held-out patients' images (``None`` without a hold-out).

    The hold-out is patient-level (whole groups) and seeded, so evaluation and the
    memorisation audit see exactly the images the run never trained on.
    """
    from medgan.data.dataset import MedicalImageDataset
    from medgan.data.sources import load_source
    from medgan.data.splits import split_by_group

    data = load_source(config.source, config.options)
    n_groups = 0 if data.groups is None else len(np.unique(data.groups))
    holdout = None
    if config.holdout > 0 and n_groups >= 2:
        split = split_by_group(data.groups, (1 - config.holdout, config.holdout), config.split_seed)
        data, holdout = data.subset(split["train"]), data.subset(split["val"])
    return MedicalImageDataset(data), holdout
