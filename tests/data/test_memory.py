"""Reading a source costs the kept set plus one native volume, not the source's native size:
the streamed read gives the same values as the per-volume recipe, a set larger than memory
is refused before any pixel is read, and no two native volumes are ever alive at once."""

import tracemalloc
import weakref

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from pydicom.uid import generate_uid

from medgan import io as mio
from medgan.data import SourceOptions, load_source
from medgan.data import sources
from medgan.data.geometry import fit_square, orient_for_display, resized_spacing, volume_to_slices
from medgan.data.sources import source_intensity
from medgan.errors import MedganError
from tests.conftest import write_ct_slice


def _series(folder, n, shape, number, seed, description="AX", empty=()):
    """One CT series of ``n`` slices in ``folder`` (files side by side with any other series):
    noisy tissue in air, slices in ``empty`` all air (dropped as empty)."""
    rng, uid, study = np.random.default_rng(seed), generate_uid(), generate_uid()
    for k in range(n):
        hu = np.full(shape, -1000.0)
        if k not in empty:
            hu[4:-4, 6:-6] = np.round(rng.normal(40 + 20 * number, 60, (shape[0] - 8, shape[1] - 12)))
        path = write_ct_slice(folder / f"S{number}IM{k:03d}.dcm", hu, z=2.0 * k, series_uid=uid, instance=k + 1, study_uid=study)
        ds = pydicom.dcmread(path)
        ds.SeriesNumber, ds.SeriesDescription = number, description
        ds.save_as(path)
    return uid


@pytest.fixture
def multi_series(tmp_path):
    """A study of four CT series of three sizes: two side by side in one folder (a PACS
    export), two in folders of their own; 31 slices, 3 of them empty."""
    root = tmp_path / "study"
    uids = [
        (root, _series(root, 6, (40, 48), 2, 0, empty=(0,))),
        (root, _series(root, 5, (48, 48), 3, 1)),
        (root / "b", _series(root / "b", 12, (40, 48), 4, 2, empty=(5, 11))),
        (root / "c", _series(root / "c", 8, (56, 40), 5, 3)),
    ]
    return root, uids


def _reference(image, opts, axis="axial"):
    """The per-volume recipe, from the public per-image functions: window or normalise,
    orient, drop empty slices, fit each slice to the size."""
    volume = source_intensity(image.array, image.meta, opts)
    volume = orient_for_display(volume, image.meta.orientation, axis)
    slices, _ = volume_to_slices(volume, 0, opts.min_foreground)
    return [fit_square(s, opts.size, opts.resize_mode) for s in slices], [s.shape for s in slices]


@pytest.mark.parametrize("opts", [SourceOptions(size=32), SourceOptions(size=24, window="abdomen", resize_mode="crop"),
                                  SourceOptions(size=40, resize_mode="stretch", normalize="percentile")])
def test_streamed_dicom_study_matches_the_per_volume_reference(multi_series, opts):
    root, uids = multi_series
    data = load_source(root, opts)
    expected, spacing, groups = [], [], []
    for group, (folder, uid) in enumerate(uids):
        image = mio.read_dicom_series(folder, series_uid=uid)
        plane = image.meta.spacing[1:]  # (rows, columns) mm of the axial slices, before fitting
        slices, shapes = _reference(image, opts)
        expected += slices
        spacing += [resized_spacing(plane, shape, opts.size, opts.resize_mode) for shape in shapes]
        groups += [group] * len(slices)
    assert len(data) == len(expected) == 28  # 31 slices, 3 empty
    assert data.images.dtype == np.float32 and data.images.flags.c_contiguous
    np.testing.assert_array_equal(data.images, np.stack(expected))  # bit for bit
    np.testing.assert_array_equal(data.groups, groups)
    np.testing.assert_array_equal(data.spacing, np.array(spacing))
    full = sources._nominal_range(np.stack(expected))
    assert data.value_range == (full if opts.window is None else (-150.0, 250.0))


