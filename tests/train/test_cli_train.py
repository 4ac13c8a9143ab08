"""medgan train / generate end to end on tiny data, and under torchrun with 2 CPU processes."""

import json
import os
import subprocess
import sys

import numpy as np
import pydicom
import pytest

from medgan.cli import main

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
    (["--augment", "flip"], "unknown augmentation"),
    (["--steps", "0"], "--steps must be at least 1"),
])
def test_bad_train_options_get_one_line(argv, message, capsys):
    assert main(["train", "--dry-run", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


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
    images = np.load(tmp_path / "gen-npz" / "images.npz")["images"]
    assert images.shape == (5, 32, 32) and images.min() >= -1000 - 1e-3  # back in HU
    ds = pydicom.dcmread(next((tmp_path / "gen-dcm").glob("*.dcm")))
    assert "DERIVED" in ds.ImageType and "synthetic" in str(ds.ImageComments).lower()
    assert ds.PatientIdentityRemoved == "YES"
    # same seed, same images
    main(["generate", str(run), "--n", "5", "--out", str(tmp_path / "again"), "--format", "npz", "--seed", "3"])
    np.testing.assert_array_equal(np.load(tmp_path / "again" / "images.npz")["images"], images)
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
