"""Small real files for tests, made with the libraries that read them in the wild."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Callable, NoReturn

import nibabel as nib
import numpy as np
import pytest
from PIL import Image as PILImage
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


# Under CI a missing test dependency fails the run: a reference library that is absent must
# never hide a wrong metric behind a skip. On a workstation the test is skipped with the
# reason, which pytest lists (-rs in pyproject).
CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _missing(reason: str) -> NoReturn:
    if CI:
        pytest.fail(f"{reason} (a test dependency is required under CI=true)", pytrace=False)
    pytest.skip(reason)


class Requirements:
    """What a test needs that is not medgan: ``require("monai.metrics")`` imports a reference
    library, ``require.missing(reason)`` reports any other absent dependency; both skip on a
    workstation and fail under ``CI=true``."""

    def __call__(self, module: str):
        try:
            return importlib.import_module(module)
        except ImportError as error:
            _missing(f"reference library {module} is not installed ({error}); pip install -e '.[test]'")

    missing = staticmethod(_missing)


@pytest.fixture(scope="session")
def require() -> Requirements:
    return Requirements()


PATIENT = {
    "PatientName": "Doe^Jane^Q",
    "PatientID": "PID-7781234",
    "PatientBirthDate": "19610417",
    "PatientSex": "F",
    "PatientAge": "062Y",
    "PatientAddress": "12 Harbour Road, Springfield",
    "OtherPatientIDs": "ALT-99812",
    "InstitutionName": "St Elsewhere General Hospital",
    "InstitutionAddress": "1 Hospital Way",
    "ReferringPhysicianName": "House^Gregory",
    "PerformingPhysicianName": "Wilson^James",
    "OperatorsName": "Cuddy^Lisa",
    "AccessionNumber": "ACC20230417X",
    "StudyDate": "20230417",
    "StudyTime": "101530",
    "SeriesDate": "20230418",
    "AcquisitionDate": "20230419",
    "StudyID": "STUDY-5521",
    "StudyDescription": "CHEST CT FOR JANE",
    "StationName": "CTSCANNER07",
    "DeviceSerialNumber": "SN-00042-XYZ",
}


def make_dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    modality: str = "CT",
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    sop_class: str = CTImageStorage,
    **attrs: Any,
) -> Path:
    """Write a minimal valid DICOM image file holding ``pixels`` ((H, W), (F, H, W) or (H, W, 3) uint8)."""
    pixels = np.asarray(pixels)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = attrs.pop("StudyInstanceUID", generate_uid())
    ds.SeriesInstanceUID = attrs.pop("SeriesInstanceUID", generate_uid())
    ds.Modality = modality
    colour = pixels.ndim == 3 and pixels.shape[-1] == 3
    if colour:
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    else:
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    if pixels.ndim == 3 and not colour:
        ds.NumberOfFrames = pixels.shape[0]
    ds.Rows, ds.Columns = (pixels.shape[:2] if colour else pixels.shape[-2:])
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits_stored or bits
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.PixelData = pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def patient_attrs() -> dict[str, str]:
    """Identifying attributes of a fictitious patient (for the privacy tests)."""
    return dict(PATIENT)


@pytest.fixture
def dicom_factory() -> Callable[..., Path]:
    return make_dicom


@pytest.fixture(autouse=True)
def _private_feature_cache(tmp_path_factory, monkeypatch):
    """Tests (and the subprocesses they start) cache Inception features in a temporary
    folder, never in the user's ~/.cache."""
    monkeypatch.setenv("MEDGAN_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "feature-cache"))


def write_ct_slice(path: Path, hu: np.ndarray, z: float, series_uid: str, instance: int, study_uid: str | None = None,
                   frame_of_reference: str | None = None) -> Path:
    """One CT slice at height ``z`` mm: int16 stored values with intercept -1024."""
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {} if frame_of_reference is None else {"FrameOfReferenceUID": frame_of_reference}
    return make_dicom(
        path, (hu + 1024).astype(np.int16), SeriesInstanceUID=series_uid, StudyInstanceUID=study_uid or generate_uid(),
        InstanceNumber=instance,
        ImagePositionPatient=[-100.0, -120.0, float(z)], ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
        PixelSpacing=[0.8, 0.7], SliceThickness=2.0, RescaleSlope=1, RescaleIntercept=-1024, **PATIENT, **extra,
    )


@pytest.fixture(scope="session")
def ct_slice_writer() -> Callable[..., Path]:
    """:func:`write_ct_slice` for tests in other folders (``import conftest`` is ambiguous there)."""
    return write_ct_slice


@pytest.fixture
def ct_folder(tmp_path: Path) -> Path:
    """A folder of 6 CT slices (32x40) named in shuffled order; slice k holds HU = 10*k
    inside a square, -1000 (air) outside."""
    folder = tmp_path / "ct"
    uid, study, frame = generate_uid(), generate_uid(), generate_uid()
    for order, k in enumerate([3, 0, 5, 1, 4, 2]):
        hu = np.full((32, 40), -1000.0)
        hu[8:24, 10:30] = 10.0 * k
        write_ct_slice(folder / f"img{order:02d}.dcm", hu, z=2.0 * k, series_uid=uid, instance=k + 1, study_uid=study,
                       frame_of_reference=frame)
    return folder


@pytest.fixture
def study_folder(tmp_path):
    """A PACS-style study export: two series of different sizes, files side by side in one folder."""
    import pydicom

    folder, study = tmp_path / "study", generate_uid()
    for s, (n, size, description) in enumerate([(3, (32, 32), "AX SOFT"), (4, (48, 48), "COR BONE")]):
        uid = generate_uid()
        for k in range(n):
            hu = np.full(size, -1000.0)
            hu[8:20, 8:20] = 40.0 + s
            path = write_ct_slice(folder / f"IM{s}{k:03d}", hu, z=2.0 * k, series_uid=uid, instance=k + 1, study_uid=study)
            ds = pydicom.dcmread(path)
            ds.SeriesNumber, ds.SeriesDescription = s + 2, description
            ds.save_as(path)
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


@pytest.fixture
def squares(tmp_path: Path) -> tuple[Path, Path]:
    """16 PNG images (32x32) of bright squares on noise, masks 0/255 in a folder of their own."""
    rng = np.random.default_rng(0)
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for i in range(16):
        side, y, x = rng.integers(6, 14), rng.integers(0, 16), rng.integers(0, 16)
        m = np.zeros((32, 32), np.uint8)
        m[y : y + side, x : x + side] = 255
        pixels = np.clip(rng.normal(60, 15, (32, 32)) + (m > 0) * 120, 0, 255).astype(np.uint8)
        PILImage.fromarray(pixels).save(images / f"case{i:02d}.png")
        PILImage.fromarray(m).save(masks / f"case{i:02d}.png")
    return images, masks
