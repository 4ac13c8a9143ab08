"""medgan train / generate end to end on tiny data, and under torchrun with 2 CPU processes."""

import json
import re
import os
import subprocess
import sys

import numpy as np
import pydicom
import pytest
import torch

from medgan.cli import main
from medgan.tasks import TASKS
from medgan.errors import MedganError
from medgan.train import LossConfig

TINY = ["--data", "phantom", "--n-images", "32", "--size", "32", "--width", "8", "--batch-size", "8",
        "--log-every", "1", "--sample-every", "2", "--checkpoint-every", "2", "--n-samples", "4", "--no-progress"]


def test_dry_run_prints_the_resolved_config(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("loop:\n  steps: 7\n  batch_size: 16\nloss:\n  name: hinge\n")
    assert main(["train", "--config", str(cfg), "--steps", "9", "--dry-run"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["loop"]["steps"] == 9 and config["loop"]["batch_size"] == 16  # flag beats file beats default
    assert config["loss"]["name"] == "hinge" and config["model"]["net"]["image_size"] == 64


@pytest.mark.parametrize("argv, message", [
    (["--loss", "wasserstein"], "unknown loss"),
    (["--size", "48"], "DCGAN cannot make 48x48"),
    (["--model", "fastgan", "--size", "32"], "FastGAN cannot make 32x32"),
    (["--model", "pix2pix"], "unknown model 'pix2pix'; use one of dcgan, mlp, fastgan"),  # an enhancement network
    (["--augment", "flip"], "unknown augmentation"),
    (["--steps", "0"], "--steps must be at least 1"),
])
def test_bad_train_options_get_one_line(argv, message, capsys):
    assert main(["train", "--dry-run", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


@pytest.mark.parametrize("text, message", [
    ("loop:\n  steps: '100'\n", "config.loop.steps is '100' (str), expected int"),
    ("loss:\n  r1_gamma: true\n", "config.loss.r1_gamma is True (bool), expected float"),
    ("data:\n  options:\n    size: 64.5\n", "config.data.options.size is 64.5 (float), expected int or null"),
    ("loop:\n  ema: 1.5\n", "--ema 1.5 must be in [0, 1)"),
])
def test_config_files_are_type_checked_in_one_line(tmp_path, capsys, text, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    assert main(["train", "--config", str(cfg), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_yaml_exponent_without_a_dot_is_a_number(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("optim:\n  lr_g: 2e-4\n  lr_d: 1\n")  # PyYAML reads 2e-4 as text
    assert main(["train", "--config", str(cfg), "--dry-run"]) == 0
    optim = json.loads(capsys.readouterr().out)["optim"]
    assert optim["lr_g"] == 2e-4 and optim["lr_d"] == 1.0 and isinstance(optim["lr_d"], float)


def test_a_config_built_in_python_is_resolved_by_the_trainer(tmp_path):
    from medgan.data import SourceOptions
    from medgan.train import DataConfig, LoopConfig, TrainConfig, Trainer

    config = TrainConfig(data=DataConfig(source="phantom", options=SourceOptions(size=32, n=32)),
                         loop=LoopConfig(steps=1, batch_size=8, n_samples=4))
    trainer = Trainer(config, tmp_path / "run", progress=False)  # no hand-set network fields
    assert trainer.config.model.net["image_size"] == 32 and trainer.config.model.net["channels"] == 1
    trainer.fit()
    with pytest.raises(MedganError, match="unknown loss 'wasserstein'"):
        Trainer(TrainConfig(loss=LossConfig(name="wasserstein")), tmp_path / "bad", progress=False)


def test_train_generate_and_resume_from_the_command_line(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", "synth", *TINY, "--steps", "2", "--runs-dir", str(runs)]) == 0
    run = runs / "00000-synth-dcgan-phantom"
    assert (run / "generator" / "model.safetensors").is_file()
    assert main(["train", "--resume", str(run), "--steps", "4", "--no-progress"]) == 0
    steps = [json.loads(line)["step"] for line in (run / "stats.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]

    for fmt, pattern in (("png", "*.png"), ("npz", "images.npz"), ("dcm", "*.dcm"), ("nii", "*.nii.gz")):
        out = tmp_path / f"gen-{fmt}"
        assert main(["generate", str(run), "--n", "5", "--out", str(out), "--format", fmt, "--seed", "3"]) == 0
        assert len(list(out.glob(pattern))) == (1 if fmt == "npz" else 5)
    images = np.load(tmp_path / "gen-npz" / "images.npz")["train_images"]
    assert images.shape == (5, 32, 32) and images.min() >= -1000 - 1e-3  # back in HU
    ds = pydicom.dcmread(next((tmp_path / "gen-dcm").glob("*.dcm")))
    assert "DERIVED" in ds.ImageType and "synthetic" in str(ds.ImageComments).lower()
    assert ds.PatientIdentityRemoved == "YES"
    # same seed, same images
    main(["generate", str(run), "--n", "5", "--out", str(tmp_path / "again"), "--format", "npz", "--seed", "3"])
    np.testing.assert_array_equal(np.load(tmp_path / "again" / "images.npz")["train_images"], images)
    # refuses to overwrite
    capsys.readouterr()
    assert main(["generate", str(run), "--n", "2", "--out", str(tmp_path / "gen-png")]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_ddp_two_cpu_processes_with_gloo(tmp_path):
    runs = tmp_path / "runs"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "medgan", "train", *TINY, "--steps", "3", "--device", "cpu", "--runs-dir", str(runs)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Warning" not in result.stderr, result.stderr[-3000:]  # the terminal shows only medgan
    run = runs / "00000-synth-dcgan-phantom"
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss_d" in r] == [1, 2, 3]
    assert rows[-1]["world_size"] == 2 and rows[-1]["replicas_in_sync"] is True
    assert (run / "generator" / "model.safetensors").is_file()
    assert len(list(runs.iterdir())) == 1  # only rank 0 wrote a run folder


def test_time_budget_is_planned_and_steps_cap_it(tmp_path, capsys):
    run = tmp_path / "budget"
    assert main(["train", *TINY, "--steps", "6", "--time-budget", "10m", "--run-dir", str(run)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert f"training into {run}" in err and "time budget 600 s: measured" in err and "the 6 steps asked for fit in it" in err
    plan = json.loads((run / "config.json").read_text())["loop"]["plan"]
    assert plan["steps"] == plan["asked"] == [6] and plan["capped"] and plan["scale"] > 1
    steps = [json.loads(line)["step"] for line in (run / "stats.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 7))


def test_a_run_slower_than_its_budget_stops_cleanly_with_its_export(tmp_path, capsys, monkeypatch):
    from medgan.train import Trainer

    monkeypatch.setattr(Trainer, "plan_budget", lambda self: None)  # the guard alone, as if the host slowed down
    run = tmp_path / "budget"
    assert main(["train", *TINY, "--steps", "100000", "--time-budget", "2s", "--run-dir", str(run)]) == 0
    err = capsys.readouterr().err
    assert "stopped by the time budget at step" in err
    steps = [json.loads(line)["step"] for line in (run / "stats.jsonl").read_text().splitlines()]
    assert 1 <= steps[-1] < 100000 and steps == list(range(1, steps[-1] + 1))
    assert (run / "generator" / "model.safetensors").is_file()
    assert (run / "checkpoints" / f"training-state-{steps[-1]:07d}.pt").is_file()  # resumable from where it stopped


@pytest.mark.parametrize("value", ["ten minutes", "-5m"])
def test_bad_time_budget_is_refused(value, capsys):
    with pytest.raises(SystemExit):
        main(["train", f"--time-budget={value}", "--dry-run"])
    err = capsys.readouterr().err
    assert "duration" in err or "negative" in err


@pytest.mark.parametrize("task, model", [("synth", "dcgan"), ("enhance", "dncnn"), ("segment", "unet"), ("classify", "resnet18"),
                                         ("anomaly", "pix2pix")])
def test_the_model_is_auto_by_task_and_a_wrong_one_is_refused(task, model, capsys):
    assert main(["train", task, "--data", "brain-mri", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["name"] == model
    if task in ("segment", "classify"):  # once silently replaced by the task's own; now not even a flag of theirs
        with pytest.raises(SystemExit) as exit:
            main(["train", task, "--data", "brain-mri", "--model", "dcgan", "--dry-run"])
        assert exit.value.code == 2 and f"unrecognized arguments for medgan train {task}: --model dcgan" in capsys.readouterr().err


# What each task reads of the run-wide settings (its options' ``settings``), and what it must not show.
NOT_READ = {"synth": ["--layers", "--depth", "--d-width"], "enhance": ["--z-dim", "--augment", "--balance-classes", "--r1"],
            "classify": ["--lr-g", "--beta1", "--ema", "--n-critic", "--loss", "--model", "--augment"],
            "segment": ["--model", "--z-dim", "--n-critic", "--ema", "--augment", "--r1", "--hidden", "--balance-classes"],
            "anomaly": ["--model", "--ema", "--augment", "--layers", "--balance-classes"]}


@pytest.mark.parametrize("task", list(TASKS))
def test_each_task_has_its_own_short_help_and_refuses_the_flags_it_does_not_read(task, capsys):
    with pytest.raises(SystemExit):
        main(["train", task, "--help"])
    text = capsys.readouterr().out
    assert len(text.splitlines()) < 130 and f"(here: {task})" in text  # one screen or two, not every task's flags (~250)
    flags = set(re.findall(r"^\s+(--[a-z0-9-]+)", text, re.M))
    assert "--steps" in flags and "--data" in flags and "--size" in flags
    for flag in NOT_READ.get(task, []):
        assert flag not in flags, flag
        with pytest.raises(SystemExit) as exit:
            main(["train", task, flag, *([] if flag == "--balance-classes" else ["1"]), "--dry-run"])
        assert exit.value.code == 2 and f"for medgan train {task}: {flag}" in capsys.readouterr().err


def test_a_config_file_setting_the_task_does_not_read_is_one_line_and_a_saved_config_is_a_config(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("task: segment\noptim:\n  n_critic: 3\n")
    assert main(["train", "segment", "--config", str(cfg), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "optim.n_critic: a segment run does not read this setting" in err[0], err
    for task in TASKS:  # what --dry-run prints (= config.json) reads back as a config file, to the same config
        argv = ["train", task, "--data", "phantom", "--n-images", "16", "--lesion-fraction", "0.5", "--size", "32", "--dry-run"]
        assert main(argv) == 0, task
        printed = capsys.readouterr().out
        (tmp_path / f"{task}.json").write_text(printed)
        assert main(["train", task, "--config", str(tmp_path / f"{task}.json"), "--dry-run"]) == 0, task
        assert json.loads(capsys.readouterr().out) == json.loads(printed), task


def test_dry_run_reads_and_checks_the_data_as_training_does(tmp_path, capsys):
    assert main(["train", "segment", "--data", str(tmp_path / "none"), "--dry-run"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "segment", "--data", "phantom", "--masks", str(tmp_path / "none"), "--dry-run"]) == 2
    assert "--masks pairs with a folder or files of images" in capsys.readouterr().err
    assert main(["train", "segment", "--data", "phantom", "--dry-run"]) == 2  # head phantoms without lesions: nothing to segment
    assert "every training mask is empty" in capsys.readouterr().err
    assert main(["train", "segment", "--data", "phantom", "--lesion-fraction", "1", "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert "--size 64 was chosen for you" in captured.err and json.loads(captured.out)["data"]["options"]["size"] == 64


def test_dry_run_on_brain_mri_at_128_reads_the_embedded_128_slices(monkeypatch, capsys):
    """--size 128 reads the 128 file as stored (not the 64 one upsampled); without --size
    the 64 file is read and the choice is said."""
    import medgan.data.training as training
    from medgan.datasets import load_brain_mri

    read = []
    original = training.load_training_data
    monkeypatch.setattr(training, "load_training_data", lambda config: read.append(original(config)) or read[-1])
    assert main(["train", "synth", "--data", "brain-mri", "--size", "128", "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["data"]["options"]["size"] == 128 and "chosen for you" not in captured.err
    (dataset, holdout), stored = read[-1], load_brain_mri(size=128)
    by_source = dict(zip(stored.sources, stored.images))
    for part in (dataset.data, holdout):
        assert part.images.shape[1:] == (128, 128)
        assert all(np.array_equal(image, by_source[source]) for image, source in zip(part.images, part.sources))
    assert len(dataset.data) + len(holdout) == len(stored)
    assert main(["train", "synth", "--data", "brain-mri", "--dry-run"]) == 0
    assert "--size 64 was chosen for you" in capsys.readouterr().err
    assert read[-1][0].data.images.shape[1:] == (64, 64)


def test_a_run_without_a_budget_says_how_long_it_will_take_and_measuring_changes_nothing(tmp_path, capsys):
    from safetensors.torch import load_file

    shown = [a for a in TINY if a != "--no-progress"]
    assert main(["train", "synth", *shown, "--steps", "3", "--run-dir", str(tmp_path / "told")]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert re.search(r"measured [0-9.e-]+ s per step: 3 steps take about [0-9]+ s on this machine", err), err
    assert main(["train", "synth", *TINY, "--steps", "3", "--no-progress", "--run-dir", str(tmp_path / "quiet")]) == 0
    assert "per step:" not in capsys.readouterr().err  # --no-progress: no probe
    told, quiet = (load_file(tmp_path / r / "generator" / "model.safetensors") for r in ("told", "quiet"))
    assert all(torch.equal(told[k], quiet[k]) for k in quiet)  # the probe ran on copies and restored the random streams
