"""NIfTI: layout, affine permutation, bit-identical round trip, 2D and 4D handling."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from medgan.errors import MedganError
from medgan.io import read_image, read_nifti, write_nifti


def _affine() -> np.ndarray:
    # Oblique, anisotropic, with an offset: a wrong column permutation cannot pass.
    a = np.array([[-0.9, 0.1, 0.0, 90.5], [0.05, 1.1, -0.2, -120.25], [0.0, 0.3, 2.5, -60.0], [0, 0, 0, 1]])
    return a.astype(np.float32).astype(np.float64)  # as stored in an sform


def test_layout_and_affine(tmp_path):
    data = np.random.default_rng(0).normal(size=(5, 4, 3)).astype(np.float32)  # (i, j, k)
    nib.save(nib.Nifti1Image(data, _affine()), tmp_path / "v.nii.gz")
    image = read_image(tmp_path / "v.nii.gz")
    assert image.array.shape == (3, 4, 5)  # (D, H, W) = (k, j, i)
    np.testing.assert_array_equal(image.array, data.transpose(2, 1, 0))
    d, h, w = 2, 1, 4
    np.testing.assert_allclose(image.meta.affine @ [d, h, w, 1], _affine() @ [w, h, d, 1])
    assert image.meta.spacing == pytest.approx(tuple(nib.load(tmp_path / "v.nii.gz").header.get_zooms()[::-1]))
    assert image.meta.extra["shape_ijk"] == [5, 4, 3] and image.meta.extra["volume"] is None


def test_round_trip_bit_identical(tmp_path):
    data = np.random.default_rng(1).normal(size=(6, 5, 4)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, _affine()), tmp_path / "a.nii")
    first = read_nifti(tmp_path / "a.nii")
    write_nifti(tmp_path / "b.nii.gz", first.array, meta=first.meta)
    second = read_nifti(tmp_path / "b.nii.gz")
    assert second.array.tobytes() == first.array.tobytes()
    assert second.meta.affine.tobytes() == first.meta.affine.tobytes()
    # and what nibabel sees is the original
    again = nib.load(tmp_path / "b.nii.gz")
    assert np.asarray(again.dataobj).tobytes() == data.tobytes()
    np.testing.assert_array_equal(again.affine, _affine())


def test_2d_nifti(tmp_path):
    data = np.arange(12, dtype=np.int16).reshape(4, 3, 1)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "s.nii.gz")
    image = read_nifti(tmp_path / "s.nii.gz")
    assert image.array.shape == (3, 4)
    np.testing.assert_array_equal(image.array, data[:, :, 0].T)
    assert image.meta.dtype == "int16"
    write_nifti(tmp_path / "s2.nii.gz", image.array, meta=image.meta)
    np.testing.assert_array_equal(read_nifti(tmp_path / "s2.nii.gz").array, image.array)


def test_4d_requires_volume(tmp_path):
    data = np.stack([np.full((3, 3, 2), t, np.float32) for t in range(4)], axis=-1)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "t.nii.gz")
    with pytest.raises(MedganError, match=r"4D NIfTI with 4 volumes.*--volume N \(0\.\.3\)"):
        read_image(tmp_path / "t.nii.gz")
    image = read_image(tmp_path / "t.nii.gz", volume=2)
    assert image.array.shape == (2, 3, 3) and np.all(image.array == 2)
    assert image.meta.extra["volume"] == 2
    with pytest.raises(MedganError, match="out of range"):
        read_nifti(tmp_path / "t.nii.gz", volume=4)


def test_nan_pixels_rejected(tmp_path):
    data = np.ones((3, 3, 3), np.float32)
    data[0, 0, 0] = np.nan
    data[1, 1, 1] = np.inf
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "nan.nii.gz")
    with pytest.raises(MedganError, match="2 non-finite.*fix or remove") as err:
        read_image(tmp_path / "nan.nii.gz")
    assert "nan.nii.gz" in str(err.value)


def test_truncated_nifti(tmp_path):
    nib.save(nib.Nifti1Image(np.ones((20, 20, 20), np.float32), np.eye(4)), tmp_path / "c.nii.gz")
    data = (tmp_path / "c.nii.gz").read_bytes()
    (tmp_path / "c.nii.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(MedganError, match="truncated or corrupt"):
        read_image(tmp_path / "c.nii.gz")


def test_identity_affine_default_and_bad_name(tmp_path):
    write_nifti(tmp_path / "x.nii", np.zeros((2, 3, 4)))
    assert np.array_equal(read_nifti(tmp_path / "x.nii").meta.affine, np.eye(4))
    with pytest.raises(MedganError, match=".nii"):
        write_nifti(tmp_path / "x.img", np.zeros((2, 3, 4)))


def _lying_header(tmp_path, dims, gz: bool, members: int = 1):
    """A valid 16x16x8 float32 file whose header then claims ``dims``."""
    import gzip
    import struct

    nib.save(nib.Nifti1Image(np.ones((16, 16, 8), np.float32), np.eye(4)), tmp_path / "src.nii")
    raw = bytearray((tmp_path / "src.nii").read_bytes())
    struct.pack_into("<4h", raw, 40, len(dims), *dims)  # dim[0..3]
    path = tmp_path / ("lie.nii.gz" if gz else "lie.nii")
    if gz:
        cut = len(raw) // 2
        parts = [raw] if members == 1 else [raw[:cut], raw[cut:]]
        path.write_bytes(b"".join(gzip.compress(bytes(p)) for p in parts))
    else:
        path.write_bytes(raw)
    return path


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dims", [(4000, 4000, 4000), (16, 16, 80)])  # impossible / merely short
def test_header_declaring_more_voxels_than_the_file_holds(tmp_path, monkeypatch, gz, dims):
    path = _lying_header(tmp_path, dims, gz)
    monkeypatch.setattr(np, "asarray", lambda *a, **k: pytest.fail("allocated before checking the size"))
    with pytest.raises(MedganError, match=r"lie\.nii.*declares .*x.*voxels of float32.*holds less"):
        read_nifti(path)


def test_multi_member_gzip_is_counted_not_refused(tmp_path):
    path = _lying_header(tmp_path, (16, 16, 8), gz=True, members=2)  # honest header, two gzip members
    assert read_nifti(path).array.shape == (8, 16, 16)
    short = _lying_header(tmp_path, (16, 16, 9), gz=True, members=2)  # one slice more than stored
    with pytest.raises(MedganError, match="holds less"):
        read_nifti(short)
