"""The audit flags planted copies of training images and not real images of other patients."""

import numpy as np
import pytest

from medgan.data.intensity import IntensityMap
from medgan.datasets.phantom import phantom_set
from medgan.errors import MedganError
from medgan.metrics.memorization import audit, calibrate_threshold, nearest_neighbours


def phantoms(n, seed):
    hu = phantom_set(n=n, size=32, seed=seed).images
    return IntensityMap.from_window("-200,1600").forward(hu)[:, None]  # (N, 1, 32, 32) in [-1, 1]


def test_nearest_neighbours_by_hand():
    refs = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 5.0]])
    d, i = nearest_neighbours(np.array([[9.0, 0.0], [0.0, 4.0], [0.0, 0.0]]), refs)
    np.testing.assert_allclose(d, [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(i, [1, 2, 0])


def test_planted_copies_are_flagged_and_other_patients_are_not():
    train, calibration, unseen = phantoms(120, 0), phantoms(80, 1), phantoms(80, 2)
    rng = np.random.default_rng(0)
    copied = rng.choice(len(train), 10, replace=False)
    noisy_copies = train[copied] + rng.normal(0, 0.002, train[copied].shape).astype(np.float32)
    generated = np.concatenate([noisy_copies, unseen])
    result = audit(generated, train, calibration, quantile=0.01)
    flagged = result.flagged
    assert flagged[:10].all()  # every planted copy
    np.testing.assert_array_equal(result.spaces[0].indices[:10], copied)  # matched to its source
    assert flagged[10:].mean() <= 0.05  # real images of other patients: about the 1% of the calibration
    assert result.summary()["pixel"]["threshold"] > 0.01


def test_calibration_needs_held_out_images():
    with pytest.raises(MedganError, match="held-out"):
        calibrate_threshold(np.array([]))
    assert calibrate_threshold(np.arange(100.0), 0.05) == 4.0
