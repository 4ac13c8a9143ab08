import numpy as np
import pytest
import torch

from medgan.errors import MedganError
from medgan.metrics import (
    anomaly_metrics,
    auprc,
    auroc,
    best_dice,
    pixel_auroc,
    sensitivity_at_specificity,
    threshold_for_specificity,
)


def _tied_scores(seed, n=300):
    """Labels and scores with many ties (one decimal) where positives score higher on average."""
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.3
    scores = np.round(np.clip(rng.normal(0.4 + 0.2 * labels, 0.2), 0, 1), 1)
    return labels.astype(np.int64), scores


def test_separation_extremes():
    labels = np.array([0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    assert auroc(labels, scores) == 1.0 and auprc(labels, scores) == 1.0
    assert auroc(labels, -scores) == 0.0
    assert auroc(labels, np.ones(5)) == 0.5
    assert auprc(labels, np.ones(5)) == pytest.approx(2 / 5)  # all tied: AP is the prevalence


def test_hand_computed_small_case():
    labels, scores = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    # 3 of the 4 positive/negative pairs are ranked correctly
    assert auroc(labels, scores) == pytest.approx(0.75)
    # thresholds 0.8, 0.4, 0.35, 0.1: (R, P) = (.5, 1), (.5, .5), (1, 2/3), (1, .5)
    # AP = .5 * 1 + 0 * .5 + .5 * 2/3 + 0 = 0.8333
    assert auprc(labels, scores) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert auroc(torch.tensor(labels), torch.tensor(scores)) == pytest.approx(0.75)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ranking_metrics_match_torchmetrics_with_ties(seed, require):
    tmf = require("torchmetrics.functional.classification")
    labels, scores = _tied_scores(seed)
    assert len(np.unique(scores)) < 15  # heavily tied
    preds, target = torch.from_numpy(scores), torch.from_numpy(labels)
    # the same exact algorithms, but torchmetrics returns float32 (~6e-8 relative): 1e-6
    assert auroc(labels, scores) == pytest.approx(float(tmf.binary_auroc(preds, target)), abs=1e-6)
    assert auprc(labels, scores) == pytest.approx(float(tmf.binary_average_precision(preds, target)), abs=1e-6)
    # and exactly the pairwise definition: P(pos > neg) + P(pos == neg) / 2
    pos, neg = scores[labels == 1][:, None], scores[labels == 0][None, :]
    assert auroc(labels, scores) == pytest.approx(np.mean((pos > neg) + 0.5 * (pos == neg)), abs=1e-12)


def test_tied_samples_order_does_not_matter():
    labels, scores = _tied_scores(7)
    order = np.random.default_rng(0).permutation(labels.size)
    assert auprc(labels, scores) == pytest.approx(auprc(labels[order], scores[order]), abs=1e-15)
    assert auroc(labels, scores) == pytest.approx(auroc(labels[order], scores[order]), abs=1e-15)


def test_sensitivity_at_specificity_constructed_case():
    negatives = np.arange(20) / 100  # 0.00 .. 0.19
    positives = np.array([0.10, 0.185, 0.30, 0.50])
    labels = np.r_[np.zeros(20), np.ones(4)]
    scores = np.r_[negatives, positives]
    sens, threshold = sensitivity_at_specificity(labels, scores, 0.95)
    # 95% of 20 negatives = 19 must be <= t: t = the 19th smallest = 0.18 (only 0.19 above)
    assert threshold == pytest.approx(0.18)
    assert sens == pytest.approx(3 / 4)  # 0.185, 0.30, 0.50 are above 0.18
    assert threshold_for_specificity(negatives, 0.95) == pytest.approx(0.18)
    assert threshold_for_specificity(negatives, 1.0) == pytest.approx(0.19)  # no false positive at all
    sens, threshold = sensitivity_at_specificity(labels, scores, 0.8)  # 16 negatives <= 0.15
    assert threshold == pytest.approx(0.15) and sens == pytest.approx(3 / 4)


def test_calibrated_threshold_meets_the_specificity_on_normals():
    normals = np.round(np.random.default_rng(3).normal(size=997), 2)  # ties included
    for target in (0.5, 0.9, 0.95, 0.99):
        t = threshold_for_specificity(normals, target)
        assert np.mean(normals <= t) >= target
        assert t in normals and np.mean(normals < t) < target  # the smallest such observed score


def test_sensitivity_matches_torchmetrics(require):
    tmf = require("torchmetrics.functional.classification")
    rng = np.random.default_rng(11)
    labels = (rng.random(400) < 0.4).astype(np.int64)
    scores = rng.random(400) * 0.6 + 0.4 * labels  # continuous, overlapping
    expected, _ = tmf.binary_sensitivity_at_specificity(torch.from_numpy(scores), torch.from_numpy(labels), min_specificity=0.9)
    sens, threshold = sensitivity_at_specificity(labels, scores, 0.9)
    # both maximise sensitivity subject to specificity >= 0.9 (torchmetrics' threshold uses
    # ">=" at the next score up, ours ">" at the last accepted negative: same operating point)
    assert sens == pytest.approx(float(expected), abs=1e-6)  # torchmetrics returns float32
    assert np.mean(scores[labels == 0] <= threshold) >= 0.9


def test_single_class_and_bad_inputs_are_rejected():
    with pytest.raises(MedganError, match="AUROC is undefined: all 4 labels are normal"):
        auroc([0, 0, 0, 0], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(MedganError, match="AUPRC is undefined.*anomalous"):
        auprc([1, 1], [0.1, 0.2])
    with pytest.raises(MedganError, match=r"\(3,\).*\(4,\)"):
        auroc([0, 1, 1], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(MedganError, match="NaN"):
        auroc([0, 1], [0.1, np.nan])
    with pytest.raises(MedganError, match="0 \\(normal\\) or 1"):
        auroc([0, 2], [0.1, 0.2])
    with pytest.raises(MedganError, match="pixel AUROC is undefined"):
        pixel_auroc(np.zeros((2, 4, 4)), np.random.default_rng(0).random((2, 4, 4)))
    with pytest.raises(MedganError, match="specificity"):
        threshold_for_specificity([0.1, 0.2], 0.0)


def _lesions(seed=0, n=4, size=24):
    """Masks with small square lesions and noisy anomaly maps that are higher inside them."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), dtype=np.int64)
    for i in range(n):
        r, c = rng.integers(2, size - 8, 2)
        masks[i, r: r + 5, c: c + 5] = 1
    maps = rng.normal(0, 1, masks.shape) + 2.5 * masks
    return masks, maps


def test_pixel_auroc_pools_pixels_and_subsamples_reproducibly():
    masks, maps = _lesions()
    assert pixel_auroc(masks, maps) == pytest.approx(auroc(masks.ravel(), maps.ravel()))
    a = pixel_auroc(masks, maps, max_pixels=1000, seed=1)
    assert a == pixel_auroc(masks, maps, max_pixels=1000, seed=1)
    assert a == pytest.approx(pixel_auroc(masks, maps), abs=0.05)


def test_best_dice_is_the_exact_maximum():
    masks, maps = _lesions()
    dice_value, threshold = best_dice(masks, maps)

    def dice_at(t):
        pred = maps > t
        return 2 * np.sum(pred & (masks == 1)) / (pred.sum() + masks.sum())

    assert dice_value == pytest.approx(dice_at(threshold))
    brute = max(dice_at(t) for t in np.unique(maps))  # every distinct score as a threshold
    assert dice_value == pytest.approx(brute)
    # 100 quantiles can only do as well or worse, and explicit thresholds are honoured
    assert best_dice(masks, maps, thresholds=100)[0] <= dice_value + 1e-12
    assert best_dice(masks, maps, thresholds=[threshold])[0] == pytest.approx(dice_value)
    # a perfect map reaches 1
    assert best_dice(masks, masks * 2.0 - 1.0) == (1.0, -1.0)


def test_anomaly_metrics_dict():
    masks, maps = _lesions()
    labels, scores = _tied_scores(0, n=40)
    result = anomaly_metrics(labels, scores, masks, maps)
    assert set(result) == {
        "auroc", "auprc", "sensitivity", "sensitivity_threshold", "pixel_auroc", "pixel_auprc", "best_dice", "best_dice_threshold",
    }
    assert result["auroc"] == auroc(labels, scores) and result["pixel_auroc"] == pytest.approx(pixel_auroc(masks, maps))
    assert result["pixel_auprc"] == pytest.approx(auprc(masks, maps))
    assert set(anomaly_metrics(labels, scores)) == {"auroc", "auprc", "sensitivity", "sensitivity_threshold"}
    with pytest.raises(MedganError, match="together"):
        anomaly_metrics(labels, scores, masks=masks)
