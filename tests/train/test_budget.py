"""A time budget is planned: measured first, every phase laid out over the steps it reaches."""

import json

import pytest

from medgan.cli import main
from medgan.train import Trainer, TrainConfig
from medgan.train.budget import REPLAN_AT, Plan, plan_steps
from medgan.train.config import load_config_file

ANOMALY = ["train", "anomaly", "--method", "fanogan", "--data", "phantom", "--n-images", "16", "--size", "32", "--width", "4",
           "--batch-size", "4", "--holdout", "0", "--log-every", "5", "--n-samples", "4", "--no-progress"]


def test_every_phase_keeps_its_share_of_the_time_and_at_least_one_step():
    # 100 + 100 nominal steps at 0.3 s and 0.1 s: 40 s; 20 s available halves both.
    assert plan_steps([100, 100], [0.3, 0.1], 20.0, cap=False) == ([50, 50], 0.5)
    assert plan_steps([100], [0.1], 30.0, cap=False) == ([300], 3.0)  # no --steps: the budget decides the length
    assert plan_steps([100], [0.1], 30.0, cap=True) == ([100], 3.0)  # --steps caps it
    steps, scale = plan_steps([100, 100], [0.3, 0.1], 0.1, cap=False)
    assert steps == [1, 1] and scale == pytest.approx(0.0025)  # too short: still one step each
    plan = Plan(2.0, ["gan", "encoder"], [0.3, 0.1], [100, 100], steps, scale, capped=False)
    assert plan.short and "cannot reach every phase (it reaches gan 0.2 + encoder 0.2 steps)" in plan.describe()
    assert not Plan(60.0, ["train"], [0.1], [100], [300], 3.0, capped=False).short


def test_a_budget_lays_out_both_phases_of_fanogan_and_the_config_records_the_plan(tmp_path, capsys):
    run = tmp_path / "run"
    assert main([*ANOMALY, "--time-budget", "8s", "--run-dir", str(run)]) == 0
    assert "the run is laid out over gan" in " ".join(capsys.readouterr().err.split())
    config = json.loads((run / "config.json").read_text())
    plan = config["loop"]["plan"]
    assert plan["phases"] == ["gan", "encoder"] and plan["asked"] == [4000, 4000]
    gan, encoder = plan["steps"]
    assert (config["loop"]["steps"], config["anomaly"]["encoder_steps"]) == (gan, encoder)  # the schedule spans the plan
    revised = [r["step"] for r in plan["revisions"]]
    assert 1 < gan < 4000 and encoder >= 1 and revised[0] < gan and gan in revised  # a tenth in, and when the GAN phase ended
    # laid out again at every share of REPLAN_AT inside the GAN phase, never twice at one step
    assert len([r for r in revised if r < gan]) == len(REPLAN_AT) and revised == sorted(set(revised))
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert {r["phase"] for r in rows} == {"gan", "encoder"}  # the encoder is trained
    assert json.loads((run / "encoder" / "config.json").read_text())["step"] > gan
    # A resumed run keeps its plan instead of measuring again.
    trainer = Trainer(TrainConfig.from_dict(load_config_file(run / "config.json")), run, resume=True, progress=False)
    assert trainer.plan_budget() is None and [p.steps for p in trainer.phases] == [gan, encoder]


def test_a_budget_too_short_for_every_phase_is_said_up_front_and_still_trains_each(tmp_path, capsys):
    run = tmp_path / "run"
    with pytest.warns(UserWarning, match="cannot reach every phase"):
        assert main([*ANOMALY, "--time-budget", "0.01s", "--run-dir", str(run)]) == 0
    plan = json.loads((run / "config.json").read_text())["loop"]["plan"]
    assert plan["steps"][1] >= 1
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert "encoder" in {r["phase"] for r in rows}  # out of time in the GAN phase, the encoder still trains
