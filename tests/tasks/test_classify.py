"""The classification task and ``medgan augment-eval``: metrics against torchmetrics, the
classical augmentation, a classifier that learns, and the whole grid on tiny data."""

import json

import numpy as np
import pytest
import torch

from medgan.cli import main
from medgan.data.imageset import ImageSet
from medgan.data.source_options import SourceOptions
from medgan.data.sources import load_source
from medgan.errors import MedganError
from medgan.metrics.classification import accuracy, auroc_ovr, balanced_accuracy, expected_calibration_error
from medgan.tasks.classify.augment_eval import AugmentEvalConfig, balanced_labels, split_train_test, stratified_subset
from medgan.train.augment import classical_augment

from checks import dry_run_matches_the_saved_config


@pytest.mark.parametrize("classes", [2, 4])
def test_classification_metrics_match_torchmetrics(require, classes):
    tm = require("torchmetrics.classification")
    rng = np.random.default_rng(classes)
    labels = rng.integers(0, classes, 300)
    logits = rng.normal(size=(300, classes)) + 1.5 * np.eye(classes)[labels]  # informative, imperfect
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    p, y = torch.from_numpy(probs).float(), torch.from_numpy(labels)
    assert accuracy(labels, probs) == pytest.approx(tm.MulticlassAccuracy(classes, average="micro")(p, y).item(), abs=1e-6)
    assert balanced_accuracy(labels, probs) == pytest.approx(tm.MulticlassRecall(classes, average="macro")(p, y).item(), abs=1e-6)
    reference_auc = tm.BinaryAUROC()(p[:, 1], y).item() if classes == 2 else tm.MulticlassAUROC(classes, average="macro")(p, y).item()
    assert auroc_ovr(labels, probs) == pytest.approx(reference_auc, abs=1e-5)
    assert expected_calibration_error(labels, probs) == pytest.approx(
        tm.MulticlassCalibrationError(classes, n_bins=15, norm="l1")(p, y).item(), abs=1e-5)


def test_metrics_know_their_extremes():
    labels = np.array([0] * 90 + [1] * 10)
    majority = np.tile([0.9, 0.1], (100, 1))
    assert accuracy(labels, majority) == 0.9 and balanced_accuracy(labels, majority) == 0.5  # what balanced accuracy is for
    perfect = np.eye(2)[labels]
    assert auroc_ovr(labels, perfect) == 1.0 and expected_calibration_error(labels, perfect) == 0.0
    assert np.isnan(auroc_ovr(np.zeros(5, int), np.tile([0.5, 0.5], (5, 1))))
    with pytest.raises(MedganError, match="labels must lie in"):
        accuracy([0, 3], np.full((2, 2), 0.5))


def test_classical_augmentation_is_seeded_bounded_and_an_identity_at_zero_strength():
    x = torch.tanh(torch.randn(6, 1, 32, 32))
    same = classical_augment(x, flip=False, degrees=0, scale=0, shift=0, intensity=0)
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    torch.manual_seed(0)
    a = classical_augment(x)
    torch.manual_seed(0)
    torch.testing.assert_close(classical_augment(x), a)
    assert a.shape == x.shape and a.min() >= -1 and a.max() <= 1 and not torch.allclose(a, x)
    # a flip alone mirrors some images exactly and leaves the others untouched
    torch.manual_seed(1)
    flipped = classical_augment(x, degrees=0, scale=0, shift=0, intensity=0)
    mirrored = [torch.allclose(flipped[i], x[i].flip(-1), atol=1e-5) for i in range(6)]
    kept = [torch.allclose(flipped[i], x[i], atol=1e-5) for i in range(6)]
    assert all(m or k for m, k in zip(mirrored, kept)) and any(mirrored)


