import math

import numpy as np
import pytest
import torch

from medgan.errors import MedganError
from medgan.metrics import enhancement_metrics, mae, psnr, rmse, ssim


def _ct_pair(shape=(3, 40, 48), seed=0, noise=30.0):
    """A smooth HU-like image batch and a noisy copy (values roughly -1000..1000)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[-2], : shape[-1]]
    base = 800 * np.sin(xx / 7.0) * np.cos(yy / 5.0)
    reference = base + rng.normal(0, 50, shape)
    return reference, reference + rng.normal(0, noise, shape)


def test_identical_images_are_perfect():
    ref, _ = _ct_pair()
    assert psnr(ref, ref, 2000) == math.inf
    assert ssim(ref, ref, 2000) == pytest.approx(1.0)
    assert mae(ref, ref) == 0.0 and rmse(ref, ref) == 0.0
    scores = enhancement_metrics(ref, ref.copy(), 2000)
    assert scores["psnr"] == math.inf and scores["ssim"] == pytest.approx(1.0) and scores["mae"] == 0.0


def test_psnr_of_a_constant_offset_is_hand_computed():
    ref = np.random.default_rng(1).integers(0, 255, (32, 32)).astype(np.float64)
    # MSE = 1, so PSNR = 10 log10(255^2) = 48.1308 dB
    assert psnr(ref, ref + 1, 255) == pytest.approx(20 * math.log10(255), abs=1e-10)
    assert psnr(ref, ref + 1, 255) == pytest.approx(48.1308, abs=1e-4)
    assert mae(ref, ref - 1) == 1.0 and rmse(ref, ref + 1) == 1.0


def test_the_data_range_in_hu_matters():
    ref, test = _ct_pair()
    # the same images: a 10x wider range is +20 dB exactly, so the range must be stated
    assert psnr(ref, test, 2000) - psnr(ref, test, 200) == pytest.approx(20.0, abs=1e-9)
    assert ssim(ref, test, 2000) > ssim(ref, test, 200)


def test_data_range_is_required_and_checked():
    ref, test = _ct_pair()
    with pytest.raises(MedganError, match="data_range is required.*window width"):
        psnr(ref, test, None)
    with pytest.raises(MedganError, match="data_range is required"):
        ssim(ref, test, None)
    with pytest.raises(MedganError, match="data_range is required"):
        enhancement_metrics(ref, test, None)
    with pytest.raises(MedganError, match="positive"):
        psnr(ref, test, 0)


def test_bad_inputs_are_rejected_with_both_shapes_named():
    ref, test = _ct_pair()
    with pytest.raises(MedganError, match=r"\(3, 40, 48\).*\(3, 40, 47\)"):
        psnr(ref, test[..., :-1], 255)
    bad = test.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(MedganError, match="NaN"):
        mae(ref, bad)
    with pytest.raises(MedganError, match="smaller than the SSIM window"):
        ssim(ref[:, :8, :8], test[:, :8, :8], 255)
    with pytest.raises(MedganError, match="win_size=7"):
        ssim(ref, test, 255, win_size=7)  # a Gaussian of sigma 1.5 is 11 taps
    with pytest.raises(MedganError, match="at least 2 axes"):
        rmse(ref[0, 0], test[0, 0])


def test_psnr_matches_torchmetrics(require):
    tmf = require("torchmetrics.functional.image")
    ref, test = _ct_pair()
    # torchmetrics converts ln to log10 with a float32 factor 10 / ln(10), so it agrees to
    # ~1e-8 relative even in float64; rel=1e-6 allows that and nothing else.
    # Per-image PSNR averaged over the batch, as our (N, H, W) convention:
    expected = tmf.peak_signal_noise_ratio(torch.from_numpy(test), torch.from_numpy(ref), data_range=2000.0, dim=(1, 2))
    assert psnr(ref, test, 2000) == pytest.approx(float(expected), rel=1e-6)
    # one image: the same whole-image figure
    expected = tmf.peak_signal_noise_ratio(torch.from_numpy(test[0]), torch.from_numpy(ref[0]), data_range=2000.0)
    assert psnr(ref[0], test[0], 2000) == pytest.approx(float(expected), rel=1e-6)


def _torchmetrics_ssim_valid(tmf, ref, test, **kwargs) -> float:
    """torchmetrics' SSIM averaged over the valid region only.

    torchmetrics reflect-pads by (kernel - 1) / 2 (torch "reflect", scipy's "mirror") and
    averages the whole map, while skimage filters with scipy's "reflect" and averages the
    map without a border of (win_size - 1) / 2 pixels. Inside that border the windows never
    touch the padding, so the two maps are the same there: we compare on that region.
    """
    _, full = tmf.structural_similarity_index_measure(
        torch.from_numpy(test), torch.from_numpy(ref), data_range=2000.0, return_full_image=True, **kwargs
    )
    pad = (kwargs.get("kernel_size", 11) - 1) // 2
    valid = full[(..., *[slice(pad, -pad)] * (full.ndim - 2))]
    return float(valid.reshape(len(valid), -1).mean(1).mean())


def test_ssim_matches_torchmetrics_on_the_valid_region(require):
    tmf = require("torchmetrics.functional.image")
    ref, test = _ct_pair(noise=150.0)
    ours = ssim(ref, test, 2000)
    assert 0.1 < ours < 0.99  # a non-trivial value
    # Same 11-tap Gaussian of sigma 1.5 normalised to sum 1, same constants, float64: only
    # rounding differs (observed ~1e-16), so 1e-9 is tight yet order-of-summation safe.
    expected = _torchmetrics_ssim_valid(tmf, ref[:, None], test[:, None], gaussian_kernel=True, sigma=1.5, kernel_size=11)
    assert ours == pytest.approx(expected, abs=1e-9)
    # uniform 7x7 window
    expected = _torchmetrics_ssim_valid(tmf, ref[:, None], test[:, None], gaussian_kernel=False, kernel_size=7)
    assert ssim(ref, test, 2000, gaussian=False, win_size=7) == pytest.approx(expected, abs=1e-9)


def test_ssim_3d_is_native_or_slice_wise(require):
    tmf = require("torchmetrics.functional.image")
    ref, test = _ct_pair(shape=(14, 16, 18), noise=150.0)
    # slice-wise (default): the mean of the 2-D SSIM of every slice
    slices = [ssim(r, t, 2000) for r, t in zip(ref, test)]
    assert ssim(ref, test, 2000) == pytest.approx(np.mean(slices), abs=1e-12)
    # native 3-D: a 3-D Gaussian window over the whole volume
    ours = ssim(ref, test, 2000, spatial_dims=3)
    expected = _torchmetrics_ssim_valid(tmf, ref[None, None], test[None, None], sigma=1.5, kernel_size=11)
    assert ours == pytest.approx(expected, abs=1e-9)
    assert ours != pytest.approx(np.mean(slices), abs=1e-3)


def test_more_noise_scores_worse_and_torch_tensors_are_accepted():
    ref, mild = _ct_pair(noise=10.0, seed=3)
    _, strong = _ct_pair(noise=100.0, seed=3)
    a = enhancement_metrics(ref, mild, 2000)
    b = enhancement_metrics(torch.from_numpy(ref).float(), torch.from_numpy(strong).float(), 2000)
    assert a["psnr"] > b["psnr"] and a["ssim"] > b["ssim"] and a["mae"] < b["mae"] and a["rmse"] < b["rmse"]


def test_enhancement_metrics_per_image():
    ref, test = _ct_pair()
    scores = enhancement_metrics(ref, test, 2000, per_image=True)
    per = scores["per_image"]
    assert set(per) == {"psnr", "ssim", "mae", "rmse"} and all(v.shape == (3,) for v in per.values())
    assert scores["psnr"] == pytest.approx(per["psnr"].mean())
    assert per["ssim"][1] == pytest.approx(ssim(ref[1], test[1], 2000))
    assert per["rmse"][2] == pytest.approx(rmse(ref[2], test[2]))
    assert scores["mae"] == pytest.approx(mae(ref, test))
