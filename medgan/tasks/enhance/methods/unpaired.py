"""Unpaired denoising: CycleGAN between noisy and clean images (Zhu et al., ICCV 2017).

Users often have noisy scans and clean scans of *other* patients, never both of one. CycleGAN
learns from the two piles alone. Four networks:

- ``generator`` G: noisy -> clean (the exported denoiser: the paired task's U-Net or DnCNN,
  same config, so ``medgan enhance`` and :func:`medgan.tasks.enhance.model.load_model` load it as
  any enhancement model);
- ``generator_back`` F: clean -> noisy (same architecture, trained, not exported);
- ``discriminator`` D_Y and ``discriminator_back`` D_X: unconditional PatchGANs on clean and
  on noisy images (there is no input to condition on: an unpaired image has no partner).

G and F are trained together by one optimiser, D_Y and D_X by another, per step D first::

    L_G,F = L_adv(D_Y(G(x))) + L_adv(D_X(F(y)))
            + λ_cyc · (|F(G(x)) - x|₁ + |G(F(y)) - y|₁)          λ_cyc = 10
            + λ_id  · (|G(y) - y|₁ + |F(x) - x|₁)                λ_id  = 0.5 · λ_cyc
    L_D   = d_loss(D_Y(y), D_Y(G(x))) + d_loss(D_X(x), D_X(F(y)))

with the run's adversarial loss (``--loss``; CycleGAN's is ``lsgan``). The cycle terms make G
keep the content of its input (F must be able to undo it); the identity terms, which
CycleGAN introduced for colour preservation, matter more here: G applied to an image that is
already clean must leave it alone, which keeps G from changing anatomy and limits it to
removing what tells the two domains apart, the noise. ``l1_weight``, ``recon_loss`` and
``ssim_weight`` are pix2pix's supervised terms and do not apply.

The data, x on the noisy side and y on the clean side, never of the same image:

- ``clean_data`` given: x = the training images, degraded (``--degradation none``: the real
  noisy scans as they are), y = the ``clean_data`` images, read with the training data's
  options and mapped to [-1, 1] by the training data's intensity map;
- ``clean_data`` empty: the training images are split in two disjoint halves (at a patient
  boundary near the middle where there is one): x = degraded images of the first half, y = the
  second half as they are. A simulation, so unpaired training can be scored against paired
  training on the same data; the network never sees a clean version of a noisy input.

Each step draws its noisy and clean minibatches (and their symmetries, ``flip``) from the
batch number and the run's seed, so the D and G updates of a step see the same images and a
resumed run the same batches; the engine's own batch only gives the batch size and device.

Left out: CycleGAN's history buffer of 50 past fakes for D (its content would be training
state outside the checkpoint, breaking exact resume; D judges the current fakes only); its
ResNet generator and instance norms (the paired task's generator config is used unchanged,
so the exported model is the same kind); its 0.5 factor on the D loss (a constant factor on
an Adam-trained loss changes nothing). The enhancement task's linear learning-rate decay is
CycleGAN's schedule (constant, then linear to zero over the second half).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medgan.data.sources import load_source
from medgan.errors import MedganError, warn
from medgan.nets import PatchGANDiscriminator, build_network
from medgan.tasks.enhance.methods.base import NOT_SEEN_TITLE, EnhanceMethod, symmetries
from medgan.train.task import Networks, Optimizer, Phase, Update

__all__ = ["CYCLE_WEIGHT", "IDENTITY_WEIGHT", "Unpaired", "split_halves"]

# CycleGAN's weights, against an adversarial weight of 1. Not read from ``l1_weight``: that is
# pix2pix's weight (100) of a supervised L1 to the truth, a different term; at 100 the cycle
# and identity terms would swamp the adversary and G would stay the identity it starts as.
CYCLE_WEIGHT = 10.0
IDENTITY_WEIGHT = 0.5 * CYCLE_WEIGHT


def split_halves(n: int, groups: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(noisy side, clean side)`` of ``n`` images: the first half and the rest.

    With ``groups`` (the patient or volume of each image, contiguous as sources read them)
    the cut moves to the patient boundary nearest the middle, so no patient has slices on
    both sides (neighbouring slices of one patient are nearly a pair); when no boundary lies
    in the middle half (one or two big patients), the cut stays at the middle.
    """
    cut = n // 2
    if groups is not None and len(groups) == n:
        boundaries = [i for i in range(1, n) if groups[i] != groups[i - 1] and n / 4 <= i <= 3 * n / 4]
        if boundaries:
            cut = min(boundaries, key=lambda i: (abs(i - n / 2), i))
    index = torch.arange(n)
    return index[:cut], index[cut:]


def _draw(n: int, b: int, g: torch.Generator) -> torch.Tensor:
    """``b`` indices into ``n`` items: distinct when there are enough, else with repeats."""
    return torch.randperm(n, generator=g)[:b] if n >= b else torch.randint(n, (b,), generator=g)


