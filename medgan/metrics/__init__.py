"""Evaluation metrics, one module per family, as plain numpy functions.

* :mod:`~medgan.metrics.image_quality`: enhancement (PSNR, SSIM, MAE, RMSE) in the data's
  own units with an explicit ``data_range``.
* :mod:`~medgan.metrics.segmentation`: Dice, IoU, HD95 and average surface distance with
  physical spacing.
* :mod:`~medgan.metrics.anomaly`: AUROC, AUPRC, pixel AUROC, best Dice and operating points.
* :mod:`~medgan.metrics.realism` (+ :mod:`~medgan.metrics.inception`): FID/KID with the
  standard TF Inception features (offline), SWD, precision/recall/density/coverage, MS-SSIM.
* :mod:`~medgan.metrics.memorization`: nearest training image of every generated image and
  a near-copy flag calibrated on held-out patients.

Every function accepts numpy arrays or torch tensors and raises
:class:`medgan.errors.MedganError` for bad input. A new family is a new module here plus
its names below.
"""

from medgan.metrics.anomaly import (
    anomaly_metrics,
    auprc,
    auroc,
    best_dice,
    pixel_auroc,
    sensitivity_at_specificity,
    threshold_for_specificity,
)
from medgan.metrics.image_quality import enhancement_metrics, mae, psnr, rmse, ssim
from medgan.metrics.segmentation import (
    average_surface_distance,
    dice,
    hausdorff95,
    iou,
    segmentation_metrics,
)

__all__ = [
    "anomaly_metrics",
    "auprc",
    "auroc",
    "average_surface_distance",
    "best_dice",
    "dice",
    "enhancement_metrics",
    "hausdorff95",
    "iou",
    "mae",
    "pixel_auroc",
    "psnr",
    "rmse",
    "segmentation_metrics",
    "sensitivity_at_specificity",
    "ssim",
    "threshold_for_specificity",
]

# Realism of generated images (FID/KID need the Inception weights; the rest are weight-free).
from medgan.metrics.features_cache import cached_features, feature_cache_key
from medgan.metrics.inception import InceptionFeatures, find_inception_weights, inception_available
from medgan.metrics.realism import (
    fid_from_features,
    frechet_distance,
    kid_from_features,
    ms_ssim,
    ms_ssim_diversity,
    pixel_features,
    prdc,
    swd,
)

__all__ += [
    "InceptionFeatures",
    "cached_features",
    "feature_cache_key",
    "fid_from_features",
    "find_inception_weights",
    "frechet_distance",
    "inception_available",
    "kid_from_features",
    "ms_ssim",
    "ms_ssim_diversity",
    "pixel_features",
    "prdc",
    "swd",
]

from medgan.metrics.memorization import AuditResult, audit, calibrate_threshold, nearest_neighbours  # noqa: E402

__all__ += ["AuditResult", "audit", "calibrate_threshold", "nearest_neighbours"]
