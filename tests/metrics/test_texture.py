"""Texture figures against known spectra: white noise is flat, blur removes high frequencies."""

import numpy as np
import pytest
from scipy import ndimage

from medgan.errors import MedganError
from medgan.metrics.texture import (hf_energy_ratio, radial_power_spectrum, spectrum_bias_db, spectrum_error_db)


def test_white_noise_has_a_flat_spectrum_at_its_variance():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 3.0, size=(64, 64, 64))
    f, p = radial_power_spectrum(noise)
    assert len(f) == 32 and f[0] > 0 and f[-1] < 0.5
    # |FFT|^2 / sum(w^2) of white noise has expectation sigma^2 at every frequency
    assert np.allclose(p[2:], 9.0, rtol=0.1)


def test_a_sinusoid_puts_its_power_at_its_frequency():
    y, x = np.mgrid[:64, :64]
    wave = np.sin(2 * np.pi * 0.25 * x)  # 0.25 cycles/pixel
    f, p = radial_power_spectrum(wave[None])
    assert abs(f[np.argmax(p)] - 0.25) <= 1 / 64


def test_identical_sets_score_zero_and_blur_and_noise_are_told_apart():
    rng = np.random.default_rng(1)
    truth = ndimage.gaussian_filter(rng.normal(size=(8, 64, 64)), (0, 1.0, 1.0)) + rng.normal(0, 0.05, (8, 64, 64))
    assert spectrum_error_db(truth, truth) == 0.0 and hf_energy_ratio(truth, truth) == 1.0
    blurred = ndimage.gaussian_filter(truth, (0, 1.5, 1.5))
    noisy = truth + rng.normal(0, 0.3, truth.shape)
    assert spectrum_bias_db(truth, blurred) < -3 and hf_energy_ratio(truth, blurred) < 0.5
    assert spectrum_bias_db(truth, noisy) > 3 and hf_energy_ratio(truth, noisy) > 2
    assert spectrum_error_db(truth, blurred) == pytest.approx(-spectrum_bias_db(truth, blurred))
    slightly = truth + rng.normal(0, 0.02, truth.shape)
    assert spectrum_error_db(truth, slightly) < spectrum_error_db(truth, noisy)


def test_shape_mismatch_and_bad_band_are_refused():
    with pytest.raises(MedganError, match="differ in shape"):
        spectrum_error_db(np.zeros((2, 8, 8)), np.zeros((2, 8, 9)))
    with pytest.raises(MedganError, match="band"):
        spectrum_error_db(np.ones((1, 8, 8)), np.ones((1, 8, 8)), band=(0.6, 0.7))
