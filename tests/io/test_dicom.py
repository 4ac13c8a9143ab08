"""DICOM reading: units, inversion, signedness, multi-frame, series order and geometry, codecs."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import JPEGLSLossless, RLELossless, generate_uid

from medgan.errors import MedganError
from medgan.io import read_dicom, read_dicom_series, read_image
from tests.conftest import make_dicom, write_ct_slice


def test_ct_rescale_to_hu_exact(tmp_path, dicom_factory):
    stored = np.array([[0, 1, 1024], [2048, 4095, 7]], dtype=np.uint16)
    path = dicom_factory(tmp_path / "ct.dcm", stored, RescaleSlope=1, RescaleIntercept=-1024, WindowCenter=40, WindowWidth=400)
    image = read_image(path)
    np.testing.assert_array_equal(image.array, stored.astype(np.float32) - 1024)
    assert image.array.dtype == np.float32
    assert image.meta.units == "HU" and image.meta.modality == "CT" and image.meta.format == "dicom"
    assert image.meta.dtype == "uint16"
    assert image.meta.value_range == (-1024.0, 3071.0)
    assert image.meta.extra["window_center"] == 40 and image.meta.extra["window_width"] == 400


def test_signed_16bit(tmp_path, dicom_factory):
    stored = np.array([[-2000, -1, 0], [1, 300, 32767]], dtype=np.int16)
    image = read_dicom(dicom_factory(tmp_path / "s.dcm", stored, RescaleSlope=0.5, RescaleIntercept=10))
    np.testing.assert_array_equal(image.array, stored * 0.5 + 10)
    assert image.meta.dtype == "int16"


def test_8bit_unsigned(tmp_path, dicom_factory):
    stored = np.array([[0, 128], [255, 3]], dtype=np.uint8)
    image = read_dicom(dicom_factory(tmp_path / "u8.dcm", stored, modality="OT"))
    np.testing.assert_array_equal(image.array, stored)
    assert image.meta.dtype == "uint8" and image.meta.units is None


def test_monochrome1_inverted_within_stored_range(tmp_path, dicom_factory):
    stored = np.array([[0, 1], [4000, 4095]], dtype=np.uint16)
    path = dicom_factory(tmp_path / "cr.dcm", stored, modality="CR", photometric="MONOCHROME1", bits_stored=12)
    image = read_dicom(path)
    np.testing.assert_array_equal(image.array, 4095 - stored.astype(np.float32))  # bright = high


def test_multiframe_volume(tmp_path, dicom_factory):
    frames = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
    image = read_dicom(dicom_factory(tmp_path / "mf.dcm", frames, modality="MR"))
    assert image.array.shape == (3, 4, 5)
    np.testing.assert_array_equal(image.array, frames)
    assert image.is_volume and image.meta.extra["n_frames"] == 3


def test_rgb_and_grey(tmp_path, dicom_factory):
    rgb = np.zeros((4, 5, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 100, 200, 50
    path = dicom_factory(tmp_path / "rgb.dcm", rgb, modality="XC", sop_class="1.2.840.10008.5.1.4.1.1.7")
    colour = read_image(path)
    assert colour.array.shape == (4, 5, 3)
    np.testing.assert_array_equal(colour.array[0, 0], [100, 200, 50])
    grey = read_image(path, grey=True)
    assert grey.array.shape == (4, 5)
    np.testing.assert_allclose(grey.array, 0.299 * 100 + 0.587 * 200 + 0.114 * 50, rtol=1e-6)


def test_series_sorted_by_position_not_name(ct_series):
    folder, stored, _ = ct_series
    image = read_image(folder)  # a folder of DICOM files -> series
    assert image.array.shape == (4, 6, 5)
    np.testing.assert_array_equal(image.array, stored * 2.0 - 1024)
    assert image.meta.spacing == pytest.approx((2.5, 0.8, 0.7))
    assert image.meta.extra["n_files"] == 4 and image.meta.extra["series_description"] == "test series"
    assert image.meta.units == "HU"


def test_series_affine_maps_voxels_to_ras(ct_series):
    folder, _, geometry = ct_series
    affine = read_dicom_series(folder).meta.affine
    d, h, w = 3, 2, 4
    # LPS point: origin + w * col spacing along IOP[:3] + h * row spacing along IOP[3:] + d * dz along z.
    lps = geometry["origin"] + np.array([w * 0.7, h * 0.8, d * 2.5])
    expected_ras = lps * np.array([-1, -1, 1])
    np.testing.assert_allclose((affine @ [d, h, w, 1])[:3], expected_ras)
    assert read_dicom_series(folder).meta.orientation == ("S", "P", "L")


def test_series_falls_back_to_instance_number(tmp_path, dicom_factory):
    folder = tmp_path / "s"
    folder.mkdir()
    uid = generate_uid()
    for k in range(3):
        dicom_factory(folder / f"z{k}.dcm", np.full((2, 2), k, np.uint16), SeriesInstanceUID=uid, InstanceNumber=3 - k)
    image = read_dicom_series(folder)
    np.testing.assert_array_equal(image.array[:, 0, 0], [2, 1, 0])
    assert image.meta.affine is None


def test_several_series_need_a_choice(ct_series, dicom_factory):
    folder, stored, _ = ct_series
    other = generate_uid()
    dicom_factory(folder / "other.dcm", np.zeros((6, 5), np.uint16), SeriesInstanceUID=other, SeriesDescription="scout")
    with pytest.raises(MedganError, match="2 series.*scout") as err:
        read_dicom_series(folder)
    assert other in str(err.value)
    assert read_dicom_series(folder, series_uid=other).array.shape == (6, 5)
    with pytest.raises(MedganError, match="no series"):
        read_dicom_series(folder, series_uid="1.2.3")


def test_series_mixed_sizes_error(tmp_path, dicom_factory):
    folder = tmp_path / "mixed"
    folder.mkdir()
    uid = generate_uid()
    dicom_factory(folder / "a.dcm", np.zeros((4, 4), np.uint16), SeriesInstanceUID=uid, InstanceNumber=1)
    dicom_factory(folder / "b.dcm", np.zeros((4, 5), np.uint16), SeriesInstanceUID=uid, InstanceNumber=2)
    with pytest.raises(MedganError, match="image sizes"):
        read_dicom_series(folder)


def test_dicom_without_preamble_detected_and_read(tmp_path, dicom_factory):
    from medgan.io import detect_format

    path = dicom_factory(tmp_path / "full.dcm", np.eye(3, dtype=np.uint16) * 7)
    ds = pydicom.dcmread(path)
    bare = tmp_path / "IM0001"  # no extension, no preamble, no file meta: the dataset only
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, ds)
    bare.write_bytes(fp.getvalue())
    assert bare.read_bytes()[128:132] != b"DICM"
    assert detect_format(bare) == "dicom"
    np.testing.assert_array_equal(read_image(bare).array, np.eye(3) * 7)


def test_truncated_dicom_is_medgan_error(tmp_path, dicom_factory):
    path = dicom_factory(tmp_path / "t.dcm", np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MedganError, match="truncated or corrupt") as err:
        read_image(path)
    assert str(path) in str(err.value)


def test_rle_lossless_round_trip(tmp_path, dicom_factory):
    pixels = (np.arange(16 * 16, dtype=np.int32).reshape(16, 16) % 37 * 50).astype(np.uint16)
    path = dicom_factory(tmp_path / "plain.dcm", pixels, RescaleSlope=1, RescaleIntercept=-1024)
    ds = pydicom.dcmread(path)
    ds.compress(RLELossless)
    ds.save_as(tmp_path / "rle.dcm", enforce_file_format=True)
    assert str(pydicom.dcmread(tmp_path / "rle.dcm").file_meta.TransferSyntaxUID) == RLELossless
    np.testing.assert_array_equal(read_image(tmp_path / "rle.dcm").array, pixels - 1024.0)


def test_missing_decoder_names_pylibjpeg(tmp_path, dicom_factory, monkeypatch):
    path = dicom_factory(tmp_path / "plain.dcm", np.zeros((4, 4), np.uint16))
    ds = pydicom.dcmread(path)
    # Pretend the pixels were JPEG-LS compressed; make every decoder look missing.
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8\xff\xf7" + b"\x00" * 20])
    ds.save_as(tmp_path / "jls.dcm", enforce_file_format=True)

    class _Missing:
        is_available = False

    monkeypatch.setattr("medgan.io.dicom.get_decoder", lambda uid: _Missing())
    with pytest.raises(MedganError, match="pylibjpeg") as err:
        read_image(tmp_path / "jls.dcm")
    assert "JPEG-LS" in str(err.value)


def test_library_no_handler_error_is_translated(tmp_path, dicom_factory, monkeypatch):
    """Even if pydicom itself raises its no-plugin RuntimeError, users see the codecs hint."""
    path = dicom_factory(tmp_path / "p.dcm", np.zeros((4, 4), np.uint16))

    def no_plugins(self):
        raise RuntimeError("Unable to decompress 'JPEG-LS Lossless' pixel data because all plugins are missing dependencies")

    monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array", property(no_plugins))
    with pytest.raises(MedganError, match="medgan\\[codecs\\]"):
        read_dicom(path)


def test_a_broken_jpeg_ls_stream_is_one_clear_error(tmp_path, dicom_factory):
    """A real JPEG-LS file with a corrupt stream. medgan installs a JPEG-LS decoder
    (pyjpegls, with highdicom): the decoder's complaint comes back naming the file."""
    from pydicom.pixels import get_decoder

    assert get_decoder(JPEGLSLossless).is_available  # a dependency of medgan since DICOM SEG output
    path = dicom_factory(tmp_path / "plain.dcm", np.zeros((4, 4), np.uint16))
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8\xff\xf7" + b"\x00" * 20])
    ds.save_as(tmp_path / "jls.dcm", enforce_file_format=True)
    with pytest.raises(MedganError, match="jls.dcm.*cannot decode the pixel data.*truncated or corrupt"):
        read_image(tmp_path / "jls.dcm")


