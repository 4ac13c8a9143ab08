"""Small real files built in tmp_path with pydicom, nibabel, Pillow and NumPy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import generate_uid

@pytest.fixture
def ct_series(tmp_path: Path, dicom_factory) -> tuple[Path, np.ndarray, dict]:
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
        dicom_factory(
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
