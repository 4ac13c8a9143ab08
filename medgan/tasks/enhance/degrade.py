"""Degradations for paired enhancement training: low-dose CT, MRI noise, low resolution.

Every function works in the data's own units (HU for CT, scanner intensity for MRI) on an
``(H, W)`` image or an ``(N, H, W)`` batch, is deterministic given ``seed``, and draws image
``i`` of a batch from child ``i`` of ``np.random.SeedSequence(seed)`` (spawn key ``(i,)``),
so image ``i`` is degraded the same whatever ``N`` (a single ``(H, W)`` image is image 0).
The input is treated as noise-free (true of the phantoms); see the note on real scans below.

Low-dose CT, ``method="projection"`` (physical, parallel-beam, monochromatic):

1. HU -> linear attenuation ``mu = MU_WATER * (1 + HU / 1000)``, clipped at ``mu >= 0``.
   ``MU_WATER = 0.0192 /mm`` is water at about 70 keV, the effective energy of a 120 kVp
   spectrum (NIST XCOM: mu/rho ~ 0.193 cm^2/g at 70 keV, interpolated from 60 and 80 keV).
2. Line integrals ``p = radon(mu) * pixel_mm`` over ``n_angles`` (default: the image side)
   angles in [0, 180). ``circle=False``: skimage pads the image to its diagonal, so the
   whole square, corners included, lies in the scan field and nothing is assumed zero;
   the reconstruction covers the same full square.
3. Counts ``~ Poisson(I0 * dose * exp(-p))`` with ``I0 = photons`` the full-dose blank-scan
   count per detector bin, clipped at >= 1 (no log 0); ``p' = -log(counts / (I0 * dose))``.
4. Filtered back-projection (``iradon``, ramp filter, linear interpolation) -> ``mu`` -> HU.

FBP itself is not exact on a pixel grid: :func:`fbp_roundtrip` is the same pipeline
without noise, and ``low_dose_ct(x) - x`` includes that discretisation error as well as the
noise (on the 64x64 head phantoms: about 9 HU RMSE inside the brain, ~50 HU over the image,
almost all at bone edges). The paired target stays the original image.

Low-dose CT, ``method="image"`` (image-domain approximation: ~0.2 ms per 64x64 image and
~3 ms per 256x256, against ~10 ms and ~0.5 s for the projection method): Gaussian noise with
the standard deviation the projection method gives at the centre of the object. For
parallel-beam FBP with skimage's ramp filter (spatial kernel h_0 = 1/2, h_n = -2/(pi n)^2 for
odd n) and linear interpolation, independent projection noise of variance ``s_p^2`` gives

    var(mu_hat) = G * s_p^2 / (n_angles * pixel_mm^2),   G = pi^2/18 - 1/6 = 0.3817

(G = (pi/2)^2 [2/3 sum h^2 + 1/3 sum h_k h_k+1] with sum h^2 = 1/3, sum h_k h_k+1 = -2/pi^2).
Poisson statistics give ``s_p^2 = exp(p) / (I0 * dose)``; for ``p`` we take the central ray
through a water cylinder of the image's water-equivalent diameter (AAPM Report 220:
``D_w = 2 sqrt(sum(1 + HU/1000) * pixel_mm^2 / pi)``), so ``sigma_HU = sigma_ref / sqrt(dose)``
with ``sigma_ref = 1000 / (MU_WATER * pixel_mm) * sqrt(G * exp(MU_WATER * D_w) / (n_angles * I0))``
(see :func:`ct_noise_sigma`). The noise is shaped to the FBP texture: power spectrum
``|f| sinc^4(|f|)`` (the ramp times the linear interpolation), rescaled to ``sigma_HU``. It is
stationary, whereas real FBP noise is largest at the object's centre and along dense paths.

Real scans already carry full-dose noise; both methods add the full noise of the target dose
on top, so the result is slightly noisier than a true scan at that dose (exact dose-reduction
simulation would add variance proportional to ``1/dose - 1``).

MRI noise: :func:`rician_noise` (the magnitude of a complex image with Gaussian noise in both
channels) and :func:`gaussian_noise`. Resolution: :func:`downsample` (area, bicubic or
k-space truncation) and :func:`upsample_bicubic`, the classical super-resolution baseline.
A :class:`Degradation` is plain data for run configs; :func:`parse_degradation` reads the
command-line form, e.g. ``"lowdose-ct:dose=0.25"`` or ``"sr:factor=2,method=bicubic"``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from skimage.transform import iradon, radon, resize

from medgan.data.geometry import bicubic_upsample
from medgan.errors import MedganError
from medgan.tasks.enhance import artefacts

MU_WATER = 0.0192  # /mm: linear attenuation of water at ~70 keV (module docstring)
FBP_NOISE_GAIN = np.pi**2 / 18 - 1 / 6  # G: variance gain of ramp FBP with linear interpolation
RICIAN_FOREGROUND = 0.1  # foreground = pixels above this fraction of the image maximum
SR_FACTORS = (2, 4)
SR_METHODS = ("area", "bicubic", "kspace")
CT_METHODS = ("projection", "image")

Seed = int | np.random.SeedSequence


# --------------------------------------------------------------------------- batching and seeds
def _seed_sequence(seed: Seed) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, (bool, float)) or int(seed) < 0:
        raise MedganError(f"degradation seed must be a non-negative integer, got {seed!r}")
    return np.random.SeedSequence(int(seed))


def _child_rng(ss: np.random.SeedSequence, i: int) -> np.random.Generator:
    """Generator of image ``i``: what ``ss.spawn(n)[i]`` gives, without mutating ``ss``."""
    child = np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + (i,), pool_size=ss.pool_size)
    return np.random.Generator(np.random.PCG64(child))


def _as_batch(images: np.ndarray, what: str) -> tuple[np.ndarray, bool]:
    """``(H, W)`` or ``(N, H, W)`` -> float64 ``(N, H, W)`` and whether the input was 2D."""
    arr = np.asarray(images)
    if arr.ndim not in (2, 3) or arr.shape[-1] < 2 or arr.shape[-2] < 2:
        raise MedganError(f"{what} takes an (H, W) image or an (N, H, W) batch, got shape {arr.shape}",
                          hint="squeeze the channel axis of single-channel images first")
    if not np.issubdtype(arr.dtype, np.number) or not np.isfinite(arr).all():
        raise MedganError(f"{what}: the images contain NaN, infinite or non-numeric values",
                          hint="clean or drop those images first")
    single = arr.ndim == 2
    return (arr[None] if single else arr).astype(np.float64), single


def _map(images: np.ndarray, what: str, fn: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
    """Apply ``fn(image (H, W), index)`` over a batch; float32 out, same rank as the input."""
    batch, single = _as_batch(images, what)
    out = np.stack([fn(img, i) for i, img in enumerate(batch)]).astype(np.float32)
    return out[0] if single else out


def _positive(name: str, value: float) -> float:
    if not np.isfinite(value) or value <= 0:
        raise MedganError(f"{name} must be a positive number, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------- low-dose CT
def _check_hu(batch: np.ndarray) -> None:
    # Real HU images are never all within [-1, 1] HU unless constant; normalised ones are.
    if np.abs(batch).max() <= 1.0 and batch.max() > batch.min():
        raise MedganError(f"low-dose CT works in Hounsfield units, but the images span only "
                          f"[{batch.min():.3g}, {batch.max():.3g}]",
                          hint="degrade the images in HU, before mapping them to [-1, 1]")


def _angles(size: int, n_angles: int | None) -> np.ndarray:
    n = size if n_angles is None else int(n_angles)
    if n < 1:
        raise MedganError(f"n_angles must be >= 1, got {n_angles}")
    return np.linspace(0.0, 180.0, n, endpoint=False)


def _fbp(hu: np.ndarray, theta: np.ndarray, rng: np.random.Generator | None, blank: float,
         pixel_mm: float, mu_water: float) -> np.ndarray:
    """Project one square HU image, add Poisson noise if ``rng``, reconstruct by FBP, back to HU."""
    mu = mu_water * np.maximum(1.0 + hu / 1000.0, 0.0)  # (H, W) in 1/mm
    p = radon(mu, theta, circle=False) * pixel_mm  # (bins, n_angles): dimensionless line integrals
    if rng is not None:
        counts = rng.poisson(blank * np.exp(-p))
        p = -np.log(np.maximum(counts, 1) / blank)
    mu_hat = iradon(p / pixel_mm, theta, output_size=hu.shape[0], filter_name="ramp", circle=False)
    return 1000.0 * (mu_hat / mu_water - 1.0)


def _square(batch: np.ndarray, what: str) -> None:
    h, w = batch.shape[-2:]
    if h != w:
        raise MedganError(f"{what} simulates a CT scan of a square slice, got {h}x{w}",
                          hint="make the images square first (medgan.data.geometry.fit_square)")


def fbp_roundtrip(hu: np.ndarray, n_angles: int | None = None) -> np.ndarray:
    """Noise-free projection and FBP reconstruction of square HU images.

    The reference :func:`low_dose_ct` noise is measured against: ``low_dose_ct(x) -
    fbp_roundtrip(x)`` is pure noise, ``fbp_roundtrip(x) - x`` the FBP discretisation error.
    (Noise-free, the result does not depend on ``pixel_mm`` or ``mu_water``.)
    """
    batch, _ = _as_batch(hu, "fbp_roundtrip")
    _check_hu(batch)
    _square(batch, "fbp_roundtrip")
    theta = _angles(batch.shape[-1], n_angles)
    return _map(hu, "fbp_roundtrip", lambda img, i: _fbp(img, theta, None, 1.0, 1.0, MU_WATER))


def water_equivalent_diameter(hu: np.ndarray, pixel_mm: float = 1.0) -> float:
    """Water-equivalent diameter (mm) of one HU slice (AAPM Report 220)."""
    area = float(np.maximum(1.0 + np.asarray(hu, np.float64) / 1000.0, 0.0).sum()) * pixel_mm**2
    return 2.0 * np.sqrt(area / np.pi)


def ct_noise_sigma(hu: np.ndarray, dose: float = 1.0, photons: float = 1e5, pixel_mm: float = 1.0,
                   mu_water: float = MU_WATER, n_angles: int | None = None) -> float:
    """Predicted FBP noise std (HU) at the centre of one ``(H, W)`` slice: the model of
    ``method="image"``.

    ``sigma_ref / sqrt(dose)`` with ``sigma_ref`` from the water-equivalent diameter, the ramp
    filter's noise gain and the photon count (module docstring); ``n_angles`` defaults to
    the longer image side. On the 64x64 head phantoms it is within 5% of the measured noise.
    """
    hu = np.asarray(hu, np.float64)
    if hu.ndim != 2:
        raise MedganError(f"ct_noise_sigma takes one (H, W) slice, got shape {hu.shape}", hint="call it per image")
    n = max(hu.shape) if n_angles is None else int(n_angles)
    p_centre = mu_water * water_equivalent_diameter(hu, pixel_mm)
    var_mu = FBP_NOISE_GAIN * np.exp(p_centre) / (n * photons * dose * pixel_mm**2)  # (1/mm)^2
    return float(1000.0 / mu_water * np.sqrt(var_mu))


def _ramp_noise(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Unit-std noise with the FBP texture: power spectrum ``|f| sinc^4(|f|)``.

    ``|f|`` is the ramp; ``sinc^4`` the power transfer of the linear interpolation in the
    back-projection. This fits the measured radial spectrum of :func:`low_dose_ct` noise
    (rise to a peak near 0.25 cycles/pixel, then a fall past Nyquist) within ~0.1 of its peak.
    """
    fy, fx = np.fft.fftfreq(shape[0])[:, None], np.fft.rfftfreq(shape[1])[None, :]
    radius = np.hypot(fy, fx)  # cycles / pixel
    amplitude = np.sqrt(radius) * np.sinc(radius) ** 2  # sqrt of the power spectrum
    spectrum = np.fft.rfft2(rng.standard_normal(shape)) * amplitude
    noise = np.fft.irfft2(spectrum, s=shape)
    return noise / noise.std()


