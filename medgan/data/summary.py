"""A short description of an :class:`ImageSet`: what ``medgan data show`` prints."""

from __future__ import annotations

import numpy as np

from medgan.data.imageset import ImageSet


def summarize(data: ImageSet) -> dict:
    """Counts, shape, value range, labels, masks and groups of a set, JSON-serialisable."""
    finite = data.images[np.isfinite(data.images)]
    summary: dict = {
        "name": data.name,
        "count": len(data),
        "image_shape": list(data.shape),
        "value_min": float(finite.min()) if finite.size else None,
        "value_max": float(finite.max()) if finite.size else None,
        "value_mean": float(finite.mean()) if finite.size else None,
        "nominal_range": None if data.value_range is None else [float(v) for v in data.value_range],
        "units": data.units,
        "groups": None if data.groups is None else int(len(np.unique(data.groups))),
    }
    if data.labels is not None:
        names = data.class_names or [str(i) for i in range(int(data.labels.max()) + 1)]
        counts = np.bincount(data.labels, minlength=len(names))
        summary["labels"] = {name: int(c) for name, c in zip(names, counts)}
    if data.masks is not None:
        names = data.mask_names or [str(i) for i in range(int(data.masks.max()) + 1)]
        fractions = np.bincount(data.masks.ravel(), minlength=len(names)) / data.masks.size
        summary["mask_pixel_fraction"] = {name: round(float(f), 4) for name, f in zip(names, fractions)}
    summary.update({k: v for k, v in data.extra.items() if isinstance(v, (str, int, float, bool))})
    return summary


def sample_indices(data: ImageSet, n: int = 64, seed: int = 0) -> np.ndarray:
    """Up to ``n`` indices for a sample grid, spread over the classes when labelled."""
    rng = np.random.default_rng(seed)
    if len(data) <= n:
        return np.arange(len(data))
    if data.labels is None:
        return np.sort(rng.choice(len(data), n, replace=False))
    classes = np.unique(data.labels)
    per_class = max(1, n // len(classes))
    picks = [rng.choice(np.flatnonzero(data.labels == c), min(per_class, int((data.labels == c).sum())), replace=False) for c in classes]
    chosen = np.concatenate([np.sort(p) for p in picks])[:n]
    return chosen
