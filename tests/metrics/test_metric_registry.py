"""Realism metrics by name: chosen with --metrics, each computed once, unknown names refused."""

import numpy as np
import pytest

from medgan.errors import MedganError
from medgan.metrics.registry import REALISM, RealismInputs, compute_realism, register_realism
from medgan.metrics.realism import fid_from_features, swd


def images(seed: int, n: int = 24) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, 1, 32, 32)).astype(np.float32)


def test_a_chosen_metric_equals_its_plain_function():
    real, fake = images(0), images(1)
    figures, seconds = compute_realism(RealismInputs(real, fake, seed=3), ["swd"])
    assert set(figures) == {"swd"} and set(seconds) == {"swd"}
    assert figures["swd"] == pytest.approx(swd(real, fake, seed=3)["swd_x1e3_avg"])


def test_inception_features_are_computed_once_and_shared():
    calls = []

    def features(x):  # a stand-in extractor: a fixed projection of the pixels
        calls.append(len(x))
        return x.reshape(len(x), -1)[:, :64].astype(np.float64)

    real, fake = images(0, 80), images(1, 80)
    inputs = RealismInputs(real, fake, features=features)
    figures, seconds = compute_realism(inputs, ["fid", "kid", "inception_prdc"])
    assert calls == [80, 80] and "inception_features" in seconds
    assert figures["fid"] == pytest.approx(fid_from_features(features(real), features(fake)))
    assert {"kid_mean", "kid_std", "inception_precision", "inception_recall"} <= set(figures)


def test_without_features_the_inception_metrics_are_skipped_and_the_rest_run():
    figures, _ = compute_realism(RealismInputs(images(0), images(1)))
    assert "fid" not in figures and {"swd", "pixel_precision", "ms_ssim_diversity_generated"} <= set(figures)


def test_unknown_names_and_double_registration_are_refused():
    with pytest.raises(MedganError, match="unknown metric 'lpips'.*fid, kid"):
        compute_realism(RealismInputs(images(0), images(1)), ["swd", "lpips"])
    with pytest.raises(ValueError, match="registered twice"):
        register_realism("swd")(lambda inputs: {})
    assert list(REALISM)[:3] == ["fid", "kid", "inception_prdc"]
