"""Realism metrics against closed forms and against torchmetrics on the same inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medgan.errors import MedganError
from medgan.metrics.features_cache import cached_features, feature_cache_key
from medgan.metrics.realism import (
    feature_statistics,
    frechet_distance,
    fid_from_features,
    kid_from_features,
    ms_ssim,
    ms_ssim_diversity,
    pixel_features,
    prdc,
    swd,
)


def _blobs(n: int, size: int = 32, seed: int = 0, blur: float = 0.0) -> torch.Tensor:
    """Grey images in [-1, 1]: a few random Gaussian blobs on a dark background."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
    images = torch.zeros(n, 1, size, size)
    for i in range(n):
        for _ in range(3):
            cy, cx = torch.rand(2, generator=g) * size
            radius = 1.5 + 4 * torch.rand(1, generator=g)
            images[i, 0] += torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))
    images = images + 0.05 * torch.randn(images.shape, generator=g)
    if blur:
        k = torch.exp(-torch.arange(-3, 4.0) ** 2 / (2 * blur**2))
        k = k / k.sum()
        images = F.conv2d(F.pad(images, (3, 3, 3, 3), mode="reflect"), k.view(1, 1, 1, 7))
        images = F.conv2d(images, k.view(1, 1, 7, 1))
    return (images.clamp(0, 1) * 2 - 1)


# ---- FID ------------------------------------------------------------------------------

def test_fid_identical_sets_is_zero():
    f = np.random.default_rng(0).normal(size=(200, 8))
    assert abs(fid_from_features(f, f)) < 1e-8


def test_fid_matches_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(1)
    d = 6
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = rng.uniform(0.5, 2, d), rng.uniform(0.5, 2, d)
    # Exact sample statistics: whiten a sample, then colour it, so the sample mean and
    # covariance are exactly mu and diag(s).
    def sample(mu, s, n=500):
        z = rng.normal(size=(n, d))
        z -= z.mean(0)
        z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False)).T)
        return mu + z * np.sqrt(s)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert fid_from_features(sample(mu1, s1), sample(mu2, s2)) == pytest.approx(expected, rel=1e-9)


def test_fid_matches_torchmetrics_compute_fid(require):
    fid_module = require("torchmetrics.image.fid")
    rng = np.random.default_rng(2)
    a = rng.normal(size=(300, 16))
    b = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16)) * 0.5 + 0.3
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    reference = fid_module._compute_fid(ta.mean(0), torch.cov(ta.T), tb.mean(0), torch.cov(tb.T))
    assert fid_from_features(a, b) == pytest.approx(float(reference), rel=1e-6)


def test_fid_with_fewer_images_than_dimensions_matches_the_matrix_square_root():
    """A singular covariance product (fewer images than features, as in every small-data
    run): the singular values of the features' product and the eigenvalues of the
    covariances' both give pytorch-fid's ``Tr(sqrtm(S1 S2))``."""
    import scipy.linalg

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(40, 96)), rng.normal(size=(30, 96)) * 1.5 + 0.2
    (mu1, s1), (mu2, s2) = feature_statistics(a), feature_statistics(b)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    reference = float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-6)
    assert fid_from_features(a, b) == pytest.approx(reference, rel=1e-6)


def test_fid_rejects_mismatched_dimensions():
    with pytest.raises(MedganError, match="dimensions"):
        fid_from_features(np.zeros((5, 3)), np.zeros((5, 4)))


# ---- KID ------------------------------------------------------------------------------

def test_kid_same_distribution_is_near_zero():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(400, 32)), rng.normal(size=(400, 32))
    mean, std = kid_from_features(a, b, subsets=20, subset_size=200)
    assert abs(mean) < 3 * std
    shifted_mean, _ = kid_from_features(a, b + 1.0, subsets=20, subset_size=200)
    assert shifted_mean > 10 * std


