"""The plain rules as anomaly methods (``--method zscore``, ``--method knn``): their maps on
hand-made images, their fit through the engine (exact under resume), their round trip
through export, ``load_model`` and ``medgan detect``; and the intensity rule shown beside
every anomaly evaluation, in the record and the report, with its verdict."""

import json

import numpy as np
import pytest
import torch

from medgan.cli import main
from medgan.data.imageset import ImageSet
from medgan.datasets.lesions import KINDS
from medgan.datasets.phantom import TISSUES, make_phantom, phantom_set, tissue_masks
from medgan.errors import MedganError
from medgan.tasks import load_model
from medgan.tasks.anomaly.evaluate import lesion_set, verdict
from medgan.tasks.anomaly.methods.knn import PatchBank
from medgan.tasks.anomaly.methods.zscore import PixelStatistics
from medgan.tasks.anomaly.model import score_images, score_set

from checks import hits_at_peak


def _train(tmp_path, method, *extra, name=None):
    run = tmp_path / (name or method)
    argv = ["train", "anomaly", "--method", method, "--data", "phantom", "--n-images", "48", "--size", "32", "--width", "8",
            "--steps", "3", "--batch-size", "8", "--holdout", "0.5", "--alpha", "0.1", "--log-every", "1", "--run-dir", str(run),
            "--no-progress", *extra]
    assert main(argv) == 0
    return run


# ---------------------------------------------------------------------------- the maps on hand-made images


def test_the_zscore_map_is_the_hand_computed_deviation_from_the_normals():
    # four 8x8 "normals": pixel (r, c) takes the values v + {-1, -1, +1, +1} * s, so its mean is v and its
    # (population) deviation exactly s; unsmoothed, floored at 0.05
    v = torch.linspace(-0.5, 0.5, 64).view(8, 8)
    s = torch.full((8, 8), 0.1)
    s[:, 4:] = 0.2
    s[0, 0] = 0.0  # a pixel that never varied: the floor holds it
    signs = torch.tensor([-1.0, -1.0, 1.0, 1.0])
    normals = (v + signs.view(4, 1, 1) * s)[:, None]  # (4, 1, 8, 8)
    stats = PixelStatistics(1, 8, std_sigma=0.0, std_floor=0.05)
    stats.add(normals[:2])
    stats.add(normals[2:])  # in two batches, as the engine feeds it
    mean, std = stats.mean_std()
    assert torch.allclose(mean[0, 0], v, atol=1e-6)
    expected_std = s.clamp(min=0.05)
    assert torch.allclose(std[0, 0], expected_std, atol=1e-6)
    x = v.clone()
    x[2, 3] += 0.3  # 3 deviations of 0.1 above the mean
    x[5, 6] -= 0.8  # 4 deviations of 0.2 below
    x[0, 0] += 0.1  # 2 of the floor
    z = stats(x[None, None])[0, 0]
    hand = torch.zeros(8, 8)
    hand[2, 3], hand[5, 6], hand[0, 0] = 3.0, -4.0, 2.0
    assert torch.allclose(z, hand, atol=1e-5)


def test_the_zscore_deviation_is_smoothed_before_the_floor():
    stats = PixelStatistics(1, 16, std_sigma=1.0, std_floor=0.01)
    normals = torch.zeros(2, 1, 16, 16)
    normals[0, 0, 8, 8], normals[1, 0, 8, 8] = -1.0, 1.0  # one pixel varies (std 1), the rest never
    stats.add(normals)
    _, std = stats.mean_std()
    assert 0.1 < std[0, 0, 8, 8] < 0.2  # spread by a 1-pixel Gaussian: 1 / (2 pi) at the centre
    assert std[0, 0, 8, 9] > 0.05 and std[0, 0, 0, 0] == pytest.approx(0.01)


def test_knn_scores_a_normal_patch_zero_and_a_planted_bright_square_high_where_it_is():
    rng = np.random.default_rng(0)
    texture = torch.from_numpy(rng.uniform(-0.6, -0.2, (4, 1, 32, 32)).astype(np.float32))
    bank = PatchBank(1, patch=8, stride=4, bank=100_000)  # keeps every patch offered
    bank.add(texture, torch.Generator().manual_seed(0))
    assert int(bank.seen.item()) == 4 * 25 * 25  # offered at every position
    scores, maps = bank(texture[:1])
    assert scores[0] < 1e-2 and maps.abs().max() < 1e-2  # its own patches: nearest distance ~0
    lesion = texture[:1].clone()
    lesion[0, 0, 12:20, 12:20] = 0.9  # a bright square far from every normal patch
    scores, maps = bank(lesion)
    assert scores[0] > 3
    peak = np.unravel_index(int(maps[0].argmax()), maps[0].shape)
    assert 12 <= peak[0] < 20 and 12 <= peak[1] < 20
    assert maps[0, 12:20, 12:20].mean() > 10 * maps[0, :6, :6].mean()


