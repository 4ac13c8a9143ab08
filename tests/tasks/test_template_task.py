"""A new task is one folder plus one registry line: the test-only template task (three named
networks, two phases, three exports) trains, resumes, exports, loads, evaluates and reports
through the engine and the CLI, with nothing else edited."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from medgan.cli import main
from medgan.data.sources import SourceOptions
from medgan.report.curves import read_jsonl
from medgan.tasks import TASKS, load_model
from medgan.train import DataConfig, LoopConfig, TrainConfig, Trainer
from medgan.train.checkpoint import latest_checkpoint, load_checkpoint

from template_task.config import TemplateConfig
from template_task.model import TemplateModel


@pytest.fixture
def template():
    TASKS.register("template", "template_task.recipe:TemplateTask", options="template_task.config:TemplateConfig",
                   commands="template_task.command:add_commands")  # the one registry entry
    yield
    TASKS.unregister("template")


def config(steps=6, encoder_steps=4, **loop) -> TrainConfig:
    values = dict(steps=steps, batch_size=8, log_every=2, sample_every=100, checkpoint_every=3, n_samples=8, augment="")
    values.update(loop)
    return TrainConfig(task="template", data=DataConfig(source="phantom", options=SourceOptions(size=16, n=32), holdout=0.25),
                       loop=LoopConfig(**values), task_config=TemplateConfig(encoder_steps=encoder_steps))


def rows(run):
    return [r for r in read_jsonl(run / "stats.jsonl") if "step" in r]


def test_cli_trains_exports_evaluates_and_reports_a_new_task(template, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "template", "--data", "phantom", "--n-images", "32", "--size", "16", "--holdout", "0.25", "--steps", "6",
            "--encoder-steps", "40", "--lr-g", "1e-3", "--batch-size", "8", "--log-every", "10", "--sample-every", "100",
            "--run-dir", str(run), "--no-progress"]
    assert main(argv) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["task"] == "template" and saved["template"]["encoder_steps"] == 40  # the task's section, from its flag

    logged = rows(run)
    assert [(r["step"], r["phase"]) for r in logged] == [(6, "gan"), (10, "encoder"), (20, "encoder"), (30, "encoder"), (40, "encoder"), (46, "encoder")]
    assert {"loss_d", "loss_g"} <= set(logged[0]) and "loss_e" not in logged[0]
    assert {"loss_e", "pixel_mse"} <= set(logged[1]) and "loss_d" not in logged[1]
    assert logged[-1]["pixel_mse"] < logged[1]["pixel_mse"]  # the encoder learns to invert G

    for name in ("generator", "critic", "encoder"):
        info = json.loads((run / name / "config.json").read_text())
        assert info["network"] == name and info["task"] == "template" and info["step"] == 46
    model = load_model(run)
    assert isinstance(model, TemplateModel) and not model.encoder.training
    images = np.random.default_rng(0).uniform(0, 1, (5, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(model.score(images[:2]), model.score(images)[:2], rtol=1e-5)  # batch-independent

    assert main(["evaluate", str(run), "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["task"] == "template" and {"psnr", "ssim"} <= set(record["metrics"]) and record["n_test"] > 0
    assert main(["evaluate", str(run), "--metrics", "hf_energy", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["metrics"]) == {"hf_energy_ratio"}
    # its own inference command, on the shared file walker: a folder in, a mirrored folder out
    from medgan.io import read_raster, write_png

    (tmp_path / "in" / "sub").mkdir(parents=True)
    for name in ("a.png", "sub/b.png"):
        write_png(tmp_path / "in" / name, images[0], value_range=(0.0, 1.0))
    assert main(["template-reconstruct", str(run), str(tmp_path / "in"), "--out", str(tmp_path / "out")]) == 0
    assert read_raster(tmp_path / "out" / "sub" / "b.png").array.shape == (16, 16)
    np.save(tmp_path / "in" / "array.npy", images[0])  # a format this command does not read
    assert main(["template-reconstruct", str(run), str(tmp_path / "in"), "--out", str(tmp_path / "out2")]) == 2
    assert not (tmp_path / "out2").exists()  # all or nothing
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "Reconstructions" in page and "reconstructed through E and G" in page and "loss_e" in page


def test_the_second_phase_trains_only_the_encoder(template, tmp_path):
    gan_only = Trainer(config(encoder_steps=0), tmp_path / "a", progress=False).fit()
    both = Trainer(config(encoder_steps=4), tmp_path / "b", progress=False).fit()
    for name, same in (("generator", True), ("critic", True), ("encoder", False)):
        a, b = (load_file(str(r / name / "model.safetensors")) for r in (gan_only, both))
        assert all(torch.equal(a[k], b[k]) for k in a) == same, name


@pytest.mark.parametrize("first", [4, 7])  # interrupted inside the first phase, or inside the second
def test_resume_is_exact_across_phases(template, tmp_path, first):
    whole = Trainer(config(log_every=1), tmp_path / "whole", progress=False).fit()
    part_config = config(steps=first, encoder_steps=0, log_every=1) if first < 6 else config(encoder_steps=first - 6, log_every=1)
    part = Trainer(part_config, tmp_path / "part", progress=False).fit()
    Trainer(config(log_every=1), part, resume=True, progress=False).fit()
    drop = lambda r: {k: v for k, v in r.items() if k not in ("sec_per_step", "img_per_sec", "elapsed")}  # noqa: E731
    assert [drop(r) for r in rows(part) if r["step"] > first] == [drop(r) for r in rows(whole) if r["step"] > first]
    a, b = (load_checkpoint(latest_checkpoint(r)) for r in (whole, part))
    for name in ("generator", "critic", "encoder"):
        for k, v in a["networks"][name].items():
            assert torch.equal(v, b["networks"][name][k]), (name, k)


def test_an_option_of_another_task_is_refused_and_help_lists_the_tasks_own(template, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["train", "synth", "--encoder-steps", "3", "--dry-run"])
    assert exit.value.code == 2 and "unrecognized arguments for medgan train synth: --encoder-steps" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "template", "--help"])
    own = capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["train", "synth", "--help"])
    synth = capsys.readouterr().out
    assert "--encoder-steps" in own and "--recipe {" not in own  # (other help texts mention --recipe)
    assert "--recipe {" in synth and "--encoder-steps" not in synth
    assert "--z-dim" in own and "--loss" not in own and "--ema" not in own  # its settings alone


def test_the_template_keeps_the_contract_of_every_registered_task(template, tmp_path, capsys):
    from test_task_contract import check_contract

    check_contract("template", None, tmp_path, capsys)


def test_a_fourth_anomaly_method_is_one_class_and_one_line(tmp_path, capsys, monkeypatch):
    from test_task_contract import check_contract

    from medgan.tasks.anomaly.methods import METHODS

    monkeypatch.setitem(METHODS, "template-restore", "template_task.anomaly_method:TemplateRestorer")  # the one line
    check_contract("anomaly", ("--method", "template-restore"), tmp_path, capsys)
    assert json.loads((tmp_path / "run" / "restorer" / "config.json").read_text())["method"] == "template-restore"
