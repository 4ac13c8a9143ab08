"""The enhancement task's training pairs: noise realisations, mirrored pairs, LR schedule."""

import numpy as np
import pytest
import torch

from medgan.data.sources import SourceOptions
from medgan.errors import MedganError
from medgan.train import DataConfig, LoopConfig, ModelConfig, TrainConfig, Trainer
from medgan.tasks.enhance.config import EnhanceConfig
from medgan.tasks.enhance.methods.base import symmetries
from medgan.train.config import OptimConfig


def enhance_config(degradation: str, **enhance) -> TrainConfig:
    mode = "sr" if degradation.startswith("sr") else "denoise"
    return TrainConfig(
        task="enhance",
        data=DataConfig(source="phantom", options=SourceOptions(size=32, n=24), holdout=0.0),
        model=ModelConfig("srgan" if mode == "sr" else "pix2pix", {"width": 8, "n_blocks": 1}),
        task_config=EnhanceConfig(mode=mode, degradation=degradation, **enhance),
        loop=LoopConfig(steps=4, batch_size=8, log_every=1, sample_every=100, checkpoint_every=2, n_samples=6, ema=0.0, augment=""),
    )


def test_noise_gets_several_realisations_and_downsampling_one(tmp_path):
    noisy = Trainer(enhance_config("gaussian:sigma=50"), tmp_path / "noise", progress=False).task
    assert noisy.inputs.shape[:2] == (4, 24) and noisy.config.task_config.realizations == 4
    draws = noisy.inputs[:, 0]  # one image's four noisy versions
    assert all(not torch.equal(draws[0], draws[r]) for r in (1, 2, 3))
    # the same clean image under each: the draws differ by noise only (their mean is the image)
    clean = noisy.dataset.batch(torch.tensor([0]))["image"][0]
    assert (draws.mean(0) - clean).abs().mean() < (draws[0] - clean).abs().mean() * 0.75
    sr = Trainer(enhance_config("sr:factor=2,method=area"), tmp_path / "sr", progress=False).task
    assert sr.inputs.shape == (1, 24, 1, 16, 16)
    with pytest.raises(MedganError, match="realizations"):
        Trainer(enhance_config("gaussian:sigma=50", realizations=-1), tmp_path / "bad", progress=False)


def test_symmetries_are_the_eight_of_the_square_and_apply_alike_to_a_pair():
    image = torch.arange(16.0).reshape(1, 1, 4, 4)
    views = symmetries([image.expand(8, 1, 4, 4)], torch.arange(8))[0]
    assert len({tuple(v.flatten().tolist()) for v in views}) == 8  # all distinct
    assert torch.equal(views[0], image[0]) and torch.equal(views[1], image[0].flip(-1))
    assert torch.equal(views[4], image[0].transpose(-1, -2))
    assert torch.equal(views[3], torch.rot90(image[0], 2, (-2, -1)))
    wide = torch.arange(8.0).reshape(1, 1, 2, 4).expand(8, 1, 2, 4)
    assert symmetries([wide], torch.arange(8))[0].shape == wide.shape  # no swap when not square
    a, b = symmetries([image.expand(8, 1, 4, 4), 10 * image.expand(8, 1, 4, 4)], torch.arange(8))
    assert torch.equal(b, 10 * a)


def test_pairs_stay_aligned_under_symmetries_and_are_a_function_of_the_batch_number(tmp_path):
    trainer = Trainer(enhance_config("sr:factor=2,method=area"), tmp_path / "run", progress=False)
    task = trainer.task
    seen = set()
    for k in range(4):
        batch = trainer.batch(k)
        x, y = task.method.pair(batch)
        stored, clean = task.inputs[0, batch["index"]], batch["image"]
        for i in range(len(x)):  # each pair is the stored pair under one symmetry, the same for both
            match = [s for s in range(8) if torch.equal(x[i], symmetries([stored[i:i + 1]], torch.tensor([s]))[0][0])
                     and torch.equal(y[i], symmetries([clean[i:i + 1]], torch.tensor([s]))[0][0])]
            assert match
            seen.add(match[0])
        again = task.method.pair(trainer.batch(k))
        assert torch.equal(again[0], x) and torch.equal(again[1], y)
    assert len(seen) >= 6  # 32 pairs draw most of the 8 symmetries
    no_flip = Trainer(enhance_config("sr:factor=2,method=area", flip=False), tmp_path / "plain", progress=False)
    batch = no_flip.batch(0)
    assert torch.equal(no_flip.task.method.pair(batch)[0], no_flip.task.inputs[0, batch["index"]])