def low_dose_ct(hu: np.ndarray, dose: float = 0.25, seed: Seed = 0, photons: float = 1e5,
                pixel_mm: float = 1.0, mu_water: float = MU_WATER, method: str = "projection",
                n_angles: int | None = None) -> np.ndarray:
    """Simulate a CT scan of HU images at a fraction ``dose`` of the full dose.

    Args:
        hu: ``(H, W)`` or ``(N, H, W)`` images in HU (square for ``"projection"``).
        dose: fraction of the full dose (> 0); noise std scales as ``1/sqrt(dose)``.
        seed: non-negative int or ``SeedSequence``; image ``i`` uses child ``i``.
        photons: full-dose blank-scan photons per detector bin (``I0``).
        pixel_mm: pixel size in mm (sets the path lengths, hence the attenuation).
        mu_water: attenuation of water in 1/mm (default 0.0192, ~70 keV).
        method: ``"projection"`` (Poisson noise on a simulated sinogram, then FBP) or
            ``"image"`` (Gaussian noise of FBP texture and predicted std, much faster).
        n_angles: projection angles over [0, 180); default the image side.

    Returns:
        float32 HU images of the input's shape. ``"projection"`` output includes the FBP
        discretisation (see :func:`fbp_roundtrip`); ``"image"`` output is the input plus noise.

    Raises:
        MedganError: bad parameters, non-square images (projection), images not in HU.
    """
    dose, photons = _positive("dose", dose), _positive("photons", photons)
    pixel_mm, mu_water = _positive("pixel_mm", pixel_mm), _positive("mu_water", mu_water)
    if method not in CT_METHODS:
        raise MedganError(f"unknown low-dose CT method {method!r}", hint=f"use one of {', '.join(CT_METHODS)}")
    batch, _ = _as_batch(hu, "low_dose_ct")
    _check_hu(batch)
    ss = _seed_sequence(seed)
    if method == "image":
        def image_noise(img: np.ndarray, i: int) -> np.ndarray:
            sigma = ct_noise_sigma(img, dose, photons, pixel_mm, mu_water, n_angles)
            return img + sigma * _ramp_noise(_child_rng(ss, i), img.shape)
        return _map(hu, "low_dose_ct", image_noise)
    _square(batch, "low_dose_ct")
    theta = _angles(batch.shape[-1], n_angles)
    return _map(hu, "low_dose_ct",
                lambda img, i: _fbp(img, theta, _child_rng(ss, i), photons * dose, pixel_mm, mu_water))


