"""Writers: refuse existing output, never leave partial files, DICOM round trip and privacy."""

from __future__ import annotations

import os
import stat

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

import medgan
from medgan.errors import MedganError
from medgan.io import read_dicom, read_image, write_dicom, write_nifti, write_npz, write_png

WRITERS = {
    "png": lambda p, **kw: write_png(p.with_suffix(".png"), np.zeros((4, 4)), **kw),
    "nifti": lambda p, **kw: write_nifti(p.with_suffix(".nii.gz"), np.zeros((2, 4, 4)), **kw),
    "npz": lambda p, **kw: write_npz(p.with_suffix(".npz"), images=np.zeros((2, 4, 4)), **kw),
    "dicom": lambda p, **kw: write_dicom(p.with_suffix(".dcm"), np.zeros((4, 4)), **kw),
}


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_refuse_existing_unless_overwrite(tmp_path, kind):
    path = WRITERS[kind](tmp_path / "out")
    before = path.read_bytes()
    with pytest.raises(MedganError, match="already exists.*--overwrite"):
        WRITERS[kind](tmp_path / "out")
    assert path.read_bytes() == before
    WRITERS[kind](tmp_path / "out", overwrite=True)
    assert read_image(path) is not None


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_written_files_get_the_umask_mode(tmp_path, kind, umask, mode):
    """A colleague (or a PACS uploader running as another user) can read what medgan wrote:
    the temporary file's private 0600 must not survive the rename."""
    old = os.umask(umask)
    try:
        path = WRITERS[kind](tmp_path / "out")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_atomic_dir_gets_the_umask_mode(tmp_path):
    from medgan.io.output import atomic_dir

    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "series") as tmp:
            write_png(tmp / "a.png", np.zeros((4, 4)))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "series").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "series" / "a.png").stat().st_mode) == 0o644


# Where each writer hands the temporary file to its library, and which argument is the file.
FAILING_LIBRARY_CALLS = {
    "png": ("PIL.Image.Image.save", 1),  # (self, fp, ...)
    "nifti": ("medgan.io.nifti.nib.save", 1),  # (img, filename)
    "npz": ("medgan.io.arrays.np.savez_compressed", 0),  # (file object, **arrays)
    "dicom": ("medgan.io.dicom.pydicom.dcmwrite", 0),  # (filename, dataset)
}


