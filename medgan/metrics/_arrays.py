"""Input conversion shared by the metric modules: arrays or torch tensors in, numpy out."""

from __future__ import annotations

from typing import Any

import numpy as np

from medgan.errors import MedganError


def to_numpy(x: Any) -> np.ndarray:
    """A numpy array of ``x``; torch tensors (duck-typed, so numpy users need not import
    torch) are detached, moved to the CPU and, if floating point, widened to float64."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        x = x.double() if x.is_floating_point() else x
        x = x.numpy()
    return np.asarray(x)


def finite_float64(x: Any, name: str, hint: str | None = None) -> np.ndarray:
    """``x`` as float64, refusing NaN/inf (they would poison every mean)."""
    array = np.asarray(to_numpy(x), dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise MedganError(f"{name} contains NaN or infinite values", hint=hint)
    return array
