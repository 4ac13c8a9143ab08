"""Unpaired enhancement (CycleGAN): its four networks and objective, disjoint noisy and clean
sides, clean images from a folder, the command line, and what a short run learns."""

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from torch import nn

from medgan.cli import main
from medgan.data.sources import SourceOptions
from medgan.datasets.phantom import phantom_set
from medgan.errors import MedganError
from medgan.tasks.enhance.config import EnhanceConfig
from medgan.tasks.enhance.methods.base import symmetries
from medgan.tasks.enhance.methods.unpaired import CYCLE_WEIGHT, IDENTITY_WEIGHT, Unpaired, split_halves
from medgan.train import DataConfig, LoopConfig, ModelConfig, TrainConfig, Trainer
from medgan.train.task import Networks

TINY_NET = {"width": 8, "depth": 2, "d_width": 8, "d_layers": 2}


def config(degradation="gaussian:sigma=150", steps=4, n=16, net=None, **enhance) -> TrainConfig:
    return TrainConfig(
        task="enhance",
        data=DataConfig(source="phantom", options=SourceOptions(size=32, n=n), holdout=0.0),
        model=ModelConfig("pix2pix", net or dict(TINY_NET)),
        task_config=EnhanceConfig(mode="denoise", degradation=degradation, supervision="unpaired", **enhance),
        loop=LoopConfig(steps=steps, batch_size=4, log_every=1, sample_every=1000, checkpoint_every=1000, n_samples=6, ema=0.0, augment=""),
    )


class Shift(nn.Module):
    """A stand-in generator that adds a constant (unclamped, so the losses are exact)."""

    def __init__(self, by: float):
        super().__init__()
        self.by = by

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.by


def test_four_networks_and_an_objective_that_starts_at_zero_cycle_and_identity(tmp_path):
    trainer = Trainer(config(), tmp_path / "run", progress=False)
    task, nets = trainer.task, trainer.nets
    assert isinstance(task.method, Unpaired) and task.config.task_config.adversarial is True
    assert list(nets) == ["generator", "generator_back", "discriminator", "discriminator_back"]
    assert {k: v.networks for k, v in task.optimizers().items()} == {
        "generator": ("generator", "generator_back"), "discriminator": ("discriminator", "discriminator_back")}
    for name in ("discriminator", "discriminator_back"):  # unconditional: D sees one image, not an (input, output) pair
        assert nets[name].config.cond_channels == 0 and nets[name].layers[0].weight.shape[1] == 1
    assert task.exported == ("generator",) and task.averaged == ("generator",)

    batch = trainer.batch(0)
    x, y = task.method.unpaired_batch(batch)
    again = task.method.unpaired_batch(trainer.batch(0))  # what the D and G updates of step 0 both draw
    assert torch.equal(x, again[0]) and torch.equal(y, again[1]) and x.shape == y.shape == (4, 1, 32, 32)
    # Both residual generators start as the identity: F(G(x)) = x and G(y) = y exactly.
    out = task.method.generator_objective(nets, batch)
    assert float(out["cycle"]) < 1e-6 and float(out["identity"]) < 1e-6
    assert torch.isfinite(out["loss"]) and float(out["g_adv"]) > 0
    # Which term is which: with G adding 0.05 and F 0.1, each cycle is off by 0.15, G's identity by 0.05, F's by 0.1.
    shifted = task.method.generator_objective(Networks(nets, generator=Shift(0.05), generator_back=Shift(0.1)), batch)
    assert float(shifted["cycle"]) == pytest.approx(0.3, abs=1e-5) and float(shifted["identity"]) == pytest.approx(0.15, abs=1e-5)
    assert float(shifted["loss"].detach()) == pytest.approx(float(shifted["g_adv"]) + 0.3 * CYCLE_WEIGHT + 0.15 * IDENTITY_WEIGHT, rel=1e-5)

    stats = trainer.train_step()
    assert {"loss_d", "loss_g", "d_real", "d_fake", "d_back_real", "d_back_fake", "cycle", "identity"} <= set(stats)
    assert all(np.isfinite(v) for v in stats.values())
    after = task.method.generator_objective(nets, trainer.batch(1))
    assert float(after["identity"]) > 1e-6  # the update moved G and F off the identity

    with pytest.raises(MedganError, match="--l1-only"):
        Trainer(config(adversarial=False), tmp_path / "l1", progress=False)