def test_single_slice_affine(tmp_path, dicom_factory):
    # Coronal slice: columns run along patient left (LPS +x), rows run towards the feet (LPS -z).
    path = dicom_factory(
        tmp_path / "cor.dcm", np.zeros((3, 4), np.uint16),
        ImageOrientationPatient=[1, 0, 0, 0, 0, -1], ImagePositionPatient=[-50, 20, 100], PixelSpacing=[2.0, 0.5],
    )
    image = read_dicom(path)
    h, w = 2, 3
    lps = np.array([-50 + w * 0.5, 20, 100 - h * 2.0])
    np.testing.assert_allclose((image.meta.affine @ [h, w, 0, 1])[:3], lps * [-1, -1, 1])
    assert image.meta.spacing == (2.0, 0.5)


def test_a_missing_slice_is_named_and_its_geometry_kept(ct_folder, tmp_path):
    from medgan.errors import MedganWarning
    from medgan.io import write_nifti

    (ct_folder / "img00.dcm").unlink()  # slice k=3, at z = 6 mm, of 0, 2, ..., 10 mm
    with pytest.warns(MedganWarning, match=r"ct: slices are not evenly spaced: 4.00 mm between slice 2 \(at 4.00 mm\) "
                                           r"and slice 3 \(at 8.00 mm\) against 2.00 mm elsewhere \(1 missing slice\?\)"):
        image = read_dicom_series(ct_folder)
    assert image.meta.extra["irregular_spacing"] is True
    assert image.meta.extra["slice_positions"] == [0.0, 2.0, 4.0, 8.0, 10.0]
    np.testing.assert_allclose(image.array[:, 16, 20], [0, 10, 20, 40, 50])  # slices in position order
    with pytest.raises(MedganError, match="unevenly spaced slices.*one file per slice"):
        write_nifti(tmp_path / "v.nii.gz", image.array, meta=image.meta)
    assert not (tmp_path / "v.nii.gz").exists()


