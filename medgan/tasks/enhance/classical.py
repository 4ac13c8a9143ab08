"""Classical denoisers given what the network is given: the baselines enhancement is measured against.

A network trained on (degraded, clean) pairs knows the noise of its task; a fair classical
baseline gets the same knowledge. Here it gets:

- the **noise level**, measured on validation pairs exactly as the network sees them: the
  root mean square of ``degraded - clean`` in the data's units (for Gaussian noise this is
  the true sigma; for Rician or low-dose CT noise, its effective level);
- its **parameters tuned on those validation pairs** (best mean PSNR over a small grid),
  never left at defaults: non-local means' filter strength ``h`` (a multiple of sigma), patch
  size and search distance (scikit-image's ``denoise_nl_means``); BM3D's sigma (a multiple of
  the measured one, from the ``bm3d`` package, optional);
- for magnitude MRI (Rician noise), **unbiased non-local means** (Manjón et al. 2008): NLM
  of the squared magnitude, minus the Rician bias ``2 sigma²``, square root; its sigma is the
  Gaussian sigma of the complex channels, measured on the pairs as ``sqrt(mean(y² - x²) / 2)``
  (``E[y²] = x² + 2 sigma²`` for Rician ``y``). A Gaussian denoiser leaves the dark background
  raised by about ``sigma sqrt(pi / 2)``; this one removes that bias.

Images are mapped to [0, 1] through one fixed range (the training intensity range), never
per image, so a sigma means the same on every image. The validation pairs must not be the
test images.

Written here rather than taken whole from a library: scikit-image and bm3d provide the
denoisers; the protocol around them (noise level from pairs, tuning on validation images,
a fixed intensity scale) is what a comparison needs and no library packages it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medgan.errors import MedganError

__all__ = ["BM3D_GRID", "NLM_GRID", "TV_GRID", "Tuned", "bm3d_available", "bm3d_denoise", "classical_baselines", "nlm_denoise",
           "nlm_rician_denoise", "noise_level", "rician_sigma", "tune", "tv_cs"]

#: non-local means: h as a multiple of sigma, patch size, search distance.
NLM_GRID = {"h": (0.2, 0.3, 0.4, 0.6, 0.8, 1.0, 1.2, 1.6, 2.4), "patch_size": (5, 7), "patch_distance": (6, 11)}
#: BM3D: its sigma as a multiple of the measured one.
BM3D_GRID = {"factor": (0.5, 0.65, 0.8, 1.0, 1.2, 1.5, 2.0, 3.0)}  # artefacts pick the top: kept inside
#: TV-regularised reconstruction of undersampled MRI: the TV weight on the [0, 1] scale.
TV_GRID = {"weight": (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32)}


@dataclass
class Tuned:
    """A classical denoiser with the parameters that did best on the validation pairs.

    Attributes:
        name: ``"nlm"`` or ``"bm3d"``.
        params: the chosen parameters (grid values).
        sigma: the measured noise level, in data units.
        validation_psnr: mean PSNR (dB) of the chosen parameters on the validation pairs.
        grid: PSNR of every parameter set tried, for the record.
    """

    name: str
    params: dict[str, Any]
    sigma: float
    validation_psnr: float
    grid: list[dict[str, Any]] = field(default_factory=list)


def noise_level(degraded: np.ndarray, clean: np.ndarray) -> float:
    """The noise level of pairs: RMS of ``degraded - clean`` (data units)."""
    degraded, clean = np.asarray(degraded, np.float64), np.asarray(clean, np.float64)
    if degraded.shape != clean.shape:
        raise MedganError(f"degraded {degraded.shape} and clean {clean.shape} images differ in shape",
                          hint="the classical baselines denoise same-size pairs (not super-resolution)")
    return float(np.sqrt(np.mean((degraded - clean) ** 2)))


def rician_sigma(degraded: np.ndarray, clean: np.ndarray) -> float:
    """The Gaussian sigma of the complex channels behind Rician pairs: ``sqrt(mean(y² - x²) / 2)``."""
    degraded, clean = np.asarray(degraded, np.float64), np.asarray(clean, np.float64)
    noise_level(degraded, clean)  # the same shape check
    return float(np.sqrt(max(np.mean(degraded**2 - clean**2), 0.0) / 2))


def _unit(images: np.ndarray, low: float, high: float) -> np.ndarray:
    return (np.asarray(images, np.float64) - low) / (high - low)


def nlm_denoise(images: np.ndarray, sigma: float, low: float, high: float, h: float = 0.8, patch_size: int = 5,
                patch_distance: int = 6) -> np.ndarray:
    """Non-local means (scikit-image, fast mode) of ``(N, H, W)`` images in data units, with
    the noise level ``sigma`` (data units) and ``h`` as a multiple of it."""
    from skimage.restoration import denoise_nl_means

    s = sigma / (high - low)
    out = [denoise_nl_means(x, h=h * s, sigma=s, patch_size=patch_size, patch_distance=patch_distance, fast_mode=True)
           for x in _unit(images, low, high)]
    return (np.stack(out) * (high - low) + low).astype(np.float32)


def nlm_rician_denoise(images: np.ndarray, sigma: float, low: float, high: float, h: float = 0.8, patch_size: int = 5,
                       patch_distance: int = 6) -> np.ndarray:
    """Unbiased non-local means for Rician magnitude images: ``sqrt(max(NLM(y²) - 2 sigma², 0))``.

    ``sigma`` is the complex channels' Gaussian sigma (data units, :func:`rician_sigma`);
    ``h`` is a multiple of the squared image's noise level ``2 sigma · rms(y)`` per image.
    """
    from skimage.restoration import denoise_nl_means

    s = sigma / (high - low)
    out = []
    for x in _unit(images, low, high):
        sq = np.clip(x, 0.0, None) ** 2
        s_sq = 2 * s * float(np.sqrt(np.mean(sq)))  # noise std of y² near a typical signal
        smooth = denoise_nl_means(sq, h=h * s_sq, sigma=s_sq, patch_size=patch_size, patch_distance=patch_distance, fast_mode=True)
        out.append(np.sqrt(np.clip(smooth - 2 * s**2, 0.0, None)))
    return (np.stack(out) * (high - low) + low).astype(np.float32)


def bm3d_available() -> bool:
    try:
        import bm3d  # noqa: F401
    except ImportError:
        return False
    return True


def bm3d_denoise(images: np.ndarray, sigma: float, low: float, high: float, factor: float = 1.0) -> np.ndarray:
    """BM3D (the ``bm3d`` package) of ``(N, H, W)`` images in data units at ``factor * sigma``.

    Raises:
        MedganError: ``bm3d`` not installed.
    """
    if not bm3d_available():
        raise MedganError("BM3D needs the bm3d package", hint="pip install bm3d")
    import bm3d

    s = factor * sigma / (high - low)
    out = [np.asarray(bm3d.bm3d(x, s), np.float64) for x in _unit(images, low, high)]
    return (np.stack(out) * (high - low) + low).astype(np.float32)


def tv_cs(images: np.ndarray, sigma: float, low: float, high: float, weight: float = 0.01) -> np.ndarray:
    """Compressed sensing (TV-regularised, with the acquired k-space lines kept) of zero-filled
    ``(N, H, W)`` images in data units (:func:`medgan.tasks.enhance.artefacts.tv_reconstruction`;
    ``sigma`` is not used: the data term replaces it)."""
    from medgan.tasks.enhance.artefacts import tv_reconstruction

    out = [tv_reconstruction(x, weight) for x in _unit(images, low, high)]
    return (np.stack(out) * (high - low) + low).astype(np.float32)


def _psnr(clean: np.ndarray, output: np.ndarray, data_range: float) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    return float(np.mean([peak_signal_noise_ratio(c, o, data_range=data_range) for c, o in zip(clean, output)]))


def tune(name: str, val_degraded: np.ndarray, val_clean: np.ndarray, low: float, high: float) -> Tuned:
    """Pick a classical denoiser's parameters by mean PSNR on validation pairs (data units,
    PSNR over the range ``high - low``)."""
    denoise, grid, measure = METHODS[name]
    sigma = measure(val_degraded, val_clean)
    tried = []
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values))
        psnr = _psnr(val_clean, denoise(val_degraded, sigma, low, high, **params), high - low)
        tried.append({**params, "psnr": round(psnr, 3)})
    best = max(tried, key=lambda r: r["psnr"])
    return Tuned(name, {k: best[k] for k in grid}, sigma, best["psnr"], tried)


#: name -> (denoiser, its parameter grid, how its sigma is measured on pairs)
METHODS = {"nlm": (nlm_denoise, NLM_GRID, noise_level), "bm3d": (bm3d_denoise, BM3D_GRID, noise_level),
           "nlm-rician": (nlm_rician_denoise, NLM_GRID, rician_sigma), "tv-cs": (tv_cs, TV_GRID, noise_level)}


def classical_baselines(val_degraded: np.ndarray, val_clean: np.ndarray, test_degraded: np.ndarray, low: float,
                        high: float, rician: bool = False, undersampled: bool = False) -> dict[str, tuple[np.ndarray, Tuned]]:
    """Tuned non-local means (and BM3D when installed; with ``rician``, unbiased NLM too;
    with ``undersampled``, TV-regularised compressed sensing) applied to the test images.

    Returns:
        name -> (denoised test images in data units, how it was tuned).
    """
    names = ["nlm"] + (["bm3d"] if bm3d_available() else []) + (["nlm-rician"] if rician else []) + (["tv-cs"] if undersampled else [])
    out = {}
    for name in names:
        tuned = tune(name, val_degraded, val_clean, low, high)
        out[name] = (METHODS[name][0](test_degraded, tuned.sigma, low, high, **tuned.params), tuned)
    return out