def test_the_noisy_and_the_clean_side_are_disjoint_halves_of_the_training_images(tmp_path):
    trainer = Trainer(config(n=16), tmp_path / "run", progress=False)
    task = trainer.task
    noisy, clean = set(task.method.noisy_index.tolist()), set(task.method.clean_index.tolist())
    assert not noisy & clean and noisy | clean == set(range(16)) and len(noisy) == 8
    images = trainer.dataset.batch(torch.arange(16))["image"]  # (16, 1, 32, 32) the clean training images
    seen_x, seen_y = set(), set()
    views = lambda image: symmetries([image[None].expand(8, *image.shape)], torch.arange(8))[0]  # noqa: E731
    shown = lambda xi, image: any(torch.equal(xi, v) for v in views(image))  # noqa: E731
    for k in range(8):  # every drawn image, under whichever symmetry, is one of its own side's
        x, y = task.method.unpaired_batch(trainer.batch(k))
        for xi in x:
            seen_x |= {i for i in range(16) for r in range(len(task.inputs)) if shown(xi, task.inputs[r, i])}
        for yi in y:
            seen_y |= {i for i in range(16) if shown(yi, images[i])}
    assert seen_x and seen_y and seen_x <= noisy and seen_y <= clean
    # the sample grid's truth is the noisy inputs' own clean images, never trained on as clean
    fixed = task.fixed_inputs(6, torch.device("cpu"))
    assert torch.equal(fixed["y"], images[task.method.noisy_index[:2]])

    halves = split_halves(10, np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 2]))  # cut at a patient boundary near the middle
    assert halves[0].tolist() == [0, 1, 2, 3, 4] and halves[1].tolist() == [5, 6, 7, 8, 9]
    assert [h.tolist() for h in split_halves(5, np.zeros(5))] == [[0, 1], [2, 3, 4]]  # one patient: the middle
    assert split_halves(8, np.array([0, 1, 1, 1, 1, 1, 1, 1]))[0].tolist() == [0, 1, 2, 3]  # no boundary near it: the middle
    with pytest.raises(MedganError, match="--clean-data"):  # real noisy scans alone: nothing is clean
        Trainer(config("none"), tmp_path / "none", progress=False)


def test_clean_images_from_a_folder_in_the_training_units(tmp_path):
    folder = tmp_path / "clean"
    folder.mkdir()
    hu = phantom_set(n=6, size=32, seed=99).images.astype(np.float32)  # (6, 32, 32) other "patients"
    nib.save(nib.Nifti1Image(np.moveaxis(hu, 0, -1), np.eye(4)), folder / "clean.nii.gz")  # one volume, slices on the last axis
    trainer = Trainer(config(clean_data=str(folder), steps=2), tmp_path / "run", progress=False)
    task = trainer.task
    assert task.method.clean.shape == (6, 1, 32, 32) and task.method.clean_index is None
    assert task.method.noisy_index.tolist() == list(range(16))  # every training image is on the noisy side
    # mapped by the training data's HU range (whatever orientation the reader gives the slices)
    expected = trainer.dataset.intensity.forward(hu)
    np.testing.assert_allclose(np.sort(task.method.clean.numpy().ravel()), np.sort(expected.ravel()), atol=1e-6)
    run = trainer.fit()
    assert json.loads((run / "generator" / "config.json").read_text())["clean_data"] == str(folder)

    # Real noisy scans (degradation none) have no clean truth: the grid shows noisy | G(noisy) | F(G(noisy)).
    scans = Trainer(config("none", clean_data=str(folder)), tmp_path / "scans", progress=False)
    assert torch.equal(scans.task.inputs[0], scans.dataset.batch(torch.arange(16))["image"])
    fixed = scans.task.fixed_inputs(6, torch.device("cpu"))
    assert "y" not in fixed and scans.task.render(scans.nets, fixed).shape == (6, 1, 32, 32)

    missing = tmp_path / "no-such-folder"
    with pytest.raises(MedganError, match="--clean-data") as error:
        Trainer(config(clean_data=str(missing)), tmp_path / "bad", progress=False)
    assert str(missing) in str(error.value) and "\n" not in str(error.value)


