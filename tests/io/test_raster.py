"""PNG/JPEG/TIFF reading and PNG writing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage

from medgan.errors import MedganError
from medgan.io import read_image, read_raster, write_png


def test_png_8bit_round_trip(tmp_path):
    grey = np.arange(256, dtype=np.float32).reshape(16, 16)
    write_png(tmp_path / "g.png", grey, value_range=(0, 255))
    image = read_image(tmp_path / "g.png")
    np.testing.assert_array_equal(image.array, grey)
    assert image.meta.format == "png" and image.meta.dtype == "uint8" and image.meta.extra["bit_depth"] == 8
    assert image.meta.value_range == (0.0, 255.0)


def test_png_16bit_round_trip(tmp_path):
    values = np.linspace(-1000, 3000, 20 * 10).reshape(20, 10)
    write_png(tmp_path / "g16.png", values, bits=16)  # default range = min..max
    image = read_raster(tmp_path / "g16.png")
    assert image.meta.dtype == "uint16" and image.meta.extra["bit_depth"] == 16
    assert image.array.min() == 0 and image.array.max() == 65535
    np.testing.assert_allclose(image.array / 65535 * 4000 - 1000, values, atol=4000 / 65535)


def test_constant_image_writes_zeros(tmp_path):
    write_png(tmp_path / "c.png", np.full((4, 4), 7.0))
    assert read_raster(tmp_path / "c.png").array.max() == 0


def test_tiff_16bit(tmp_path):
    stored = (np.arange(60, dtype=np.uint16).reshape(6, 10) * 1000).astype(np.uint16)
    PILImage.fromarray(stored).save(tmp_path / "x.tif")
    image = read_image(tmp_path / "x.tif")
    assert image.meta.format == "tiff" and image.meta.dtype == "uint16" and image.meta.extra["bit_depth"] == 16
    np.testing.assert_array_equal(image.array, stored)


def test_rgb_to_grey_and_alpha(tmp_path):
    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 10, 20, 200, 128
    PILImage.fromarray(rgba, mode="RGBA").save(tmp_path / "c.png")
    colour = read_image(tmp_path / "c.png")
    assert colour.array.shape == (3, 4, 3)
    np.testing.assert_array_equal(colour.array[1, 2], [10, 20, 200])
    grey = read_image(tmp_path / "c.png", grey=True)
    assert grey.array.shape == (3, 4)
    np.testing.assert_allclose(grey.array, 0.299 * 10 + 0.587 * 20 + 0.114 * 200, rtol=1e-6)


def test_palette_and_jpeg(tmp_path):
    img = PILImage.new("P", (5, 4))
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.putpixel((1, 1), 1)
    img.save(tmp_path / "p.png")
    arr = read_raster(tmp_path / "p.png").array
    assert arr.shape == (4, 5, 3) and list(arr[1, 1]) == [255, 0, 0]

    PILImage.fromarray(np.full((8, 8), 120, np.uint8)).save(tmp_path / "j.jpg", quality=95)
    image = read_image(tmp_path / "j.jpg")
    assert image.meta.format == "jpeg" and image.array.shape == (8, 8)
    assert abs(float(image.array.mean()) - 120) < 2


def test_truncated_png(tmp_path):
    rng = np.random.default_rng(0)
    PILImage.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(MedganError, match="truncated or corrupt"):
        read_image(tmp_path / "t.png")


def test_write_png_rejects_bad_input(tmp_path):
    with pytest.raises(MedganError, match="bits"):
        write_png(tmp_path / "a.png", np.zeros((2, 2)), bits=12)
    with pytest.raises(MedganError, match="16-bit colour"):
        write_png(tmp_path / "a.png", np.zeros((2, 2, 3)), bits=16)
    with pytest.raises(MedganError, match="non-finite"):
        write_png(tmp_path / "a.png", np.array([[np.nan, 1.0]]))
    assert not (tmp_path / "a.png").exists()


def test_a_refused_image_leaves_pillows_guard_as_it_was(tmp_path, monkeypatch):
    PILImage.fromarray(np.zeros((30, 40), np.uint8)).save(tmp_path / "a.tif")
    before = PILImage.MAX_IMAGE_PIXELS
    monkeypatch.setenv("MEDGAN_MAX_PIXELS", "1000")
    with pytest.raises(MedganError, match=r"a.tif: declares an image of 30 x 40 .*MEDGAN_MAX_PIXELS=1200"):
        read_raster(tmp_path / "a.tif")
    assert PILImage.MAX_IMAGE_PIXELS == before
    monkeypatch.setenv("MEDGAN_MAX_PIXELS", "1200")
    assert read_raster(tmp_path / "a.tif").array.shape == (30, 40) and PILImage.MAX_IMAGE_PIXELS == before