# --------------------------------------------------------------------------- MRI noise
def rician_noise(image: np.ndarray, snr: float, seed: Seed = 0) -> np.ndarray:
    """Magnitude-image noise: ``|(x + n1) + i n2|`` with ``n1, n2 ~ N(0, sigma^2)``.

    ``sigma = mean(foreground) / snr`` per image, the foreground being the pixels above 10%
    of the image's maximum. In the background the result is Rayleigh distributed (mean
    ``sigma * sqrt(pi / 2)``); at high SNR it is ``x`` plus Gaussian noise. Never negative.

    Raises:
        MedganError: ``snr`` not positive, or an image with no positive signal.
    """
    snr = _positive("snr", snr)
    ss = _seed_sequence(seed)

    def one(img: np.ndarray, i: int) -> np.ndarray:
        top = img.max()
        if top <= 0:
            raise MedganError(f"rician noise needs a positive signal, but image {i} has maximum {top:g}",
                              hint="pass magnitude images (MRI intensities >= 0), not normalised [-1, 1] ones")
        sigma = img[img > RICIAN_FOREGROUND * top].mean() / snr
        rng = _child_rng(ss, i)
        real, imag = img + sigma * rng.standard_normal(img.shape), sigma * rng.standard_normal(img.shape)
        return np.hypot(real, imag)

    return _map(image, "rician_noise", one)


