"""FastGAN: the networks (shapes, skip-layer excitation, spectral norm, D's self-supervision)
and ``medgan train synth --model fastgan`` end to end, resumed exactly, and under torchrun."""

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from medgan.cli import main
from medgan.nets import FastGANConfig, build_pair
from medgan.nets.fastgan import FastGANDiscriminator, SkipLayerExcitation
from medgan.report.curves import read_jsonl
from medgan.tasks import load_model
from medgan.train.checkpoint import latest_checkpoint, load_checkpoint

TINY = ["--model", "fastgan", "--data", "phantom", "--n-images", "16", "--size", "64", "--width", "8", "--batch-size", "8",
        "--log-every", "1", "--sample-every", "2", "--checkpoint-every", "2", "--n-samples", "4", "--no-progress"]


def smooth_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """``(n, 1, size, size)`` smooth images in (-1, 1): something a small decoder can learn."""
    noise = torch.randn(n, 1, 6, 6, generator=torch.Generator().manual_seed(seed))
    return torch.tanh(2 * F.interpolate(noise, size=size, mode="bilinear", align_corners=False))


@pytest.mark.parametrize("size, links", [(64, ["64"]), (128, ["64", "128"]), (256, ["64", "128", "256"])])
def test_shapes_range_and_skip_links_at_each_size(size, links):
    G, D = build_pair("fastgan", FastGANConfig(image_size=size, width=8, z_dim=16, channels=2))
    x = G(torch.randn(2, 16))
    assert x.shape == (2, 2, size, size) and x.abs().max() <= 1 and x.std() > 0
    assert D(x).shape == (2,)
    assert list(G.sle) == links  # 8 -> 64, 16 -> 128, 32 -> 256 px
    assert sorted(map(int, D.sle)) == [int(r) // 8 for r in links]  # 64 -> 8, 128 -> 16, 256 -> 32 px


def test_channels_follow_the_resolution_not_the_image_size():
    """Thin fine levels keep 128 and 256 px cheap: a 256 px model is a 64 px one plus two thin levels."""
    c = FastGANConfig(width=32)
    assert [c.channels_at(r) for r in (4, 8, 16, 32, 64, 128, 256)] == [256, 128, 64, 32, 16, 8, 8]
    small, large = (sum(p.numel() for p in build_pair("fastgan", FastGANConfig(image_size=s))[0].parameters()) for s in (64, 256))
    assert large < 1.05 * small


def test_skip_layer_excitation_gates_the_fine_channels_by_the_coarse_map():
    torch.manual_seed(0)
    sle = SkipLayerExcitation(coarse_channels=6, fine_channels=4).eval()  # eval: no power iteration between calls
    coarse, fine = torch.randn(2, 6, 8, 8), torch.randn(2, 4, 32, 32)
    gate = sle.gate(coarse)
    assert gate.shape == (2, 4, 1, 1) and ((gate > 0) & (gate < 1)).all()
    torch.testing.assert_close(sle(fine, coarse), fine * gate)  # one factor per sample and channel
    assert not torch.allclose(sle(fine, torch.zeros_like(coarse)), sle(fine, coarse))

    # in G, the 64 px map is gated by the 8 px one
    G, _ = build_pair("fastgan", FastGANConfig(image_size=64, width=8, z_dim=16))
    seen = []
    G.sle["64"].register_forward_hook(lambda module, args, out: seen.append([a.shape[1:] for a in args]))
    G(torch.randn(2, 16))
    assert seen == [[(8, 64, 64), (G.config.channels_at(8), 8, 8)]]


def test_spectral_norm_bounds_every_convolution_of_the_discriminator():
    torch.manual_seed(0)
    D = FastGANDiscriminator(FastGANConfig(image_size=64, width=8))
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)
    for _ in range(30):  # power iterations converge during training-mode forwards
        D(torch.randn(4, 1, 64, 64), reconstruct=True)
    sigmas = [torch.linalg.matrix_norm(m.weight.flatten(1), ord=2).item() for m in convs]
    assert max(sigmas) <= 1.05 and min(sigmas) >= 0.9, sigmas
    plain = FastGANDiscriminator(FastGANConfig(image_size=64, width=8, spectral_norm=False))
    assert not any(hasattr(m, "parametrizations") for m in plain.modules())


