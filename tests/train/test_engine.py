"""The engine: a run folder that explains itself, determinism, exact resume, guards."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from medgan.errors import MedganError
from medgan.report.curves import read_jsonl
from medgan.tasks import load_model
from medgan.train import Trainer
from medgan.train import engine as engine_module
from medgan.train.checkpoint import latest_checkpoint, load_checkpoint


def losses_of(run):
    return [(r["step"], r["loss_d"], r["loss_g"]) for r in read_jsonl(run / "stats.jsonl") if "loss_d" in r]


def test_a_run_folder_explains_itself(tiny_config, tmp_path):
    run = Trainer(tiny_config(), tmp_path / "run", progress=False).fit()
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["net"]["width"] == 8 and config["loop"]["steps"] == 6
    assert [s for s, *_ in losses_of(run)] == [1, 2, 3, 4, 5, 6]
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-0000000.png", "step-0000006.png"]
    assert (run / "curves.png").is_file()
    assert [p.name for p in sorted((run / "checkpoints").iterdir())] == ["training-state-0000003.pt", "training-state-0000006.pt"]
    model = load_model(run)
    assert model.info["ema"] is True and model.intensity.units == "HU" and model.info["network"] == "generator"
    x = model.generator(torch.randn(2, model.z_dim))
    assert x.shape == (2, 1, 32, 32) and not model.generator.training
    # the export holds the EMA weights, not the raw generator's
    state = load_checkpoint(latest_checkpoint(run))
    exported = load_file(str(run / "generator" / "model.safetensors"))
    for k, v in exported.items():
        torch.testing.assert_close(v, state["ema"]["generator"][k])


def test_training_is_deterministic_for_a_seed(tiny_config, tmp_path):
    a = Trainer(tiny_config(steps=3), tmp_path / "a", progress=False).fit()
    b = Trainer(tiny_config(steps=3), tmp_path / "b", progress=False).fit()
    c = Trainer(tiny_config(steps=3, seed=1), tmp_path / "c", progress=False).fit()
    assert losses_of(a) == losses_of(b)
    assert losses_of(a) != losses_of(c)


def test_resume_is_exact(tiny_config, tmp_path):
    whole = Trainer(tiny_config(steps=6), tmp_path / "whole", progress=False).fit()
    part = Trainer(tiny_config(steps=3), tmp_path / "part", progress=False).fit()  # "interrupted" at step 3
    Trainer(tiny_config(steps=6), part, resume=True, progress=False).fit()
    assert losses_of(part) == losses_of(whole)
    final_whole, final_part = (load_checkpoint(latest_checkpoint(r)) for r in (whole, part))
    for part, net in (("networks", "generator"), ("networks", "discriminator"), ("ema", "generator")):
        for k, v in final_whole[part][net].items():
            assert torch.equal(v, final_part[part][net][k]), (part, net, k)


def test_resume_after_a_crash_logs_every_step_once(tiny_config, tmp_path):
    """Killed after step 5 with the newest checkpoint at step 3: steps 4 and 5 are trained
    again, and stats.jsonl must not keep their first rows too."""
    whole = Trainer(tiny_config(steps=6), tmp_path / "whole", progress=False).fit()
    crashed = Trainer(tiny_config(steps=5), tmp_path / "crashed", progress=False).fit()
    (crashed / "checkpoints" / "training-state-0000005.pt").unlink()  # the crash came before this one
    assert [s for s, *_ in losses_of(crashed)] == [1, 2, 3, 4, 5]
    Trainer(tiny_config(steps=6), crashed, resume=True, progress=False).fit()
    assert losses_of(crashed) == losses_of(whole)  # each step once, and the same losses


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(tiny_config, tmp_path):
    trainer = Trainer(tiny_config(steps=6), tmp_path / "nan", progress=False)
    original = trainer.task.generator_objective

    def poisoned(nets, batch):
        out = original(nets, batch)
        if trainer.step >= 4:
            out["loss"] = out["loss"] * float("nan")
        return out

    trainer.task.generator_objective = poisoned
    trainer.phases = trainer.task.phases()  # the updates name the objectives
    with pytest.raises(MedganError, match="NaN/Inf at step 5.*training-state-0000003.pt"):
        trainer.fit()
    state = load_checkpoint(latest_checkpoint(tmp_path / "nan"))
    assert state["step"] == 3 and all(torch.isfinite(v).all() for v in state["networks"]["generator"].values() if v.is_floating_point())


def test_warns_when_the_discriminator_wins_completely(tiny_config, tmp_path, monkeypatch):
    monkeypatch.setattr(engine_module, "D_WINS_STEPS", 5)
    trainer = Trainer(tiny_config(), tmp_path / "w", progress=False)
    with pytest.warns(UserWarning, match="discriminator has won completely.*--augment"):
        for _ in range(5):
            trainer._watch_discriminator({"d_real": 0.999, "d_fake": 0.001})


def test_too_few_images_for_a_batch(tiny_config, tmp_path):
    with pytest.raises(MedganError, match="fewer than one batch"):
        Trainer(tiny_config(batch_size=64), tmp_path / "small", progress=False)


@pytest.mark.parametrize("model, net", [("mlp", {"hidden": 64}), ("dcgan", {"width": 8})])
def test_seed_gans_train_on_28x28(model, net, tmp_path):
    from medgan.data.sources import SourceOptions
    from medgan.train import DataConfig, LoopConfig, ModelConfig, TrainConfig

    config = TrainConfig(
        data=DataConfig(source="phantom", options=SourceOptions(size=28, n=64)),
        model=ModelConfig(model, {"image_size": 28, **net}),
        loop=LoopConfig(steps=30, batch_size=16, log_every=10, sample_every=100, checkpoint_every=100, ema=0),
    )
    run = Trainer(config, tmp_path / model, progress=False).fit()
    rows = losses_of(run)
    assert len(rows) == 3 and all(np.isfinite(r[1:]).all() for r in rows)
    exported = load_model(run)
    assert exported.info["model"] == model and exported.generator(torch.randn(2, 100)).shape == (2, 1, 28, 28)


def test_mixed_precision_runs_on_cpu_in_bfloat16(tiny_config, tmp_path):
    run = Trainer(tiny_config(steps=2, amp=True), tmp_path / "amp", progress=False).fit()
    assert all(np.isfinite(r[1:]).all() for r in losses_of(run))
