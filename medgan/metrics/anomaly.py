"""Anomaly detection metrics, image-level and pixel-level.

Scores are "higher means more anomalous"; labels and masks are 1 for anomalous, 0 for
normal. An image or pixel is *called* anomalous when its score is strictly above the
threshold (``score > threshold``), in every function here.

Ties: AUROC counts a tied positive/negative pair as half a correct ranking (the
Mann-Whitney statistic with mid-ranks, equal to the trapezoidal area under the ROC curve
of sklearn and torchmetrics). Average precision groups tied scores into one threshold, as
``sklearn.metrics.average_precision_score`` and torchmetrics do, so the order of tied
samples never changes the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medgan.errors import MedganError
from medgan.metrics._arrays import to_numpy

# ---- input checks ---------------------------------------------------------------------

def _scores(x: Any, name: str) -> np.ndarray:
    array = to_numpy(x).astype(np.float64)
    if np.isnan(array).any():
        raise MedganError(f"{name} contains NaN values", hint="check the anomaly scores (a NaN cannot be ranked)")
    return array


def _binary_labels(x: Any, name: str) -> np.ndarray:
    array = to_numpy(x)
    if array.dtype == bool:
        return array
    if array.dtype.kind == "f" and np.isnan(array).any():
        raise MedganError(f"{name} contains NaN values", hint="labels must be 0 (normal) or 1 (anomalous)")
    if not np.isin(array, (0, 1)).all():
        shown = ", ".join(f"{v:g}" for v in np.unique(array)[:5])
        raise MedganError(
            f"{name} must be 0 (normal) or 1 (anomalous), found values {shown}", hint="binarise the labels or masks first, e.g. mask > 0"
        )
    return array.astype(bool)


def _pair(labels: Any, scores: Any, what: str = "labels", score_name: str = "scores") -> tuple[np.ndarray, np.ndarray]:
    y, s = _binary_labels(labels, what), _scores(scores, score_name)
    if y.shape != s.shape:
        raise MedganError(
            f"{what} has shape {y.shape} but {score_name} has shape {s.shape}", hint="give one score per label (or per mask pixel)"
        )
    return y.ravel(), s.ravel()


def _require_both_classes(y: np.ndarray, metric: str, what: str) -> None:
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        only = "anomalous" if n_pos else "normal"
        raise MedganError(
            f"{metric} is undefined: all {y.size} {what} are {only}",
            hint="evaluate on a set with both normal (0) and anomalous (1) cases",
        )


# ---- ranking metrics ------------------------------------------------------------------

def _auroc(y: np.ndarray, s: np.ndarray) -> float:
    # Mann-Whitney U / (n_pos * n_neg) with mid-ranks for ties: exactly the trapezoidal ROC
    # area. (scipy.stats.rankdata does the same but importing scipy.stats costs half a second.)
    _, group, counts = np.unique(s, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # 1-based rank of the last member of each tie group
    ranks = (ends - (counts - 1) / 2.0)[group.ravel()]  # mid-rank of each group
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _average_precision(y: np.ndarray, s: np.ndarray) -> float:
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    # one operating point per distinct score: the last index of each run of ties
    last = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]
    tps = np.cumsum(y)[last]
    precision = tps / (last + 1)
    recall = tps / tps[-1]
    # AP = sum_n (R_n - R_{n-1}) P_n: a step function, no interpolation (sklearn's definition)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def auroc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve (ties count half).

    Args:
        labels: 0/1 (or boolean) per sample, any shape.
        scores: anomaly scores, same shape; only their order matters.

    Raises:
        MedganError: shape mismatch, NaN scores, non-binary labels, or only one class present.
    """
    y, s = _pair(labels, scores)
    _require_both_classes(y, "AUROC", "labels")
    return _auroc(y, s)


def auprc(labels: Any, scores: Any) -> float:
    """Average precision, the step-wise area under the precision-recall curve.

    ``sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds, as
    ``sklearn.metrics.average_precision_score``. Its chance level is the fraction of
    anomalous samples, not 0.5.

    Raises:
        MedganError: as :func:`auroc`.
    """
    y, s = _pair(labels, scores)
    _require_both_classes(y, "AUPRC", "labels")
    return _average_precision(y, s)


