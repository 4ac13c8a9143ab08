"""Geometry of what segment, detect and enhance write for an oblique, anisotropic NIfTI.

The input's affine rotates the voxel axes (not a diagonal matrix) and its voxels are 0.7 x
0.9 x 3 mm; an L-shaped bright block away from the centre (asymmetric, so a flip or a
transposition moves it) must come out at the same voxels under the same affine, i.e. at the
same place in the patient. Hand-made models (a threshold segmentor, an autoencoder whose
reconstruction is empty, an identity or bicubic enhancer) make the expected outputs exact.
"""

from __future__ import annotations

import json
import warnings

import nibabel as nib
import numpy as np
import pytest
import torch
from torch import nn

from medgan.cli import main
from medgan.data.intensity import IntensityMap

SPACING = (0.7, 0.9, 3.0)  # mm along i, j, k (k: the slice axis)
SHAPE = (40, 28, 6)  # (i, j, k)


def _rotation(degrees_z: float, degrees_x: float) -> np.ndarray:
    a, b = np.radians(degrees_z), np.radians(degrees_x)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


def oblique_affine() -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = _rotation(25.0, 12.0) @ np.diag(SPACING)
    affine[:3, 3] = [-12.3, 40.1, 7.5]
    return affine


def l_block() -> np.ndarray:
    """``SHAPE`` booleans: an L in slices 1..3, in the (+i, -j) corner, away from the centre."""
    block = np.zeros(SHAPE, bool)
    block[25:34, 3:7, 1:4] = True  # the L's foot along i
    block[25:29, 7:17, 1:4] = True  # its leg along j
    return block


@pytest.fixture
def oblique_nifti(tmp_path):
    """``(path, block, affine as nibabel stores it)``: 800 inside the L, 100 around it."""
    block = l_block()
    path = tmp_path / "in" / "oblique.nii.gz"
    path.parent.mkdir()
    nib.save(nib.Nifti1Image(np.where(block, 800.0, 100.0).astype(np.float32), oblique_affine()), path)
    stored = nib.load(path).affine  # float32 in the header: the affine an output must equal
    assert not np.allclose(stored[:3, :3], np.diag(np.diag(stored[:3, :3])))  # really oblique
    return path, block, stored


def world_centroid(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    ijk = np.argwhere(mask).mean(0)
    return (affine @ np.r_[ijk, 1.0])[:3]


# --------------------------------------------------------------------------- segment


class _Threshold(nn.Module):
    def forward(self, x):  # foreground where x > 0, i.e. above the middle of the model's range
        return torch.cat([torch.zeros_like(x), 50 * x], 1)


@pytest.mark.parametrize("resize", [None, {"size": 32, "mode": "pad"}, {"size": 20, "mode": "crop"}],
                         ids=["native", "trained-at-32-pad", "trained-at-20-crop"])
def test_segment_keeps_an_oblique_affine_and_labels_the_structure_where_it_is(tmp_path, oblique_nifti, resize):
    """At the native scale the label map is the block voxel for voxel; through a training
    scale (slices 28x40 resized by 0.8 and back) the L stays in place to under a third of a voxel."""
    from medgan.tasks.segment.inference import segment_path
    from medgan.tasks.segment.recipe import SegmentationModel

    path, block, affine = oblique_nifti
    info = {"step": 0, "model": "unet", "source": "test", **({"resize": resize} if resize else {})}
    model = SegmentationModel(segmentor=_Threshold(), intensity=IntensityMap(0.0, 1000.0), class_names=["background", "lesion"],
                              label_values=[0, 1], multiple=1, info=info)
    out = segment_path(model, path.parent, tmp_path / "out", progress=False)
    written = nib.load(out / "oblique.nii.gz")
    assert np.array_equal(written.affine, affine) and written.shape == SHAPE
    labels = np.asarray(written.dataobj)
    found, truth = world_centroid(labels == 1, written.affine), world_centroid(block, affine)
    if resize is None:
        assert np.array_equal(labels, block.astype(np.uint8))  # voxel for voxel under the same affine
        np.testing.assert_allclose(found, truth, atol=1e-6)
    else:
        dice = 2 * ((labels == 1) & block).sum() / ((labels == 1).sum() + block.sum())
        assert dice > 0.9 and np.array_equal(labels[..., [0, 4, 5]], np.zeros_like(labels[..., [0, 4, 5]]))
        # mm: resizing a small L by 0.8 and back moves its edges by up to a fifth of a pixel (measured 0.15 mm);
        # half a voxel (0.35 mm) would be a misaligned resize, a flip or transposition moves it by millimetres
        assert np.linalg.norm(found - truth) < 0.3 * min(SPACING)
    entry = json.loads((out / "summary.json").read_text())["inputs"]["oblique.nii.gz"]
    assert entry["spacing_mm"] == pytest.approx(SPACING[::-1], abs=1e-6)  # (d, h, w) = (k, j, i)
    assert entry["classes"]["lesion"]["volume_ml"] == pytest.approx((labels == 1).sum() * np.prod(SPACING) / 1000, abs=1e-4)


def test_segment_cli_on_a_nifti_writes_a_label_map_on_the_inputs_grid(tmp_path, oblique_nifti):
    """`medgan segment RUN file.nii.gz` end to end with a trained (tiny) run: a label map of
    the input's shape and exact affine, the run's label values, and volumes.csv = voxel count
    x voxel volume of that map."""
    import csv

    path, _, affine = oblique_nifti
    run = tmp_path / "run"
    assert main(["train", "segment", "--data", "phantom", "--n-images", "8", "--lesion-fraction", "1", "--size", "32",
                 "--adversarial", "off", "--steps", "2", "--batch-size", "4", "--width", "8", "--depth", "2", "--holdout", "0",
                 "--run-dir", str(run), "--no-progress"]) == 0
    out = tmp_path / "seg"
    assert main(["segment", str(run), str(path), "--out", str(out), "--no-progress"]) == 0
    written = nib.load(out / "oblique.nii.gz")
    assert np.array_equal(written.affine, affine) and written.shape == SHAPE and written.get_data_dtype() == np.uint8
    labels = np.asarray(written.dataobj)
    assert set(np.unique(labels).tolist()) <= {0, 1}
    assert (out / "oblique.overlay.png").is_file()
    (row,) = list(csv.DictReader(open(out / "volumes.csv")))
    assert row["input"] == "oblique.nii.gz" and int(row["pixels"]) == int((labels == 1).sum())
    voxel = float(np.prod(written.header.get_zooms()[:3]))
    assert voxel == pytest.approx(np.prod(SPACING), rel=1e-6)
    assert float(row["volume_ml"]) == pytest.approx((labels == 1).sum() * voxel / 1000, abs=1e-4)


# --------------------------------------------------------------------------- detect


class _Empty(nn.Module):
    def forward(self, z):  # a reconstruction of air: the map |x - x^| is then x + 1
        return torch.full_like(z, -1.0)


def test_detect_keeps_an_oblique_affine_and_maps_the_structure_where_it_is(tmp_path, oblique_nifti):
    from medgan.tasks.anomaly.detect import detect_path
    from medgan.tasks.anomaly.recipe import AnomalyModel

    path, block, affine = oblique_nifti
    model = AnomalyModel(method="ae", nets={"encoder": nn.Identity(), "generator": _Empty()}, intensity=IntensityMap(0.0, 1000.0),
                         kappa=0.0, info={"step": 0, "anomaly": {"map_sigma": 0.0, "image_score": "method"},
                                          "resize": {"size": max(SHAPE[:2]), "mode": "pad"}})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not calibrated")
        out = detect_path(model, path, tmp_path / "out", progress=False)
    written = nib.load(out / "oblique.map.nii.gz")
    assert np.array_equal(written.affine, affine) and written.shape == SHAPE
    expected = np.where(block, 1.6, 0.2)  # forward(800) + 1, forward(100) + 1
    np.testing.assert_allclose(np.asarray(written.dataobj), expected, atol=1e-5)
    np.testing.assert_allclose(world_centroid(np.asarray(written.dataobj) > 1, written.affine), world_centroid(block, affine), atol=1e-6)


# --------------------------------------------------------------------------- enhance


class _Bicubic(nn.Module):
    def forward(self, x):
        return nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)


