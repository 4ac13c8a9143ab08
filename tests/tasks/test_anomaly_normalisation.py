"""Residual normalisation of anomaly maps: z-scores against known per-pixel mean and spread,
the smoothing and floor of the spread, a normal pattern it removes, body erosion and the
median filter, and a trained run that normalises end to end (calibration on the calibration
normals only, load_model, detect), with a planted lesion still at the map's peak."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from medgan.cli import main
from medgan.data.intensity import IntensityMap
from medgan.errors import MedganError
from medgan.tasks import load_model
from medgan.tasks.anomaly.model import AnomalyModel, body, fit_normalisation, maps_of, residual_set, score_set

from checks import SEEDS, hits_at_peak, planted_lesion


def test_known_mean_and_spread_give_the_expected_z_maps():
    rng = np.random.default_rng(0)
    mean = rng.uniform(0.05, 0.3, (16, 16))
    spread = np.full((16, 16), 0.04)  # constant: the smoothing leaves it as it is
    # two normals at mean -/+ spread / sqrt(2): per pixel, mean `mean` and standard deviation `spread` (n - 1)
    residuals = np.stack([mean - spread / np.sqrt(2), mean + spread / np.sqrt(2)])
    fitted = fit_normalisation(residuals)
    assert np.allclose(fitted.mean, mean, atol=1e-6) and np.allclose(fitted.spread, spread, atol=1e-6)
    assert fitted.settings["n"] == 2
    test = np.stack([mean + 3 * spread, mean, mean - 2 * spread]).astype(np.float32)
    z = fitted.apply(torch.from_numpy(test)).numpy()
    assert np.allclose(z[0], 3.0, atol=1e-4) and np.allclose(z[1], 0.0, atol=1e-4)
    assert (z[2] == 0).all()  # below the normal mean: no anomaly, clipped at 0
    with pytest.raises(MedganError, match="2 are needed"):
        fit_normalisation(residuals[:1])
    with pytest.raises(MedganError, match="model's size"):
        fitted.apply(torch.zeros(1, 8, 8))


def test_the_spread_is_smoothed_and_floored_where_normals_are_quiet():
    rng = np.random.default_rng(1)
    n, s = 40, 32
    inside = np.zeros((n, s, s), bool)
    inside[:, 8:24, 8:24] = True  # the body; air around it
    residuals = np.where(inside, 0.1 + 0.05 * rng.standard_normal((n, s, s)), 0.0)  # air: always 0, spread 0
    residuals[:, 12, 12] = 0.1  # a pixel the normals happened to leave alike: raw spread 0
    residuals[:, 16, 16] = 0.1 + 0.5 * rng.standard_normal(n)  # a sharp spot of large spread
    raw = residuals.std(0, ddof=1)
    fitted = fit_normalisation(residuals, inside, sigma=2.0, floor=0.25)
    assert raw[12, 12] < 1e-12 and 0.04 < fitted.spread[12, 12] < 0.1  # lifted to its neighbours' spread, no explosion
    assert fitted.spread[16, 16] == pytest.approx(raw[16, 16], rel=1e-5)  # smoothing never thins a pixel's own spread
    assert fitted.spread[16, 17] > raw[16, 17] + 0.01  # its near neighbours are lifted by it
    assert fitted.spread[8, 16] > 0.04  # the body's edge keeps the body's spread (the air's zero is not averaged in)
    assert (fitted.spread >= raw - 1e-6).all()
    # floor: a quarter of the median spread in the body, where the normals left the pixel at 0 (air)
    assert 0.01 < fitted.settings["floor_value"] < 0.015
    assert fitted.spread[0, 0] == pytest.approx(fitted.settings["floor_value"], rel=1e-5)
    z = fitted.apply(torch.full((1, s, s), 0.01)).numpy()[0]  # a small residual in the air: a modest z-score
    assert z[0, 0] < 1.0
    unsmoothed = fit_normalisation(residuals, inside, sigma=0.0, floor=0.25)
    assert unsmoothed.spread[12, 12] == pytest.approx(unsmoothed.settings["floor_value"])  # without smoothing only the floor holds it
    assert np.allclose(unsmoothed.spread[9:23, 17:23], raw[9:23, 17:23], atol=1e-6)


class _Rim(nn.Module):
    """A fake reconstruction that misses a known pattern: ``x^ = x - w * (x + 1)``, so the
    residual is ``w * (x + 1)``; ``w`` is large on a rim (what no model redraws exactly)."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.register_buffer("w", w)

    def forward(self, x):
        return x - self.w * (x + 1)


