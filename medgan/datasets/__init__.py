"""Data that needs no download: embedded brain MRI slices, CT phantoms; and MedMNIST access.

``load_embedded(name, **options)`` loads a built-in source by name; the names are
:data:`medgan.data.sources.EMBEDDED_SOURCES` (one table, which the data layer reads without
importing this package: the datasets build on :mod:`medgan.data`, not the other way round).
"""

from __future__ import annotations

from typing import Any, Callable

from medgan.data.imageset import ImageSet
from medgan.data.sources import EMBEDDED_SOURCES, embedded_loader
from medgan.datasets.brain_mri import load_brain_mri
from medgan.datasets.medmnist import MEDMNIST_2D, is_medmnist_name, load_medmnist, medmnist_file
from medgan.datasets.phantom import Phantom, make_phantom, phantom_set
from medgan.errors import MedganError

EMBEDDED: dict[str, Callable[..., ImageSet]] = {name: embedded_loader(name) for name in EMBEDDED_SOURCES}


def embedded_names() -> list[str]:
    """Names accepted by :func:`load_embedded`."""
    return sorted(EMBEDDED)


def load_embedded(name: str, **options: Any) -> ImageSet:
    """Load a built-in data source by name, passing ``options`` to its loader.

    Raises:
        MedganError: unknown name, or options the loader does not take.
    """
    try:
        loader = EMBEDDED[name]
    except KeyError:
        raise MedganError(f"unknown embedded dataset {name!r}",
                          hint=f"use one of {', '.join(embedded_names())}") from None
    try:
        return loader(**options)
    except TypeError as exc:
        # A misspelt option would otherwise surface as a traceback from inside the loader.
        if "unexpected keyword argument" not in str(exc):
            raise
        raise MedganError(f"bad option for embedded dataset {name!r} ({exc})",
                          hint=f"see help({loader.__module__}.{loader.__name__})") from None


__all__ = [
    "EMBEDDED", "MEDMNIST_2D", "Phantom", "embedded_names", "is_medmnist_name", "load_brain_mri",
    "load_embedded", "load_medmnist", "make_phantom", "medmnist_file", "phantom_set",
]
