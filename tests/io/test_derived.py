"""Derived DICOM: a new series of the same patient and study, pixels in the source's units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

import medgan
from medgan.errors import MedganError
from medgan.io import read_dicom
from medgan.io.derived import derived_series_uid, write_derived_dicom

SPACING = (0.8, 0.7)  # (row spacing, column spacing)
IPP = (-100.0, -120.0, 35.0)


@pytest.fixture
def ct_source(tmp_path: Path, dicom_factory, patient_attrs) -> tuple[Path, np.ndarray]:
    """One 12x10 CT slice with patient data, a private tag and an overlay; uint16, intercept -1024."""
    hu = np.arange(120, dtype=np.float64).reshape(12, 10) * 20 - 1000  # -1000 .. 1380
    path = dicom_factory(
        tmp_path / "src.dcm", (hu + 1024).astype(np.uint16), SeriesInstanceUID=generate_uid(), InstanceNumber=7,
        SeriesNumber=3, SeriesDescription="THORAX 1.0", ImageType=["ORIGINAL", "PRIMARY", "AXIAL"],
        ImagePositionPatient=list(IPP), ImageOrientationPatient=[1, 0, 0, 0, 1, 0], PixelSpacing=list(SPACING),
        SliceThickness=1.0, RescaleSlope=1, RescaleIntercept=-1024, WindowCenter=40, WindowWidth=400,
        FrameOfReferenceUID=generate_uid(), **patient_attrs,
    )
    ds = pydicom.dcmread(path)
    ds.private_block(0x0029, "ACME 1.0", create=True).add_new(0x01, "LO", "vendor secret")
    ds.add_new(0x60000010, "US", 12)  # an overlay's rows
    ds.save_as(path, enforce_file_format=True)
    return path, hu


def _write(tmp_path, source_path, array, **kw):
    args = {"series_uid": derived_series_uid(), "series_number": 1003, "description": "Denoised", "model_name": "unet-test step 500"}
    args.update(kw)
    return write_derived_dicom(tmp_path / "out.dcm", array, pydicom.dcmread(source_path), **args)


def test_same_patient_and_study_new_series_and_instance(tmp_path, ct_source, patient_attrs):
    source_path, hu = ct_source
    uid = derived_series_uid()
    out = _write(tmp_path, source_path, hu, series_uid=uid)
    src, ds = pydicom.dcmread(source_path), pydicom.dcmread(out)

    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "StudyInstanceUID", "StudyDate", "AccessionNumber", "FrameOfReferenceUID", "Modality"):
        assert str(ds[keyword].value) == str(src[keyword].value), keyword
    assert ds.SeriesInstanceUID == uid != src.SeriesInstanceUID
    assert ds.SeriesNumber == 1003 and ds.InstanceNumber == 7
    assert ds.SOPInstanceUID != src.SOPInstanceUID
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.SOPClassUID == src.SOPClassUID == ds.file_meta.MediaStorageSOPClassUID
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    # Marked as derived, by whom and with what.
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY", "AXIAL"]
    assert ds.DerivationDescription == f"Denoised by medgan {medgan.__version__} model unet-test step 500"
    assert ds.SeriesDescription == "THORAX 1.0 [medgan]"
    assert "BurnedInAnnotation" not in ds  # the source does not say: neither does its derivation
    # Vendor data and overlays describe the source's pixels: gone.
    assert not any(elem.tag.is_private for elem in ds.iterall())
    assert not any(elem.tag.group == 0x6000 for elem in ds)
    # Pixels: CT in HU, same stored representation, window kept.
    assert ds.PhotometricInterpretation == "MONOCHROME2"
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 16, 15, 0)
    assert float(ds.RescaleIntercept) == -1024 and float(ds.RescaleSlope) == 1
    assert float(ds.WindowCenter) == 40 and float(ds.WindowWidth) == 400
    np.testing.assert_array_equal(read_dicom(out).array, hu)
    np.testing.assert_array_equal(ds.pixel_array, src.pixel_array)  # identity -> identical stored values
    assert [float(v) for v in ds.ImagePositionPatient] == list(IPP)


@pytest.mark.parametrize("burned, faces", [("YES", "YES"), ("YES", "NO"), ("NO", "YES"), ("NO", "NO")])
def test_burned_in_text_and_faces_are_the_sources(tmp_path, ct_source, burned, faces):
    source_path, hu = ct_source
    ds = pydicom.dcmread(source_path)
    ds.BurnedInAnnotation, ds.RecognizableVisualFeatures = burned, faces
    ds.save_as(source_path)
    out = pydicom.dcmread(_write(tmp_path, source_path, hu))
    assert (out.BurnedInAnnotation, out.RecognizableVisualFeatures) == (burned, faces)


def test_values_rounded_and_clipped_to_stored_range(tmp_path, ct_source):
    source_path, hu = ct_source
    values = hu + 0.4
    values[0, 0], values[0, 1], values[0, 2] = -3000.0, 70000.0, 12.6  # below/above uint16 + intercept, fractional
    back = read_dicom(_write(tmp_path, source_path, values)).array
    assert back[0, 0] == -1024 and back[0, 1] == 65535 - 1024 and back[0, 2] == 13
    np.testing.assert_array_equal(back[1:], hu[1:])


def test_signed_source_stays_signed(tmp_path, dicom_factory):
    hu = np.linspace(-3024, 3000, 12 * 10).reshape(12, 10).round()
    path = dicom_factory(tmp_path / "s.dcm", hu.astype(np.int16), RescaleSlope=1, RescaleIntercept=0)
    out = _write(tmp_path, path, hu)
    ds = pydicom.dcmread(out)
    assert ds.PixelRepresentation == 1
    np.testing.assert_array_equal(read_dicom(out).array, hu)


def test_monochrome1_source_written_as_monochrome2(tmp_path, dicom_factory):
    raw = np.arange(120, dtype=np.uint16).reshape(12, 10) * 30
    path = dicom_factory(tmp_path / "cr.dcm", raw, modality="CR", photometric="MONOCHROME1", bits_stored=12,
                         sop_class="1.2.840.10008.5.1.4.1.1.1", WindowCenter=1000, WindowWidth=800)
    values = read_dicom(path).array  # inverted: 4095 - raw
    out = _write(tmp_path, path, values)
    ds = pydicom.dcmread(out)
    assert ds.PhotometricInterpretation == "MONOCHROME2"
    np.testing.assert_array_equal(read_dicom(out).array, values)
    assert float(ds.WindowCenter) == 4095 - 1000  # the window follows the inversion


def test_super_resolution_geometry(tmp_path, ct_source):
    source_path, hu = ct_source
    up = np.kron(hu, np.ones((2, 2)))  # (24, 20)
    ds = pydicom.dcmread(_write(tmp_path, source_path, up, scale=2))
    assert (ds.Rows, ds.Columns) == (24, 20)
    new_spacing = [float(v) for v in ds.PixelSpacing]
    np.testing.assert_allclose(new_spacing, [SPACING[0] / 2, SPACING[1] / 2])
    # IPP' = IPP + (-0.5 + 0.5/s) * (col spacing * row direction + row spacing * column direction)
    expected = np.array(IPP) + (-0.5 + 0.5 / 2) * np.array([SPACING[1], SPACING[0], 0.0])
    np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], expected, atol=1e-6)
    # Same field of view: the outer edge of the first pixel does not move.
    old_edge = np.array(IPP) - 0.5 * np.array([SPACING[1], SPACING[0], 0])
    new_edge = expected - 0.5 * np.array([new_spacing[1], new_spacing[0], 0])
    np.testing.assert_allclose(new_edge, old_edge, atol=1e-6)
    np.testing.assert_array_equal(read_dicom(tmp_path / "out.dcm").array, up)


def test_multiframe_source_refused_with_remedy(tmp_path, dicom_factory):
    path = dicom_factory(tmp_path / "mf.dcm", np.zeros((3, 4, 4), np.uint16))
    with pytest.raises(MedganError, match="multi-frame.*convert it to single-frame"):
        _write(tmp_path, path, np.zeros((4, 4)))
    assert not (tmp_path / "out.dcm").exists()


def test_wrong_shape_and_existing_output_refused(tmp_path, ct_source):
    source_path, hu = ct_source
    with pytest.raises(MedganError, match="does not match the source"):
        _write(tmp_path, source_path, hu[:, :5])
    _write(tmp_path, source_path, hu)
    with pytest.raises(MedganError, match="already exists"):
        _write(tmp_path, source_path, hu)
    _write(tmp_path, source_path, hu, overwrite=True)


def test_derived_series_uid_is_fresh_and_valid():
    a, b = derived_series_uid(), derived_series_uid()
    assert a != b and len(a) <= 64 and all(part.isdigit() for part in a.split("."))
