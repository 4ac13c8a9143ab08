"""How real and how varied a set of generated images looks: FID, KID, SWD, PRDC, MS-SSIM diversity.

Images are ``(N, C, H, W)`` or ``(N, H, W)`` numpy arrays or torch tensors in the networks'
range ``[-1, 1]``; grey (``C = 1``) is the main case. Feature-based scores (FID, KID,
precision/recall/density/coverage) take ``(N, D)`` feature arrays, normally the Inception
features of :class:`medgan.metrics.inception.InceptionFeatures`; :func:`pixel_features`
is a crude weight-free stand-in when the Inception weights are absent.

* :func:`fid_from_features` - Fréchet distance between Gaussians fitted to the features
  (Heusel et al. 2017), computed as pytorch-fid does.
* :func:`kid_from_features` - unbiased MMD² with the cubic polynomial kernel, mean and std
  over random subsets (Bińkowski et al. 2018), as torchmetrics does.
* :func:`swd` - sliced Wasserstein distance between Laplacian-pyramid patches (Karras et
  al. 2018, ProGAN), weight-free.
* :func:`prdc` - precision, recall (Kynkäänniemi et al. 2019), density and coverage
  (Naeem et al. 2020) from k-nearest-neighbour balls.
* :func:`ms_ssim_diversity` - mean MS-SSIM between random pairs of different images of one
  set; close to 1 means mode collapse.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from medgan.errors import MedganError
from medgan.metrics._arrays import finite_float64, to_numpy

__all__ = [
    "as_image_batch",
    "feature_statistics",
    "fid_from_features",
    "frechet_distance",
    "kid_from_features",
    "ms_ssim",
    "ms_ssim_diversity",
    "pixel_features",
    "prdc",
    "swd",
]

_RANGE_TOLERANCE = 1e-3  # float noise around tanh's +-1 is fine; 0..255 or HU is not
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003


# ---- input checks ---------------------------------------------------------------------

def as_image_batch(images: Any, name: str = "images") -> torch.Tensor:
    """``(N, C, H, W)`` or ``(N, H, W)`` in ``[-1, 1]`` -> float32 CPU tensor ``(N, C, H, W)``.

    Raises:
        MedganError: wrong number of axes, empty, NaN/inf, or values outside ``[-1, 1]``.
    """
    x = images.detach().cpu() if isinstance(images, torch.Tensor) else torch.from_numpy(np.asarray(images))
    if x.dtype == torch.bool or x.is_complex():
        raise MedganError(f"{name} must be real-valued images, got dtype {x.dtype}")
    x = x.float()
    if x.ndim == 3:
        x = x[:, None]  # (N, 1, H, W)
    if x.ndim != 4 or x.numel() == 0:
        raise MedganError(f"{name} must be a non-empty (N, C, H, W) or (N, H, W) batch, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise MedganError(f"{name} contains NaN or infinite values", hint="check the generator output")
    low, high = float(x.min()), float(x.max())
    if low < -1 - _RANGE_TOLERANCE or high > 1 + _RANGE_TOLERANCE:
        raise MedganError(
            f"{name} has values in [{low:g}, {high:g}] but realism metrics expect the networks' range [-1, 1]",
            hint="pass images as the generator outputs them (tanh), or rescale e.g. x / 127.5 - 1 for 8-bit images",
        )
    return x.clamp(-1.0, 1.0).contiguous()


def _as_features(features: Any, name: str) -> np.ndarray:
    """``(N, D)`` array or tensor -> float64 numpy, rejecting NaN/inf."""
    array = np.asarray(to_numpy(features), dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise MedganError(f"{name} must be a non-empty (N, D) feature array, got shape {array.shape}")
    return finite_float64(array, name, hint="check the feature extractor's input")


def _feature_pair(f_real: Any, f_fake: Any, min_rows: int = 1) -> tuple[np.ndarray, np.ndarray]:
    real = _as_features(f_real, "real features")
    fake = _as_features(f_fake, "fake features")
    if real.shape[1] != fake.shape[1]:
        raise MedganError(
            f"real features have {real.shape[1]} dimensions but fake features have {fake.shape[1]}",
            hint="extract both sets with the same feature extractor",
        )
    if min(len(real), len(fake)) < min_rows:
        raise MedganError(f"need at least {min_rows} images per set, got {len(real)} real and {len(fake)} fake")
    return real, fake


# ---- FID ------------------------------------------------------------------------------

def feature_statistics(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and covariance ``(D, D)`` (``N - 1`` normalised, as the reference) of ``(N, D)`` features."""
    f = _as_features(features, "features")
    if len(f) < 2:
        raise MedganError(f"need at least 2 feature vectors for a covariance, got {len(f)}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """``||mu1 - mu2||² + Tr(S1 + S2 - 2 (S1 S2)^½)``.

    The trace of the square root is the sum of the square roots of the eigenvalues of
    ``S1 S2``, which are those of the symmetric ``S1^½ S2 S1^½`` (real and non-negative),
    so two symmetric eigendecompositions give it exactly (torchmetrics sums the roots of
    ``eigvals(S1 S2)`` the same way). pytorch-fid's ``scipy.linalg.sqrtm`` of the product
    gives the same figure but takes about a minute per call on a CPU when there are fewer
    images than the 2048 feature dimensions (a singular product), as there are in every
    small-data run; rounding below zero is clipped.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise MedganError(f"mismatched Gaussian statistics: means {mu1.shape}, {mu2.shape}; covariances {sigma1.shape}, {sigma2.shape}")
    diff = mu1 - mu2
    values, vectors = np.linalg.eigh(sigma1)
    root1 = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T  # S1^½, (D, D)
    middle = root1 @ sigma2 @ root1
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_root)