def test_the_knn_reservoir_keeps_its_size_and_draws_from_the_whole_stream():
    bank = PatchBank(1, patch=4, stride=4, bank=50)
    for k in range(20):  # 20 batches of images whose patches are constant at the batch's number
        bank.add(torch.full((2, 1, 8, 8), float(k)), torch.Generator().manual_seed(k))
    assert int(bank.seen.item()) == 20 * 2 * 25
    values = bank.bank[:, 0].numpy()
    assert len(values) == 50 and values.min() < 5 and values.max() > 14  # early and late batches both kept


def test_a_shift_the_zscore_rule_assumes_away_costs_the_nearest_patch_little():
    """What each rule assumes: the z-score compares pixel positions, so a normal head shifted by
    2 pixels looks anomalous to it; the patch bank forgets positions."""
    import torch.nn.functional as F

    from medgan.datasets.phantom import phantom_set

    images = phantom_set(n=72, size=32, seed=3).images.astype(np.float32)
    x = torch.from_numpy(np.clip((images + 20) / 200 * 2 - 1, -1, 1))[:, None]  # a brain window, in [-1, 1]
    train, test = x[:64], x[64:]
    shifted = F.pad(test, (2, 0, 2, 0), value=-1.0)[..., :32, :32]  # down and right by 2 pixels, air coming in
    stats = PixelStatistics(1, 32)
    stats.add(train)
    bank = PatchBank(1, 8, 4, 20000)
    bank.add(train, torch.Generator().manual_seed(0))
    z_ratio = (stats(shifted).abs().mean() / stats(test).abs().mean()).item()
    knn_ratio = (bank(shifted)[0].mean() / bank(test)[0].mean()).item()
    assert z_ratio > 2 and knn_ratio < 1.6 and z_ratio > knn_ratio + 1


# ---------------------------------------------------------------------------- through the engine and back


@pytest.mark.parametrize("method, network", [("zscore", "atlas"), ("knn", "bank")])
def test_a_rule_round_trips_through_export_load_model_and_detect(tmp_path, method, network, capsys):
    run = _train(tmp_path, method)
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["step"] == 3 and stats[-1]["loss_fit"] == 0.0
    model = load_model(run)
    assert model.method == method and set(model.nets) == {network} and "image" in model.calibration
    from medgan.datasets.phantom import phantom_set

    images = phantom_set(n=4, size=32, seed=9).images
    scores, maps = score_set(model, images)
    alone = np.array([score_set(model, images[i : i + 1])[0][0] for i in range(len(images))])
    assert np.allclose(scores, alone, rtol=1e-5) and maps.shape == (4, 32, 32) and (maps >= 0).all()
    # the map scoring takes from |x - x^| is the rule's own map
    x = torch.from_numpy(model.intensity.forward(images.astype(np.float32))[:, None])
    _, m, _ = score_images(model, x)
    own = model.nets[network](x).abs().mean(1) if method == "zscore" else model.nets[network](x)[1]
    assert torch.allclose(m, own, atol=1e-5)
    if method == "zscore":  # 3 steps of 8 images summed
        assert model.nets["atlas"].count.item() == 24
    # medgan detect on PNG files
    from medgan.io import write_png

    folder = tmp_path / "in"
    folder.mkdir()
    for i, image in enumerate(images[:2]):
        write_png(folder / f"image{i}.png", image.astype(np.float32), value_range=(float(images.min()), float(images.max())))
    assert main(["detect", str(run), str(folder), "--out", str(tmp_path / "out")]) == 0
    import csv

    rows = list(csv.DictReader((tmp_path / "out" / "scores.csv").open()))
    assert len(rows) == 2 and all(np.isfinite(float(r["score"])) and r["p_value"] and r["flagged"] for r in rows)
    assert (tmp_path / "out" / "image0.map.tif").is_file()
    # drawn and stored on a scale for standard deviations / distances, not for [-1, 1] residuals
    from medgan.tasks.anomaly.detect import Z_HEAT_SCALE, map_units

    scale, _, description = map_units(model)
    assert scale == Z_HEAT_SCALE and ("z-score" in description if method == "zscore" else "nearest normal patch" in description)


