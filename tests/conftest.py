"""Small real files for tests, made with the libraries that read them in the wild."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image as PILImage
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def write_ct_slice(path: Path, pixels: np.ndarray, z: float, series_uid: str, instance: int, **tags) -> Path:
    """One CT slice (int16 stored values, slope 1, intercept -1024) at height ``z`` mm."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = tags.pop("StudyInstanceUID", generate_uid())
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "CT"
    ds.PatientName = tags.pop("PatientName", "Doe^Jane")
    ds.PatientID = tags.pop("PatientID", "PID-12345")
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [-100.0, -120.0, float(z)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.8, 0.7]
    ds.SliceThickness = 2.0
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.PixelData = pixels.astype(np.int16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def ct_series(tmp_path: Path) -> Path:
    """A folder of 6 CT slices (32x40) named in shuffled order; slice k holds HU = 10*k
    inside a square, -1000 (air) outside."""
    folder = tmp_path / "ct"
    uid = generate_uid()
    for order, k in enumerate([3, 0, 5, 1, 4, 2]):
        hu = np.full((32, 40), -1000.0)
        hu[8:24, 10:30] = 10.0 * k
        write_ct_slice(folder / f"img{order:02d}.dcm", hu + 1024, z=2.0 * k, series_uid=uid, instance=k + 1)
    return folder


@pytest.fixture
def nifti_volume(tmp_path: Path) -> Path:
    """A 20x24x16 RAS NIfTI volume (1.5 mm) with a bright ellipsoid."""
    i, j, k = np.meshgrid(np.arange(20), np.arange(24), np.arange(16), indexing="ij")
    data = (((i - 10) / 7) ** 2 + ((j - 12) / 9) ** 2 + ((k - 8) / 6) ** 2 < 1).astype(np.float32) * 500
    path = tmp_path / "head.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([1.5, 1.5, 1.5, 1.0])), path)
    return path


@pytest.fixture
def png_folder(tmp_path: Path) -> Path:
    """Two classes of 8-bit PNGs (24x24): class 'bright' and class 'dark', 3 each."""
    folder = tmp_path / "pngs"
    rng = np.random.default_rng(0)
    for label, level in (("dark", 40), ("bright", 200)):
        (folder / label).mkdir(parents=True)
        for n in range(3):
            pixels = np.clip(rng.normal(level, 10, (24, 24)), 0, 255).astype(np.uint8)
            PILImage.fromarray(pixels).save(folder / label / f"{label}{n}.png")
    return folder


@pytest.fixture
def medmnist_npz(tmp_path: Path) -> Path:
    """A MedMNIST-layout npz (like pneumoniamnist.npz): 28x28 uint8, labels (N, 1)."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 12), ("val", 4), ("test", 4)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 2, (n, 1), dtype=np.uint8)
    path = tmp_path / "pneumoniamnist.npz"
    np.savez_compressed(path, **arrays)
    return path
