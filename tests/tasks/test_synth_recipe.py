"""The synthesis recipes: what the fields left on auto become, and that a flag given wins."""

import json

import pytest

from medgan.cli import main
from medgan.tasks.synth.config import RECIPES, SynthConfig
from medgan.train import TrainConfig

from checks import dry_run_matches_the_saved_config


def resolved(argv, capsys) -> dict:
    assert main(["train", *argv, "--dry-run"]) == 0
    return json.loads(capsys.readouterr().out)


def test_default_is_medgans_recipe_and_the_seed_is_one_flag_away(capsys):
    default = resolved([], capsys)
    assert default["synth"]["recipe"] == "medgan"
    assert default["loss"]["name"] == "hinge" and default["optim"]["lr_g"] == default["optim"]["lr_d"] == 4e-4
    assert default["loop"]["augment"] == "translation"  # cutout's holes leaked into G
    assert (default["optim"]["beta1"], default["optim"]["beta2"]) == (0.0, 0.99)
    assert default["model"]["net"]["spectral_norm"] is True and default["model"]["net"]["d_norm"] == "none"
    seed = resolved(["--recipe", "seed"], capsys)
    assert seed["loss"]["name"] == "bce" and seed["optim"]["lr_g"] == 2e-4 and seed["loop"]["augment"] == ""
    assert seed["model"]["net"]["spectral_norm"] is False and seed["model"]["net"]["d_norm"] == "batch"
    assert (seed["optim"]["beta1"], seed["optim"]["beta2"]) == (0.5, 0.999)
    assert TrainConfig().resolve().to_dict() == default  # Python and the command line resolve alike


def test_a_flag_given_is_never_overridden_by_the_recipe(capsys):
    mixed = resolved(["--loss", "bce", "--lr-d", "1e-4", "--augment", "translation,color", "--no-spectral-norm", "--d-norm", "batch",
                      "--beta1", "0.5"], capsys)
    assert (mixed["optim"]["beta1"], mixed["optim"]["beta2"]) == (0.5, 0.99)
    assert mixed["loss"]["name"] == "bce" and mixed["optim"]["lr_d"] == 1e-4 and mixed["optim"]["lr_g"] == 4e-4
    assert mixed["loop"]["augment"] == "translation,color"
    assert mixed["model"]["net"]["spectral_norm"] is False and mixed["model"]["net"]["d_norm"] == "batch"


@pytest.mark.parametrize("argv", [["--model", "mlp"], ["enhance"]])
def test_the_mlp_gan_and_enhancement_keep_the_seeds_loss_and_rates(argv, capsys):
    config = resolved(argv, capsys)
    assert config["loss"]["name"] == "bce" and config["optim"]["lr_g"] == config["optim"]["lr_d"] == 2e-4
    assert (config["optim"]["beta1"], config["optim"]["beta2"]) == (0.5, 0.999)
    assert config["loop"].get("augment", "") == ""  # enhancement reads no DiffAugment: its config.json leaves it out


def test_adam_betas_out_of_range_are_refused(capsys):
    assert main(["train", "--beta2", "1.0", "--dry-run"]) != 0
    assert "--beta2 1.0" in capsys.readouterr().err


def test_an_unknown_recipe_is_refused():
    assert set(RECIPES) == {"medgan", "seed"}
    with pytest.raises(Exception, match="unknown recipe"):
        SynthConfig(recipe="fast")


@pytest.mark.parametrize("flag", [["--conditional"], ["--upsample", "resize"], ["--no-spectral-norm"]])
def test_a_network_flag_adds_to_the_default_network_fields(flag, capsys):
    """A net flag once replaced the default ``model.net`` (width 32) and silently trained a
    width-64 DCGAN, 3x slower per step."""
    assert resolved(flag, capsys)["model"]["net"]["width"] == 32
    assert resolved([*flag, "--width", "48"], capsys)["model"]["net"]["width"] == 48


def test_train_says_which_method_it_trains_and_why(tmp_path, capsys):
    assert main(["train", "--data", "phantom", "--n-images", "16", "--size", "32", "--width", "8", "--batch-size", "8", "--steps", "1",
                 "--sample-every", "100", "--checkpoint-every", "100", "--n-samples", "4", "--no-progress",
                 "--run-dir", str(tmp_path / "run")]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "method: a DCGAN with medgan's recipe" in err and "benchmarks/synth_vs_peers.py" in err


@pytest.mark.parametrize("model", ["dcgan", "mlp"])
def test_the_dry_run_prints_the_saved_config_with_the_classes_of_conditional(tmp_path, capsys, model):
    argv = ["train", "synth", "--model", model, "--data", "phantom", "--n-images", "16", "--lesion-fraction", "0.5", "--size", "32",
            "--width", "8", "--batch-size", "8", "--steps", "2", "--conditional", "--sample-every", "100",
            "--checkpoint-every", "100", "--n-samples", "4", "--no-progress"]
    saved = dry_run_matches_the_saved_config(argv, tmp_path / "run", capsys)
    assert saved["model"]["net"]["num_classes"] == 2 and saved["model"]["net"]["image_size"] == 32
