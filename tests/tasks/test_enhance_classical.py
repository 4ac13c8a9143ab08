"""Classical baselines given the network's knowledge: the noise level from validation pairs,
parameters tuned on them, one fixed intensity scale."""

import numpy as np
import pytest
from medgan.datasets.phantom import phantom_set
from medgan.errors import MedganError
from medgan.tasks.enhance.classical import NLM_GRID, classical_baselines, nlm_denoise, noise_level, tune

LOW, HIGH = -160.0, 240.0  # a soft-tissue window in HU


def _pairs(n, seed, sigma=30.0):
    clean = np.clip(phantom_set(n=n, size=48, seed=seed).images, LOW, HIGH)
    noisy = clean + np.random.default_rng(seed).normal(0, sigma, clean.shape)
    return noisy.astype(np.float32), clean.astype(np.float32)


def _psnr(clean, out):
    return float(np.mean([10 * np.log10((HIGH - LOW) ** 2 / np.mean((c - o) ** 2)) for c, o in zip(clean, out)]))


def test_noise_level_is_the_true_sigma_of_gaussian_pairs():
    noisy, clean = _pairs(4, 0, sigma=30.0)
    assert noise_level(noisy, clean) == pytest.approx(30.0, rel=0.03)
    with pytest.raises(MedganError, match="differ in shape"):
        noise_level(noisy[:, :24], clean)


def test_tuning_picks_the_best_grid_point_on_validation_and_it_carries_to_test_images():
    val_noisy, val_clean = _pairs(3, 1)
    tuned = tune("nlm", val_noisy, val_clean, LOW, HIGH)
    assert len(tuned.grid) == np.prod([len(v) for v in NLM_GRID.values()])
    assert tuned.validation_psnr == max(r["psnr"] for r in tuned.grid)
    assert all(tuned.params[k] in NLM_GRID[k] for k in NLM_GRID)
    test_noisy, test_clean = _pairs(3, 2)
    base = _psnr(test_clean, test_noisy)
    best = _psnr(test_clean, nlm_denoise(test_noisy, tuned.sigma, LOW, HIGH, **tuned.params))
    weakest = min(tuned.grid, key=lambda r: r["psnr"])
    worse = _psnr(test_clean, nlm_denoise(test_noisy, tuned.sigma, LOW, HIGH, **{k: weakest[k] for k in NLM_GRID}))
    assert best > base + 3 and best > worse  # denoises, and the validation choice beats the worst one on new images


def test_bm3d_with_the_measured_sigma_denoises(require):
    require("bm3d")
    val_noisy, val_clean = _pairs(2, 3)
    test_noisy, test_clean = _pairs(2, 4)
    out = classical_baselines(val_noisy, val_clean, test_noisy, LOW, HIGH)
    assert set(out) == {"nlm", "bm3d"}
    for images, tuned in out.values():
        assert images.shape == test_noisy.shape and tuned.sigma == pytest.approx(30.0, rel=0.05)
        assert _psnr(test_clean, images) > _psnr(test_clean, test_noisy) + 3


def test_unbiased_nlm_removes_the_rician_bias_that_plain_nlm_keeps():
    from medgan.tasks.enhance.classical import nlm_rician_denoise, rician_sigma
    from medgan.tasks.enhance.degrade import rician_noise

    clean = np.zeros((2, 48, 48), np.float32)
    clean[:, 12:36, 12:36] = 200.0  # a bright square on a dark background, 0..255
    noisy = rician_noise(clean, snr=5, seed=0)  # sigma = 200 / 5 = 40 in each channel
    assert rician_sigma(noisy, clean) == pytest.approx(40.0, rel=0.05)
    background = clean == 0
    plain = nlm_denoise(noisy, noise_level(noisy, clean), 0, 255, h=0.8)
    unbiased = nlm_rician_denoise(noisy, rician_sigma(noisy, clean), 0, 255, h=0.8)
    # Rayleigh background: mean sigma * sqrt(pi / 2) = 50; plain NLM keeps it, the unbiased one does not
    assert plain[background].mean() > 35 and unbiased[background].mean() < 15
    assert abs(unbiased[~background].mean() - 200) < abs(plain[~background].mean() - 200) + 2
