"""Format detection, folder listing and read_image's errors."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from PIL import Image as PILImage

from medgan.errors import MedganError, MedganWarning
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
    with pytest.warns(MedganWarning, match=r"data: skipped 1 file that is not a readable image \(fake\.dcm\)") as seen:
        found = [p.relative_to(mixed_folder).as_posix() for p in find_image_files(mixed_folder)]
    assert len(seen) == 1 and "notes.txt" not in str(seen[0].message)  # a text sidecar is no lost image
    assert found == ["a.png", "c.tiff", "ct.dcm", "sub/b.jpg", "sub/noext", "sub/v.nii", "v.nii.gz", "x.npy", "y.npz"]
    with pytest.warns(MedganWarning):
        flat = [p.name for p in find_image_files(mixed_folder, recursive=False)]
    assert flat == ["a.png", "c.tiff", "ct.dcm", "v.nii.gz", "x.npy", "y.npz"]
    with pytest.raises(MedganError, match="does not exist"):
        find_image_files(mixed_folder / "nope")


def test_skipped_files_are_named_and_counted(tmp_path):
    for n in range(3):
        PILImage.fromarray(np.full((8, 8), 50 * n, np.uint8)).save(tmp_path / f"good{n}.png")
    for n in range(7):
        (tmp_path / f"bad{n}.png").write_bytes(b"not a png at all " * 4)
    with pytest.warns(MedganWarning) as seen:
        assert len(find_image_files(tmp_path)) == 3
    message = str(seen[0].message)
    assert "skipped 7 files" in message and "bad0.png, bad1.png, bad2.png, bad3.png, bad4.png and 2 more" in message


def test_folder_source_names_its_skipped_file_on_one_line_of_the_cli(tmp_path):
    import subprocess
    import sys

    PILImage.fromarray(np.full((16, 16), 100, np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "scan2.dcm").write_bytes(b"\x00" * 500)
    result = subprocess.run([sys.executable, "-m", "medgan", "data", "show", str(tmp_path), "--out", str(tmp_path / "grid.png")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "scan2.dcm" in line]
    assert len(lines) == 1 and lines[0].startswith("medgan: warning: ") and "skipped 1 file" in lines[0]
    assert "1 image" in result.stdout


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
