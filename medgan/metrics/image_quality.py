"""Full-reference image quality for enhancement: PSNR, SSIM, MAE and RMSE.

Scores are computed in the data's own intensity units (Hounsfield units for CT, scanner
intensity for MRI, 0..255 for 8-bit files), never on the network's [-1, 1] scale, and
PSNR and SSIM take the ``data_range`` explicitly: the same pair of CT images scores 20 dB
higher on a 2000 HU range than on a 200 HU range, so a guessed range makes the figures
incomparable. Use the CT window width (or the MRI normalisation range, or 255).

Shapes: arrays are ``(..., H, W)`` and every leading axis is a batch axis, so ``(H, W)``
is one image, ``(N, H, W)`` a batch of N images and a ``(D, H, W)`` volume is scored slice
by slice. With ``spatial_dims=3`` the last three axes form one volume (``(..., D, H, W)``)
and SSIM uses a 3-D window. Every function returns the mean over the images of the
per-image score; :func:`enhancement_metrics` also returns the per-image values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from skimage.metrics import structural_similarity

from medgan.errors import MedganError
from medgan.metrics._arrays import finite_float64


def _as_array(x: Any, name: str) -> np.ndarray:
    """Array or torch tensor -> float64 numpy, rejecting NaN/inf."""
    return finite_float64(x, name, hint="check the model output and the intensity conversion")


def _check_data_range(data_range: float | None) -> float:
    if data_range is None:
        raise MedganError(
            "data_range is required for PSNR/SSIM",
            hint="pass the intensity range of the data, e.g. the CT window width in HU (400 for an abdomen window) or 255 for 8-bit images",
        )
    value = float(data_range)
    if not np.isfinite(value) or value <= 0:
        raise MedganError(f"data_range must be a positive number, got {data_range!r}", hint="pass max - min of the intensity range, e.g. 255")
    return value


def _image_pairs(reference: Any, test: Any, spatial_dims: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate a reference/test pair and reshape both to ``(N, *spatial)``."""
    if spatial_dims not in (2, 3):
        raise MedganError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}", hint="use 2 for images (or slice-wise volumes), 3 for volumes")
    ref = _as_array(reference, "reference")
    tst = _as_array(test, "test")
    if ref.shape != tst.shape:
        raise MedganError(
            f"reference has shape {ref.shape} but test has shape {tst.shape}",
            hint="compare images of the same size (resample or crop one of them first)",
        )
    if ref.ndim < spatial_dims or ref.size == 0:
        raise MedganError(
            f"expected non-empty images with at least {spatial_dims} axes, got shape {ref.shape}",
            hint="pass (H, W) or (N, H, W) arrays, or (D, H, W) with spatial_dims=3",
        )
    spatial = ref.shape[ref.ndim - spatial_dims:]
    return ref.reshape(-1, *spatial), tst.reshape(-1, *spatial)  # (N, *spatial)


# ---- per-image scores, shape (N,) -----------------------------------------------------

def _mse_per_image(ref: np.ndarray, tst: np.ndarray) -> np.ndarray:
    return ((ref - tst) ** 2).reshape(len(ref), -1).mean(axis=1)


def _psnr_per_image(ref: np.ndarray, tst: np.ndarray, data_range: float) -> np.ndarray:
    mse = _mse_per_image(ref, tst)
    with np.errstate(divide="ignore"):  # identical images: MSE 0 -> PSNR +inf, by definition
        return 10.0 * np.log10(data_range**2 / mse)


def _ssim_per_image(
    ref: np.ndarray, tst: np.ndarray, data_range: float, gaussian: bool, sigma: float, win_size: int, K1: float, K2: float
) -> np.ndarray:
    if win_size < 3 or win_size % 2 == 0:
        raise MedganError(f"SSIM win_size must be an odd integer >= 3, got {win_size!r}", hint="the standard window is 11")
    if gaussian:
        # skimage sizes the Gaussian filter from sigma (radius int(3.5 * sigma + 0.5), the
        # same rule as torchmetrics) and uses win_size only to crop the border; a mismatch
        # would silently average over a different region, so insist they agree.
        implied = 2 * int(3.5 * sigma + 0.5) + 1
        if win_size != implied:
            raise MedganError(
                f"SSIM win_size={win_size} does not match the Gaussian window of sigma={sigma:g} ({implied} taps)",
                hint=f"pass win_size={implied}, or gaussian=False for a uniform window",
            )
    if min(ref.shape[1:]) < win_size:
        raise MedganError(
            f"images of shape {ref.shape[1:]} are smaller than the SSIM window ({win_size} pixels)",
            hint="use larger images, or a smaller win_size (and sigma) for tiny images",
        )
    return np.array([
        structural_similarity(
            r, t, data_range=data_range, gaussian_weights=gaussian, sigma=sigma, win_size=win_size,
            K1=K1, K2=K2, use_sample_covariance=False,  # Wang et al. 2004
        )
        for r, t in zip(ref, tst)
    ])