def test_reconstruction_loss_is_finite_falls_with_training_and_draws_its_quadrant_from_torch():
    torch.manual_seed(0)
    D = FastGANDiscriminator(FastGANConfig(image_size=64, width=8))
    x = smooth_images(8, 64)

    def loss_at(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return D(x, reconstruct=True)[1]

    D.eval()
    losses = [loss_at(seed).item() for seed in range(8)]
    assert loss_at(3).item() == losses[3]  # the quadrant comes from the global RNG, so a seed repeats it
    assert len(set(losses)) > 1  # ... and it changes with the draw
    D.train()
    logits, first = D(x, reconstruct=True)
    assert logits.shape == (8,) and first.dim() == 0 and torch.isfinite(first)
    decoders = [*D.decode_whole.parameters(), *D.decode_part.parameters()]
    opt = torch.optim.Adam(decoders, lr=2e-3)
    for step in range(25):
        torch.manual_seed(step)
        loss = D(x, reconstruct=True)[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
    D.eval()
    after = sum(loss_at(seed).item() for seed in range(8)) / 8
    assert after < 0.7 * sum(losses) / 8, (losses, after)


def test_conditional_and_bad_sizes_are_refused_clearly(capsys):
    with pytest.raises(ValueError, match="fastgan is unconditional; use --model dcgan for --conditional"):
        FastGANConfig(num_classes=3)
    with pytest.raises(ValueError, match="one of"):
        FastGANConfig(image_size=32)
    _, D = build_pair("fastgan", FastGANConfig(width=8))
    with pytest.raises(ValueError, match="unconditional"):
        D(torch.zeros(1, 1, 64, 64), labels=torch.zeros(1, dtype=torch.long))
    for argv, message in ((["--size", "32"], "FastGAN cannot make 32x32 images; use --size one of 64, 128, 256"),
                          (["--conditional"], "fastgan is unconditional; use --model dcgan for --conditional")):
        assert main(["train", "synth", *TINY, *argv, "--dry-run"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


def test_train_generate_and_load_from_the_command_line(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "synth", *TINY, "--steps", "3", "--run-dir", str(run)]) == 0
    assert "measured at 64 px: KID 2x the DCGAN's" in " ".join(capsys.readouterr().err.split())
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == {"name": "fastgan", "net": {"z_dim": 256, "image_size": 64, "channels": 1, "width": 8,
                                                          "spectral_norm": True, "num_classes": 0}}  # no DCGAN fields
    assert config["loss"]["name"] == "hinge" and config["synth"]["d_recon_weight"] == 1.0
    rows = [r for r in read_jsonl(run / "stats.jsonl") if "loss_d" in r]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:  # D's loss is its hinge loss plus the reconstruction loss (weight 1)
        assert r["d_recon"] > 0 and r["loss_d"] == pytest.approx(r["d_adv"] + r["d_recon"], rel=1e-5)

    out = tmp_path / "gen"
    assert main(["generate", str(run), "--n", "2", "--out", str(out)]) == 0
    assert len(list(out.glob("*.png"))) == 2
    model = load_model(run)
    assert model.info["model"] == "fastgan" and model.z_dim == 256
    x = model.generator(torch.randn(2, model.z_dim))
    assert x.shape == (2, 1, 64, 64) and not model.generator.training


def test_resume_is_exact(tmp_path):
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert main(["train", "synth", *TINY, "--steps", "4", "--run-dir", str(whole)]) == 0
    assert main(["train", "synth", *TINY, "--steps", "2", "--run-dir", str(part)]) == 0  # "interrupted" at step 2
    assert main(["train", "--resume", str(part), "--steps", "4", "--no-progress"]) == 0
    rows = [[(r["step"], r["loss_d"], r["d_recon"]) for r in read_jsonl(run / "stats.jsonl") if "loss_d" in r] for run in (whole, part)]
    assert rows[0] == rows[1] and len(rows[0]) == 4
    a, b = (load_checkpoint(latest_checkpoint(run)) for run in (whole, part))
    for kind, net in (("networks", "generator"), ("networks", "discriminator"), ("ema", "generator")):
        for k, v in a[kind][net].items():
            assert torch.equal(v, b[kind][net][k]), (kind, net, k)


def test_ddp_two_cpu_processes_with_gloo(tmp_path):
    runs = tmp_path / "runs"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "medgan", "train", "synth", *TINY, "--steps", "2", "--device", "cpu", "--runs-dir", str(runs)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Warning" not in result.stderr, result.stderr[-3000:]
    run = runs / "00000-synth-fastgan-phantom"
    rows = read_jsonl(run / "stats.jsonl")
    assert [r["step"] for r in rows if "loss_d" in r] == [1, 2] and all(r["d_recon"] > 0 for r in rows if "loss_d" in r)
    assert rows[-1]["world_size"] == 2 and rows[-1]["replicas_in_sync"] is True  # G and D the same on both ranks
    assert (run / "generator" / "model.safetensors").is_file()
