"""Synthesis: an unconditional or class-conditional GAN on 2D images (the GAN of ``docs/design.md``)."""

from __future__ import annotations

from dataclasses import asdict, fields, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from medgan import losses
from medgan.data.dataset import MedicalImageDataset
from medgan.data.labels import decode_label_channels, evenly_chosen, label_channels, label_classes, to_indices
from medgan.errors import MedganError
from medgan.nets import build_pair, config_from_dict
from medgan.nets.dcgan import set_condition_strength
from medgan.report.grid import tint
from medgan.tasks.synth.model import SynthesisModel, from_exported
from medgan.train.augment import diff_augment, parse_policy
from medgan.train.distributed import unwrap
from medgan.train.task import GANTask, Networks


def pair_classes(config, data) -> tuple[list[int], list[str]]:
    """``(label_values, class_names)`` of a ``--pairs`` run: those its labelled masks hold."""
    if data.masks is None:
        raise MedganError("--pairs draws image-label pairs and needs masks", path=config.data.source,
                          hint="give --masks FOLDER (one mask per image, same name), or brain-mri / phantom --lesion-fraction 1")
    return label_classes(data.masks[data.labelled_index()], None, data.mask_names, config.data.source)


class SynthesisTask(GANTask):
    """G: z (and a class label when conditional) -> image; D: image (and label) -> logit.

    The objective is the configured adversarial loss (``docs/design.md`` §4's by default), with
    DiffAugment applied to everything D sees, and optional R1 / WGAN gradient penalties.
    """

    name = "synth"
    models = ("dcgan", "mlp", "fastgan")
    # At equal minutes bf16 wins: 10 CPU-minutes on the brain slices gave 1.4x the steps and a
    # 13% lower KID (0.047 against 0.054; benchmarks/synth_vs_peers.py, medgan+amp), though at
    # equal steps its KID is 8% higher (benchmarks/amp_quality.py).
    bf16_on_cpu = True

    @classmethod
    def method_line(cls, config) -> str:
        if config.model.name == "dcgan" and config.task_config.recipe == "medgan":
            return ("a DCGAN with medgan's recipe: at 10 CPU-minutes its KID was 0.25x that of MONAI's GAN tutorial and "
                    "0.49x FastGAN's (benchmarks/synth_vs_peers.py)")
        if config.model.name == "mlp":
            return "the two-layer MLP GAN of docs/design.md §5, with its losses (§4)"
        if config.model.name == "fastgan":
            return (f"a FastGAN (Liu et al. 2021: skip-layer excitation, a self-supervised D) with the "
                    f"{config.task_config.recipe} recipe; measured at 64 px: KID 2x the DCGAN's at 10 CPU-minutes (a fifth of its steps)")
        return f"a {config.model.name.upper()} with the {config.task_config.recipe} recipe (--recipe medgan is the measured best)"

    @classmethod
    def resolve(cls, config, dataset) -> None:
        from medgan.nets import MODELS, dcgan, fastgan
        from medgan.tasks.synth.config import RECIPES

        recipe = RECIPES["seed" if config.model.name == "mlp" else config.task_config.recipe]
        if config.loss.name == "auto":
            config.loss.name = recipe["loss"]
        for name in ("lr_g", "lr_d"):
            if getattr(config.optim, name) is None:
                setattr(config.optim, name, recipe["lr"])
        for name, value in zip(("beta1", "beta2"), recipe["betas"]):
            if getattr(config.optim, name) is None:
                setattr(config.optim, name, value)
        if config.loop.augment == "auto":
            config.loop.augment = recipe["augment"]
        model = config.model.name
        if model in ("dcgan", "fastgan"):  # the recipe's D options, where the model has them
            own = {f.name for f in fields(MODELS[model][0])}
            for key, value in recipe["net"].items():
                if key in own:
                    config.model.net.setdefault(key, value)
        size = config.data.options.size
        sizes = {"dcgan": dcgan.SIZES, "fastgan": fastgan.SIZES}.get(model)
        if sizes and size not in sizes:
            raise MedganError(f"{'DCGAN' if model == 'dcgan' else 'FastGAN'} cannot make {size}x{size} images",
                              hint=f"use --size one of {', '.join(map(str, sizes))}")
        if model == "fastgan" and config.model.net.get("num_classes", 0):
            raise MedganError("fastgan is unconditional", hint="use --model dcgan for --conditional")
        label_planes = 0
        if config.task_config.pairs:
            if model == "mlp" or config.model.net.get("num_classes", 0):
                raise MedganError("--pairs trains an unconditional dcgan or fastgan", hint="leave out --conditional and --model mlp")
            moved = set(parse_policy(config.loop.augment)) - {"translation"}
            if moved:
                raise MedganError(f"--augment {config.loop.augment}: with --pairs only translation moves image and label map alike",
                                  hint="use --augment translation (the default) or ''")
            label_planes = len(pair_classes(config, dataset.data)[0]) - 1
        # The network's full config, so config.json names every field: the image's size and
        # channels and the width TrainConfig.resolve fills in for every task, the classes of
        # --conditional (num_classes -1: as many as the data has).
        net = {"width": 32, **config.model.net, "image_size": size, "channels": (1 if config.data.options.grey else 3) + label_planes}
        if net.get("num_classes", 0) == -1:
            names = dataset.data.class_names
            if not names:
                raise MedganError("--conditional needs labelled data (subfolders per class, --labels-csv or an npz with labels)",
                                  path=config.data.source)
            net["num_classes"] = len(names)
        config.model.net = asdict(config_from_dict(config.model.name, net))

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.net_config = config_from_dict(config.model.name, config.model.net)
        self.d_loss, self.g_loss = losses.ADVERSARIAL[config.loss.name]
        self.policy = parse_policy(config.loop.augment)
        self.conditional = getattr(self.net_config, "num_classes", 0) > 0
        if self.conditional:  # sample grids: one row per class
            self.grid_columns = max(1, min(16, config.loop.n_samples // self.net_config.num_classes))
        self.image_channels = dataset.channels
        self.pairs = config.task_config.pairs
        if self.pairs:  # the labelled images (or `labelled` of them) and their masks as class indices
            data, where = dataset.data, config.data.source
            self.label_values, self.label_names = pair_classes(config, data)
            annotated = data.labelled_index()
            chosen = annotated[evenly_chosen(len(annotated), config.task_config.labelled)]
            masks = to_indices(data.masks[chosen], self.label_values, where)
            labelled = replace(data.subset(chosen), masks=masks, mask_names=self.label_names, annotated=None)
            self.dataset = MedicalImageDataset(labelled, intensity=dataset.intensity)
            self.samples_title = "Image-label pairs from one fixed set of z (label map in colour)"
            self.repeat_small_data = True  # a few labelled images fill a batch

    def before_step(self, nets: Networks, step: int) -> None:
        if self.conditional and self.config.model.name == "dcgan":  # transitional conditioning
            strength = self.config.task_config.strength(step)
            for name in ("generator", "discriminator"):
                set_condition_strength(nets[name], strength)

    def build_pair(self) -> tuple[nn.Module, nn.Module]:
        return build_pair(self.config.model.name, self.net_config)

    def _noise(self, n: int, device: torch.device) -> torch.Tensor:
        return torch.randn(n, self.net_config.z_dim, device=device)

    def _labels(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"labels": batch["label"]} if self.conditional else {}

    def _real(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """What D sees of the data: the images ``(B, C, H, W)`` in [-1, 1], with ``--pairs``
        their label maps beside them as foreground channels ``(B, C + K - 1, H, W)``."""
        x = batch["image"]
        if not self.pairs:
            return x
        return torch.cat([x, label_channels(batch["mask"].to(x.device), len(self.label_values)).to(x.dtype)], 1)

    def discriminator_objective(self, nets: Networks, batch):
        G, D = nets.generator, nets.discriminator
        real = self._real(batch)  # (B, C, H, W) in [-1, 1]
        cond = self._labels(batch)
        with torch.no_grad():
            fake = G(self._noise(real.shape[0], real.device), **cond)
        real_aug, fake_aug = diff_augment(real, self.policy), diff_augment(fake, self.policy)
        # A self-supervised D (FastGAN) also rebuilds the real images it sees from its own
        # features; the penalties below call it without that.
        self_supervised = getattr(unwrap(D), "self_supervised", False)
        if self_supervised:
            real_logits, recon = D(real_aug, reconstruct=True, **cond)
        else:
            real_logits = D(real_aug, **cond)
        fake_logits = D(fake_aug, **cond)
        adversarial = self.d_loss(real_logits, fake_logits)
        out = {
            "d_adv": adversarial.detach(),
            "d_real": torch.sigmoid(real_logits.detach()).mean(),
            "d_fake": torch.sigmoid(fake_logits.detach()).mean(),
        }
        loss = adversarial
        if self_supervised:
            loss = loss + self.config.task_config.d_recon_weight * recon
            out["d_recon"] = recon.detach()
        if self.config.loss.name == "wgan-gp":
            gp = losses.gradient_penalty(unwrap(D), real_aug, fake_aug, **cond)
            loss = loss + self.config.loss.gp_weight * gp
            out["gp"] = gp.detach()
        if self.config.loss.r1_gamma > 0:
            r1 = losses.r1_penalty(unwrap(D), real_aug, **cond)
            loss = loss + 0.5 * self.config.loss.r1_gamma * r1
            out["r1"] = r1.detach()
        out["loss"] = loss
        return out

    def generator_objective(self, nets: Networks, batch):
        G, D = nets.generator, nets.discriminator
        real = self._real(batch)
        cond = self._labels(batch)
        fake = G(self._noise(real.shape[0], real.device), **cond)
        logits = D(diff_augment(fake, self.policy), **cond)
        loss = self.g_loss(logits)
        return {"loss": loss, "g_adv": loss.detach()}

    def fixed_inputs(self, n: int, device: torch.device) -> dict[str, torch.Tensor]:
        gen = torch.Generator().manual_seed(self.config.loop.seed + 7919)
        k = self.net_config.num_classes if self.conditional else 0
        count = k * self.grid_columns if k else n  # conditional: row k of the grid is class k
        fixed = {"z": torch.randn(count, self.net_config.z_dim, generator=gen).to(device)}
        if k:
            fixed["labels"] = torch.arange(k).repeat_interleave(self.grid_columns).to(device)
        return fixed

    def validate(self, nets: Networks, holdout) -> dict[str, float]:
        """Sliced Wasserstein distance (``val_swd``, x1e3, averaged over the pyramid's levels)
        between 128 generated images and up to 128 held-out ones: cheap on a CPU, no Inception."""
        from medgan.metrics.realism import swd

        if not len(holdout):
            return {}
        if getattr(self, "_val", None) is None:
            pick = evenly_chosen(len(holdout), 128)
            real = self.dataset.intensity.forward(holdout.images[pick].astype(np.float32))
            z = torch.randn(128, self.net_config.z_dim, generator=torch.Generator().manual_seed(self.config.loop.seed + 104_729))
            self._val = (torch.from_numpy(real[:, None] if real.ndim == 3 else real), z)
        real, z = self._val
        G = nets.generator
        device = next(G.parameters()).device
        kwargs = {"labels": (torch.arange(len(z)) % self.net_config.num_classes).to(device)} if self.conditional else {}
        fake = G(z.to(device), **kwargs).float().cpu()[:, : self.image_channels].clamp(-1, 1)
        return {"val_swd": swd(real, fake, patches_per_image=64, n_projections=128)["swd_x1e3_avg"]}

    @torch.no_grad()
    def render(self, nets, fixed):
        out = nets.generator(fixed["z"], **({"labels": fixed["labels"]} if "labels" in fixed else {}))
        if not self.pairs:
            return out
        c = self.image_channels
        return tint(out[:, :c], decode_label_channels(out[:, c:])).clamp(-1, 1)  # (B, 3, H, W): the label map in colour

    @classmethod
    def describe_evaluation(cls, record):
        from medgan.tasks.synth.report import floor_summary

        text = f"{record['n_generated']} generated vs {record['n_real']} {record.get('real')} images"
        return f"{text}; {floor_summary(record)}" if floor_summary(record) else text

    @classmethod
    def report_parts(cls, run_dir):
        from medgan.tasks.synth.report import audit_section, class_section

        return class_section(run_dir) + audit_section(run_dir)

    @classmethod
    def evaluate_run(cls, run_dir, *, n, seed, inception_weights, require_inception, metrics=None):
        """Realism of the generator against the training images: by default every registered
        realism metric (FID, KID, Inception and pixel PRDC, SWD, MS-SSIM)."""
        from medgan.tasks.synth.evaluate import evaluate_synthesis_run

        return evaluate_synthesis_run(run_dir, n=n, seed=seed, inception_weights=inception_weights,
                                      require_inception=require_inception, metrics=metrics)

    @classmethod
    def from_pretrained(cls, exported, run=None) -> SynthesisModel:
        return from_exported(exported)

    def export_info(self, name: str) -> dict[str, Any]:
        data = self.dataset.data
        return {
            "model": self.config.model.name,
            "net": asdict(self.net_config),
            "intensity": self.dataset.intensity.to_dict(),
            "class_names": data.class_names if self.conditional else None,
            # --pairs: the label map's classes, drawn as channels after the image's
            "pairs": {"label_values": [int(v) for v in self.label_values], "class_names": list(self.label_names)} if self.pairs else None,
            "source": self.config.data.source,
            "image_size": list(self.dataset.image_size),
            "channels": self.dataset.channels,
        }
