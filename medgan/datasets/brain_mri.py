"""The embedded ``brain-mri`` set: T1 brain slices of two template heads, at 64x64 and 128x128.

The slices ship inside the package at each size of :data:`EMBEDDED_SIZES`
(``medgan/datasets/data/brain_mri_64.npz`` and ``brain_mri_128.npz``, built by
``scripts/build_brain_mri.py --size N``; sources and licences in ``data/NOTICE``):

- subject 0: the MNI ICBM152 2009c nonlinear symmetric template (Fonov et al. 2009/2011),
- subject 1: Colin27 (Holmes et al. 1998) with AAL-assisted tissue labels.

Both are brain-extracted, 1 mm, shown radiologically (axial/coronal: anterior/superior
up, patient right on the image left; sagittal: superior up, anterior left). Two heads
are few: they are for smoke tests, demos and tiny experiments, and ``groups`` (the
subject) keeps a split from putting slices of one head on both sides.

Both sizes hold the same 892 slices in the same order (slice ``i`` at 128 is slice ``i``
at 64, resampled from the same template crop, with its label map made at 128): the 128
set is sharper, not an upsampled 64 set. The data source (``--data brain-mri``) reads
the size asked for natively when it is embedded, else resizes from
:func:`stored_size`.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from medgan.data.imageset import ImageSet
from medgan.errors import MedganError

#: The sizes shipped, each its own file; 64 is the default.
EMBEDDED_SIZES = (64, 128)
DEFAULT_SIZE = 64
DATA_FILES = {size: f"brain_mri_{size}.npz" for size in EMBEDDED_SIZES}
ORIENTATIONS = ("axial", "coronal", "sagittal")
MASK_NAMES = ["background", "grey matter", "white matter"]
SUBJECT_NAMES = ("MNI152-2009c", "Colin27")


def stored_size(size: int | None) -> int:
    """The embedded size to read for images of ``size`` x ``size``: ``size`` itself when it
    is embedded, else the smallest larger embedded size (so the source resizes down from a
    sharper image rather than up), else the largest; :data:`DEFAULT_SIZE` for ``None``."""
    if size is None:
        return DEFAULT_SIZE
    return min((s for s in EMBEDDED_SIZES if s >= size), default=max(EMBEDDED_SIZES))


@lru_cache(maxsize=len(EMBEDDED_SIZES))
def _arrays(size: int) -> dict[str, Any]:
    """One size's npz arrays, read once per process and size (about 2 MB compressed at
    64, 6.5 MB at 128)."""
    ref = resources.files("medgan.datasets").joinpath("data", DATA_FILES[size])
    try:
        with resources.as_file(ref) as path, np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise MedganError(
            f"the embedded brain-mri data at {size} px is missing from the installed package",
            path=str(ref),
            hint=f"rebuild it with `python scripts/build_brain_mri.py --size {size}` or reinstall medgan",
        ) from None


def load_brain_mri(orientation: str | None = None, with_masks: bool = True, size: int = DEFAULT_SIZE) -> ImageSet:
    """Load the embedded brain MRI slices at one of the embedded sizes.

    Args:
        orientation: ``"axial"``, ``"coronal"`` or ``"sagittal"`` to keep one orientation;
            ``None`` keeps all three.
        with_masks: attach the grey/white-matter label maps (``0`` background/CSF,
            ``1`` grey matter, ``2`` white matter).
        size: image side, one of :data:`EMBEDDED_SIZES` (read natively, never resized;
            ``load_source("brain-mri", SourceOptions(size=N))`` resizes to other sizes).

    Returns:
        An :class:`ImageSet` of ``(N, size, size)`` float32 images in 0..255, labels = the
        orientation index into ``class_names``, groups = subject id (0 MNI152, 1 Colin27).

    Raises:
        MedganError: unknown ``orientation``, a size that is not embedded, or its file
            missing from the installation.
    """
    if size not in EMBEDDED_SIZES:
        raise MedganError(
            f"brain-mri is embedded at {' and '.join(map(str, EMBEDDED_SIZES))} px, not {size!r}",
            hint=f"pass size={' or '.join(map(str, EMBEDDED_SIZES))}; for other sizes read the source "
                 "(--data brain-mri --size N, or load_source), which resizes",
        )
    data = _arrays(size)
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
        images=data["images"][index].astype(np.float32),  # (N, size, size) in 0..255
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
