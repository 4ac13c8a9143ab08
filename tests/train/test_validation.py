"""Validation during training: every task logs its cheap held-out figure into stats.jsonl at
each sample grid (or every --val-every steps), and curves.png shows it."""

import json

import pytest

from medgan.cli import main

COMMON = ["--size", "32", "--width", "8", "--batch-size", "4", "--steps", "4", "--sample-every", "2", "--log-every", "4",
          "--holdout", "0.25", "--no-progress"]
CASES = {
    "synth": (["--data", "phantom", "--n-images", "24"], {"val_swd"}),
    "enhance": (["--data", "phantom", "--n-images", "24", "--degradation", "gaussian:sigma=50"], {"val_psnr", "val_ssim"}),
    "segment": (["--data", "phantom", "--n-images", "24", "--lesion-fraction", "1", "--depth", "2"], {"val_dice"}),
    "classify": (["--data", "phantom", "--n-images", "24", "--lesion-fraction", "0.5"], {"val_acc", "val_balanced_acc"}),
    "anomaly": (["--data", "phantom", "--n-images", "24", "--method", "ae"], {"val_auroc"}),
}


@pytest.mark.parametrize("task", list(CASES))
def test_every_task_validates_on_held_out_images_while_it_trains(task, tmp_path):
    flags, keys = CASES[task]
    run = tmp_path / "run"
    assert main(["train", task, *flags, *COMMON, "--run-dir", str(run)]) == 0
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    validated = [r for r in rows if keys <= set(r)]
    assert [r["step"] for r in validated] == [2, 4]  # at each sample grid, the end included
    for r in validated:
        for key in keys:
            value = r[key]
            assert value == value and (0 <= value <= 1 if key not in ("val_psnr", "val_swd") else value > 0), (key, value)
    assert (run / "curves.png").stat().st_size > 0


def test_val_every_sets_its_own_pace(tmp_path):
    run = tmp_path / "run"
    flags, _ = CASES["enhance"]
    assert main(["train", "enhance", *flags, *COMMON, "--val-every", "1", "--run-dir", str(run)]) == 0
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "val_psnr" in r] == [1, 2, 3, 4]