# ---- public functions -----------------------------------------------------------------

def psnr(reference: Any, test: Any, data_range: float | None, *, spatial_dims: int = 2) -> float:
    """Peak signal-to-noise ratio ``10 log10(data_range**2 / MSE)`` in dB, mean over images.

    Args:
        reference: the ground truth, ``(..., H, W)`` (numpy array or torch tensor).
        test: the enhanced image, same shape.
        data_range: the intensity range of the data (e.g. the CT window width in HU, or 255).
        spatial_dims: 2 scores each ``(H, W)`` image; 3 scores each ``(D, H, W)`` volume.

    Returns:
        The mean PSNR; ``inf`` if any image is identical to its reference.

    Raises:
        MedganError: missing or non-positive ``data_range``, shape mismatch, NaN/inf values.
    """
    data_range = _check_data_range(data_range)
    ref, tst = _image_pairs(reference, test, spatial_dims)
    return float(np.mean(_psnr_per_image(ref, tst, data_range)))


def ssim(
    reference: Any,
    test: Any,
    data_range: float | None,
    *,
    gaussian: bool = True,
    sigma: float = 1.5,
    win_size: int = 11,
    K1: float = 0.01,
    K2: float = 0.03,
    spatial_dims: int = 2,
) -> float:
    """Structural similarity (Wang et al. 2004), mean over images.

    Computed by :func:`skimage.metrics.structural_similarity` with the paper's settings:
    an 11-tap Gaussian window of sigma 1.5, ``K1=0.01``, ``K2=0.03`` and population (not
    sample) covariance. The SSIM map is averaged over the valid region only (a border of
    ``(win_size - 1) // 2`` pixels is left out), as in skimage and torchmetrics.

    Args:
        reference: the ground truth, ``(..., H, W)``; leading axes are images (or slices).
        test: the enhanced image, same shape.
        data_range: the intensity range of the data; sets the constants ``(K * range)**2``.
        gaussian: Gaussian window (True) or uniform ``win_size`` window (False).
        sigma: standard deviation of the Gaussian window, in pixels.
        win_size: window size; with ``gaussian`` it must equal ``2 * int(3.5 * sigma + 0.5) + 1``.
        K1: luminance constant.
        K2: contrast constant.
        spatial_dims: 2 for slice-wise SSIM; 3 for native 3-D SSIM on ``(..., D, H, W)``.

    Raises:
        MedganError: missing ``data_range``, shape mismatch, NaN/inf values, images smaller
            than the window, or a window inconsistent with ``sigma``.
    """
    data_range = _check_data_range(data_range)
    ref, tst = _image_pairs(reference, test, spatial_dims)
    return float(np.mean(_ssim_per_image(ref, tst, data_range, gaussian, sigma, win_size, K1, K2)))


def mae(reference: Any, test: Any, *, spatial_dims: int = 2) -> float:
    """Mean absolute error in the data's units (HU for CT), mean over images."""
    ref, tst = _image_pairs(reference, test, spatial_dims)
    return float(np.mean(np.abs(ref - tst).reshape(len(ref), -1).mean(axis=1)))


def rmse(reference: Any, test: Any, *, spatial_dims: int = 2) -> float:
    """Root mean squared error in the data's units, mean over images of the per-image RMSE."""
    ref, tst = _image_pairs(reference, test, spatial_dims)
    return float(np.mean(np.sqrt(_mse_per_image(ref, tst))))


def enhancement_metrics(
    reference: Any, test: Any, data_range: float | None, *, spatial_dims: int = 2, per_image: bool = False
) -> dict[str, Any]:
    """PSNR, SSIM, MAE and RMSE of a batch in one pass (default SSIM settings).

    Args:
        reference: ground-truth images ``(..., H, W)`` in the data's units.
        test: enhanced images, same shape.
        data_range: the intensity range of the data (CT window width, 255, ...).
        spatial_dims: 2 (images or slices) or 3 (volumes), as in :func:`psnr`.
        per_image: also return ``"per_image"``: a dict of ``(N,)`` arrays, one per metric.

    Returns:
        ``{"psnr", "ssim", "mae", "rmse"}`` as floats (means over images), plus
        ``"per_image"`` if asked.
    """
    data_range = _check_data_range(data_range)
    ref, tst = _image_pairs(reference, test, spatial_dims)
    scores = {
        "psnr": _psnr_per_image(ref, tst, data_range),
        "ssim": _ssim_per_image(ref, tst, data_range, True, 1.5, 11, 0.01, 0.03),
        "mae": np.abs(ref - tst).reshape(len(ref), -1).mean(axis=1),
        "rmse": np.sqrt(_mse_per_image(ref, tst)),
    }
    result: dict[str, Any] = {name: float(np.mean(values)) for name, values in scores.items()}
    if per_image:
        result["per_image"] = scores
    return result
