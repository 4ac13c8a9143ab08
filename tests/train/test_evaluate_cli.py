"""evaluate / audit / report on a tiny trained run, from the command line."""

import json

import numpy as np
import pytest
from PIL import Image as PILImage

from medgan.cli import main
from medgan.metrics.inception import inception_available

TINY = ["--data", "phantom", "--n-images", "48", "--size", "32", "--width", "8", "--batch-size", "8",
        "--log-every", "1", "--sample-every", "2", "--checkpoint-every", "4", "--n-samples", "4", "--no-progress"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    assert main(["train", *TINY, "--steps", "4", "--holdout", "0.25", "--runs-dir", str(runs)]) == 0
    return runs / "00000-synth-dcgan-phantom"


def test_evaluate_appends_metrics_with_settings(run, capsys):
    assert main(["evaluate", str(run), "--n", "24", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["metrics"] == printed["metrics"]
    metrics = printed["metrics"]
    for key in ("swd", "pixel_precision", "pixel_recall", "ms_ssim_diversity_generated"):
        assert np.isfinite(metrics[key]), key
    assert ("kid_mean" in metrics) == inception_available()
    assert printed["settings"]["generator"] == "EMA" and printed["n_generated"] == 24


def test_evaluate_shows_each_figure_beside_the_real_floor(run, capsys):
    from medgan.runs import real_images
    from medgan.tasks.synth.evaluate import realism_metrics

    assert main(["evaluate", str(run), "--n", "24", "--metrics", "swd,kid", "--json"]) == 0
    out = capsys.readouterr()
    record = json.loads(out.out.strip().splitlines()[-1])
    train, holdout, _ = real_images(run)
    expected, _, _ = realism_metrics(train, holdout, metrics=["swd", "kid"])  # held-out patients vs training
    assert record["floor"] == pytest.approx(expected) and record["n_floor"] == len(holdout)
    assert "real floor" in out.err
    ratio = record["metrics"]["kid_mean" if "kid_mean" in expected else "swd"] / expected["kid_mean" if "kid_mean" in expected else "swd"]
    assert f"is {ratio:.1f}x the real floor" in out.err.replace("\n", " ")
    assert main(["report", str(run)]) == 0
    assert "the real floor" in (run / "report.html").read_text()


def test_evaluate_picks_metrics_by_name(run, capsys):
    assert main(["evaluate", str(run), "--n", "24", "--metrics", "swd,ms_ssim", "--json"]) == 0
    out = capsys.readouterr()
    printed = json.loads(out.out.strip().splitlines()[-1])
    assert set(printed["metrics"]) == {"swd", "ms_ssim_diversity_generated", "ms_ssim_diversity_real"}
    assert "FID/KID skipped" not in out.err  # none was asked for
    assert main(["evaluate", str(run), "--metrics", "lpips"]) == 2
    assert "unknown realism metric 'lpips'" in capsys.readouterr().err


def test_audit_and_report(run, capsys):
    assert main(["audit", str(run), "--n", "24"]) == 0
    assert "flagged as near-copies" in capsys.readouterr().out
    summary = json.loads((run / "audit" / "summary.json").read_text())
    assert 0 <= summary["fraction_flagged"] <= 1 and summary["pixel"]["n_holdout"] > 0
    assert PILImage.open(run / "audit" / "closest-pairs.png").size[0] > 0
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "Memorisation audit" in page and "data:image/png;base64," in page
    assert "http://" not in page and "https://" not in page and "<script" not in page  # offline, self-contained


def test_evaluate_two_sources_and_bad_run(tmp_path, capsys):
    assert main(["evaluate", "phantom", "phantom", "--n-images", "16", "--size", "32"]) == 0
    assert main(["audit", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err
