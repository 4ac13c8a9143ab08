import numpy as np
import pytest

from medgan.data.intensity import (
    CT_WINDOWS, IntensityMap, apply_window, normalize_percentile, parse_window, percentile_range, percentiles, window_bounds,
)
from medgan.errors import MedganError


def test_presets_and_custom_windows():
    assert parse_window("brain") == (40.0, 80.0)
    assert parse_window("LUNG") == CT_WINDOWS["lung"]
    assert parse_window("50,350") == (50.0, 350.0)
    assert window_bounds(40, 80) == (0.0, 80.0)
    with pytest.raises(MedganError, match="unknown CT window"):
        parse_window("liverish")
    with pytest.raises(MedganError, match="width must be positive"):
        parse_window("40,0")


def test_window_clips_in_hu():
    hu = np.array([-1000.0, 0.0, 40.0, 80.0, 1000.0])
    np.testing.assert_array_equal(apply_window(hu, 40, 80), [0, 0, 40, 80, 80])


def test_intensity_map_is_exact_inverse_inside_the_range():
    m = IntensityMap.from_window("abdomen")  # [-150, 250] HU
    assert (m.low, m.high, m.units) == (-150.0, 250.0, "HU")
    hu = np.linspace(-150, 250, 101)
    y = m.forward(hu)
    assert y.min() == -1.0 and y.max() == 1.0
    np.testing.assert_allclose(m.inverse(y), hu, atol=1e-4)
    # outside the window: clipped to the bounds, both ways
    np.testing.assert_allclose(m.forward(np.array([-1000.0, 3000.0])), [-1, 1])
    np.testing.assert_allclose(m.inverse(np.array([-5.0, 5.0])), [-150, 250])


def test_intensity_map_rejects_empty_range():
    with pytest.raises(MedganError):
        IntensityMap(1.0, 1.0)


def test_percentile_normalisation_ignores_mri_background():
    rng = np.random.default_rng(0)
    image = np.zeros((64, 64))
    image[16:48, 16:48] = rng.uniform(100, 200, (32, 32))
    low, high = percentile_range(image, 0, 100)
    assert low >= 100 and high <= 200  # zeros excluded
    out = normalize_percentile(image, 1, 99)
    assert out.min() == 0.0 and out.max() == 1.0
    inside = out[16:48, 16:48]
    assert 0.4 < inside.mean() < 0.6


@pytest.mark.parametrize("q", [[0.5, 99.5], [1.0, 99.0], [0, 100], [50], [100, 33.3, 0.1]])
def test_percentiles_without_a_copy_equal_numpys_to_the_bit(q):
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 999, 4253, 20000):
        for values in (rng.normal(0, 100, n), np.round(rng.normal(0, 300, n)) - 1000 * (rng.random(n) < 0.5),  # CT-like, ties
                       rng.random(n), np.full(n, -3.5), np.where(rng.random(n) < 0.5, -0.0, 0.0)):
            values = values.astype(np.float32).reshape(-1, 1) if n % 2 else values.astype(np.float32)
            got, want = percentiles(values, q, chunk=int(rng.integers(1, 3000))), np.percentile(values, q)
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)  # (-0.0 == 0.0: numpy's partition orders the two zeros arbitrarily)