def _pixels(masks: Any, score_maps: Any, max_pixels: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    y, s = _pair(masks, score_maps, "masks", "score_maps")
    if max_pixels is not None and y.size > max_pixels:
        # uniform subsample without replacement: an unbiased estimate of the same AUROC
        keep = np.random.default_rng(seed).choice(y.size, size=int(max_pixels), replace=False)
        y, s = y[keep], s[keep]
    return y, s


def pixel_auroc(masks: Any, score_maps: Any, *, max_pixels: int | None = None, seed: int = 0) -> float:
    """AUROC over all pixels of all images (ground-truth masks against anomaly maps).

    Args:
        masks: 0/1 ground-truth masks, e.g. ``(N, H, W)``.
        score_maps: per-pixel anomaly scores, same shape.
        max_pixels: if set and there are more pixels, score a uniform random subset of
            this many (seeded) to bound time and memory on large sets.
        seed: seed of that subset.

    Raises:
        MedganError: shape mismatch, NaN scores, or masks that are all 0 (or all 1).
    """
    y, s = _pixels(masks, score_maps, max_pixels, seed)
    _require_both_classes(y, "pixel AUROC", "mask pixels")
    return _auroc(y, s)


def best_dice(masks: Any, score_maps: Any, thresholds: int | Sequence[float] | np.ndarray | None = None) -> tuple[float, float]:
    """The best Dice over thresholds of the anomaly maps, pooled over all pixels ("dataset Dice").

    A pixel is predicted anomalous when its score is above the threshold. This is an
    oracle figure (the threshold is tuned on the test masks); report it as such, and use
    :func:`threshold_for_specificity` on normal data for an honest operating point.

    Args:
        masks: 0/1 ground-truth masks, e.g. ``(N, H, W)``.
        score_maps: per-pixel anomaly scores, same shape.
        thresholds: None tries every distinct score (the exact maximum, one sort); an int
            ``n`` tries ``n`` evenly spaced quantiles of the scores; an array tries those values.

    Returns:
        ``(dice, threshold)`` at the best threshold.

    Raises:
        MedganError: shape mismatch, NaN scores, no anomalous pixel, or empty thresholds.
    """
    y, s = _pair(masks, score_maps, "masks", "score_maps")
    n_pos = int(y.sum())
    if n_pos == 0:
        raise MedganError("best Dice is undefined: the masks have no anomalous pixel", hint="evaluate on images with annotated anomalies")
    order = np.argsort(s, kind="stable")
    s_sorted = s[order]
    pos_below = np.r_[0, np.cumsum(y[order])]  # pos_below[k]: positives among the k lowest scores
    if thresholds is None:
        # every distinct score, plus one just below the minimum (everything predicted anomalous)
        candidates = np.r_[np.nextafter(s_sorted[0], -np.inf), np.unique(s_sorted)]
    elif np.isscalar(thresholds):
        if int(thresholds) < 1:  # type: ignore[arg-type]
            raise MedganError(f"thresholds must be a positive count, got {thresholds!r}", hint="e.g. thresholds=100")
        candidates = np.quantile(s_sorted, np.linspace(0.0, 1.0, int(thresholds)))  # type: ignore[arg-type]
    else:
        candidates = _scores(thresholds, "thresholds").ravel()
        if candidates.size == 0:
            raise MedganError("thresholds is empty", hint="pass None to try every distinct score")
    below = np.searchsorted(s_sorted, candidates, side="right")  # pixels with score <= t
    n_pred = y.size - below
    tp = n_pos - pos_below[below]
    dices = 2.0 * tp / (n_pred + n_pos)
    best = int(np.argmax(dices))
    return float(dices[best]), float(candidates[best])


# ---- operating points -----------------------------------------------------------------

def threshold_for_specificity(normal_scores: Any, specificity: float = 0.95) -> float:
    """Calibrate a threshold on normal (validation) data for a target specificity.

    Returns the smallest observed normal score ``t`` such that at least ``specificity``
    of the normal scores are ``<= t`` (the ``specificity`` quantile with numpy's
    ``method="inverted_cdf"``, i.e. the ``ceil(specificity * n)``-th smallest score).
    Calling ``score > t`` anomalous then keeps the specificity on these normals at or above
    the target; on unseen normals it holds in expectation only.

    Raises:
        MedganError: ``specificity`` outside (0, 1], empty or NaN scores.
    """
    s = _scores(normal_scores, "normal_scores").ravel()
    if s.size == 0:
        raise MedganError("normal_scores is empty", hint="pass the anomaly scores of normal validation images")
    if not 0 < specificity <= 1:
        raise MedganError(f"specificity must be in (0, 1], got {specificity!r}", hint="e.g. 0.95")
    return float(np.quantile(s, specificity, method="inverted_cdf"))


def sensitivity_at_specificity(labels: Any, scores: Any, specificity: float = 0.95) -> tuple[float, float]:
    """Sensitivity at the threshold that gives at least ``specificity`` on the negatives.

    The threshold is :func:`threshold_for_specificity` of the negatives' scores, the
    lowest one meeting the target, so the sensitivity is the highest possible at that
    specificity.

    Returns:
        ``(sensitivity, threshold)``; positives with ``score > threshold`` are detected.

    Raises:
        MedganError: as :func:`auroc`, or ``specificity`` outside (0, 1].
    """
    y, s = _pair(labels, scores)
    _require_both_classes(y, "sensitivity at specificity", "labels")
    threshold = threshold_for_specificity(s[~y], specificity)
    return float(np.mean(s[y] > threshold)), threshold


def anomaly_metrics(
    labels: Any,
    scores: Any,
    masks: Any = None,
    score_maps: Any = None,
    *,
    specificity: float = 0.95,
    max_pixels: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Image-level (and, given masks and maps, pixel-level) anomaly metrics in one dict.

    Returns:
        ``{"auroc", "auprc", "sensitivity", "sensitivity_threshold"}`` (sensitivity at
        ``specificity``), plus ``{"pixel_auroc", "pixel_auprc", "best_dice",
        "best_dice_threshold"}`` when ``masks`` and ``score_maps`` are given (pixel AUROC
        and AUPRC on the same, optionally subsampled, pixels; best Dice on all of them).

    Raises:
        MedganError: as the individual metrics, or only one of ``masks``/``score_maps``.
    """
    result = {"auroc": auroc(labels, scores), "auprc": auprc(labels, scores)}
    result["sensitivity"], result["sensitivity_threshold"] = sensitivity_at_specificity(labels, scores, specificity)
    if (masks is None) != (score_maps is None):
        raise MedganError("masks and score_maps must be given together", hint="pass both for pixel-level metrics, or neither")
    if masks is not None:
        y, s = _pixels(masks, score_maps, max_pixels, seed)
        _require_both_classes(y, "pixel AUROC", "mask pixels")
        result["pixel_auroc"] = _auroc(y, s)
        result["pixel_auprc"] = _average_precision(y, s)
        result["best_dice"], result["best_dice_threshold"] = best_dice(masks, score_maps)
    return result