def test_streamed_nifti_folder_matches_the_per_volume_reference(tmp_path, nifti_volume):
    folder = tmp_path / "mri"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for n in range(3):  # MR-like volumes: per-volume percentile normalisation, then sagittal slices
        data = np.asarray(nib.load(nifti_volume).dataobj) * (1 + n) + rng.normal(0, 20, (20, 24, 16))
        nib.save(nib.Nifti1Image(np.abs(data).astype(np.float32), np.diag([1.5, 1.2, 2.0, 1.0])), folder / f"case{n}.nii.gz")
    opts = SourceOptions(size=16, axis="sagittal", normalize="percentile", resize_mode="crop")
    data = load_source(folder, opts)
    expected = []
    for n in range(3):
        expected += _reference(mio.read_nifti(folder / f"case{n}.nii.gz"), opts, axis="sagittal")[0]
    np.testing.assert_array_equal(data.images, np.stack(expected))
    assert data.value_range == (0.0, 1.0) and len(np.unique(data.groups)) == 3


def test_a_set_larger_than_memory_is_refused_before_any_pixel_is_read(multi_series, monkeypatch):
    root, _ = multi_series

    def no_pixels(*args, **kwargs):
        raise AssertionError("pixels were read before the memory check")

    monkeypatch.setattr(mio, "read_dicom_series", no_pixels)
    monkeypatch.setattr(mio, "read_image", no_pixels)
    kept = 31 * 64 * 64 * 4  # every slice (empty ones are only known once read) at 64 x 64, float32
    native = 12 * 40 * 48 * 4  # the largest series, float32
    monkeypatch.setattr(sources, "available_memory", lambda: kept + native - 1)
    with pytest.raises(MedganError) as err:
        load_source(root, SourceOptions(size=64))
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{root}: ")
    assert "496.0 KiB (31 slices at --size 64)" in message and "90.0 KiB for the largest volume" in message
    assert "smaller --size" in message and "subset" in message and "more memory" in message


def test_a_set_that_fits_is_read_and_an_unknown_memory_is_not_checked(multi_series, monkeypatch):
    root, _ = multi_series
    monkeypatch.setattr(sources, "available_memory", lambda: 31 * 64 * 64 * 4 + 12 * 40 * 48 * 4)
    assert len(load_source(root, SourceOptions(size=64))) == 28
    monkeypatch.setattr(sources, "available_memory", lambda: None)
    assert len(load_source(root, SourceOptions(size=64))) == 28


def test_the_estimate_counts_slices_along_the_chosen_plane(nifti_volume, monkeypatch):
    # (D, H, W) = (16, 24, 20) as read; sagittal slices are the 20 along i: 20 x 16 x 16 x 4 bytes
    monkeypatch.setattr(sources, "available_memory", lambda: 20 * 16 * 16 * 4 + 16 * 24 * 20 * 4)
    assert 0 < len(load_source(nifti_volume, SourceOptions(size=16, axis="sagittal"))) <= 20
    monkeypatch.setattr(sources, "available_memory", lambda: 20 * 16 * 16 * 4 + 16 * 24 * 20 * 4 - 1)
    with pytest.raises(MedganError, match=r"20 slices at --size 16"):
        load_source(nifti_volume, SourceOptions(size=16, axis="sagittal"))


def test_available_memory_is_a_positive_number_here():
    available = sources.available_memory()
    assert available is None or available > 0


@pytest.fixture
def big_study(tmp_path):
    """Eight CT series of 6 slices of 256 x 256: 1.5 MiB each as float32, 12 MiB in all."""
    root = tmp_path / "big"
    for s in range(8):
        _series(root / f"series{s}", 6, (256, 256), s + 1, s)
    return root


def test_no_two_native_volumes_are_alive_at_once(big_study, monkeypatch):
    """Each volume's native array is gone before the next is read (today's code kept every
    native slice until the end, and the last volume while reading the next)."""
    read, alive, seen_alive = mio.read_dicom_series, set(), []

    def counting(*args, **kwargs):
        seen_alive.append(len(alive))  # native arrays still alive when the next read starts
        image = read(*args, **kwargs)
        key = len(seen_alive)
        alive.add(key)
        weakref.finalize(image.array, alive.discard, key)
        return image

    monkeypatch.setattr(mio, "read_dicom_series", counting)
    data = load_source(big_study, SourceOptions(size=32))
    assert len(seen_alive) == 8 and len(data) == 48
    assert max(seen_alive) == 0 and not alive


