"""Small real files built in tmp_path with pydicom, nibabel, Pillow and NumPy."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

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


@pytest.fixture
def ct_series(tmp_path: Path) -> tuple[Path, np.ndarray, dict]:
    """A 4-slice axial CT series whose file names run opposite to the slice positions.

    Slice ``k`` (in position order, z = -50 + 2.5 k) holds stored value ``100 k + (row, col)``
    ramps; rescale slope 2, intercept -1024.
    """
    folder = tmp_path / "series"
    folder.mkdir()
    series_uid = generate_uid()
    study_uid = generate_uid()
    rng = np.random.default_rng(0)
    stored = rng.integers(0, 2000, size=(4, 6, 5)).astype(np.uint16)
    geometry = {"iop": [1, 0, 0, 0, 1, 0], "origin": np.array([-100.0, -80.0, -50.0]), "spacing": (0.8, 0.7), "dz": 2.5}
    for k in range(4):
        ipp = geometry["origin"] + np.array([0, 0, k * geometry["dz"]])
        make_dicom(
            folder / f"IM{3 - k:04d}.dcm",  # reverse naming order
            stored[k],
            SeriesInstanceUID=series_uid,
            StudyInstanceUID=study_uid,
            SeriesDescription="test series",
            InstanceNumber=4 - k,  # also reversed: position must win
            ImagePositionPatient=[float(v) for v in ipp],
            ImageOrientationPatient=geometry["iop"],
            PixelSpacing=list(geometry["spacing"]),
            SliceThickness=2.5,
            RescaleSlope=2,
            RescaleIntercept=-1024,
            WindowCenter=40,
            WindowWidth=400,
        )
    return folder, stored, geometry