def fid_from_features(f_real: Any, f_fake: Any) -> float:
    """Fréchet Inception Distance between two ``(N, D)`` feature sets (lower is better).

    FID is biased upwards for small N; compare only figures computed with the same
    number of images (the literature uses 10k-50k).

    With fewer images than dimensions (every small-data run: a few hundred images, 2048
    Inception features), the covariances are ``S = Aᵀ A / (N - 1)`` of the centred features
    ``A``, and the eigenvalues of ``S1 S2`` are the squared singular values of
    ``A1 A2ᵀ / √((N1 - 1)(N2 - 1))``, so ``Tr (S1 S2)^½`` is that ``(N1, N2)`` matrix's sum of
    singular values: the same figure from matrices a few hundred wide instead of 2048.
    """
    real, fake = _feature_pair(f_real, f_fake, min_rows=2)
    n1, n2, d = len(real), len(fake), real.shape[1]
    if n1 * n2 > d * d:
        return frechet_distance(*feature_statistics(real), *feature_statistics(fake))
    a1, a2 = real - real.mean(axis=0), fake - fake.mean(axis=0)  # (N1, D), (N2, D)
    diff = real.mean(axis=0) - fake.mean(axis=0)
    trace_root = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1))
    traces = (a1 * a1).sum() / (n1 - 1) + (a2 * a2).sum() / (n2 - 1)
    return float(diff @ diff + traces - 2.0 * trace_root)


# ---- KID ------------------------------------------------------------------------------

def _polynomial_mmd2(real: np.ndarray, fake: np.ndarray, degree: int, gamma: float, coef0: float) -> float:
    """Unbiased MMD² of two equal-size samples with ``k(x, y) = (gamma x.y + coef0) ** degree``."""
    m = len(real)
    k_rr = (real @ real.T * gamma + coef0) ** degree  # (m, m)
    k_ff = (fake @ fake.T * gamma + coef0) ** degree
    k_rf = (real @ fake.T * gamma + coef0) ** degree
    within = (k_rr.sum() - np.trace(k_rr) + k_ff.sum() - np.trace(k_ff)) / (m * (m - 1))
    return float(within - 2.0 * k_rf.sum() / m**2)


