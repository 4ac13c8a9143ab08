import json

import numpy as np
import pytest
from scipy import ndimage

from medgan.tasks.enhance.degrade import (
    Degradation, ct_noise_sigma, downsample, fbp_roundtrip, gaussian_noise, low_dose_ct, make_pairs,
    parse_degradation, rician_noise, upsample_bicubic,
)
from medgan.datasets.phantom import make_phantom, phantom_set
from medgan.errors import MedganError


def _heads(n: int = 4, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``n`` head phantoms (HU) and, for each, the interior of the brain (uniform tissue)."""
    phantoms = [make_phantom(size, seed=s, kind="head") for s in range(n)]
    images = np.stack([p.image for p in phantoms])
    regions = np.stack([ndimage.binary_erosion(p.tissue == 3, iterations=2) for p in phantoms])
    return images, regions


@pytest.fixture(scope="module")
def heads():
    return _heads()


# --------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("spec", ["lowdose-ct:dose=0.25", "lowdose-ct-image:dose=0.25", "rician:snr=10", "gaussian:sigma=20"])
def test_seeded_and_batch_independent(spec):
    deg = parse_degradation(spec)
    images = phantom_set(4, 64, seed=3).images + 1000.0  # >= 0, so Rician noise applies too
    a, b = deg.apply(images, seed=7), deg.apply(images, seed=7)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.shape == images.shape
    assert not np.allclose(a, deg.apply(images, seed=8))
    # Image i is degraded the same whatever the batch; a single (H, W) image is image 0.
    np.testing.assert_array_equal(deg.apply(images[:2], seed=7), a[:2])
    np.testing.assert_array_equal(deg.apply(images[0], seed=7), a[0])


# --------------------------------------------------------------------------- low-dose CT
def test_fbp_roundtrip_error_is_small_inside_tissue(heads):
    images, regions = heads
    error = fbp_roundtrip(images) - images
    # Measured on these 64x64 heads: ~9 HU RMSE inside the brain, ~50 HU over the whole image
    # (the skull's sharp 1000+ HU edges blur and ring under the ramp filter).
    assert np.sqrt(np.mean(error[regions] ** 2)) < 15.0
    assert np.sqrt(np.mean(error**2)) < 80.0
    assert abs(error[regions].mean()) < 3.0


def test_projection_noise_follows_the_dose(heads):
    images, regions = heads
    reference = fbp_roundtrip(images)
    std, bias = {}, {}
    for dose in (1.0, 0.5, 0.25):
        noise = low_dose_ct(images, dose=dose, seed=1) - reference
        std[dose] = noise[regions].std()
        bias[dose] = (low_dose_ct(images, dose=dose, seed=1) - images)[regions].mean()
    # 1e5 photons, 64x64 at 1 mm: ~21 HU at full dose, ~42 HU at a quarter.
    assert std[1.0] < std[0.5] < std[0.25]
    assert 2.0 * 0.75 < std[0.25] / std[1.0] < 2.0 * 1.25  # sigma ~ 1/sqrt(dose)
    assert all(abs(b) < 3.0 for b in bias.values())  # mean HU preserved
    # The analytic model (ramp-filter noise gain, water-equivalent diameter) predicts it.
    predicted = np.mean([ct_noise_sigma(img, dose=0.25) for img in images])
    assert predicted == pytest.approx(std[0.25], rel=0.15)


def test_analytic_noise_matches_a_water_disc():
    size = 64
    y, x = np.mgrid[:size, :size] - size / 2 + 0.5
    disc = np.where(np.hypot(x, y) < 28, 0.0, -1000.0)
    centre = np.hypot(x, y) < 8
    noise = low_dose_ct(np.stack([disc] * 4), dose=0.5, photons=2e4, seed=0) - fbp_roundtrip(disc)
    assert noise[:, centre].std() == pytest.approx(ct_noise_sigma(disc, dose=0.5, photons=2e4), rel=0.15)
    assert abs(noise[:, centre].mean()) < 3.0


@pytest.mark.parametrize("pixel_mm", [0.5, 3.5])
def test_analytic_noise_follows_pixel_size_and_photons(heads, pixel_mm):
    images, regions = heads
    # Finer pixels: fewer photons per unit area; coarser ones: a bigger, more attenuating head.
    measured = (low_dose_ct(images, dose=1.0, seed=0, pixel_mm=pixel_mm) - fbp_roundtrip(images))[regions].std()
    predicted = np.mean([ct_noise_sigma(img, pixel_mm=pixel_mm) for img in images])
    assert predicted == pytest.approx(measured, rel=0.15)
    assert ct_noise_sigma(images[0], photons=4e5, pixel_mm=pixel_mm) == pytest.approx(
        ct_noise_sigma(images[0], pixel_mm=pixel_mm) / 2)


def test_image_domain_approximation_matches_projection(heads):
    images, regions = heads
    projection = (low_dose_ct(images, dose=0.25, seed=2) - fbp_roundtrip(images))[regions].std()
    approx = low_dose_ct(images, dose=0.25, seed=2, method="image") - images
    assert approx[regions].std() == pytest.approx(projection, rel=0.30)
    assert abs(approx[regions].mean()) < 3.0


def test_low_dose_ct_rejects_bad_input():
    with pytest.raises(MedganError, match="square"):
        low_dose_ct(np.zeros((32, 48)) - 1000 + np.eye(32, 48) * 500)
    with pytest.raises(MedganError, match="Hounsfield"):
        low_dose_ct(np.random.default_rng(0).uniform(-1, 1, (32, 32)))
    with pytest.raises(MedganError, match="dose"):
        low_dose_ct(np.full((32, 32), 40.0) - np.eye(32) * 1000, dose=0)
    with pytest.raises(MedganError, match="method"):
        low_dose_ct(np.full((32, 32), 40.0) - np.eye(32) * 1000, method="sinogram")
    with pytest.raises(MedganError, match="shape"):
        low_dose_ct(np.zeros((2, 1, 32, 32)))
    assert low_dose_ct(np.zeros((32, 32)), method="image").std() > 0  # constant water is valid HU


# --------------------------------------------------------------------------- MRI noise
def test_rician_noise():
    image = np.zeros((4, 64, 64))
    image[:, 16:48, 16:48] = 100.0  # foreground mean 100, background exactly 0
    background = image[0] == 0
    low = rician_noise(image, snr=10, seed=0)  # sigma = 10
    assert low.min() >= 0
    assert low[:, background].mean() == pytest.approx(10 * np.sqrt(np.pi / 2), rel=0.10)  # Rayleigh
    high = rician_noise(image, snr=200, seed=0)
    assert high[:, ~background].mean() == pytest.approx(100.0, rel=0.01)
    with pytest.raises(MedganError, match="positive signal"):
        rician_noise(-image, snr=10)


def test_gaussian_noise_has_the_requested_std():
    noisy = gaussian_noise(np.full((2, 64, 64), 40.0), sigma=20.0, seed=0)
    assert noisy.std() == pytest.approx(20.0, rel=0.05) and noisy.mean() == pytest.approx(40.0, abs=1.0)


# --------------------------------------------------------------------------- resolution
@pytest.mark.parametrize("method", ["area", "bicubic", "kspace"])
@pytest.mark.parametrize("factor", [2, 4])
def test_downsample_shapes_and_mean(method, factor):
    images = phantom_set(2, 64, seed=0).images
    low = downsample(images, factor, method)
    assert low.shape == (2, 64 // factor, 64 // factor) and low.dtype == np.float32
    assert downsample(images[0], factor, method, blur_sigma=1.0).shape == (64 // factor, 64 // factor)
    if method != "bicubic":  # area and k-space truncation keep the mean exactly
        np.testing.assert_allclose(low.mean(axis=(1, 2)), images.mean(axis=(1, 2)), atol=1e-2)
    np.testing.assert_allclose(downsample(np.full((8, 8), 7.0), factor, method), 7.0, atol=1e-4)


def test_area_downsample_is_the_block_mean():
    image = np.arange(16, dtype=float).reshape(4, 4)
    np.testing.assert_allclose(downsample(image, 2, "area"), [[2.5, 4.5], [10.5, 12.5]])


def test_bicubic_upsampling_restores_a_smooth_image():
    y, x = np.mgrid[:64, :64] / 64.0
    smooth = 100 * x + 50 * y + 20 * np.sin(2 * np.pi * x) * np.cos(np.pi * y)
    for method in ("area", "bicubic"):
        back = upsample_bicubic(downsample(smooth, 2, method), 2)
        assert back.shape == (64, 64)
        assert np.sqrt(np.mean((back - smooth) ** 2)) < 1.0  # of a 0..170 range
        assert np.abs(back - smooth)[4:-4, 4:-4].max() < 1.0


def test_bad_factors():
    with pytest.raises(MedganError, match="60x60 is not divisible by the factor 8|must be one of"):
        downsample(np.zeros((60, 60)), 8)
    with pytest.raises(MedganError, match="62x64 is not divisible by the factor 4"):
        downsample(np.zeros((62, 64)), 4)
    with pytest.raises(MedganError, match="method"):
        downsample(np.zeros((64, 64)), 2, "nearest")


# --------------------------------------------------------------------------- config
@pytest.mark.parametrize("spec", [
    "lowdose-ct:dose=0.25", "lowdose-ct-image:dose=0.1,photons=20000,pixel_mm=0.7", "rician:snr=10",
    "gaussian:sigma=20", "sr:factor=2,method=bicubic", "lowdose-ct:dose=0.123456789", "sr:factor=4,method=kspace,blur_sigma=0.5", "sr",
])
def test_parse_round_trips(spec):
    deg = parse_degradation(spec)
    assert parse_degradation(deg.spec()) == deg
    assert Degradation.from_dict(json.loads(json.dumps(deg.to_dict()))) == deg


def test_parse_reads_values():
    deg = parse_degradation(" SR: factor=4 , method=kspace ")
    assert (deg.kind, deg.factor, deg.method) == ("sr", 4, "kspace")
    assert parse_degradation("lowdose-ct:dose=0.25").to_dict() == {"kind": "lowdose-ct", "dose": 0.25, "photons": 1e5, "pixel_mm": 1.0}
    assert parse_degradation("lowdose-ct:dose=0.25").spec() == "lowdose-ct:dose=0.25,photons=100000,pixel_mm=1"
    assert Degradation.from_dict({"kind": "sr", "factor": 4.0}).output_shape(64, 32) == (16, 8)
    with pytest.raises(MedganError, match="unknown keys"):
        Degradation.from_dict({"kind": "sr", "scale": 2})


@pytest.mark.parametrize("text, match", [
    ("blur:sigma=2", "use one of lowdose-ct, lowdose-ct-image, rician, gaussian, sr"),
    ("", "unknown degradation"),
    ("rician:dose=0.2", "takes no parameter 'dose'"),
    ("sr:factor", "not key=value"),
    ("sr:factor=3", "must be one of"),
    ("sr:factor=2.5", "not an integer"),
    ("gaussian:sigma=abc", "not a number"),
    ("lowdose-ct:dose=-1", "dose must be a positive"),
])
def test_parse_errors(text, match):
    with pytest.raises(MedganError, match=match) as info:
        parse_degradation(text)
    assert "\n" not in str(info.value)


def test_make_pairs():
    images = phantom_set(3, 64, seed=0).images
    degraded, clean = make_pairs(images, parse_degradation("sr:factor=4"), seed=0)
    assert degraded.shape == (3, 16, 16) and clean.shape == (3, 64, 64)
    np.testing.assert_array_equal(clean, images)
    assert parse_degradation("sr:factor=4").output_shape(64, 64) == (16, 16)
    degraded, clean = make_pairs(images, parse_degradation("gaussian:sigma=5"), seed=0)
    assert degraded.shape == clean.shape == images.shape