def _fake_model(size=32, **options):
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2 + 0.5, xx - size / 2 + 0.5)
    w = np.where((r > 9) & (r < 11), 0.2, 0.02).astype(np.float32)  # the rim misses much, the inside little
    info = {"method": "ae", "net": {"image_size": size}, "step": 0,
            "anomaly": {"map_sigma": 0.0, "image_score": "map-max", **options}}
    model = AnomalyModel("ae", {"encoder": nn.Identity(), "generator": _Rim(torch.from_numpy(w))}, IntensityMap(0.0, 100.0), 1.0, info)
    return model, r


def _heads(r, n, seed, lesion=None):
    rng = np.random.default_rng(seed)
    images = np.where(r < 12, 50 + 5 * rng.standard_normal((n, *r.shape)), 0.0)  # a disk of tissue in air (0)
    if lesion is not None:
        images[:, lesion[0] - 1 : lesion[0] + 2, lesion[1] - 1 : lesion[1] + 2] += 50
    return images.astype(np.float32)


def test_a_planted_lesion_is_at_the_peak_after_normalisation_where_the_rim_hid_it():
    model, r = _fake_model()
    normals = _heads(r, 30, seed=0)
    _, residuals, x = residual_set(model, normals)
    model.normalisation = fit_normalisation(residuals, body(torch.from_numpy(x)).numpy())
    lesion = (14, 17)  # inside, away from the rim
    planted = _heads(r, 4, seed=1, lesion=lesion)
    raw_model, _ = _fake_model()
    _, raw = score_set(raw_model, planted)
    _, z = score_set(model, planted)
    for k in range(4):
        assert r[np.unravel_index(np.argmax(raw[k]), raw[k].shape)] > 8  # raw residual: the rim is the peak
        peak = np.unravel_index(np.argmax(z[k]), z[k].shape)
        assert max(abs(peak[0] - lesion[0]), abs(peak[1] - lesion[1])) <= 1  # normalised: the lesion
    fresh, _ = score_set(model, _heads(r, 20, seed=2))
    assert np.median(fresh) < 5 < score_set(model, planted)[0].min()


def test_calibration_scores_are_cross_fitted_like_the_check_normals():
    """Normals scored against statistics that include their own residual look quieter than
    new normals (thresholds too low); cross-fitted, the calibration scores are like the check's."""
    from medgan.tasks.anomaly.evaluate import _normalised

    model, r = _fake_model()
    residuals = residual_set(model, _heads(r, 40, seed=4))
    groups, cal, check = np.arange(40), np.arange(20), np.arange(20, 40)
    scores, maps, fitted = _normalised(model, residuals, groups, cal, check)
    assert fitted.settings["n"] == 20  # the check normals never enter the statistics
    in_sample = maps_of(model, tuple(a[cal] for a in residuals), fitted)[0]
    assert np.median(in_sample) < 0.9 * np.median(scores[check])
    assert np.median(scores[cal]) > 0.9 * np.median(scores[check])
    held_out = [k for k in range(20) if k % 5 != 0]  # the fold of image 0 is images 0, 5, 10, 15
    own = maps_of(model, tuple(a[[0]] for a in residuals),
                  fit_normalisation(residuals[1][held_out], body(torch.from_numpy(residuals[2][held_out])).numpy()))[1]
    assert np.allclose(maps[0], own[0], atol=1e-6)


def test_body_erosion_and_median_filter_shape_the_map(capsys):
    model, r = _fake_model(body_erosion=2, median_filter=3)
    images = _heads(r, 2, seed=3)
    images[0, 16, 16] += 40  # a single-pixel spike: the median filter removes it
    _, maps = score_set(model, images)
    x = model.intensity.forward(images)
    body = x > -0.9
    assert (maps[:, ~body[0]] == 0).all()
    from scipy import ndimage

    eroded = ndimage.binary_erosion(body[0], np.ones((5, 5)))
    assert (maps[0][~eroded] == 0).all() and (maps[0][eroded] > 0).all()
    unfiltered = score_set(_fake_model(body_erosion=2)[0], images[:1])[1]
    assert unfiltered[0, 16, 16] > 0.034 and maps[0, 16, 16] < 0.026  # the spike's 0.02 * 1.8 goes; its 3x3's median (0.02 * ~1) stays
    assert main(["train", "anomaly", "--data", "phantom", "--median-filter", "4", "--dry-run"]) != 0
    assert "--median-filter 4 must be 0 or odd" in capsys.readouterr().err


