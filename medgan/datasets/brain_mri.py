"""The embedded ``brain-mri`` set: 64x64 T1 brain slices of two template heads.

The slices ship inside the package (``medgan/datasets/data/brain_mri_64.npz``, built by
``scripts/build_brain_mri.py``; sources and licences in ``data/NOTICE``):

- subject 0: the MNI ICBM152 2009c nonlinear symmetric template (Fonov et al. 2009/2011),
- subject 1: Colin27 (Holmes et al. 1998) with AAL-assisted tissue labels.

Both are brain-extracted, 1 mm, shown radiologically (axial/coronal: anterior/superior
up, patient right on the image left; sagittal: superior up, anterior left). Two heads
are few: they are for smoke tests, demos and tiny experiments, and ``groups`` (the
subject) keeps a split from putting slices of one head on both sides.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from medgan.data.imageset import ImageSet
from medgan.errors import MedganError

DATA_FILE = "brain_mri_64.npz"
ORIENTATIONS = ("axial", "coronal", "sagittal")
MASK_NAMES = ["background", "grey matter", "white matter"]
SUBJECT_NAMES = ("MNI152-2009c", "Colin27")


@lru_cache(maxsize=1)
def _arrays() -> dict[str, Any]:
    """The npz's arrays, read once per process (about 2 MB compressed)."""
    ref = resources.files("medgan.datasets").joinpath("data", DATA_FILE)
    try:
        with resources.as_file(ref) as path, np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise MedganError(
            "the embedded brain-mri data is missing from the installed package",
            path=str(ref),
            hint="rebuild it with `python scripts/build_brain_mri.py` or reinstall medgan",
        ) from None


def load_brain_mri(orientation: str | None = None, with_masks: bool = True) -> ImageSet:
    """Load the embedded brain MRI slices.

    Args:
        orientation: ``"axial"``, ``"coronal"`` or ``"sagittal"`` to keep one orientation;
            ``None`` keeps all three.
        with_masks: attach the grey/white-matter label maps (``0`` background/CSF,
            ``1`` grey matter, ``2`` white matter).

    Returns:
        An :class:`ImageSet` of ``(N, 64, 64)`` float32 images in 0..255, labels = the
        orientation index into ``class_names``, groups = subject id (0 MNI152, 1 Colin27).

    Raises:
        MedganError: unknown ``orientation``.
    """
    data = _arrays()
    keep = np.ones(len(data["images"]), dtype=bool)
    if orientation is not None:
        if orientation not in ORIENTATIONS:
            raise MedganError(
                f"unknown brain-mri orientation {orientation!r}",
                hint=f"use one of {', '.join(ORIENTATIONS)} (or none for all three)",
            )
        keep = data["orientation"] == ORIENTATIONS.index(orientation)
    index = np.nonzero(keep)[0]

    meta = json.loads(str(data["meta_json"][0]))
    masks = None
    if with_masks:
        masks = data["masks"][index].copy()
    subjects = data["subject"][index]
    return ImageSet(
        images=data["images"][index].astype(np.float32),  # (N, 64, 64) in 0..255
        labels=data["orientation"][index].astype(np.int64),
        class_names=list(ORIENTATIONS),
        masks=masks,
        mask_names=list(MASK_NAMES) if with_masks else None,
        groups=subjects.astype(np.int64),
        sources=[str(s) for s in data["sources"][index]],
        value_range=(0.0, 255.0),
        units=None,
        name="brain-mri",
        extra={
            "heads": int(len(np.unique(subjects))),
            "subjects": [s["name"] for s in meta["subjects"]],
            "attribution": "; ".join(f"{s['name']}: {s['attribution']}" for s in meta["subjects"]),
            "licence": "see medgan/datasets/data/NOTICE",
            "mask_valid": bool(data["mask_valid"][index].all()),
            "orientation": orientation or "all",
        },
    )