@pytest.mark.parametrize("method", ["zscore", "knn"])
def test_a_resumed_rule_ends_with_the_uninterrupted_ones_statistics(tmp_path, method):
    whole = _train(tmp_path, method, "--checkpoint-every", "1", name="whole")
    part = _train(tmp_path, method, "--checkpoint-every", "1", "--steps", "2", name="part")
    argv = ["train", "--resume", str(part), "--steps", "3", "--no-progress"]
    assert main(argv) == 0
    (net,) = load_model(whole).nets.values()
    (resumed,) = load_model(part).nets.values()
    for name, tensor in net.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name


@pytest.mark.parametrize("method", ["zscore", "knn"])
def test_a_rule_finds_a_planted_lesion_at_its_maps_peak(tmp_path, method):
    """Fitted on one pass over aligned head phantoms, each rule's map peaks on a bright blob
    planted in the brain, and the planted copy scores above the clean one."""

    run = tmp_path / method
    argv = ["train", "anomaly", "--method", method, "--data", "phantom", "--n-images", "96", "--size", "32", "--window", "40,160",
            "--steps", "6", "--batch-size", "16", "--holdout", "0", "--run-dir", str(run), "--no-progress"]
    with pytest.warns(Warning, match="not calibrated"):
        assert main(argv) == 0
    model = load_model(run)
    assert hits_at_peak(model) >= 7


# ---------------------------------------------------------------------------- the baseline beside every result


def test_every_evaluation_shows_the_intensity_rule_on_the_same_images_with_a_verdict(tmp_path, capsys):
    run = _train(tmp_path, "ae")
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 0
    said = capsys.readouterr().err  # the title line above the table
    record = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    base = record["baseline"]
    assert base["method"] == "zscore" and {"auroc", "auprc", "pixel_auroc", "pixel_auprc"} <= set(base["metrics"])
    ours, theirs = record["metrics"]["pixel_auprc"], base["metrics"]["pixel_auprc"]
    assert base["verdict"] == verdict(record["metrics"], base["metrics"])
    assert f"{ours:.2f} vs {theirs:.2f}" in base["verdict"] and "intensity rule on pixel AUPRC" in base["verdict"]
    assert base["verdict"] in said
    kinds = record["by_kind"]  # each lesion kind alone, the model's figures beside the rule's
    assert set(kinds) <= set(KINDS) and len(kinds) >= 3 and sum(k["n"] for k in kinds.values()) == record["n_anomalous"]
    assert all({"auroc", "pixel_auprc", "rule_auroc", "rule_pixel_auprc"} <= set(k) for k in kinds.values())
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "intensity rule (z-score)" in page and base["verdict"] in page
    assert "lesion kind" in page and all(f"<td>{kind}</td>" in page for kind in kinds)


def test_the_test_lesions_of_phantoms_lie_in_their_brain_and_mix_every_kind():
    normals = phantom_set(n=20, size=64, seed=3)
    brain = tissue_masks(normals, "brain")
    images, masks, kinds = lesion_set("phantom", normals, seed=0)
    assert len(images) >= 15 and set(kinds) >= {"hyper", "hypo", "texture", "mass"}
    for mask, kind, source in zip(masks, kinds, normals.sources):
        if kind in ("hyper", "hypo", "texture"):  # drawn in the tissue (a mass effect moves its surroundings too)
            assert (mask > 0).sum() > 0 and brain[int(source.rsplit("#", 1)[1])][mask > 0].mean() > 0.8
    # the brain mask is the phantom's brain tissue less its border
    ph = make_phantom(64, np.random.SeedSequence(3, spawn_key=(0,)), "head", True)
    region = ph.tissue == TISSUES["head"].index("brain")
    assert brain[0].sum() < region.sum() and not (brain[0] & ~region).any()
    assert lesion_set("digits", normals, seed=0) is None  # a user's data holds no known anomalies
    with pytest.raises(MedganError, match="phantom_set"):
        tissue_masks(ImageSet(images=normals.images[:1]), "brain")


def test_the_verdict_says_who_wins_on_which_figure():
    assert verdict({"pixel_auprc": 0.41, "auroc": 0.6}, {"pixel_auprc": 0.27, "auroc": 0.9}) == \
        "beats the intensity rule on pixel AUPRC: 0.41 vs 0.27"
    assert verdict({"pixel_auprc": 0.19}, {"pixel_auprc": 0.54}) == "loses to the intensity rule on pixel AUPRC: 0.19 vs 0.54"
    assert verdict({"auroc": 0.901}, {"auroc": 0.899}).startswith("ties with the intensity rule on image AUROC")
    assert verdict({"pixel_auprc": float("nan"), "auroc": 0.7}, {"pixel_auprc": 0.2, "auroc": 0.8}) == \
        "loses to the intensity rule on image AUROC: 0.70 vs 0.80"
