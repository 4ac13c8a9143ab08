"""Synthesis quality per CPU-minute: medgan's default against MONAI's GAN tutorial and a
plain PyTorch DCGAN, on the same data, the same wall-clock budget, one after another.

Contenders (each trains for ``--budget`` seconds of this machine, then draws ``--n`` images):

- ``medgan``: ``TrainConfig()`` (what ``medgan demo`` trains), stopped by its own
  ``time_budget``; sampled from the exported EMA generator in eval mode.
- ``monai``: the networks and recipe of MONAI's MedNIST GAN tutorial:
  ``monai.networks.nets.Generator(latent_shape=64, start_shape=(64, 8, 8), channels=[32, 16, 8, 1],
  strides=[2, 2, 2, 1])`` with a sigmoid output, ``Discriminator(in_shape=(1, 64, 64),
  channels=(8, 16, 32, 64, 1), strides=(2, 2, 2, 2, 1), num_res_units=1, kernel_size=5)``,
  ``normal_init``, BCE, Adam 2e-4 (0.5, 0.999), latent 64, batch 128, images in [0, 1]; per
  step one G update, then 5 D updates on the same real and generated images. The
  tutorial's random rotations/flips/zooms are left out (a vertically flipped brain is not
  a brain). Sampled in training mode, as the tutorial does.
- ``dcgan``: docs/design.md's DCGAN as people write it in plain PyTorch (the DCGAN of Radford
  et al. 2016 / the PyTorch example): z 100, width 64, batch norm, transposed convs, tanh,
  sigmoid D, BCE with the non-saturating G loss, Adam 2e-4 (0.5, 0.999), batch 64, N(0, 0.02)
  init, no EMA, no augmentation; sampled in training mode, as the example does.

Scored the same way for all: KID, FID and Inception precision/recall (the fid-helper
Inception) against the training slices and against the held-out head, beside the real
floor (held-out head against the training slices). Writes the side-by-side sample picture
(real | medgan | MONAI | DCGAN) and prints one JSON object.

    python benchmarks/synth_vs_peers.py [--budget 600] [--n 500] [--out docs/synth-vs-peers.png]
                                        [--contenders medgan,fastgan,monai,dcgan] [--size 64|128]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medgan.data.training import DataConfig, load_training_data
from medgan.tasks.synth.evaluate import generated_images, realism_metrics
from medgan.report.grid import image_grid
from medgan.train import LoopConfig, TrainConfig, Trainer

METRICS = ["kid", "fid", "inception_prdc"]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# ----------------------------------------------------------------------------- contenders


def train_medgan(budget: float, n: int, seed: int, work: Path, model: str = "auto", size: int = 64,
                 amp: bool | None = None, net: dict | None = None) -> tuple[np.ndarray, dict]:
    """``TrainConfig()`` (the main job's defaults) with ``--model model`` at ``size`` px, for ``budget`` seconds;
    ``amp`` True/False forces bf16 autocast on or off (``None``: the task's default on this machine);
    ``net``: network fields set beside the defaults (``{"mbstd": 4}``)."""
    config = TrainConfig(loop=LoopConfig(steps=10**7, seed=seed, time_budget=budget, amp=amp))
    config.model.name = model
    config.model.net.update(net or {})
    config.data.options.size = size
    run = work / f"medgan-{model}-{amp}-{'-'.join(f'{k}{v}' for k, v in (net or {}).items())}"
    trainer = Trainer(config, run, progress=False)
    started = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - started
    return generated_images(run, n, seed), {"steps": trainer.step, "batch": config.loop.batch_size, "train_seconds": seconds,
                                            "config": trainer.config.to_dict()}


def _loop(step_fn, budget: float) -> tuple[int, float]:
    """Call ``step_fn()`` until ``budget`` seconds have passed; returns (steps, seconds)."""
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < budget:
        step_fn()
        steps += 1
    return steps, time.perf_counter() - started


def _draw(G: nn.Module, z_dim: int, n: int, seed: int, to_net) -> np.ndarray:
    """``n`` samples in training mode (batch statistics, as the reference loops sample), in [-1, 1]."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    with torch.no_grad():
        for start in range(0, n, 100):
            out.append(to_net(G(torch.randn(min(100, n - start), z_dim, generator=gen))).numpy())
    return np.concatenate(out)


def train_monai(train: torch.Tensor, budget: float, n: int, seed: int) -> tuple[np.ndarray, dict]:
    from monai.networks import normal_init
    from monai.networks.nets import Discriminator, Generator

    torch.manual_seed(seed)
    D = Discriminator(in_shape=(1, 64, 64), channels=(8, 16, 32, 64, 1), strides=(2, 2, 2, 2, 1), num_res_units=1, kernel_size=5)
    G = Generator(latent_shape=64, start_shape=(64, 8, 8), channels=[32, 16, 8, 1], strides=[2, 2, 2, 1])
    D.apply(normal_init)
    G.apply(normal_init)
    G.conv.add_module("activation", nn.Sigmoid())  # images in [0, 1], as the tutorial's
    bce = nn.BCELoss()
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    data = (train + 1) / 2  # (N, 1, 64, 64) in [0, 1]
    batch = min(128, len(data))
    gen = torch.Generator().manual_seed(seed)

    def step():
        real = data[torch.randint(len(data), (batch,), generator=gen)]
        fake = G(torch.randn(batch, 64))
        opt_g.zero_grad()
        out = D(fake)
        bce(out, torch.ones_like(out)).backward()
        opt_g.step()
        for _ in range(5):  # disc_train_steps, on the same real and generated images
            opt_d.zero_grad()
            real_out, fake_out = D(real), D(fake.detach())
            ((bce(real_out, torch.ones_like(real_out)) + bce(fake_out, torch.zeros_like(fake_out))) / 2).backward()
            opt_d.step()

    steps, seconds = _loop(step, budget)
    return _draw(G, 64, n, seed, lambda x: x * 2 - 1), {"steps": steps, "batch": batch, "train_seconds": seconds}


class _DCGANGenerator(nn.Module):
    def __init__(self, nz: int = 100, width: int = 64):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.ConvTranspose2d(nz, w * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(w * 8), nn.ReLU(True),  # 4x4
            nn.ConvTranspose2d(w * 8, w * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(w * 4), nn.ReLU(True),  # 8x8
            nn.ConvTranspose2d(w * 4, w * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(w * 2), nn.ReLU(True),  # 16x16
            nn.ConvTranspose2d(w * 2, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(True),  # 32x32
            nn.ConvTranspose2d(w, 1, 4, 2, 1, bias=False), nn.Tanh(),  # 64x64
        )

    def forward(self, z):
        return self.net(z[:, :, None, None])


class _DCGANDiscriminator(nn.Module):
    def __init__(self, width: int = 64):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(1, w, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),
            nn.Conv2d(w, w * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(w * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(w * 2, w * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(w * 4), nn.LeakyReLU(0.2, True),
            nn.Conv2d(w * 4, w * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(w * 8), nn.LeakyReLU(0.2, True),
            nn.Conv2d(w * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid(),
        )

    def forward(self, x):
        return self.net(x).view(-1)


def _dcgan_init(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def train_dcgan(train: torch.Tensor, budget: float, n: int, seed: int) -> tuple[np.ndarray, dict]:
    torch.manual_seed(seed)
    G, D = _DCGANGenerator(), _DCGANDiscriminator()
    G.apply(_dcgan_init)
    D.apply(_dcgan_init)
    bce = nn.BCELoss()
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    batch = min(64, len(train))
    gen = torch.Generator().manual_seed(seed)

    def step():
        real = train[torch.randint(len(train), (batch,), generator=gen)]
        fake = G(torch.randn(batch, 100))
        opt_d.zero_grad()
        real_out, fake_out = D(real), D(fake.detach())
        (bce(real_out, torch.ones_like(real_out)) + bce(fake_out, torch.zeros_like(fake_out))).backward()
        opt_d.step()
        opt_g.zero_grad()
        out = D(fake)
        bce(out, torch.ones_like(out)).backward()  # non-saturating: -log D(G(z))
        opt_g.step()

    steps, seconds = _loop(step, budget)
    return _draw(G, 100, n, seed, lambda x: x), {"steps": steps, "batch": batch, "train_seconds": seconds}


# ----------------------------------------------------------------------------- scoring and picture


def score(train: np.ndarray, holdout: np.ndarray, fake: np.ndarray, seed: int) -> dict:
    vs_train, _, _ = realism_metrics(train, fake, require_inception=True, seed=seed, metrics=METRICS)
    vs_holdout, _, _ = realism_metrics(holdout, fake, require_inception=True, seed=seed, metrics=METRICS)
    keep = ("kid_mean", "kid_std", "fid", "inception_precision", "inception_recall")
    return {"vs_train": {k: vs_train[k] for k in keep}, "vs_holdout": {k: vs_holdout[k] for k in keep}}


def side_by_side(sets: dict[str, np.ndarray], out: Path, k: int = 36) -> None:
    from PIL import Image, ImageDraw

    grids = [image_grid(images[:k, 0], value_range=(-1, 1), ncol=6) for images in sets.values()]
    title = 18
    width = sum(g.width for g in grids) + 8 * (len(grids) - 1)
    page = Image.new("RGB", (width, max(g.height for g in grids) + title), (255, 255, 255))
    draw, x = ImageDraw.Draw(page), 0
    for name, grid in zip(sets, grids):
        draw.text((x + 4, 3), name, fill=(0, 0, 0))
        page.paste(grid, (x, title))
        x += grid.width + 8
    out.parent.mkdir(parents=True, exist_ok=True)
    page.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=600.0, help="training seconds per contender (default 600)")
    parser.add_argument("--n", type=int, default=500, help="images drawn per contender for the metrics (default 500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--contenders", default="medgan,monai,dcgan",
                        help="of medgan (its default DCGAN), fastgan (medgan's defaults with --model fastgan), monai, dcgan; "
                             "medgan and fastgan also as NAME+amp (bf16 autocast on CPU) and NAME-amp (fp32); medgan+mbstd: "
                             "a minibatch standard-deviation channel in D (--mbstd 4)")
    parser.add_argument("--size", type=int, default=64, help="image size; MONAI's and the plain DCGAN's networks make 64 px only")
    parser.add_argument("--out", default="docs/synth-vs-peers.png", help="the side-by-side picture")
    args = parser.parse_args()

    contenders = args.contenders.split(",")
    unknown = [c for c in contenders if c.removesuffix("+mbstd").removesuffix("+amp").removesuffix("-amp") not in ("medgan", "fastgan", "monai", "dcgan")
               or (c[-4:] in ("+amp", "-amp") and c[:-4] not in ("medgan", "fastgan"))]
    if unknown:
        parser.error(f"unknown contender(s) {', '.join(unknown)}: see --help")
    if args.size != 64 and set(contenders) & {"monai", "dcgan"}:
        parser.error("MONAI's tutorial networks and the plain DCGAN make 64 px images: use --contenders medgan,fastgan")
    data = DataConfig()
    data.options.size = args.size
    dataset, held = load_training_data(data)
    train_t = dataset.batch(torch.arange(len(dataset)))["image"].contiguous()  # (N, 1, S, S) in [-1, 1]
    train = train_t.numpy()
    holdout = dataset.intensity.forward(held.images)[:, None]
    floor, _, _ = realism_metrics(train, holdout, require_inception=True, seed=args.seed, metrics=METRICS)
    result = {"machine": {"cpu": cpu_model(), "threads": torch.get_num_threads(), "torch": torch.__version__},
              "data": {"source": "brain-mri", "size": args.size, "n_train": len(train), "n_holdout": len(holdout)},
              "budget_seconds": args.budget, "n_generated": args.n,
              "floor_holdout_vs_train": {k: floor[k] for k in ("kid_mean", "kid_std", "fid", "inception_precision", "inception_recall")},
              "contenders": {}}
    samples = {"real (training slices)": train[np.random.default_rng(0).permutation(len(train))]}
    names = {"medgan": "medgan default", "fastgan": "medgan --model fastgan", "monai": "MONAI GAN tutorial", "dcgan": "plain DCGAN"}
    with tempfile.TemporaryDirectory() as tmp:
        for name in contenders:
            base, amp, net = name.removesuffix("+mbstd"), None, ({"mbstd": 4} if name.endswith("+mbstd") else {})
            if base[-4:] in ("+amp", "-amp"):
                base, amp = base[:-4], base[-4] == "+"
            if base in ("medgan", "fastgan"):
                fake, info = train_medgan(args.budget, args.n, args.seed, Path(tmp), "auto" if base == "medgan" else base, args.size,
                                          amp, net)
                info["amp"] = info["config"]["loop"]["amp"]
            elif name == "monai":
                fake, info = train_monai(train_t, args.budget, args.n, args.seed)
            else:
                fake, info = train_dcgan(train_t, args.budget, args.n, args.seed)
            result["contenders"][name] = {**info, "images_seen": info["steps"] * info["batch"], **score(train, holdout, fake, args.seed)}
            samples[names[base] + {None: "", True: " (bf16)", False: " (fp32)"}[amp] + (" --mbstd 4" if net else "")] = fake
    kid = {k: v["vs_train"]["kid_mean"] for k, v in result["contenders"].items()}
    if "medgan" in kid:
        result["ratios"] = {f"kid_medgan_over_{k}": kid["medgan"] / v for k, v in kid.items() if k != "medgan"}
        result["ratios"]["kid_medgan_over_floor"] = kid["medgan"] / result["floor_holdout_vs_train"]["kid_mean"]
    for name in kid:
        result.setdefault("ratios", {})[f"kid_{name}_over_floor"] = kid[name] / result["floor_holdout_vs_train"]["kid_mean"]
    side_by_side(samples, Path(args.out))
    result["picture"] = args.out
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
