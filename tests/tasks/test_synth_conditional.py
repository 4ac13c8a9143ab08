"""Class-conditional synthesis: transitional conditioning, class-balanced batches, one grid
row per class, per-class KID and intra-class diversity, from the command line."""

import json

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from safetensors.torch import load_file

from medgan.cli import main
from medgan.data.sampling import BalancedSampler
from medgan.errors import MedganError
from medgan.tasks.synth.evaluate import class_realism
from medgan.tasks.synth.config import SynthConfig

TINY = ["--data", "phantom", "--n-images", "48", "--lesion-fraction", "0.25", "--size", "32", "--width", "8",
        "--batch-size", "8", "--log-every", "1", "--sample-every", "100", "--checkpoint-every", "100", "--n-samples", "8",
        "--no-progress"]


def test_transitional_strength_is_zero_then_a_linear_ramp_then_one():
    fade = SynthConfig(condition_start=10, condition_ramp=4)
    assert [fade.strength(s) for s in (0, 9, 10, 11, 12, 14, 100)] == [0.0, 0.0, 0.0, 0.25, 0.5, 1.0, 1.0]
    assert SynthConfig(condition_start=3, condition_ramp=0).strength(2) == 0.0
    assert SynthConfig(condition_start=3, condition_ramp=0).strength(3) == 1.0
    with pytest.raises(MedganError, match="must not be negative"):
        SynthConfig(condition_start=-1)


def test_balanced_sampler_draws_classes_equally_and_splits_one_draw_over_replicas():
    labels = np.array([0] * 90 + [1] * 10)
    sampler = BalancedSampler(labels, seed=3)
    drawn = []
    for epoch in range(20):
        sampler.set_epoch(epoch)
        drawn += list(sampler)
    assert len(sampler) == 100 and len(drawn) == 2000
    assert np.mean(labels[drawn] == 1) == pytest.approx(0.5, abs=0.04)  # uniform draws would give 0.1
    sampler.set_epoch(5)
    again = BalancedSampler(labels, seed=3)
    again.set_epoch(5)
    assert list(sampler) == list(again)  # a function of (seed, epoch): exact resume
    halves = [BalancedSampler(labels, num_replicas=2, rank=r, seed=3) for r in (0, 1)]
    for h in halves:
        h.set_epoch(5)
    whole = list(sampler)
    assert list(halves[0]) == whole[0::2] and list(halves[1]) == whole[1::2]


def test_class_realism_flags_a_class_whose_images_are_all_alike():
    rng = np.random.default_rng(0)
    real = np.tanh(rng.normal(size=(40, 1, 32, 32))).astype(np.float32)
    labels = np.arange(40) % 2
    fake = real.copy()
    fake[labels == 1] = real[1]  # class 1 collapsed onto one image
    rows = class_realism(real, labels, fake, labels, ["normal", "lesion"])
    assert [r["class"] for r in rows] == ["normal", "lesion"] and [r["n_real"] for r in rows] == [20, 20]
    assert rows[0]["collapsed"] is False and rows[1]["collapsed"] is True
    assert rows[1]["ms_ssim_generated"] == pytest.approx(1.0) and rows[1]["ms_ssim_real"] < 0.5
    assert rows[0]["kid_mean"] is None  # no Inception features given


def test_conditional_run_fades_classes_in_draws_one_row_per_class_and_scores_each_class(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--conditional", "--balance-classes", "--condition-start", "2", "--condition-ramp", "2",
                 "--steps", "6", "--holdout", "0.25", "--run-dir", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["synth"] == {"recipe": "medgan", "condition_start": 2, "condition_ramp": 2, "d_recon_weight": 1.0, "pairs": False, "labelled": 0}
    assert config["data"]["balance_classes"] is True
    weights = load_file(run / "generator" / "model.safetensors")
    strengths = [v for k, v in weights.items() if k.endswith("strength")]
    assert strengths and all(float(s) == 1.0 for s in strengths)  # faded in by step 4 of 6
    grid = PILImage.open(sorted((run / "samples").glob("*.png"))[-1])
    first = PILImage.open(sorted((run / "samples").glob("*.png"))[0])
    assert grid.size == first.size and grid.width > grid.height  # 2 rows (normal, lesion) of 4
    state = torch.load(sorted((run / "checkpoints").glob("*.pt"))[-1], weights_only=True)
    assert float(state["networks"]["discriminator"]["strength"]) == 1.0

    assert main(["evaluate", str(run), "--n", "24", "--metrics", "swd,kid", "--json"]) == 0
    out = capsys.readouterr()
    record = json.loads(out.out.strip().splitlines()[-1])
    classes = record["classes"]
    assert [c["class"] for c in classes] == ["normal", "lesion"]
    assert [c["n_generated"] for c in classes] == [12, 12]
    assert sum(c["n_real"] for c in classes) == record["n_real"] and classes[1]["n_real"] < classes[0]["n_real"]
    assert all(0 <= c["ms_ssim_generated"] <= 1 for c in classes)
    assert "per class" in out.err and "lesion" in out.err
    assert main(["report", str(run)]) == 0
    assert "Per class" in (run / "report.html").read_text()


def test_balance_classes_on_unlabelled_data_is_one_clear_error(tmp_path, capsys):
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i in range(8):
        PILImage.fromarray((np.random.default_rng(i).random((32, 32)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    code = main(["train", "--data", str(folder), "--size", "32", "--width", "8", "--batch-size", "4", "--balance-classes",
                 "--steps", "1", "--no-progress", "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "--balance-classes needs labelled data" in err and str(folder) in err
    assert not (tmp_path / "run").exists()
