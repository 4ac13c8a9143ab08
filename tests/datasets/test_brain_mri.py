"""The embedded brain-mri slices load with the documented layout."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from medgan.datasets import load_brain_mri, load_embedded
from medgan.errors import MedganError


def test_layout_labels_and_groups():
    s = load_brain_mri()
    n = len(s)
    assert s.images.shape == (n, 64, 64) and s.images.dtype == np.float32
    assert 0 <= s.images.min() and s.images.max() <= 255 and s.images.max() > 200
    assert s.value_range == (0, 255) and s.name == "brain-mri"
    assert s.class_names == ["axial", "coronal", "sagittal"]
    assert set(np.unique(s.labels)) == {0, 1, 2}
    assert s.mask_names == ["background", "grey matter", "white matter"]
    assert s.masks.shape == (n, 64, 64) and s.masks.dtype == np.uint8
    assert set(np.unique(s.groups)) == {0, 1}
    # Groups are the subject named in each source string.
    for g, src in zip(s.groups, s.sources):
        assert src.startswith("MNI152-2009c" if g == 0 else "Colin27")
    for subject in (0, 1):
        assert set(np.unique(s.labels[s.groups == subject])) == {0, 1, 2}
    mni = s.masks[s.groups == 0]
    assert set(np.unique(mni)) == {0, 1, 2}
    # Masks sit on the brain: tissue labels only where the image is not background.
    assert (s.images[s.masks > 0] > 0).mean() > 0.99
    assert s.extra["heads"] == 2 and "Fonov" in s.extra["attribution"]


def test_orientation_filter_and_no_masks():
    s = load_embedded("brain-mri", orientation="sagittal", with_masks=False)
    assert set(np.unique(s.labels)) == {2}
    assert s.masks is None and all(" sagittal " in src for src in s.sources)
    with pytest.raises(MedganError, match="axial"):
        load_brain_mri(orientation="oblique")


def test_builder_slices_radiologically():
    """The builder's slicing: patient right on the image left, anterior/superior up."""
    path = Path(__file__).parents[2] / "scripts" / "build_brain_mri.py"
    spec = importlib.util.spec_from_file_location("build_brain_mri", path)
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    vol = np.zeros((5, 6, 7))  # RAS+: x -> patient right, y -> anterior, z -> superior
    vol[4, 2, 3] = 1  # far right
    vol[2, 5, 3] = 2  # most anterior
    vol[2, 2, 6] = 3  # most superior
    axial = build.radiological(vol, "axial", 3)  # (y, x) rows anterior -> posterior
    assert axial.shape == (6, 5)
    assert axial[3, 0] == 1 and axial[0, 2] == 2  # right on the left, anterior on top
    coronal = build.radiological(vol, "coronal", 2)
    assert coronal[3, 0] == 1 and coronal[0, 2] == 3  # right on the left, superior on top
    sagittal = build.radiological(vol, "sagittal", 2)
    assert sagittal[3, 0] == 2 and sagittal[0, 3] == 3  # anterior on the left, superior on top


# --------------------------------------------------------------------------- the 128 set
@pytest.fixture(scope="module")
def both_sizes():
    return load_brain_mri(size=64), load_brain_mri(size=128)


def test_the_128_set_holds_the_64_sets_slices_labels_and_groups(both_sizes):
    small, large = both_sizes
    n = len(small)
    assert len(large) == n
    assert large.images.shape == (n, 128, 128) and large.images.dtype == np.float32
    assert large.masks.shape == (n, 128, 128) and large.masks.dtype == np.uint8
    # uint8 values, as the 64 loader returns them
    assert 0 <= large.images.min() and large.images.max() <= 255 and large.images.max() > 200
    assert np.array_equal(large.images, np.rint(large.images))
    assert large.value_range == small.value_range == (0, 255)
    # slice i is the same slice: orientation, subject and source string agree one by one
    assert np.array_equal(large.labels, small.labels) and np.array_equal(large.groups, small.groups)
    assert large.sources == small.sources
    assert large.class_names == small.class_names and large.mask_names == small.mask_names
    assert set(np.unique(large.masks)) == {0, 1, 2}
    assert large.extra == small.extra
    s = load_embedded("brain-mri", orientation="coronal", size=128, with_masks=False)
    assert s.images.shape[1:] == (128, 128) and set(np.unique(s.labels)) == {1} and s.masks is None


