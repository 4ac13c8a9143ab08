"""Classification metrics for the downstream tests of synthetic data.

Plain functions of integer labels ``(N,)`` and class probabilities ``(N, K)``, defined as
torchmetrics defines them (the tests check each against it):

- accuracy: fraction of argmax predictions equal to the label;
- balanced accuracy: the mean over the classes present of each class's recall (sensitivity),
  so a classifier that always answers the majority class scores 1/K;
- AUROC: binary for K = 2 (the probability of class 1 ranks positives above negatives),
  else the mean of the one-vs-rest AUROCs of the classes present (macro);
- ECE (Guo et al. 2017): confidence = the top probability, split into ``bins`` equal-width
  bins over [0, 1]; the sum over bins of (fraction of samples in it) x |accuracy - mean
  confidence| — 0 for a calibrated classifier.

Hand-written because they are five lines each on numpy arrays and medgan's runtime does
not depend on torchmetrics or scikit-learn; AUROC reuses the rank form of
:mod:`medgan.metrics.anomaly`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medgan.errors import MedganError
from medgan.metrics._arrays import to_numpy
from medgan.metrics.anomaly import _auroc

__all__ = ["accuracy", "auroc_ovr", "balanced_accuracy", "classification_metrics", "expected_calibration_error"]


def _check(labels: Any, probabilities: Any) -> tuple[np.ndarray, np.ndarray]:
    y = to_numpy(labels).astype(np.int64).ravel()
    p = to_numpy(probabilities).astype(np.float64)
    if p.ndim != 2 or len(p) != len(y) or len(y) == 0:
        raise MedganError(f"expected (N,) labels and (N, K) probabilities, got {y.shape} and {p.shape}")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise MedganError(f"labels must lie in 0..{p.shape[1] - 1}")
    return y, p


def accuracy(labels: Any, probabilities: Any) -> float:
    y, p = _check(labels, probabilities)
    return float(np.mean(p.argmax(1) == y))


def balanced_accuracy(labels: Any, probabilities: Any) -> float:
    y, p = _check(labels, probabilities)
    predicted = p.argmax(1)
    return float(np.mean([np.mean(predicted[y == k] == k) for k in np.unique(y)]))


def auroc_ovr(labels: Any, probabilities: Any) -> float:
    """Binary AUROC (K = 2) or the macro mean of one-vs-rest AUROCs; NaN when only one class is present."""
    y, p = _check(labels, probabilities)
    present = np.unique(y)
    if len(present) < 2:
        return float("nan")
    if p.shape[1] == 2:
        return _auroc(y == 1, p[:, 1])
    return float(np.mean([_auroc(y == k, p[:, k]) for k in present]))


def expected_calibration_error(labels: Any, probabilities: Any, bins: int = 15) -> float:
    y, p = _check(labels, probabilities)
    confidence, correct = p.max(1), (p.argmax(1) == y).astype(np.float64)
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)  # bin k holds (k/bins, (k+1)/bins]
    error = 0.0
    for k in np.unique(which):
        inside = which == k
        error += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(error)


def classification_metrics(labels: Any, probabilities: Any) -> dict[str, float]:
    """Accuracy, balanced accuracy, AUROC and ECE (15 bins) in one dict."""
    return {"accuracy": accuracy(labels, probabilities), "balanced_accuracy": balanced_accuracy(labels, probabilities),
            "auroc": auroc_ovr(labels, probabilities), "ece": expected_calibration_error(labels, probabilities)}
