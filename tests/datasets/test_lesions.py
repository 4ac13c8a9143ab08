"""The lesion simulator: lesions inside the region only, untouched pixels bit-identical, the
stated contrast, seeded per image, and bad settings refused."""

import numpy as np
import pytest
from scipy import ndimage

from medgan.datasets.brain_mri import load_brain_mri
from medgan.datasets.lesions import KINDS, LesionConfig, simulate_lesions
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


@pytest.fixture(scope="module")
def slices():
    data = load_brain_mri("axial")
    pick = np.arange(60, 200, 10)
    return data.images[pick], data.masks[pick] > 0


@pytest.mark.parametrize("kind", ["texture", "mass", "missing"])
def test_kinds_that_keep_the_mean_change_only_the_lesion_and_are_seeded(slices, kind):
    images, regions = slices
    out, masks, kinds = simulate_lesions(images, regions, seed=3, config=LesionConfig(kind=kind), return_kinds=True)
    assert (kinds == kind).all()
    changed = out != images
    assert changed.any(axis=(1, 2)).all() and not (changed & ~regions).any()
    assert not (masks.astype(bool) & ~regions).any()
    # neither brighter nor darker on average: the mean over the changed pixels stays within a few percent
    ratio = np.array([out[i][changed[i]].mean() / images[i][changed[i]].mean() for i in range(len(images))])
    assert np.median(ratio) == pytest.approx(1.0, abs={"texture": 0.001, "mass": 0.02, "missing": 0.03}[kind])
    assert np.abs(ratio - 1).max() < {"texture": 0.001, "mass": 0.05, "missing": 0.1}[kind]
    # the image at index i gets the same lesion whatever follows it, and again on a second call
    head = simulate_lesions(images[:5], regions[:5], seed=3, config=LesionConfig(kind=kind))
    assert np.array_equal(head[0], out[:5]) and np.array_equal(head[1], masks[:5])
    again = simulate_lesions(images, regions, seed=3, config=LesionConfig(kind=kind))
    assert np.array_equal(again[0], out) and np.array_equal(again[1], masks)
    assert not np.array_equal(simulate_lesions(images, regions, seed=4, config=LesionConfig(kind=kind))[0], out)


def test_texture_changes_the_pattern_inside_its_mask_and_its_rim(slices):
    images, regions = slices
    out, masks = simulate_lesions(images, regions, seed=5, config=LesionConfig(kind="texture", contrast=(0.3, 0.3)))
    changed, inside = out != images, masks > 0
    assert changed[inside].mean() > 0.99  # the whole lesion is retextured
    near = np.stack([ndimage.distance_transform_edt(~m) for m in inside])
    assert near[changed].max() <= 1.0  # outside the mask only the 1-pixel rim (edge 1) changes
    relative = (out - images)[inside] / images[inside]
    assert relative.std() == pytest.approx(0.3, rel=0.35)  # a pattern of the stated relative spread


def test_a_mass_moves_structure_not_flat_tissue_and_its_mask_holds_the_large_changes(slices):
    flat = np.full((3, 48, 48), 100.0, np.float32)
    region = np.zeros(flat.shape, bool)
    region[:, 4:44, 4:44] = True
    out, masks = simulate_lesions(flat, region, seed=0, config=LesionConfig(kind="mass"))
    assert masks.any(axis=(1, 2)).all() and np.abs(out - flat).max() < 1e-3  # displacing flat tissue changes nothing
    images, regions = slices
    out, masks = simulate_lesions(images, regions, seed=3, config=LesionConfig(kind="mass"))
    large = np.abs(out - images) > 0.25 * images.clip(min=1)
    assert large.sum() > 50 and masks[large].mean() > 0.9  # edges moved by half a pixel or more are in the mask
    one = LesionConfig(kind="mass", count=(1, 1), radius=(4.0, 4.0), irregularity=0.0)
    for lesioned, image in zip(simulate_lesions(images, regions, seed=1, config=one)[0], images):
        rows, cols = np.nonzero(lesioned != image)
        assert np.ptp(rows) <= 20 and np.ptp(cols) <= 20  # nothing changes beyond 2.5 radii of the centre