def _two_class_npz(path, n=48, size=32):
    """Dark discs vs bright discs on noise: a task a classifier must learn in a few steps."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2).astype(np.float32)
    labels = np.arange(n) % 2
    images = rng.normal(100, 10, (n, size, size)).astype(np.float32) + disc * np.where(labels, 80, -80)[:, None, None]
    ImageSet(images=images, labels=labels, class_names=["dark", "bright"], value_range=(0.0, 255.0),
             groups=np.arange(n)).save_npz(path)
    return path


def test_save_npz_round_trips_classes_range_units_and_groups(tmp_path):
    data = ImageSet(images=np.random.default_rng(0).normal(size=(4, 8, 8)).astype(np.float32), labels=np.array([1, 0, 1, 1]),
                    class_names=["no", "yes"], groups=np.array([5, 5, 6, 7]), value_range=(-1000.0, 1000.0), units="HU")
    back = load_source(str(data.save_npz(tmp_path / "d.npz")), SourceOptions())
    np.testing.assert_array_equal(back.images, data.images)
    assert back.labels.tolist() == [1, 0, 1, 1] and back.class_names == ["no", "yes"] and back.groups.tolist() == [5, 5, 6, 7]
    assert back.value_range == (-1000.0, 1000.0) and back.units == "HU"


def test_a_classifier_learns_through_the_engine_and_evaluates_on_held_out_patients(tmp_path, capsys):
    source = _two_class_npz(tmp_path / "discs.npz")
    run = tmp_path / "run"
    assert main(["train", "classify", "--data", str(source), "--size", "32", "--width", "8", "--batch-size", "8", "--steps", "40",
                 "--holdout", "0.25", "--augmentation", "none", "--sample-every", "40", "--checkpoint-every", "40",
                 "--n-samples", "4", "--no-progress", "--run-dir", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["name"] == "resnet18" and config["optim"]["decay"] == "cosine"
    assert (run / "classifier" / "model.safetensors").is_file()
    assert "method: a ResNet-18 on cross-entropy without augmentation (--augmentation classical measured better)" in \
        " ".join(capsys.readouterr().err.split())
    assert main(["evaluate", str(run), "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["task"] == "classify" and record["n_test"] == 12
    assert record["metrics"]["accuracy"] >= 0.9 and record["metrics"]["auroc"] >= 0.95
    # --metrics picks registered classification metrics, the same figures; another family's name is one line
    assert main(["evaluate", str(run), "--metrics", "ece,accuracy", "--json"]) == 0
    chosen = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert chosen["metrics"] == {"ece": record["metrics"]["ece"], "accuracy": record["metrics"]["accuracy"]}
    assert chosen["settings"]["metrics"] == ["ece", "accuracy"]
    assert main(["evaluate", str(run), "--metrics", "kid"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown classification metric 'kid'" in err and "balanced_accuracy" in err
    # unlabelled data: one line
    ImageSet(images=np.zeros((40, 32, 32), np.float32)).save_npz(tmp_path / "plain.npz")
    assert main(["train", "classify", "--data", str(tmp_path / "plain.npz"), "--size", "32", "--steps", "1", "--no-progress",
                 "--run-dir", str(tmp_path / "bad")]) == 2
    assert "needs labelled data" in capsys.readouterr().err


def test_split_and_subsets_keep_patients_apart_and_classes_in_proportion():
    config = AugmentEvalConfig(source="phantom", options=SourceOptions(size=32, n=80, lesion_fraction=0.5), test_fraction=0.25)
    pool, test = split_train_test(config)
    assert len(pool) + len(test) == 80 and not set(pool.groups) & set(test.groups)
    small = stratified_subset(pool, 0.25, seed=0)
    counts, full = np.bincount(small.labels, minlength=2), np.bincount(pool.labels, minlength=2)
    assert np.all(np.abs(counts - 0.25 * full) <= 1) and set(small.groups) <= set(pool.groups)
    assert stratified_subset(pool, 0.25, seed=0).groups.tolist() == small.groups.tolist()  # the same for every condition
    assert balanced_labels(7, 3).tolist() == [0, 0, 0, 1, 1, 2, 2]
    with pytest.raises(MedganError, match="unknown condition"):
        AugmentEvalConfig(conditions=("real", "mixup"))


def test_augment_eval_runs_the_grid_end_to_end(tmp_path, capsys):
    out = tmp_path / "ae"
    args = ["augment-eval", "--data", "phantom", "--n-images", "40", "--lesion-fraction", "0.5", "--size", "32",
            "--fractions", "0.5,1", "--seeds", "0,1", "--conditions", "real,classical,synthetic,synthetic-only",
            "--gan-steps", "3", "--classifier-steps", "3", "--batch-size", "8", "--gan-width", "8", "--classifier-width", "8",
            "--no-progress", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| 50% | synthetic |" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["n_pool"] + results["n_test"] == 40
    assert len(results["runs"]) == 2 * 4 * 2 and len(results["table"]) == 2 * 4
    for row in results["table"]:
        assert row["seeds"] == 2 and set(row["mean"]) == {"accuracy", "balanced_accuracy", "auroc", "ece"}
        assert 0 <= row["mean"]["accuracy"] <= 1
    half = next(r for r in results["table"] if r["fraction"] == 0.5 and r["condition"] == "synthetic")
    assert half["n_synthetic"] == half["n_real"] and results["gans"]["f0.5"]["n_images"] == half["n_real"]
    only = next(r for r in results["table"] if r["fraction"] == 0.5 and r["condition"] == "synthetic-only")
    assert only["n_real"] == 0
    # each setting's GAN saw only that setting's real images
    gan_config = json.loads((out / results["gans"]["f0.5"]["run"] / "config.json").read_text())
    assert gan_config["data"]["source"].endswith("f0.5-real.npz") and gan_config["model"]["net"]["num_classes"] == 2
    assert (out / "results.png").stat().st_size > 0 and "| real labels |" in (out / "results.md").read_text()
    # a second run into the same folder is refused
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_the_dry_run_prints_the_saved_config_with_the_classifiers_classes(tmp_path, capsys):
    source = _two_class_npz(tmp_path / "discs.npz")
    argv = ["train", "classify", "--data", str(source), "--size", "32", "--width", "8", "--batch-size", "8", "--steps", "2",
            "--holdout", "0.25", "--sample-every", "2", "--checkpoint-every", "2", "--n-samples", "4", "--no-progress"]
    saved = dry_run_matches_the_saved_config(argv, tmp_path / "run", capsys)
    assert saved["model"]["net"] == {"channels": 1, "num_classes": 2, "image_size": 32, "width": 8, "spatial_dims": 2}