def test_cli_unpaired_train_then_enhance(tmp_path, ct_folder, capsys):
    runs = tmp_path / "runs"
    tiny = ["--size", "32", "--width", "8", "--depth", "2", "--d-width", "8", "--batch-size", "4", "--steps", "2",
            "--log-every", "1", "--sample-every", "2", "--checkpoint-every", "2", "--n-samples", "6", "--no-progress",
            "--runs-dir", str(runs), "--data", "phantom", "--n-images", "16", "--holdout", "0.25", "--degradation", "gaussian:sigma=100"]
    assert main(["train", "enhance", "--supervision", "unpaired", *tiny]) == 0
    run = next(runs.iterdir())
    info = json.loads((run / "generator" / "config.json").read_text())
    assert info["supervision"] == "unpaired" and info["task"] == "enhance" and info["cycle_weight"] == CYCLE_WEIGHT
    exported = sorted(p.name for p in run.iterdir() if (p / "model.safetensors").is_file())
    assert exported == ["generator"]  # F and the discriminators live in the checkpoint only
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert {"loss_d", "loss_g", "cycle", "identity"} <= set(rows[-1])
    out = tmp_path / "enhanced"
    assert main(["enhance", str(run), str(ct_folder), "--out", str(out), "--no-progress"]) == 0
    assert len(sorted(out.rglob("*.dcm"))) == 6

    capsys.readouterr()
    assert main(["train", "enhance", "--supervision", "unpaired", "--l1-only", *tiny]) == 2
    assert "--l1-only" in capsys.readouterr().err


def test_training_moves_both_generators_and_resumes_exactly(tmp_path):
    """A few steps move G and F off the identity they start as, but keep them close to their
    inputs (the cycle and identity terms); a resumed run ends where an uninterrupted one does.

    Not tested here: that G beats its noisy input. CycleGAN needs about a thousand steps for
    that on these phantoms (measured: 1000 steps, width 16, σ = 150 HU, lsgan: held-out MSE
    0.65-0.69 of the input's, i.e. +1.6 to +1.9 dB, in about two minutes on two busy cores),
    and at 200-300 steps twelve runs over seeds, noise levels and learning rates gave ratios
    from 0.78 to 1.02: not reliable in the 40 s a test may take.
    """
    whole = Trainer(config(steps=4), tmp_path / "whole", progress=False)
    task = whole.task
    x = task.inputs[0, task.method.noisy_index]  # (8, 1, 32, 32) noisy
    truth = whole.dataset.batch(task.method.noisy_index)["image"]  # their clean versions
    whole.fit()
    G, F = whole.nets.generator.eval(), whole.nets.generator_back.eval()
    with torch.no_grad():
        moved_g, moved_f = float((G(x) - x).abs().mean()), float((F(truth) - truth).abs().mean())
    noise = float((x - truth).abs().mean())
    assert 0 < moved_g < 0.1 * noise and 0 < moved_f < 0.1 * noise

    part = Trainer(config(steps=2), tmp_path / "part", progress=False).fit()
    resumed = Trainer(config(steps=4), part, resume=True, progress=False)
    resumed.fit()
    for name, net in whole.nets.items():
        for key, value in net.state_dict().items():
            assert torch.equal(value, resumed.nets[name].state_dict()[key]), (name, key)