def test_an_evenly_spaced_series_reads_without_a_warning(ct_folder):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image = read_dicom_series(ct_folder)
    assert image.meta.extra["irregular_spacing"] is False
    assert image.meta.extra["slice_positions"] == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]


def _mono1_series(folder):
    """Seven of eight MONOCHROME1 12-bit slices 2.04 mm apart along a tilted normal (slice 5
    missing), slope 0.5, intercept -100, files named out of order; slice k's stored values
    are ``(500 k + 7 row + 3 column) % 4096``."""
    folder.mkdir()
    uid = generate_uid()
    rows, cols = np.mgrid[:6, :5]
    for n, k in enumerate([4, 0, 7, 2, 1, 6, 3]):
        stored = ((k * 500 + 7 * rows + 3 * cols) % 4096).astype(np.uint16)
        make_dicom(folder / f"f{n}.dcm", stored, modality="CR", photometric="MONOCHROME1", bits_stored=12,
                   SeriesInstanceUID=uid, RescaleSlope="0.5", RescaleIntercept="-100", InstanceNumber=k + 1,
                   ImagePositionPatient=[1.0, 2.0 + 0.3 * k, 3.0 * k], ImageOrientationPatient=[1, 0, 0, 0, 0.6, -0.8],
                   PixelSpacing=[0.5, 0.6], SliceThickness=3, WindowCenter=100, WindowWidth=300, SeriesDescription="mono")
    return folder, uid, rows, cols