def gaussian_noise(image: np.ndarray, sigma: float, seed: Seed = 0) -> np.ndarray:
    """Add ``N(0, sigma^2)`` noise, ``sigma`` in the image's units (e.g. HU)."""
    if not np.isfinite(sigma) or sigma < 0:
        raise MedganError(f"noise sigma must be >= 0, got {sigma!r}")
    ss = _seed_sequence(seed)
    return _map(image, "gaussian_noise", lambda img, i: img + sigma * _child_rng(ss, i).standard_normal(img.shape))


# --------------------------------------------------------------------------- resolution
def _check_factor(factor: int, shape: tuple[int, ...]) -> int:
    if factor not in SR_FACTORS or isinstance(factor, bool):
        raise MedganError(f"super-resolution factor must be one of {SR_FACTORS}, got {factor!r}")
    h, w = shape[-2:]
    if h % factor or w % factor:
        raise MedganError(f"image size {h}x{w} is not divisible by the factor {factor}",
                          hint=f"crop or resize the images to a multiple of {factor} (e.g. {h - h % factor}x{w - w % factor})")
    return int(factor)


def _kspace_truncate(img: np.ndarray, factor: int) -> np.ndarray:
    """Keep the central (H/f, W/f) frequencies of the centred spectrum; mean preserved."""
    (h, w), (lh, lw) = img.shape, (img.shape[0] // factor, img.shape[1] // factor)
    k = np.fft.fftshift(np.fft.fft2(img))  # (H, W), DC at (H//2, W//2)
    top, left = h // 2 - lh // 2, w // 2 - lw // 2
    low = k[top:top + lh, left:left + lw]  # (H/f, W/f), DC at (lh//2, lw//2)
    # ifft2 divides by lh*lw instead of h*w: scale by 1/f^2 so the DC term (the mean) is kept.
    return np.real(np.fft.ifft2(np.fft.ifftshift(low))) * (lh * lw) / (h * w)


def downsample(image: np.ndarray, factor: int = 2, method: str = "area", blur_sigma: float = 0.0) -> np.ndarray:
    """The low-resolution ``(H/f, W/f)`` version of ``(H, W)`` or ``(N, H, W)`` images.

    Args:
        factor: 2 or 4; ``H`` and ``W`` must be divisible by it.
        method: ``"area"`` (mean of f x f blocks: a detector integrating over bigger pixels),
            ``"bicubic"`` (skimage ``resize``, order 3, Gaussian anti-aliasing of sigma
            ``(f - 1) / 2``), or ``"kspace"`` (keep the central frequencies of the centred FFT,
            as an MRI acquisition of a smaller matrix; real part kept, rings at edges).
        blur_sigma: extra Gaussian blur (in high-resolution pixels) before downsampling, to
            model a wider point spread function; 0 for none.

    Raises:
        MedganError: unknown method, factor not in (2, 4) or not dividing the size.
    """
    if method not in SR_METHODS:
        raise MedganError(f"unknown downsampling method {method!r}", hint=f"use one of {', '.join(SR_METHODS)}")
    if not np.isfinite(blur_sigma) or blur_sigma < 0:
        raise MedganError(f"blur_sigma must be >= 0, got {blur_sigma!r}")
    batch, _ = _as_batch(image, "downsample")
    f = _check_factor(factor, batch.shape)

    def one(img: np.ndarray, i: int) -> np.ndarray:
        if blur_sigma > 0:
            img = ndimage.gaussian_filter(img, blur_sigma, mode="reflect")
        h, w = img.shape
        if method == "area":
            return img.reshape(h // f, f, w // f, f).mean(axis=(1, 3))  # (H/f, W/f)
        if method == "bicubic":
            return resize(img, (h // f, w // f), order=3, anti_aliasing=True, preserve_range=True)
        return _kspace_truncate(img, f)

    return _map(image, "downsample", one)


def upsample_bicubic(low: np.ndarray, factor: int = 2) -> np.ndarray:
    """Bicubic upsampling ``(h, w) -> (h f, w f)``: the classical super-resolution baseline.

    The same interpolator as the SR network's skip (:func:`medgan.data.geometry.bicubic_upsample`),
    computed in float64.
    """
    batch, single = _as_batch(low, "upsample_bicubic")
    if factor not in SR_FACTORS or isinstance(factor, bool):
        raise MedganError(f"super-resolution factor must be one of {SR_FACTORS}, got {factor!r}")
    up = bicubic_upsample(torch.from_numpy(batch)[:, None], factor)[:, 0].numpy().astype(np.float32)  # (N, h f, w f)
    return up[0] if single else up


# --------------------------------------------------------------------------- config
# The parameters each kind reads; the others are ignored, and rejected when given as text.
KIND_PARAMS: dict[str, tuple[str, ...]] = {
    "lowdose-ct": ("dose", "photons", "pixel_mm"),
    "lowdose-ct-image": ("dose", "photons", "pixel_mm"),
    "rician": ("snr",),
    "gaussian": ("sigma",),
    "sr": ("factor", "method", "blur_sigma"),
    # artefacts (medgan.tasks.enhance.artefacts)
    "undersample-mri": ("accel", "center", "mask"),
    "motion-mri": ("lines", "shift"),
    "sparse-view-ct": ("angles",),
    "none": (),  # the images are already degraded (self-supervised or unpaired training on real noisy scans)
}
# The parameter that sets the noise level of each noise kind (``EnhanceConfig.levels`` varies it).
LEVEL_PARAM = {"gaussian": "sigma", "rician": "snr", "lowdose-ct": "dose", "lowdose-ct-image": "dose",
               "undersample-mri": "accel", "motion-mri": "shift", "sparse-view-ct": "angles"}
EXAMPLE = ("lowdose-ct:dose=0.25, rician:snr=10, gaussian:sigma=20, sr:factor=2,method=bicubic, undersample-mri:accel=4,center=0.08, "
           "motion-mri:lines=0.1,shift=2, sparse-view-ct:angles=60 or none")
ARTEFACTS = ("undersample-mri", "motion-mri", "sparse-view-ct")


@dataclass(frozen=True)
class Degradation:
    """One degradation with its parameters: plain data for a run's config.

    Attributes:
        kind: ``"lowdose-ct"`` (projection method), ``"lowdose-ct-image"`` (image-domain
            approximation), ``"rician"``, ``"gaussian"`` or ``"sr"``.
        dose, photons, pixel_mm: low-dose CT (see :func:`low_dose_ct`).
        snr: Rician noise (see :func:`rician_noise`).
        sigma: Gaussian noise std in the data's units.
        factor, method, blur_sigma: super-resolution (see :func:`downsample`).
        accel, center, mask: undersampled MRI (see :func:`medgan.tasks.enhance.artefacts.cartesian_mask`).
        lines, shift: motion-corrupted MRI (see :func:`medgan.tasks.enhance.artefacts.motion`).
        angles: sparse-view CT: projections over [0, 180) of the noise-free :func:`fbp_roundtrip`.
    """

    kind: str
    dose: float = 0.25
    photons: float = 1e5
    pixel_mm: float = 1.0
    snr: float = 10.0
    sigma: float = 20.0
    factor: int = 2
    method: str = "area"
    blur_sigma: float = 0.0
    accel: float = 4.0
    center: float = 0.08
    mask: str = "random"
    lines: float = 0.1
    shift: float = 2.0
    angles: int = 60

    def __post_init__(self) -> None:
        if self.kind not in KIND_PARAMS:
            raise MedganError(f"unknown degradation kind {self.kind!r}",
                              hint=f"use one of {', '.join(KIND_PARAMS)}, e.g. {EXAMPLE}")
        for name in ("dose", "photons", "pixel_mm", "snr"):
            _positive(name, getattr(self, name))
        for name in ("sigma", "blur_sigma"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise MedganError(f"{name} must be >= 0, got {value!r}")
        if self.factor not in SR_FACTORS or isinstance(self.factor, bool):
            raise MedganError(f"super-resolution factor must be one of {SR_FACTORS}, got {self.factor!r}")
        object.__setattr__(self, "factor", int(self.factor))  # 2.0 from a JSON config -> 2
        if self.method not in SR_METHODS:
            raise MedganError(f"unknown downsampling method {self.method!r}", hint=f"use one of {', '.join(SR_METHODS)}")
        if self.mask not in artefacts.MASK_KINDS:
            raise MedganError(f"unknown k-space mask {self.mask!r}", hint=f"use one of {', '.join(artefacts.MASK_KINDS)}")
        if not (self.accel >= 1 and 0 < self.center < 1 and self.center * self.accel <= 1):
            raise MedganError(f"accel={self.accel} must be at least 1 and center={self.center} in (0, 1/accel]",
                              hint="e.g. undersample-mri:accel=4,center=0.08")
        if not (0 <= self.lines <= 1 and np.isfinite(self.shift) and self.shift >= 0):
            raise MedganError(f"motion lines={self.lines} must be in [0, 1] and shift={self.shift} >= 0 pixels")
        if isinstance(self.angles, bool) or int(self.angles) != self.angles or self.angles < 1:
            raise MedganError(f"sparse-view angles must be a whole number >= 1, got {self.angles!r}")
        object.__setattr__(self, "angles", int(self.angles))

    def to_dict(self) -> dict[str, Any]:
        """``kind`` and the parameters this kind uses (JSON-serialisable)."""
        return {"kind": self.kind, **{name: getattr(self, name) for name in KIND_PARAMS[self.kind]}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Degradation:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown or "kind" not in data:
            raise MedganError(f"degradation config {data!r} has unknown keys {sorted(unknown)} or no kind",
                              hint="e.g. {'kind': 'sr', 'factor': 2}")
        return cls(**data)

    def spec(self) -> str:
        """The command-line form, which :func:`parse_degradation` reads back."""
        def text(v: Any) -> str:  # short, but exact: 1e5 -> "100000", 0.1 -> "0.1"
            return format(v, "g") if isinstance(v, float) and float(format(v, "g")) == v else str(v)

        params = ",".join(f"{k}={text(v)}" for k, v in list(self.to_dict().items())[1:])
        return f"{self.kind}:{params}" if params else self.kind

    @property
    def random(self) -> bool:
        """Whether the result depends on the seed (noise), not only on the image."""
        return self.kind not in ("sr", "none", "sparse-view-ct")

    def at_level(self, level: float) -> Degradation:
        """The same degradation at another noise level (its ``sigma``, ``snr`` or ``dose``).

        Raises:
            MedganError: the kind has no noise level (``sr``, ``none``).
        """
        if self.kind not in LEVEL_PARAM:
            raise MedganError(f"the degradation {self.kind!r} has no noise level to vary",
                              hint=f"levels apply to {', '.join(LEVEL_PARAM)}")
        return replace(self, **{LEVEL_PARAM[self.kind]: float(level)})

    def output_shape(self, height: int, width: int) -> tuple[int, int]:
        """Size of a degraded ``height x width`` image."""
        return (height // self.factor, width // self.factor) if self.kind == "sr" else (height, width)

    def apply(self, images: np.ndarray, seed: Seed = 0) -> np.ndarray:
        """Degrade ``(N, H, W)`` (or ``(H, W)``) images -> float32 ``(N, H', W')``."""
        if self.kind in ("lowdose-ct", "lowdose-ct-image"):
            method = "projection" if self.kind == "lowdose-ct" else "image"
            return low_dose_ct(images, self.dose, seed, self.photons, self.pixel_mm, method=method)
        if self.kind == "rician":
            return rician_noise(images, self.snr, seed)
        if self.kind == "gaussian":
            return gaussian_noise(images, self.sigma, seed)
        if self.kind == "none":
            return _map(images, "degradation none", lambda img, i: img)  # checked and float32, unchanged
        if self.kind in ARTEFACTS:
            return self._artefact(images, seed)
        return downsample(images, self.factor, self.method, self.blur_sigma)


    def kspace_masks(self, n: int, width: int, seed: Seed = 0) -> np.ndarray:
        """``(n, width)`` bool: the phase-encoding lines each of ``n`` images kept under
        ``undersample-mri`` with this ``seed`` (what :meth:`apply` used; a data-consistency
        step puts them back)."""
        if self.kind != "undersample-mri":
            raise MedganError(f"the degradation {self.kind!r} keeps no k-space lines", hint="only undersample-mri has a mask")
        ss = _seed_sequence(seed)
        return np.stack([artefacts.cartesian_mask(width, self.accel, self.center, self.mask, _child_rng(ss, i)) for i in range(n)])

    def _artefact(self, images: np.ndarray, seed: Seed) -> np.ndarray:
        if self.kind == "sparse-view-ct":  # the low-dose pipeline, noise-free, over few angles
            return fbp_roundtrip(images, n_angles=self.angles)
        ss = _seed_sequence(seed)
        if self.kind == "motion-mri":
            return _map(images, "motion-mri", lambda img, i: artefacts.motion(img, self.lines, self.shift, _child_rng(ss, i)))
        width = np.shape(images)[-1]
        return _map(images, "undersample-mri", lambda img, i: artefacts.undersample(
            img, artefacts.cartesian_mask(width, self.accel, self.center, self.mask, _child_rng(ss, i))))


_TYPES = {f.name: f.type for f in fields(Degradation)}


def _convert(kind: str, key: str, value: str) -> Any:
    kind_type = _TYPES[key]
    try:
        if kind_type == "int":
            number = float(value)
            if not number.is_integer():
                raise ValueError
            return int(number)
        return float(value) if kind_type == "float" else value
    except ValueError:
        raise MedganError(f"degradation {kind}: {key}={value!r} is not a{'n integer' if kind_type == 'int' else ' number'}",
                          hint=f"e.g. {EXAMPLE}") from None


def parse_degradation(text: str) -> Degradation:
    """Read ``"kind"`` or ``"kind:key=value,key=value"``, e.g. ``"sr:factor=2,method=bicubic"``.

    Raises:
        MedganError: unknown kind, a parameter the kind does not take, or a bad value;
            the message lists the kinds and an example.
    """
    kind, _, rest = text.strip().partition(":")
    kind = kind.strip().lower()
    if kind not in KIND_PARAMS:
        raise MedganError(f"unknown degradation {text!r}", hint=f"use one of {', '.join(KIND_PARAMS)}, e.g. {EXAMPLE}")
    params: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = (s.strip() for s in item.partition("="))
        if not eq or not value:
            raise MedganError(f"degradation {text!r}: {item!r} is not key=value", hint=f"e.g. {EXAMPLE}")
        if key not in KIND_PARAMS[kind]:
            raise MedganError(f"degradation {kind} takes no parameter {key!r}",
                              hint=f"{kind} takes {', '.join(KIND_PARAMS[kind])}; e.g. {EXAMPLE}")
        params[key] = _convert(kind, key, value)
    return Degradation(kind=kind, **params)


def make_pairs(images: np.ndarray, degradation: Degradation, seed: Seed = 0) -> tuple[np.ndarray, np.ndarray]:
    """Training pairs ``(degraded, clean)``: ``degradation.apply(images, seed)`` and the
    images themselves (float32). For ``sr`` the degraded images are ``(N, H/f, W/f)``."""
    clean = _as_batch(images, "make_pairs")[0].astype(np.float32)
    clean = clean[0] if np.ndim(images) == 2 else clean
    return degradation.apply(images, seed), clean