@pytest.mark.parametrize("kind", sorted(FAILING_LIBRARY_CALLS))
def test_no_partial_file_when_write_fails(tmp_path, monkeypatch, kind):
    target, index = FAILING_LIBRARY_CALLS[kind]

    def write_half_then_fail(*args, **kwargs):
        dest = args[index]
        if hasattr(dest, "write"):
            dest.write(b"partial")
        else:
            with open(dest, "wb") as f:
                f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(target, write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        WRITERS[kind](tmp_path / "out")
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temporary file


def test_dicom_round_trip_hu(tmp_path, dicom_factory):
    hu = np.random.default_rng(0).integers(-1024, 3071, (8, 6)).astype(np.float32)
    write_dicom(tmp_path / "a.dcm", hu, modality="CT")
    back = read_dicom(tmp_path / "a.dcm")
    np.testing.assert_array_equal(back.array, hu)  # integer HU are stored exactly
    assert back.meta.units == "HU"

    smooth = np.linspace(-1000.25, 2000.75, 48, dtype=np.float32).reshape(8, 6)
    write_dicom(tmp_path / "b.dcm", smooth, modality="CT")
    np.testing.assert_allclose(read_dicom(tmp_path / "b.dcm").array, smooth, atol=3001 / 65535)


def test_dicom_volume_and_colour(tmp_path):
    vol = np.random.default_rng(1).normal(size=(3, 5, 4)).astype(np.float32) * 100
    write_dicom(tmp_path / "v.dcm", vol, rescale_to=(-500, 500))
    ds = pydicom.dcmread(tmp_path / "v.dcm")
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7.3" and ds.NumberOfFrames == 3
    np.testing.assert_allclose(read_dicom(tmp_path / "v.dcm").array, np.clip(vol, -500, 500), atol=1000 / 65535)

    rgb = np.zeros((4, 5, 3), np.float32)
    rgb[..., 1] = 1.0
    write_dicom(tmp_path / "c.dcm", rgb)
    back = read_dicom(tmp_path / "c.dcm")
    assert back.array.shape == (4, 5, 3) and back.array[..., 1].min() == 255 and back.array[..., 0].max() == 0


def test_shared_series_uid(tmp_path):
    uid = generate_uid()
    for i in range(2):
        write_dicom(tmp_path / f"s{i}.dcm", np.full((4, 4), i, np.float32), series_uid=uid, instance_number=i + 1)
    assert {pydicom.dcmread(tmp_path / f"s{i}.dcm").SeriesInstanceUID for i in range(2)} == {uid}
    with pytest.raises(MedganError, match="not a valid DICOM UID"):
        write_dicom(tmp_path / "x.dcm", np.zeros((4, 4)), series_uid="not-a-uid")


def _all_values(ds: pydicom.Dataset):
    """Every element of a dataset (recursing into sequences), as (keyword, text)."""
    for elem in ds.iterall():
        if elem.VR == "SQ":
            continue
        value = elem.value
        if isinstance(value, bytes):
            text = value.decode("latin-1")
        elif isinstance(value, (list, pydicom.multival.MultiValue)):
            text = "\\".join(str(v) for v in value)
        else:
            text = str(value)
        yield elem.keyword or str(elem.tag), text


def test_privacy_no_source_identifiers_survive(tmp_path, dicom_factory, patient_attrs):
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    source_path = dicom_factory(
        tmp_path / "patient.dcm",
        np.arange(64, dtype=np.int16).reshape(8, 8) - 1024,
        StudyInstanceUID=study_uid,
        SeriesInstanceUID=series_uid,
        FrameOfReferenceUID=frame_uid,
        PixelSpacing=[0.75, 0.5],
        SliceThickness=1.25,
        ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
        ImagePositionPatient=[-10, -20, 30],
        SeriesDescription="Jane Doe chest",
        RescaleSlope=1,
        RescaleIntercept=0,
        **patient_attrs,
    )
    source_ds = pydicom.dcmread(source_path)
    nested = pydicom.Dataset()
    nested.ReferencedSOPInstanceUID = source_ds.SOPInstanceUID
    source_ds.ReferencedStudySequence = [nested]
    source_ds.save_as(source_path, enforce_file_format=True)

    source = read_image(source_path)
    out = write_dicom(
        tmp_path / "synthetic.dcm", source.array + 1, source_meta=source.meta,
        description="synthetic CT", derived_from_model="dcgan-test",
    )
    written = pydicom.dcmread(out)

    secrets = [str(v) for v in patient_attrs.values()] + [
        study_uid, series_uid, frame_uid, str(source_ds.SOPInstanceUID), "Jane", "Doe", "Elsewhere", str(source_path),
    ]
    elements = list(_all_values(written.file_meta)) + list(_all_values(written))
    for keyword, text in elements:
        for secret in secrets:
            assert secret not in text, f"{keyword} leaks {secret!r}"
    raw = out.read_bytes()
    for secret in secrets:
        assert secret.encode() not in raw, f"raw file leaks {secret!r}"

    assert {"DERIVED", "SECONDARY"} <= set(written.ImageType)
    assert "Synthetic image generated by medgan" in written.ImageComments
    assert medgan.__version__ in written.DerivationDescription and "dcgan-test" in written.DerivationDescription
    assert "not a patient image" in written.DerivationDescription
    assert written.ConversionType == "SYN" and written.BurnedInAnnotation == "NO"
    assert written.PatientIdentityRemoved == "YES" and written.PatientName == "SYNTHETIC^MEDGAN"
    assert written.PatientBirthDate == "" and written.StudyDate == "" and written.AccessionNumber == ""
    assert "InstitutionName" not in written and "OtherPatientIDs" not in written and "FrameOfReferenceUID" not in written
    # geometry and modality are kept
    assert written.Modality == "CT"
    assert [float(v) for v in written.PixelSpacing] == [0.75, 0.5] and float(written.SliceThickness) == 1.25
    np.testing.assert_array_equal(read_dicom(out).array, source.array + 1)


def test_dicom_series_to_nifti_keeps_geometry(tmp_path, ct_series):
    folder, stored, _ = ct_series
    series = read_image(folder)
    write_nifti(tmp_path / "ct.nii.gz", series.array, meta=series.meta)
    back = read_image(tmp_path / "ct.nii.gz")
    np.testing.assert_array_equal(back.array, series.array)
    np.testing.assert_allclose(back.meta.affine, series.meta.affine, atol=1e-5)
    assert back.meta.orientation == series.meta.orientation