def test_the_128_images_are_the_64_images_sharper(both_sizes):
    """A 2x2 mean of a 128 slice is its 64 slice. Measured: mean absolute difference 0.72
    grey levels per image on average, 1.27 at worst, correlation >= 0.9991. The bounds
    below catch a wrong slice or crop: the neighbouring slice differs by 4.3 on average
    (correlation 0.989), the same slice shifted by one 64-pixel by 10.4."""
    small, large = both_sizes
    pooled = large.images.reshape(-1, 64, 2, 64, 2).mean(axis=(2, 4))  # (N, 64, 64)
    mad = np.abs(pooled - small.images).mean(axis=(1, 2))
    assert mad.mean() < 1.0 and mad.max() < 2.0
    a = pooled.reshape(len(pooled), -1) - pooled.mean(axis=(1, 2))[:, None]
    b = small.images.reshape(len(small), -1) - small.images.mean(axis=(1, 2))[:, None]
    corr = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))
    assert corr.min() > 0.998


def test_the_128_images_hold_detail_an_upsampled_64_set_lacks(both_sizes):
    """Detail inside each 2x2 block (mean |pixel - its block's mean|): 4.4 grey levels in
    the 128 set, 3.1 in the 64 set upsampled bilinearly by the source's resize, 0 when
    upsampled by repeating pixels. A 128 file made from the 64 one fails."""
    from medgan.data.geometry import fit_square

    def detail(images):  # (N, 128, 128) -> mean over the set
        blocks = images.reshape(-1, 64, 2, 64, 2)
        return float(np.abs(blocks - blocks.mean(axis=(2, 4), keepdims=True)).mean())

    small, large = both_sizes
    upsampled = np.stack([fit_square(image, 128) for image in small.images[::4]])
    assert detail(large.images[::4]) > 1.25 * detail(upsampled)


def test_the_128_masks_agree_with_the_64_masks(both_sizes):
    """The 2x2 majority label of a 128 mask against the 64 mask (both made from the same
    label volume, each at its own size). Measured: >= 94 % of the pixels of every slice
    agree; Dice over the set 0.936 (grey) and 0.946 (white). Most pixels are background,
    so the Dice per tissue is the meaningful check: the neighbouring slice's masks reach
    0.87 / 0.89, and grey and white swapped score below 0.1."""
    small, large = both_sizes
    blocks = large.masks.reshape(-1, 64, 2, 64, 2).transpose(0, 1, 3, 2, 4).reshape(-1, 64, 64, 4)
    majority = np.stack([(blocks == k).sum(-1) for k in range(3)], -1).argmax(-1)  # (N, 64, 64), ties to the lower label
    assert (majority == small.masks).mean(axis=(1, 2)).min() > 0.9
    for k in (1, 2):
        dice = 2 * ((majority == k) & (small.masks == k)).sum() / ((majority == k).sum() + (small.masks == k).sum())
        assert dice > 0.92, (small.mask_names[k], dice)


def test_only_embedded_sizes_load_and_the_source_size_picks_the_nearest_larger():
    from medgan.datasets.brain_mri import EMBEDDED_SIZES, stored_size

    assert EMBEDDED_SIZES == (64, 128)
    assert [stored_size(s) for s in (None, 16, 64, 65, 96, 128, 129, 256)] == [64, 64, 64, 128, 128, 128, 128, 128]
    with pytest.raises(MedganError, match="embedded at 64 and 128 px, not 96"):
        load_brain_mri(size=96)


@pytest.fixture
def fresh_cache():
    from medgan.datasets import brain_mri

    brain_mri._arrays.cache_clear()
    yield brain_mri
    brain_mri._arrays.cache_clear()


def test_a_missing_128_file_is_one_line_naming_the_fix(fresh_cache, monkeypatch, tmp_path, capsys):
    from medgan.cli import main

    monkeypatch.setitem(fresh_cache.DATA_FILES, 128, "brain_mri_128_absent.npz")
    with pytest.raises(MedganError, match=r"at 128 px is missing.*build_brain_mri.py --size 128"):
        load_brain_mri(size=128)
    assert len(load_brain_mri(size=64)) > 0  # the other size is untouched
    code = main(["data", "show", "brain-mri", "--size", "128", "--out", str(tmp_path / "grid.png")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "brain_mri_128_absent.npz" in err and "--size 128" in err
