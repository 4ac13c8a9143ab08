"""The reader contract: colour images and volumes are told apart the same way for every format."""

import nibabel as nib
import numpy as np
from PIL import Image as PILImage

from medgan.io import read_image


def test_colour_and_volume_flags(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    PILImage.fromarray(rgb).save(tmp_path / "c.png")
    np.save(tmp_path / "c.npy", rgb)
    nib.save(nib.Nifti1Image(np.ones((30, 20, 3), np.float32), np.eye(4)), tmp_path / "v.nii.gz")
    for name in ("c.png", "c.npy"):
        colour = read_image(tmp_path / name)
        assert colour.is_colour and not colour.is_volume and colour.array.shape == (20, 30, 3)
        grey = read_image(tmp_path / name, grey=True)
        assert not grey.is_colour and grey.array.shape == (20, 30)
    volume = read_image(tmp_path / "v.nii.gz")  # 3 slices of 20x30: a volume, not colour
    assert volume.is_volume and not volume.is_colour and volume.array.shape == (3, 20, 30)