def test_missing_structure_is_filled_from_the_surroundings_and_its_mask_is_what_was_removed():
    stripes = np.full((4, 48, 48), 100.0, np.float32)
    stripes[:, ::6] = 160.0  # a structure: one bright row in six
    region = np.zeros(stripes.shape, bool)
    region[:, 4:44, 4:44] = True
    out, masks = simulate_lesions(stripes, region, seed=0, config=LesionConfig(kind="missing", radius=(5.0, 8.0)))
    change = out - stripes
    assert masks.any(axis=(1, 2)).all()
    assert (np.nonzero(masks)[1] % 6 == 0).all()  # the truth is the removed bright rows only
    assert (change[masks > 0] < -0.5 * 0.25 * 110).all()  # at least half the weakest contrast of the ~110 background
    flat_rows = np.arange(48) % 6 != 0
    assert (np.abs(change[:, flat_rows]) < 0.5 * 0.25 * 110).all()  # flat tissue filled with about itself
    assert (change[:, flat_rows] > 0).any()  # ... though it does change a little (the fill is a mean)
    one = LesionConfig(kind="missing", count=(1, 1), radius=(4.0, 4.0), irregularity=0.0)
    for lesioned, image in zip(simulate_lesions(stripes, region, seed=1, config=one)[0], stripes):
        rows, cols = np.nonzero(lesioned != image)
        assert np.ptp(rows) <= 9 and np.ptp(cols) <= 9  # the hole and its rim only


def test_a_mix_takes_every_kind_in_turn_and_records_it(slices):
    images, regions = slices
    images, regions = np.concatenate([images, images[:1]]), np.concatenate([regions, regions[:1]])  # 15 slices
    out, masks, kinds = simulate_lesions(images, regions, seed=2, config=LesionConfig(kind="mix"), return_kinds=True)
    names, counts = np.unique(kinds, return_counts=True)
    assert sorted(names) == sorted(KINDS) and (counts == 3).all()  # even
    assert masks.any(axis=(1, 2))[kinds != "missing"].all()
    assert (out[kinds == "hyper"][masks[kinds == "hyper"] > 0] > images[kinds == "hyper"][masks[kinds == "hyper"] > 0]).mean() > 0.95
    assert (out[kinds == "hypo"][masks[kinds == "hypo"] > 0] < images[kinds == "hypo"][masks[kinds == "hypo"] > 0]).all()
    # a kind alone gives the image the same lesion as in the mix
    for kind in ("hyper", "mass"):
        i = np.flatnonzero(kinds == kind)
        alone = simulate_lesions(images, regions, seed=2, config=LesionConfig(kind=kind))
        assert np.array_equal(alone[0][i], out[i]) and np.array_equal(alone[1][i], masks[i])
    pair = simulate_lesions(images, regions, seed=2, config=LesionConfig(kind="texture,mass"), return_kinds=True)[2]
    assert set(pair) == {"texture", "mass"} and (pair[1:] != pair[:-1]).all()  # a list is taken in turn
    # the default records its lesions as intensity changes of either sign; a fixed polarity names it
    assert set(simulate_lesions(images, regions, seed=2, return_kinds=True)[2]) == {"intensity"}
    assert set(simulate_lesions(images, regions, seed=2, config=LesionConfig(polarity="hypo"), return_kinds=True)[2]) == {"hypo"}
    tiny = np.zeros((1, 8, 8), bool)
    assert simulate_lesions(np.ones((1, 8, 8)), tiny, return_kinds=True)[2][0] == "none"


def test_bad_kind_settings_are_refused():
    with pytest.raises(MedganError, match="kind 'blur'"):
        LesionConfig(kind="blur")
    with pytest.raises(MedganError, match="polarity"):
        LesionConfig(kind="mix", polarity="hypo")
    with pytest.raises(MedganError, match="below 1"):
        LesionConfig(kind="texture,hypo", contrast=(0.5, 1.2))
    with pytest.raises(MedganError, match="fold"):
        LesionConfig(kind="mass", mass=(0.5, 0.8))
