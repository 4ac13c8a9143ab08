"""The plain autoencoder: GANomaly's encoder ``E1`` and decoder alone, trained on L1.

The baseline a GAN detector must beat; score the mean squared residual ``mean (x - x^)^2``,
map ``|x - x^|``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medgan.nets.dcgan import DCGANGenerator
from medgan.nets.encoder import ImageEncoder
from medgan.tasks.anomaly.methods.base import AnomalyMethod, Defaults, dcgan_config
from medgan.tasks.anomaly.methods.ganomaly import reconstruct
from medgan.train.task import Networks, Optimizer, Phase, Update

__all__ = ["Autoencoder"]


class Autoencoder(AnomalyMethod):
    """An encoder and a decoder on L1 (see the module doc)."""

    name = "ae"
    networks = ("encoder", "generator")
    exported = ("encoder", "generator")
    defaults = Defaults(lr=1e-3, betas=(0.9, 0.999))

    @classmethod
    def line(cls) -> str:
        return ("a plain autoencoder on L1, its residual z-scored: the best on phantoms in benchmarks/anomaly_vs_baselines.py "
                "(image AUROC 0.83, pixel AUPRC 0.35 against the intensity rule's 0.77 and 0.18) at a twentieth of the restorer's "
                "time, but at chance on the real brain slices (0.51), where the restorer (the default) reaches 0.59")

    @classmethod
    def build(cls, name: str, net) -> nn.Module:
        if name == "generator":
            return DCGANGenerator(dcgan_config(net))
        if name == "encoder":
            return ImageEncoder(dcgan_config(net), bounded=False)
        return super().build(name, net)

    def optimizers(self) -> dict[str, Optimizer]:
        o = self.config.optim
        return {"generator": Optimizer(("encoder", "generator"), o.lr_g, (o.beta1, o.beta2))}

    def phases(self) -> list[Phase]:
        return [Phase("train", self.config.loop.steps, (Update("g", "generator", self.objective),))]

    def objective(self, nets: Networks, batch):
        x = batch["image"]
        _, rec = reconstruct(nets, x)
        loss = F.l1_loss(rec, x)
        return {"loss": loss, "l1": loss.detach()}

    @classmethod
    def score(cls, model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean squared residual."""
        _, rec = reconstruct(model.nets, x)
        return ((x - rec) ** 2).flatten(1).mean(1), rec
