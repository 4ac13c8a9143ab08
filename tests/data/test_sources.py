import csv

import nibabel as nib
import numpy as np
import pytest
from PIL import Image as PILImage

from medgan.data import MedicalImageDataset, SourceOptions, load_source, split_by_group
from medgan.errors import MedganError


def test_dicom_series_folder_becomes_sorted_hu_slices(ct_folder):
    data = load_source(ct_folder)
    assert data.shape == (32, 40) and len(data) == 6
    assert data.units == "HU"
    np.testing.assert_allclose([im[16, 20] for im in data.images], [0, 10, 20, 30, 40, 50])
    assert data.images.min() == -1000.0
    assert len(np.unique(data.groups)) == 1  # one series, one patient


def test_study_folder_with_two_series_lists_them_and_offers_a_choice(study_folder):
    with pytest.raises(MedganError) as err:
        load_source(study_folder)
    message = str(err.value)
    assert "(. " not in message  # series are named, not shown as "."
    assert "series 2 'AX SOFT' 32x32, 3 files" in message and "series 3 'COR BONE' 48x48, 4 files" in message
    assert "--series" in message and "--size" in message


@pytest.mark.parametrize("choice, size, n, level", [("2", 32, 3, 40), ("cor bone", 48, 4, 41), ("03", 48, 4, 41)])
def test_series_picked_by_number_or_description(study_folder, choice, size, n, level):
    data = load_source(study_folder, SourceOptions(series=choice))
    assert data.shape == (size, size) and len(data) == n and data.images.max() == level
    assert data.sources[0].startswith("series ")


def test_series_picked_by_uid_and_an_unknown_choice_lists_what_exists(study_folder):
    import pydicom

    uid = str(pydicom.dcmread(sorted(study_folder.iterdir())[-1]).SeriesInstanceUID)
    assert load_source(study_folder, SourceOptions(series=uid)).shape == (48, 48)
    with pytest.raises(MedganError, match=r"no DICOM series matches --series '7'.*series 2 'AX SOFT'.*series 3 'COR BONE'"):
        load_source(study_folder, SourceOptions(series="7"))


def test_series_resized_together_with_size(study_folder):
    data = load_source(study_folder, SourceOptions(size=32))
    assert len(data) == 7 and len(np.unique(data.groups)) == 2  # each series its own volume


def test_nifti_volume_sliced_along_a_named_plane(nifti_volume):
    axial = load_source(nifti_volume, SourceOptions(axis="axial"))
    sagittal = load_source(nifti_volume, SourceOptions(axis="sagittal"))
    assert axial.shape == (24, 20)  # (j, i) of the RAS volume
    assert sagittal.shape == (16, 24)
    assert 0 < len(axial) <= 16 and 0 < len(sagittal) <= 20
    assert axial.images.max() == 500


def test_png_folder_labels_from_subfolders(png_folder):
    data = load_source(png_folder)
    assert len(data) == 6 and data.class_names == ["bright", "dark"]
    assert data.value_range == (0.0, 255.0)
    bright = data.images[data.labels == 0].mean()
    dark = data.images[data.labels == 1].mean()
    assert bright > 150 > 80 > dark


