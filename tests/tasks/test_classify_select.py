"""Selective synthetic augmentation (``medgan augment-eval --select``): the per-class top-k
on hand-made scores, both scorers on networks whose outputs the test controls, the
discriminator taken out of a run's training state, and the whole flow on tiny data."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from torch import nn

from medgan.cli import main
from medgan.data.intensity import IntensityMap
from medgan.errors import MedganError
from medgan.tasks.classify.augment_eval import CONDITIONS, AugmentEvalConfig
from medgan.tasks.classify.model import ClassifierModel
from medgan.tasks.classify.select import (confidence_scores, discriminator_scores, over_generate, select_per_class,
                                          selection_summary)


def test_selection_keeps_the_requested_count_of_the_highest_scores_per_class():
    labels = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 2])
    scores = np.array([0.1, 0.9, 0.8, 0.2, 0.5, 0.7, 0.3, 0.4, 0.5, 0.0])
    kept = select_per_class(scores, labels, np.array([2, 3, 1]))
    # class 0: 0.8 (2) and the first of the two 0.5s (4); class 1: 0.9 (1), 0.7 (5), 0.4 (7); class 2: its only image
    assert kept.tolist() == [1, 2, 4, 5, 7, 9]
    assert np.bincount(labels[kept]).tolist() == [2, 3, 1]
    for k in range(3):  # every kept image of a class scores at least as high as every rejected one
        rejected = np.setdiff1d(np.flatnonzero(labels == k), kept)
        if len(rejected):
            assert scores[np.intersect1d(kept, np.flatnonzero(labels == k))].min() >= scores[rejected].max()
    summary = selection_summary(scores, labels, kept, ["a", "b", "c"])
    assert summary["a"] == {"generated": 5, "kept": 2, "kept_fraction": 0.4, "mean_score_kept": pytest.approx(0.65),
                            "mean_score_rejected": pytest.approx(0.3)}
    assert summary["c"]["mean_score_rejected"] is None
    with pytest.raises(ValueError, match="fewer than the 2"):
        select_per_class(scores, labels, np.array([2, 3, 2]))


def test_over_generation_keeps_the_unselected_count_at_the_requested_share():
    assert over_generate(np.array([8, 7]), 0.5).tolist() == [16, 14]
    assert over_generate(np.array([8, 7]), 1.0).tolist() == [8, 7]
    assert over_generate(np.array([3, 15]), 0.3).tolist() == [10, 50]  # 3 / 0.3 is 10.000000000000002 in floats
    for n, keep in ((15, 0.3), (7, 0.25), (30, 0.7)):
        generated = int(over_generate(np.array([n]), keep)[0])
        assert generated >= n and n / generated <= keep + 1e-9 and n / (generated - 1) > keep


class Brightness(nn.Module):
    """A classifier whose logits the test sets: class 1 ("bright") by the image's mean in [-1, 1]."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(4.0))

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3))  # (B,)
        return self.scale * torch.stack([-m, m], dim=1)  # (B, 2)


def test_the_confidence_scorer_ranks_images_that_look_like_their_class_first():
    model = ClassifierModel(Brightness().eval(), IntensityMap(0.0, 255.0), ["dark", "bright"], {})
    images = np.stack([np.full((8, 8), v, np.float32) for v in (230, 20, 128, 200, 40, 128)])  # data units
    labels = np.array([1, 1, 1, 0, 0, 0])  # the classes they were generated for
    scores = confidence_scores(model, images, labels)
    m = images.mean((1, 2)) / 127.5 - 1
    expected = 1 / (1 + np.exp(-8 * np.where(labels == 1, m, -m)))  # softmax of (-4m, 4m) at the image's class
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    # "bright": the bright image first, the dark one last; "dark": the other way round
    assert scores[0] > scores[2] > scores[1] and scores[4] > scores[5] > scores[3]
    assert select_per_class(scores, labels, np.array([1, 1])).tolist() == [0, 4]


