"""The synthesis task's own options (the ``synth`` section of a run's config; each field is a
``medgan train synth`` flag): the training recipe, and how a class-conditional GAN receives
its classes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from medgan.errors import MedganError
from medgan.options import option
from medgan.train.config import GAN_SETTINGS

__all__ = ["RECIPES", "SynthConfig"]

#: What ``--recipe`` fills in for the fields left on auto (a flag given is never overridden).
#: ``medgan``: what measured best per CPU-minute on the embedded brain slices
#: (``benchmarks/synth_ablation.py``: hinge loss with a spectral-normalised D without batch
#: norm, learning rates 4e-4, Adam betas 0 / 0.99 as in StyleGAN2-ADA, translation-only
#: DiffAugment; cutout's holes leaked into G).
#: ``seed``: the GAN of ``docs/design.md`` as written (§3-§4: BCE with the non-saturating G
#: loss, batch norm in D, DCGAN's 2e-4, no augmentation). The MLP GAN of §5 always gets
#: the design's recipe: the tuned one was measured for the DCGAN only. Betas 0 / 0.99 measured
#: KID -15% on the brain slices (two seeds) and 0.128 against 0.212 on conditional phantoms.
RECIPES: dict[str, dict] = {
    "medgan": {"loss": "hinge", "lr": 4e-4, "betas": (0.0, 0.99), "augment": "translation",
               "net": {"spectral_norm": True, "d_norm": "none"}},
    "seed": {"loss": "bce", "lr": 2e-4, "betas": (0.5, 0.999), "augment": "", "net": {"spectral_norm": False, "d_norm": "batch"}},
}


@dataclass
class SynthConfig:
    """The recipe of a synthesis run, and how a class-conditional GAN receives its classes.

    Transitional conditioning (Shahbazi et al. 2022): on small data a conditional GAN often
    collapses inside a class, because D learns the classes before G has learnt images at
    all. Training starts unconditional and the class terms of G (conditional batch norm)
    and D (projection) are faded in linearly.

    Attributes:
        recipe: ``medgan`` or ``seed`` (see :data:`RECIPES`): the loss, learning rates,
            augmentation and D normalisation of fields left on auto.
        condition_start: steps trained unconditionally (class strength 0).
        condition_ramp: steps over which the class strength then rises from 0 to 1
            (0: a switch at ``condition_start``; ``--condition-start 0 --condition-ramp 0``
            is a conditional GAN from the first step).
        d_recon_weight: FastGAN only: weight of its D's self-supervised loss (the L1 error
            of its decoders rebuilding the real images), added to D's adversarial loss.
        pairs: draw image-label pairs (Bowles et al. 2018, "GAN augmentation"): G draws the
            label map as extra channels beside the image (one per foreground class, in
            [-1, 1]), D judges image and label map together; trained on the images that have
            masks. ``medgan generate`` then writes the label maps beside the images.
        labelled: with ``pairs``, train on this many labelled images spread evenly over
            them (as ``medgan train segment --labelled`` keeps them; 0: every one).
    """

    #: the run-wide settings a synthesis run reads (see medgan.train.config.TASK_SETTINGS)
    settings: ClassVar[dict[str, str]] = {
        **GAN_SETTINGS, "loss.r1_gamma": "", "loss.gp_weight": "", "loop.ema": "", "loop.augment": "",
        "model.name": "dcgan (default), mlp (the two-layer GAN of docs/design.md) or fastgan (64-256 px, small data)",
        "data.balance_classes": "conditional runs: draw every class equally often",
        "model.net.width": "G and D channel width (default 32)", "model.net.z_dim": "latent size (default 100; fastgan 256)",
        "model.net.hidden": "", "model.net.upsample": "", "model.net.d_norm": "", "model.net.mbstd": "",
        "model.net.spectral_norm": "spectral normalisation in D, and in fastgan's G (default by --recipe: on for medgan, off for seed)",
        "model.net.num_classes": "",
    }

    recipe: str = option("medgan", "defaults of loss, learning rates, augmentation and D normalisation: medgan (tuned) or seed "
                         "(the GAN of docs/design.md as written)", choices=tuple(RECIPES))
    condition_start: int = option(500, "conditional runs: train unconditionally for this many steps, then fade the classes in")
    condition_ramp: int = option(1000, "conditional runs: steps over which the class terms fade from 0 to full strength")
    d_recon_weight: float = option(1.0, "fastgan only: weight of D's self-supervised loss (L1 of its decoders rebuilding real images)")
    pairs: bool = option(False, "G draws image and label map, D judges both (needs --masks)")
    labelled: int = option(0, "--pairs: keep N labelled images (0: all)")

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise MedganError(f"unknown recipe {self.recipe!r}", hint=f"use one of {', '.join(RECIPES)}")
        if self.condition_start < 0 or self.condition_ramp < 0:
            raise MedganError(f"--condition-start {self.condition_start} and --condition-ramp {self.condition_ramp} must not be negative")
        if self.labelled < 0:
            raise MedganError(f"--labelled {self.labelled} must not be negative", hint="0 keeps every labelled image")
        if not self.d_recon_weight >= 0:
            raise MedganError(f"--d-recon-weight {self.d_recon_weight} must not be negative")

    def strength(self, step: int) -> float:
        """Class strength in [0, 1] for training step ``step`` (0-based)."""
        if step < self.condition_start:
            return 0.0
        if self.condition_ramp == 0:
            return 1.0
        return min(1.0, (step - self.condition_start) / self.condition_ramp)