def test_labels_from_csv(png_folder, tmp_path):
    table = tmp_path / "labels.csv"
    files = sorted(png_folder.rglob("*.png"))
    with open(table, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label"])
        for f in files:
            writer.writerow([f.name, "sick" if "bright" in f.name else "well"])
    data = load_source(png_folder, SourceOptions(labels_csv=str(table)))
    assert data.class_names == ["sick", "well"]
    assert data.images[data.labels == 0].mean() > data.images[data.labels == 1].mean()


def test_masks_paired_by_name(tmp_path):
    images, masks = tmp_path / "img", tmp_path / "mask"
    images.mkdir(), masks.mkdir()
    for n in range(3):
        PILImage.fromarray(np.full((16, 16), 100 + n, np.uint8)).save(images / f"case{n}.png")
        m = np.zeros((16, 16), np.uint8)
        m[: n + 1] = 1
        PILImage.fromarray(m).save(masks / f"case{n}.png")
    data = load_source(images, SourceOptions(masks=str(masks), size=32))
    assert data.masks.shape == (3, 32, 32)
    for n in range(3):
        k = int(np.flatnonzero([s.startswith(f"case{n}") for s in data.sources])[0])
        assert data.masks[k].sum() == (n + 1) * 2 * 32  # rows double under the x2 resize
    (masks / "case2.png").unlink()
    with pytest.raises(MedganError, match="no mask for case2.png"):
        load_source(images, SourceOptions(masks=str(masks)))


def test_medmnist_layout_npz(medmnist_npz):
    data = load_source(medmnist_npz)
    assert len(data) == 12 and data.shape == (28, 28) and data.labels.shape == (12,)
    val = load_source(medmnist_npz, SourceOptions(split="val"))
    assert len(val) == 4


@pytest.mark.parametrize("dtype, scale, expected", [
    (np.float32, 1.0, (0.0, 1.0)),      # the usual NumPy pipeline output
    (np.float64, 1.0, (0.0, 1.0)),
    (np.uint8, 255, (0.0, 255.0)),      # MedMNIST
])
def test_npz_images_range_comes_from_the_data(tmp_path, dtype, scale, expected):
    rng = np.random.default_rng(0)
    images = (rng.random((12, 1, 16, 16)) * scale).astype(dtype)  # PyTorch layout
    np.savez(tmp_path / "stack.npz", images=images, labels=np.arange(12) % 3)
    data = load_source(tmp_path / "stack.npz")
    assert data.value_range == expected and data.shape == (16, 16)
    item = MedicalImageDataset(data)[0]["image"]  # mapped to [-1, 1] by that range
    assert float(item.min()) < -0.8 and float(item.max()) > 0.8


def test_mixed_sizes_need_a_size(tmp_path):
    PILImage.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "a.png")
    PILImage.fromarray(np.zeros((30, 24), np.uint8)).save(tmp_path / "b.png")
    with pytest.raises(MedganError, match="mixed sizes.*--size"):
        load_source(tmp_path)
    assert load_source(tmp_path, SourceOptions(size=16)).shape == (16, 16)


def test_ct_window_clips_and_sets_the_range(ct_folder):
    data = load_source(ct_folder, SourceOptions(window="brain"))
    assert data.value_range == (0.0, 80.0) and data.units == "HU"
    assert data.images.min() == 0.0 and data.images.max() == 50.0


def test_embedded_sources_and_the_dataset():
    data = load_source("phantom", SourceOptions(n=8, size=32, seed=1))
    assert data.shape == (32, 32) and len(data) == 8
    brain = MedicalImageDataset.from_source("brain-mri", split="train", fractions=(0.5, 0.5))
    item = brain[0]
    assert item["image"].shape == (1, 64, 64)
    assert -1.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
    assert "label" in item and "mask" in item
    everything = load_source("brain-mri")
    splits = split_by_group(everything.groups, (0.5, 0.5))
    assert len(brain) == len(splits["train"])


def test_nan_pixels_are_refused(tmp_path):
    data = np.ones((8, 8, 8), np.float32)
    data[2, 2, 2] = np.nan
    path = tmp_path / "bad.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    with pytest.raises(MedganError, match="bad.nii.gz"):
        load_source(path)


def test_brain_mri_reads_an_embedded_size_natively_and_resizes_others_from_the_nearest_larger():
    from medgan.data.geometry import fit_square
    from medgan.datasets import load_brain_mri

    native = {size: load_brain_mri(size=size) for size in (64, 128)}
    for size in (None, 64, 128):
        data = load_source("brain-mri", SourceOptions(size=size))
        stored = native[size or 64]
        assert np.array_equal(data.images, stored.images) and np.array_equal(data.masks, stored.masks)
    # 96 comes down from 128 and 32 from 64, as fit_square makes them from that file
    for size, source in ((96, 128), (32, 64)):
        data = load_source("brain-mri", SourceOptions(size=size))
        assert data.images.shape[1:] == (size, size) and data.masks.shape[1:] == (size, size)
        for i in (0, 400, len(data) - 1):
            assert np.allclose(data.images[i], fit_square(native[source].images[i], size))
            assert np.array_equal(data.masks[i], fit_square(native[source].masks[i], size, labels=True))