def test_learning_rate_schedules():
    steps = 100
    linear = OptimConfig(decay="linear")
    assert [linear.lr_factor(s, steps) for s in (0, 50, 75, 100)] == [1.0, 1.0, 0.5, 0.0]
    cosine = OptimConfig(decay="cosine")
    assert cosine.lr_factor(0, steps) == 1.0 and cosine.lr_factor(50, steps) == pytest.approx(0.5)
    assert cosine.lr_factor(100, steps) == pytest.approx(0.0, abs=1e-12)
    assert OptimConfig().lr_factor(99, steps) == 1.0
    late = OptimConfig(decay="late-cosine")  # constant through the first half, then a cosine to 0
    assert [late.lr_factor(s, steps) for s in (0, 25, 50)] == [1.0, 1.0, 1.0]
    assert late.lr_factor(75, steps) == pytest.approx(0.5) and late.lr_factor(100, steps) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(MedganError, match="decay"):
        OptimConfig(decay="step")
    # "auto" resolves by task, so the saved config names the schedule that ran
    assert TrainConfig(task="enhance").resolve().optim.decay == "linear" and TrainConfig().resolve().optim.decay == "none"
    assert TrainConfig.from_dict({"task": "enhance", "optim": {"decay": "cosine"}}).optim.decay == "cosine"


def test_resume_with_a_decaying_learning_rate_is_exact(tmp_path):
    def config(steps):
        c = enhance_config("gaussian:sigma=50")
        c.loop.steps, c.optim.decay = steps, "linear"
        return c

    whole = Trainer(config(4), tmp_path / "whole", progress=False)
    whole.fit()
    assert whole.optimizers["generator"].param_groups[0]["lr"] == pytest.approx(2e-4 * 0.5)  # the last update ran at step 3 of 4
    part = Trainer(config(2), tmp_path / "part", progress=False).fit()
    resumed = Trainer(config(4), part, resume=True, progress=False)
    resumed.fit()
    for k, v in whole.nets.generator.state_dict().items():
        assert torch.equal(v, resumed.nets.generator.state_dict()[k]), k
    assert np.isfinite(resumed.optimizers["generator"].param_groups[0]["lr"])


@pytest.mark.parametrize("mode, supervision, flags, expected", [
    ("denoise", "paired", {}, ("dncnn", False, "l2", 10)),  # the measured winner for noise
    ("sr", "paired", {}, ("srgan", False, "l1", None)),  # the SRResNet on L1: the winner for x2 on real anatomy
    ("denoise", "paired", {"model": "pix2pix"}, ("pix2pix", True, "l1", None)),  # the GAN asked for by name
    ("denoise", "paired", {"model": "pix2pix", "adversarial": False}, ("pix2pix", False, "l1", None)),
    ("sr", "paired", {"adversarial": True}, ("srgan", True, "l1", None)),  # the SRGAN
    ("denoise", "self", {}, ("pix2pix", False, "l2", None)),  # measured with the U-Net
    ("denoise", "unpaired", {}, ("pix2pix", True, "l1", None)),
])
def test_defaults_are_the_measured_winners_and_follow_the_model(mode, supervision, flags, expected):
    values = {"task": "enhance", "data": {"source": "brain-mri"}, "enhance": {"mode": mode, "supervision": supervision}}
    if "model" in flags:
        values["model"] = {"name": flags["model"]}
    if "adversarial" in flags:
        values["enhance"]["adversarial"] = flags["adversarial"]
    config = TrainConfig.from_dict(values).resolve()
    e = config.task_config
    assert (config.model.name, e.adversarial, e.recon_loss, config.model.net.get("layers")) == expected