def _enhancer(net: nn.Module, scale: int):
    from medgan.tasks.enhance.recipe import EnhanceTask

    info = {"task": "enhance", "intensity": {"low": -1000.0, "high": 1000.0, "units": "HU"}, "scale": scale, "multiple": 16,
            "model": "unet-test", "step": 0, "degradation": {"noise": 20}}
    return EnhanceTask.from_pretrained({"generator": (net, info)})


def test_enhance_keeps_an_oblique_affine_and_the_structure_where_it_is(tmp_path, oblique_nifti):
    from medgan.tasks.enhance.inference import enhance_path

    path, block, affine = oblique_nifti
    out = enhance_path(_enhancer(nn.Identity(), 1), path, tmp_path / "same.nii.gz", progress=False)
    written = nib.load(out)
    assert np.array_equal(written.affine, affine) and written.shape == SHAPE
    np.testing.assert_allclose(np.asarray(written.dataobj), np.where(block, 800.0, 100.0), atol=1e-2)


def test_enhance_super_resolution_keeps_an_oblique_structure_at_its_world_position(tmp_path, oblique_nifti):
    """x2 in-plane (i and j): the voxel axes i, j halve, k keeps its 3 mm, and the L's
    centre (the voxels above half its height) stays where it was in the patient."""
    from medgan.tasks.enhance.inference import enhance_path

    path, block, affine = oblique_nifti
    out = enhance_path(_enhancer(_Bicubic(), 2), path, tmp_path / "sr.nii.gz", progress=False)
    written = nib.load(out)
    assert written.shape == (2 * SHAPE[0], 2 * SHAPE[1], SHAPE[2])
    np.testing.assert_allclose(written.affine[:3, :2], affine[:3, :2] / 2, atol=1e-6)  # same directions, half the spacing
    np.testing.assert_allclose(written.affine[:3, 2], affine[:3, 2], atol=1e-6)
    np.testing.assert_allclose(written.header.get_zooms()[:3], (SPACING[0] / 2, SPACING[1] / 2, SPACING[2]), atol=1e-5)
    data = np.asarray(written.dataobj)
    found = world_centroid(data > 450.0, written.affine)  # half-way between 100 and 800
    # mm: bicubic keeps the centre to float rounding; an origin left unmoved would put it 0.29 mm off
    assert np.linalg.norm(found - world_centroid(block, affine)) < 0.02
