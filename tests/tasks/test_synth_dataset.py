"""Labelled synthetic data: ``medgan generate --labels`` in every format with its manifest,
``SyntheticDataset`` (reproducible, worker-safe) and the real + synthetic mix."""

import json

import numpy as np
import pydicom
import pytest
import torch
from torch.utils.data import DataLoader

import medgan
from medgan.cli import main
from medgan.data.source_options import SourceOptions
from medgan.data.sources import load_source
from medgan.errors import MedganError
from medgan.tasks.synth.generate import plan_labels, sample

TINY = ["--data", "phantom", "--n-images", "32", "--lesion-fraction", "0.5", "--size", "32", "--width", "8",
        "--batch-size", "8", "--sample-every", "100", "--checkpoint-every", "100", "--n-samples", "4", "--no-progress"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A class-conditional (normal / lesion) and an unconditional tiny phantom run."""
    root = tmp_path_factory.mktemp("runs")
    assert main(["train", *TINY, "--conditional", "--steps", "2", "--runs-dir", str(root / "c")]) == 0
    assert main(["train", *TINY, "--steps", "1", "--runs-dir", str(root / "u")]) == 0
    return next((root / "c").iterdir()), next((root / "u").iterdir())


def test_plan_labels_reads_names_indices_counts_and_even_splits():
    names = ["normal", "lesion"]
    assert plan_labels("0:2,lesion:3", None, names)[1].tolist() == [0, 0, 1, 1, 1]
    assert plan_labels("lesion:1,normal:2", 3, names)[1].tolist() == [1, 0, 0]
    assert plan_labels("lesion", 4, names)[1].tolist() == [1, 1, 1, 1]
    assert plan_labels("normal,lesion", 5, names)[1].tolist() == [0, 0, 0, 1, 1]
    assert plan_labels(None, 5, names)[1].tolist() == [0, 1, 0, 1, 0]
    assert plan_labels(None, None, []) == (64, None)
    for spec, n, message in (("tumour:3", None, "does not have.*0 normal, 1 lesion"), ("2", None, "does not have"),
                             ("0:2,1:2", 5, "add up to 4, not --n 5"), ("0:2,1", None, "some classes only"),
                             ("0:1,normal:1", None, "twice"), ("0:-1", None, "positive whole")):
        with pytest.raises(MedganError, match=message):
            plan_labels(spec, n, names)
    with pytest.raises(MedganError, match="not class-conditional"):
        plan_labels("0:3", None, [])


def test_generate_with_labels_writes_class_folders_npz_and_a_manifest_in_every_format(runs, tmp_path, capsys):
    cond, _ = runs
    for fmt, pattern in (("png", "*.png"), ("dcm", "*.dcm"), ("nii", "*.nii.gz")):
        out = tmp_path / fmt
        assert main(["generate", str(cond), "--labels", "normal:2,lesion:3", "--out", str(out), "--format", fmt]) == 0
        assert len(list((out / "normal").glob(pattern))) == 2 and len(list((out / "lesion").glob(pattern))) == 3
        info = json.loads((out / "manifest.json").read_text())
        assert info["classes"] == {"normal": 2, "lesion": 3} and info["class_index"] == {"normal": 0, "lesion": 1}
        assert info["synthetic"] is True and info["seed"] == 0 and len(info["config_sha256"]) == 64
        assert info["generator"]["step"] == 2 and len(info["generator"]["sha256"]) == 64
        assert info["metrics"] is None and info["audit"] is None  # not evaluated / audited yet
    assert "normal: 2, lesion: 3" in capsys.readouterr().out
    # the class folders read back as a labelled source
    back = load_source(str(tmp_path / "png"), SourceOptions())
    assert sorted(back.class_names) == ["lesion", "normal"] and np.bincount(back.labels).tolist() == [3, 2]
    # one series per class, saying which class it is
    series = {pydicom.dcmread(f).SeriesInstanceUID for f in (tmp_path / "dcm").rglob("*.dcm")}
    assert len(series) == 2
    assert "class lesion" in pydicom.dcmread(next((tmp_path / "dcm" / "lesion").glob("*.dcm"))).SeriesDescription
    # npz: MedMNIST layout, class names kept
    assert main(["generate", str(cond), "--labels", "lesion", "--n", "4", "--out", str(tmp_path / "npz"), "--format", "npz"]) == 0
    with np.load(tmp_path / "npz" / "images.npz", allow_pickle=False) as z:
        assert z["train_images"].shape == (4, 32, 32) and z["train_labels"].tolist() == [[1]] * 4
    back = load_source(str(tmp_path / "npz" / "images.npz"), SourceOptions())
    assert back.class_names == ["normal", "lesion"] and back.labels.tolist() == [1] * 4


def test_generate_refuses_bad_labels_in_one_line(runs, tmp_path, capsys):
    cond, uncond = runs
    for run, extra, message in ((cond, ["--labels", "tumour:4"], "0 normal, 1 lesion"),
                                (cond, ["--labels", "0:2,1:2", "--n", "5"], "add up to 4"),
                                (uncond, ["--labels", "0:2"], "not class-conditional")):
        capsys.readouterr()
        assert main(["generate", str(run), *extra, "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2
        assert not (tmp_path / "x").exists()  # nothing half-written


def test_manifest_carries_the_latest_evaluation(runs, tmp_path):
    cond, _ = runs
    assert main(["evaluate", str(cond), "--n", "8", "--metrics", "swd"]) == 0
    assert main(["generate", str(cond), "--n", "2", "--out", str(tmp_path / "g")]) == 0
    info = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert "swd" in info["metrics"]["figures"] and info["metrics"]["step"] == 2


def test_synthetic_dataset_is_reproducible_per_item_and_matches_its_labels(runs):
    cond, uncond = runs
    data = medgan.SyntheticDataset(cond, labels="normal:5,lesion:7", seed=3, chunk=4)
    assert len(data) == 12 and data.labels.tolist() == [0] * 5 + [1] * 7
    item = data[9]
    assert item["image"].shape == (1, 32, 32) and item["label"].item() == 1 and item["index"] == 9
    assert -1 <= item["image"].min() and item["image"].max() <= 1
    # the same item whatever the chunk it is drawn in, and from a fresh dataset
    other = medgan.SyntheticDataset(cond, labels="normal:5,lesion:7", seed=3, chunk=5)
    torch.testing.assert_close(other[9]["image"], item["image"], atol=1e-5, rtol=0)
    assert not torch.equal(medgan.SyntheticDataset(cond, labels="normal:5,lesion:7", seed=4)[9]["image"], item["image"])
    assert not torch.equal(data[8]["image"], item["image"])
    # a DataLoader with two worker processes sees the same images as the main process
    batches = list(DataLoader(data, batch_size=4, num_workers=2))
    torch.testing.assert_close(torch.cat([b["image"] for b in batches]), torch.stack([data[i]["image"] for i in range(12)]),
                               atol=1e-5, rtol=0)
    assert torch.cat([b["label"] for b in batches]).tolist() == data.labels.tolist()
    # data units: the phantom's HU
    image, label = medgan.SyntheticDataset(cond, n=2, units="data", output="tuple")[1]
    assert label == 1 and image.min() >= -1000 - 1e-2 and image.max() > 0
    # unconditional: no labels
    assert "label" not in medgan.SyntheticDataset(uncond, n=3)[0]
    with pytest.raises(MedganError, match="not class-conditional"):
        medgan.SyntheticDataset(uncond, labels="0")
    # the same images as medgan generate with the same seed and labels (in data units)
    images, labels, masks, _ = sample(cond, labels="normal:5,lesion:7", seed=3, batch_size=5)
    assert masks is None  # images alone: no --pairs
    same = medgan.SyntheticDataset(cond, labels="normal:5,lesion:7", seed=3, units="data")
    assert labels.tolist() == data.labels.tolist()
    np.testing.assert_allclose(images, torch.stack([same[i]["image"][0] for i in range(12)]).numpy(), atol=1e-2)


def test_the_python_api_takes_a_mapping_of_classes_to_counts(runs):
    cond, _ = runs
    data = medgan.SyntheticDataset(cond, labels={"normal": 2, "lesion": 3}, seed=3)
    assert data.labels.tolist() == [0, 0, 1, 1, 1]
    assert medgan.SyntheticDataset(cond, labels={1: 2, 0: 1}).labels.tolist() == [1, 1, 0]  # indices as keys, order kept
    assert sample(cond, labels={"lesion": 2}, seed=3)[1].tolist() == [1, 1]
    with pytest.raises(MedganError, match=r"names class 'tumour', which this run does not have.*0 normal, 1 lesion"):
        medgan.SyntheticDataset(cond, labels={"normal": 8, "tumour": 8})
    with pytest.raises(MedganError, match="not a positive whole number"):
        medgan.SyntheticDataset(cond, labels={"normal": -1})
    with pytest.raises(MedganError, match="labels of type set"):
        medgan.SyntheticDataset(cond, labels={"normal", "lesion"})


def test_mix_synthetic_keeps_every_real_item_and_adds_the_asked_fraction(runs):
    cond, _ = runs
    real = medgan.SyntheticDataset(cond, n=6, seed=10)  # any dataset of dict items stands in for the real one
    synthetic = medgan.SyntheticDataset(cond, n=20, seed=11)
    mixed = medgan.mix_synthetic(real, synthetic, 0.25)
    assert len(mixed) == 8  # 6 real + round(6 * 0.25 / 0.75) = 2 synthetic
    flags = [mixed[i]["synthetic"].item() for i in range(len(mixed))]
    assert flags == [False] * 6 + [True] * 2
    torch.testing.assert_close(mixed[0]["image"], real[0]["image"])
    assert len(medgan.mix_synthetic(real, synthetic, 0.0)) == 6
    with pytest.raises(MedganError, match="needs 54 synthetic images"):
        medgan.mix_synthetic(real, synthetic, 0.9)
    with pytest.raises(MedganError, match="must be in"):
        medgan.mix_synthetic(real, synthetic, 1.0)
