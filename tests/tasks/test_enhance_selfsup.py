"""Enhancement without clean targets (Neighbor2Neighbor), blind models over several noise
levels, the DnCNN denoiser with L2, and the `none` degradation of real noisy scans."""

import json

import numpy as np
import pytest
import torch

from medgan.cli import main
from medgan.data.sources import SourceOptions
from medgan.errors import MedganError
from medgan.nets import build_network
from medgan.nets.dncnn import DnCNNConfig
from medgan.tasks.enhance.config import EnhanceConfig
from medgan.tasks.enhance.degrade import parse_degradation
from medgan.tasks.enhance.methods.selfsup import NEIGHBOUR_PAIRS, SelfSupervised, neighbour_subsample
from medgan.train import DataConfig, LoopConfig, ModelConfig, TrainConfig, Trainer
from medgan.train.task import Networks


def config(degradation="gaussian:sigma=30", model="pix2pix", net=None, steps=4, size=32, n=24, **enhance) -> TrainConfig:
    return TrainConfig(
        task="enhance",
        data=DataConfig(source="phantom", options=SourceOptions(size=size, n=n), holdout=0.0),
        model=ModelConfig(model, net or {"width": 8, "depth": 2}),
        task_config=EnhanceConfig(mode="denoise", degradation=degradation, **enhance),
        loop=LoopConfig(steps=steps, batch_size=8, log_every=1, sample_every=1000, checkpoint_every=1000, n_samples=6, ema=0.0, augment=""),
    )


