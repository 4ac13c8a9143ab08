import numpy as np
import pytest

from medgan.data.geometry import fit_square, plane_axis, volume_to_slices
from medgan.errors import MedganError


def test_volume_to_slices_skips_empty_slices_along_any_axis():
    volume = np.zeros((10, 20, 30), dtype=np.float32)
    volume[3:7, 5:15, 5:25] = 100.0  # a block: slices 3..6 along axis 0
    slices, kept = volume_to_slices(volume, axis=0)
    assert list(kept) == [3, 4, 5, 6] and slices.shape == (4, 20, 30)
    slices, kept = volume_to_slices(volume, axis=2)
    assert list(kept) == list(range(5, 25)) and slices.shape == (20, 10, 20)
    np.testing.assert_array_equal(slices[0], volume[:, :, 5])


def test_plane_axis_from_orientation_codes():
    assert plane_axis(("S", "A", "R"), "axial") == 0
    assert plane_axis(("S", "A", "R"), "coronal") == 1
    assert plane_axis(("I", "P", "L"), "sagittal") == 2
    with pytest.raises(MedganError, match="no orientation"):
        plane_axis(None, "axial")
    with pytest.raises(MedganError, match="unknown plane"):
        plane_axis(("S", "A", "R"), "oblique")


def test_fit_square_pad_keeps_aspect_ratio_and_whole_image():
    image = np.ones((40, 80), dtype=np.float32) * 5
    out = fit_square(image, 64, mode="pad", fill=0.0)
    assert out.shape == (64, 64)
    # 80 -> 64 wide, 40 -> 32 high, centred: rows 16..47 are image, the rest padding
    np.testing.assert_allclose(out[16:48], 5.0, atol=1e-5)
    assert np.all(out[:16] == 0) and np.all(out[48:] == 0)


def test_fit_square_crop_and_stretch():
    image = np.arange(40 * 80, dtype=np.float32).reshape(40, 80)
    assert fit_square(image, 32, mode="crop").shape == (32, 32)
    assert fit_square(image, 32, mode="stretch").shape == (32, 32)
    same = fit_square(image, 40, mode="crop")  # short side already 40: centre crop only
    np.testing.assert_array_equal(same, image[:, 20:60])


def test_fit_square_labels_stay_labels():
    mask = np.zeros((30, 50), dtype=np.uint8)
    mask[10:20, 10:40] = 2
    mask[0:5, 0:5] = 1
    out = fit_square(mask, 64, labels=True)
    assert out.dtype == np.uint8 and set(np.unique(out)) == {0, 1, 2}


def test_fit_square_antialiases_when_shrinking():
    checker = (np.indices((64, 64)).sum(0) % 2).astype(np.float32)  # highest frequency
    out = fit_square(checker, 16)
    assert np.allclose(out, 0.5, atol=0.05)  # averaged, not aliased into stripes


def test_named_planes_are_shown_the_radiological_way():
    from medgan.data.geometry import orient_for_display

    # A volume stored (k, j, i) of a RAS+ grid: axis codes (S, A, R); markers at known places.
    vol = np.zeros((7, 6, 5))
    vol[3, 2, 4] = 1  # far patient-right
    vol[3, 5, 2] = 2  # most anterior
    vol[6, 2, 2] = 3  # most superior
    codes = ("S", "A", "R")
    axial = orient_for_display(vol, codes, "axial")[3]  # (H, W) = (A->P, R->L)
    assert axial[0, 2] == 2 and axial[3, 0] == 1  # anterior on top, right on the image's left
    coronal = orient_for_display(vol, codes, "coronal")[2]  # (S->I, R->L)
    assert coronal[0, 2] == 3 and coronal[3, 0] == 1
    sagittal = orient_for_display(vol, codes, "sagittal")[2]  # (S->I, A->P)
    assert sagittal[0, 3] == 3 and sagittal[3, 0] == 2
    # only flips and swaps: the same voxels
    assert sorted(orient_for_display(vol, codes, "coronal").ravel()) == sorted(vol.ravel())
