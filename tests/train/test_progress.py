"""Progress while training: each task's own values; plain lines when stderr is not a terminal."""

import io
import json

from medgan.cli import main
from medgan.train.progress import Progress, shown_values


def test_values_shown_are_the_tasks_own_losses_first():
    record = {"step": 50, "dice": 0.8, "loss_s": 0.41, "ce": 0.2, "sec_per_step": 0.3, "elapsed": 15.0, "phase": "train"}
    assert shown_values(record) == "loss_s 0.41  dice 0.8  ce 0.2"
    assert shown_values({"loss_d": 1.0, "loss_g": float("nan"), "d_real": 0.5}) == "loss_d 1  d_real 0.5"


def test_without_a_terminal_a_plain_line_every_few_log_steps_with_an_eta():
    stream = io.StringIO()  # not a terminal: what nohup, SLURM and CI give
    progress = Progress(1000, 0, enabled=True, stream=stream)
    for step in range(1, 1001):
        progress.update(step, {"loss_c": 1.0 / step, "accuracy": 0.5, "sec_per_step": 0.01} if step % 5 == 0 else None)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert 40 <= len(lines) <= 52 and lines[-1].startswith("step 1000/1000  loss_c 0.001  accuracy 0.5  0.01 s/step")
    assert all("eta" in line for line in lines)
    silent = io.StringIO()
    Progress(10, 0, enabled=False, stream=silent).update(10, {"loss_c": 1.0})
    assert silent.getvalue() == ""


def test_a_segmentation_run_shows_its_loss_not_gan_keys(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "segment", "--data", "phantom", "--n-images", "8", "--lesion-fraction", "1", "--size", "32", "--steps", "4",
                 "--batch-size", "4", "--width", "4", "--depth", "1", "--holdout", "0", "--log-every", "1",
                 "--run-dir", str(run)]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("step ")]
    logged = json.loads((run / "stats.jsonl").read_text().splitlines()[-1])
    assert lines and lines[-1].startswith("step 4/4  loss_s") and "loss_d" not in lines[-1]
    assert f"loss_s {logged['loss_s']:.4g}" in lines[-1]