def test_neighbour_subsample_takes_two_different_neighbours_of_each_cell():
    h = w = 8
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    coords = torch.stack([rows, cols]).float()[None]  # (1, 2, H, W): each pixel holds its own position
    for k in range(len(NEIGHBOUR_PAIRS)):
        choice = torch.full((1, h // 2, w // 2), k)
        g1, g2 = neighbour_subsample(coords, choice)  # (1, 2, 4, 4) positions of the picked pixels
        assert g1.shape == (1, 2, 4, 4)
        distance = (g1 - g2).abs().sum(1)  # city-block distance of the two picks
        assert torch.all(distance == 1)  # neighbours, never the same pixel or a diagonal
        cell = torch.arange(4).float()
        assert torch.equal(g1[0, 0] // 2, cell[:, None].expand(4, 4)) and torch.equal(g1[0, 1] // 2, cell[None, :].expand(4, 4))
        assert torch.equal(g2[0, 0] // 2, g1[0, 0] // 2) and torch.equal(g2[0, 1] // 2, g1[0, 1] // 2)  # within its own cell


def test_self_supervised_run_never_uses_a_clean_image_and_has_no_adversary(tmp_path):
    trainer = Trainer(config(supervision="self"), tmp_path / "run", progress=False)
    task = trainer.task
    assert isinstance(task.method, SelfSupervised) and set(task.networks()) == {"generator"}
    assert task.config.task_config.adversarial is False and task.config.task_config.recon_loss == "l2"
    batch = trainer.batch(0)
    out = task.method.generator_objective(Networks(generator=task.method.build_pair()[0]), batch)
    # poison the clean images: the objective must not change, since it never reads them
    batch_poisoned = dict(batch, image=torch.full_like(batch["image"], 0.5))
    torch.manual_seed(0)
    G = task.method.build_pair()[0]
    a = task.method.generator_objective(Networks(generator=G), batch)["loss"]
    b = task.method.generator_objective(Networks(generator=G), batch_poisoned)["loss"]
    assert torch.isfinite(out["loss"]) and torch.equal(a, b)
    with pytest.raises(MedganError, match="multiple of 16"):  # 24 px halves to 12, not a multiple of a depth-3 U-Net's 8
        Trainer(config(supervision="self", size=24, net={"width": 8, "depth": 3}), tmp_path / "bad", progress=False)


def test_self_supervised_training_denoises_unseen_images(tmp_path):
    """Trained on noisy brain slices of one head alone, the model's output is closer to the
    clean truth than its noisy input on slices of the other head. (Real anatomy on purpose:
    on the 32 px phantoms neighbouring pixels across the skull differ by 2000 HU, far more
    than the noise, and the neighbour pairs teach blur instead.)"""
    cfg = config(supervision="self", steps=150, net={"width": 16, "depth": 2})
    cfg.data = DataConfig(source="brain-mri", options=SourceOptions(size=32), holdout=0.1)
    run = Trainer(cfg, tmp_path / "run", progress=False).fit()
    from medgan.runs import run_holdout
    from medgan.tasks.enhance.inference import enhance_image
    from medgan.tasks.enhance.model import load_model

    model = load_model(run)
    clean = run_holdout(run)[2].images[::25].astype(np.float32)  # 18 slices of the held-out head
    noisy = parse_degradation("gaussian:sigma=30").apply(clean, seed=7)
    error = lambda x: float(np.mean((np.clip(x, 0, 255) - clean) ** 2))  # noqa: E731
    out = np.stack([enhance_image(model, x) for x in noisy])
    assert 10 * np.log10(error(noisy) / error(out)) > 1.0  # > 1 dB PSNR gain
    assert json.loads((run / "generator" / "config.json").read_text())["supervision"] == "self"


def test_blind_model_draws_its_noise_at_every_level(tmp_path):
    task = Trainer(config("gaussian:sigma=30", levels="10,60"), tmp_path / "run", progress=False).task
    assert task.levels == [10.0, 60.0] and task.inputs.shape[0] == 4  # max(4, 2 per level)
    clean = task.dataset.batch(torch.arange(24))["image"]
    # per-realisation noise in [-1, 1] units: alternate levels, in the ratio 60 / 10
    spread = [float((task.inputs[r] - clean).std()) for r in range(4)]
    assert spread[1] / spread[0] == pytest.approx(6.0, rel=0.25) and spread[3] / spread[2] == pytest.approx(6.0, rel=0.25)
    info = task.export_info("generator")
    assert info["levels"] == [10.0, 60.0] and info["degradation"]["sigma"] == 30.0
    for bad, message in (("ten", "comma-separated"), ("0,-5", "sigma must be >= 0")):
        with pytest.raises(MedganError, match=message):
            Trainer(config("gaussian:sigma=30", levels=bad), tmp_path / f"bad-{bad}", progress=False)


def test_blind_model_of_a_deterministic_degradation_sees_every_level(tmp_path):
    """Sparse-view CT draws no noise: one degraded copy per level, each at its own level."""
    cfg = config("sparse-view-ct:angles=60", levels="60,15")
    cfg.task_config.mode = "artefact"
    task = Trainer(cfg, tmp_path / "run", progress=False).task
    assert task.inputs.shape[0] == 2 and task.config.task_config.realizations == 2
    clean = task.dataset.batch(torch.arange(24))["image"]
    error = [float((task.inputs[r] - clean).abs().mean()) for r in range(2)]
    assert error[1] > 1.3 * error[0]  # 15 angles streak more than 60 (the same level twice: a ratio of 1)


def test_dncnn_starts_as_the_identity_takes_any_size_and_trains_with_l2(tmp_path):
    G = build_network("dncnn", DnCNNConfig(layers=4, width=8), "generator")
    x = torch.rand(2, 1, 21, 13) * 2 - 1  # no size multiple
    assert torch.equal(G(x), x)
    trainer = Trainer(config(model="dncnn", net={"width": 8, "layers": 4}, adversarial=False, recon_loss="l2"), tmp_path / "run",
                      progress=False)
    assert trainer.task.multiple == 1 and trainer.config.model.name == "dncnn"
    run = trainer.fit()
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert "l2" in rows[-1] and "loss_d" not in rows[-1]


def test_a_none_degradation_means_the_images_are_already_noisy(tmp_path):
    none = parse_degradation("none")
    images = np.random.default_rng(0).normal(size=(3, 8, 8))
    np.testing.assert_array_equal(none.apply(images), images.astype(np.float32))
    assert none.spec() == "none" and not none.random
    with pytest.raises(MedganError, match="paired training needs a degradation"):
        Trainer(config("none"), tmp_path / "paired", progress=False)
    task = Trainer(config("none", supervision="self"), tmp_path / "self", progress=False).task
    torch.testing.assert_close(task.inputs[0], task.dataset.batch(torch.arange(24))["image"])  # trains on the images as given
    with pytest.raises(MedganError, match="no noise level"):
        parse_degradation("sr:factor=2").at_level(2)


def test_cli_self_supervised_train_then_enhance_and_evaluate_refuses_without_truth(tmp_path, capsys):
    runs = tmp_path / "runs"
    tiny = ["--size", "32", "--width", "8", "--batch-size", "4", "--steps", "2", "--log-every", "1", "--sample-every", "2",
            "--checkpoint-every", "2", "--n-samples", "6", "--no-progress", "--runs-dir", str(runs)]
    assert main(["train", "enhance", "--data", "phantom", "--n-images", "16", "--holdout", "0.25", "--supervision", "self",
                 "--degradation", "gaussian:sigma=20", *tiny]) == 0
    run = next(runs.iterdir())
    assert main(["evaluate", str(run), "--json"]) == 0  # simulated noise: scored against the clean truth
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "model_psnr" in record["metrics"]
    from PIL import Image as PILImage

    noisy = tmp_path / "noisy.png"
    PILImage.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40), dtype=np.uint8)).save(noisy)
    assert main(["enhance", str(run), str(noisy), "--out", str(tmp_path / "out.png"), "--no-progress"]) == 0
    assert PILImage.open(tmp_path / "out.png").size == (40, 40)

    runs2 = tmp_path / "runs2"
    tiny[-1] = str(runs2)
    assert main(["train", "enhance", "--data", "phantom", "--n-images", "16", "--holdout", "0.25", "--supervision", "self",
                 "--degradation", "none", *tiny]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(next(runs2.iterdir()))]) == 2
    assert "nothing to score it against" in capsys.readouterr().err


def test_report_caption_follows_the_supervision():
    from medgan.tasks.enhance.recipe import EnhanceTask

    caption = lambda **options: EnhanceTask.samples_caption({"task": "enhance", "enhance": options})  # noqa: E731
    assert caption(supervision="paired") == caption() and "degraded | output | clean" in caption()
    assert "never seen in training" in caption(supervision="self", degradation="gaussian:sigma=20")
    assert "mapped back by F" in caption(supervision="unpaired", degradation="none")
    assert "no clean image exists" in caption(supervision="self", degradation="none")
