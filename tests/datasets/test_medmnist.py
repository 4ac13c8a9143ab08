"""MedMNIST npz files are found, read and reported on without the medmnist package."""

import numpy as np
import pytest

from medgan.datasets import is_medmnist_name, load_medmnist, medmnist_file
from medgan.errors import MedganError


def _fake(path, n=5, rgb=False, size=28, **extra):
    rng = np.random.default_rng(0)
    shape = (n, size, size, 3) if rgb else (n, size, size)
    arrays = {f"{s}_images": rng.integers(0, 256, shape, dtype=np.uint8) for s in ("train", "val", "test")}
    arrays |= {f"{s}_labels": rng.integers(0, 2, (n, 1)).astype(np.uint8) for s in ("train", "val", "test")}
    arrays |= extra
    np.savez(path, **arrays)
    return arrays


def test_fake_pneumoniamnist_loads(tmp_path):
    arrays = _fake(tmp_path / "pneumoniamnist.npz")
    s = load_medmnist("pneumoniamnist", split="val", root=tmp_path, download=False)
    assert s.images.shape == (5, 28, 28) and s.images.dtype == np.float32
    assert np.array_equal(s.images, arrays["val_images"].astype(np.float32))
    assert s.labels.dtype == np.int64 and np.array_equal(s.labels, arrays["val_labels"][:, 0])
    assert s.class_names == ["normal", "pneumonia"] and s.groups is None
    assert s.value_range == (0, 255)


def test_rgb_channels_first_or_grey_and_sized_name(tmp_path):
    arrays = _fake(tmp_path / "bloodmnist_64.npz", rgb=True, size=64)
    s = load_medmnist("bloodmnist_64", root=tmp_path, download=False)
    assert s.images.shape == (5, 3, 64, 64)
    assert np.array_equal(s.images[:, 0], arrays["train_images"][..., 0].astype(np.float32))
    g = load_medmnist("bloodmnist", size=64, root=tmp_path, download=False, grey=True)
    assert g.images.shape == (5, 64, 64) and 0 <= g.images.min() and g.images.max() <= 255


def test_env_folder_is_searched(tmp_path, monkeypatch):
    _fake(tmp_path / "breastmnist.npz")
    monkeypatch.setenv("MEDGAN_DATA_DIR", str(tmp_path))
    assert medmnist_file("breastmnist", download=False) == tmp_path / "breastmnist.npz"


def test_missing_file_names_file_folder_and_url(tmp_path):
    with pytest.raises(MedganError) as err:
        load_medmnist("pneumoniamnist", size=128, root=tmp_path, download=False)
    text = str(err.value)
    assert "pneumoniamnist_128.npz" in text and str(tmp_path) in text
    assert "https://zenodo.org/records/10519652/files/pneumoniamnist_128.npz" in text
    assert "\n" not in text


def test_missing_keys_listed(tmp_path):
    np.savez(tmp_path / "pneumoniamnist.npz", images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(MedganError, match="found: images"):
        load_medmnist("pneumoniamnist", root=tmp_path, download=False)


def test_corrupt_file(tmp_path):
    (tmp_path / "pneumoniamnist.npz").write_bytes(b"not a zip")
    with pytest.raises(MedganError, match="delete it"):
        load_medmnist("pneumoniamnist", root=tmp_path, download=False)


def test_names():
    assert is_medmnist_name("pneumoniamnist") and is_medmnist_name("pneumoniamnist_64")
    assert not is_medmnist_name("pneumoniamnist_32") and not is_medmnist_name("brain-mri")
    with pytest.raises(MedganError, match="split"):
        load_medmnist("pneumoniamnist", split="dev", download=False)
