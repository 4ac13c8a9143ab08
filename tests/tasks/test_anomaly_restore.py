"""The restoration method (``--method restore``): its coarse training noise has the
properties asked of it, a briefly trained restorer finds a planted lesion at its map's peak,
and it trains with and without its PatchGAN critic."""

import json

import numpy as np
import pytest
import torch
from medgan.cli import main
from medgan.tasks import load_model
from medgan.tasks.anomaly.methods.restore import coarse_noise, innermost_depth
from medgan.tasks.anomaly.model import score_set

from checks import hits_at_peak


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _high_frequency_share(noise: torch.Tensor, cutoff: float) -> float:
    """Share of the power of ``(N, S, S)`` fields above ``cutoff`` cycles per image."""
    s = noise.shape[-1]
    power = torch.fft.fftshift(torch.fft.fft2(noise).abs() ** 2, dim=(-2, -1)).mean(0)
    k = torch.arange(s) - s // 2
    radius = (k[:, None] ** 2 + k[None, :] ** 2).sqrt()
    return float(power[radius > cutoff].sum() / power.sum())


# --------------------------------------------------------------------------- the coarse noise


def test_coarse_noise_is_zero_outside_the_body_and_present_inside():
    inside = torch.zeros(4, 32, 32, dtype=torch.bool)
    inside[:, 8:24, 4:20] = True
    noise = coarse_noise((4, 1, 32, 32), 8, 0.3, inside=inside, generator=_seeded(0))
    assert noise.shape == (4, 1, 32, 32)
    assert (noise[:, 0][~inside] == 0).all()
    assert (noise[:, 0][inside] != 0).float().mean() > 0.99
    everywhere = coarse_noise((4, 1, 32, 32), 8, 0.3, generator=_seeded(0))
    assert torch.equal(noise[:, 0][inside], everywhere[:, 0][inside])  # the mask only cuts, it does not redraw


def test_coarse_noise_is_spatially_coarse_unlike_white_noise():
    noise = coarse_noise((64, 1, 64, 64), 8, 0.5, generator=_seeded(1))[:, 0]
    white = torch.randn(64, 64, 64, generator=_seeded(1))
    # above 8 cycles per image (finer than a cell): a few percent of the power, against ~95% for white noise
    assert _high_frequency_share(noise, 8) < 0.06
    assert _high_frequency_share(white, 8) > 0.9
    finer = coarse_noise((64, 1, 64, 64), 16, 0.5, generator=_seeded(1))[:, 0]
    assert _high_frequency_share(finer, 4) > _high_frequency_share(noise, 4)  # a finer grid: finer noise


def test_coarse_noise_amplitude_is_the_grid_values_std():
    small = coarse_noise((64, 1, 64, 64), 8, 0.1, generator=_seeded(2))
    large = coarse_noise((64, 1, 64, 64), 8, 0.4, generator=_seeded(2))
    torch.testing.assert_close(large, 4 * small)  # linear in the amplitude
    # a bilinear mean of independent values at a uniform position varies by (2/3)^2 of their variance
    assert 0.6 < float(small.std()) / 0.1 < 0.73
    exact = coarse_noise((8, 1, 16, 16), 16, 0.1, generator=_seeded(2))  # one pixel per cell: the values themselves
    assert 0.9 < float(exact.std()) / 0.1 < 1.1
    assert float(small.mean().abs()) < 0.01


def test_coarse_noise_is_deterministic_per_seed_and_refuses_impossible_grids():
    a = coarse_noise((2, 1, 32, 32), 8, 0.2, generator=_seeded(3))
    assert torch.equal(a, coarse_noise((2, 1, 32, 32), 8, 0.2, generator=_seeded(3)))
    assert not torch.equal(a, coarse_noise((2, 1, 32, 32), 8, 0.2, generator=_seeded(4)))
    assert not torch.equal(a[0], a[1])  # each image its own noise
    for grid in (0, 33):
        with pytest.raises(ValueError, match="cells per side"):
            coarse_noise((1, 1, 32, 32), grid, 0.2)


def test_the_unet_goes_down_to_an_8_pixel_level():
    assert [innermost_depth(s) for s in (28, 32, 64, 128, 256, 12, 17)] == [1, 2, 3, 4, 5, 0, 0]  # 28: one level, to 14 pixels


