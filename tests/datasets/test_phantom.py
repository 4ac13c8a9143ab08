"""Phantoms are deterministic, plausible in HU, and lesions are exact ground truth."""

import numpy as np
import pytest

from medgan.datasets import make_phantom, phantom_set, load_embedded
from medgan.errors import MedganError


@pytest.mark.parametrize("kind", ["head", "torso"])
def test_same_seed_same_phantom_different_seed_different(kind):
    a, b = make_phantom(64, seed=3, kind=kind, lesions=2), make_phantom(64, seed=3, kind=kind, lesions=2)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.lesion_mask, b.lesion_mask)
    c = make_phantom(64, seed=4, kind=kind)
    assert not np.array_equal(a.clean, c.clean)


def test_set_image_i_independent_of_n():
    small = phantom_set(n=4, size=32, seed=7, lesion_fraction=0.5)
    big = phantom_set(n=8, size=32, seed=7, lesion_fraction=0.5)
    assert np.array_equal(small.images, big.images[:4])
    assert np.array_equal(small.masks, big.masks[:4])
    assert np.array_equal(small.labels, big.labels[:4])
    assert len({im.tobytes() for im in big.images}) == 8


def test_hu_ranges_plausible():
    head = make_phantom(64, seed=0, kind="head")
    names = head.tissue_names
    assert head.image.min() >= -1000 and head.image.max() > 500  # skull
    brain = head.clean[head.tissue == names.index("brain")]
    assert 15 < np.median(brain) < 50
    torso = make_phantom(64, seed=0, kind="torso")
    lung = torso.clean[torso.tissue == torso.tissue_names.index("lung")]
    assert lung.size > 0 and np.median(lung) < -500
    assert torso.image.max() > 500  # vertebra
    assert np.median(torso.clean[torso.tissue == torso.tissue_names.index("fat")]) < -50


@pytest.mark.parametrize("kind", ["head", "torso"])
def test_lesions_change_only_their_mask(kind):
    for seed in range(4):
        ph = make_phantom(64, seed=seed, kind=kind, lesions=2)
        assert ph.lesion_mask.sum() > 0
        changed = ph.image != ph.clean
        assert not changed[ph.lesion_mask == 0].any()
        assert changed[ph.lesion_mask == 1].any()
    plain = make_phantom(64, seed=0, kind=kind)
    assert plain.lesion_mask.sum() == 0 and np.array_equal(plain.image, plain.clean)
    # Lesions do not move the anatomy.
    assert np.array_equal(plain.clean, make_phantom(64, seed=0, kind=kind, lesions=3).clean)
    other = make_phantom(64, seed=0, kind=kind, lesions=2, lesion_seed=99)
    assert not np.array_equal(other.lesion_mask, make_phantom(64, seed=0, kind=kind, lesions=2).lesion_mask)


@pytest.mark.parametrize("size", [33, 128])
def test_any_size(size):
    ph = make_phantom(size, seed=1, kind="torso", lesions=1)
    for arr in (ph.image, ph.clean, ph.tissue, ph.lesion_mask):
        assert arr.shape == (size, size)
    assert ph.image.dtype == np.float32 and ph.tissue.dtype == np.uint8


def test_set_metadata_and_errors():
    s = load_embedded("phantom", n=6, size=32, kind="torso", lesion_fraction=1.0)
    assert s.images.shape == (6, 32, 32) and s.units == "HU" and s.name == "phantom"
    assert s.class_names == ["normal", "lesion"] and s.labels.tolist() == [1] * 6
    assert s.mask_names == ["background", "lesion"] and s.groups.tolist() == list(range(6))
    assert phantom_set(n=3, size=32, lesion_fraction=0.0).labels.tolist() == [0, 0, 0]
    with pytest.raises(MedganError, match="kind"):
        make_phantom(kind="knee")
    with pytest.raises(MedganError, match="brain-mri"):
        load_embedded("nope")
    with pytest.raises(MedganError, match="option"):
        load_embedded("phantom", colour=True)
