"""Hostile files end in one error line, with memory bounded, for every reader.

Each hostile file is small on disk but declares an enormous image: a PNG or TIFF of
20000 x 20000 zeros (a decompression bomb), ``.npy`` / ``.npz`` headers declaring a 50000^3
array, a zip member of 400 MB of compressed zeros, a DICOM whose NumberOfFrames x Rows x
Columns need a million times its pixel data or whose RLE data decode to 400 million pixels, a
``.nii.gz`` of 400 million zero voxels. Each is read in a child process whose address space
is capped (``RLIMIT_AS``): 1 GiB for the readers alone (medgan.io imports in ~0.2 GiB),
2 GiB for the command line (torch takes ~0.7 GiB of address space to import; ``segment`` and
``detect`` run a tiny model in under 1.2 GiB). Every bomb needs more than the cap (the
float32 image alone is 1.5 GiB or far more), so a reader that allocates before checking
ends in a MemoryError traceback, not in the one line asserted here.
"""

from __future__ import annotations

import gzip
import io
import os
import resource
import struct
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image as PILImage
from pydicom.encaps import encapsulate
from pydicom.uid import RLELossless

from medgan.errors import MedganError
from medgan.io import limits, read_dicom_series, read_image, read_nifti, read_raster
from tests.conftest import make_dicom

GiB = 1 << 30
READER_CAP = 1 * GiB
CLI_CAP = 2 * GiB
BOMB = 20000  # side of the PNG/TIFF/RLE bombs: 400 million pixels, 1.5 GiB as float32

READ = """
import sys
from medgan.errors import MedganError
from medgan.io import read_image
try:
    read_image(sys.argv[1])
except MedganError as error:
    sys.exit(f"medgan: error: {error}")
"""


def run_capped(args: list[str], cap: int, cwd: Path) -> subprocess.CompletedProcess:
    """``python ARGS`` with its address space capped at ``cap`` bytes, the default limit."""
    env = {k: v for k, v in os.environ.items() if k != limits.ENV_VAR}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (cap, cap)),
    )


def assert_one_line(proc: subprocess.CompletedProcess, path: Path, expected: str) -> None:
    """Non-zero exit; stderr is one error line (besides medgan's own warnings) naming the file."""
    assert proc.returncode != 0, proc.stderr
    assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("medgan: warning:")]
    assert len(lines) == 1 and lines[0].startswith("medgan: error:"), proc.stderr
    assert path.name in lines[0] and expected in lines[0], lines[0]


# ----------------------------------------------------------------------------- hostile files


def _npy_header(shape: tuple[int, ...], descr: str) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _png_bomb(path: Path) -> None:
    PILImage.new("1", (BOMB, BOMB)).save(path)  # ~50 KB


def _tiff_bomb(path: Path) -> None:
    PILImage.new("1", (BOMB, BOMB)).save(path, compression="group4")  # ~12 KB


def _npy_huge(path: Path) -> None:
    path.write_bytes(_npy_header((50000,) * 3, "<f4") + bytes(128))  # declares 455 TiB