def test_kid_single_full_subset_matches_torchmetrics_poly_mmd(require):
    kid_module = require("torchmetrics.image.kid")
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(150, 24)), rng.normal(size=(150, 24)) + 0.2
    mean, std = kid_from_features(a, b, subsets=1, subset_size=150)  # the whole sets, permuted
    reference = kid_module.poly_mmd(torch.from_numpy(a), torch.from_numpy(b), degree=3, gamma=None, coef=1.0)
    assert std == 0.0
    assert mean == pytest.approx(float(reference), rel=1e-6)


def test_kid_is_deterministic_for_a_seed():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(100, 8)), rng.normal(size=(120, 8))
    assert kid_from_features(a, b, subsets=5, subset_size=50, seed=7) == kid_from_features(a, b, subsets=5, subset_size=50, seed=7)


# ---- SWD ------------------------------------------------------------------------------

def test_swd_identical_zero_blurred_larger_and_deterministic():
    real = _blobs(24, size=32, seed=0)
    other = _blobs(24, size=32, seed=1)
    blurred = _blobs(24, size=32, seed=1, blur=1.5)
    kwargs = {"patches_per_image": 32, "n_projections": 128}
    same = swd(real, real, **kwargs)
    assert set(same) == {"swd_x1e3_32", "swd_x1e3_16", "swd_x1e3_avg"}
    assert same["swd_x1e3_avg"] < 1e-9
    fair = swd(real, other, **kwargs)
    bad = swd(real, blurred, **kwargs)
    assert bad["swd_x1e3_32"] > 2 * fair["swd_x1e3_32"]  # blur removes the fine band
    assert swd(real, blurred, **kwargs) == bad  # same seed, same answer
    joint = swd(real, (blurred * 0.5).clamp(-1, 1), normalize="joint", **kwargs)
    assert joint["swd_x1e3_avg"] > bad["swd_x1e3_avg"]  # a contrast change also counts


def test_swd_different_set_sizes_and_shapes():
    real = _blobs(12, size=32, seed=0)
    scores = swd(real, torch.cat([real, _blobs(6, size=32, seed=3)]), patches_per_image=16, n_projections=64)
    assert 0 < scores["swd_x1e3_avg"] < swd(real, _blobs(18, size=32, seed=1, blur=1.5), patches_per_image=16, n_projections=64)["swd_x1e3_avg"]
    with pytest.raises(MedganError, match="same channels and size"):
        swd(_blobs(4, size=32), _blobs(4, size=16))


# ---- PRDC -----------------------------------------------------------------------------

def test_prdc_identical_sets():
    f = np.random.default_rng(6).normal(size=(150, 10))
    scores = prdc(f, f, k=5, chunk_size=64)
    assert scores["precision"] == 1.0 and scores["recall"] == 1.0 and scores["coverage"] == 1.0
    assert scores["density"] > 0.5


def test_prdc_disjoint_clusters():
    rng = np.random.default_rng(7)
    real, fake = rng.normal(size=(100, 10)), rng.normal(size=(80, 10)) + 100.0
    scores = prdc(real, fake, k=5)
    assert scores == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_prdc_half_overlap_precision():
    rng = np.random.default_rng(8)
    real = rng.normal(size=(400, 4))
    fake = np.concatenate([rng.normal(size=(200, 4)), rng.normal(size=(200, 4)) + 50.0])
    scores = prdc(real, fake, k=5)
    assert 0.4 < scores["precision"] <= 0.5
    assert scores["recall"] > 0.8


def test_pixel_features_shape_and_range_check():
    images = _blobs(3, size=32)
    assert pixel_features(images, size=8).shape == (3, 64)
    assert np.allclose(pixel_features(images, size=32), images.reshape(3, -1).numpy())
    with pytest.raises(MedganError, match=r"\[-1, 1\]"):
        pixel_features(images * 127.5 + 127.5)


# ---- MS-SSIM --------------------------------------------------------------------------

def test_ms_ssim_of_an_image_with_itself_is_one():
    x = _blobs(2, size=64)
    assert ms_ssim(x, x) == pytest.approx(1.0, abs=1e-12)


