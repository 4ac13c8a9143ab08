import math
import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage

from medgan.errors import MedganError
from medgan.metrics import (
    average_surface_distance,
    dice,
    hausdorff95,
    iou,
    segmentation_metrics,
)


def _square(shape=(48, 48), top=10, left=10, size=10):
    mask = np.zeros(shape, dtype=bool)
    mask[top: top + size, left: left + size] = True
    return mask


def _blobs(shape, seed, level=0.3):
    """Irregular, non-symmetric masks: thresholded smoothed noise (several components)."""
    noise = np.random.default_rng(seed).normal(size=shape)
    return ndimage.gaussian_filter(noise, 2.5) > level * ndimage.gaussian_filter(noise, 2.5).std()


def test_identical_masks_are_perfect():
    mask = _blobs((40, 40), 0)
    assert dice(mask, mask) == 1.0 and iou(mask, mask) == 1.0
    assert hausdorff95(mask, mask) == 0.0 and average_surface_distance(mask, mask) == 0.0
    assert segmentation_metrics(mask, mask, spacing=(0.7, 0.7)) == {"dice": 1.0, "iou": 1.0, "hd95": 0.0, "asd": 0.0}


def test_shifted_squares_overlap_by_area():
    a, b = _square(), _square(top=13)  # 10x10 squares, 3 rows apart: overlap 7x10
    assert dice(a, b) == pytest.approx(2 * 70 / 200)
    assert iou(a, b) == pytest.approx(70 / 130)
    assert dice(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(0.7)  # tensors too


def test_concentric_squares_distances_are_hand_computed():
    outer, inner = _square(size=21, top=5, left=5), _square(size=11, top=10, left=10)
    # inner surface -> outer surface: every point is 5 pixels from the nearest side
    assert average_surface_distance(inner, outer, symmetric=False) == pytest.approx(5.0)
    # classic Hausdorff: an outer corner is sqrt(5^2 + 5^2) from the inner corner
    assert hausdorff95(inner, outer, percentile=100) == pytest.approx(5 * math.sqrt(2))
    # physical units: isotropic spacing scales every distance
    assert average_surface_distance(inner, outer, spacing=0.5, symmetric=False) == pytest.approx(2.5)
    assert hausdorff95(inner, outer, spacing=(0.5, 0.5), percentile=100) == pytest.approx(2.5 * math.sqrt(2))


def test_anisotropic_spacing_scales_each_axis():
    a = _square()
    down, right = _square(top=12), _square(left=12)  # shifted by 2 pixels along y, along x
    spacing = (3.0, 0.5)  # (sy, sx) in mm
    assert hausdorff95(a, down, percentile=100) == pytest.approx(2.0)
    assert hausdorff95(a, down, spacing=spacing, percentile=100) == pytest.approx(2 * 3.0)
    assert hausdorff95(a, right, spacing=spacing, percentile=100) == pytest.approx(2 * 0.5)
    assert hausdorff95(a, down, spacing=spacing) <= 6.0
    # 3-D: a cube shifted by one slice, with thick slices
    cube = np.zeros((12, 16, 16), dtype=bool)
    cube[3:8, 4:10, 4:10] = True
    shifted = np.roll(cube, 1, axis=0)
    assert hausdorff95(cube, shifted, spacing=(5.0, 0.8, 0.8), percentile=100) == pytest.approx(5.0)


def test_empty_mask_conventions():
    empty, mask = np.zeros((20, 20), bool), _square((20, 20), 5, 5, 6)
    assert dice(empty, empty) == 1.0 and iou(empty, empty) == 1.0
    assert hausdorff95(empty, empty) == 0.0 and average_surface_distance(empty, empty) == 0.0
    assert dice(empty, mask) == 0.0 and iou(mask, empty) == 0.0
    assert hausdorff95(empty, mask) == math.inf and average_surface_distance(mask, empty) == math.inf
    for both in [(empty, empty), (empty, mask)]:
        assert math.isnan(hausdorff95(*both, nan_for_empty=True))
        assert math.isnan(average_surface_distance(*both, nan_for_empty=True))
    assert math.isnan(dice(empty, empty, nan_for_empty=True)) and dice(empty, mask, nan_for_empty=True) == 0.0
    assert math.isnan(segmentation_metrics(empty, empty, nan_for_empty=True)["hd95"])


def test_multi_label_maps():
    pred, target = np.zeros((40, 40), np.int64), np.zeros((40, 40), np.int64)
    pred[_square((40, 40), 5, 5, 10)] = 1
    target[_square((40, 40), 7, 5, 10)] = 1  # label 1: dice 0.8
    pred[_square((40, 40), 22, 22, 8)] = 2
    target[_square((40, 40), 22, 22, 8)] = 2  # label 2: perfect
    scores = dice(pred, target, labels=[1, 2, 3])
    assert scores[1] == pytest.approx(0.8) and scores[2] == 1.0 and scores[3] == 1.0
    assert scores["mean"] == pytest.approx((0.8 + 1 + 1) / 3)
    assert dice(pred, target, labels=[1, 2, 3], nan_for_empty=True)["mean"] == pytest.approx(0.9)  # label 3 skipped
    assert hausdorff95(pred, target, labels=[1, 2])[2] == 0.0
    flat = segmentation_metrics(pred, target, labels=[1, 2])
    assert flat["dice_1"] == pytest.approx(0.8) and flat["dice"] == pytest.approx(0.9)
    assert flat["hd95_1"] == pytest.approx(hausdorff95(pred == 1, target == 1))
    assert flat["asd_1"] == pytest.approx(average_surface_distance(pred == 1, target == 1))
    with pytest.raises(MedganError, match="several non-zero values.*labels="):
        dice(pred, target)


def test_bad_inputs_are_rejected():
    a = _square()
    with pytest.raises(MedganError, match=r"\(48, 48\).*\(48, 47\)"):
        dice(a, a[:, :-1])
    with pytest.raises(MedganError, match="spacing .* 3 values .* shape \\(48, 48\\)"):
        hausdorff95(a, a, spacing=(1, 1, 1))
    with pytest.raises(MedganError, match="NaN"):
        iou(np.full((4, 4), np.nan), np.zeros((4, 4)))
    with pytest.raises(MedganError, match="threshold probabilities"):
        dice(np.linspace(0, 1, 16).reshape(4, 4), np.zeros((4, 4)))
    with pytest.raises(MedganError, match="mode"):
        hausdorff95(a, a, mode="mean")


# ---- MONAI as the reference -----------------------------------------------------------

def _onehot(mask: np.ndarray) -> torch.Tensor:
    """(spatial) bool -> (1, 2, spatial) one-hot batch, background first, as MONAI expects."""
    return torch.from_numpy(np.stack([~mask, mask])[None].astype(np.float32))


CASES = [
    ((40, 44), None, 0),
    ((40, 44), (0.6, 1.7), 1),
    ((12, 18, 20), (3.0, 0.8, 0.9), 2),
]


@pytest.mark.parametrize("shape, spacing, seed", CASES)
def test_surface_distances_match_monai(shape, spacing, seed, require):
    metrics = require("monai.metrics")
    from monai.metrics.utils import get_edge_surface_distance

    pred, target = _blobs(shape, seed), _blobs(shape, seed + 10)
    assert pred.any() and target.any() and dice(pred, target) < 0.9
    # MONAI works in float32 (its distances are cast to float32): rel 1e-5 covers that.
    tol = {"rel": 1e-5, "abs": 1e-5}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hd = metrics.compute_hausdorff_distance(_onehot(pred), _onehot(target), percentile=95, spacing=spacing)
        asd_sym = metrics.compute_average_surface_distance(_onehot(pred), _onehot(target), symmetric=True, spacing=spacing)
        asd_dir = metrics.compute_average_surface_distance(_onehot(pred), _onehot(target), symmetric=False, spacing=spacing)
        _, distances, _ = get_edge_surface_distance(torch.from_numpy(pred), torch.from_numpy(target), spacing=spacing, symmetric=True)
    # MONAI's HD95 is the larger of the two directed 95th percentiles: our mode="max"
    assert hausdorff95(pred, target, spacing, mode="max") == pytest.approx(float(hd), **tol)
    # our default pools both directed sets (medpy's hd95): the percentile of MONAI's distances pooled
    pooled = np.concatenate([d.numpy() for d in distances])
    assert hausdorff95(pred, target, spacing) == pytest.approx(float(np.percentile(pooled, 95)), **tol)
    assert average_surface_distance(pred, target, spacing) == pytest.approx(float(asd_sym), **tol)
    assert average_surface_distance(pred, target, spacing, symmetric=False) == pytest.approx(float(asd_dir), **tol)
    flat = segmentation_metrics(pred, target, spacing)
    assert flat["hd95"] == pytest.approx(float(np.percentile(pooled, 95)), **tol)
    assert flat["asd"] == pytest.approx(float(asd_sym), **tol)


def test_dice_matches_monai_per_label(require):
    metrics = require("monai.metrics")
    rng = np.random.default_rng(5)
    pred = rng.integers(0, 4, (30, 30))
    target = np.where(rng.random((30, 30)) < 0.7, pred, rng.integers(0, 4, (30, 30)))
    onehot = lambda m: torch.from_numpy(np.stack([m == k for k in range(4)])[None].astype(np.float32))
    expected = metrics.compute_dice(onehot(pred), onehot(target), include_background=False)[0]
    ours = dice(pred, target, labels=[1, 2, 3])
    np.testing.assert_allclose([ours[1], ours[2], ours[3]], expected.numpy(), rtol=1e-6)
    assert ours["mean"] == pytest.approx(float(expected.mean()), rel=1e-6)
