"""Sharpness and texture of enhanced images against the truth: is the output too smooth, or noisy?

PSNR and SSIM reward a blurred answer (the mean of the plausible images), so an L1-trained
network scores well while losing texture; an adversarial one may restore texture or invent
speckle. Two figures tell these apart:

* :func:`hf_energy_ratio`: mean squared Laplacian of the output over that of the truth
  (1 = as much fine detail as the truth, < 1 over-smoothed, > 1 noisier). One number, but
  it counts noise as detail.
* :func:`radial_power_spectrum` and :func:`spectrum_error_db`: the images' mean power
  spectrum (Hann-windowed, mean removed, radially averaged in cycles/pixel, as the noise
  power spectrum is measured in CT QA, here of whole images) and the mean absolute log ratio
  of output to truth over the upper frequency band (0 dB = the same texture; over-smoothing
  and speckle both raise it). Its signed twin, the mean log ratio, says which of the two.

Hand-written because neither scikit-image nor torchmetrics offers a radially averaged power
spectrum; both are a few lines of numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from medgan.errors import MedganError
from medgan.metrics._arrays import finite_float64


def _batch(x: Any, name: str) -> np.ndarray:
    a = finite_float64(x, name, hint="check the model output and the intensity conversion")
    if a.ndim < 2:
        raise MedganError(f"{name} must be (H, W) or (N, H, W) images, got shape {a.shape}")
    return a.reshape(-1, *a.shape[-2:])  # (N, H, W)


def _same_shape(reference: np.ndarray, test: np.ndarray) -> None:
    if reference.shape != test.shape:
        raise MedganError(f"reference {reference.shape} and test {test.shape} images differ in shape")


def hf_energy_ratio(reference: Any, test: Any) -> float:
    """Mean squared Laplacian of ``test`` over that of ``reference`` (``(N, H, W)`` each)."""
    ref, tst = _batch(reference, "reference"), _batch(test, "test")
    _same_shape(ref, tst)
    energy = lambda x: np.mean([np.mean(ndimage.laplace(im) ** 2) for im in x])  # noqa: E731
    return float(energy(tst) / max(energy(ref), 1e-12))


def radial_power_spectrum(images: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean power spectrum of ``(N, H, W)`` images, radially averaged.

    Returns:
        ``(frequency, power)``: bin centres in cycles/pixel, 0 .. 0.5 in ``min(H, W) // 2``
        bins, and the mean over images of ``|FFT(w · (x - mean x))|² / Σw²`` in each bin
        (``w`` a 2-D Hann window, so image borders do not leak into high frequencies).
    """
    x = _batch(images, "images")
    n, h, w = x.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    centred = (x - x.mean(axis=(1, 2), keepdims=True)) * window
    power = (np.abs(np.fft.fft2(centred)) ** 2).mean(axis=0) / np.sum(window**2)  # (H, W)
    radius = np.hypot(*np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij"))  # cycles/pixel
    n_bins = min(h, w) // 2
    edges = np.linspace(0.0, 0.5, n_bins + 1)
    which = np.digitize(radius.ravel(), edges) - 1  # bin of each frequency; >= n_bins: the corners
    keep = which < n_bins
    sums = np.bincount(which[keep], weights=power.ravel()[keep], minlength=n_bins)
    counts = np.bincount(which[keep], minlength=n_bins)
    return 0.5 * (edges[:-1] + edges[1:]), sums / np.maximum(counts, 1)


def spectrum_log_ratio_db(reference: Any, test: Any, band: tuple[float, float] = (0.25, 0.5)) -> np.ndarray:
    """``10 log10(P_test / P_ref)`` per radial frequency bin inside ``band`` (cycles/pixel)."""
    ref, tst = _batch(reference, "reference"), _batch(test, "test")
    _same_shape(ref, tst)
    f, p_ref = radial_power_spectrum(ref)
    _, p_tst = radial_power_spectrum(tst)
    inside = (f >= band[0]) & (f <= band[1])
    if not inside.any():
        raise MedganError(f"no frequency bins inside {band} cycles/pixel for {ref.shape[-2:]} images", hint="use a band within 0..0.5")
    tiny = 1e-12 * max(float(p_ref.max()), 1e-30)
    return 10.0 * np.log10((p_tst[inside] + tiny) / (p_ref[inside] + tiny))


def spectrum_error_db(reference: Any, test: Any, band: tuple[float, float] = (0.25, 0.5)) -> float:
    """Mean absolute log ratio (dB) of the test images' power spectrum to the reference's
    over ``band`` (default: the upper half of the frequencies); 0 = the same texture."""
    return float(np.mean(np.abs(spectrum_log_ratio_db(reference, test, band))))


def spectrum_bias_db(reference: Any, test: Any, band: tuple[float, float] = (0.25, 0.5)) -> float:
    """Signed mean log ratio (dB) over ``band``: < 0 smoother than the reference, > 0 noisier."""
    return float(np.mean(spectrum_log_ratio_db(reference, test, band)))