def test_a_series_reads_as_the_reader_before_slice_by_slice_decoding_did(tmp_path):
    """Values, metadata and warning as read by the code that kept every dataset and stacked
    a list of slices (commit 8c1af40), recorded here: decoding into one preallocated volume
    changes nothing but the memory."""
    from medgan.errors import MedganWarning

    folder, uid, rows, cols = _mono1_series(tmp_path / "m")
    with pytest.warns(MedganWarning, match=r"m: slices are not evenly spaced: 4.08 mm between slice 4 \(at 9.76 mm\) and slice 5 "
                                           r"\(at 13.84 mm\) against 2.04 mm elsewhere \(1 missing slice\?\)"):
        image = read_dicom_series(folder)
    expected = np.stack([0.5 * (4095 - (k * 500 + 7 * rows + 3 * cols) % 4096) - 100 for k in [0, 1, 2, 3, 4, 6, 7]])
    assert image.array.dtype == np.float32 and image.array.flags.c_contiguous
    np.testing.assert_array_equal(image.array, expected.astype(np.float32))
    meta = image.meta
    assert (meta.source, meta.format, meta.modality, meta.dtype, meta.units) == (str(folder), "dicom", "CR", "uint16", None)
    assert meta.value_range == (174.0, 1947.5)
    assert meta.spacing == (2.04, 0.5, 0.6) and meta.orientation == ("S", "P", "L")
    np.testing.assert_array_equal(meta.affine, [[0.0, 0.0, -0.6, -1.0], [-0.3499999999999999, -0.3, 0.0, -2.0],
                                                [3.5, -0.4, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    assert meta.extra == {
        "window_center": 100.0, "window_width": 300.0, "series_description": "mono", "series_uid": uid,
        "photometric": "MONOCHROME1", "transfer_syntax": "1.2.840.10008.1.2.1", "slice_thickness": 3.0, "n_files": 7,
        "irregular_spacing": True, "slice_positions": [1.6, 3.64, 5.68, 7.72, 9.76, 13.84, 15.88],
    }


def test_reading_a_series_peaks_near_one_output_volume(tmp_path):
    """tracemalloc's peak (numpy reports its buffers to it) while reading 20 slices of
    256 x 256: the float32 volume plus one slice's working copies and the headers, where
    keeping every dataset, a list of slices, their stack and a finite copy cost 4.3 volumes."""
    import tracemalloc

    uid, folder = generate_uid(), tmp_path / "ct"
    hu = np.full((256, 256), -1000.0)
    hu[64:192, 32:224] = 40.0
    for k in range(20):
        write_ct_slice(folder / f"IM{k:03d}.dcm", hu + k, z=2.0 * k, series_uid=uid, instance=k + 1)
    read_dicom_series(folder)  # imports and caches out of the measure
    tracemalloc.start()
    try:
        image = read_dicom_series(folder)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    volume = image.array.nbytes
    assert volume == 20 * 256 * 256 * 4 and image.meta.value_range == (-1000.0, 59.0)
    assert peak < 1.6 * volume, f"peak {peak / volume:.2f} output volumes"


def test_only_the_chosen_series_is_decoded(study_folder, monkeypatch):
    """A PACS export (every series in one folder): the series are told apart by headers
    alone; the pixels of the other series are never read, nor, given ``files``, their headers."""
    from medgan.io import dicom

    by_uid = {}
    for f in sorted(study_folder.iterdir()):
        by_uid.setdefault(str(pydicom.dcmread(f, stop_before_pixels=True).SeriesInstanceUID), []).append(f)
    (uid, chosen), (_, other) = sorted(by_uid.items(), key=lambda kv: len(kv[1]))
    parsed, dcmread = [], dicom._dcmread

    def recording(path, stop_before_pixels=False):
        parsed.append((path, stop_before_pixels))
        return dcmread(path, stop_before_pixels)

    monkeypatch.setattr(dicom, "_dcmread", recording)

    image = read_dicom_series(study_folder, series_uid=uid)
    assert image.array.shape == (3, 32, 32)
    assert sorted(p for p, headers in parsed if not headers) == chosen  # pixels: the chosen series' files, each once
    assert sorted(p for p, headers in parsed if headers) == sorted(chosen + other)  # headers: every file, once

    parsed.clear()
    from_files = read_dicom_series(study_folder, files=chosen)
    assert sorted(p for p, _ in parsed if p in other) == []
    np.testing.assert_array_equal(from_files.array, image.array)
    assert from_files.meta.source == str(study_folder) and from_files.meta.extra == image.meta.extra
    with pytest.raises(MedganError, match="folder holds 2 series") as err:
        read_dicom_series(study_folder, files=chosen + other)
    assert "series 2 'AX SOFT' 32x32, 3 files" in str(err.value) and "series 3 'COR BONE' 48x48, 4 files" in str(err.value)