def _torchmetrics_ms_ssim_valid(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """torchmetrics' MS-SSIM with our (and Wang et al.'s) convention at the coarsest scale.

    ``multiscale_structural_similarity_index_measure`` averages the coarsest-scale SSIM
    over the reflect-padded full image, but its contrast terms over the valid region
    only; rebuild it from its ``_ssim_update`` with the SSIM map cropped to the valid
    region too.
    """
    from torchmetrics.functional.image.ssim import _ssim_update

    weights = torch.tensor([0.0448, 0.2856, 0.3001, 0.2363, 0.1333], dtype=torch.float64)
    factors = []
    for scale in range(5):
        if scale:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        if scale < 4:
            _, cs = _ssim_update(x, y, data_range=2.0, return_contrast_sensitivity=True)
            factors.append(cs)
        else:
            _, ssim_map = _ssim_update(x, y, data_range=2.0, return_full_image=True)
            factors.append(ssim_map[..., 5:-5, 5:-5].flatten(1).mean(1))
    return torch.prod(torch.stack(factors).clamp(min=0) ** weights[:, None], dim=0)


def test_ms_ssim_matches_torchmetrics_at_five_scales(require):
    require("torchmetrics")
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as tm_ms_ssim

    x = _blobs(2, size=192, seed=0).double()
    y = (0.8 * x + 0.2 * _blobs(2, size=192, seed=1, blur=1.0).double()).clamp(-1, 1)
    ours = torch.tensor([ms_ssim(x[i:i + 1], y[i:i + 1]) for i in range(2)], dtype=torch.float64)
    same_convention = _torchmetrics_ms_ssim_valid(x, y)
    assert torch.allclose(ours, same_convention, rtol=0, atol=1e-6)
    # The public function differs only by its padded coarsest-scale SSIM.
    public = tm_ms_ssim(x, y, data_range=2.0, kernel_size=11, sigma=1.5, reduction="none")
    assert torch.allclose(ours, public, rtol=0, atol=2e-2)


def test_ms_ssim_diversity_detects_collapse():
    collapsed = _blobs(1, size=64).repeat(10, 1, 1, 1)
    assert ms_ssim_diversity(collapsed, n_pairs=20) == pytest.approx(1.0, abs=1e-12)
    noise = torch.rand(10, 1, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert ms_ssim_diversity(noise, n_pairs=20) < 0.1


def test_ms_ssim_diversity_is_between_for_a_varied_set():
    value = ms_ssim_diversity(_blobs(12, size=64), n_pairs=30, seed=1)
    assert 0.0 < value < 0.9
    assert value == ms_ssim_diversity(_blobs(12, size=64), n_pairs=30, seed=1)


# ---- feature cache --------------------------------------------------------------------

def test_cached_features_computes_once_per_key(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return np.arange(12, dtype=np.float64).reshape(3, 4) * len(calls)

    key = {"data": "phantom", "split": "train", "n": 3, "extractor": "pixels16", "version": 1}
    first = cached_features(key, compute, cache_dir=tmp_path)
    second = cached_features(dict(reversed(list(key.items()))), compute, cache_dir=tmp_path)  # order-free key
    assert len(calls) == 1 and np.array_equal(first, second)
    third = cached_features({**key, "n": 4}, compute, cache_dir=tmp_path)
    assert len(calls) == 2 and not np.array_equal(first, third)
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".json", ".npy", ".npy"]  # no temp files left
    assert (tmp_path / f"{feature_cache_key(key)}.npy").is_file()


def test_cached_features_default_dir_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDGAN_CACHE_DIR", str(tmp_path))
    cached_features({"a": 1}, lambda: np.ones(3))
    assert len(list((tmp_path / "features").glob("*.npy"))) == 1


def test_cached_features_rejects_unserialisable_keys(tmp_path):
    with pytest.raises(MedganError, match="key_parts"):
        cached_features({"model": object()}, lambda: np.ones(3), cache_dir=tmp_path)
