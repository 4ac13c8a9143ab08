"""Realism metrics by name: chosen with --metrics, each computed once, unknown names refused."""

import numpy as np
import pytest

from medgan.errors import MedganError
from medgan.metrics.registry import REALISM, RealismInputs, compute_realism, register_realism
from medgan.metrics.realism import fid_from_features, swd


def images(seed: int, n: int = 24) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, 1, 32, 32)).astype(np.float32)


def test_a_chosen_metric_equals_its_plain_function():
    real, fake = images(0), images(1)
    figures, seconds = compute_realism(RealismInputs(real, fake, seed=3), ["swd"])
    assert set(figures) == {"swd"} and set(seconds) == {"swd"}
    assert figures["swd"] == pytest.approx(swd(real, fake, seed=3)["swd_x1e3_avg"])


def test_inception_features_are_computed_once_and_shared():
    calls = []

    def features(x):  # a stand-in extractor: a fixed projection of the pixels
        calls.append(len(x))
        return x.reshape(len(x), -1)[:, :64].astype(np.float64)

    real, fake = images(0, 80), images(1, 80)
    inputs = RealismInputs(real, fake, features=features)
    figures, seconds = compute_realism(inputs, ["fid", "kid", "inception_prdc"])
    assert calls == [80, 80] and "inception_features" in seconds
    assert figures["fid"] == pytest.approx(fid_from_features(features(real), features(fake)))
    assert {"kid_mean", "kid_std", "inception_precision", "inception_recall"} <= set(figures)


def test_without_features_the_inception_metrics_are_skipped_and_the_rest_run():
    figures, _ = compute_realism(RealismInputs(images(0), images(1)))
    assert "fid" not in figures and {"swd", "pixel_precision", "ms_ssim_diversity_generated"} <= set(figures)


def test_too_few_images_for_precision_recall_leave_them_out_with_a_warning_not_an_error():
    """A small folder's real floor: 4 held-out images against the training ones."""
    with pytest.warns(UserWarning, match=r"precision/recall left out: 24 and 4 images.*k = 5"):
        figures, _ = compute_realism(RealismInputs(images(0), images(1, n=4)), ["swd", "pixel_prdc"])
    assert set(figures) == {"swd"}
    assert "pixel_precision" in compute_realism(RealismInputs(images(0), images(1, n=6)), ["pixel_prdc"])[0]


def test_unknown_names_and_double_registration_are_refused():
    with pytest.raises(MedganError, match="unknown realism metric 'lpips'.*fid, kid"):
        compute_realism(RealismInputs(images(0), images(1)), ["swd", "lpips"])
    with pytest.raises(ValueError, match="registered twice"):
        register_realism("swd")(lambda inputs: {})
    assert list(REALISM)[:3] == ["fid", "kid", "inception_prdc"]


def test_fidelity_family_matches_the_plain_functions():
    from skimage.metrics import peak_signal_noise_ratio

    from medgan.metrics.registry import FIDELITY, FidelityInputs

    rng = np.random.default_rng(0)
    clean = rng.uniform(0, 255, (3, 32, 32))
    noisy = clean + rng.normal(0, 10, clean.shape)
    seconds: dict = {}
    figures = FIDELITY.compute(FidelityInputs(clean, noisy, 255.0), ["psnr_ssim"], seconds)
    expected = np.mean([peak_signal_noise_ratio(c, n, data_range=255.0) for c, n in zip(clean, noisy)])
    assert figures["psnr"] == pytest.approx(expected, rel=1e-6) and set(seconds) == {"psnr_ssim"}
    assert "hf_energy_ratio" not in figures  # only what was asked
    everything = FIDELITY.compute(FidelityInputs(clean, clean, 255.0))
    assert everything["ssim"] == pytest.approx(1.0) and everything["hf_energy_ratio"] == pytest.approx(1.0)


def test_segmentation_family_scores_labels_and_their_mean():
    from medgan.metrics.registry import SEGMENTATION, SegmentationInputs

    target = np.zeros((20, 20), int)
    target[2:10, 2:10], target[12:18, 12:18] = 1, 2
    pred = target.copy()
    pred[2:10, 2:6] = 0  # half of label 1 missed
    figures = SEGMENTATION.compute(SegmentationInputs(pred, target, labels=[1, 2]))
    assert figures["dice_1"] == pytest.approx(2 * 32 / (32 + 64)) and figures["dice_2"] == 1.0
    assert figures["dice"] == pytest.approx((figures["dice_1"] + 1.0) / 2) and figures["hd95_2"] == 0.0
    assert figures["nsd_2"] == 1.0 and set(SEGMENTATION) == {"overlap", "surface", "nsd"}
    # a volume as a stack of slices: the rules of slice_stack_metrics, computed once for every metric
    from medgan.metrics.segmentation import slice_stack_metrics

    stack_p, stack_t = np.stack([pred, target, np.zeros_like(target)]), np.stack([target, target, np.zeros_like(target)])
    inputs = SegmentationInputs(stack_p, stack_t, spacing=(0.5, 0.5), labels=[1, 2])
    expected = slice_stack_metrics(stack_p, stack_t, [1, 2], (0.5, 0.5))
    assert SEGMENTATION.compute(inputs, ["surface"])["hd95_1"] == expected[1]["hd95"]
    assert SEGMENTATION.compute(inputs, ["overlap"])["iou_1"] == expected[1]["iou"]
    # no labels: any non-zero label is one foreground, one figure per score
    assert set(SEGMENTATION.compute(SegmentationInputs(pred, target), ["overlap"])) == {"dice", "iou"}


def test_classification_family_gives_the_figures_of_classification_metrics():
    from medgan.metrics.classification import classification_metrics
    from medgan.metrics.registry import CLASSIFICATION, ClassificationInputs

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 50)
    proba = rng.dirichlet(np.ones(3), 50)
    assert CLASSIFICATION.compute(ClassificationInputs(labels, proba)) == classification_metrics(labels, proba)
    assert list(CLASSIFICATION.compute(ClassificationInputs(labels, proba), ["auroc"])) == ["auroc"]