class Projection(nn.Module):
    """A discriminator whose logit the test sets: the image's mean in [-1, 1] plus 10 x its label."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x, labels=None):
        return x.mean(dim=(1, 2, 3)) + (0 if labels is None else 10.0 * labels.float())


def test_the_discriminator_scorer_maps_the_images_to_its_range_and_passes_their_labels():
    images = np.stack([np.full((4, 4), v, np.float32) for v in (-1000, 0, 1000, 500)])  # HU
    intensity = IntensityMap(-1000.0, 1000.0, "HU")
    labels = np.array([0, 1, 0, 1])
    np.testing.assert_allclose(discriminator_scores(Projection(), intensity, images, labels, batch_size=3), [-1, 10, 1, 10.5], atol=1e-6)
    np.testing.assert_allclose(discriminator_scores(Projection(), intensity, images, None), [-1, 0, 1, 0.5], atol=1e-6)


def test_the_discriminator_is_taken_from_the_last_training_state(tmp_path, capsys):
    from medgan.nets import build_network
    from medgan.tasks.synth.model import export_discriminator, load_discriminator, synthesis_model

    run = tmp_path / "gan"
    assert main(["train", "--data", "phantom", "--n-images", "24", "--lesion-fraction", "0.5", "--size", "32", "--width", "8",
                 "--batch-size", "8", "--steps", "3", "--conditional", "--condition-start", "0", "--condition-ramp", "1",
                 "--sample-every", "3", "--checkpoint-every", "3", "--n-samples", "4", "--no-progress", "--run-dir", str(run)]) == 0
    with pytest.raises(MedganError, match="no exported discriminator"):
        load_discriminator(run)
    export_discriminator(run)
    D, info = load_discriminator(run)
    assert info["network"] == "discriminator" and info["step"] == 3 and info["net"]["num_classes"] == 2
    state = torch.load(sorted((run / "checkpoints").glob("*.pt"))[-1], weights_only=True)
    reference = build_network(info["model"], info["net"], "discriminator")
    reference.load_state_dict(state["networks"]["discriminator"])
    x, y = torch.rand(4, 1, 32, 32) * 2 - 1, torch.tensor([0, 1, 0, 1])
    torch.testing.assert_close(D(x, labels=y), reference.eval()(x, labels=y))
    assert synthesis_model(run).num_classes == 2  # the generator still loads beside it
    for state_file in (run / "checkpoints").glob("*.pt"):
        state_file.unlink()
    with pytest.raises(MedganError, match="no training state"):
        export_discriminator(run)


TINY = ["augment-eval", "--data", "phantom", "--n-images", "40", "--lesion-fraction", "0.5", "--size", "32", "--fractions", "1",
        "--gan-steps", "3", "--classifier-steps", "3", "--batch-size", "8", "--gan-width", "8", "--classifier-width", "8", "--no-progress"]


@pytest.mark.parametrize("select, conditions, seeds", [("confidence", "classical,classical+synthetic,classical+selected", "0,1"),
                                                       ("confidence", "selected", "0"),
                                                       ("discriminator", "classical+selected", "0")])
def test_augment_eval_selects_as_many_synthetic_images_per_class_and_records_the_selection(tmp_path, capsys, select, conditions, seeds):
    out = tmp_path / "ae"
    assert main([*TINY, "--seeds", seeds, "--conditions", conditions, "--select", select, "--select-keep", "0.4", "--out", str(out)]) == 0
    assert f"({select}, keep 40%)" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["select"] == select and results["config"]["select_keep"] == 0.4
    n_real = results["runs"][0]["n_real"]
    want = np.bincount(np.repeat([0, 1], [math.ceil(n_real / 2), n_real // 2]))  # the unselected arm's class balance
    assert len(results["selection"]) == len(seeds.split(","))
    for record in results["selection"]:
        assert record["method"] == select and record["keep"] == 0.4
        for k, name in enumerate(results["classes"]):
            part = record["classes"][name]
            assert part["kept"] == want[k] and part["generated"] == math.ceil(want[k] / 0.4)
            assert part["mean_score_kept"] >= part["mean_score_rejected"]
        # what the selected classifier trained on: the real images, then the kept synthetic ones
        data = np.load(out / "data" / f"f1-real+selected-s{record['seed']}.npz")
        assert np.bincount(data["train_labels"].ravel()[n_real:]).tolist() == want.tolist()
        scorer = {"confidence": "runs/f1-classical-s{}" if "classical," in conditions else "runs/f1-scorer-s{}",
                  "discriminator": "runs/f1-gan/discriminator"}[select].format(record["seed"])
        assert record["scorer"] == scorer and (out / scorer).is_dir()
    rows = {r["condition"]: r for r in results["table"]}
    selected = next(c for c in rows if CONDITIONS[c][2] == "selected")
    assert rows[selected]["n_synthetic"] == n_real
    assert not (out / "runs" / "f1-gan" / "checkpoints").exists()
    picture = PILImage.open(out / "selection.png")
    assert picture.height > 4 * 64 and picture.width > 8 * 64  # 2 classes x (kept, rejected), 1 + 8 tiles wide
    assert "mean score kept" in (out / "results.md").read_text()


def test_bad_selection_options_are_refused_in_one_line(tmp_path, capsys):
    for keep in ("0", "-0.5", "1.5", "nan"):
        assert main([*TINY, "--select", "confidence", "--select-keep", keep, "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"--select-keep {float(keep)} must lie in (0, 1]" in err
    assert main([*TINY, "--conditions", "classical,classical+selected", "--select", "none", "--out", str(tmp_path / "x")]) == 2
    assert "need a selection method" in capsys.readouterr().err
    assert main([*TINY, "--conditions", "classical", "--select", "discriminator", "--out", str(tmp_path / "x")]) == 2
    assert "has no condition to act on" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    # by default every condition runs, the selected ones by the discriminator (measured best);
    # --select none leaves them out, and conditions without a selected one select nothing
    assert AugmentEvalConfig().conditions == tuple(CONDITIONS) and AugmentEvalConfig().select == "discriminator"
    assert not any(CONDITIONS[c][2] == "selected" for c in AugmentEvalConfig(select="none").conditions)
    assert AugmentEvalConfig(conditions=("real", "classical")).select == "none"
    assert AugmentEvalConfig(conditions=("classical", "classical+selected")).select == "discriminator"
    assert AugmentEvalConfig(select="confidence").conditions == tuple(CONDITIONS)
