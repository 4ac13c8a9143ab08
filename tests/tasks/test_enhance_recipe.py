"""The enhancement task's training pairs: noise realisations, mirrored pairs, LR schedule."""

import numpy as np
import pytest
import torch

from medgan.data.sources import SourceOptions
from medgan.errors import MedganError
from medgan.train import DataConfig, LoopConfig, ModelConfig, TrainConfig, Trainer
from medgan.tasks.enhance.config import EnhanceConfig
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


def test_pairs_stay_aligned_when_mirrored_and_are_a_function_of_the_batch_number(tmp_path):
    trainer = Trainer(enhance_config("sr:factor=2,method=area"), tmp_path / "run", progress=False)
    task = trainer.task
    flipped = 0
    for k in range(4):
        batch = trainer.batch(k)
        x, y = task._pair(batch)
        stored, clean = task.inputs[0, batch["index"]], batch["image"]
        for i in range(len(x)):  # each pair is the stored pair, or the stored pair mirrored as a whole
            mirrored = torch.equal(x[i], stored[i].flip(-1)) and torch.equal(y[i], clean[i].flip(-1))
            assert mirrored or (torch.equal(x[i], stored[i]) and torch.equal(y[i], clean[i]))
            flipped += mirrored
        again = task._pair(trainer.batch(k))
        assert torch.equal(again[0], x) and torch.equal(again[1], y)
    assert 4 <= flipped <= 28  # about half of 32 pairs are mirrored
    no_flip = Trainer(enhance_config("sr:factor=2,method=area", flip=False), tmp_path / "plain", progress=False)
    batch = no_flip.batch(0)
    assert torch.equal(no_flip.task._pair(batch)[0], no_flip.task.inputs[0, batch["index"]])


def test_learning_rate_schedules():
    steps = 100
    linear = OptimConfig(decay="linear")
    assert [linear.lr_factor(s, steps) for s in (0, 50, 75, 100)] == [1.0, 1.0, 0.5, 0.0]
    cosine = OptimConfig(decay="cosine")
    assert cosine.lr_factor(0, steps) == 1.0 and cosine.lr_factor(50, steps) == pytest.approx(0.5)
    assert cosine.lr_factor(100, steps) == pytest.approx(0.0, abs=1e-12)
    assert OptimConfig().lr_factor(99, steps) == 1.0
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
