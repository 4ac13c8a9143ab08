"""NumPy files: single arrays and the MedMNIST collection layout."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from medgan.errors import MedganError
from medgan.io import read_array, read_image, read_npz_collection, write_npz


def test_medmnist_npz(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 9, (10, 1)),
        "val_images": rng.integers(0, 256, (4, 28, 28, 3), dtype=np.uint8),
        "val_labels": rng.integers(0, 2, (4, 14)),
    }
    write_npz(tmp_path / "m.npz", **arrays)
    images, labels = read_npz_collection(tmp_path / "m.npz")
    np.testing.assert_array_equal(images, arrays["train_images"])
    assert labels.shape == (10,) and labels.dtype == np.int64
    np.testing.assert_array_equal(labels, arrays["train_labels"][:, 0])
    images, labels = read_npz_collection(tmp_path / "m.npz", split="val")
    assert images.shape == (4, 28, 28, 3) and labels.shape == (4, 14) and labels.dtype == np.int64


def test_plain_images_key_and_no_labels(tmp_path):
    np.savez(tmp_path / "p.npz", images=np.zeros((3, 8, 8), np.uint8))
    images, labels = read_npz_collection(tmp_path / "p.npz", split="test")
    assert images.shape == (3, 8, 8) and labels is None


def test_npz_missing_keys_error(tmp_path):
    np.savez(tmp_path / "bad.npz", x=np.zeros(3), y=np.ones(3))
    with pytest.raises(MedganError) as err:
        read_npz_collection(tmp_path / "bad.npz", split="train")
    message = str(err.value)
    assert "bad.npz" in message and "x, y" in message and "train_images" in message and "'images'" in message


def test_label_count_mismatch(tmp_path):
    np.savez(tmp_path / "m.npz", train_images=np.zeros((3, 4, 4), np.uint8), train_labels=np.zeros((2, 1)))
    with pytest.raises(MedganError, match="for 3 images"):
        read_npz_collection(tmp_path / "m.npz")


def test_npy_and_single_npz(tmp_path):
    vol = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    np.save(tmp_path / "v.npy", vol)
    image = read_image(tmp_path / "v.npy")
    assert image.array.shape == (2, 3, 4) and image.meta.dtype == "int16" and image.meta.format == "npy"
    np.savez(tmp_path / "one.npz", img=np.ones((5, 6)))
    assert read_image(tmp_path / "one.npz").array.shape == (5, 6)
    np.savez(tmp_path / "two.npz", a=np.ones((5, 6)), b=np.zeros((5, 6)))
    with pytest.raises(MedganError, match="2 arrays.*key="):
        read_array(tmp_path / "two.npz")
    assert read_array(tmp_path / "two.npz", key="b").array.max() == 0
    np.save(tmp_path / "rgb.npy", np.zeros((8, 9, 3), np.uint8))
    assert read_array(tmp_path / "rgb.npy").array.shape == (8, 9, 3)
    assert read_array(tmp_path / "rgb.npy", grey=True).array.shape == (8, 9)


def test_pickles_never_loaded(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(MedganError, match="pickled"):
        read_image(tmp_path / "obj.npy")


def test_nan_in_npy(tmp_path):
    arr = np.zeros((4, 4), np.float32)
    arr[0, :3] = np.nan
    np.save(tmp_path / "n.npy", arr)
    with pytest.raises(MedganError, match="3 non-finite"):
        read_image(tmp_path / "n.npy")


@pytest.mark.parametrize("shape", [(5, 8, 9), (5, 1, 8, 9), (5, 8, 9, 1)])
def test_npz_stack_with_a_singleton_channel_axis(tmp_path, shape):
    stack = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    np.savez(tmp_path / "s.npz", images=stack, labels=np.arange(5) % 2)
    images, labels = read_npz_collection(tmp_path / "s.npz")
    assert images.shape == (5, 8, 9)
    np.testing.assert_array_equal(images, stack.reshape(5, 8, 9))


def test_npz_channels_first_colour_stack(tmp_path):
    stack = np.random.default_rng(0).integers(0, 255, (4, 3, 8, 9), dtype=np.uint8)
    np.savez(tmp_path / "c.npz", images=stack)
    images, _ = read_npz_collection(tmp_path / "c.npz")
    np.testing.assert_array_equal(images, np.moveaxis(stack, 1, -1))  # (N, H, W, 3)


def test_npy_stack_in_the_pytorch_layout(tmp_path):
    stack = np.random.default_rng(0).random((3, 1, 8, 9)).astype(np.float32)
    np.save(tmp_path / "s.npy", stack)
    np.testing.assert_array_equal(read_image(tmp_path / "s.npy").array, stack[:, 0])


@pytest.mark.parametrize("shape", [(0, 8, 8), (0,), (3, 0, 8)])
def test_arrays_with_no_images_are_refused(tmp_path, shape):
    np.save(tmp_path / "empty.npy", np.zeros(shape, np.float32))
    with pytest.raises(MedganError, match="empty.npy.*holds no images"):
        read_image(tmp_path / "empty.npy")
    np.savez(tmp_path / "empty.npz", images=np.zeros(shape if len(shape) == 3 else (0, 4, 4), np.uint8))
    with pytest.raises(MedganError, match="empty.npz.*holds no images"):
        read_npz_collection(tmp_path / "empty.npz")


def test_headers_are_checked_without_refusing_ordinary_layouts(tmp_path):
    """Fortran order, the version 2.0 header, compressed archives and big-endian data still read
    (their headers pass the size check of medgan.io.limits before the data are loaded)."""
    volume = np.asfortranarray(np.arange(60, dtype=">i2").reshape(3, 4, 5))
    np.save(tmp_path / "f.npy", volume)
    np.testing.assert_array_equal(read_image(tmp_path / "f.npy").array, volume)
    with open(tmp_path / "v2.npy", "wb") as f:
        np.lib.format.write_array(f, volume, version=(2, 0))
    np.testing.assert_array_equal(read_image(tmp_path / "v2.npy").array, volume)
    write_npz(tmp_path / "c.npz", train_images=np.ones((2, 5, 6), np.uint8), train_labels=np.arange(2))
    images, labels = read_npz_collection(tmp_path / "c.npz")
    assert images.shape == (2, 5, 6) and labels.tolist() == [0, 1]


def test_an_npz_member_shorter_than_its_header_is_refused_before_loading(tmp_path):
    np.savez(tmp_path / "m.npz", train_images=np.zeros((4, 8, 8), np.uint8))
    with zipfile.ZipFile(tmp_path / "m.npz") as archive:
        data = archive.read("train_images.npy")
    with zipfile.ZipFile(tmp_path / "cut.npz", "w") as archive:
        archive.writestr("train_images.npy", data[:-100])
    with pytest.raises(MedganError, match=r"cut.npz: declares array 'train_images' of 4 x 8 x 8 .* holds only .*truncated"):
        read_npz_collection(tmp_path / "cut.npz")