def test_the_training_input_is_noisy_in_the_body_only_unless_asked_everywhere():
    from types import SimpleNamespace

    from medgan.tasks.anomaly.config import AnomalyConfig
    from medgan.tasks.anomaly.methods.restore import Restorer

    x = torch.full((2, 1, 32, 32), -1.0)  # air
    x[:, :, 8:24, 8:24] = 0.3  # a body
    air = x[:, 0] < -0.95
    for inside_only in (True, False):
        config = SimpleNamespace(loss=SimpleNamespace(name="bce"), task_config=AnomalyConfig(noise_inside_body=inside_only))
        torch.manual_seed(0)
        noisy = Restorer(config, {}).noisy(x)
        assert (noisy != x)[:, 0][~air].float().mean() > 0.99
        assert (noisy == x)[:, 0][air].all() == inside_only


# --------------------------------------------------------------------------- training and scoring


def _train(tmp_path, name, *extra):
    run = tmp_path / name
    argv = ["train", "anomaly", "--method", "restore", "--data", "phantom", "--n-images", "48", "--size", "32", "--width", "8",
            "--steps", "3", "--batch-size", "8", "--holdout", "0.5", "--log-every", "1", "--run-dir", str(run), "--no-progress", *extra]
    assert main(argv) == 0
    return run


@pytest.mark.parametrize("adversarial", ["off", "on"])
def test_restore_trains_with_and_without_its_critic(tmp_path, adversarial):
    run = _train(tmp_path, adversarial, "--adversarial", adversarial, "--alpha", "0.1")
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["step"] == 3 and all(np.isfinite(r["mse"]) for r in stats)
    assert all(("adv" in r and "d_real" in r) == (adversarial == "on") for r in stats)
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["name"] == "pix2pix" and config["model"]["net"]["depth"] == 2
    assert config["anomaly"]["adversarial"] == adversarial
    model = load_model(run)
    assert set(model.nets) == {"restorer"}  # the critic is training's alone
    from medgan.datasets.phantom import phantom_set

    images = phantom_set(n=4, size=32, seed=9).images
    scores, maps = score_set(model, images)
    assert np.isfinite(scores).all() and maps.shape == (4, 32, 32)
    alone, _ = score_set(model, images[:1])
    np.testing.assert_allclose(alone, scores[:1], rtol=1e-5)  # an image's score is its own


def test_restore_refuses_a_noise_grid_finer_than_the_images(tmp_path, capsys):
    argv = ["train", "anomaly", "--method", "restore", "--data", "phantom", "--n-images", "16", "--size", "32",
            "--noise-grid", "64", "--dry-run"]
    assert main(argv) != 0
    assert "--noise-grid 64" in capsys.readouterr().err
    from medgan.errors import MedganError
    from medgan.tasks.anomaly.config import AnomalyConfig

    with pytest.raises(MedganError, match="--adversarial 'maybe'"):  # e.g. from a config file
        AnomalyConfig(adversarial="maybe")
    with pytest.raises(MedganError, match="--noise-grid 0"):
        AnomalyConfig(noise_grid=0)


def test_a_briefly_trained_restorer_peaks_on_a_planted_lesion(tmp_path):
    """A restorer of normal head phantoms replaces a bright blob by the brain around it:
    the map's peak falls on the planted lesion and the planted copy scores above the clean one."""
    run = tmp_path / "restore"
    argv = ["train", "anomaly", "--method", "restore", "--data", "phantom", "--n-images", "96", "--size", "32", "--width", "8",
            "--window", "40,160", "--steps", "150", "--batch-size", "16", "--holdout", "0", "--log-every", "50",
            "--run-dir", str(run), "--no-progress"]
    with pytest.warns(Warning, match="not calibrated"):
        assert main(argv) == 0
    model = load_model(run)
    assert hits_at_peak(model) >= 7


def test_a_saved_restore_config_reads_back_and_a_changed_depth_is_refused(tmp_path, capsys):
    """config.json of a restorer holds its U-Net depth and critic layers (they follow the image
    size): the file reads back as --config; a depth that does not follow the size is refused."""
    import json

    from medgan.cli import main

    argv = ["train", "anomaly", "--data", "phantom", "--n-images", "16", "--size", "32", "--holdout", "0.5"]
    assert main([*argv, "--dry-run"]) == 0
    saved = json.loads(capsys.readouterr().out)
    assert (saved["model"]["net"]["depth"], saved["model"]["net"]["d_layers"]) == (2, 2)
    (tmp_path / "run.json").write_text(json.dumps(saved))
    assert main(["train", "anomaly", "--config", str(tmp_path / "run.json"), "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out) == saved
    saved["model"]["net"]["depth"] = 4
    (tmp_path / "run.json").write_text(json.dumps(saved))
    assert main(["train", "anomaly", "--config", str(tmp_path / "run.json"), "--dry-run"]) == 2
    assert "model.net.depth 4: the restorer's depth follows the image size (2 at 32 px)" in capsys.readouterr().err
