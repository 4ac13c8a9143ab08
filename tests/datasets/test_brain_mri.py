"""The embedded brain-mri slices load with the documented layout."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from medgan.datasets import load_brain_mri, load_embedded
from medgan.errors import MedganError


def test_layout_labels_and_groups():
    s = load_brain_mri()
    n = len(s)
    assert s.images.shape == (n, 64, 64) and s.images.dtype == np.float32
    assert 0 <= s.images.min() and s.images.max() <= 255 and s.images.max() > 200
    assert s.value_range == (0, 255) and s.name == "brain-mri"
    assert s.class_names == ["axial", "coronal", "sagittal"]
    assert set(np.unique(s.labels)) == {0, 1, 2}
    assert s.mask_names == ["background", "grey matter", "white matter"]
    assert s.masks.shape == (n, 64, 64) and s.masks.dtype == np.uint8
    assert set(np.unique(s.groups)) == {0, 1}
    # Groups are the subject named in each source string.
    for g, src in zip(s.groups, s.sources):
        assert src.startswith("MNI152-2009c" if g == 0 else "Colin27")
    for subject in (0, 1):
        assert set(np.unique(s.labels[s.groups == subject])) == {0, 1, 2}
    mni = s.masks[s.groups == 0]
    assert set(np.unique(mni)) == {0, 1, 2}
    # Masks sit on the brain: tissue labels only where the image is not background.
    assert (s.images[s.masks > 0] > 0).mean() > 0.99
    assert s.extra["heads"] == 2 and "Fonov" in s.extra["attribution"]


def test_orientation_filter_and_no_masks():
    s = load_embedded("brain-mri", orientation="sagittal", with_masks=False)
    assert set(np.unique(s.labels)) == {2}
    assert s.masks is None and all(" sagittal " in src for src in s.sources)
    with pytest.raises(MedganError, match="axial"):
        load_brain_mri(orientation="oblique")


def test_builder_slices_radiologically():
    """The builder's slicing: patient right on the image left, anterior/superior up."""
    path = Path(__file__).parents[2] / "scripts" / "build_brain_mri.py"
    spec = importlib.util.spec_from_file_location("build_brain_mri", path)
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    vol = np.zeros((5, 6, 7))  # RAS+: x -> patient right, y -> anterior, z -> superior
    vol[4, 2, 3] = 1  # far right
    vol[2, 5, 3] = 2  # most anterior
    vol[2, 2, 6] = 3  # most superior
    axial = build.radiological(vol, "axial", 3)  # (y, x) rows anterior -> posterior
    assert axial.shape == (6, 5)
    assert axial[3, 0] == 1 and axial[0, 2] == 2  # right on the left, anterior on top
    coronal = build.radiological(vol, "coronal", 2)
    assert coronal[3, 0] == 1 and coronal[0, 2] == 3  # right on the left, superior on top
    sagittal = build.radiological(vol, "sagittal", 2)
    assert sagittal[3, 0] == 2 and sagittal[0, 3] == 3  # anterior on the left, superior on top