def _train(tmp_path, *extra):
    run = tmp_path / "ae"
    argv = ["train", "anomaly", "--method", "ae", "--data", "phantom", "--n-images", "144", "--size", "32", "--width", "16",
            "--window", "40,160", "--steps", "300", "--batch-size", "16", "--holdout", "0.34", "--log-every", "100",
            "--image-score", "map-max", "--normalise-residual", "on", "--run-dir", str(run), "--no-progress", *extra]
    assert main(argv) == 0
    return run


def test_a_normalising_run_calibrates_loads_detects_and_finds_a_planted_lesion(tmp_path):
    import csv

    from PIL import Image as PILImage

    from medgan.tasks.anomaly.detect import Z_HEAT_SCALE, detect_slices, map_units
    from medgan.tasks.anomaly.model import NORMALISATION

    run = _train(tmp_path)
    record = json.loads((run / "calibration.json").read_text())
    norm = record["normalisation"]
    assert (run / NORMALISATION).is_file() and norm["file"] == NORMALISATION
    assert norm["n"] == record["n_calibration_images"] < record["n_calibration_images"] + record["n_check_images"]  # never the check half
    model = load_model(run)
    assert model.normalisation is not None and model.normalisation.mean.shape == (32, 32)
    assert map_units(model)[0] == Z_HEAT_SCALE
    assert model.calibration["image"].threshold == record["levels"]["image"]["threshold"]
    assert record["levels"]["image"]["check"]["n"] == record["n_check_images"]

    # a planted bright blob in the brain: the peak of the normalised map
    assert hits_at_peak(model) >= 7
    _, planted, _ = planted_lesion(SEEDS[-1])

    # detect applies the same normalisation: the TIFF map is the z-map of the image
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    image = np.clip(planted, 40, 160)
    PILImage.fromarray(((image - 40) / 120 * 255).round().astype(np.uint8)).save(inputs / "one.png")
    out = tmp_path / "out"
    assert main(["detect", str(run), str(inputs), "--out", str(out), "--no-progress"]) == 0
    written = np.asarray(PILImage.open(out / "one.map.tif"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["calibration"]["normalisation"]["n"] == norm["n"]
    row = list(csv.DictReader(open(out / "scores.csv")))[0]
    from medgan.infer import prepare_like_training
    from medgan.io import read_image

    array = prepare_like_training(read_image(inputs / "one.png"), model.info, model.intensity.units, inputs / "one.png", "detect")
    expected_scores, expected = detect_slices(model, array[None])
    assert np.allclose(written, expected[0], atol=1e-5) and float(row["score"]) == pytest.approx(expected_scores[0], rel=1e-5)
    raw = load_model(run)
    raw.normalisation = None
    assert not np.allclose(detect_slices(raw, array[None])[1], expected)  # the normalisation did apply

    # evaluate scores normalised maps; recalibrating on a new site's normals refits the statistics, keeping the old ones
    assert main(["evaluate", str(run)]) == 0
    evaluated = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["metrics"]
    assert evaluated["pixel_auroc"] > 0.5 and "pixel_fpr_at_alpha" in evaluated
    assert main(["calibrate", str(run), "phantom"]) == 0
    assert len(list(run.glob("normalisation-*.safetensors"))) == 1 and (run / NORMALISATION).is_file()
    assert json.loads((run / "calibration.json").read_text())["normalisation"]["n"] != norm["n"]

    # a calibration.json naming statistics that are gone is one clear error; without the entry the run scores raw residuals
    (run / NORMALISATION).rename(tmp_path / "kept.safetensors")
    with pytest.raises(MedganError, match="statistics are missing"):
        load_model(run)
    del record["normalisation"]
    (run / "calibration.json").write_text(json.dumps(record))
    assert load_model(run).normalisation is None