def _judge(D: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """Patch logits ``(B, 1, h', w')`` of an unconditional PatchGAN for ``image (B, C, H, W)``:
    its condition is the zero-channel slice ``(B, 0, H, W)`` (``cond_channels = 0``)."""
    return D(image[:, :0], image)


class Unpaired(EnhanceMethod):
    """CycleGAN through the engine: G, F and two unconditional PatchGANs (see the module doc)."""

    name = "unpaired"
    exported = ("generator",)  # F and the discriminators only serve training
    samples_title = NOT_SEEN_TITLE

    def __init__(self, task):
        super().__init__(task)
        e, dataset = self.config.task_config, task.dataset
        n = len(dataset)
        #: indices into the training images of the noisy side, and of the clean side (``None``:
        #: the clean images are ``clean_data``'s); ``clean`` holds the clean side ``(M, C, h, w)``.
        self.noisy_index: torch.Tensor
        self.clean_index: torch.Tensor | None = None
        if e.clean_data:
            self.noisy_index = torch.arange(n)
            self.clean = self._read_clean(e.clean_data)
        else:
            self.noisy_index, self.clean_index = split_halves(n, dataset.data.groups)
            self.clean = dataset.batch(self.clean_index)["image"]  # the clean half as it is
        #: with a simulated degradation every noisy input has its clean truth (for the sample grid)
        self.has_truth = task.degradation.kind != "none"  # the report's caption follows (Unpaired.caption)

    @classmethod
    def line(cls, config) -> str:
        return "a CycleGAN between noisy images and clean images of other patients (no pairs)"

    @classmethod
    def resolve(cls, config, dataset) -> None:
        e = config.task_config
        if e.adversarial is None:
            e.adversarial = True
        if not e.adversarial:
            raise MedganError("unpaired training needs its adversaries: without them nothing pulls the output towards the clean images",
                              hint="leave out --l1-only, or use --supervision paired for the L1-only baseline")

    @classmethod
    def check(cls, config, dataset, degradation, multiple: int) -> None:
        if config.task_config.clean_data:
            return
        if degradation.kind == "none":
            raise MedganError("unpaired training with --degradation none has noisy images only: there are no clean images",
                              hint="give --clean-data FOLDER (clean images of other patients), or use --supervision self")
        if len(dataset) < 2:
            raise MedganError(f"{len(dataset)} training image cannot be split into a noisy and a clean half",
                              hint="give more images or --clean-data FOLDER")

    @classmethod
    def caption(cls, options: dict[str, Any]) -> str:
        if str(options.get("degradation", "")).strip().lower() == "none":  # real noisy scans: no truth to show
            return "The same training images at every step: noisy input | output | output mapped back by F"
        return cls.samples_title

    def _read_clean(self, source: str) -> torch.Tensor:
        """The ``clean_data`` images ``(M, C, h, w)`` in [-1, 1]: read with the training data's
        options, mapped by the training data's intensity map."""
        # Masks, labels and a series selector name the training files, not these.
        options = replace(self.config.data.options, masks=None, partial_masks=False, labels_csv=None, series=None)
        try:
            data = load_source(source, options)
        except MedganError as error:  # reworded to name the flag and the folder given, not only a file inside it
            inner = "" if error.path in (None, source, str(Path(source).expanduser())) else f"{error.path}: "
            raise MedganError(f"--clean-data cannot be read: {inner}{error.message}", path=source,
                              hint=error.hint or "give a folder or file of clean images that --data would read") from None
        intensity = self.task.dataset.intensity
        outside = float(np.mean((data.images < intensity.low) | (data.images > intensity.high)))
        if outside > 0.5:  # e.g. 0..255 PNGs against CT in HU: clipped to one grey, silently useless
            warn(f"{outside:.0%} of the clean images' values lie outside the training range [{intensity.low:g}, {intensity.high:g}]"
                 f"{' ' + intensity.units if intensity.units else ''}", path=source,
                 hint="give clean images in the units of the training images (same modality, --window, --normalize)")
        images = intensity.forward(data.images)
        clean = torch.from_numpy(images if images.ndim == 4 else images[:, None])  # (M, C, h, w)
        want = (self.task.dataset.channels, *self.task.dataset.image_size)
        if tuple(clean.shape[1:]) != want:
            raise MedganError(f"the clean images are {clean.shape[1]}-channel {clean.shape[2]}x{clean.shape[3]}, the training images "
                              f"{want[0]}-channel {want[1]}x{want[2]}", path=source,
                              hint="give clean images of the same kind (both grey or both colour with --rgb)")
        return clean

    # ----------------------------------------------------------------------- networks

    def networks(self) -> dict[str, nn.Module]:
        name = self.config.model.name
        # The pair's PatchGAN settings (d_width, d_layers, d_norm, spectral_norm) without a condition.
        net = self.task.net_config
        judge = replace(net.patchgan_config(), cond_channels=0)
        return {"generator": build_network(name, net, "generator"),
                "generator_back": build_network(name, net, "generator"),
                "discriminator": PatchGANDiscriminator(judge),
                "discriminator_back": PatchGANDiscriminator(judge)}

    def optimizers(self) -> dict[str, Optimizer]:
        o = self.config.optim
        return {"generator": Optimizer(("generator", "generator_back"), o.lr_g, (o.beta1, o.beta2)),
                "discriminator": Optimizer(("discriminator", "discriminator_back"), o.lr_d, (o.beta1, o.beta2))}

    def phases(self) -> list[Phase]:
        return [Phase("train", self.config.loop.steps, (
            Update("d", "discriminator", self.discriminator_objective, repeat=self.config.optim.n_critic),
            Update("g", "generator", self.generator_objective),
        ))]

    def unpaired_batch(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)``, each ``(B, C, h, w)``: noisy images (one noise realisation each) and clean
        images of other patients, each under one of the square's symmetries when ``flip``.
        A function of the batch number and the run's seed only (the D and G updates of a step
        see the same images; resume is exact); ``B`` and the device are the engine batch's."""
        b, device = len(batch["index"]), batch["image"].device
        g = torch.Generator().manual_seed(self.config.loop.seed * 1_000_003 + int(batch["number"]))
        noisy = self.noisy_index[_draw(len(self.noisy_index), b, g)]
        inputs = self.task.inputs
        realization = torch.randint(len(inputs), (b,), generator=g)
        x = inputs[realization, noisy]  # (B, C, h, w)
        y = self.clean[_draw(len(self.clean), b, g)]  # (B, C, h, w)
        if self.config.task_config.flip:  # each side on its own: the images are not pairs
            k = torch.randint(8, (2, b), generator=g)
            (x,), (y,) = symmetries([x], k[0]), symmetries([y], k[1])
        return (x.to(device).contiguous(memory_format=torch.channels_last),
                y.to(device).contiguous(memory_format=torch.channels_last))

    # ----------------------------------------------------------------------- objectives

    def discriminator_objective(self, nets: Networks, batch):
        G, F, D_Y, D_X = nets.generator, nets.generator_back, nets.discriminator, nets.discriminator_back
        x, y = self.unpaired_batch(batch)
        with torch.no_grad():
            fake_y, fake_x = G(x), F(y)
        real_y, fake_y_logits = _judge(D_Y, y), _judge(D_Y, fake_y)
        real_x, fake_x_logits = _judge(D_X, x), _judge(D_X, fake_x)
        loss = self.d_loss(real_y, fake_y_logits) + self.d_loss(real_x, fake_x_logits)
        # d_real / d_fake are the clean side's D_Y (what the engine watches for a D that has won).
        return {"loss": loss, "d_real": torch.sigmoid(real_y.detach()).mean(), "d_fake": torch.sigmoid(fake_y_logits.detach()).mean(),
                "d_back_real": torch.sigmoid(real_x.detach()).mean(), "d_back_fake": torch.sigmoid(fake_x_logits.detach()).mean()}

    def generator_objective(self, nets: Networks, batch):
        G, F, D_Y, D_X = nets.generator, nets.generator_back, nets.discriminator, nets.discriminator_back
        x, y = self.unpaired_batch(batch)
        fake_y, fake_x = G(x), F(y)  # (B, C, h, w) each
        adv = self.g_loss(_judge(D_Y, fake_y)) + self.g_loss(_judge(D_X, fake_x))
        cycle = (F(fake_y) - x).abs().mean() + (G(fake_x) - y).abs().mean()
        identity = (G(y) - y).abs().mean() + (F(x) - x).abs().mean()
        loss = adv + CYCLE_WEIGHT * cycle + IDENTITY_WEIGHT * identity
        return {"loss": loss, "g_adv": adv.detach(), "cycle": cycle.detach(), "identity": identity.detach()}

    # ----------------------------------------------------------------------- samples

    def fixed_inputs(self, n: int, device: torch.device) -> dict[str, torch.Tensor]:
        k = max(2, n // 6 * 2)  # whole rows of two triplets
        index = self.noisy_index[:k]
        fixed = {"x": self.task.inputs[0, index].to(device)}
        if self.has_truth:
            fixed["y"] = self.task.dataset.batch(index)["image"].to(device)
        return fixed

    @torch.no_grad()
    def render(self, nets, fixed):
        """Triplets per row position: noisy | G(noisy) | its clean truth, or F(G(noisy)) without one."""
        x = fixed["x"]
        out = nets.generator(x)
        third = fixed["y"] if "y" in fixed else nets.generator_back(out)
        return torch.stack([x, out, third], dim=1).flatten(0, 1).clamp(-1, 1)  # (3k, C, H, W)

    # ----------------------------------------------------------------------- export

    def export_info(self) -> dict[str, Any]:
        return {"cycle_weight": CYCLE_WEIGHT, "identity_weight": IDENTITY_WEIGHT, "clean_data": self.config.task_config.clean_data or None}
