"""medgan export: ONNX (run with onnxruntime) and TorchScript files that compute what the
PyTorch networks compute, each with the config JSON that preparing an input needs; and
--init-from: a run started from another run's weights."""

import json

import numpy as np
import pytest
import torch

from medgan.cli import main
from medgan.tasks import load_model

TINY = ["--size", "32", "--width", "8", "--batch-size", "4", "--steps", "2", "--no-progress"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    out = {"synth": root / "synth", "enhance": root / "enhance", "segment": root / "segment"}
    assert main(["train", "synth", "--data", "phantom", "--n-images", "16", "--run-dir", str(out["synth"]), *TINY]) == 0
    assert main(["train", "enhance", "--data", "phantom", "--n-images", "16", "--degradation", "gaussian:sigma=50",
                 "--run-dir", str(out["enhance"]), *TINY]) == 0
    assert main(["train", "segment", "--data", "phantom", "--n-images", "16", "--lesion-fraction", "1", "--depth", "2",
                 "--run-dir", str(out["segment"]), *TINY]) == 0
    return out


@pytest.mark.parametrize("task", ["synth", "enhance", "segment"])
def test_onnx_export_runs_in_onnxruntime_and_matches_pytorch(runs, tmp_path, task, require, capsys):
    ort = require("onnxruntime")
    require("onnxscript")
    out = tmp_path / "onnx"
    assert main(["export", str(runs[task]), "--format", "onnx", "--out", str(out)]) == 0
    assert "largest difference from PyTorch" in capsys.readouterr().out
    name = {"synth": "generator", "enhance": "generator", "segment": "segmentor"}[task]
    record = json.loads((out / f"{name}.json").read_text())
    assert record["format"] == "onnx" and record["check"]["max_abs_difference"] < 1e-4 and "intensity" in record
    session = ort.InferenceSession(str(out / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    model = load_model(runs[task])
    net = {"synth": lambda m: m.generator, "enhance": lambda m: m.generator, "segment": lambda m: m.segmentor}[task](model)
    if task == "synth":
        x = torch.randn(5, record["inputs"][0]["shape"][1])
        feed = {"z": x.numpy()}
    else:  # image-to-image: any batch and any size the network takes (here 48 px, trained at 32)
        x = torch.rand(3, 1, 48, 48) * 2 - 1
        feed = {"image": x.numpy()}
        assert record["inputs"][0]["free_axes"] == [0, 2, 3]
    with torch.no_grad():
        expected = net(x).numpy()
    np.testing.assert_allclose(session.run(None, feed)[0], expected, atol=1e-4)


def test_torchscript_export_loads_without_medgan_and_matches(runs, tmp_path):
    out = tmp_path / "ts"
    assert main(["export", str(runs["enhance"]), "--format", "torchscript", "--out", str(out)]) == 0
    scripted = torch.jit.load(str(out / "generator.pt"))
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), load_model(runs["enhance"]).generator(x), atol=1e-5, rtol=0)
    assert json.loads((out / "generator.json").read_text())["check"]["max_abs_difference"] < 1e-5


def test_export_refuses_what_it_cannot_do_in_one_line(runs, tmp_path, capsys):
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "x")]) != 0
    assert "no exported networks here" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "file").write_text("x")
    assert main(["export", str(runs["enhance"]), "--format", "torchscript", "--out", str(tmp_path / "full")]) != 0
    err = capsys.readouterr().err
    assert "already holds data" in err and "Traceback" not in err


# --------------------------------------------------------------------------- --init-from


def _first_loss(run):
    return json.loads((run / "stats.jsonl").read_text().splitlines()[0])["loss_g"]


def test_a_denoiser_fine_tuned_from_phantoms_starts_below_a_fresh_one_on_brain_slices(tmp_path, capsys):
    pre = tmp_path / "phantom"
    common = ["--size", "32", "--width", "8", "--batch-size", "8", "--log-every", "1", "--no-progress", "--no-flip"]
    # the same noise in [-1, 1] units on both: 100 HU of the phantoms' 2000, 12.75 of the slices' 255
    assert main(["train", "enhance", "--data", "phantom", "--n-images", "64", "--degradation", "gaussian:sigma=100",
                 "--steps", "150", "--run-dir", str(pre), *common]) == 0
    brain = ["train", "enhance", "--data", "brain-mri", "--degradation", "gaussian:sigma=12.75", "--steps", "1", *common]
    assert main([*brain, "--run-dir", str(tmp_path / "fresh")]) == 0
    capsys.readouterr()
    assert main([*brain, "--init-from", str(pre), "--run-dir", str(tmp_path / "tuned")]) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert "started from" in said and "generator" in said and "fresh: none" in said
    assert _first_loss(tmp_path / "tuned") < 0.8 * _first_loss(tmp_path / "fresh")
    config = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert config["loop"]["init_from"] == str(pre)


def test_init_from_refuses_other_shapes_and_other_networks_in_one_line(runs, tmp_path, capsys):
    wide = ["train", "enhance", "--data", "phantom", "--n-images", "16", "--degradation", "gaussian:sigma=50", "--size", "32",
            "--width", "16", "--batch-size", "4", "--steps", "1", "--no-progress", "--init-from", str(runs["enhance"])]
    assert main([*wide, "--run-dir", str(tmp_path / "a")]) != 0
    err = capsys.readouterr().err
    assert "shape" in err and "--width" in err and "Traceback" not in err
    seg = ["train", "segment", "--data", "phantom", "--n-images", "16", "--lesion-fraction", "1", "--depth", "2", "--size", "32",
           "--width", "8", "--batch-size", "4", "--steps", "1", "--no-progress", "--init-from", str(runs["synth"])]
    assert main([*seg, "--run-dir", str(tmp_path / "b")]) != 0
    assert "none of its networks (generator)" in capsys.readouterr().err
    assert main([*seg[:-2], "--init-from", str(tmp_path / "nowhere"), "--run-dir", str(tmp_path / "c")]) != 0
    assert "no exported networks to start from" in capsys.readouterr().err
