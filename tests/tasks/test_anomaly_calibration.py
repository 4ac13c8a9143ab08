"""Conformal calibration of anomaly scores: the p-value and threshold rules on known values,
the false-positive rate they promise on fresh normals, the refusal with too few normals, and
the domain-shift warning."""

import numpy as np
import pytest

from medgan.errors import MedganError
from medgan.tasks.anomaly.calibration import Calibration, calibrate, check_false_positive_rate, check_uniform_p_values, needed_for


def test_p_values_and_threshold_follow_the_written_rules():
    cal = calibrate(np.arange(19, 0, -1.0), alpha=0.05)  # scores 1..19, given unsorted
    assert cal.threshold == 19.0  # rank ceil(20 * 0.95) = 19
    assert cal.p_values([19.5, 19.0, 0.0, 10.0]).tolist() == pytest.approx([1 / 20, 2 / 20, 1.0, 11 / 20])
    assert cal.flagged([19.5, 19.0]).tolist() == [True, False]
    # flagged exactly when p <= alpha, for any score
    s = np.linspace(-5, 25, 301)
    assert np.array_equal(cal.flagged(s), cal.p_values(s) <= cal.alpha)
    cal10 = cal.at(0.10)
    assert cal10.threshold == 18.0 and cal10.n == 19  # rank ceil(20 * 0.9) = 18
    again = Calibration.from_dict({**cal.to_dict(), "threshold": -1.0})  # an edited threshold is recomputed
    assert again.threshold == cal.threshold and np.array_equal(again.scores, cal.scores)


def test_too_few_normals_for_the_rate_are_refused_with_the_number_needed():
    assert needed_for(0.05) == 19 and needed_for(0.1) == 9 and needed_for(0.01) == 99
    with pytest.raises(MedganError, match="19 are needed"):
        calibrate(np.arange(18.0), alpha=0.05)
    calibrate(np.arange(19.0), alpha=0.05)
    with pytest.raises(MedganError, match="not finite"):
        calibrate(np.array([1.0, np.nan] * 20))
    with pytest.raises(MedganError, match=r"\(0, 1\)"):
        calibrate(np.arange(40.0), alpha=0.0)


def test_the_rate_holds_on_fresh_normals_and_a_shift_is_named():
    rng = np.random.default_rng(0)
    rates = []
    for _ in range(400):  # exchangeable normals: the flag rate is at most alpha on average
        cal = calibrate(rng.gamma(2.0, size=39), alpha=0.1)
        rates.append(cal.flagged(rng.gamma(2.0, size=200)).mean())
    assert 0.07 < np.mean(rates) <= 0.1 + 0.005  # exact value (40 - 36) / 40 = 0.1
    from scipy.stats import norm

    cal = calibrate(norm.ppf(np.arange(1, 100) / 100), alpha=0.05)  # a calibration set at the normals' quantiles
    check = check_false_positive_rate(cal, rng.normal(size=500))
    assert check.low <= 0.05 <= check.high + 0.02 and check.holds and check.n == 500
    assert check_uniform_p_values(cal, rng.normal(size=300)) is None  # same population: quiet
    shifted = check_uniform_p_values(cal, rng.normal(0.8, 1.0, size=300), where="site B/")
    assert shifted is not None and "site B/" in shifted and "medgan calibrate" in shifted
    assert not check_false_positive_rate(cal, rng.normal(1.5, 1.0, size=300)).holds
