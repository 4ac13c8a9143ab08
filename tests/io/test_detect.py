"""Format detection, folder listing and read_image's errors."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from PIL import Image as PILImage

from medgan.errors import MedganError
from medgan.io import detect_format, find_image_files, read_image


@pytest.fixture
def mixed_folder(tmp_path, dicom_factory):
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    dicom_factory(root / "ct.dcm", np.zeros((2, 2), np.uint16))
    dicom_factory(root / "sub" / "noext", np.zeros((2, 2), np.uint16))
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)), root / "v.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)), root / "sub" / "v.nii")
    PILImage.fromarray(np.zeros((2, 2), np.uint8)).save(root / "a.png")
    PILImage.fromarray(np.zeros((2, 2), np.uint8)).save(root / "sub" / "b.jpg")
    PILImage.fromarray(np.zeros((2, 2), np.uint16)).save(root / "c.tiff")
    np.save(root / "x.npy", np.zeros((2, 2)))
    np.savez(root / "y.npz", a=np.zeros((2, 2)))
    (root / "notes.txt").write_text("hello")
    (root / "fake.dcm").write_bytes(b"\x00" * 300)
    PILImage.fromarray(np.zeros((2, 2), np.uint8)).save(root / ".hidden" / "h.png")
    PILImage.fromarray(np.zeros((2, 2), np.uint8)).save(root / ".dot.png")
    return root


def test_detect_format(mixed_folder):
    root = mixed_folder
    expected = {
        "ct.dcm": "dicom", "sub/noext": "dicom", "v.nii.gz": "nifti", "sub/v.nii": "nifti", "a.png": "png",
        "sub/b.jpg": "jpeg", "c.tiff": "tiff", "x.npy": "npy", "y.npz": "npz", "notes.txt": None, "fake.dcm": None,
    }
    for name, fmt in expected.items():
        assert detect_format(root / name) == fmt, name
    assert detect_format(root / "missing.png") is None and detect_format(root) is None


def test_detect_by_content_not_name(tmp_path):
    PILImage.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "x.png")
    (tmp_path / "x.png").rename(tmp_path / "really_png.jpg")
    assert detect_format(tmp_path / "really_png.jpg") == "png"


def test_find_image_files(mixed_folder):
    found = [p.relative_to(mixed_folder).as_posix() for p in find_image_files(mixed_folder)]
    assert found == ["a.png", "c.tiff", "ct.dcm", "sub/b.jpg", "sub/noext", "sub/v.nii", "v.nii.gz", "x.npy", "y.npz"]
    flat = [p.name for p in find_image_files(mixed_folder, recursive=False)]
    assert flat == ["a.png", "c.tiff", "ct.dcm", "v.nii.gz", "x.npy", "y.npz"]
    with pytest.raises(MedganError, match="does not exist"):
        find_image_files(mixed_folder / "nope")


def test_read_image_errors(tmp_path, mixed_folder):
    with pytest.raises(MedganError, match="does not exist") as err:
        read_image(tmp_path / "nowhere.dcm")
    assert "nowhere.dcm" in str(err.value)
    with pytest.raises(MedganError, match=r"not a medical image file \(DICOM, NIfTI, PNG/JPEG/TIFF, NPY/NPZ\)"):
        read_image(mixed_folder / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MedganError, match="empty"):
        read_image(tmp_path / "empty")
    (tmp_path / "pngs").mkdir()
    PILImage.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "pngs" / "a.png")
    with pytest.raises(MedganError, match="no DICOM"):
        read_image(tmp_path / "pngs")


def test_messages_are_one_line(tmp_path):
    try:
        read_image(tmp_path / "a\nb")
    except MedganError as err:
        assert "\n" not in str(err)
