"""The lesion simulator: lesions inside the region only, untouched pixels bit-identical, the
stated contrast, seeded per image, and bad settings refused."""

import numpy as np
import pytest

from medgan.datasets.brain_mri import load_brain_mri
from medgan.datasets.lesions import LesionConfig, simulate_lesions
from medgan.errors import MedganError


def test_lesions_lie_in_the_brain_with_the_stated_contrast_and_are_seeded_per_image():
    data = load_brain_mri("axial")
    pick = np.arange(60, 200, 10)
    images, regions = data.images[pick], data.masks[pick] > 0
    out, masks = simulate_lesions(images, regions, seed=3, config=LesionConfig(polarity="hypo", contrast=(0.4, 0.4), texture=0.0))
    assert masks.any(axis=(1, 2)).all()  # every slice got a lesion
    assert not (masks.astype(bool) & ~regions).any()  # never outside the brain
    changed = out != images
    assert not (changed & ~regions).any()
    assert np.array_equal(out[~changed], images[~changed])  # untouched pixels bit-identical
    inside = masks.astype(bool) & (images > 0)
    ratio = out[inside] / images[inside]
    assert np.median(ratio) == pytest.approx(0.6, abs=0.05)  # 40% darker where the lesion is at full strength
    assert (ratio < 1).all()
    # image i draws from (seed, i): the same image at the same index gets the same lesions, whatever follows it
    full, full_mask = simulate_lesions(images, regions, seed=3)
    head, head_mask = simulate_lesions(images[:5], regions[:5], seed=3)
    assert np.array_equal(head, full[:5]) and np.array_equal(head_mask, full_mask[:5])
    shifted, shifted_mask = simulate_lesions(images[4:], regions[4:], seed=3)
    assert not np.array_equal(shifted_mask[0], full_mask[4])  # the index is part of the seed
    again, again_mask = simulate_lesions(images, regions, seed=3)
    assert np.array_equal(again, full) and np.array_equal(again_mask, full_mask)
    assert not np.array_equal(simulate_lesions(images, regions, seed=4)[1], full_mask)
    bright, bright_mask = simulate_lesions(images, regions, seed=3, config=LesionConfig(polarity="hyper"))
    assert (bright[bright_mask > 0] > images[bright_mask > 0]).mean() > 0.95


def test_bad_lesion_settings_are_refused():
    with pytest.raises(MedganError, match="polarity"):
        LesionConfig(polarity="dark")
    with pytest.raises(MedganError, match="below 1"):
        LesionConfig(polarity="hypo", contrast=(0.5, 1.2))
    with pytest.raises(MedganError, match="must both be"):
        simulate_lesions(np.zeros((2, 8, 8)), np.zeros((2, 8, 9), bool))