def _npz_huge(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("image.npy", _npy_header((50000,) * 3, "<f4") + bytes(128))


def _npz_zip_bomb(path: Path) -> None:
    """A truthful member: 400 MB of real zeros, deflated to ~400 KB; only the limit stops it."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("image.npy", "w", force_zip64=True) as member:
            member.write(_npy_header((BOMB, BOMB), "|u1"))
            chunk = bytes(BOMB * 1000)
            for _ in range(BOMB // 1000):
                member.write(chunk)


def _dicom_short(path: Path) -> None:
    """NumberOfFrames x Rows x Columns of 4 x 4096 x 4096 (128 MiB) over 128 bytes of pixel data."""
    make_dicom(path, np.zeros((8, 8), np.uint16))
    ds = pydicom.dcmread(path)
    ds.Rows, ds.Columns, ds.NumberOfFrames = 4096, 4096, 4
    ds.save_as(path)


def _dicom_rle_bomb(path: Path) -> None:
    """RLE Lossless pixel data that decode to 20000 x 20000 zeros (~6 MB on disk)."""
    make_dicom(path, np.zeros((8, 8), np.uint8))
    ds = pydicom.dcmread(path)
    segment = b"\x81\x00" * (BOMB * BOMB // 128)  # PackBits: each pair repeats 0 128 times
    frame = struct.pack("<16I", 1, 64, *[0] * 14) + segment  # RLE header: one segment at offset 64
    ds.Rows = ds.Columns = BOMB
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.save_as(path, enforce_file_format=True)


def _nifti_bomb(path: Path) -> None:
    """A .nii.gz whose 2048 x 2048 x 96 uint8 voxels (400 MB) are really there, as zeros."""
    header = nib.Nifti1Header()
    header.set_data_shape((2048, 2048, 96))
    header.set_data_dtype(np.uint8)
    header["vox_offset"] = 352
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(header.binaryblock + bytes(4))  # 348-byte header + empty extension flag
        chunk = bytes(2048 * 2048)
        for _ in range(96):
            f.write(chunk)


# name -> (file name, builder, what the error line must say)
HOSTILE: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "png-bomb": ("bomb.png", _png_bomb, "20000 x 20000"),
    "tiff-bomb": ("bomb.tif", _tiff_bomb, "20000 x 20000"),
    "npy-huge-header": ("huge.npy", _npy_huge, "holds only"),
    "npz-huge-header": ("huge.npz", _npz_huge, "holds only"),
    "npz-zip-bomb": ("zeros.npz", _npz_zip_bomb, "above medgan's limit"),
    "dicom-short-pixel-data": ("short.dcm", _dicom_short, "holds only"),
    "dicom-rle-bomb": ("rle.dcm", _dicom_rle_bomb, "above medgan's limit"),
    "nifti-gz-bomb": ("zeros.nii.gz", _nifti_bomb, "above medgan's limit"),
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Callable[[str], Path]:
    """``hostile(name)``: the file of one case, written once per module."""
    folder = tmp_path_factory.mktemp("hostile")
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            file, build, _ = HOSTILE[name]
            build(folder / file)
            made[name] = folder / file
        return made[name]

    return get


@pytest.mark.parametrize("case", list(HOSTILE))
def test_each_reader_refuses_a_hostile_file_in_one_line_under_a_memory_cap(hostile, case, tmp_path):
    path = hostile(case)
    proc = run_capped(["-c", READ, str(path)], READER_CAP, tmp_path)
    assert_one_line(proc, path, HOSTILE[case][2])


@pytest.mark.parametrize("case", list(HOSTILE))
def test_data_show_refuses_a_hostile_file_in_one_line_and_writes_nothing(hostile, case, tmp_path):
    path = hostile(case)
    out = tmp_path / "grid.png"
    proc = run_capped(["-m", "medgan", "data", "show", str(path), "--out", str(out)], CLI_CAP, tmp_path)
    assert_one_line(proc, path, HOSTILE[case][2])
    assert list(tmp_path.iterdir()) == []


def _npz_side_array_huge(path: Path, key: str = "value_range", images: str = "images") -> None:
    """A valid set of 4 images beside a member ``key`` whose header declares a 50000^3 array."""
    with zipfile.ZipFile(path, "w") as archive:
        with archive.open(f"{images}.npy", "w") as member:
            np.lib.format.write_array(member, np.zeros((4, 8, 8), np.uint8))
        archive.writestr(f"{key}.npy", _npy_header((50000,) * 3, "<f8") + bytes(16))


@pytest.mark.parametrize("key", ["value_range", "class_names", "units", "groups"])
def test_data_show_refuses_an_npz_side_array_declaring_a_huge_shape_in_one_line(key, tmp_path):
    """The arrays an ImageSet npz keeps beside its images are checked like the images are."""
    path = tmp_path / "data" / "set.npz"
    path.parent.mkdir()
    _npz_side_array_huge(path, key)
    out = tmp_path / "grid.png"
    proc = run_capped(["-m", "medgan", "data", "show", str(path), "--out", str(out)], CLI_CAP, tmp_path)
    assert_one_line(proc, path, f"declares array '{key}' of 50000 x 50000 x 50000")
    assert "holds only" in proc.stderr and not out.exists()


def test_a_medmnist_archive_declaring_a_huge_member_is_refused_in_one_line(tmp_path, monkeypatch):
    """A downloaded MedMNIST file (here one already in $MEDGAN_DATA_DIR) is an archive like any other."""
    folder = tmp_path / "medmnist"
    folder.mkdir()
    path = folder / "pneumoniamnist.npz"
    _npz_side_array_huge(path, "train_labels", images="train_images")
    monkeypatch.setenv("MEDGAN_DATA_DIR", str(folder))
    out = tmp_path / "grid.png"
    proc = run_capped(["-m", "medgan", "data", "show", "pneumoniamnist", "--out", str(out)], CLI_CAP, tmp_path)
    assert_one_line(proc, path, "declares array 'train_labels' of 50000 x 50000 x 50000")
    assert not out.exists()


# ----------------------------------------------------------------------------- segment, detect


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> dict[str, Path]:
    """A one-step segmentation run and a calibrated one-step anomaly run on phantoms (~5 s)."""
    from medgan.cli import main

    folder = tmp_path_factory.mktemp("runs")
    runs = {"segment": folder / "segment", "detect": folder / "anomaly"}
    assert main(["train", "segment", "--data", "phantom", "--n-images", "8", "--lesion-fraction", "1", "--size", "32",
                 "--steps", "1", "--batch-size", "4", "--width", "4", "--depth", "1", "--adversarial", "off",
                 "--holdout", "0", "--run-dir", str(runs["segment"]), "--no-progress"]) == 0
    assert main(["train", "anomaly", "--method", "ae", "--data", "phantom", "--n-images", "16", "--size", "32", "--width", "4",
                 "--steps", "1", "--batch-size", "4", "--holdout", "0.5", "--alpha", "0.25", "--run-dir", str(runs["detect"]),
                 "--no-progress"]) == 0
    return runs


@pytest.mark.parametrize("command", ["segment", "detect"])
def test_segment_and_detect_refuse_the_png_bomb_in_one_line_and_leave_no_output(hostile, tiny_runs, command, tmp_path):
    path = hostile("png-bomb")
    out = tmp_path / "out"
    proc = run_capped(["-m", "medgan", command, str(tiny_runs[command]), str(path), "--out", str(out), "--no-progress"],
                      CLI_CAP, tmp_path)
    assert_one_line(proc, path, "20000 x 20000")
    assert not out.exists() and list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- the limit itself


def test_the_limit_moves_with_medgan_max_pixels_and_a_bad_value_is_named(tmp_path, monkeypatch):
    PILImage.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "a.png")
    np.save(tmp_path / "a.npy", np.zeros((64, 64), np.float32))
    monkeypatch.setenv(limits.ENV_VAR, "4000")
    for name in ("a.png", "a.npy"):
        with pytest.raises(MedganError, match=rf"{name}: declares .*64 x 64.*above medgan's limit.*MEDGAN_MAX_PIXELS=4096"):
            read_image(tmp_path / name)
    monkeypatch.setenv(limits.ENV_VAR, "4096")
    assert read_image(tmp_path / "a.png").array.shape == read_image(tmp_path / "a.npy").array.shape == (64, 64)
    monkeypatch.setenv(limits.ENV_VAR, "lots")
    with pytest.raises(MedganError, match="MEDGAN_MAX_PIXELS='lots' is not a positive whole number"):
        read_image(tmp_path / "a.png")


def test_pillows_guard_gives_way_to_medgans_limit_and_is_restored(tmp_path, monkeypatch):
    PILImage.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "a.png")
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 100)  # Pillow alone would refuse 4096 pixels (> 2 x 100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nor may its DecompressionBombWarning get through
        assert read_raster(tmp_path / "a.png").array.shape == (64, 64)
    assert PILImage.MAX_IMAGE_PIXELS == 100


def test_a_dicom_series_is_held_to_the_limit_as_one_volume(ct_series, monkeypatch):
    folder, stored, _ = ct_series  # 4 slices of 6 x 5
    monkeypatch.setenv(limits.ENV_VAR, "100")  # each slice (30) passes, the volume (120) does not
    with pytest.raises(MedganError, match=r"series: declares a volume of 4 x 6 x 5 .*above medgan's limit"):
        read_dicom_series(folder)
    monkeypatch.setenv(limits.ENV_VAR, "120")
    assert read_dicom_series(folder).array.shape == stored.shape


def test_a_nifti_volume_is_held_to_the_limit_before_loading(nifti_volume, monkeypatch):
    monkeypatch.setenv(limits.ENV_VAR, str(20 * 24 * 16 - 1))
    with pytest.raises(MedganError, match=r"head.nii.gz: declares a volume of 20 x 24 x 16 .*MEDGAN_MAX_PIXELS=7680"):
        read_nifti(nifti_volume)


def test_an_npz_member_that_is_not_an_npy_array_is_refused_unread(tmp_path):
    with zipfile.ZipFile(tmp_path / "odd.npz", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("image", bytes(50_000_000))  # np.load would hand back all 50 MB as bytes
    with pytest.raises(MedganError, match=r"odd.npz: array 'image' is not a .npy array"):
        read_image(tmp_path / "odd.npz")


def test_npz_array_checks_any_member_before_loading_it(tmp_path):
    """The helper for callers that read side arrays of an archive themselves (value_range ...)."""
    from medgan.io.arrays import npz_array

    with zipfile.ZipFile(tmp_path / "side.npz", "w") as archive:
        archive.writestr("value_range.npy", _npy_header((50000,) * 3, "<f8") + bytes(16))
    with np.load(tmp_path / "side.npz", allow_pickle=False) as npz:
        with pytest.raises(MedganError, match=r"side.npz: declares array 'value_range' of 50000 x 50000 x 50000 .*holds only"):
            npz_array(npz, "value_range", tmp_path / "side.npz")


def test_a_collection_is_held_to_the_limit_per_image_and_to_memory_as_a_whole(tmp_path, monkeypatch):
    """A MedMNIST-style stack of many small images is not one huge image: the limit holds per
    image (a 64 x 64 image passes a limit of 4096 values in a stack of 10), while the
    stack as a whole must fit in the memory available."""
    from medgan.io.arrays import read_npz_collection

    np.savez(tmp_path / "set.npz", train_images=np.zeros((10, 64, 64), np.uint8), train_labels=np.zeros((10, 1), np.int64))
    monkeypatch.setenv(limits.ENV_VAR, "4096")
    assert read_npz_collection(tmp_path / "set.npz")[0].shape == (10, 64, 64)
    monkeypatch.setenv(limits.ENV_VAR, "4095")
    with pytest.raises(MedganError, match=r"set.npz: declares array 'train_images' of 10 x 64 x 64, images of 64 x 64 .*above medgan's limit"):
        read_npz_collection(tmp_path / "set.npz")
    monkeypatch.delenv(limits.ENV_VAR)
    monkeypatch.setattr(limits, "available_memory", lambda: 10 * 64 * 64 * 4 - 1)
    with pytest.raises(MedganError, match=r"set.npz: declares array 'train_images' of 10 x 64 x 64 \(160.0 KiB as float32\), more than the 160.0 KiB of memory"):
        read_npz_collection(tmp_path / "set.npz")
