"""Train / validation / test splits that never mix one patient's images.

Slices of one volume are nearly copies of each other; putting neighbours on both sides
of a split inflates every validation figure. Splits therefore assign whole groups
(volumes, patients) to one side, aiming at the requested fractions of images.
"""

from __future__ import annotations

import numpy as np

from medgan.errors import MedganError

SPLIT_NAMES = ("train", "val", "test")


def split_by_group(
    groups: np.ndarray | None, fractions: tuple[float, ...] = (0.8, 0.1, 0.1), seed: int = 0
) -> dict[str, np.ndarray]:
    """Indices of each split, with every group wholly inside one split.

    Groups are shuffled with ``seed`` and handed out one at a time, each to the split
    that is furthest below its target number of images, so sizes come close to
    ``fractions`` even when groups differ in size.

    Args:
        groups: ``(N,)`` group id per image; ``None`` makes every image its own group.
        fractions: target fraction of images per split (train, val[, test]); a 0 skips it.
        seed: shuffling seed; the same seed gives the same split.

    Returns:
        ``{"train": idx, "val": idx, "test": idx}`` sorted int64 index arrays.

    Raises:
        MedganError: fractions that do not sum to 1, or fewer groups than non-empty splits.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) not in (2, 3) or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise MedganError(f"split fractions {fractions} must be 2 or 3 non-negative numbers summing to 1", hint="e.g. 0.8,0.1,0.1")
    names = SPLIT_NAMES[: len(fractions)]
    n = 0 if groups is None else len(groups)
    groups = np.arange(n) if groups is None else np.asarray(groups)
    ids, counts = np.unique(groups, return_counts=True)
    wanted = [name for name, f in zip(names, fractions) if f > 0]
    if len(ids) < len(wanted):
        raise MedganError(
            f"{len(ids)} patient/volume group(s) cannot fill {len(wanted)} splits without mixing one patient's images",
            hint="use fewer splits (e.g. 0.8,0.2) or add data",
        )
    order = np.random.default_rng(seed).permutation(len(ids))
    targets = np.array(fractions) * len(groups)
    filled = np.zeros(len(fractions))
    assigned: dict[str, list] = {name: [] for name in names}
    # Every non-empty split first gets one group, then the largest deficit wins.
    pending = list(order)
    for k, name in enumerate(names):
        if fractions[k] > 0:
            g = pending.pop(0)
            assigned[name].append(ids[g])
            filled[k] += counts[g]
    for g in pending:
        deficit = np.where(np.array(fractions) > 0, (targets - filled) / np.maximum(targets, 1e-9), -np.inf)
        k = int(np.argmax(deficit))
        assigned[names[k]].append(ids[g])
        filled[k] += counts[g]
    return {name: np.flatnonzero(np.isin(groups, assigned[name])).astype(np.int64) for name in names}
