"""Memorisation / privacy audit: does a generator hand out copies of training images?

For every generated image we find its nearest training image, in pixel space and in a
feature space. What counts as "near" is calibrated on real data: the distances from
held-out real images (other patients) to their nearest training image say how close two
*different* real images of this data set get. A generated image closer to a training image
than all but a small ``quantile`` of held-out real images is flagged as a near-copy.

Distances are root-mean-square differences (pixel space, images in [-1, 1]) or Euclidean
distances (feature space), computed in chunks with ``torch.cdist``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from medgan.errors import MedganError


def nearest_neighbours(queries: np.ndarray, references: np.ndarray, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance from each query row to its nearest reference row, and its index.

    Args:
        queries: ``(N, D)`` vectors.
        references: ``(M, D)`` vectors.
        chunk: queries per ``cdist`` call (bounds memory to ``chunk * M`` floats).

    Returns:
        ``(distances (N,), indices (N,))``.
    """
    q = torch.as_tensor(np.asarray(queries, dtype=np.float32).reshape(len(queries), -1))
    r = torch.as_tensor(np.asarray(references, dtype=np.float32).reshape(len(references), -1))
    if q.shape[1] != r.shape[1]:
        raise MedganError(f"cannot compare vectors of size {q.shape[1]} with vectors of size {r.shape[1]}")
    if len(r) == 0:
        raise MedganError("no reference (training) images to compare with")
    dist, idx = [], []
    for start in range(0, len(q), chunk):
        d = torch.cdist(q[start : start + chunk].double(), r.double())  # (chunk, M), float64: no cancellation
        best = d.min(dim=1)
        dist.append(best.values.numpy())
        idx.append(best.indices.numpy())
    return np.concatenate(dist), np.concatenate(idx)


def calibrate_threshold(holdout_distances: np.ndarray, quantile: float = 0.01) -> float:
    """The ``quantile`` of held-out-to-training nearest distances: by construction at most
    that fraction of real images from other patients would be flagged."""
    if len(holdout_distances) == 0:
        raise MedganError("no held-out real images to calibrate the near-copy threshold",
                          hint="train with --holdout > 0 on data with at least two patients/volumes")
    if not 0 <= quantile < 1:
        raise MedganError(f"quantile {quantile} must be in [0, 1)")
    return float(np.quantile(holdout_distances, quantile, method="inverted_cdf"))


@dataclass
class SpaceAudit:
    """Nearest-neighbour audit in one space (pixels or features)."""

    space: str
    distances: np.ndarray  # (N_generated,) distance to the nearest training image
    indices: np.ndarray  # (N_generated,) index of that training image
    holdout_distances: np.ndarray  # (N_holdout,) the calibration distances
    threshold: float
    flagged: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.flagged = self.distances < self.threshold


@dataclass
class AuditResult:
    """The audit over every space; an image is a near-copy if any space flags it."""

    spaces: list[SpaceAudit]
    quantile: float

    @property
    def flagged(self) -> np.ndarray:
        return np.logical_or.reduce([s.flagged for s in self.spaces])

    @property
    def fraction_flagged(self) -> float:
        return float(self.flagged.mean())

    def summary(self) -> dict:
        out: dict = {"quantile": self.quantile, "n_generated": int(len(self.flagged)),
                     "fraction_flagged": self.fraction_flagged}
        for s in self.spaces:
            out[s.space] = {
                "threshold": s.threshold,
                "fraction_flagged": float(s.flagged.mean()),
                "median_distance_generated": float(np.median(s.distances)),
                "median_distance_holdout": float(np.median(s.holdout_distances)),
                "min_distance_generated": float(s.distances.min()),
                "n_holdout": int(len(s.holdout_distances)),
            }
        return out


def pixel_vectors(images: np.ndarray) -> np.ndarray:
    """Images in [-1, 1] as vectors scaled so that Euclidean distance = RMS difference."""
    flat = np.asarray(images, dtype=np.float32).reshape(len(images), -1)
    return flat / np.sqrt(flat.shape[1])


def audit(
    generated: np.ndarray, train: np.ndarray, holdout: np.ndarray,
    features: dict | None = None, quantile: float = 0.01,
) -> AuditResult:
    """Nearest training image of every generated image, with a calibrated near-copy flag.

    Args:
        generated: ``(N, ...)`` generated images in [-1, 1].
        train: ``(M, ...)`` training images in [-1, 1].
        holdout: ``(K, ...)`` held-out real images (other patients) in [-1, 1].
        features: optional ``{"name": (f_generated, f_train, f_holdout)}`` feature sets for
            feature-space audits (e.g. Inception pool features).
        quantile: fraction of held-out real images the threshold would flag.
    """
    spaces = []
    sets = {"pixel": (pixel_vectors(generated), pixel_vectors(train), pixel_vectors(holdout))}
    sets.update(features or {})
    for name, (g, t, h) in sets.items():
        d_gen, i_gen = nearest_neighbours(g, t)
        d_hold, _ = nearest_neighbours(h, t)
        spaces.append(SpaceAudit(name, d_gen, i_gen, d_hold, calibrate_threshold(d_hold, quantile)))
    return AuditResult(spaces, quantile)
