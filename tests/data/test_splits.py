import numpy as np
import pytest

from medgan.data.splits import split_by_group
from medgan.errors import MedganError


def test_groups_never_cross_splits_and_cover_everything():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(30), rng.integers(5, 40, 30))  # 30 patients, uneven slice counts
    splits = split_by_group(groups, (0.7, 0.15, 0.15), seed=3)
    seen = [set(groups[idx]) for idx in splits.values()]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    all_idx = np.sort(np.concatenate(list(splits.values())))
    np.testing.assert_array_equal(all_idx, np.arange(len(groups)))
    fractions = [len(idx) / len(groups) for idx in splits.values()]
    assert abs(fractions[0] - 0.7) < 0.1 and abs(fractions[1] - 0.15) < 0.08


def test_split_is_deterministic_for_a_seed():
    groups = np.repeat(np.arange(10), 3)
    a, b = split_by_group(groups, seed=5), split_by_group(groups, seed=5)
    c = split_by_group(groups, seed=6)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_too_few_groups_is_a_clear_error():
    with pytest.raises(MedganError, match="cannot fill 3 splits"):
        split_by_group(np.array([0, 0, 1, 1]), (0.8, 0.1, 0.1))
    two = split_by_group(np.array([0, 0, 1, 1]), (0.5, 0.5))
    assert set(two) == {"train", "val"}


def test_bad_fractions():
    with pytest.raises(MedganError, match="summing to 1"):
        split_by_group(np.arange(10), (0.5, 0.2, 0.1))
