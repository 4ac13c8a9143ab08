"""A run seen live: TensorBoard event files hold every logged value and the sample grids,
read back with TensorBoard's own reader."""

import json

from medgan.cli import main


def test_a_run_writes_tensorboard_events_that_tensorboard_reads_back(tmp_path, require):
    require("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    assert main(["train", "synth", "--data", "phantom", "--n-images", "16", "--size", "32", "--width", "8", "--batch-size", "4",
                 "--steps", "4", "--log-every", "1", "--sample-every", "2", "--no-progress", "--run-dir", str(run)]) == 0
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    assert {"loss_g", "loss_d", "d_real", "sec_per_step"} <= set(tags["scalars"])
    logged = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [e.step for e in events.Scalars("loss_g")] == [r["step"] for r in logged]  # every log step, as stats.jsonl
    assert abs(events.Scalars("loss_g")[-1].value - logged[-1]["loss_g"]) < 1e-5
    assert "samples" in tags["images"] and [e.step for e in events.Images("samples")] == [0, 2, 4]