def _traced_peak(read) -> int:
    tracemalloc.start()
    try:
        read()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_reading_eight_volumes_peaks_like_reading_one(big_study):
    """tracemalloc's peak (numpy reports its buffers to it) while reading 8 volumes at 32 x 32
    stays within the peak of reading one of them plus the kept set (and half a volume of
    slack); keeping every native slice, as the code did before, costs 8 native volumes
    more."""
    native = 6 * 256 * 256 * 4
    load_source(big_study / "series0", SourceOptions(size=32))  # imports and caches out of the measure
    one = _traced_peak(lambda: load_source(big_study / "series1", SourceOptions(size=32)))
    peak = _traced_peak(lambda: load_source(big_study, SourceOptions(size=32)))
    kept = 48 * 32 * 32 * 4
    assert peak < one + kept + native // 2, f"peak {peak / native:.2f} native volumes, one volume {one / native:.2f}"


def test_a_pacs_export_decodes_each_file_once(multi_series, monkeypatch):
    """Series side by side in one folder: each series' read opens its own files only (the
    reader is handed them), so every file's pixels are decoded once, not once per series
    of its folder."""
    from collections import Counter

    from medgan.io import dicom

    root, _ = multi_series
    parsed, dcmread = Counter(), dicom._dcmread

    def counting(path, stop_before_pixels=False):
        parsed[path, stop_before_pixels] += 1
        return dcmread(path, stop_before_pixels)

    monkeypatch.setattr(dicom, "_dcmread", counting)
    assert len(load_source(root, SourceOptions(size=32))) == 28
    files = sorted(root.rglob("*.dcm"))
    assert len(files) == 31 and set(parsed.values()) == {1}
    assert sorted(p for p, headers in parsed if not headers) == sorted(p for p, headers in parsed if headers) == files


def test_the_dataset_maps_chunk_by_chunk_to_the_same_values(monkeypatch):
    from medgan.data import MedicalImageDataset, dataset

    data = load_source("brain-mri")
    monkeypatch.setattr(dataset, "_CHUNK_BYTES", 3 * 64 * 64 * 4 + 1)  # 3 images a chunk, a short last one
    mapped = MedicalImageDataset(data)
    np.testing.assert_array_equal(mapped.batch(np.arange(len(data)))["image"][:, 0].numpy(), mapped.intensity.forward(data.images))
    assert mapped[0]["mask"].dtype == torch.int64 and mapped.batch(np.arange(4))["mask"].dtype == torch.int64
    np.testing.assert_array_equal(mapped.batch(np.arange(len(data)))["mask"].numpy(), data.masks)


@pytest.mark.parametrize("n", [1, 16, 17, 100])
def test_rows_assemble_chunk_by_chunk_into_the_stacked_array(n, monkeypatch):
    monkeypatch.setattr(sources._Rows, "CHUNK_BYTES", 5 * 3 * 4 * 2)  # 5 rows of (3, 4) uint16 a chunk at most
    rows = [np.full((3, 4), k, np.uint16) for k in range(n)]
    collected = sources._Rows(np.uint16)
    for row in rows:
        collected.append(row)
    out = collected.finish(np.uint8)
    assert out.dtype == np.uint8 and out.flags.c_contiguous and not collected.chunks
    np.testing.assert_array_equal(out, np.stack(rows))


def test_the_command_line_prints_the_refusal_on_one_line(multi_series, monkeypatch, tmp_path, capsys):
    from medgan.cli import main

    root, _ = multi_series
    monkeypatch.setattr(sources, "available_memory", lambda: 100_000)
    code = main(["data", "show", str(root), "--size", "128", "--out", str(tmp_path / "grid.png")])
    err = capsys.readouterr().err.strip()
    assert code != 0 and not (tmp_path / "grid.png").exists()
    assert len(err.splitlines()) == 1 and str(root) in err
    assert "1.9 MiB (31 slices at --size 128)" in err and "97.7 KiB of memory is available" in err and "smaller --size" in err
