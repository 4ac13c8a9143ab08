"""Applying an enhancement generator: residual preservation, tiling, formats, geometry, atomicity."""

from __future__ import annotations

import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from PIL import Image as PILImage
from pydicom.uid import generate_uid
from scipy import ndimage
from torch import nn

from medgan.tasks.enhance.inference import enhance_image, enhance_path, enhance_volume, outside_range, upsampled_affine
from medgan.tasks.enhance.recipe import EnhanceTask
from medgan.errors import MedganError
from medgan.io import read_dicom, read_nifti, read_raster

CT = {"low": -1000.0, "high": 1000.0, "units": "HU"}


def make_info(intensity=CT, scale=1, multiple=16) -> dict:
    return {"task": "enhance", "intensity": dict(intensity), "scale": scale, "multiple": multiple,
            "model": "unet-test", "step": 500, "degradation": {"noise": 20}}


def as_model(G: nn.Module, info: dict):
    """The typed model the loader would return for these weights and config."""
    return EnhanceTask.from_pretrained({"generator": (G, info)})


class AddConstant(nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, x):
        return x + self.value


def box_blur() -> nn.Module:
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    conv.weight.data.fill_(1 / 9)
    return conv


class Bicubic(nn.Module):
    def forward(self, x):
        return nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)


def ct_image(shape, seed=0) -> np.ndarray:
    """Smooth soft tissue inside the window plus bone above and air/padding below it."""
    rng = np.random.default_rng(seed)
    img = rng.uniform(-900, 900, shape)
    img[: shape[0] // 4] = rng.uniform(1200, 3000, (shape[0] // 4, shape[1]))  # above the window
    img[-3:] = -2048.0  # below it
    return img.astype(np.float32)


# --------------------------------------------------------------------------- one image


def identity_output(image: np.ndarray) -> np.ndarray:
    """What an identity denoiser returns (module docstring): the input where it is kept or
    lies inside the range, the window's edge plus the smoothed excess elsewhere."""
    keep, excess, _ = outside_range(np.asarray(image, np.float64), CT["low"], CT["high"])
    return np.where(keep, image, np.clip(image, CT["low"], CT["high"]) + excess)


@pytest.mark.parametrize("shape, tile", [((5, 7), 256), ((37, 45), 256), ((300, 260), 128)])
def test_identity_returns_the_input_inside_the_range_and_keeps_what_lies_beyond_it(shape, tile):
    image = ct_image(shape)
    out = enhance_image(as_model(nn.Identity(), make_info()), image, tile=tile)
    assert out.shape == shape and out.dtype == np.float32
    keep, excess, _ = outside_range(image.astype(np.float64), CT["low"], CT["high"])
    np.testing.assert_allclose(out, identity_output(image), atol=1e-3)  # float32 rounding of the [-1, 1] round trip
    unchanged = keep | (excess == 0)
    np.testing.assert_allclose(out[unchanged], image[unchanged], atol=1e-3)
    assert unchanged.mean() > 0.75
    if shape[0] >= 16:
        assert keep[: shape[0] // 4 - 2].all()  # bone rows far above the window: passed through as they are


def test_an_artefact_model_passes_bone_through_but_not_what_lies_below_air():
    """Sparse-view streaks reach below -1000 HU, where nothing lies: an artefact model gives
    the network's air there, not the streak; bone above the range is still kept. A
    denoiser keeps both (padding below air is the scanner's, not noise)."""
    image = ct_image((64, 64))  # its last rows at -2048 HU
    artefact = make_info() | {"degradation": {"kind": "sparse-view-ct", "angles": 30}}
    out = enhance_image(as_model(nn.Identity(), artefact), image)
    np.testing.assert_allclose(out[-3:], -1000.0, atol=1e-3)  # the identity network's output at air
    np.testing.assert_allclose(out[: 64 // 4 - 2], image[: 64 // 4 - 2], atol=1e-3)  # bone kept as it is
    kept = enhance_image(as_model(nn.Identity(), make_info()), image)
    np.testing.assert_allclose(kept[-3:], -2048.0, atol=1e-3)


def soft_tissue_and_bone(seed: int = 0, sigma: float = 40.0) -> tuple[np.ndarray, np.ndarray]:
    """A 96 x 96 CT slice ``(noisy, clean)``: air, a body of soft tissue (40 and 70 HU), and
    a bone ring of 1200..1800 HU (above a -1000..1000 model), Gaussian noise of ``sigma``."""
    y, x = np.mgrid[:96, :96] - 47.5
    r = np.hypot(y, x)
    clean = np.where(r < 44, 40.0, -1000.0)
    clean[(r < 20)] = 70.0
    ring = (r >= 26) & (r < 32)
    clean[ring] = 1200.0 + 600.0 * (x[ring] + 32) / 64  # structure inside the bone: a gradient
    rng = np.random.default_rng(seed)
    return clean + rng.normal(0, sigma, clean.shape), clean


def test_bone_above_the_range_is_kept_unchanged_and_soft_tissue_denoised():
    """The denoiser (a blur) was trained on -1000..1000 HU: bone above comes back as the
    input, within its noise and without bias, while soft tissue is denoised."""
    noisy, clean = soft_tissue_and_bone()
    out = enhance_image(as_model(box_blur(), make_info()), noisy)
    bone = clean > 1000
    soft = ndimage.binary_erosion((clean > -100) & (clean < 100), iterations=3)
    rmse = lambda m: float(np.sqrt(np.mean((out[m] - clean[m]) ** 2)))  # noqa: E731
    assert 36 < rmse(bone) < 44 and abs(float(np.mean(out[bone] - clean[bone]))) < 4  # the input's own noise, no bias
    np.testing.assert_array_equal(out[bone], noisy[bone].astype(np.float32))
    assert rmse(soft) < 0.5 * 40  # a 3x3 box: about sigma / 3 plus its blur


def test_pixels_outside_the_range_are_counted_and_warned_about_once():
    from medgan.errors import MedganWarning

    noisy, clean = soft_tissue_and_bone()
    volume = np.stack([noisy, soft_tissue_and_bone(seed=1)[0]])
    with pytest.warns(MedganWarning) as caught:
        enhance_volume(as_model(box_blur(), make_info()), volume, progress=False)
    messages = [str(w.message) for w in caught if issubclass(w.category, MedganWarning)]
    assert len(messages) == 1
    # The bone's share of the body, whose edge the smoothing widens by up to 4 pixels.
    r = np.hypot(*(np.mgrid[:96, :96] - 47.5))
    share = float(messages[0].split("%")[0]) / 100
    assert (clean > 1000).sum() / (r < 48).sum() - 0.002 < share < (clean > 1000).sum() / (r < 44).sum()
    assert "outside the model's range -1000..1000 HU" in messages[0] and "in 2 of 2 images" in messages[0]
    assert "kept as they are, not enhanced" in messages[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", MedganWarning)  # nothing outside: nothing said
        enhance_volume(as_model(box_blur(), make_info()), np.clip(volume, -1000, 900), progress=False)


def test_noise_that_crossed_the_range_edge_is_not_put_back():
    """A background at the range's low end plus noise: a denoiser that outputs the low end
    there gets that, not the negative half of the noise back (which a raw excess would add)."""
    rng = np.random.default_rng(0)
    image = CT["low"] + rng.normal(0, 60.0, (64, 64))  # noise of 60 HU around -1000

    class Floor(nn.Module):
        def forward(self, x):
            return torch.full_like(x, -1.0)

    out = enhance_image(as_model(Floor(), make_info()), image)
    raw = CT["low"] + (image - np.clip(image, CT["low"], CT["high"]))  # the old rule
    assert np.abs(raw - CT["low"]).mean() > 20  # about 0.4 sigma
    assert np.abs(out - CT["low"]).mean() < 5  # sigma / 7 after the blur, then its negative half: about 3.4


def test_tiled_equals_untiled_for_a_convolution():
    image, G = ct_image((300, 260)), box_blur()
    tiled = enhance_image(as_model(G, make_info()), image, tile=128, overlap=32)
    whole = enhance_image(as_model(G, make_info()), image, tile=512)
    # Receptive-field radius 1 <= overlap // 4: equal up to float rounding away from the
    # bottom/right edge (reflection padding vs the conv's zero padding).
    tol = 1e-5 * (CT["high"] - CT["low"]) / 2  # 1e-5 in the network's [-1, 1] units
    np.testing.assert_allclose(tiled[:-1, :-1], whole[:-1, :-1], atol=tol)
    # ... and it is a blur, not an identity (the comparison means something).
    assert np.abs(whole - image).max() > 100


def test_constant_offset_shifts_by_the_data_unit_amount():
    image = ct_image((40, 40))
    out = enhance_image(as_model(AddConstant(0.1), make_info()), image)
    shift = 0.1 * (CT["high"] - CT["low"]) / 2  # 100 HU
    keep, excess, _ = outside_range(image.astype(np.float64), CT["low"], CT["high"])
    inside = (image > -1000) & (image < 1000 - shift) & ~keep
    np.testing.assert_allclose(out[inside], image[inside] + shift, atol=1e-3)
    np.testing.assert_allclose(out[keep], image[keep], atol=1e-3)  # never seen by the model: as they are
    below = (image < -1000) & (excess < 0) & ~keep  # the model's correction is added to the (smoothed) excess below the edge
    np.testing.assert_allclose(out[below], -1000 + shift + excess[below], atol=1e-3)
    assert inside.sum() > 50 and keep.sum() > 50


def bicubic(image: np.ndarray) -> np.ndarray:
    t = torch.from_numpy(np.asarray(image, dtype=np.float64))[None, None]
    return nn.functional.interpolate(t, scale_factor=2, mode="bicubic", align_corners=False)[0, 0].numpy()


def test_super_resolution_adds_the_upsampled_excess_to_the_model_output():
    image = ct_image((48, 64))  # exactly on the tile grid: no padding, so no border effect
    image[20:30, 20:40] = 2500.0  # a bone block well above the window
    G = nn.Upsample(scale_factor=2, mode="nearest")
    out = enhance_image(as_model(G, make_info(scale=2)), image, tile=32, overlap=16)
    assert out.shape == (96, 128)
    clipped = np.clip(image, CT["low"], CT["high"])
    expected = np.kron(clipped, np.ones((2, 2))) + bicubic(image - clipped)
    np.testing.assert_allclose(out, expected, atol=1e-2)
    np.testing.assert_allclose(out[44:56, 44:76], 2500.0, atol=1e-2)  # the bone keeps its HU


def test_super_resolution_bicubic_model_matches_bicubic_inside_the_window():
    image = np.clip(ct_image((48, 64)), -990, 990)  # inside the window: out == the model's output
    out = enhance_image(as_model(Bicubic(), make_info(scale=2)), image, tile=32, overlap=16)
    np.testing.assert_allclose(out, np.clip(bicubic(image), -1000, 1000), atol=1e-2)


def test_super_resolution_tiles_blend_seamlessly():
    image = ct_image((70, 90))
    G = nn.Upsample(scale_factor=2, mode="nearest")
    tiled = enhance_image(as_model(G, make_info(scale=2)), image, tile=32, overlap=8)
    whole = enhance_image(as_model(G, make_info(scale=2)), image, tile=128)
    np.testing.assert_allclose(tiled, whole, atol=1e-3)
    inside = np.clip(image, -1000, 1000)  # in range, the model's output is the result
    tiled = enhance_image(as_model(G, make_info(scale=2)), inside, tile=32, overlap=8)
    np.testing.assert_allclose(tiled, np.kron(inside, np.ones((2, 2))), atol=1e-3)


def test_eval_mode_for_the_call_then_restored():
    G = nn.Sequential(nn.Dropout(0.9))
    G.train()
    image = np.clip(ct_image((32, 32)), -1000, 1000)  # in range: an identity in eval mode returns it
    np.testing.assert_allclose(enhance_image(as_model(G, make_info()), image), image, atol=1e-3)
    assert G.training


def test_bad_model_or_info_refused():
    image = np.zeros((16, 16))
    with pytest.raises(MedganError, match="expected"):
        enhance_image(as_model(nn.Identity(), make_info(scale=2)), image)  # declares x2, returns x1
    with pytest.raises(MedganError, match="task"):
        as_model(nn.Identity(), {**make_info(), "task": "synth"})
    with pytest.raises(MedganError, match="overlap"):
        enhance_image(as_model(nn.Identity(), make_info()), image, tile=32, overlap=32)


def test_volume_is_enhanced_slice_by_slice():
    volume = np.stack([ct_image((20, 24), seed=k) for k in range(3)])
    G = box_blur()
    out = enhance_volume(as_model(G, make_info()), volume, progress=False)
    assert out.shape == volume.shape
    for k in range(3):
        np.testing.assert_array_equal(out[k], enhance_image(as_model(G, make_info()), volume[k]))


# --------------------------------------------------------------------------- files


def write_ct_series(folder: Path, dicom_factory, patient: dict, n: int = 3, shape=(20, 18)):
    """``n`` CT slices (int16 stored, intercept -1024) with the fictitious patient's data."""
    folder.mkdir(parents=True)
    series, study = generate_uid(), generate_uid()
    volume = []
    for k in range(n):
        hu = np.clip(ct_image(shape, seed=k), -1024, 2500).round()
        volume.append(hu)
        dicom_factory(
            folder / f"slice{k}.dcm", (hu + 1024).astype(np.int16), SeriesInstanceUID=series, StudyInstanceUID=study,
            InstanceNumber=k + 1, SeriesNumber=2, ImagePositionPatient=[-100.0, -120.0, 2.0 * k],
            ImageOrientationPatient=[1, 0, 0, 0, 1, 0], PixelSpacing=[0.8, 0.7], SliceThickness=2.0,
            RescaleSlope=1, RescaleIntercept=-1024, SeriesDescription="CHEST", **patient,
        )
    return np.stack(volume)


def test_dicom_series_becomes_a_derived_series(tmp_path, dicom_factory, patient_attrs):
    volume = write_ct_series(tmp_path / "in", dicom_factory, patient_attrs)
    out = enhance_path(as_model(nn.Identity(), make_info()), tmp_path / "in", tmp_path / "out", progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["slice0.dcm", "slice1.dcm", "slice2.dcm"]
    series, sops = set(), set()
    for k in range(3):
        src = pydicom.dcmread(tmp_path / "in" / f"slice{k}.dcm")
        ds = pydicom.dcmread(out / f"slice{k}.dcm")
        assert ds.PatientName == src.PatientName and ds.PatientID == src.PatientID
        assert ds.StudyInstanceUID == src.StudyInstanceUID
        assert ds.SeriesInstanceUID != src.SeriesInstanceUID
        assert ds.SOPInstanceUID != src.SOPInstanceUID
        assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
        assert "medgan" in ds.DerivationDescription and "unet-test step 500" in ds.DerivationDescription
        assert list(ds.ImagePositionPatient) == list(src.ImagePositionPatient)
        assert ds.SeriesNumber == 1002
        np.testing.assert_allclose(read_dicom(out / f"slice{k}.dcm").array, identity_output(volume[k]), atol=0.6)
        series.add(ds.SeriesInstanceUID)
        sops.add(ds.SOPInstanceUID)
    assert len(series) == 1 and len(sops) == 3


def test_anonymized_dicom_holds_no_patient_identifiers(tmp_path, dicom_factory, patient_attrs):
    volume = write_ct_series(tmp_path / "in", dicom_factory, patient_attrs)
    study = str(pydicom.dcmread(tmp_path / "in" / "slice0.dcm").StudyInstanceUID)
    out = enhance_path(as_model(nn.Identity(), make_info()), tmp_path / "in", tmp_path / "out", anonymize=True, progress=False)
    files = sorted(out.iterdir())
    assert len(files) == 3
    for k, file in enumerate(files):
        data = file.read_bytes()
        for value in [*patient_attrs.values(), study, "Doe", "Jane"]:
            if len(value) > 2:  # "F" (sex) occurs in any file by chance; checked below
                assert value.encode() not in data, value
        assert not str(pydicom.dcmread(file).get("PatientSex", ""))
        np.testing.assert_allclose(read_dicom(file).array, identity_output(volume[k]), atol=0.6)
    written = [pydicom.dcmread(f) for f in files]  # one new series in one new study
    assert len({str(d.SeriesInstanceUID) for d in written}) == 1 and len({str(d.StudyInstanceUID) for d in written}) == 1
    # a patient's image, processed and de-identified: said so, never called synthetic
    for d in written:
        for text in (d.DerivationDescription, d.ImageComments):
            assert "ynthetic" not in text and "not a patient image" not in text
            assert text.startswith("Denoised") and "by medgan model" in text and "from a patient image; de-identified" in text
        assert d.PatientName == "DEIDENTIFIED^MEDGAN" and d.ConversionType == "WSD" and d.PatientIdentityRemoved == "YES"


def test_dicom_super_resolution_keeps_the_field_of_view(tmp_path, dicom_factory, patient_attrs):
    write_ct_series(tmp_path / "in", dicom_factory, patient_attrs, n=1, shape=(20, 18))
    info = make_info(scale=2, multiple=4)
    out = enhance_path(as_model(nn.Upsample(scale_factor=2), info), tmp_path / "in" / "slice0.dcm", tmp_path / "sr.dcm", progress=False)
    ds = pydicom.dcmread(out)
    assert (ds.Rows, ds.Columns) == (40, 36)
    np.testing.assert_allclose([float(v) for v in ds.PixelSpacing], [0.4, 0.35])
    # first pixel centre moves by (-0.5 + 0.5/2) old spacings along rows and columns
    np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], [-100 - 0.25 * 0.7, -120 - 0.25 * 0.8, 0.0])


def test_nifti_keeps_affine_and_data(tmp_path, nifti_volume):
    out = enhance_path(as_model(nn.Identity(), make_info({"low": 0.0, "high": 500.0})), nifti_volume, tmp_path / "e.nii.gz", progress=False)
    a, b = nib.load(nifti_volume), nib.load(out)
    np.testing.assert_array_equal(b.affine, a.affine)
    assert b.get_data_dtype() == np.float32
    np.testing.assert_allclose(b.get_fdata(), a.get_fdata(), atol=1e-3)


def test_nifti_super_resolution_halves_in_plane_zooms(tmp_path, nifti_volume):
    info = make_info({"low": 0.0, "high": 500.0}, scale=2, multiple=1)
    out = enhance_path(as_model(nn.Upsample(scale_factor=2), info), nifti_volume, tmp_path / "sr.nii.gz", progress=False)
    src, img = nib.load(nifti_volume), nib.load(out)
    assert img.shape == (40, 48, 16)  # (i, j) in-plane doubled, k (the slice axis) kept
    np.testing.assert_allclose(img.header.get_zooms(), (0.75, 0.75, 1.5))
    # voxel (0, 0) of the new grid is half a new voxel inside the old first voxel's edge
    np.testing.assert_allclose(img.affine[:3, 3], src.affine[:3, 3] + [-0.375, -0.375, 0.0])
    assert read_nifti(out).meta.affine is not None
    a = read_nifti(nifti_volume).meta.affine
    np.testing.assert_allclose(upsampled_affine(a, 2, (1, 2)), read_nifti(out).meta.affine)


@pytest.mark.parametrize("suffix, bits", [(".png", 8), (".png", 16), (".tif", 16)])
def test_raster_round_trip_keeps_format_and_bit_depth(tmp_path, suffix, bits):
    top = 2**bits - 1
    pixels = np.random.default_rng(0).integers(0, top + 1, (30, 22)).astype(np.uint8 if bits == 8 else np.uint16)
    PILImage.fromarray(pixels).save(tmp_path / f"in{suffix}")
    info = make_info({"low": 0.0, "high": float(top)})
    out = enhance_path(as_model(nn.Identity(), info), tmp_path / f"in{suffix}", tmp_path / f"out{suffix}", progress=False)
    image = read_raster(out)
    assert image.meta.format == ("png" if suffix == ".png" else "tiff")
    assert image.meta.extra["bit_depth"] == bits
    np.testing.assert_array_equal(image.array, pixels)


def test_folder_mirrors_structure(tmp_path, dicom_factory, patient_attrs, nifti_volume):
    root = tmp_path / "in"
    write_ct_series(root / "patient" / "ct", dicom_factory, patient_attrs, n=2)
    (root / "pngs" / "a").mkdir(parents=True)
    for name in ("x", "y"):
        PILImage.fromarray(np.full((8, 8), 100, np.uint8)).save(root / "pngs" / "a" / f"{name}.png")
    (root / "vol.nii.gz").write_bytes(nifti_volume.read_bytes())
    (root / "notes.txt").write_text("ignored")
    info = make_info({"low": -1000.0, "high": 1000.0})  # no units: accepted by every input
    out = enhance_path(as_model(nn.Identity(), info), root, tmp_path / "out", progress=False)
    found = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert found == ["patient/ct/slice0.dcm", "patient/ct/slice1.dcm", "pngs/a/x.png", "pngs/a/y.png", "vol.nii.gz"]


def test_existing_output_refused_unless_overwrite(tmp_path):
    PILImage.fromarray(np.full((8, 8), 7, np.uint8)).save(tmp_path / "in.png")
    info = make_info({"low": 0.0, "high": 255.0})
    (tmp_path / "out.png").write_bytes(b"old")
    with pytest.raises(MedganError, match="already exists.*--overwrite"):
        enhance_path(as_model(nn.Identity(), info), tmp_path / "in.png", tmp_path / "out.png", progress=False)
    assert (tmp_path / "out.png").read_bytes() == b"old"
    enhance_path(as_model(nn.Identity(), info), tmp_path / "in.png", tmp_path / "out.png", overwrite=True, progress=False)
    assert read_raster(tmp_path / "out.png").array[0, 0] == 7

    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "in.png").write_bytes((tmp_path / "in.png").read_bytes())
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "keep.txt").write_text("x")
    with pytest.raises(MedganError, match="already holds data"):
        enhance_path(as_model(nn.Identity(), info), tmp_path / "folder", tmp_path / "done", progress=False)
    with pytest.raises(MedganError, match="inside the input"):
        enhance_path(as_model(nn.Identity(), info), tmp_path / "folder", tmp_path / "folder" / "out", progress=False)


class FailOnSecondCall(nn.Module):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("out of memory")
        return x


def test_failure_midway_leaves_no_output(tmp_path):
    (tmp_path / "in").mkdir()
    for n in range(3):
        PILImage.fromarray(np.full((8, 8), 10 * n, np.uint8)).save(tmp_path / "in" / f"{n}.png")
    info = make_info({"low": 0.0, "high": 255.0})
    with pytest.raises(RuntimeError, match="out of memory"):
        enhance_path(as_model(FailOnSecondCall(), info), tmp_path / "in", tmp_path / "out", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # no output, no temporary folder


def test_units_mismatch_refused(tmp_path, dicom_factory):
    dicom_factory(tmp_path / "mr.dcm", np.zeros((8, 8), np.uint16), modality="MR", RescaleType="T1")
    with pytest.raises(MedganError, match="works in HU"):
        enhance_path(as_model(nn.Identity(), make_info()), tmp_path / "mr.dcm", tmp_path / "out.dcm", progress=False)