def kid_from_features(
    f_real: Any,
    f_fake: Any,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance: unbiased MMD² with ``k(x, y) = (x.y / D + 1) ** 3``.

    Each of ``subsets`` draws ``min(subset_size, n_real, n_fake)`` real and fake rows
    without replacement; the score is the mean and the (population) standard deviation of
    the subset MMD², as torchmetrics and Bińkowski et al. 2018. KID is unbiased, so it can
    be slightly negative when the sets match.

    Args:
        f_real, f_fake: ``(N, D)`` feature arrays.
        subsets: number of random subsets.
        subset_size: rows per subset (capped by the set sizes).
        degree, gamma, coef0: the polynomial kernel; ``gamma=None`` means ``1 / D``.
        seed: seeds the subset draws.

    Returns:
        ``(mean, std)``.
    """
    real, fake = _feature_pair(f_real, f_fake, min_rows=2)
    if not isinstance(subsets, int) or subsets < 1:
        raise MedganError(f"KID subsets must be a positive integer, got {subsets!r}")
    if not isinstance(degree, int) or degree < 1:
        raise MedganError(f"KID kernel degree must be a positive integer, got {degree!r}")
    size = min(int(subset_size), len(real), len(fake))
    if size < 2:
        raise MedganError(f"KID subset_size must be at least 2, got {subset_size!r}")
    gamma = 1.0 / real.shape[1] if gamma is None else float(gamma)
    rng = np.random.default_rng(seed)
    scores = np.array([
        _polynomial_mmd2(
            real[rng.choice(len(real), size, replace=False)],
            fake[rng.choice(len(fake), size, replace=False)],
            degree, gamma, float(coef0),
        )
        for _ in range(subsets)
    ])
    return float(scores.mean()), float(scores.std())


# ---- SWD ------------------------------------------------------------------------------

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0  # 5-tap, its outer product is ProGAN's 5x5 filter


def _blur(x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """Separable 5x5 binomial filter with mirror (reflect-101) borders, as scipy.ndimage mode="mirror"."""
    channels = x.shape[1]
    k = (_BINOMIAL * gain**0.5).to(x.dtype)
    x = F.pad(x, (2, 2, 2, 2), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, 5).expand(channels, 1, 1, 5), groups=channels)
    return F.conv2d(x, k.view(1, 1, 5, 1).expand(channels, 1, 5, 1), groups=channels)


def _laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """ProGAN's ``generate_laplacian_pyramid``: band-pass levels, then the low-pass residual."""
    pyramid = [x]
    for _ in range(1, levels):
        down = _blur(pyramid[-1])[:, :, ::2, ::2]  # pyrDown: (N, C, H/2, W/2)
        up = torch.zeros_like(pyramid[-1])
        up[:, :, ::2, ::2] = down
        pyramid[-1] = pyramid[-1] - _blur(up, gain=4.0)  # minus pyrUp
        pyramid.append(down)
    return pyramid


def _patches(level: torch.Tensor, patch_size: int, per_image: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random ``patch_size`` squares fully inside the images: ``(count, C, p, p)``.

    ``per_image`` per image when ``count = N * per_image`` (the reference); a larger set
    gives a random subset of those, so both sets contribute the same number of patches.
    """
    n, channels, height, width = level.shape
    half = patch_size // 2
    offsets = np.arange(-half, half + 1)
    if count == n * per_image:
        image = np.arange(count) // per_image
    else:
        image = np.sort(rng.choice(n * per_image, count, replace=False)) // per_image
    image = image[:, None, None, None]
    channel = np.arange(channels)[None, :, None, None]
    ys = rng.integers(half, height - half, size=count)[:, None, None, None] + offsets[None, None, :, None]
    xs = rng.integers(half, width - half, size=count)[:, None, None, None] + offsets[None, None, None, :]
    return level.numpy()[image, channel, ys, xs]


def _standardise(descriptors: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return ((descriptors - mean) / np.maximum(std, 1e-12)).reshape(len(descriptors), -1)


def _sliced_wasserstein(a: np.ndarray, b: np.ndarray, n_projections: int, rng: np.random.Generator) -> float:
    """Mean over random unit directions of the 1-D Wasserstein-1 distance of the projections."""
    ta, tb = torch.from_numpy(a).float(), torch.from_numpy(b).float()  # float32 as the reference
    # ProGAN draws 4 repeats of 128 directions; fewer per block keeps a block's
    # (patches, directions) projections under ~256 MB for large sets.
    per_block = int(min(128, max(1, 2**26 // len(a))))
    total, done = 0.0, 0
    while done < n_projections:
        chunk = min(per_block, n_projections - done)
        dirs = torch.from_numpy(rng.standard_normal((a.shape[1], chunk)))
        dirs = (dirs / dirs.norm(dim=0, keepdim=True)).float()  # (D, chunk), unit columns
        proj_a = torch.sort(ta @ dirs, dim=0).values  # (patches, chunk)
        proj_b = torch.sort(tb @ dirs, dim=0).values
        total += float((proj_a - proj_b).abs().mean()) * chunk
        done += chunk
    return total / n_projections


def swd(
    real: Any,
    fake: Any,
    n_levels: int | None = None,
    patch_size: int = 7,
    patches_per_image: int = 128,
    n_projections: int = 512,
    seed: int = 0,
    normalize: str = "separate",
) -> dict[str, float]:
    """Sliced Wasserstein distance between Laplacian-pyramid patches (Karras et al. 2018).

    Follows ProGAN's ``metrics/sliced_wasserstein.py``: a Laplacian pyramid built with
    the 5-tap binomial filter ``[1, 4, 6, 4, 1] / 16`` (mirror borders) from full size
    down to 16 x 16; ``patches_per_image`` random ``patch_size`` x ``patch_size`` patches
    per image and level; each channel of a level's patches standardised to zero mean and
    unit std over patches and pixels; ``n_projections`` random unit directions; the mean
    absolute difference of the sorted projections. Lower is better.

    Args:
        real, fake: image batches in ``[-1, 1]`` with the same channels and size. The
            sorted projections are paired one to one, so both sets contribute
            ``min(N_real, N_fake) * patches_per_image`` patches per level (the larger set a
            random subset of its per-image patches); the reference uses equal sets.
        n_levels: pyramid levels; ``None`` halves from the image height while it is >= 16.
        patch_size: odd patch side (7 in the paper).
        patches_per_image: patches drawn per image and level (128 in the paper).
        n_projections: random directions (512 = 4 x 128 in the paper).
        seed: seeds patch positions and directions (the same for real and fake).
        normalize: ``"separate"`` standardises real and fake patches each by their own
            mean/std, as the reference (which therefore ignores a global shift of a
            band's mean or contrast); ``"joint"`` uses the mean/std of real and fake
            together, which also penalises such shifts.

    Returns:
        ``{"swd_x1e3_<res>": ..., "swd_x1e3_avg": ...}``: distances multiplied by 1e3 as in
        the paper's tables, one per level named by its height (``<H>x<W>`` if not square),
        from full resolution down, and their mean.
    """
    a = as_image_batch(real, "real images")
    b = as_image_batch(fake, "fake images")
    if a.shape[1:] != b.shape[1:]:
        raise MedganError(
            f"SWD needs real and fake images of the same channels and size, got {tuple(a.shape[1:])} and {tuple(b.shape[1:])}",
            hint="resample one set to the other's size first",
        )
    if normalize not in ("separate", "joint"):
        raise MedganError(f"SWD normalize must be 'separate' or 'joint', got {normalize!r}")
    if not isinstance(patch_size, int) or patch_size < 1 or patch_size % 2 == 0:
        raise MedganError(f"SWD patch_size must be an odd positive integer, got {patch_size!r}", hint="the paper uses 7")
    for label, value in (("patches_per_image", patches_per_image), ("n_projections", n_projections)):
        if not isinstance(value, int) or value < 1:
            raise MedganError(f"SWD {label} must be a positive integer, got {value!r}")
    height, width = a.shape[-2:]
    if n_levels is None:
        n_levels, res = 0, height
        while res >= 16:
            n_levels, res = n_levels + 1, res // 2
        n_levels = max(n_levels, 1)
    if not isinstance(n_levels, int) or n_levels < 1:
        raise MedganError(f"SWD n_levels must be a positive integer, got {n_levels!r}")
    scale = 2 ** (n_levels - 1)
    if height % scale or width % scale or min(height, width) // scale < max(patch_size, 3):
        raise MedganError(
            f"images of {height}x{width} cannot form a {n_levels}-level pyramid with {patch_size}x{patch_size} patches",
            hint=f"use sizes divisible by {scale} with the coarsest level at least {patch_size} pixels, or fewer n_levels",
        )

    rng = np.random.default_rng(seed)
    count = min(len(a), len(b)) * patches_per_image
    pyramid_a = _laplacian_pyramid(a.double(), n_levels)
    pyramid_b = _laplacian_pyramid(b.double(), n_levels)
    result: dict[str, float] = {}
    for level_a, level_b in zip(pyramid_a, pyramid_b):
        # The same patch positions in both sets (the reference draws them independently):
        # identical sets then score exactly 0, and there is less sampling noise.
        state = rng.bit_generator.state
        desc_a = _patches(level_a, patch_size, patches_per_image, count, rng)
        rng.bit_generator.state = state
        desc_b = _patches(level_b, patch_size, patches_per_image, count, rng)  # (P, C, p, p)
        axes = (0, 2, 3)
        if normalize == "joint":
            both = np.concatenate([desc_a, desc_b])
            stats_a = stats_b = (both.mean(axis=axes, keepdims=True), both.std(axis=axes, keepdims=True))
        else:
            stats_a = (desc_a.mean(axis=axes, keepdims=True), desc_a.std(axis=axes, keepdims=True))
            stats_b = (desc_b.mean(axis=axes, keepdims=True), desc_b.std(axis=axes, keepdims=True))
        distance = _sliced_wasserstein(_standardise(desc_a, *stats_a), _standardise(desc_b, *stats_b), n_projections, rng)
        h, w = level_a.shape[-2:]
        result[f"swd_x1e3_{h}" if h == w else f"swd_x1e3_{h}x{w}"] = distance * 1e3
    result["swd_x1e3_avg"] = float(np.mean(list(result.values())))
    return result


# ---- precision, recall, density, coverage -------------------------------------------

def _kth_neighbour_distance(x: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    """Distance of each row to its k-th nearest other row (the row itself is the 0th)."""
    radii = []
    for start in range(0, len(x), chunk):
        d = torch.cdist(x[start:start + chunk], x)  # (chunk, N)
        radii.append(torch.topk(d, k + 1, dim=1, largest=False).values[:, -1])
    return torch.cat(radii)


def prdc(real_features: Any, fake_features: Any, k: int = 5, chunk_size: int = 1024) -> dict[str, float]:
    """Precision, recall, density and coverage of k-nearest-neighbour manifolds.

    As the reference code of Naeem et al. 2020 (``prdc.compute_prdc``): every point gets a
    ball reaching its k-th nearest neighbour in its own set; a fake point is "precise" if it
    lies strictly inside some real ball, a real point is "recalled" if it lies inside some
    fake ball (Kynkäänniemi et al. 2019); density counts the real balls around each fake
    point (/ k, can exceed 1); coverage is the share of real points whose ball holds a fake
    point. Distances are Euclidean, computed in chunks.

    Args:
        real_features, fake_features: ``(N, D)`` arrays (Inception or :func:`pixel_features`).
        k: neighbourhood size (5 in both papers).
        chunk_size: rows per distance block (memory ~ ``chunk_size * N * 8`` bytes).

    Returns:
        ``{"precision", "recall", "density", "coverage"}``.
    """
    real_np, fake_np = _feature_pair(real_features, fake_features)
    if not isinstance(k, int) or k < 1:
        raise MedganError(f"PRDC k must be a positive integer, got {k!r}", hint="the papers use k=5")
    if min(len(real_np), len(fake_np)) <= k:
        raise MedganError(f"PRDC with k={k} needs more than {k} images per set, got {len(real_np)} real and {len(fake_np)} fake")
    real, fake = torch.from_numpy(real_np), torch.from_numpy(fake_np)
    real_radius = _kth_neighbour_distance(real, k, chunk_size)  # (N_real,)
    fake_radius = _kth_neighbour_distance(fake, k, chunk_size)  # (N_fake,)

    precise = torch.zeros(len(fake), dtype=torch.bool)
    density = torch.zeros(len(fake), dtype=torch.float64)
    recalled = torch.zeros(len(real), dtype=torch.bool)
    nearest_fake = torch.full((len(real),), float("inf"), dtype=torch.float64)
    for start in range(0, len(fake), chunk_size):
        stop = start + chunk_size
        d = torch.cdist(real, fake[start:stop])  # (N_real, chunk)
        inside_real = d < real_radius[:, None]
        precise[start:stop] = inside_real.any(dim=0)
        density[start:stop] = inside_real.sum(dim=0).double()
        recalled |= (d < fake_radius[None, start:stop]).any(dim=1)
        nearest_fake = torch.minimum(nearest_fake, d.min(dim=1).values)
    return {
        "precision": float(precise.double().mean()),
        "recall": float(recalled.double().mean()),
        "density": float(density.mean() / k),
        "coverage": float((nearest_fake < real_radius).double().mean()),
    }


def pixel_features(images: Any, size: int = 16) -> np.ndarray:
    """Weight-free features: each image area-averaged to ``size`` x ``size`` and flattened.

    A crude stand-in for Inception features, for :func:`prdc` (or a rough FID-like figure)
    when the weights are unavailable: it sees global layout and intensity only, not
    texture, so its scores are not comparable with Inception-based ones or the literature.

    Returns:
        ``(N, C * size * size)`` float64 array.
    """
    x = as_image_batch(images, "images")
    if not isinstance(size, int) or size < 1 or size > min(x.shape[-2:]):
        raise MedganError(f"pixel_features size must be an integer in 1..{min(x.shape[-2:])}, got {size!r}")
    pooled = F.adaptive_avg_pool2d(x.double(), (size, size))  # (N, C, size, size)
    return pooled.reshape(len(x), -1).numpy()


# ---- MS-SSIM --------------------------------------------------------------------------

def _gaussian_window(channels: int, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()  # (C, 1, 11, 11)


def _ms_ssim_per_pair(x: torch.Tensor, y: torch.Tensor, data_range: float, window: int = 11) -> torch.Tensor:
    """MS-SSIM of each pair of ``(B, C, H, W)`` float64 images -> ``(B,)``."""
    scales = 0
    while scales < len(MS_SSIM_WEIGHTS) and min(x.shape[-2:]) // 2**scales >= window:
        scales += 1
    if scales == 0:
        raise MedganError(f"images of {tuple(x.shape[-2:])} are smaller than the {window}-pixel MS-SSIM window")
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=torch.float64)
    if scales < len(MS_SSIM_WEIGHTS):  # renormalised only when fewer than 5 scales fit (the
        weights = weights / weights.sum()  # published 5 sum to 1.0001 and are kept as they are)
    kernel = _gaussian_window(x.shape[1], window)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    factors = []
    for scale in range(scales):
        if scale:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        stats = F.conv2d(torch.cat([x, y, x * x, y * y, x * y]), kernel, groups=x.shape[1])  # valid: (5B, C, h, w)
        mu_x, mu_y, xx, yy, xy = stats.split(len(x))
        var_x = (xx - mu_x**2).clamp(min=0)
        var_y = (yy - mu_y**2).clamp(min=0)
        cov = xy - mu_x * mu_y
        cs = (2 * cov + c2) / (var_x + var_y + c2)  # contrast-structure map
        if scale < scales - 1:
            factors.append(cs.flatten(1).mean(1))
        else:  # luminance enters at the coarsest scale only
            luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
            factors.append((luminance * cs).flatten(1).mean(1))
    # Negative factors (anti-correlated pairs) are clipped to 0 before the fractional
    # powers, as torchmetrics' default normalize="relu"; otherwise they would be NaN.
    stacked = torch.stack(factors).clamp(min=0)  # (scales, B)
    return torch.prod(stacked ** weights[:, None], dim=0)


def ms_ssim(reference: Any, test: Any, data_range: float = 2.0) -> float:
    """Multi-scale SSIM (Wang et al. 2003) of image pairs in ``[-1, 1]``, mean over pairs.

    Gaussian window of 11 taps, sigma 1.5, ``K1=0.01``, ``K2=0.03``, valid (unpadded)
    filtering, 2x2 average pooling between scales and weights
    ``(0.0448, 0.2856, 0.3001, 0.2363, 0.1333)``. Small images use only the scales whose
    side is still at least 11 pixels (64 x 64: 3 scales, 32 x 32: 2) and the weights of
    those scales renormalised to sum to 1; with all 5 scales the published weights are
    used unchanged (as torchmetrics and the TF reference). Each scale's factor is clipped
    at 0 (torchmetrics' ``normalize="relu"``). Channels are averaged inside each scale's
    mean. Unlike torchmetrics, the coarsest-scale SSIM is also averaged over the valid
    region only (torchmetrics averages it over a reflect-padded image).
    """
    x = as_image_batch(reference, "reference")
    y = as_image_batch(test, "test")
    if x.shape != y.shape:
        raise MedganError(f"reference has shape {tuple(x.shape)} but test has shape {tuple(y.shape)}")
    return float(_ms_ssim_per_pair(x.double(), y.double(), float(data_range)).mean())


def ms_ssim_diversity(images: Any, n_pairs: int = 200, seed: int = 0, batch_size: int = 64) -> float:
    """Mean MS-SSIM between ``n_pairs`` random pairs of different images of one set.

    A mode-collapse alarm: near 1 means the images look alike; compare with the same
    figure on real images (a diverse set of brain slices still scores well above 0).
    Pairs are drawn with replacement among pairs of distinct indices.
    """
    x = as_image_batch(images, "images")
    if len(x) < 2:
        raise MedganError(f"MS-SSIM diversity needs at least 2 images, got {len(x)}")
    if not isinstance(n_pairs, int) or n_pairs < 1:
        raise MedganError(f"n_pairs must be a positive integer, got {n_pairs!r}")
    rng = np.random.default_rng(seed)
    first = rng.integers(0, len(x), n_pairs)
    second = (first + rng.integers(1, len(x), n_pairs)) % len(x)  # never equal to first
    scores = [
        _ms_ssim_per_pair(x[first[s:s + batch_size]].double(), x[second[s:s + batch_size]].double(), 2.0)
        for s in range(0, n_pairs, batch_size)
    ]
    return float(torch.cat(scores).mean())
